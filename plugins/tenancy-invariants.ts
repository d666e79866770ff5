// Checks the database's tenancy rules (src/db/tenancy-invariants.ts) and the API's database role
// (src/db/role-check.ts: RLS must bind it) when the app starts. In production a schema that breaks
// a rule keeps the server from serving: every route but /healthz (the process is alive) answers
// 503, so /readyz keeps it out of the load balancer, and one log line names every violation; an
// unsafe role fails the start (exit 1). Elsewhere both are warnings and the app serves, so a
// developer can fix a migration while running it. A database that cannot be reached yet fails
// neither: both checks run again on the next request until they succeed once (production serves
// nothing before), so a server started during an outage comes up when the database does.
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { enforceSafeDatabaseRole, refusalToStart, UnsafeDatabaseRoleError } from '../src/db/role-check.ts'
import { checkTenancyInvariants, formatViolations, type Violation } from '../src/db/tenancy-invariants.ts'
import { AppError } from '../src/errors.ts'

declare module 'fastify' {
  interface FastifyInstance {
    tenancyInvariants: {
      /**
       * The violations found in the database (cached once the check succeeded; [] when every rule
       * holds). Throws when the database cannot be read (the next call tries again).
       */
      violations(): Promise<Violation[]>
    }
  }
}

export default fp(
  async function tenancyInvariantsPlugin (app: FastifyInstance) {
    let known: Violation[] | undefined
    let running: Promise<Violation[]> | undefined
    const violations = () => {
      if (known) return Promise.resolve(known)
      // Bounded like the request path's own connections: requests wait on this check until it has
      // succeeded once, and a database that drops packets must not hold them for minutes.
      const bounds = { connectTimeoutMs: app.config.DB_CONNECT_TIMEOUT_MS, queryTimeoutMs: app.config.DB_QUERY_TIMEOUT_MS }
      // Fail closed: RLS must bind the role the pool's queries really run as (refused in production).
      // eslint-disable-next-line no-restricted-properties -- ROLE_QUERY, a constant statement (src/db/role-check.ts)
      const roleChecked = () => enforceSafeDatabaseRole(app.config, (sql) => app.platformDb.$queryRawUnsafe(sql), (message) => app.log.warn(message))
      running ??= Promise.all([checkTenancyInvariants(app.database.ownerUrl, bounds), roleChecked()]).then(
        ([found]) => {
          known = found
          if (found.length === 0) return found
          const lines = formatViolations(found).replaceAll('\n', '; ')
          if (app.config.isProduction) app.log.fatal(`tenancy invariants violated, refusing to serve (readiness 503) until the schema is fixed: ${lines}`)
          else app.log.warn(`TENANCY INVARIANTS VIOLATED (a production server would refuse to serve): ${lines}`)
          return found
        },
        (error: unknown) => {
          // An unsafe role stays unsafe until an operator changes it: kept, every request refused.
          if (error instanceof UnsafeDatabaseRoleError) app.log.fatal(error.message)
          else running = undefined
          throw error
        }
      )
      return running
    }
    app.decorate('tenancyInvariants', { violations })

    app.addHook('onReady', async () => {
      // A database that is not reachable yet is readiness' business, not a reason to fail start.
      const checked = violations().catch((err: unknown) => {
        const refused = refusalToStart(err, app.config) // an unsafe role, a wrong login or database: no outage to wait out
        if (refused) throw refused
        app.log.warn({ err }, 'tenancy invariants not checked yet: the database could not be read')
      })
      // Production knows before it listens; elsewhere the warning may follow the start.
      if (app.config.isProduction) await checked
    })

    if (!app.config.isProduction) return
    app.addHook('onRequest', async (request) => {
      if (known?.length === 0 || request.url === '/healthz') return
      const found = await violations().catch((error: unknown) => error instanceof UnsafeDatabaseRoleError ? error : undefined)
      if (Array.isArray(found) && found.length === 0) return
      const why = found instanceof UnsafeDatabaseRoleError ? 'The database role is unsafe' : found ? 'The database schema breaks the tenancy rules' : 'The database is unreachable'
      throw new AppError('SERVICE_UNAVAILABLE', why, { 'retry-after': '5' })
    })
  },
  { name: 'tenancy-invariants', dependencies: ['config', 'database'] }
)
