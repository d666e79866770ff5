// Demo and benchmark data. Written as the tables' owner (DATABASE_URL or the embedded superuser),
// so row-level security does not apply here. Idempotent: running it twice changes nothing.
import bcrypt from 'bcryptjs'
import pg from 'pg'

export interface DemoLogin {
  host: string
  email: string
  password: string
  role: string
}

// The same emails exist in both tenants with different passwords: accounts are per tenant.
const DEMO_TENANTS = [
  { slug: 'acme', name: 'Acme Corporation', password: 'acme-demo-password', projects: ['Website relaunch', 'Mobile app', 'Quarterly report'] },
  { slug: 'globex', name: 'Globex Inc.', password: 'globex-demo-password', projects: ['Hammock district', 'Doomsday device'] },
]
const DEMO_USERS = [
  { email: 'owner@example.com', name: 'Olivia Owner', role: 'owner' },
  { email: 'admin@example.com', name: 'Adam Admin', role: 'admin' },
  { email: 'demo@example.com', name: 'Dana Demo', role: 'member' },
]
const DEMO_TASKS = [
  { title: 'Write the brief', status: 'done' },
  { title: 'Review with the team', status: 'doing' },
  { title: 'Ship it', status: 'todo' },
]

async function withClient<T> (url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url })
  client.on('error', () => {}) // surfaced by the pending query; without a listener it would end the process
  await client.connect()
  try {
    return await fn(client)
  } finally {
    await client.end()
  }
}

/** Creates the demo tenants acme and globex with users, projects and tasks; returns the logins. */
export async function seedDemo (ownerUrl: string, bcryptCost: number, baseDomain = 'localhost'): Promise<DemoLogin[]> {
  const logins: DemoLogin[] = []
  await withClient(ownerUrl, async (db) => {
    for (const tenant of DEMO_TENANTS) {
      const { rows } = await db.query<{ id: string }>(
        `INSERT INTO tenants (slug, name) VALUES ($1, $2)
         ON CONFLICT (slug) DO UPDATE SET slug = EXCLUDED.slug RETURNING id`, [tenant.slug, tenant.name])
      const tenantId = rows[0]!.id
      const hash = await bcrypt.hash(tenant.password, bcryptCost)
      for (const user of DEMO_USERS) {
        await db.query(
          `INSERT INTO users (tenant_id, email, name, role, password_hash) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (tenant_id, email) DO NOTHING`, [tenantId, user.email, user.name, user.role, hash])
        logins.push({ host: `${tenant.slug}.${baseDomain}`, email: user.email, password: tenant.password, role: user.role })
      }
      const existing = await db.query('SELECT 1 FROM projects WHERE tenant_id = $1 LIMIT 1', [tenantId])
      if (existing.rowCount) continue
      for (const name of tenant.projects) {
        const project = await db.query<{ id: string }>(
          'INSERT INTO projects (tenant_id, name, description) VALUES ($1, $2, $3) RETURNING id', [tenantId, name, `${tenant.name}: ${name}`])
        for (const task of DEMO_TASKS) {
          await db.query('INSERT INTO tasks (tenant_id, project_id, title, status) VALUES ($1, $2, $3, $4)',
            [tenantId, project.rows[0]!.id, task.title, task.status])
        }
      }
    }
  })
  return logins
}

/** Seeds the demo data when the database has no tenant at all (a brand-new embedded database). */
export async function seedDemoOnce (ownerUrl: string, bcryptCost: number, baseDomain: string, log: (message: string) => void) {
  const empty = await withClient(ownerUrl, async (db) => (await db.query('SELECT 1 FROM tenants LIMIT 1')).rowCount === 0)
  if (!empty) return
  const logins = await seedDemo(ownerUrl, bcryptCost, baseDomain)
  log(`[seed] demo tenants created; sign in at http://${logins[0]!.host}:<port> as ${logins[0]!.email} / ${logins[0]!.password} (see README)`)
}

export const BENCH_PASSWORD = 'bench-password-0001'

/**
 * Benchmark data in bulk SQL (seconds, not minutes): `tenants` tenants named bench-00001…, each
 * with one owner (owner@example.com / BENCH_PASSWORD) and `projects` projects. Idempotent.
 */
export async function seedBench (ownerUrl: string, tenants: number, projects: number, bcryptCost: number): Promise<void> {
  const hash = await bcrypt.hash(BENCH_PASSWORD, bcryptCost)
  await withClient(ownerUrl, async (db) => {
    await db.query(
      `INSERT INTO tenants (slug, name)
       SELECT 'bench-' || lpad(n::text, 5, '0'), 'Bench tenant ' || n FROM generate_series(1, $1) AS n
       ON CONFLICT (slug) DO NOTHING`, [tenants])
    await db.query(
      `INSERT INTO users (tenant_id, email, name, role, password_hash)
       SELECT id, 'owner@example.com', 'Bench Owner', 'owner', $1 FROM tenants WHERE slug LIKE 'bench-%'
       ON CONFLICT (tenant_id, email) DO NOTHING`, [hash])
    // Spread creation times so that "newest first" has real work to do.
    await db.query(
      `INSERT INTO projects (tenant_id, name, description, created_at)
       SELECT t.id, 'Project ' || n, 'Benchmark project ' || n, now() - make_interval(secs => n)
       FROM tenants t CROSS JOIN generate_series(1, $1) AS n
       WHERE t.slug LIKE 'bench-%' AND NOT EXISTS (SELECT 1 FROM projects p WHERE p.tenant_id = t.id)`, [projects])
    await db.query('ANALYZE')
  })
}
