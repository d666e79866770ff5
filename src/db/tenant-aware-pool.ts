// The row-level-security layer's half in Node: every query made while a tenant is current
// (see tenancy/tenant-context.ts) runs in a transaction where set_config('app.tenant_id', <tenant>,
// true) — the transaction-local setting the RLS policies read — ran first.
//
// A lone query (the common case: Prisma sends most operations as one statement) costs no extra
// round trip: TenantQuery pipelines `SELECT set_config($1…)` and the statement in one extended-
// protocol exchange ending in a single Sync, which PostgreSQL runs as one implicit transaction.
// The naive alternatives cost far more: Prisma's $transaction([set_config, query]) is 4 round trips
// plus its transaction machinery (2.5–6x less throughput), BEGIN+set/query/COMMIT is 3. A session-
// level SET is never used: a pooled connection would carry one tenant into the next request.
import pg from 'pg'
import { currentTenantId } from '../tenancy/tenant-context.ts'

// Tenant ids are checked to be UUIDs before they become current (assertTenantId), so inlining one
// as a literal in the transaction path below is safe.
const setTenant = (tenantId: string) => `SELECT set_config('app.tenant_id', '${tenantId}', true)`
const beginAsTenant = (tenantId: string) => `BEGIN; ${setTenant(tenantId)}`

type Query = (...args: unknown[]) => Promise<pg.QueryResult>
type Connection = {
  parse(msg: { text: string; name?: string; types: unknown[] }): void
  bind(msg: { portal?: string; statement?: string; values: unknown[] }): void
  execute(msg: { portal?: string; rows?: number }): void
}

/**
 * A pg query preceded, in the same Sync, by the tenant setting. pg runs every statement of an
 * extended-protocol exchange before the Sync in one implicit transaction, so set_config(…, true)
 * holds for the statement and ends with it. Relies on pg's Query hooks (prepare, handleDataRow,
 * handleCommandComplete): test/tenant-isolation.test.ts fails if they change.
 */
class TenantQuery extends (pg.Query as unknown as new (config: pg.QueryConfig, values?: unknown, callback?: unknown) => Record<string, any>) {
  private settingTenant = true
  constructor(config: pg.QueryConfig, private readonly tenantId: string, callback: (err: Error | null, res: pg.QueryResult) => void) {
    super({ ...config, queryMode: 'extended' } as pg.QueryConfig, undefined, callback)
  }

  prepare(connection: Connection) {
    connection.parse({ text: "SELECT set_config('app.tenant_id', $1, true)", types: [] })
    connection.bind({ values: [this.tenantId] })
    connection.execute({ rows: 0 })
    super.prepare(connection)
  }

  // The set_config statement answers one row and a CommandComplete before the real statement's
  // answer: they are not part of the caller's result.
  handleDataRow(message: unknown) {
    if (!this.settingTenant) super.handleDataRow(message)
  }

  handleCommandComplete(message: unknown, connection: unknown) {
    if (this.settingTenant) this.settingTenant = false
    else super.handleCommandComplete(message, connection)
  }
}

export class TenantAwarePool extends pg.Pool {
  // @prisma/adapter-pg sends every query outside a transaction through pool.query(config).
  override query(...args: any[]): any {
    const tenantId = currentTenantId()
    if (tenantId === undefined) return (super.query as Query)(...args)
    return this.queryAsTenant(tenantId, args[0] as pg.QueryConfig)
  }

  private async queryAsTenant(tenantId: string, config: pg.QueryConfig): Promise<pg.QueryResult> {
    const client = await (pg.Pool.prototype.connect as () => Promise<pg.PoolClient>).call(this)
    return new Promise((resolve, reject) => {
      client.query(new TenantQuery(config, tenantId, (error, result) => {
        // No SQLSTATE means the connection itself failed: never hand it to anyone else.
        client.release(error !== null && (error as { code?: string }).code === undefined)
        if (error) reject(error)
        else resolve(result)
      }) as unknown as pg.QueryConfig)
    })
  }

// prisma.$transaction borrows a connection and sends BEGIN itself. Each statement of the
  // transaction made while a tenant is current runs after that tenant's setting.
  override connect(...args: any[]): any {
    if (args.length > 0) return (super.connect as (...a: unknown[]) => unknown)(...args)
    return (super.connect as () => Promise<pg.PoolClient>)().then(scopeTransactions)
  }
}

function scopeTransactions(client: pg.PoolClient): pg.PoolClient {
  const query = client.query as unknown as Query
  const release = client.release
  let tenantOfTransaction: string | undefined
  const send = (...args: unknown[]) => query.apply(client, args)

  client.query = (async (...args: unknown[]) => {
    const text = typeof args[0] === 'string' ? args[0] : (args[0] as { text?: string } | undefined)?.text
    const tenantId = currentTenantId()
    if (text === 'BEGIN') {
      tenantOfTransaction = tenantId
      return tenantId === undefined ? send(...args) : send(beginAsTenant(tenantId))
    }
    if (tenantId !== undefined && tenantId !== tenantOfTransaction) {
      await send(setTenant(tenantId))
      tenantOfTransaction = tenantId
    }
    return send(...args)
  }) as unknown as typeof client.query
  client.release = ((...args: unknown[]) => {
    client.query = query as unknown as typeof client.query
    client.release = release
    return (release as (...a: unknown[]) => void).apply(client, args)
  }) as typeof client.release
  return client
}
