// The row-level-security layer's half in Node: every query made while a tenant is current
// (see tenancy/tenant-context.ts) runs in a transaction where set_config('app.tenant_id', <tenant>,
// true) — the transaction-local setting the RLS policies read — was run first.
//
// Why not Prisma's $transaction([set_config, query]) per query: 4 round trips plus Prisma's
// transaction machinery, measured at 2.5–6x less throughput. Here BEGIN and set_config travel in
// one simple-protocol message, so a lone scoped query costs 3 round trips (BEGIN+set, query,
// COMMIT) on a connection held only that long. Why not a session-level SET: a pooled connection
// would carry one tenant's setting into the next request.
import pg from 'pg'
import { currentTenantId } from '../tenancy/tenant-context.ts'

// Tenant ids are checked to be UUIDs before they become current (assertTenantId), so inlining one
// as a literal is safe and saves a parameterised round trip.
const setTenant = (tenantId: string) => `SELECT set_config('app.tenant_id', '${tenantId}', true)`
const beginAsTenant = (tenantId: string) => `BEGIN; ${setTenant(tenantId)}`

type Query = (...args: unknown[]) => Promise<pg.QueryResult>

export class TenantAwarePool extends pg.Pool {
  // @prisma/adapter-pg sends every query outside a transaction through pool.query(config).
  override query(...args: any[]): any {
    const tenantId = currentTenantId()
    if (tenantId === undefined) return (super.query as Query)(...args)
    return this.queryAsTenant(tenantId, args[0] as pg.QueryConfig)
  }

  private async queryAsTenant(tenantId: string, config: pg.QueryConfig): Promise<pg.QueryResult> {
    const client = await (pg.Pool.prototype.connect as () => Promise<pg.PoolClient>).call(this)
    let broken = false
    try {
      await client.query(beginAsTenant(tenantId))
      try {
        const result = await client.query(config)
        await client.query('COMMIT')
        return result
      } catch (error) {
        await client.query('ROLLBACK').catch(() => (broken = true))
        throw error
      }
    } catch (error) {
      // No SQLSTATE means the connection itself failed: never hand it to anyone else.
      if ((error as { code?: string }).code === undefined) broken = true
      throw error
    } finally {
      client.release(broken)
    }
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
