// The process entry point: configuration, database, app, listen; and a graceful exit on SIGTERM or
// SIGINT (stop accepting, let in-flight requests finish, then close the database).
import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.ts'
import { ConfigError, loadConfig } from './config.ts'
import { openDatabase } from './db/database.ts'
import { enforceSafeDatabaseRole } from './db/role-check.ts'
import { seedDemoOnce } from '../prisma/seed-data.ts'

async function main() {
  const startedAt = Date.now()
  const config = loadConfig()
  const database = await openDatabase(config, { log: (message) => console.log(`[database] ${message}`) })
  // Fail closed: RLS must bind the role the pool's queries really run as (refused in production).
  await enforceSafeDatabaseRole(config, (sql) => database.platformDb.$queryRawUnsafe(sql), console.error)
    .catch(async (error: unknown) => { await database.close(); throw error })
  // Development convenience: the embedded database starts with the demo tenants (acme, globex).
  if (config.embeddedDatabase && !config.isProduction) await seedDemoOnce(database.ownerUrl, config.BCRYPT_COST, config.BASE_DOMAIN, console.log)
  const app = await buildApp({ config, database })

  closeWithGrace({ delay: 10_000 }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'closing after a fatal error')
    else app.log.info({ signal }, 'shutting down: finishing in-flight requests')
    await app.close()
  })

  await app.listen({ host: config.HOST, port: config.PORT })
  app.log.info({ ms: Date.now() - startedAt }, `ready: http://${config.BASE_DOMAIN}:${config.PORT}`)
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) console.error(error.message)
  else console.error('could not start:', error)
  process.exit(1)
})
