// The database checks its own tenancy rules (src/db/tenancy-invariants.ts): the migrated schema
// passes; README "Add a tenant-owned resource" followed literally on a scratch database produces a
// table that passes; and the four classic mistakes — (a) a table with tenant_id and no RLS, (b) RLS
// not forced, (c) a foreign key to a tenant table without tenant_id, (d) a policy without WITH
// CHECK — each applied as a temporary migration, make `npm run tenancy:check` fail naming the table
// and the rule, and keep a production server (a real process) from becoming ready.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import net from 'node:net'
import path from 'node:path'
import t from 'tap'
import { checkTenancyInvariants } from '../src/db/tenancy-invariants.ts'
import { applyMigrations } from '../src/db/migrate.ts'
import { adminQuery, createTestDatabase, freePort, insertTenant, PRODUCTION_MAIL_ENV, withApiLogin } from './helper.ts'

// Real processes (npx prisma, npm run tenancy:check, five production servers): longer than tap's default.
t.setTimeout(600_000)

const repoRoot = path.resolve(import.meta.dirname, '..')
const readme = await readFile(path.join(repoRoot, 'README.md'), 'utf8')

/** The fenced block following `<!-- tenant-resource:<name> -->` in the README. */
function readmeBlock (name: string): string {
  const match = new RegExp(`<!-- tenant-resource:${name} -->\\s*\`\`\`\\w+\\n([\\s\\S]*?)\`\`\``).exec(readme)
  if (!match) throw new Error(`README has no tenant-resource:${name} block`)
  return match[1]!
}
/**
 * The README's example renamed (`Comment` → `GuideComment`, table `guide_comments`), everything else
 * as written: a team that follows the guide literally adds `Comment` and `comments` to the real
 * schema, and this test, which replays the guide on top of it, must not collide with theirs.
 */
const asGuide = (text: string) => text.replace(/\bComment\b/g, 'GuideComment').replace(/(?<![A-Za-z_])comments/g, 'guide_comments')
const readmeModel = asGuide(readmeBlock('model'))
const readmeMigration = asGuide(readmeBlock('migration'))
const ONE_LINE = "SELECT app_make_tenant_owned('guide_comments');"

/** The check's violations on `url`, as `<table>: <rule>`. */
const ruleNames = async (url: string) => (await checkTenancyInvariants(url)).map((v) => `${v.table}: ${v.rule}`)

/** A model that is neither tenant-owned nor platform data: what `model-without-tenant` reports. */
const UNTENANTED_MODEL = `model GuideNote {
  id   String @id @default(dbgenerated("gen_random_uuid()")) @db.Uuid
  body String

  @@map("guide_notes")
}
`

interface Run { code: number | null; output: string }
function run (command: string, args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(command, args, { cwd: repoRoot, env: { ...process.env, ...env }, timeout: 120_000 }, (_error, stdout, stderr) =>
      resolve({ code: child.exitCode, output: `${stdout}${stderr}` }))
  })
}
const tenancyCheck = (url: string) => run('npm', ['run', '-s', 'tenancy:check'], { DATABASE_URL: url })

/** A fresh migrated database plus `extra` applied as new migrations (named in order), as `migrate deploy` would. */
async function databaseWith (t: Tap, extra: string[]): Promise<string> {
  const url = await createTestDatabase(t)
  const migrationsDir = await mkdtemp(path.join(tmpdir(), 'tenancy-migrations-'))
  t.teardown(() => rm(migrationsDir, { recursive: true, force: true }))
  await cp(path.join(repoRoot, 'prisma/migrations'), migrationsDir, { recursive: true })
  for (const [i, sql] of extra.entries()) {
    const dir = path.join(migrationsDir, `2999010100000${i}_scratch_${i}`)
    await mkdir(dir)
    await writeFile(path.join(dir, 'migration.sql'), sql)
  }
  await applyMigrations(url, undefined, { migrationsDir })
  return url
}
type Tap = { teardown(fn: () => unknown): void }

const productionSecrets = {
  JWT_PRIVATE_KEYS: generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  CSRF_SECRET: randomBytes(32).toString('hex'),
  API_KEY_SECRET: randomBytes(32).toString('hex'),
  ...PRODUCTION_MAIL_ENV,
}

/** Starts `src/server.ts` with NODE_ENV=production on `url`; answers its first /readyz and its log. */
async function productionServer (t: Tap, url: string) {
  const port = await freePort()
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: repoRoot,
    env: await withApiLogin({ ...process.env, ...productionSecrets, NODE_ENV: 'production', DATABASE_URL: url, HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'info', MIGRATE_ON_START: 'false', BCRYPT_WORKERS: '1' }),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let log = ''
  child.stdout!.on('data', (d) => (log += d))
  child.stderr!.on('data', (d) => (log += d))
  const exited = new Promise((resolve) => child.on('exit', resolve))
  t.teardown(async () => {
    child.kill('SIGTERM')
    await exited
  })
  const until = Date.now() + 60_000
  while (Date.now() < until && child.exitCode === null) {
    const answer = await fetch(`http://127.0.0.1:${port}/readyz`).then(async (r) => ({ status: r.status, body: await r.text() }), () => undefined)
    if (answer) {
      const health = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.status)
      return { ...answer, health, log: () => log }
    }
    await new Promise((r) => setTimeout(r, 150))
  }
  throw new Error(`the production server did not answer:\n${log}`)
}

t.test('the migrated schema follows every tenancy rule', async (t) => {
  const url = await createTestDatabase(t)
  t.same(await checkTenancyInvariants(url), [], 'no violation')
  const check = await tenancyCheck(url)
  t.equal(check.code, 0, 'npm run tenancy:check exits 0')
  t.match(check.output, /tenancy check passed: \d+ tenant-owned tables \(.*projects, sessions, tasks, users\) and tenants follow every rule/)
})

// Every request of a production server waits on this check until it has succeeded once
// (plugins/tenancy-invariants.ts): against a database that accepts connections and never answers, it
// must give up within its bounds, not after the operating system's minutes.
t.test('the check gives up within its bounds on a database that never answers', async (t) => {
  const sockets: net.Socket[] = []
  const silent = net.createServer((socket) => { sockets.push(socket) }) // accepts, never writes
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  const url = `postgres://saas_api:x@127.0.0.1:${(silent.address() as net.AddressInfo).port}/app`
  t.teardown(() => {
    for (const socket of sockets) socket.destroy()
    silent.close()
  })
  const started = Date.now()
  const outcome = await Promise.race([
    checkTenancyInvariants(url, { connectTimeoutMs: 500, queryTimeoutMs: 500 }).then(() => 'answered', () => 'refused'),
    new Promise((resolve) => setTimeout(resolve, 5000, 'still waiting after 5 s')),
  ])
  t.equal(outcome, 'refused', 'the database cannot be read: refused')
  const ms = Date.now() - started
  t.ok(ms < 3000, `gave up after ${ms} ms (connect bound 500 ms)`)
})

t.test('a table without tenant_id that the API role may read or change is reported', async (t) => {
  const url = await createTestDatabase(t)
  await adminQuery(url, "CREATE TABLE scratch_rows (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), body text); INSERT INTO scratch_rows (body) VALUES ('of some tenant')")
  t.same(await ruleNames(url), [], 'without grants the API role cannot touch it: nothing to report')
  await adminQuery(url, 'GRANT SELECT ON scratch_rows TO saas_app')
  // Why: nothing confines the rows, so the API role reads them with no tenant set.
  const seen = await adminQuery(url, 'SET ROLE saas_app; SELECT body FROM scratch_rows') as unknown as Array<{ rows: unknown[] }>
  t.equal(seen[1]!.rows.length, 1, 'the API role reads the row with no tenant set')
  t.same(await ruleNames(url), ['scratch_rows: unscoped-table'], 'SELECT is reported')
  const check = await tenancyCheck(url)
  t.equal(check.code, 1, 'npm run tenancy:check exits 1')
  t.match(check.output, /scratch_rows: unscoped-table — \(SELECT granted\)/, `naming the table, the rule and the grant\n${check.output}`)
  await adminQuery(url, 'REVOKE SELECT ON scratch_rows FROM saas_app; GRANT INSERT, UPDATE ON scratch_rows TO saas_app')
  t.same(await ruleNames(url), ['scratch_rows: unscoped-table'], 'UPDATE is reported')
  await adminQuery(url, 'REVOKE UPDATE ON scratch_rows FROM saas_app; GRANT SELECT (id), UPDATE (body) ON scratch_rows TO saas_app')
  t.match(await checkTenancyInvariants(url), [{ table: 'scratch_rows', rule: 'unscoped-table', detail: /^\(SELECT \(id\), UPDATE \(body\) granted\)/ }], 'privileges on some columns are reported, naming them')
  await adminQuery(url, 'REVOKE SELECT (id), UPDATE (body) ON scratch_rows FROM saas_app; CREATE VIEW scratch_row_bodies AS SELECT body FROM scratch_rows; GRANT SELECT ON scratch_row_bodies TO saas_app')
  t.same(await ruleNames(url), ['scratch_row_bodies: unscoped-table'], 'a view that reads them with its owner\'s rights is reported')
  await adminQuery(url, 'ALTER VIEW scratch_row_bodies SET (security_invoker = true)')
  t.same(await ruleNames(url), [], 'a security_invoker view reads with the API role\'s rights, and INSERT alone reads nothing (the API enqueues jobs so)')
  // The listed exceptions (SHARED_READABLE_TABLES): pg-boss's queue definitions, and a job's id, read, never changed.
  await adminQuery(url, 'CREATE SCHEMA IF NOT EXISTS pgboss; CREATE TABLE IF NOT EXISTS pgboss.queue (name text PRIMARY KEY); GRANT USAGE ON SCHEMA pgboss TO saas_app; GRANT SELECT ON pgboss.queue TO saas_app')
  t.same(await ruleNames(url), [], 'SELECT on pgboss.queue is allowed')
  // What the job runner grants at start (src/jobs/runner.ts grantEnqueue), where pg-boss's schema exists.
  await adminQuery(url, "DO $$ BEGIN IF to_regclass('pgboss.job') IS NULL THEN CREATE TABLE pgboss.job (id uuid PRIMARY KEY, data jsonb); END IF; END $$; GRANT INSERT, SELECT (id) ON pgboss.job TO saas_app")
  t.same(await ruleNames(url), [], 'as is INSERT into pgboss.job with SELECT of its id alone')
  await adminQuery(url, 'GRANT SELECT (data) ON pgboss.job TO saas_app')
  t.same(await ruleNames(url), ['pgboss.job: unscoped-table'], 'its jobs\' data is not')
  await adminQuery(url, 'REVOKE SELECT (data) ON pgboss.job FROM saas_app')
  await adminQuery(url, 'GRANT DELETE ON pgboss.queue TO saas_app')
  t.same(await ruleNames(url), ['pgboss.queue: unscoped-table'], 'DELETE on it is not')
})

t.test('an append-only table: SELECT and INSERT only for the API role, and its guard trigger on', async (t) => {
  const url = await createTestDatabase(t)
  await adminQuery(url, 'ALTER TABLE audit_events DISABLE TRIGGER app_append_only')
  t.same(await ruleNames(url), ['audit_events: append-only'], 'a disabled guard is reported')
  await adminQuery(url, 'ALTER TABLE audit_events ENABLE TRIGGER app_append_only; GRANT DELETE ON audit_events TO saas_app')
  t.same(await ruleNames(url), ['audit_events: append-only'], 'DELETE granted back to the API role is reported')
  await adminQuery(url, 'REVOKE DELETE ON audit_events FROM saas_app; GRANT UPDATE (data) ON audit_events TO saas_app')
  t.same(await ruleNames(url), ['audit_events: append-only'], 'so is UPDATE on one of its columns')
  await adminQuery(url, 'REVOKE UPDATE (data) ON audit_events FROM saas_app; GRANT TRUNCATE ON audit_events TO saas_app')
  t.same(await ruleNames(url), ['audit_events: append-only'], 'and TRUNCATE, named by this rule alone')
  await adminQuery(url, 'REVOKE TRUNCATE ON audit_events FROM saas_app; DROP TRIGGER app_append_only ON audit_events')
  t.same(await ruleNames(url), ['audit_events: grants'], 'without its guard it is an ordinary table lacking UPDATE and DELETE')
  await adminQuery(url, 'REVOKE INSERT ON audit_events FROM saas_app; SELECT app_make_append_only(\'audit_events\')')
  t.same(await ruleNames(url), ['audit_events: grants'], 'an append-only table the API role cannot insert into is reported')
  await adminQuery(url, 'GRANT INSERT ON audit_events TO saas_app')
  t.same(await ruleNames(url), [], 'app_make_append_only and the INSERT grant restore it')
})

// TRUNCATE is not a row command: row-level security never sees it (review 58 H2).
t.test('TRUNCATE on a tenant-owned table or the tenants registry is not the API role\'s', async (t) => {
  const url = await createTestDatabase(t)
  const [a, b] = [await insertTenant(url, 'alpha'), await insertTenant(url, 'bravo')]
  for (const tenant of [a, b]) {
    const project = await adminQuery<{ id: string }>(url, 'INSERT INTO projects (tenant_id, name) VALUES ($1, \'P\') RETURNING id', [tenant])
    await adminQuery(url, 'INSERT INTO tasks (tenant_id, project_id, title) VALUES ($1, $2, \'T\')', [tenant, project.rows[0]!.id])
  }
  await adminQuery(url, 'GRANT TRUNCATE ON tasks TO saas_app')
  // Why: from tenant A's transaction, the API role empties B's tasks too.
  await adminQuery(url, `SET ROLE saas_app; BEGIN; SELECT set_config('app.tenant_id', '${a}', true); TRUNCATE tasks; COMMIT`)
  const { rows } = await adminQuery(url, 'SELECT count(*)::int AS n FROM tasks WHERE tenant_id = $1', [b])
  t.same(rows, [{ n: 0 }], 'tenant A\'s TRUNCATE emptied tenant B\'s tasks')
  t.same(await ruleNames(url), ['tasks: truncate'], 'the grant to the API role is reported')
  const check = await tenancyCheck(url)
  t.equal(check.code, 1, 'npm run tenancy:check exits 1')
  t.match(check.output, /tasks: truncate — saas_app may TRUNCATE/, `naming the table and the rule\n${check.output}`)
  await adminQuery(url, 'REVOKE TRUNCATE ON tasks FROM saas_app; GRANT TRUNCATE ON projects, tenants TO PUBLIC')
  t.same(await ruleNames(url), ['projects: truncate', 'tenants: truncate'], 'so is a grant to PUBLIC, on a table and on the registry')
  await adminQuery(url, 'REVOKE TRUNCATE ON projects, tenants FROM PUBLIC')
  t.same(await ruleNames(url), [], 'revoked, the schema passes again')
})

// The same hole through a function: SECURITY DEFINER runs it with its owner's rights (the
// migrations' role, which bypasses row-level security), and PostgreSQL lets every role call a new
// function. Reviewer 52 read a tenant's row this way with no tenant set, and the check was silent.
t.test('a SECURITY DEFINER function the API role may call must be reviewed', async (t) => {
  const url = await createTestDatabase(t)
  t.same(await checkTenancyInvariants(url), [], 'the project\'s own definer functions are all reviewed')
  await adminQuery(url, 'CREATE FUNCTION project_names_of(tenant uuid) RETURNS SETOF text LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$ SELECT name FROM projects WHERE tenant_id = tenant $$')
  const a = await insertTenant(url, 'alpha')
  await adminQuery(url, 'INSERT INTO projects (tenant_id, name) VALUES ($1, \'secret\')', [a])
  const seen = await adminQuery(url, `SET ROLE saas_app; SELECT project_names_of('${a}') AS name`) as unknown as Array<{ rows: unknown[] }>
  t.same(seen[1]!.rows, [{ name: 'secret' }], 'the app role reads a tenant\'s row through the function with no tenant set')
  t.match(await checkTenancyInvariants(url), [{ table: 'public.project_names_of(uuid)', rule: 'definer-function' }], 'the check names the function')
  await adminQuery(url, 'REVOKE EXECUTE ON FUNCTION project_names_of(uuid) FROM PUBLIC')
  t.same(await checkTenancyInvariants(url), [], 'one the API role may not call passes')
  await adminQuery(url, 'GRANT EXECUTE ON FUNCTION project_names_of(uuid) TO saas_app; ALTER FUNCTION project_names_of(uuid) SECURITY INVOKER')
  t.same(await checkTenancyInvariants(url), [], 'so does one that runs with the caller\'s rights')
  // A namesake of a reviewed function in another schema is not the reviewed one, whatever the
  // checking connection's search_path (review: it printed unqualified and passed as reviewed).
  await adminQuery(url, 'CREATE SCHEMA elsewhere; GRANT USAGE ON SCHEMA elsewhere TO saas_app; CREATE FUNCTION elsewhere.app_tenant_by_slug(slug text) RETURNS SETOF text LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$ SELECT name FROM projects $$')
  const searchingElsewhere = new URL(url)
  searchingElsewhere.searchParams.set('options', '-c search_path=elsewhere,public')
  for (const checkedFrom of [url, searchingElsewhere.toString()]) {
    t.same((await checkTenancyInvariants(checkedFrom)).map((v) => [v.table, v.rule]), [['elsewhere.app_tenant_by_slug(text)', 'definer-function']], 'only the namesake is named, schema-qualified')
  }
})

t.test('a trigger\'s SECURITY DEFINER function and a rule on a table run past row-level security whatever the grants', async (t) => {
  const url = await createTestDatabase(t)
  const a = await insertTenant(url, 'alpha')
  const b = await insertTenant(url, 'beta')
  await adminQuery(url, 'INSERT INTO projects (tenant_id, name) VALUES ($1, \'beta\'\'s\')', [b])
  await adminQuery(url, `CREATE FUNCTION rename_everything() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$ BEGIN UPDATE projects SET name = 'pwned' WHERE tenant_id <> NEW.tenant_id; RETURN NEW; END $$;
    REVOKE EXECUTE ON FUNCTION rename_everything() FROM PUBLIC;
    CREATE TRIGGER rename_everything AFTER INSERT ON projects FOR EACH ROW EXECUTE FUNCTION rename_everything()`)
  // Why (review 55): the API role, in tenant A, changes B's rows through the trigger, EXECUTE revoked.
  await adminQuery(url, `SET ROLE saas_app; BEGIN; SELECT set_config('app.tenant_id', '${a}', true); INSERT INTO projects (name) VALUES ('mine'); COMMIT`)
  const { rows } = await adminQuery(url, 'SELECT name FROM projects WHERE tenant_id = $1', [b])
  t.same(rows, [{ name: 'pwned' }], 'the trigger changed another tenant\'s row')
  t.match(await checkTenancyInvariants(url), [{ table: 'public.rename_everything()', rule: 'definer-function' }], 'the check names the trigger\'s function, though the role may not EXECUTE it')
  await adminQuery(url, 'ALTER FUNCTION rename_everything() SECURITY INVOKER')
  t.same(await checkTenancyInvariants(url), [], 'a SECURITY INVOKER trigger function passes')
  await adminQuery(url, 'CREATE RULE copy_everywhere AS ON INSERT TO projects DO ALSO UPDATE projects SET name = NEW.name WHERE tenant_id <> NEW.tenant_id')
  t.match(await checkTenancyInvariants(url), [{ table: 'projects', rule: 'table-rule' }], 'the check names the table a rule rewrites')
})

t.test('a view over tenant data must not bypass row-level security', async (t) => {
  const url = await createTestDatabase(t)
  await adminQuery(url, 'CREATE VIEW project_names AS SELECT tenant_id, name FROM projects; GRANT SELECT ON project_names TO saas_app')
  const a = await insertTenant(url, 'alpha')
  await adminQuery(url, 'INSERT INTO projects (tenant_id, name) VALUES ($1, \'secret\')', [a])
  // Why: the view reads projects with its owner's rights, so saas_app with no tenant sees A's row.
  const seen = await adminQuery(url, 'SET ROLE saas_app; SELECT name FROM project_names') as unknown as Array<{ rows: unknown[] }>
  t.equal(seen[1]!.rows.length, 1, 'the app role reads a tenant\'s row through the view with no tenant set')
  t.match(await checkTenancyInvariants(url), [{ table: 'project_names', rule: 'view-bypasses-rls' }], 'the check names the view')
  await adminQuery(url, 'ALTER VIEW project_names SET (security_invoker = true)')
  t.same(await checkTenancyInvariants(url), [], 'a security_invoker view passes')
})

t.test('README "Add a tenant-owned resource", followed on a scratch database, produces a checked resource', async (t) => {
  // Step 1: the README's model in a copy of the schema, with the back-relations it asks for.
  // Inside the checkout (the generated client resolves its packages from there); .data is absent
  // in a fresh clone tested against TEST_DATABASE_URL.
  await mkdir(path.join(repoRoot, '.data'), { recursive: true })
  const work = await mkdtemp(path.join(repoRoot, '.data', 'readme-resource-'))
  t.teardown(() => rm(work, { recursive: true, force: true }))
  const schema = (await readFile(path.join(repoRoot, 'prisma/schema.prisma'), 'utf8'))
    .replace('output   = "../src/generated/prisma"', `output   = "${path.join(work, 'client')}"`)
    .replace('model Tenant {\n', 'model Tenant {\n  guideComments GuideComment[]\n')
    .replace('model Task {\n', 'model Task {\n  guideComments GuideComment[]\n') +
    `\n${readmeModel}`
  await writeFile(path.join(work, 'schema.prisma'), schema)
  // Step 2: the README's migration is what `prisma migrate dev --create-only` writes for that model, plus one line.
  const url = await createTestDatabase(t)
  const diff = await run('npx', ['prisma', 'migrate', 'diff', '--from-schema', 'prisma/schema.prisma', '--to-schema', path.join(work, 'schema.prisma'), '--script'], { DATABASE_URL: url })
  t.equal(diff.code, 0, `prisma migrate diff ran\n${diff.output.slice(0, 2000)}`)
  const generated = readmeMigration.slice(0, readmeMigration.indexOf('\n\n-- Tenant-owned'))
  t.equal(diff.output.replace(/^Loaded Prisma config.*\n/m, '').trim(), generated.trim(), 'the README\'s SQL is exactly what Prisma generates for the README\'s model')
  t.ok(readmeMigration.trim().endsWith(ONE_LINE), 'the one hand-written line ends the migration')
  const scratch = await databaseWith(t, [readmeMigration])
  // Step 4: the check passes.
  t.same(await checkTenancyInvariants(scratch), [], 'the README\'s resource follows every rule')
  // Step 3 forgotten: the generated client does not know guide_comments yet.
  const stale = await tenancyCheck(scratch)
  t.equal(stale.code, 1, 'before `npx prisma generate`, npm run tenancy:check fails')
  t.match(stale.output, /guide_comments: prisma-client-stale/, 'naming the table and the rule')

  // Step 3: generate, then use the new model through the scoped client as a route would. The client
  // also gets a model the guide warns against, one without tenantId (never migrated: the check of
  // models reads the client alone).
  await writeFile(path.join(work, 'schema.prisma'), `${schema}\n${UNTENANTED_MODEL}`)
  const generate = await run('npx', ['prisma', 'generate', '--schema', path.join(work, 'schema.prisma')], { DATABASE_URL: scratch })
  t.equal(generate.code, 0, `prisma generate ran\n${generate.output.slice(-2000)}`)
  const { PrismaClient } = await import(path.join(work, 'client', 'client.ts'))
  const { PrismaPg } = await import('@prisma/adapter-pg')
  const { TenantAwarePool } = await import('../src/db/tenant-aware-pool.ts')
  const { scopedClient, modelTables, tenantOwnedModels, modelsOutsideTenancy, TenantScopeError } = await import('../src/tenancy/scoped-client.ts')
  const pool = new TenantAwarePool({ connectionString: scratch, options: '-c role=saas_app', max: 2, statementTimeoutMs: 0, queryTimeoutMs: 0 })
  const client = new PrismaClient({ adapter: new PrismaPg(pool) })
  t.teardown(async () => {
    await client.$disconnect()
    await pool.end()
  })
  t.ok(tenantOwnedModels(client).includes('GuideComment') && modelTables(client).GuideComment === 'guide_comments', 'the regenerated client knows the tenant-owned model')
  // A model without tenantId: request.db refuses it (a 500 on any route using it), and the check of models names it.
  t.same(modelsOutsideTenancy(client), [{ model: 'GuideNote', table: 'guide_notes' }], 'the model without tenantId is reported (rule model-without-tenant)')
  const a = await insertTenant(scratch, 'alpha')
  const b = await insertTenant(scratch, 'bravo')
  const task = async (tenantId: string) => {
    const project = await adminQuery<{ id: string }>(scratch, 'INSERT INTO projects (tenant_id, name) VALUES ($1, \'P\') RETURNING id', [tenantId])
    return (await adminQuery<{ id: string }>(scratch, 'INSERT INTO tasks (tenant_id, project_id, title) VALUES ($1, $2, \'T\') RETURNING id', [tenantId, project.rows[0]!.id])).rows[0]!.id
  }
  const [taskA, taskB] = [await task(a), await task(b)]
  // The scratch client's types exist only at run time (generated by this test): no static types here.
  type Models = Record<'guideComment' | 'guideNote', Record<string, (args?: unknown) => Promise<any>>>
  const dbA = scopedClient(client, a) as unknown as Models
  const comment = await dbA.guideComment.create!({ data: { taskId: taskA, body: 'first' } })
  t.equal(comment.tenantId, a, 'a comment created without tenantId belongs to the tenant')
  await t.rejects(dbA.guideComment.create!({ data: { taskId: taskB, body: 'on B\'s task' } }), 'a comment on another tenant\'s task is refused by the composite foreign key')
  t.same((await (scopedClient(client, b) as unknown as Models).guideComment.findMany!()).length, 0, 'the other tenant sees no comment')
  await t.rejects(dbA.guideNote.findMany!(), TenantScopeError, 'the scoped client refuses the model without tenantId')
  const passed = await tenancyCheck(scratch)
  t.equal(passed.code, 1, 'npm run tenancy:check still uses the repository\'s own client')
  t.notMatch(passed.output, /rls|policy|grants|fk-|unique|index/, 'and finds nothing but the stale client')
})

// Review 58 M1: Prisma's `onDelete: SetNull` on a composite key nulls tenant_id too; the README's
// optional reference names the one column to null.
t.test('README\'s optional reference: deleting the referenced row keeps the row in its tenant, the reference nulled', async (t) => {
  const optional = asGuide(readmeBlock('optional-reference'))
  t.match(optional, /ON DELETE SET NULL \("author_id"\)/, 'the README names the column to null')
  const seed = async (url: string) => {
    const a = await insertTenant(url, 'alpha')
    const user = await adminQuery<{ id: string }>(url, "INSERT INTO users (tenant_id, email, name, role, password_hash) VALUES ($1, 'ann@example.com', 'Ann', 'member', 'x') RETURNING id", [a])
    const project = await adminQuery<{ id: string }>(url, 'INSERT INTO projects (tenant_id, name) VALUES ($1, \'P\') RETURNING id', [a])
    const task = await adminQuery<{ id: string }>(url, 'INSERT INTO tasks (tenant_id, project_id, title) VALUES ($1, $2, \'T\') RETURNING id', [a, project.rows[0]!.id])
    await adminQuery(url, 'INSERT INTO guide_comments (tenant_id, task_id, author_id, body) VALUES ($1, $2, $3, \'hello\')', [a, task.rows[0]!.id, user.rows[0]!.id])
    return { a, userId: user.rows[0]!.id }
  }
  const url = await databaseWith(t, [readmeMigration, optional])
  t.same(await checkTenancyInvariants(url), [], 'the check passes')
  const { a, userId } = await seed(url)
  await adminQuery(url, 'DELETE FROM users WHERE id = $1', [userId])
  const { rows } = await adminQuery(url, 'SELECT tenant_id, author_id, body FROM guide_comments')
  t.same(rows, [{ tenant_id: a, author_id: null, body: 'hello' }], 'the comment stays in its tenant, without author')

  const prismaDefault = await databaseWith(t, [readmeMigration, optional.replace('ON DELETE SET NULL ("author_id")', 'ON DELETE SET NULL')])
  const plain = await seed(prismaDefault)
  await t.rejects(adminQuery(prismaDefault, 'DELETE FROM users WHERE id = $1', [plain.userId]), { code: '23502' }, 'Prisma\'s plain SET NULL nulls tenant_id as well: the delete is refused')
})

// The four mistakes of the issue, as temporary migrations after the README's.
const brokenVariants: Array<{ name: string; rule: string; sql: string[] }> = [
  { name: '(a) a table with tenant_id and no row-level security', rule: 'rls-enabled', sql: [readmeMigration.replace(ONE_LINE, '')] },
  { name: '(b) row-level security not forced', rule: 'rls-forced', sql: [readmeMigration, 'ALTER TABLE "guide_comments" NO FORCE ROW LEVEL SECURITY;'] },
  {
    name: '(c) a foreign key to a tenant table without tenant_id',
    rule: 'fk-includes-tenant',
    sql: [readmeMigration.replace('FOREIGN KEY ("tenant_id", "task_id") REFERENCES "tasks"("tenant_id", "id")', 'FOREIGN KEY ("task_id") REFERENCES "tasks"("id")')],
  },
  {
    name: '(d) a policy without WITH CHECK',
    rule: 'policy-with-check',
    sql: [readmeMigration, 'DROP POLICY tenant_isolation ON "guide_comments";\nCREATE POLICY tenant_isolation ON "guide_comments" TO saas_app USING (tenant_id = app_current_tenant());'],
  },
]

for (const variant of brokenVariants) {
  t.test(variant.name, async (t) => {
    const url = await databaseWith(t, variant.sql)
    const violations = await checkTenancyInvariants(url)
    t.ok(violations.some((v) => v.table === 'guide_comments' && v.rule === variant.rule), `the check reports guide_comments: ${variant.rule}`)
    t.ok(violations.every((v) => v.table === 'guide_comments'), 'and nothing about the other tables')
    const check = await tenancyCheck(url)
    t.equal(check.code, 1, 'npm run tenancy:check exits 1')
    t.match(check.output, new RegExp(`guide_comments: ${variant.rule} — `), `naming the table and the rule\n${check.output}`)
    if (variant.rule === 'rls-enabled') t.ok(check.output.includes(`end the table's migration with \`${ONE_LINE}\``), 'the forgotten line is named, to copy')
    if (variant.rule === 'fk-includes-tenant') {
      // Why the rule exists: with this key, tenant A's comment can sit on tenant B's task.
      const [a, b] = [await insertTenant(url, 'alpha'), await insertTenant(url, 'bravo')]
      const project = await adminQuery<{ id: string }>(url, 'INSERT INTO projects (tenant_id, name) VALUES ($1, \'P\') RETURNING id', [b])
      const taskB = await adminQuery<{ id: string }>(url, 'INSERT INTO tasks (tenant_id, project_id, title) VALUES ($1, $2, \'T\') RETURNING id', [b, project.rows[0]!.id])
      const inserted = await adminQuery(url, 'INSERT INTO guide_comments (tenant_id, task_id, body) VALUES ($1, $2, \'cross-tenant\')', [a, taskB.rows[0]!.id])
      t.equal(inserted.rowCount, 1, 'the broken key lets tenant A\'s comment point at tenant B\'s task')
    }
    const server = await productionServer(t, url)
    t.equal(server.status, 503, `a production server is not ready (${server.body})`)
    t.match(server.body, /tenancy rules/, 'and says why')
    t.equal(server.health, 200, 'while /healthz says the process is alive')
    t.match(server.log(), new RegExp(`tenancy invariants violated.*guide_comments: ${variant.rule}`), 'one log line names the violation')
    if (variant.rule === 'rls-enabled') t.notMatch(server.log(), /;;/, 'and the one log line of all violations stays readable (review 58: `;;`)')
  })
}

t.test('a production server on the README\'s resource becomes ready', async (t) => {
  const url = await databaseWith(t, [readmeMigration])
  const server = await productionServer(t, url)
  t.equal(server.status, 200, `ready (${server.body})`)
  t.notMatch(server.log(), /tenancy invariants violated/)
})
