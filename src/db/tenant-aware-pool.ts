// The pool every database query of the API goes through. Two jobs:
//
// 1. Survive the database (ResilientPool). pg-pool removes its idle `error` listener while a client
//    is checked out, so a connection that dies mid-query (PostgreSQL restart, failover,
//    pg_terminate_backend) emitted `error` with no listener and killed the process. Here every client
//    gets a permanent listener when it is created; a connection that failed (socket error, a FATAL
//    SQLSTATE such as 57P01, class 08, a client-side timeout) is destroyed on release, never reused;
//    and every statement is bounded twice: server-side by a transaction-local statement_timeout that
//    rides in the statement's own round trip (no startup parameter: PgBouncer in transaction mode
//    refuses those), and client-side by a timer that destroys the connection (a frozen server
//    answers nothing, so only the client can give up).
//
// 2. Row-level security (TenantAwarePool): every query made while a tenant is current (see
//    tenancy/tenant-context.ts) runs in a transaction where set_config('app.tenant_id', <tenant>,
//    true) — the transaction-local setting the RLS policies read — ran first.
//
// A lone query (the common case: Prisma sends most operations as one statement) costs no extra
// round trip: PreludeQuery pipelines `SELECT set_config(…)` and the statement in one extended-
// protocol exchange ending in a single Sync, which PostgreSQL runs as one implicit transaction.
// The naive alternatives cost far more: Prisma's $transaction([set_config, query]) is 4 round trips
// plus its transaction machinery (2.5–6x less throughput), BEGIN+set/query/COMMIT is 3. A session-
// level SET is never used: a pooled connection would carry one tenant into the next request.
//
// Named prepared statements (option `preparedStatements`, config DB_PREPARED_STATEMENTS): the
// prelude is parsed once per connection under a fixed name, and Prisma's statements are named
// after their SQL (statementName, given to @prisma/adapter-pg), so that each connection parses
// and plans a statement once and then only binds and executes it. A transaction pooler that
// predates prepared-statement support (PgBouncer < 1.21, or max_prepared_statements = 0) hands
// each transaction another server session, where the name is unknown: there they must stay off.
import { createHash } from 'node:crypto'
import pg from 'pg'
import { auditChainLockTenant, currentTenantId } from '../tenancy/tenant-context.ts'

type Query = (...args: unknown[]) => Promise<pg.QueryResult>
type Connection = {
  parse(msg: { text: string; name?: string; types: unknown[] }): void
  bind(msg: { portal?: string; statement?: string; values: unknown[] }): void
  execute(msg: { portal?: string; rows?: number }): void
}

/**
 * Thrown (as the query's error) when a statement outlived the client-side bound (the pool's
 * queryTimeoutMs, or the statement's own `query_timeout`); its connection is destroyed, so a
 * transaction it was in rolls back. Outside a transaction whether the statement committed is unknown.
 */
export class DatabaseTimeoutError extends Error {
  override name = 'DatabaseTimeoutError'
  readonly code = 'DATABASE_TIMEOUT'
  constructor (readonly timeoutMs: number) {
    super(`database query timed out after ${timeoutMs} ms (connection destroyed)`)
  }
}

/**
 * SQLSTATEs after which the session is of no further use: the server has closed (or is closing) it,
 * or it is read-only (25006: opened on a standby or a demoted primary, it stays read-only even once
 * the database takes writes again).
 */
const FATAL_SQLSTATE = /^(08|57P0|25006)/

/**
 * True when `error` means the connection itself is unusable: anything that is not a PostgreSQL
 * error answer (socket errors, "Connection terminated", timeouts), or a FATAL/PANIC answer, or an
 * SQLSTATE of class 08 (connection exception), 57P01–57P03 (admin shutdown, crash, cannot connect)
 * or 25006 (read-only transaction).
 */
export function isBrokenConnectionError (error: unknown): boolean {
  if (error === undefined || error === null) return false
  if (!(error instanceof pg.DatabaseError)) return true
  return error.severity === 'FATAL' || error.severity === 'PANIC' || FATAL_SQLSTATE.test(error.code ?? '')
}

/**
 * True when `error` says the database server is unreachable or gone (as opposed to a busy pool or a
 * bad statement): used for the one log line when the database goes away.
 */
export function isDatabaseGoneError (error: unknown): boolean {
  if (error instanceof DatabaseTimeoutError) return true
  if (error instanceof pg.DatabaseError) return isBrokenConnectionError(error)
  const message = String((error as Error | undefined)?.message ?? '')
  if (/timeout exceeded when trying to connect/i.test(message)) return false // pool busy, or connect timeout (ambiguous)
  return /ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|Connection terminated|connection timeout|timeout expired/i.test(`${(error as { code?: string })?.code ?? ''} ${message}`)
}

/** Whether the database answers, as last seen by this pool, and since when. */
export interface AvailabilityChange {
  available: boolean
  /** What failed (when it became unavailable): a short message, never a URL or a password. */
  reason?: string
  /** How long the previous state lasted (ms). */
  afterMs: number
}

/**
 * Tracks the database's availability from what the pools see (successes, connection failures) so
 * that an outage writes one line when it starts and one when it ends, not one stack per request.
 */
export class DatabaseAvailability {
  private available = true
  private since = Date.now()
  /** Counts outages: a connection opened before the latest one has nothing new to say when it fails. */
  generation = 0
  private readonly listeners = new Set<(change: AvailabilityChange) => void>()

  get isAvailable (): boolean {
    return this.available
  }

  onChange (listener: (change: AvailabilityChange) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /**
   * `generation`: as for failed(). A connection opened before the outage may still finish a query
   * in its first moments (pg_terminate_backend or a shutdown reach connections one by one): only
   * a connection opened since, or any success a second later, says the database is back.
   */
  succeeded (generation = this.generation): void {
    if (!this.available && (generation >= this.generation || Date.now() - this.since >= 1000)) this.change(true)
  }

  /** `generation`: the value of `this.generation` when the failing connection was opened, if one was. */
  failed (error: unknown, generation = this.generation): void {
    // The late errors of connections that died in an outage already reported are not a new outage.
    if (generation < this.generation) return
    if (this.available && isDatabaseGoneError(error)) {
      this.generation++
      this.change(false, String((error as Error)?.message ?? error).slice(0, 200))
    }
  }

  private change (available: boolean, reason?: string) {
    const now = Date.now()
    const afterMs = now - this.since
    this.available = available
    this.since = now
    for (const listener of this.listeners) listener({ available, reason, afterMs })
  }
}

/** Options of ResilientPool, on top of pg's (`connectionTimeoutMillis` is the acquire timeout). */
export interface ResilientPoolOptions extends pg.PoolConfig {
  /** Server-side bound of each statement (ms), set transaction-locally with it; 0 = none. */
  statementTimeoutMs: number
  /** Client-side bound of each statement (ms): on expiry its connection is destroyed; 0 = none. A statement's own `query_timeout` (ms) replaces it. */
  queryTimeoutMs: number
  /** Time to open a new connection (ms), TCP + TLS + authentication; defaults to connectionTimeoutMillis. */
  connectTimeoutMs?: number
  availability?: DatabaseAvailability
  /** Parse the prelude once per connection under a name (see the top of this file); default false. */
  preparedStatements?: boolean
}

interface Prelude {
  statementTimeoutMs: number
  tenantId: string | undefined
  /** The tenant whose audit chain lock the transaction takes first (withAuditChainLock). */
  auditChainOf?: string | undefined
}

interface PreludeSql {
  text: string
  values: string[]
  /** The prepared statement's name on each connection, when prepared statements are on. */
  name?: string
}

/** One name per prelude text (eight at most: with or without each setting and the chain lock). */
const preludeNames = new Map<string, string>()
const preludeName = (text: string) => {
  let name = preludeNames.get(text)
  if (name === undefined) preludeNames.set(text, (name = `app_prelude_${preludeNames.size + 1}`))
  return name
}

const statementNames = new Map<string, string>()
const MAX_STATEMENT_NAMES = 5000

/**
 * The prepared statement name of a statement: `s` + the SHA-1 of its SQL (base64url), so that two
 * texts never share a name (pg refuses a name reused for another text). For
 * @prisma/adapter-pg's `statementNameGenerator`. The names are memoized (a bounded map, emptied
 * when full: recomputing a hash is cheap, an unbounded map is not).
 */
export function statementName (query: { sql: string }): string {
  let name = statementNames.get(query.sql)
  if (name === undefined) {
    if (statementNames.size >= MAX_STATEMENT_NAMES) statementNames.clear()
    name = `s${createHash('sha1').update(query.sql).digest('base64url')}`
    statementNames.set(query.sql, name)
  }
  return name
}

function preludeSql (prelude: Prelude, named: boolean): PreludeSql | undefined {
  const calls: string[] = []
  const values: string[] = []
  let timeout = '' // the statement timeout's parameter ($n), reused by lock_timeout below
  if (prelude.statementTimeoutMs > 0) {
    values.push(`${prelude.statementTimeoutMs}`)
    timeout = `$${values.length}`
    calls.push(`set_config('statement_timeout', ${timeout}, true)`)
  }
  if (prelude.tenantId !== undefined) {
    values.push(prelude.tenantId)
    calls.push(`set_config('app.tenant_id', $${values.length}, true)`)
  }
  if (prelude.auditChainOf !== undefined) {
    // The statement_timeout set above arms only from the next statement (PostgreSQL starts the
    // timer when a statement begins), so the wait for the chain lock is bounded by lock_timeout,
    // read when the wait begins: 55P03 after the same bound, a 503 (plugins/error-handler.ts).
    if (timeout) calls.push(`set_config('lock_timeout', ${timeout}, true)`)
    // After the tenant's setting (a SELECT list is evaluated in order): the function checks it.
    values.push(prelude.auditChainOf)
    calls.push(`app_lock_audit_chain($${values.length}::uuid)`)
  }
  if (!calls.length) return undefined
  const text = `SELECT ${calls.join(', ')}`
  return named ? { text, values, name: preludeName(text) } : { text, values }
}

type StatementCache = { parsedStatements: Record<string, string>; submittedNamedStatements: Record<string, string> }

/**
 * What to send before a statement, decided when pg sends it (see PreludeQuery): `prelude`, or
 * nothing; `sent` runs once the statement went out with it (pg refused nothing before sending).
 */
interface PreludePlan {
  prelude?: Prelude
  sent?: () => void
}

/**
 * How PreludeQuery sends a statement: `plan`, asked when pg sends it, with pg's own copy of the
 * statement's text and name (a throw is pg's refusal of the statement); `namedPrelude`, the prelude
 * as a named prepared statement (the pool's `preparedStatements`); `borrowed`, set for a statement
 * on a borrowed client (scopeTransactions): one statement per text, and `onTag` called with the
 * command tag of each of the statement's own commands (`BEGIN`, `COMMIT`, `SELECT 3`…; not the
 * prelude's), before the ReadyForQuery that lets pg send the next.
 */
interface StatementOptions {
  plan: (statement: pg.QueryConfig) => PreludePlan
  namedPrelude: boolean
  borrowed?: { onTag: (tag: string) => void }
}

/**
 * A pg query that asks `plan` what to send before it at the moment pg sends it, not when it is
 * called: pg sends a client's queries one at a time, each after the previous one's ReadyForQuery
 * has set the transaction status (Client#_pulseQueryQueue; the pool never turns on pg's pipeline
 * mode), so the status read then is the one the statement runs in, whatever was sent before it
 * without awaiting and however late a ReadyForQuery came. With no prelude it is pg's plain query
 * (through pool.query(), the simple protocol for a text without values: several statements in one
 * text work on a pool with no prelude; on a borrowed client, always the extended protocol).
 * With one, the set_config calls (tenant, statement_timeout, audit chain lock) ride in the same
 * extended-protocol exchange, before the one Sync: pg runs them in one implicit transaction (or
 * inside the open one), so set_config(…, true) holds for the statement and ends with its
 * transaction. A named prelude is parsed on the first use per connection, then only bound and
 * executed. Relies on pg's Query hooks (submit, prepare, handleDataRow, handleCommandComplete,
 * handleError) and its per-connection statement cache (parsedStatements):
 * test/tenant-isolation.test.ts and test/prepared-statements.test.ts fail if they change.
 */
class PreludeQuery extends (pg.Query as unknown as new (config: pg.QueryConfig, values?: unknown, callback?: unknown) => Record<string, any>) {
  /** The prelude chosen at submit, if any. */
  private prelude: PreludeSql | undefined
  /** True from sending until the prelude's CommandComplete: the answers so far are the prelude's. */
  private awaitingPrelude = false
  /** True when this query sent the named prelude's Parse: its failure leaves the cache unsure. */
  preludeParsedHere = false
  /** The query's own statement name (pg's `name`), hidden while the prelude answers; see `name`. */
  declare private statementName: string | undefined

  constructor (config: pg.QueryConfig, private readonly options: StatementOptions, callback: (err: Error | null, res: pg.QueryResult) => void) {
    super(config, undefined, callback)
  }

  // pg's client marks `name` as parsed on the first ParseComplete it sees, which would be the
  // prelude's: until the prelude has answered, the query has no name for the client.
  get name (): string | undefined {
    return this.awaitingPrelude ? undefined : this.statementName
  }

  set name (value: string | undefined) {
    this.statementName = value
  }

  submit (connection: Connection & StatementCache) {
    // pg refuses a statement with neither a string text nor a string name, but writes one with a name
    // and another text (or the reverse) until pg-protocol throws halfway through the message, in a
    // writer every connection of the process shares: refused here, before anything is written.
    if ((this.text !== undefined && typeof this.text !== 'string') || (this.statementName !== undefined && typeof this.statementName !== 'string')) {
      return new TypeError('A query\'s text and name must be strings')
    }
    let planned: PreludePlan
    try {
      // pg's own copy of the statement: what it sends, whatever the caller did to its config since.
      planned = this.options.plan({ text: this.text, name: this.statementName })
    } catch (error) {
      // This runs in pg's queue, on a socket's data event for a queued statement: a throw would end
      // the process. Returned, pg refuses the statement to its caller and moves on to the next.
      return error as Error
    }
    const { prelude, sent } = planned
    this.prelude = prelude && preludeSql(prelude, this.options.namedPrelude)
    // On a borrowed client every statement goes in the extended protocol, which refuses a text of
    // several (42601): in one, what followed a COMMIT or a ROLLBACK TO would run with no prelude, or
    // with the tenant setting the savepoint restored.
    if (this.prelude || this.options.borrowed) this.queryMode = 'extended'
    const refused = super.submit(connection) as Error | null
    if (!refused) sent?.()
    return refused
  }

  prepare (connection: Connection & StatementCache) {
    if (this.prelude === undefined) return super.prepare(connection)
    const { text, values, name } = this.prelude
    if (name === undefined || connection.parsedStatements[name] === undefined) {
      connection.parse({ text, name, types: [] })
      if (name !== undefined) {
        connection.parsedStatements[name] = text
        this.preludeParsedHere = true
      }
    }
    connection.bind({ statement: name, values })
    connection.execute({ rows: 0 })
    super.prepare(connection)
    this.awaitingPrelude = true
  }

  // The set_config statement answers one row and a CommandComplete before the real statement's
  // answer: they are not part of the caller's result.
  handleDataRow (message: unknown) {
    if (!this.awaitingPrelude) super.handleDataRow(message)
  }

  handleCommandComplete (message: { text: string }, connection: unknown) {
    if (this.awaitingPrelude) this.awaitingPrelude = false
    else {
      this.options.borrowed?.onTag(message.text)
      super.handleCommandComplete(message, connection)
    }
  }

  /** True when the error came before the prelude finished (the caller then discards the connection if preludeParsedHere). */
  failedInPrelude = false

  handleError (error: Error, connection: StatementCache) {
    if (this.awaitingPrelude) {
      this.failedInPrelude = true
      this.awaitingPrelude = false
      // pg forgets a statement it submitted when its query fails, by name: the name was hidden.
      if (this.statementName !== undefined) delete connection.submittedNamedStatements[this.statementName]
    }
    super.handleError(error, connection)
  }
}

/**
 * A pooled client with its fate: `broken` (never reused), the availability `generation` it was
 * opened in, and `abortedBy`, the SQLSTATE of the first statement that failed since the last
 * successful BEGIN (or START TRANSACTION), the end of the last transaction (a chain opens the next)
 * or a successful ROLLBACK TO SAVEPOINT: what aborted its current transaction. Statements sent
 * as Query objects (a cursor, a stream) are not seen: they bypass `watch` and the prelude's rules
 * below.
 */
type ArmedClient = pg.PoolClient & { broken?: Error; generation?: number; abortedBy?: string }

/** Opens a transaction (BEGIN, or the standard's spelling: Prisma sends BEGIN). */
const TRANSACTION_START = /^(BEGIN|START\s+TRANSACTION)\b/i
/**
 * Command tags (CommandComplete) that begin or end a transaction or roll back to a savepoint
 * (whose tag is ROLLBACK): after one, the transaction's next statement sends the whole prelude.
 */
const TRANSACTION_BOUNDARY_TAG = /^(BEGIN|START TRANSACTION|COMMIT|ROLLBACK|PREPARE TRANSACTION)$/
/** Rolls back to a savepoint, recovering an aborted transaction: `ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] name`. */
const SAVEPOINT_ROLLBACK = /^ROLLBACK(\s+(WORK|TRANSACTION))?\s+TO\b/i
/**
 * Ends the transaction (tested after SAVEPOINT_ROLLBACK): COMMIT or END commit it, ROLLBACK or ABORT
 * undo it, PREPARE TRANSACTION hands it over; with `AND CHAIN` the next one opens at once.
 */
const TRANSACTION_END = /^(COMMIT|END|ROLLBACK|ABORT|PREPARE\s+TRANSACTION)\b/i
/** The ends of TRANSACTION_END that commit: their answer is checked (committedOrThrow). */
const TRANSACTION_COMMIT = /^(COMMIT|END)\b/i
/**
 * Statements of a transaction sent without the prelude: `SET TRANSACTION` must come before any
 * query of the transaction (else 25001), and `RELEASE [SAVEPOINT]` only closes a savepoint.
 */
const SENT_WITHOUT_PRELUDE = /^(SET TRANSACTION|RELEASE)\b/i
/**
 * Whitespace, empty statements (`;`) and comments (`-- …` lines, `/* … *\/` blocks) before a
 * statement's first word, as PostgreSQL skips them (`;COMMIT` is a COMMIT). A nested block comment
 * is not read through: a BEGIN behind one is taken for an ordinary statement, sent with the
 * prelude, which then holds in the transaction it opens (an isolation level given with it fails,
 * 25001; see scopeTransactions).
 */
const LEADING_COMMENTS = /^(?:\s+|;|--[^\n\r]*|\/\*[\s\S]*?\*\/)+/

/**
 * What a statement on a borrowed client is (see scopeTransactions): a ROLLBACK TO, a BEGIN, an end
 * that commits (COMMIT, END) or not (ROLLBACK, ABORT, PREPARE TRANSACTION), one sent without the
 * prelude (SET TRANSACTION, RELEASE), or an ordinary statement.
 */
type StatementKind = 'savepoint-rollback' | 'start' | 'commit' | 'end' | 'without-prelude' | 'ordinary'

/** The kind of the statement `text` (leading comments skipped; the patterns above, in their order). */
function statementKind (text: string): StatementKind {
  const statement = text.replace(LEADING_COMMENTS, '')
  if (SAVEPOINT_ROLLBACK.test(statement)) return 'savepoint-rollback'
  if (TRANSACTION_START.test(statement)) return 'start'
  if (TRANSACTION_END.test(statement)) return TRANSACTION_COMMIT.test(statement) ? 'commit' : 'end'
  if (SENT_WITHOUT_PRELUDE.test(statement)) return 'without-prelude'
  return 'ordinary'
}

/**
 * The text pg runs for `config`, read when pg sends it: its own, or for a named statement run again
 * by its name alone (`{ name, values }`; an empty text is none, as pg reads it) the text pg parsed
 * under that name on this connection. pg sends one statement at a time, so its cache then holds
 * what the name runs (a namesake that failed or was refused is not in it). '' when there is none:
 * pg refuses the statement, or runs an empty one.
 */
function statementText ({ text, name }: pg.QueryConfig, statements: StatementCache): string {
  if (typeof text === 'string' && text !== '') return text
  const parsed: unknown = typeof name === 'string' ? statements.parsedStatements[name] : undefined
  return typeof parsed === 'string' ? parsed : '' // not an Object.prototype member (`constructor`)
}

/**
 * pg's `query(text, values?)` and `query(config, values?)` as one config: `values` given beside a
 * config replace its own, as pg does (pg then refuses values that are not an array; a function there
 * is no values: pg takes it for a callback).
 */
function queryConfig (textOrConfig: unknown, values: unknown): pg.QueryConfig {
  if (typeof textOrConfig === 'string') return { text: textOrConfig, values: values as unknown[] | undefined }
  const config = textOrConfig as pg.QueryConfig
  return values && typeof values !== 'function' ? { ...config, text: config.text, values: values as unknown[] } : config
}

/**
 * Passes COMMIT's answer through when the transaction committed; throws when PostgreSQL answered it
 * with the tag `ROLLBACK`. That is its answer, with no error, to the COMMIT of a transaction that a
 * failed statement aborted, and Prisma reads no tag: a `$transaction` callback that caught a
 * database error and returned would be told that it committed what was rolled back. The error is a
 * pg DatabaseError of SQLSTATE 25P02 (in_failed_sql_transaction), so Prisma reports it as any
 * database error and the transaction rejects; the connection stays usable (the transaction ended).
 * Its message names `abortedBy` (see ArmedClient: the statement that aborted the transaction, e.g.
 * 23505), or `unknown` when that statement was sent in a form the pool does not watch.
 */
function committedOrThrow (result: pg.QueryResult, abortedBy: string | undefined): pg.QueryResult {
  if (result.command !== 'ROLLBACK') return result
  const error = new pg.DatabaseError(`COMMIT rolled back: a statement of the transaction failed earlier (SQLSTATE ${abortedBy ?? 'unknown'}) and its error was caught`, 0, 'error')
  error.severity = 'ERROR'
  error.code = '25P02'
  throw error
}

/** A node-style callback, as pg's callback forms take: `(error)` or `(null, value, …more)`. */
type NodeCallback = (error: Error | null, ...values: unknown[]) => void

/**
 * pg's two call forms over one promise. When `args` ends with a function, it is removed before
 * `run` reads the rest, called as `(error, ...failed)` or `(null, value, ...more(value))` once the
 * promise settles, and undefined is returned; otherwise the promise is. Errors: none of its own (the
 * promise's, to the callback or as the rejection).
 */
function promiseOrCallback<T> (args: unknown[], run: (args: unknown[]) => Promise<T>, more: (value: T) => unknown[] = () => [], failed: unknown[] = []): Promise<T> | undefined {
  const callback = typeof args.at(-1) === 'function' ? (args.pop() as NodeCallback) : undefined
  const promise = run(args)
  if (!callback) return promise
  promise.then((value) => callback(null, value, ...more(value)), (error: Error) => callback(error, ...failed))
  return undefined
}

/** Destroys the socket under `client`: its pending query fails with `error`, and the pool drops it. */
function destroyConnection (client: pg.PoolClient, error: Error) {
  const stream = (client as unknown as { connection?: { stream?: { destroy(e?: Error): void } } }).connection?.stream
  if (stream) stream.destroy(error)
  else void client.end().catch(() => {})
}

/**
 * pg.Pool that never lets a dying connection crash the process or be reused, and bounds every
 * statement (see the top of this file). `query()` and `connect()` keep pg's signatures.
 * Errors: queries reject with pg's errors, or DatabaseTimeoutError after `queryTimeoutMs`; an
 * acquire that waits longer than `connectionTimeoutMillis` rejects with pg-pool's timeout error.
 */
export class ResilientPool extends pg.Pool {
  readonly availability: DatabaseAvailability
  private readonly statementTimeoutMs: number
  private readonly queryTimeoutMs: number
  private readonly preparedStatements: boolean

  constructor (options: ResilientPoolOptions) {
    const { statementTimeoutMs, queryTimeoutMs, connectTimeoutMs, availability, preparedStatements = false, ...poolOptions } = options
    // pg-pool hands its options to each new Client: the Client's own connectionTimeoutMillis bounds
    // opening a connection, the pool's bounds the whole acquire (waiting for a free one included).
    const connectMs = connectTimeoutMs ?? poolOptions.connectionTimeoutMillis
    class BoundedClient extends pg.Client {
      constructor (config: pg.ClientConfig) {
        // pipeline: false: the prelude is chosen when pg sends a statement, which must be after the
        // previous one's ReadyForQuery (see PreludeQuery); pg's pipeline mode sends them at once.
        super({ ...config, connectionTimeoutMillis: connectMs, pipeline: false } as pg.ClientConfig)
      }
    }
    super({ keepAlive: true, ...poolOptions, Client: BoundedClient as unknown as typeof pg.Client })
    this.statementTimeoutMs = statementTimeoutMs
    this.queryTimeoutMs = queryTimeoutMs
    this.preparedStatements = preparedStatements
    this.availability = availability ?? new DatabaseAvailability()
    // A listener for the client's whole life: pg-pool's own is removed while the client is checked
    // out, and an `error` event without a listener would end the process.
    this.on('connect', (client: ArmedClient) => {
      client.generation = this.availability.generation
      client.on('error', (error: Error) => {
        client.broken ??= error
        this.availability.failed(error, client.generation)
      })
    })
    this.on('error', (error) => this.availability.failed(error)) // an idle connection dropped: replaced on demand
  }

  /** The tenant whose setting precedes each statement (none here; see TenantAwarePool). */
  protected tenantOfQuery (): string | undefined {
    return undefined
  }

  // @prisma/adapter-pg sends every query outside a transaction through pool.query(config).
  override query (...args: any[]): any {
    return promiseOrCallback(args, ([textOrConfig, values]) => this.runQuery(queryConfig(textOrConfig, values)))
  }

  private async runQuery (config: pg.QueryConfig): Promise<pg.QueryResult> {
    const client = await this.borrow()
    let failure: unknown
    try {
      const prelude = { statementTimeoutMs: this.statementTimeoutMs, tenantId: this.tenantOfQuery() }
      return await this.bounded(client, config, { plan: () => ({ prelude }), namedPrelude: this.preparedStatements })
    } catch (error) {
      failure = error
      throw error
    } finally {
      client.release(failure as Error | undefined)
    }
  }

  // prisma.$transaction (and any other caller) borrows a connection; Prisma sends BEGIN itself.
  override connect (...args: any[]): any {
    // pg-pool reads its callback from the first argument only; its third is `done`: releases the
    // client, or does nothing when no client came. pg-pool passes that no-op when a connection
    // cannot be made (not on a wait that timed out or an ended pool); here every failure gets it,
    // so code calling done() on every path is safe.
    return promiseOrCallback(args.slice(0, 1), () => this.borrow().then((client) => this.scopeTransactions(client)), (client) => [(e?: Error) => client.release(e)], [undefined, () => {}])
  }

  /** A client from the pool whose release() destroys it when its connection failed. */
  private async borrow (): Promise<ArmedClient> {
    let client: ArmedClient
    try {
      client = (await (super.connect as () => Promise<pg.PoolClient>)()) as ArmedClient
    } catch (error) {
      this.availability.failed(error)
      throw error
    }
    const release = client.release
    client.release = ((error?: Error | boolean) => {
      client.release = release
      const failed = error instanceof Error && isBrokenConnectionError(error) ? error : undefined
      const broken = client.broken ?? failed ?? (error === true ? new Error('discarded') : undefined)
      return (release as (e?: Error) => void).call(client, broken)
    }) as typeof client.release
    return client
  }

  /**
   * Runs `config` on `client` as `options` say (see StatementOptions: the prelude its plan chooses
   * when pg sends it), bounded by the client-side timeout.
   */
  private bounded (client: ArmedClient, config: pg.QueryConfig, options: StatementOptions): Promise<pg.QueryResult> {
    // A statement's own query_timeout (0: unset, as pg reads it) replaces the pool's bound; pg's read
    // timeout is not used: it only rejects the caller, and the statement, still running, could then
    // commit. A call with no config is refused by pg's Query inside `start`, which `watch` observes.
    const timeoutMs = (config as { query_timeout?: number } | undefined)?.query_timeout || this.queryTimeoutMs
    const start = () => new Promise<pg.QueryResult>((resolve, reject) => {
      const statement: PreludeQuery = new PreludeQuery(config, options, (error, result) => {
        if (!error) return resolve(result)
        // The named prelude's Parse was sent and something failed before it answered: whether the
        // statement exists on the server is unknown, so the connection is not reused.
        if (statement.failedInPrelude && statement.preludeParsedHere) client.broken ??= error
        reject(error)
      })
      // A query object: scopeTransactions' client.query passes it through to pg's own.
      void client.query(statement as unknown as pg.Submittable)
    })
    return this.watch(client, timeoutMs, start)
  }

  /**
   * Starts the statement and settles as it does, or destroys the connection after `timeoutMs`
   * (0 = never): see DatabaseTimeoutError. The statement is made here and observed at once, so no
   * failure between the two can leave its rejection unhandled.
   */
  private watch<T>(client: ArmedClient, timeoutMs: number, start: () => Promise<T>): Promise<T> {
    const timer = timeoutMs > 0 ? setTimeout(() => destroyConnection(client, new DatabaseTimeoutError(timeoutMs)), timeoutMs) : undefined
    return start().then(
      (result) => {
        clearTimeout(timer)
        this.availability.succeeded(client.generation)
        return result
      },
      (error: unknown) => {
        clearTimeout(timer)
        if (isBrokenConnectionError(error)) {
          client.broken ??= error as Error
          this.availability.failed(error, client.generation)
        } else {
          this.availability.succeeded(client.generation) // the server answered
        }
        if (error instanceof pg.DatabaseError) client.abortedBy ??= error.code
        // The error was made in pg's parser: its stack leads there, not to the caller (as pg's own
        // promise API does, the stack is taken again here, where the caller's async frames show).
        if (error instanceof Error) Error.captureStackTrace(error)
        throw error
      }
    )
  }

  /**
   * Bounds every statement on a borrowed client, and sends the prelude (statement_timeout, tenant)
   * with the first statement of each transaction. What the pool knows of the transaction is the
   * server's word, not a reading of the text: the status of the ReadyForQuery before the statement
   * (`I` idle, `T` in a transaction, `E` in a failed one; pg's getTransactionStatus), read when pg
   * sends it (PreludeQuery), and the command tags of what ran (TRANSACTION_BOUNDARY_TAG). So
   * statements sent without awaiting the one before, a failed BEGIN or chain, and a transaction
   * begun or ended behind a nested comment are followed.
   * Outside a transaction each statement is one of its own and carries the whole prelude, as on
   * pool.query(). Inside one, the prelude is NOT sent with BEGIN: PostgreSQL refuses `SET
   * TRANSACTION ISOLATION LEVEL` after any query of the transaction (SQLSTATE 25001), so it waits
   * for the first statement that is not a SET TRANSACTION, and rides with it (a SAVEPOINT too);
   * after a ROLLBACK TO, which may have undone it, the next statement sends it again. The text is
   * read only for what the server does not say, when pg sends the statement (statementKind; a
   * statement run by its name alone is the text pg parsed under that name): that a statement is a
   * BEGIN (no prelude with it; it takes the audit chain lock's context and, once it succeeded,
   * clears `abortedBy`), an end (it may chain, with the lock's context;
   * COMMIT's answer is checked) or a ROLLBACK TO (once it succeeded, clears `abortedBy`). Every
   * statement goes in the extended protocol, one per text: a text of several is refused (42601), as
   * what followed a COMMIT or a ROLLBACK TO in it would run with no prelude or with the tenant
   * setting the savepoint restored (the tags still follow a boundary behind a nested comment). In a failed
   * transaction (`E`) nothing goes before a statement. The callback form goes the same way; a Query
   * object (a cursor, a stream) goes to pg as it is.
   */
  private scopeTransactions (client: ArmedClient): pg.PoolClient {
    const query = client.query as unknown as Query
    const release = client.release
    // The open transaction as the pool knows it, updated as pg sends each statement and as the
    // server answers it.
    let preludeSent = false // by the current transaction's first statement
    let tenantOfTransaction: string | undefined
    let auditChainOf: string | undefined
    // The server's word on where a transaction began or ended, from each command's tag, including
    // those a nested comment hides: the next statement of a
    // transaction sends the whole prelude. ROLLBACK TO's tag is ROLLBACK: it may have undone a
    // nested tenant's setting, which is so sent again.
    const borrowed = {
      onTag: (tag: string) => {
        if (TRANSACTION_BOUNDARY_TAG.test(tag)) preludeSent = false
      },
    }
    const namedPrelude = this.preparedStatements
    const statements = (client as unknown as { connection: StatementCache }).connection

    const scoped = (config: pg.QueryConfig): Promise<pg.QueryResult> => {
      // The caller's context, read now: pg sends the statement outside it.
      const tenantId = this.tenantOfQuery()
      const lockOf = auditChainLockTenant()
      const statementTimeoutMs = this.statementTimeoutMs
      // What the statement is, read when pg sends it: a statement run again by its name alone is
      // then what pg has parsed under that name (statementText).
      let kind: StatementKind = 'ordinary'
      const plan = (statement: pg.QueryConfig): PreludePlan => {
        kind = statementKind(statementText(statement, statements))
        if (kind === 'savepoint-rollback' || kind === 'without-prelude') return {}
        // A BEGIN, or an end that may chain: the transaction it opens takes the caller's audit chain lock.
        if (kind !== 'ordinary') {
          auditChainOf = lockOf
          return {}
        }
        const status = client.getTransactionStatus()
        if (status === 'I') {
          auditChainOf = undefined // no chain is coming: what opens a transaction now takes no lock
          return { prelude: { statementTimeoutMs, tenantId } }
        }
        // A failed transaction runs nothing but its end: the statement fails (25P02) as it would
        // with the prelude, and no named prelude is parsed where the server refuses it.
        if (status === 'E') return {}
        if (!preludeSent) {
          return { prelude: { statementTimeoutMs, tenantId, auditChainOf }, sent: () => { preludeSent = true; tenantOfTransaction = tenantId } }
        }
        // The tenant changed inside one transaction (nested runAsTenant): the new one applies from here.
        if (tenantId !== undefined && tenantId !== tenantOfTransaction) {
          return { prelude: { statementTimeoutMs: 0, tenantId }, sent: () => { tenantOfTransaction = tenantId } }
        }
        return {}
      }
      return this.bounded(client, config, { plan, namedPrelude, borrowed }).then((result) => {
        // Only once it succeeded: a BEGIN or a ROLLBACK TO that failed started or recovered nothing.
        if (kind === 'start' || kind === 'savepoint-rollback') client.abortedBy = undefined
        if (kind !== 'commit' && kind !== 'end') return result
        const abortedBy = client.abortedBy
        client.abortedBy = undefined
        return kind === 'commit' ? committedOrThrow(result, abortedBy) : result
      })
    }

    client.query = ((...args: unknown[]) => {
      // A Query object (a cursor, a stream, the pool's own PreludeQuery) goes to pg as it is,
      // bounded only by the connection's fate.
      if (args[0] !== null && typeof args[0] === 'object' && typeof (args[0] as { submit?: unknown }).submit === 'function') {
        return query.apply(client, args)
      }
      return promiseOrCallback(args, ([textOrConfig, values]) => scoped(queryConfig(textOrConfig, values)))
    }) as unknown as typeof client.query
    client.release = ((...args: unknown[]) => {
      client.query = query as unknown as typeof client.query
      client.release = release
      return (release as (...a: unknown[]) => void).apply(client, args)
    }) as typeof client.release
    return client
  }
}

/** The pool of the RLS mode: the current tenant's setting precedes each statement (see above). */
export class TenantAwarePool extends ResilientPool {
  protected override tenantOfQuery (): string | undefined {
    return currentTenantId()
  }
}
