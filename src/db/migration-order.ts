// Prisma applies every pending migration in folder-name order, including one whose folder sorts
// before migrations the database already has: there it runs last, but on a fresh database it runs
// between them, so two databases of one release can end up with different schemas (or the fresh one
// fails). Prisma's `migrate deploy` has no check for this; Flyway refuses it unless told otherwise
// (`outOfOrder`, default false), and so do we: the server's in-process migrations
// (src/db/migrate.ts) and the Prisma CLI through our engine (src/db/schema-engine/cli-shim.mjs).
import pg from 'pg'
import Type from 'typebox'
import Value from 'typebox/value'
import { pgConnectionSettings } from './schema-engine/pg-adapter-factory.ts'

/** A pending migration that sorts before the newest one the database has applied. */
export class OutOfOrderMigrationError extends Error {
  override name = 'OutOfOrderMigrationError'
  /**
   * @param pending the out-of-order migrations' folder names, in folder order
   * @param newestApplied the newest migration (by folder name) the database has applied
   */
  constructor (readonly pending: string[], readonly newestApplied: string) {
    const first = pending[0]!
    super(
      `Refusing to apply migration ${pending.join(', ')}: it sorts before ${newestApplied}, which this database has already applied, ` +
      'so here it would run after that migration but on a fresh database before it. ' +
      `If it has not been applied anywhere yet, rename its folder to sort last (e.g. ${renamedAfter(first, newestApplied)}); ` +
      'to apply it out of order anyway (e.g. branches merged in another order than they were written), set MIGRATE_OUT_OF_ORDER=true.'
    )
  }
}

/** `name`'s description (what follows its timestamp) under a timestamp one step after `newestApplied`'s. */
function renamedAfter (name: string, newestApplied: string): string {
  const stamp = /^(\d{14})_/.exec(newestApplied)?.[1]
  const description = name.replace(/^\d+_/, '')
  return stamp ? `${(BigInt(stamp) + 1n).toString()}_${description}` : `${newestApplied}_${description}`
}

/**
 * The pending migrations (folder names not applied) that sort before the newest applied one, in
 * folder order. Names compare as the migration loaders sort them (`localeCompare`).
 * @param folders every migration folder name, in any order
 * @param applied the names the database has applied (finished, not rolled back)
 */
export function outOfOrderMigrations (folders: readonly string[], applied: readonly string[]): { pending: string[]; newestApplied?: string } {
  const newestApplied = [...applied].sort((a, b) => a.localeCompare(b)).at(-1)
  if (newestApplied === undefined) return { pending: [] }
  const done = new Set(applied)
  const pending = folders.filter((name) => !done.has(name) && name.localeCompare(newestApplied) < 0).sort((a, b) => a.localeCompare(b))
  return { pending, newestApplied }
}

/**
 * Rejects with OutOfOrderMigrationError when a migration of `folders` that the database at
 * `databaseUrl` has not applied sorts before one it has (read from Prisma's `_prisma_migrations`,
 * in the URL's schema). A database without that table passes.
 * @param databaseUrl a Prisma-style PostgreSQL URL (`schema=` honoured)
 * @param folders the migration folder names about to be applied
 * @throws OutOfOrderMigrationError as above; pg's errors when the database cannot be read
 */
export async function assertMigrationOrder (databaseUrl: string, folders: readonly string[]): Promise<void> {
  const client = new pg.Client({ connectionString: pgConnectionSettings(databaseUrl).connectionString })
  client.on('error', () => {}) // surfaced by the pending query; without a listener it would end the process
  await client.connect()
  try {
    const { rows: [table] } = await client.query<{ found: boolean }>("SELECT to_regclass('_prisma_migrations') IS NOT NULL AS found")
    if (!table?.found) return
    const { rows } = await client.query<{ migration_name: string }>(
      'SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL'
    )
    const { pending, newestApplied } = outOfOrderMigrations(folders, rows.map((row) => row.migration_name))
    if (pending.length > 0) throw new OutOfOrderMigrationError(pending, newestApplied!)
  } finally {
    await client.end()
  }
}

/**
 * Whether MIGRATE_OUT_OF_ORDER allows out-of-order migrations, read as the server's configuration
 * reads a boolean (src/config.ts: TypeBox's conversion, so `true`, `TRUE` and `1` allow; unset,
 * `false` and `0` refuse). For the Prisma CLI's engine (src/db/schema-engine/cli-shim.mjs), which
 * runs without the server's configuration.
 * @param value the variable's text (undefined when unset)
 */
export function outOfOrderAllowed (value: string | undefined): boolean {
  return value !== undefined && Value.Convert(Type.Boolean(), value) === true
}
