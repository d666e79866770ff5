// The process entry point: configuration, database, app, listen; and a graceful exit on SIGTERM or
// SIGINT (stop accepting, let in-flight requests finish, then close the database).
import { readFile } from 'node:fs/promises'
import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.ts'
import { ConfigError, loadConfig } from './config.ts'
import { openDatabase } from './db/database.ts'
import { seedDemoOnce } from '../prisma/seed-data.ts'

async function main() {
  const startedAt = Date.now()
  const config = loadConfig()
  const database = await openDatabase(config, { log: (message) => console.log(`[database] ${message}`) })
  // Development convenience: the embedded database starts with the demo tenants (acme, globex).
  if (config.embeddedDatabase && !config.isProduction) await seedDemoOnce(database.ownerUrl, config.BCRYPT_COST, config.BASE_DOMAIN, console.log)
  // Native HTTPS when both files are given (src/config.ts refuses one without the other).
  const https = config.TLS_CERT_FILE && config.TLS_KEY_FILE
    ? { cert: await readFile(config.TLS_CERT_FILE), key: await readFile(config.TLS_KEY_FILE) }
    : undefined
  const app = await buildApp({ config, database, https })

  closeWithGrace({ delay: 10_000 }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'closing after a fatal error')
    else app.log.info({ signal }, 'shutting down: finishing in-flight requests')
    await app.close()
  })

  await app.listen({ host: config.HOST, port: config.PORT })
  app.log.info({ ms: Date.now() - startedAt }, `ready: ${https ? 'https' : 'http'}://${config.BASE_DOMAIN}:${config.PORT}`)
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) console.error(error.message)
  else console.error('could not start:', error)
  process.exit(1)
})
