// A PostgreSQL driver-adapter factory for the WebAssembly schema engine (migrations, diff, push).
// Built on @prisma/adapter-pg 7.10, which is made for Prisma Client and breaks the schema engine:
//  1. `executeScript` splits scripts on every ";": dollar-quoted plpgsql breaks and each statement
//     commits on its own, so a failing migration half-applies. We send the whole script as ONE
//     simple-protocol query: one implicit transaction, like the native engine.
//  2. The engine's catalog queries return the internal `"char"` type (OID 18), which the adapter
//     cannot map ("could not be deserialized"); the engine reads those columns as a Rust `char`
//     (mapping them to text makes it panic), so we report them as ColumnTypeEnum.Character.
//  3. `connectToShadowDb` builds the shadow pool as `{ connectionString, database }`, and pg lets the
//     connection string win: the shadow "replay" runs in the MAIN database. It also drops the shadow
//     database before closing its pool. We address the shadow database by URL and close first.
// Each adapter also holds ONE connection (not a pool): the engine takes a session advisory lock for
// `applyMigrations`, which only protects anything if every statement of the run uses that session,
// and pg.Pool discards a connection (and with it the lock) after any failed query.
import { AsyncLocalStorage } from 'node:async_hooks'
import { randomUUID } from 'node:crypto'
import pg from 'pg'
import { PrismaPg } from '@prisma/adapter-pg'
import {
  ColumnTypeEnum,
  type SqlDriverAdapter,
  type SqlMigrationAwareDriverAdapterFactory,
  type SqlQueryable,
} from '@prisma/driver-adapter-utils'
import { assertDirectConnection } from '../direct-connection.ts'

const CHAR_OID = 18
const TEXT_OID = 25

export interface PgMigrationAdapterFactory extends SqlMigrationAwareDriverAdapterFactory {
  /** Closes every connection this factory opened that the engine did not dispose of itself. */
  close(): Promise<void>
  /**
   * Rejects (PooledMigrationUrlError) when the URL leads to a transaction pooler, where the
   * engine's session advisory lock would be left behind. Checked once; `connect` checks it too.
   */
  assertDirect(): Promise<void>
}

/** What pg and the adapter need from a Prisma-style PostgreSQL URL. */
export interface PgConnectionSettings {
  /** For pg: Prisma's `schema` parameter turned into a search_path startup option. */
  connectionString: string
  /** The Prisma `schema` parameter (the engine's target schema), if any. */
  schema: string | undefined
}

/**
 * Keeps the URL parameters pg understands (`sslmode`, `options`, `application_name`, ...) and turns
 * Prisma's `schema=` into `options=-c search_path=...`, as the native engine sets the search path.
 */
export function pgConnectionSettings (databaseUrl: string): PgConnectionSettings {
  const url = new URL(databaseUrl)
  const schema = url.searchParams.get('schema') ?? undefined
  url.searchParams.delete('schema')
  if (schema) {
    // Backslash-escape spaces/backslashes: the `options` startup parameter is split on whitespace.
    const value = `"${schema.replaceAll('"', '""')}"`.replace(/[\\ ]/g, '\\$&')
    const searchPath = `-c search_path=${value}`
    const options = url.searchParams.get('options')
    url.searchParams.set('options', options ? `${options} ${searchPath}` : searchPath)
  }
  // Prisma URLs follow libpq: `sslmode=require` encrypts without verifying the certificate. pg reads
  // it as verify-full (with a deprecation warning) unless asked for libpq semantics.
  if (url.searchParams.has('sslmode') && !url.searchParams.has('uselibpqcompat')) {
    url.searchParams.set('uselibpqcompat', 'true')
  }
  return { connectionString: url.toString(), schema }
}

/** The same server and parameters, another database. */
function withDatabase (connectionString: string, database: string): string {
  const url = new URL(connectionString)
  url.pathname = `/${encodeURIComponent(database)}`
  return url.toString()
}

type QueryResultLike = { fields?: { dataTypeID: number }[] }

// The adapter maps pg results to column types before we see them, and no pg type maps to Character.
// So pg.query results relabel "char" as text (which the adapter accepts and leaves as a string) and
// note the column positions here, for the surrounding queryRaw call to retype them as Character.
const charColumnsOfCurrentQuery = new AsyncLocalStorage<number[]>()

function relabelCharColumns<T> (result: T): T {
  const charColumns = charColumnsOfCurrentQuery.getStore()
  for (const one of (Array.isArray(result) ? result : [result]) as QueryResultLike[]) {
    one?.fields?.forEach((field, index) => {
      if (field.dataTypeID !== CHAR_OID) return
      field.dataTypeID = TEXT_OID
      charColumns?.push(index)
    })
  }
  return result
}

function withCharacterColumns<Q extends SqlQueryable> (queryable: Q): Q {
  const queryRaw = queryable.queryRaw.bind(queryable)
  queryable.queryRaw = (query) => {
    const charColumns: number[] = []
    return charColumnsOfCurrentQuery.run(charColumns, async () => {
      const resultSet = await queryRaw(query)
      for (const index of charColumns) resultSet.columnTypes[index] = ColumnTypeEnum.Character
      return resultSet
    })
  }
  return queryable
}

/**
 * A pg.Pool (what PrismaPg accepts) that runs everything on one lazily opened connection. "Checked
 * out" clients share it and `release()` is a no-op, so neither errors nor idle timeouts replace it.
 */
function singleConnectionPool (connectionString: string): pg.Pool {
  const pool = new pg.Pool({ connectionString, max: 1 })
  const client = new pg.Client({ connectionString })
  let connectionError: Error | undefined
  client.on('error', (error) => { connectionError = error }) // surfaced by the next query
  let connecting: Promise<void> | undefined
  const ready = async () => {
    await (connecting ??= client.connect().then(() => {}))
    if (connectionError) throw connectionError
  }
  const query = async (config: pg.QueryConfig | string, values?: unknown[]) => {
    await ready()
    return relabelCharColumns(await client.query(config, values))
  }
  const checkedOut = {
    query,
    release () {},
    on: (event: 'error', listener: (error: Error) => void) => { client.on(event, listener); return checkedOut },
    removeListener: (event: 'error', listener: (error: Error) => void) => { client.removeListener(event, listener); return checkedOut },
  }
  return Object.assign(pool, {
    query,
    connect: async () => { await ready(); return checkedOut },
    end: async () => { if (connecting) await connecting.then(() => client.end(), () => {}) },
  }) as unknown as pg.Pool
}

async function withAdminClient<T> (connectionString: string, run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString })
  client.on('error', () => {}) // surfaced by the pending query; without a listener it would end the process
  await client.connect()
  try {
    return await run(client)
  } finally {
    await client.end()
  }
}

const quoteIdent = (name: string) => `"${name.replaceAll('"', '""')}"`

async function dropDatabase (adminConnectionString: string, database: string): Promise<void> {
  await withAdminClient(adminConnectionString, async (client) => {
    // The server may still be tearing down the shadow session we just closed: retry briefly.
    for (let attempt = 0; ; attempt++) {
      try {
        await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(database)}`)
        return
      } catch (error) {
        if ((error as { code?: string }).code !== '55006' || attempt >= 50) throw error
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    }
  })
}

/** Wraps a PrismaPg adapter: whole-script execution, one connection. */
async function connectAdapter (connectionString: string, schema: string | undefined): Promise<SqlDriverAdapter> {
  const pool = singleConnectionPool(connectionString)
  const adapter = await new PrismaPg(pool, { schema, disposeExternalPool: true }).connect()
  // args: [] keeps pg on the simple query protocol, which accepts several statements at once.
  adapter.executeScript = async (script) => { await adapter.executeRaw({ sql: script, args: [], argTypes: [] }) }
  const startTransaction = adapter.startTransaction.bind(adapter)
  adapter.startTransaction = async (isolationLevel) => withCharacterColumns(await startTransaction(isolationLevel))
  return withCharacterColumns(adapter)
}

/**
 * The schema engine's adapter factory for `databaseUrl` (a Prisma-style postgresql:// URL). Shadow
 * databases are created next to the main one (the role needs CREATEDB) and dropped after use.
 */
export function pgMigrationAdapterFactory (databaseUrl: string): PgMigrationAdapterFactory {
  const { connectionString, schema } = pgConnectionSettings(databaseUrl)
  const open = new Set<SqlDriverAdapter>()
  const track = (adapter: SqlDriverAdapter): SqlDriverAdapter => {
    open.add(adapter)
    const dispose = adapter.dispose.bind(adapter)
    adapter.dispose = async () => {
      if (!open.delete(adapter)) return // already disposed
      await dispose()
    }
    return adapter
  }
  let directChecked: Promise<void> | undefined
  const assertDirect = () => (directChecked ??= assertDirectConnection(connectionString))
  return {
    provider: 'postgres',
    adapterName: '@prisma/adapter-pg',
    assertDirect,
    connect: async () => {
      await assertDirect()
      return track(await connectAdapter(connectionString, schema))
    },
    async connectToShadowDb () {
      const database = `prisma_migrate_shadow_db_${randomUUID()}`
      await withAdminClient(connectionString, (client) => client.query(`CREATE DATABASE ${quoteIdent(database)}`))
      const adapter = await connectAdapter(withDatabase(connectionString, database), schema)
      const dispose = adapter.dispose.bind(adapter)
      adapter.dispose = async () => {
        await dispose() // close our session first, or DROP DATABASE fails: "being accessed by other users"
        await dropDatabase(connectionString, database)
      }
      return track(adapter)
    },
    async close () {
      await Promise.all([...open].map((adapter) => adapter.dispose()))
    },
  }
}
