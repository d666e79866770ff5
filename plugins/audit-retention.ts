// Audit retention (AUDIT_RETENTION_DAYS, 0 = keep forever, the default): a timer in each server
// runs pruneAuditEvents every AUDIT_PRUNE_INTERVAL_S (and once when the server is ready). Several
// instances may tick at once: one run at a time holds a session advisory lock, and a tick that finds
// it taken skips (logged at debug) until its next tick. A job queue can call the same function later.
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { pruneAuditEvents } from '../src/audit/audit-store.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** Runs retention now; resolves to the number of events removed (0 when retention is off). */
    pruneAuditLog(): Promise<number>
  }
}

export default fp(
  async function auditRetention (app: FastifyInstance) {
    const { AUDIT_RETENTION_DAYS: days, AUDIT_PRUNE_INTERVAL_S: intervalS } = app.config
    const prune = async () => {
      const removed = await pruneAuditEvents(app.database.ownerUrl, days, new Date(), app.config.DB_CONNECT_TIMEOUT_MS, undefined, (tenantId) =>
        app.log.error({ tenantId }, 'audit retention: this tenant\'s oldest events do not verify; kept until an operator looks (GET /v1/audit-events/verify names the first bad one)'))
      if (removed === null) app.log.debug('audit retention: another instance is pruning; skipped')
      else if (removed > 0) app.log.info({ removed, retentionDays: days }, 'audit events pruned')
      return removed ?? 0
    }
    app.decorate('pruneAuditLog', prune)
    if (days <= 0) return
    let timer: NodeJS.Timeout | undefined
    // A failed run (database down) is logged and retried at the next tick; it never crashes the process.
    const tick = () => void prune().catch((error: unknown) => app.log.warn({ err: error }, 'audit retention failed'))
    app.addHook('onReady', async () => {
      tick()
      timer = setInterval(tick, intervalS * 1000)
      timer.unref()
    })
    app.addHook('onClose', async () => clearInterval(timer))
  },
  { name: 'audit-retention', dependencies: ['config', 'database'] }
)
