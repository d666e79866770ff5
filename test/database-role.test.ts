// Row-level security must never silently stop applying because of a connection-string detail.
// Proven here, through whatever TEST_APP_DATABASE_URL leads to (PostgreSQL, or PgBouncer in
// transaction mode in the CI's PgBouncer stage):
// - the API's pool runs as its own login, which RLS binds: no tenant set → no tenant row, and it
//   cannot switch row security off;
// - the start-up role check names every role RLS does not bind (superuser, BYPASSRLS, the tables'
//   owner or a member inheriting its rights, a policy that ignores the tenant);
// - the real server refuses to start in production as such a role, warns elsewhere, starts with
//   the API's login;
// (Migrations over a direct URL only: test/migration-lock.test.ts.)
import { spawn } from 'node:child_process'
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto'
import pg from 'pg'
import t from 'tap'
import { withLogin } from '../src/db/api-login.ts'
import { inspectDatabaseRole, type RoleCheckQuery } from '../src/db/role-check.ts'
import { checkTenancyInvariants } from '../src/db/tenancy-invariants.ts'
import { runAsTenant } from '../src/tenancy/tenant-context.ts'
import { adminQuery, adminUrl, appDatabaseUrl, appServerUrl, createTestDatabase, freePort, insertTenant, openTestDatabase, PRODUCTION_MAIL_ENV } from './helper.ts'

type Tap = { teardown(fn: () => unknown): void }

/** True when the API's login goes through another server than the admin one (PgBouncer in CI). */
const throughPooler = appServerUrl !== undefined && new URL(appServerUrl).host !== new URL(adminUrl).host

const queryOver = (pool: pg.Pool): RoleCheckQuery => async (sql) => (await pool.query(sql)).rows

/** A login role on the suite's server (cluster-wide), dropped with whatever it owns at the end. */
async function tempRole (t: Tap, databaseOwnerUrl: string, attributes: string): Promise<{ name: string; url: string }> {
  const name = `rc_${randomUUID().replaceAll('-', '').slice(0, 16)}`
  const password = randomBytes(12).toString('hex')
  await adminQuery(adminUrl, `CREATE ROLE ${name} LOGIN PASSWORD '${password}' ${attributes}`)
  t.teardown(async () => {
    await adminQuery(databaseOwnerUrl, `REASSIGN OWNED BY ${name} TO CURRENT_USER; DROP OWNED BY ${name}`).catch(() => {})
    await adminQuery(adminUrl, `DROP ROLE IF EXISTS ${name}`).catch(() => {})
  })
  return { name, url: withLogin(databaseOwnerUrl, name, password) }
}

/** The role check's report for `url`, connected as a pool of the API would (no startup options). */
async function reportFor (t: Tap, url: string) {
  const pool = new pg.Pool({ connectionString: url, max: 1 })
  t.teardown(() => pool.end())
  return inspectDatabaseRole(queryOver(pool))
}

t.test('through the API pool, row-level security is in force', async (t) => {
  const { ownerUrl, database } = await openTestDatabase(t)
  const acme = await insertTenant(ownerUrl, 'acme')
  const globex = await insertTenant(ownerUrl, 'globex')
  for (const [tenant, name] of [[acme, 'Acme plan'], [globex, 'Globex plan']]) {
    await adminQuery(ownerUrl, 'INSERT INTO projects (tenant_id, name) VALUES ($1, $2)', [tenant, name])
  }
  const db = database.platformDb
  const [who] = await db.$queryRawUnsafe<{ role: string; login: string; superuser: boolean; bypassrls: boolean; port: number }[]>(
    `SELECT current_user::text AS role, session_user::text AS login, r.rolsuper AS superuser, r.rolbypassrls AS bypassrls, inet_server_port() AS port
     FROM pg_roles r WHERE r.rolname = current_user`)
  const appLogin = decodeURIComponent(new URL(appDatabaseUrl(ownerUrl)!).username)
  t.equal(who!.login, appLogin, `the pool logs in as the API's own login (${appLogin})`)
  t.equal(who!.role, appLogin, 'and runs as it: no startup option switched roles')
  t.notOk(who!.superuser, 'not a superuser')
  t.notOk(who!.bypassrls, 'no BYPASSRLS')
  if (throughPooler) t.not(who!.port, Number(new URL(appServerUrl!).port), `its queries reach PostgreSQL through the pooler at ${new URL(appServerUrl!).host}`)
  t.same((await inspectDatabaseRole((sql) => db.$queryRawUnsafe(sql))).problems, [], 'the start-up role check finds nothing wrong')

  t.equal(await db.project.count(), 0, 'no tenant set: no tenant row visible (Prisma)')
  const raw = await db.$queryRawUnsafe<{ n: number }[]>('SELECT count(*)::int AS n FROM projects')
  t.equal(raw[0]!.n, 0, 'no tenant set: no tenant row visible (raw SQL)')
  const names = await runAsTenant(acme, () => db.project.findMany({ select: { name: true } }))
  t.same(names.map((p) => p.name), ['Acme plan'], 'with a tenant set: only its rows, even without the extension\'s filter')
  const write = await runAsTenant(acme, () => db.project.create({ data: { tenantId: globex, name: 'planted' } })).then(() => undefined, (e: Error) => e)
  t.match(write?.message, /row-level security/, 'writing another tenant\'s row is refused by PostgreSQL')
  const off = await db.$transaction([db.$executeRawUnsafe('SET LOCAL row_security = off'), db.$queryRawUnsafe('SELECT count(*) FROM projects')]).then(() => undefined, (e: Error) => e)
  t.match(off?.message, /row-level security/, 'it cannot turn row security off')
  t.equal((await adminQuery(ownerUrl, 'SELECT count(*)::int AS n FROM projects WHERE name = \'planted\'')).rows[0]!.n, 0, 'nothing was written')
})

t.test('without APP_DATABASE_URL (development only), the owner\'s direct connection switches to saas_app', async (t) => {
  const { database } = await openTestDatabase(t, { APP_DATABASE_URL: '' }) // '' = unset
  const db = database.platformDb
  const report = await inspectDatabaseRole((sql) => db.$queryRawUnsafe(sql))
  t.equal(report.role, 'saas_app', 'queries run as saas_app')
  t.not(report.login, 'saas_app', 'after logging in as the owner')
  t.same(report.problems, [], 'which the role check accepts')
})

t.test('the role check names every role that row-level security does not bind', async (t) => {
  const ownerUrl = await createTestDatabase(t)
  const superuser = await tempRole(t, ownerUrl, 'SUPERUSER')
  const bypass = await tempRole(t, ownerUrl, 'BYPASSRLS IN ROLE saas_app')
  const owner = await tempRole(t, ownerUrl, 'IN ROLE saas_app')
  await adminQuery(ownerUrl, `ALTER TABLE tasks OWNER TO ${owner.name}`)
  const inheritsOwner = await tempRole(t, ownerUrl, `IN ROLE saas_app, ${owner.name}`)
  const noInherit = await tempRole(t, ownerUrl, `NOINHERIT IN ROLE saas_app, ${owner.name}`) // must SET ROLE to use it
  const leaky = await tempRole(t, ownerUrl, 'IN ROLE saas_app')
  await adminQuery(ownerUrl, `CREATE POLICY leak ON projects TO ${leaky.name} USING (true)`)
  const plain = await tempRole(t, ownerUrl, 'IN ROLE saas_app')

  t.match((await reportFor(t, superuser.url)).problems, [/superuser/], 'a superuser')
  t.match((await reportFor(t, bypass.url)).problems, [/BYPASSRLS/], 'a role with BYPASSRLS')
  t.match((await reportFor(t, owner.url)).problems, [/owns.*tasks \(owner rc_/], 'the owner of a tenant-owned table')
  t.match((await reportFor(t, inheritsOwner.url)).problems, [/owns, or inherits.*tasks/], 'a member inheriting the owner\'s rights')
  t.same((await reportFor(t, noInherit.url)).problems, [], 'a NOINHERIT member of the owner uses none of its rights')
  t.match((await reportFor(t, leaky.url)).problems, [/policies that ignore the tenant.*projects\.leak/], 'a role granted a policy that ignores the tenant')
  t.same((await reportFor(t, plain.url)).problems, [], 'a plain member of saas_app is fine')

  const withoutRls = await createTestDatabase(t)
  await adminQuery(withoutRls, 'ALTER TABLE sessions DISABLE ROW LEVEL SECURITY')
  // A table without RLS is a schema problem, not a role problem: the tenancy check names it (and
  // keeps a production server from becoming ready), the role check does not stop the start.
  t.same((await reportFor(t, withLogin(withoutRls, plain.name, new URL(plain.url).password))).problems, [], 'a tenant table whose RLS was disabled is not blamed on the role')
  t.match(await checkTenancyInvariants(withoutRls), [{ table: 'sessions', rule: 'rls-enabled' }], 'the tenancy check names it')
  const empty = await createTestDatabase(t)
  await adminQuery(empty, `DO $$ DECLARE r record; BEGIN
    FOR r IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' LOOP EXECUTE format('DROP TABLE %I CASCADE', r.tablename); END LOOP; END $$`)
  t.match((await reportFor(t, withLogin(empty, plain.name, new URL(plain.url).password))).problems, [/no tenant-owned table/], 'a database without the tenant tables')
})

/** Runs src/server.ts with `env`; resolves when it exits or answers /readyz 200 (then stops it). */
function runServer (env: Record<string, string>, script = 'src/server.ts'): Promise<{ code: number | null; ready: boolean; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    let ready = false
    child.stdout.on('data', (d) => (output += d))
    child.stderr.on('data', (d) => (output += d))
    const poll = setInterval(async () => {
      const ok = await fetch(`http://127.0.0.1:${env.PORT}/readyz`).then((r) => r.status === 200, () => false)
      if (ok && !ready) { ready = true; child.kill('SIGTERM') }
    }, 100)
    const guard = setTimeout(() => child.kill('SIGKILL'), 60_000) // liveness bound only
    child.on('exit', (code) => { clearInterval(poll); clearTimeout(guard); resolve({ code, ready, output }) })
  })
}

t.test('the real server refuses to start in production as a role that bypasses RLS', async (t) => {
  const ownerUrl = await createTestDatabase(t)
  const bypass = await tempRole(t, ownerUrl, 'BYPASSRLS IN ROLE saas_app')
  const production = {
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    DATABASE_URL: ownerUrl,
    MIGRATE_ON_START: 'false',
    JWT_PRIVATE_KEYS: generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    CSRF_SECRET: randomBytes(32).toString('hex'),
    API_KEY_SECRET: randomBytes(32).toString('hex'),
    ...PRODUCTION_MAIL_ENV,
    BCRYPT_COST: '4',
  }
  // Direct: the pooler's auth_file knows only the API's login.
  const refused = await runServer({ ...production, PORT: String(await freePort()), APP_DATABASE_URL: bypass.url })
  t.equal(refused.code, 1, 'exits with status 1')
  t.notOk(refused.ready, 'never answered /readyz')
  t.match(refused.output, /Refusing to start \(NODE_ENV=production\)/, 'says why')
  t.match(refused.output, new RegExp(`"${bypass.name}":\\n  - it has BYPASSRLS`), 'names the role and the reason')
  t.match(refused.output, /APP_DATABASE_URL to a login of its own that is a member of saas_app/, 'and the fix')
  t.notMatch(refused.output, new URL(bypass.url).password, 'the password is not echoed')
  // The stand-alone worker checks the same role before each attempt of its start, which it retries
  // while the database is down (src/worker.ts): an unsafe role is refused at once, not waited on.
  const worker = await runServer({ ...production, PORT: String(await freePort()), APP_DATABASE_URL: bypass.url }, 'src/worker.ts')
  t.equal(worker.code, 1, `the worker exits with status 1 too\n${worker.code === 1 ? '' : worker.output}`)
  t.match(worker.output, new RegExp(`"${bypass.name}":\\n  - it has BYPASSRLS`), 'naming the role and the reason')
  t.match(worker.output, /"level":60,.*"msg":"could not start/, 'in a fatal JSON line')

  // A login PostgreSQL turns away for good (no such role here; a wrong password alike): no outage
  // to wait out, so no start either — and no password in the message.
  const wrongLogin = new URL(bypass.url)
  wrongLogin.username = `no_such_role_${randomBytes(4).toString('hex')}`
  const unknown = await runServer({ ...production, PORT: String(await freePort()), APP_DATABASE_URL: wrongLogin.toString() })
  t.equal(unknown.code, 1, 'an unknown login: exits with status 1')
  t.notOk(unknown.ready, 'never answered /readyz')
  t.match(unknown.output, new RegExp(`PostgreSQL refused the API's login \\(APP_DATABASE_URL\\): .*${wrongLogin.username}`), 'naming the login and the reason')
  t.notMatch(unknown.output, wrongLogin.password || 'no password', 'the password is not echoed')

  const missing = await runServer({ ...production, PORT: String(await freePort()) })
  t.equal(missing.code, 1, 'production without APP_DATABASE_URL is refused')
  t.match(missing.output, /NODE_ENV=production requires: APP_DATABASE_URL/)

  const api = await runServer({ ...production, PORT: String(await freePort()), APP_DATABASE_URL: appDatabaseUrl(ownerUrl)! })
  t.ok(api.ready, `starts and is ready with the API's own login${throughPooler ? ' through the pooler' : ''}\n${api.ready ? '' : api.output}`)
  t.equal(api.code, 0, 'and exits cleanly on SIGTERM')

  const development = await runServer({ ...production, NODE_ENV: 'development', PORT: String(await freePort()), APP_DATABASE_URL: bypass.url })
  t.ok(development.ready, 'outside production the same role starts…')
  t.match(development.output, /WARNING: tenant isolation is down to the Prisma extension alone[\s\S]*it has BYPASSRLS/, '…with a loud warning')
})
