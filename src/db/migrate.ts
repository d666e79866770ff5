// Applies prisma/migrations in-process, as `prisma migrate deploy` does (same engine, same
// `_prisma_migrations` rows and checksums), e.g. at server start-up or in tests.
import { fileURLToPath } from 'node:url'
import { assertMigrationOrder } from './migration-order.ts'
import { pgMigrationAdapterFactory } from './schema-engine/pg-adapter-factory.ts'
import { createSchemaEngine, loadMigrationsDirectory, noFilter, withPanicMessage } from './schema-engine/wasm-engine.ts'

const defaultMigrationsDir = fileURLToPath(new URL('../../prisma/migrations', import.meta.url))

export interface ApplyMigrationsOptions {
  /** Defaults to the repository's prisma/migrations. */
  migrationsDir?: string
  /** Apply a pending migration that sorts before an applied one (MIGRATE_OUT_OF_ORDER). Default false. */
  allowOutOfOrder?: boolean
}

/**
 * Applies pending migrations to `databaseUrl` and returns the names applied now, in order.
 * Concurrent callers are serialized by the engine's advisory lock (one connection per run holds it;
 * closing it at the end releases the lock even when a migration failed).
 * @throws PooledMigrationUrlError when `databaseUrl` leads to a transaction pooler (PgBouncer):
 *   migrations need a direct connection, or the session advisory lock would stay held.
 * @throws OutOfOrderMigrationError (src/db/migration-order.ts) when a pending migration sorts before
 *   one the database has applied, unless `allowOutOfOrder`; nothing is applied then.
 * A failing migration rejects with an Error naming it; its script runs in one implicit transaction,
 * so none of it stays applied (it is recorded as failed, like `prisma migrate deploy` does).
 */
export async function applyMigrations (
  databaseUrl: string,
  log: (msg: string) => void = () => {},
  options: ApplyMigrationsOptions = {}
): Promise<string[]> {
  const migrationsList = await loadMigrationsDirectory(options.migrationsDir ?? defaultMigrationsDir)
  log(`${migrationsList.migrationDirectories.length} migration(s) found in ${migrationsList.baseDir}`)
  const factory = pgMigrationAdapterFactory(databaseUrl)
  // Before the engine: through a transaction pooler its advisory lock would be left behind.
  await factory.assertDirect()
  if (!options.allowOutOfOrder) await assertMigrationOrder(databaseUrl, migrationsList.migrationDirectories.map((folder) => folder.path))
  try {
    // No schema files: applying migrations only needs the adapter's connection.
    const engine = await createSchemaEngine(factory, [])
    try {
      const { appliedMigrationNames } = await engine.applyMigrations({ migrationsList, filters: noFilter })
      log(appliedMigrationNames.length ? `Applied: ${appliedMigrationNames.join(', ')}` : 'No pending migrations to apply.')
      return appliedMigrationNames
    } finally {
      engine.free()
    }
  } catch (error) {
    throw migrationError(withPanicMessage(error), databaseUrl)
  } finally {
    await factory.close()
  }
}

/** A readable error: the engine names the failing migration only inside its span trace. */
function migrationError (error: unknown, databaseUrl: string): Error {
  const database = decodeURIComponent(new URL(databaseUrl).pathname.slice(1)) || 'postgres'
  const engineMessage = error instanceof Error ? error.message : String(error)
  const migration = /migration_name="([^"]+)"/.exec(engineMessage)?.[1]
  const databaseError = /Error querying the database: (.*)/.exec(engineMessage)?.[1]
  const headline = migration
    ? `Migration ${migration} failed on database "${database}": ${databaseError ?? engineMessage.split('\n')[0]}`
    : `Applying migrations to database "${database}" failed`
  return new Error(`${headline}\n\n${engineMessage}`, { cause: error })
}
