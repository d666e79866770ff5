// Named prepared statements (DB_PREPARED_STATEMENTS, src/db/tenant-aware-pool.ts): the pipelined
// tenant prelude and the statement are parsed once per connection and keep working after errors;
// `auto` turns them off behind a transaction pooler (PgBouncer < 1.21 loses them between
// transactions: the CI's PgBouncer stage runs this file through PgBouncer 1.18).
import net from 'node:net'
import pg from 'pg'
import t from 'tap'
import { usePreparedStatements } from '../src/db/database.ts'
import { isTransactionPooler } from '../src/db/direct-connection.ts'
import { ResilientPool, TenantAwarePool } from '../src/db/tenant-aware-pool.ts'
import { runAsTenant, withAuditChainLock } from '../src/tenancy/tenant-context.ts'
import { buildApi } from './api-helper.ts'
import { adminUrl, appDatabaseUrl, createTestDatabase, cuttableProxy, freePort } from './helper.ts'

const TENANT_A = '0b1f6c1e-0000-4000-8000-00000000000a'
const TENANT_B = '0b1f6c1e-0000-4000-8000-00000000000b'

/**
 * A client borrowed from a one-connection TenantAwarePool (statement timeout 5 s), released and
 * ended at teardown, and `settings()`: the tenant and statement timeout its next statement runs with.
 */
async function borrowedClient (t: { teardown(fn: () => unknown): void }, ownerUrl: string, preparedStatements: boolean) {
  const pool = new TenantAwarePool({ connectionString: ownerUrl, max: 1, statementTimeoutMs: 5000, queryTimeoutMs: 30_000, preparedStatements })
  t.teardown(() => pool.end())
  const client = await pool.connect()
  t.teardown(() => client.release())
  const settings = async () => (await client.query('SELECT current_setting(\'app.tenant_id\', true) AS tenant, current_setting(\'statement_timeout\') AS timeout')).rows[0]
  return { client, settings }
}

/**
 * For cuttableProxy: delivers each ReadyForQuery that follows an ErrorResponse 200 ms late, in a
 * read of its own, as a network or a pooler may.
 */
function delayReadyAfterError (upstream: net.Socket, client: net.Socket) {
  let buffered = Buffer.alloc(0)
  let previousType = 0
  let written = Promise.resolve()
  upstream.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk])
    let offset = 0
    // Backend messages: a type byte, then a 32-bit length that counts itself.
    while (offset + 5 <= buffered.length && offset + 1 + buffered.readUInt32BE(offset + 1) <= buffered.length) {
      const end = offset + 1 + buffered.readUInt32BE(offset + 1)
      const message = Buffer.from(buffered.subarray(offset, end))
      const late = buffered[offset] === 0x5a && previousType === 0x45 // 'Z' after 'E'
      previousType = buffered[offset]!
      written = written.then(async () => {
        if (late) await new Promise((resolve) => setTimeout(resolve, 200))
        client.write(message)
      })
      offset = end
    }
    buffered = buffered.subarray(offset)
  })
}

t.test('auto: on over a direct connection, off through a transaction pooler; on and off as configured', async (t) => {
  t.equal(await usePreparedStatements({ DB_PREPARED_STATEMENTS: 'auto' }, adminUrl), true, 'PostgreSQL itself: on')
  t.equal(await usePreparedStatements({ DB_PREPARED_STATEMENTS: 'on' }, adminUrl), true)
  t.equal(await usePreparedStatements({ DB_PREPARED_STATEMENTS: 'off' }, adminUrl), false)
  t.equal(await usePreparedStatements({ DB_PREPARED_STATEMENTS: 'auto' }, 'postgresql://nobody@127.0.0.1:1/none'), false, 'a database that cannot be asked: off')
  const appUrl = appDatabaseUrl(await createTestDatabase(t))
  if (appUrl && (await isTransactionPooler(appUrl))) {
    t.equal(await usePreparedStatements({ DB_PREPARED_STATEMENTS: 'auto' }, appUrl), false, 'the suite\'s pooler: off')
  }
})

t.test('a named prelude and statement on one connection: each call runs under its own tenant, errors leave the connection usable', async (t) => {
  const ownerUrl = await createTestDatabase(t)
  const pool = new TenantAwarePool({ connectionString: ownerUrl, max: 1, statementTimeoutMs: 5000, queryTimeoutMs: 30_000, preparedStatements: true })
  t.teardown(() => pool.end())
  const tenantOf = (tenantId: string, name = 'current_tenant') => runAsTenant(tenantId, () =>
    pool.query({ name, text: 'SELECT current_setting(\'app.tenant_id\', true) AS tenant, current_setting(\'statement_timeout\') AS timeout' }))

  for (const tenant of [TENANT_A, TENANT_B, TENANT_A, TENANT_B]) {
    const { rows } = await tenantOf(tenant)
    t.same(rows, [{ tenant, timeout: '5s' }], `the statement ran under ${tenant.slice(-1)} with the statement timeout`)
  }
  // Errors after the prelude: at parse (a statement that does not parse) and at execution.
  await t.rejects(runAsTenant(TENANT_A, () => pool.query({ name: 'broken', text: 'SELEC 1' })), /syntax error/)
  await t.rejects(runAsTenant(TENANT_A, () => pool.query({ name: 'divide', text: 'SELECT 1 / $1::int AS x', values: [0] })), /division by zero/)
  t.same((await runAsTenant(TENANT_B, () => pool.query({ name: 'divide', text: 'SELECT 1 / $1::int AS x', values: [1] }))).rows, [{ x: 1 }], 'the statement that failed at execution runs again')
  t.same((await tenantOf(TENANT_B)).rows[0].tenant, TENANT_B, 'the prelude still runs after the errors')

  // Through a pooler (CI's PgBouncer stage) the connection below may be another session: the
  // statements of the one connection are only checked on PostgreSQL itself.
  if (await isTransactionPooler(ownerUrl)) return
  const { rows } = await pool.query('SELECT name FROM pg_prepared_statements ORDER BY name')
  const names = rows.map((r: { name: string }) => r.name)
  t.ok(names.some((n: string) => n.startsWith('app_prelude_')), `the prelude is a prepared statement of the connection (${names.join(', ')})`)
  t.ok(names.includes('current_tenant') && names.includes('divide'), 'so are the named statements')
  t.notOk(names.includes('broken'), 'the statement that did not parse is not')
})

t.test('a rolled-back savepoint undoes neither the prelude nor the tenant that the next statement runs as', async (t) => {
  const ownerUrl = await createTestDatabase(t)
  for (const preparedStatements of [false, true]) {
    const { client, settings } = await borrowedClient(t, ownerUrl, preparedStatements)
    const seen = await runAsTenant(TENANT_A, async () => {
      await client.query('BEGIN')
      await client.query('SAVEPOINT outer_work') // the transaction's first statement: the prelude rides with it
      await client.query('SELECT 1')
      await client.query('ROLLBACK TO SAVEPOINT outer_work')
      const afterRollback = await settings()
      // A nested runAsTenant sets B after the savepoint; rolling back to it restores A's setting.
      const nested = await runAsTenant(TENANT_B, async () => {
        await client.query('SELECT 1')
        await client.query('ROLLBACK TO SAVEPOINT outer_work')
        return settings()
      })
      await client.query('COMMIT')
      return { afterRollback, nested }
    })
    t.same(seen, {
      afterRollback: { tenant: TENANT_A, timeout: '5s' },
      nested: { tenant: TENANT_B, timeout: '5s' },
    }, `prepared statements ${preparedStatements ? 'on' : 'off'}: the tenant and the statement timeout hold after each ROLLBACK TO`)
  }
})

t.test('a borrowed client outside a transaction: each statement carries the prelude, before BEGIN, after COMMIT or ROLLBACK, and AND CHAIN opens a transaction that has it', async (t) => {
  const ownerUrl = await createTestDatabase(t)
  for (const preparedStatements of [false, true]) {
    const { client, settings } = await borrowedClient(t, ownerUrl, preparedStatements)
    /**
     * Runs a transaction of one statement ended by `end`, then reads the settings twice (the first
     * statement after a transaction wrongly believed open would still carry the prelude).
     */
    const after = async (end: string) => {
      for (const sql of ['BEGIN', 'SELECT 1', end]) await client.query(sql)
      return [await settings(), await settings()]
    }
    const ends = ['COMMIT', 'ROLLBACK', 'END', 'ABORT WORK', 'COMMIT AND NO CHAIN', 'ROLLBACK TRANSACTION AND NO CHAIN', 'COMMIT /* AND CHAIN later */', 'ABORT AND CHAIN', 'END WORK AND CHAIN', 'COMMIT AND CHAIN']
    const seen = await runAsTenant(TENANT_A, async () => {
      const before = [await settings(), await settings()]
      const afterEach: Record<string, unknown> = {}
      for (const end of ends) afterEach[end] = await after(end)
      await client.query('COMMIT') // the chained transaction
      return { before, ...afterEach }
    })
    const scoped = [{ tenant: TENANT_A, timeout: '5s' }, { tenant: TENANT_A, timeout: '5s' }]
    t.same(seen, Object.fromEntries(['before', ...ends].map((key) => [key, scoped])),
      `prepared statements ${preparedStatements ? 'on' : 'off'}: the tenant and the statement timeout hold outside transactions, after each way of ending one, and in a chained one`)
  }
  // With nothing to send first (no tenant, no statement timeout: the readiness probe's pool), a
  // statement outside a transaction is sent as it is.
  const plain = new ResilientPool({ connectionString: ownerUrl, max: 1, statementTimeoutMs: 0, queryTimeoutMs: 30_000 })
  t.teardown(() => plain.end())
  const client = await plain.connect()
  t.teardown(() => client.release())
  t.same((await client.query('SELECT current_setting(\'statement_timeout\') AS timeout')).rows, [{ timeout: '0' }], 'a pool without a prelude answers too')
})

t.test('a borrowed client keeps the tenant and the timeout when a BEGIN or an AND CHAIN fails or a transaction ends in a way only the server sees, sees a BEGIN behind a comment, and takes values beside a config', async (t) => {
  const ownerUrl = await createTestDatabase(t)
  const { client, settings } = await borrowedClient(t, ownerUrl, false)
  const scoped = { tenant: TENANT_A, timeout: '5s' }
  // Twice: the first statement after a transaction wrongly believed open would still carry the prelude.
  const twice = async () => [await settings(), await settings()]
  await runAsTenant(TENANT_A, async () => {
    await t.rejects(client.query('BEGIN ISOLATION LEVEL bogus'), /syntax error/)
    t.same(await twice(), [scoped, scoped], 'a BEGIN that failed opened nothing')
    await t.rejects(client.query('START TRANSACTION ISOLATION LEVEL bogus'), /syntax error/)
    t.same(await Promise.all([settings(), settings()]), [scoped, scoped], 'nor for two statements sent together after it')
    await client.query('CREATE TEMP TABLE deferred (x int UNIQUE DEFERRABLE INITIALLY DEFERRED)')
    for (const sql of ['BEGIN', 'INSERT INTO deferred VALUES (1), (1)']) await client.query(sql)
    await t.rejects(client.query('COMMIT AND CHAIN'), /duplicate key/)
    t.same(await twice(), [scoped, scoped], 'a COMMIT AND CHAIN that failed (a deferred constraint) chained nothing')
    await t.rejects(client.query('ROLLBACK AND CHAIN'), /transaction blocks/)
    t.same(await twice(), [scoped, scoped], 'nor did a ROLLBACK AND CHAIN outside a transaction')
    await client.query('/* a tag */ BEGIN ISOLATION LEVEL SERIALIZABLE')
    t.same((await client.query('SELECT current_setting(\'transaction_isolation\') AS isolation')).rows, [{ isolation: 'serializable' }],
      'a BEGIN behind a comment is a BEGIN: nothing was sent before it')
    await client.query('-- done\nCOMMIT')
    t.same(await settings(), scoped, 'and a COMMIT behind one ends the transaction')
    // Ends the pool cannot read from the text: the server's transaction status says they ended.
    for (const end of ['/* a /* nested */ comment */ COMMIT', '/* a /* nested */ comment */ ROLLBACK']) {
      for (const sql of ['BEGIN', 'SELECT 1', end]) await client.query(sql)
      const outside = await settings()
      await client.query('BEGIN')
      t.same([outside, await settings()], [scoped, scoped], `after ${end}, outside a transaction and in the next one`)
      await client.query('COMMIT')
    }
    for (const sql of ['BEGIN', 'SELECT 1', '/* a /* nested */ comment */ COMMIT', 'BEGIN']) await client.query(sql)
    t.same(await settings(), scoped, 'a BEGIN straight after an end only the server saw opens a transaction that carries the prelude')
    await client.query('COMMIT')
    for (const sql of ['BEGIN', 'SELECT 1', '/* a /* nested */ comment */ COMMIT']) await client.query(sql)
    await runAsTenant(TENANT_B, () => client.query('/* a /* nested */ comment */ BEGIN'))
    t.same(await settings(), scoped, 'there, a BEGIN behind a nested comment sent as another tenant: the next statement runs as its own tenant')
    await client.query('COMMIT')
    await client.query({ name: 'reused', text: 'SELECT 1' })
    await client.query('BEGIN')
    await t.rejects(client.query({ name: 'reused', text: 'SELECT 2' }), /Prepared statements must be unique/)
    t.same(await settings(), scoped, 'a first statement that pg refused to send sent no prelude: the next one carries it')
    await client.query('COMMIT')
    t.same((await client.query({ text: 'SELECT $1::int AS v' }, [5])).rows, [{ v: 5 }], 'values beside a config, on a borrowed client')
  })
  const pool = new ResilientPool({ connectionString: ownerUrl, max: 1, statementTimeoutMs: 5000, queryTimeoutMs: 30_000 })
  t.teardown(() => pool.end())
  t.same((await pool.query({ text: 'SELECT $1::int AS v' }, [6])).rows, [{ v: 6 }], 'and on pool.query()')
})

t.test('a borrowed client follows the server\'s command tags: transactions begun or ended where the text hides them, a ROLLBACK TO that undid a nested tenant, a BEGIN after a failed COMMIT; an idle statement drops the chain lock\'s context', async (t) => {
  const ownerUrl = await createTestDatabase(t)
  const { client, settings } = await borrowedClient(t, ownerUrl, false)
  const scoped = { tenant: TENANT_A, timeout: '5s' }
  await runAsTenant(TENANT_A, async () => {
    for (const hidden of ['/* a /* nested */ comment */ COMMIT AND CHAIN', '/* a /* nested */ comment */ ROLLBACK AND CHAIN', '/* a /* nested */ comment */ END AND CHAIN']) {
      for (const sql of ['BEGIN', 'SELECT 1', hidden]) await client.query(sql)
      t.same([client.getTransactionStatus(), await settings()], ['T', scoped], `after ${hidden}, the next transaction's first statement carries the prelude`)
      await client.query('COMMIT')
    }
    for (const rollbackTo of ['/* a /* nested */ comment */ ROLLBACK TO SAVEPOINT s', '/* a /* nested */ comment */ ROLLBACK WORK TO s']) {
      for (const sql of ['BEGIN', 'SELECT 1', 'SAVEPOINT s']) await client.query(sql)
      await runAsTenant(TENANT_B, async () => {
        await client.query('SELECT 1') // the nested tenant's setting, after the savepoint
        await client.query(rollbackTo)
        t.equal((await settings()).tenant, TENANT_B, `after ${rollbackTo}, a statement of the nested tenant runs as it, not as the outer one`)
      })
      await client.query('COMMIT')
    }
    await client.query('CREATE TEMP TABLE deferred (x int UNIQUE DEFERRABLE INITIALLY DEFERRED)')
    for (const sql of ['BEGIN', 'INSERT INTO deferred VALUES (1), (1)']) await client.query(sql)
    await t.rejects(client.query('COMMIT'), /duplicate key/)
    await client.query('BEGIN')
    t.same(await settings(), scoped, 'a BEGIN straight after a COMMIT that failed opens a transaction that carries the prelude')
    await client.query('COMMIT')
    // The callback form goes the same way.
    for (const sql of ['BEGIN', 'SELECT 1', 'SAVEPOINT s']) await client.query(sql)
    await runAsTenant(TENANT_B, async () => {
      await client.query('SELECT 1')
      await new Promise<void>((resolve, reject) => client.query('ROLLBACK TO SAVEPOINT s', (error: Error | null) => error ? reject(error) : resolve()))
      t.equal((await settings()).tenant, TENANT_B, 'after a ROLLBACK TO sent with a callback, a statement of the nested tenant runs as it')
    })
    const viaCallback = await new Promise((resolve, reject) => client.query('SELECT current_setting(\'app.tenant_id\', true) AS tenant', (error: Error | null, result?: { rows: unknown[] }) => error ? reject(error) : resolve(result!.rows[0])))
    t.same(viaCallback, { tenant: TENANT_A }, 'and a statement sent with a callback carries its tenant')
    await client.query('COMMIT')
    // One statement per text: in a text of several, what followed a COMMIT or a ROLLBACK TO would run
    // with no prelude, or with the tenant setting the savepoint restored (reviews 80, 81).
    for (const sql of ['COMMIT; SELECT 1', 'BEGIN; SELECT 1']) {
      await t.rejects(client.query(sql), /cannot insert multiple commands/, `${sql}: refused`)
      t.equal(client.getTransactionStatus(), 'I', `${sql}: nothing of it ran`)
    }
    for (const sql of ['SELECT 1; COMMIT; SELECT 2', 'SELECT 1; ROLLBACK TO SAVEPOINT s; SELECT 2']) {
      for (const first of ['BEGIN', 'SELECT 1', 'SAVEPOINT s']) await client.query(first)
      await t.rejects(client.query(sql), /cannot insert multiple commands/, `${sql}, in a transaction whose prelude was sent: refused`)
      t.equal(client.getTransactionStatus(), 'E', `${sql}: nothing of it ran (the refusal aborts the transaction, as any error does)`)
      await client.query('ROLLBACK')
    }
    await client.query('BEGIN')
    await client.query('COMMIT')
  })
  // The lock context of a COMMIT made under withAuditChainLock is not a chain's once a statement ran outside a transaction.
  await withAuditChainLock(TENANT_A, () => runAsTenant(TENANT_A, async () => {
    for (const sql of ['BEGIN', 'SELECT 1', 'COMMIT']) await client.query(sql)
  }))
  const lock = await runAsTenant(TENANT_B, async () => {
    await client.query('/* a /* nested */ comment */ BEGIN')
    const { rows } = await client.query('SELECT current_setting(\'lock_timeout\') AS lock')
    await client.query('COMMIT')
    return rows[0]
  })
  t.same(lock, { lock: '0' }, 'a transaction begun behind a nested comment as another tenant takes no chain lock (the last COMMIT\'s was for tenant A)')
  // In a failed transaction nothing is sent before a statement: a named prelude first used there
  // would be refused by the server and believed parsed by pg (later: 26000, prepared statement does not exist).
  const named = await borrowedClient(t, ownerUrl, true)
  const nested = await runAsTenant(TENANT_A, async () => {
    for (const sql of ['BEGIN', 'SELECT 1']) await named.client.query(sql)
    await t.rejects(named.client.query('SELECT 1 / 0'), /division by zero/)
    await runAsTenant(TENANT_B, () => t.rejects(named.settings(), /current transaction is aborted/))
    for (const sql of ['ROLLBACK', 'BEGIN', 'SELECT 1']) await named.client.query(sql)
    const settings = await runAsTenant(TENANT_B, () => named.settings())
    await named.client.query('COMMIT')
    return settings
  })
  t.same(nested, { tenant: TENANT_B, timeout: '5s' }, 'prepared statements on: after a failed transaction, a nested tenant\'s setting is parsed and sent')
})

t.test('a borrowed client takes pg\'s statement without text: a named statement run again by its name alone keeps the tenant and is what pg parsed under that name (a BEGIN, a SET TRANSACTION, a COMMIT); no text and no name is pg\'s own rejection', async (t) => {
  const ownerUrl = await createTestDatabase(t)
  for (const preparedStatements of [false, true]) {
    const { client } = await borrowedClient(t, ownerUrl, preparedStatements)
    const mode = preparedStatements ? 'prepared statements on' : 'off'
    const tenants = await runAsTenant(TENANT_A, async () => {
      const first = await client.query({ name: 'tenant_and_n', text: 'SELECT current_setting(\'app.tenant_id\', true) AS tenant, $1::int AS n', values: [1] })
      const again = await client.query({ name: 'tenant_and_n', values: [2] } as never)
      await client.query('BEGIN')
      const inTransaction = await runAsTenant(TENANT_B, () => client.query({ name: 'tenant_and_n', values: [3] } as never))
      await client.query('COMMIT')
      return [...first.rows, ...again.rows, ...inTransaction.rows]
    })
    t.same(tenants, [{ tenant: TENANT_A, n: 1 }, { tenant: TENANT_A, n: 2 }, { tenant: TENANT_B, n: 3 }], `${mode}: by its name alone, under the current tenant, in a transaction too`)
    let sent: Promise<unknown> | undefined
    t.doesNotThrow(() => { sent = client.query({ values: [1] } as never) }, `${mode}: a config with no text and no name does not throw where it is called`)
    await t.rejects(sent!, /A query must have either text or a name/, `${mode}: it rejects with pg's own error`)
    t.same((await client.query('SELECT 1 AS one')).rows, [{ one: 1 }], `${mode}: and the client serves the next statement`)
    let numbered: Promise<unknown> | undefined
    t.doesNotThrow(() => { numbered = client.query({ text: 5 } as never) }, `${mode}: nor does a text that is not a string`)
    await t.rejects(numbered!, /text and name must be strings/, `${mode}: which is refused`)
    await t.rejects(client.query({ text: 'SELECT $1::int' } as never, { 0: 1 } as never), /Query values must be an array/, `${mode}: values beside a config that are not an array are pg's refusal too`)
    // What a statement run by its name alone is (a BEGIN, a SET TRANSACTION, a COMMIT) is its name's text.
    const named = { begin: 'BEGIN', isolation: 'SET TRANSACTION ISOLATION LEVEL SERIALIZABLE', commit: 'COMMIT' }
    for (const [name, text] of Object.entries(named)) await client.query({ name: `${name}_${mode}`, text })
    const byName = (name: keyof typeof named) => client.query({ name: `${name}_${mode}` } as never)
    const lockOf = () => client.query('SELECT current_setting(\'lock_timeout\') AS lock, current_setting(\'transaction_isolation\') AS isolation')
    const inside = await withAuditChainLock(TENANT_A, () => runAsTenant(TENANT_A, async () => {
      await byName('begin')
      await byName('isolation')
      const { rows } = await lockOf()
      await client.query('SELECT 1 / 0').catch(() => {})
      const committed = await byName('commit').then(() => 'committed', (error: Error) => error.message)
      return { ...rows[0], committed }
    }))
    t.match(inside, { lock: '5s', isolation: 'serializable', committed: /SQLSTATE 22012/ },
      `${mode}: a BEGIN by its name takes the chain lock, a SET TRANSACTION by its name is not refused (25001), a COMMIT by its name of an aborted transaction is refused`)
    // Sent together, behind a statement still running: the name alone is read when pg sends it, once its namesake is parsed.
    const together = await withAuditChainLock(TENANT_A, () => runAsTenant(TENANT_A, () => Promise.all([
      client.query('SELECT pg_sleep(0.05)'), client.query({ name: `queued_begin_${mode}`, text: 'BEGIN' }), client.query('ROLLBACK'),
      client.query({ name: `queued_begin_${mode}` } as never), lockOf(), client.query('ROLLBACK'),
    ])))
    t.equal((together[4] as { rows: Array<{ lock: string }> }).rows[0]?.lock, '5s', `${mode}: a BEGIN by its name sent right behind its namesake takes the chain lock`)
    // The name runs what pg parsed under it: not a text pg refused for it, nor one whose Parse failed (review 85).
    await client.query({ name: `commit_once_${mode}`, text: 'COMMIT' })
    await t.rejects(client.query({ name: `commit_once_${mode}`, text: 'SELECT 1' }), /Prepared statements must be unique/, `${mode}: pg refuses another text for a parsed name`)
    for (const byItsName of [{ name: `commit_once_${mode}` }, { name: `commit_once_${mode}`, text: '' }]) {
      await client.query('BEGIN')
      await client.query('SELECT 1 / 0').catch(() => {})
      await t.rejects(client.query(byItsName as never), /SQLSTATE 22012/, `${mode}: ${JSON.stringify(byItsName)} is still its COMMIT: an aborted transaction is refused`)
    }
    const reparsed = await runAsTenant(TENANT_A, async () => {
      await t.rejects(client.query({ name: `reparsed_${mode}`, text: 'BEGIN ISOLATION LEVEL SERIALIZABL' }), /syntax error/)
      await client.query({ name: `reparsed_${mode}`, text: 'SELECT current_setting(\'app.tenant_id\', true) AS tenant, current_setting(\'statement_timeout\') AS timeout' })
      return (await client.query({ name: `reparsed_${mode}` } as never)).rows
    })
    t.same(reparsed, [{ tenant: TENANT_A, timeout: '5s' }], `${mode}: a name whose first Parse failed runs its second text, with the tenant and the timeout`)
    let inherited: Promise<unknown> | undefined
    t.doesNotThrow(() => { inherited = client.query({ name: 'constructor', values: [] } as never) }, `${mode}: a name that is an Object.prototype member does not throw where it is called`)
    await t.rejects(inherited!, /does not exist/, `${mode}: the server answers it: no such statement`)
    const withFunctionValues = await new Promise<unknown>((resolve) => (client.query as (...args: unknown[]) => unknown)({ text: 'SELECT 1 AS one' }, () => {}, (error: Error | null, result?: { rows: unknown[] }) => resolve(error ?? result?.rows)))
    t.same(withFunctionValues, [{ one: 1 }], `${mode}: a function where values go is no values, as pg reads it`)
    // What a statement is, is read from what pg sends: not from the caller's config, changed after the call (review 86).
    const changedAfterCall = await runAsTenant(TENANT_A, async () => {
      const config = { text: 'BEGIN' }
      const sent = [client.query('SELECT pg_sleep(0.05)'), client.query(config)]
      config.text = 'SELECT 2'
      await Promise.all(sent)
      await client.query('SET TRANSACTION ISOLATION LEVEL SERIALIZABLE').finally(() => client.query('ROLLBACK'))
      return 'the BEGIN pg sent was read as one'
    }).catch((error: Error) => error.message)
    t.equal(changedAfterCall, 'the BEGIN pg sent was read as one', `${mode}: a config changed after the call is read as pg sent it`)
    // A text and a name pg would start to write and fail halfway through are refused before anything
    // is written, queued or not; the client, and a new connection, go on (review 87).
    for (const mistyped of [{ name: `mistyped_${mode}`, text: 5 }, { name: 5, text: 'SELECT 1' }]) {
      const [, refused] = await Promise.allSettled([client.query('SELECT pg_sleep(0.05)'), client.query(mistyped as never)])
      t.match(refused, { status: 'rejected', reason: { message: /text and name must be strings/ } }, `${mode}: ${JSON.stringify(mistyped)} is refused`)
      t.same((await client.query('SELECT 1 AS one')).rows, [{ one: 1 }], `${mode}: and the client serves the next statement`)
    }
    const another = new pg.Client({ connectionString: ownerUrl })
    await another.connect()
    t.same((await another.query('SELECT 1 AS one')).rows, [{ one: 1 }], `${mode}: a new connection of the process starts and is served`)
    await another.end()
    // An empty statement before a COMMIT is skipped, as PostgreSQL does: the COMMIT's answer is checked (review 87).
    await client.query('BEGIN')
    await client.query('SELECT 1 / 0').catch(() => {})
    await t.rejects(client.query(';COMMIT'), /SQLSTATE 22012/, `${mode}: ;COMMIT of an aborted transaction is refused`)
    // A text the pool cannot read (megabytes of leading comments: the pattern's backtracking runs out
    // of stack) is refused to its caller, queued or not, and the client goes on (review 86).
    const unreadable = '-- c\n'.repeat(10_000_000) + 'SELECT 1'
    const [, queued] = await Promise.allSettled([client.query('SELECT pg_sleep(0.05)'), client.query(unreadable)])
    t.match(queued, { status: 'rejected', reason: RangeError }, `${mode}: sent behind a running statement, it is refused (the process goes on)`)
    await t.rejects(client.query(unreadable), RangeError, `${mode}: sent alone, it is refused`)
    t.same((await client.query('SELECT 1 AS one')).rows, [{ one: 1 }], `${mode}: and the client serves the next statement`)
  }
})

t.test('a failed statement\'s error leads to its caller; a per-statement query_timeout holds; pg\'s pipeline mode is off', async (t) => {
  const ownerUrl = await createTestDatabase(t)
  const { client } = await borrowedClient(t, ownerUrl, false)
  const error = await runAsTenant(TENANT_A, async function callerOfTheFailedStatement () {
    for (const sql of ['BEGIN', 'SELECT 1']) await client.query(sql)
    const failed = await client.query('SELECT 1 / 0').catch((error: Error) => error)
    await client.query('ROLLBACK')
    return failed as Error
  })
  t.match(error.stack, /callerOfTheFailedStatement/, 'the stack of an error inside a transaction names the function that sent the statement')
  // A statement's own query_timeout bounds it as the pool's does: the connection is destroyed, so
  // the transaction it was in cannot commit what the caller was told failed.
  await client.query('CREATE TABLE timed_out (x int)')
  await runAsTenant(TENANT_A, async () => {
    await client.query('BEGIN')
    await t.rejects(client.query({ text: 'INSERT INTO timed_out SELECT 1 FROM pg_sleep(0.5)', query_timeout: 100 } as { text: string }),
      /timed out after 100 ms \(connection destroyed\)/, 'query_timeout on a statement bounds it')
    await t.rejects(client.query('COMMIT'), 'the COMMIT behind it is not sent')
  })
  const owner = new ResilientPool({ connectionString: ownerUrl, max: 1, statementTimeoutMs: 5000, queryTimeoutMs: 30_000 })
  t.teardown(() => owner.end())
  await new Promise((resolve) => setTimeout(resolve, 1000)) // the sleep ends, its transaction rolls back
  t.same((await owner.query('SELECT count(*)::int AS n FROM timed_out')).rows, [{ n: 0 }], 'and nothing was written')
  const pipelined = new TenantAwarePool({ connectionString: ownerUrl, max: 1, statementTimeoutMs: 5000, queryTimeoutMs: 30_000, pipeline: true } as ConstructorParameters<typeof TenantAwarePool>[0])
  t.teardown(() => pipelined.end())
  const other = await pipelined.connect()
  t.teardown(() => other.release())
  const rows = await runAsTenant(TENANT_A, async () => {
    for (const sql of ['BEGIN', 'SELECT 1']) await other.query(sql)
    const sql = 'SELECT current_setting(\'app.tenant_id\', true) AS tenant, current_setting(\'statement_timeout\') AS timeout'
    const [, first, second] = await Promise.all([other.query('COMMIT'), other.query(sql), other.query(sql)])
    return [first.rows[0], second.rows[0]]
  })
  t.same(rows, [{ tenant: TENANT_A, timeout: '5s' }, { tenant: TENANT_A, timeout: '5s' }], 'a pool given pipeline: true still sends each statement after the one before: both keep the tenant')
})

t.test('statements sent without awaiting a COMMIT or a BEGIN are judged by what it will bring: after a COMMIT each keeps the tenant and the timeout, after a BEGIN the first takes the audit chain lock', async (t) => {
  const ownerUrl = await createTestDatabase(t)
  for (const preparedStatements of [false, true]) {
    const { client, settings } = await borrowedClient(t, ownerUrl, preparedStatements)
    const mode = `prepared statements ${preparedStatements ? 'on' : 'off'}`
    const afterCommit = await runAsTenant(TENANT_A, async () => {
      for (const sql of ['BEGIN', 'SELECT 1']) await client.query(sql)
      const [, ...rows] = await Promise.all([client.query('COMMIT'), settings(), settings(), settings()])
      return rows
    })
    const scoped = { tenant: TENANT_A, timeout: '5s' }
    t.same(afterCommit, [scoped, scoped, scoped], `${mode}: three statements sent behind a COMMIT, none awaited`)
    // The chain lock's prelude sets lock_timeout (to the statement timeout) before it waits.
    const afterBegin = await withAuditChainLock(TENANT_A, () => runAsTenant(TENANT_A, async () => {
      const [, first] = await Promise.all([client.query('BEGIN'), client.query('SELECT current_setting(\'lock_timeout\') AS lock')])
      await client.query('COMMIT')
      return first.rows[0]
    }))
    t.same(afterBegin, { lock: '5s' }, `${mode}: the statement sent behind a BEGIN, not awaited, is its transaction's first`)
    const inChain = await withAuditChainLock(TENANT_A, () => runAsTenant(TENANT_A, async () => {
      for (const sql of ['BEGIN', 'SELECT 1']) await client.query(sql)
      await Promise.all([client.query('COMMIT AND CHAIN'), settings()])
      const { rows } = await client.query('SELECT current_setting(\'lock_timeout\') AS lock')
      await client.query('COMMIT')
      return rows[0]
    }))
    t.same(inChain, { lock: '5s' }, `${mode}: a chain sent with a statement behind it still takes the chain lock`)
  }
})

t.test('after a COMMIT or a BEGIN that failed, whose ReadyForQuery comes in a later read, the statements behind it keep the tenant and the timeout, and the next borrower\'s transaction takes the audit chain lock', async (t) => {
  const ownerUrl = await createTestDatabase(t)
  const pool = new TenantAwarePool({ connectionString: (await cuttableProxy(t, new URL(ownerUrl), delayReadyAfterError)).url, max: 1, statementTimeoutMs: 5000, queryTimeoutMs: 30_000 })
  t.teardown(() => pool.end())
  const settings = (client: { query(sql: string): Promise<{ rows: unknown[] }> }) => client.query('SELECT current_setting(\'app.tenant_id\', true) AS tenant, current_setting(\'statement_timeout\') AS timeout, current_setting(\'lock_timeout\') AS lock').then(({ rows }) => rows[0])
  const failedCommit = async (client: { query(sql: string): Promise<unknown>, getTransactionStatus(): string | null }) => {
    for (const sql of ['BEGIN', 'INSERT INTO deferred VALUES (1), (1)']) await client.query(sql)
    return client.query('COMMIT').then(() => 'committed', () => client.getTransactionStatus())
  }
  const scoped = { tenant: TENANT_A, timeout: '5s', lock: '0' }
  await runAsTenant(TENANT_A, async () => {
    const client = await pool.connect()
    await client.query('CREATE TEMP TABLE deferred (x int UNIQUE DEFERRABLE INITIALLY DEFERRED)')
    t.equal(await failedCommit(client), 'T', 'the COMMIT\'s error came before its ReadyForQuery: the status still read T')
    t.same(await Promise.all([settings(client), settings(client), settings(client)]), [scoped, scoped, scoped], 'three statements sent behind it together')
    await t.rejects(client.query('START TRANSACTION ISOLATION LEVEL bogus'), /syntax error/)
    t.same(await Promise.all([settings(client), settings(client)]), [scoped, scoped],
      'two statements sent together after a BEGIN that failed (stop 52\'s CI, through PgBouncer, ran the second with no tenant)')
    t.equal(await failedCommit(client), 'T')
    client.release()
  })
  // Prisma releases at once after a failed COMMIT: the next transaction begins on the stale status.
  const next = await withAuditChainLock(TENANT_A, () => runAsTenant(TENANT_A, async () => {
    const client = await pool.connect()
    try {
      t.equal(client.getTransactionStatus(), 'T', 'the next borrower begins while the status still reads T')
      await client.query('BEGIN')
      const first = await settings(client)
      await client.query('SELECT 1 / 0').catch(() => {})
      return { first, commit: await client.query('COMMIT').then(() => 'committed', (error: Error) => error.message) }
    } finally {
      client.release()
    }
  }))
  t.same(next.first, { ...scoped, lock: '5s' }, 'the next borrower\'s first statement takes the chain lock')
  t.match(next.commit, /\(SQLSTATE 22012\)/, 'and its COMMIT names its own error, not the one before it')
})

t.test('a COMMIT answered ROLLBACK names the error that aborted the transaction, on a raw client of the pool too', async (t) => {
  const pool = new ResilientPool({ connectionString: await createTestDatabase(t), max: 1, statementTimeoutMs: 5_000, queryTimeoutMs: 30_000 })
  t.teardown(() => pool.end())
  const client = await pool.connect()
  t.teardown(() => client.release())
  /** Sends `statements`, each error caught, then `commit`: its error's message. */
  const commitAfter = async (statements: string[], commit = 'COMMIT') => {
    for (const sql of statements) await client.query(sql).catch(() => {})
    return client.query(commit).then(() => 'committed', (error: Error) => error.message)
  }
  t.match(await commitAfter(["SELECT 'y'::int", 'START TRANSACTION', 'SELECT 1 / 0', 'SELECT 1']), /\(SQLSTATE 22012\)/,
    'the first failure of the transaction: not one before it began, nor the 25P02 of a statement after it')
  t.match(await commitAfter(['BEGIN', 'SAVEPOINT s', 'SELECT 1 / 0', 'ROLLBACK TO SAVEPOINT missing']), /\(SQLSTATE 22012\)/,
    'a ROLLBACK TO that failed recovered nothing')
  t.match(await commitAfter(['BEGIN', 'SAVEPOINT s', 'SELECT 1 / 0', 'ROLLBACK WORK TO SAVEPOINT s', "SELECT 'x'::int"]), /\(SQLSTATE 22P02\)/,
    'a ROLLBACK WORK TO that succeeded did: the error after it is named')
  t.match(await commitAfter(['BEGIN', 'SELECT 1 / 0', 'BEGIN']), /\(SQLSTATE 22012\)/, 'a BEGIN that failed (25P02) started nothing')
  t.match(await commitAfter(['BEGIN READ ONLY', 'CREATE TABLE read_only_write (x int)']), /\(SQLSTATE 25006\)/,
    'an error that also ends the connection\'s use (read-only) is named too')
  t.match(await commitAfter(['BEGIN', 'SELECT 1 / 0', 'ROLLBACK AND CHAIN', "SELECT 'x'::int"]), /\(SQLSTATE 22P02\)/,
    'ROLLBACK AND CHAIN opened a fresh transaction: the error after it is named')
  t.match(await commitAfter(['BEGIN', 'SELECT 1 / 0'], 'END'), /\(SQLSTATE 22012\)/, 'END is a COMMIT')
  t.match(await commitAfter(['BEGIN', 'SELECT 1 / 0'], 'COMMIT AND CHAIN'), /\(SQLSTATE 22012\)/,
    'so is COMMIT AND CHAIN (PostgreSQL rolls back, and chains: the COMMIT below ends that transaction)')
  t.equal(await commitAfter(['BEGIN', 'SELECT 1']), 'committed', 'the connection is usable after each')
})

t.test('the pool\'s callback forms: query(text, values, callback) runs under the current tenant and hands errors to the callback; connect(callback)\'s done releases the client, and is safe when no client came', async (t) => {
  const pool = new TenantAwarePool({ connectionString: await createTestDatabase(t), max: 1, connectionTimeoutMillis: 2_000, statementTimeoutMs: 5_000, queryTimeoutMs: 30_000 })
  t.teardown(() => pool.end())
  const viaCallback = (text: string, values: unknown[]) => new Promise<{ error: Error | null; rows?: unknown[] }>((resolve) => {
    t.equal(pool.query(text, values, (error: Error | null, result?: { rows: unknown[] }) => resolve({ error, rows: result?.rows })), undefined, 'the callback form returns nothing, as pg\'s')
  })
  const answered = await runAsTenant(TENANT_A, () => viaCallback('SELECT current_setting(\'app.tenant_id\', true) AS tenant, $1::int AS n', [7]))
  t.same(answered, { error: null, rows: [{ tenant: TENANT_A, n: 7 }] }, 'the tenant\'s setting and the values ride with it')
  const failed = await viaCallback('SELECT $1::int', ['not a number'])
  t.match(failed, { error: { code: '22P02' }, rows: undefined }, 'an error goes to the callback')
  const borrowed = await new Promise<{ client: { query(text: string): Promise<{ rows: unknown[] }> }; done: () => void }>((resolve, reject) => {
    pool.connect((error: Error | null, client?: unknown, done?: () => void) => error ? reject(error) : resolve({ client: client as never, done: done! }))
  })
  const inside = await runAsTenant(TENANT_B, () => borrowed.client.query('SELECT current_setting(\'app.tenant_id\', true) AS tenant'))
  t.same(inside.rows, [{ tenant: TENANT_B }], 'a client borrowed by callback is scoped')
  borrowed.done()
  t.same((await pool.query('SELECT 1 AS one')).rows, [{ one: 1 }], 'after done(), the pool\'s only connection serves the next caller')
  // A call with no statement rejects its caller and nothing else: an unhandled rejection would end
  // the process under Node's default (review 82).
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown) => unhandled.push(reason)
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => process.off('unhandledRejection', onUnhandled))
  await t.rejects((pool.query as (...args: unknown[]) => Promise<unknown>)(), TypeError, 'a call with no statement rejects')
  const viaCallbackNoStatement = await new Promise<Error | null>((resolve) => (pool.query as (...args: unknown[]) => unknown)(undefined, (error: Error | null) => resolve(error)))
  t.type(viaCallbackNoStatement, TypeError, 'and hands its error to a callback')
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.same(unhandled, [], 'no unhandled rejection')
  t.same((await pool.query('SELECT 1 AS one')).rows, [{ one: 1 }], 'the pool serves the next caller')
  // A connection that cannot be made: pg-pool hands `(error, undefined, done)` with a `done` that does
  // nothing, so code that calls done() on every path keeps running.
  const unreachable = new TenantAwarePool({ connectionString: `postgresql://nobody@127.0.0.1:${await freePort()}/none`, max: 1, connectionTimeoutMillis: 2_000, statementTimeoutMs: 5_000, queryTimeoutMs: 30_000 })
  t.teardown(() => unreachable.end())
  const refused = await new Promise<unknown[]>((resolve) => unreachable.connect((...answer: unknown[]) => resolve(answer)))
  t.type(refused[0], Error, 'connect(callback) to no server hands the error')
  t.equal(refused[1], undefined, 'and no client')
  t.type(refused[2], 'function', 'and a done, as pg-pool')
  t.doesNotThrow(() => (refused[2] as () => void)(), 'which does nothing')
})

t.test('the API with prepared statements on: two tenants\' interleaved requests never see each other\'s rows', async (t) => {
  const ownerUrl = await createTestDatabase(t)
  const appUrl = appDatabaseUrl(ownerUrl)
  const setting = appUrl && (await isTransactionPooler(appUrl)) ? 'off' : 'on' // PgBouncer 1.18 in CI
  const api = await buildApi(t, { DB_PREPARED_STATEMENTS: setting }, { url: ownerUrl })
  for (const tenant of [api.acme, api.globex]) {
    for (let i = 0; i < 3; i++) {
      t.equal((await tenant.call('member', { method: 'POST', url: '/v1/projects', payload: { name: `${tenant.slug} project ${i}` } })).statusCode, 201)
    }
  }
  const list = async (i: number) => {
    const tenant = i % 2 ? api.acme : api.globex
    const other = i % 2 ? api.globex : api.acme
    const res = await tenant.call('member', { method: 'GET', url: '/v1/projects?limit=100' })
    return res.statusCode === 200 && !res.body.includes(other.slug) && (res.body.match(new RegExp(`${tenant.slug} project`, 'g')) ?? []).length === 3
  }
  const results = await Promise.all(Array.from({ length: 200 }, (_, i) => list(i)))
  t.equal(results.filter((ok) => !ok).length, 0, `200 interleaved lists (prepared statements ${setting}): each its own 3 projects only`)
})
