// The benchmark's one query, "the newest projects of a tenant", as every client under comparison
// sends it: GET /v1/projects?limit=20's own arguments (src/api/pagination.ts pageArgs: 21 rows, the
// extra one tells whether a next page exists) for Prisma, and the same in plain SQL for the `pg`
// baseline. Shared by bench/run.ts, bench/baseline-server.ts, bench/prisma-only-server.ts,
// bench/ab.ts and test/prisma-promotion-child.ts, so that a change to the route's pagination
// reaches them all. Free of Prisma's runtime (pagination.ts is): the plain `pg` server imports it.
import type { projectFields } from '../routes/projects.ts'
import { page, pageArgs } from '../src/api/pagination.ts'
import type { Database } from '../src/db/database.ts'

/** Rows per page the benchmark asks for. */
export const LIST_LIMIT = 20

/** The API route the benchmark lists with. */
export const LIST_PATH = `/v1/projects?limit=${LIST_LIMIT}`

/**
 * The route's findMany arguments for LIST_PATH with `select` (pass routes/projects.ts's
 * `projectFields`): `{ take: LIST_LIMIT + 1, orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
 * where: {}, select }`. A fresh object per call: Prisma's extensions may rewrite arguments.
 */
export function listArgs<Select> (select: Select) {
  return { ...pageArgs({ limit: LIST_LIMIT }), select }
}

/**
 * The route's answer for tenant `tenantId` through `db`'s scoped client (pass routes/projects.ts's
 * `projectFields`): `{ items, nextCursor }` with LIST_LIMIT items, as GET LIST_PATH answers. Throws
 * what the query throws. (Both imports of the database and the route are types only: this module
 * stays free of Prisma's runtime.)
 */
export async function listPage (db: Database, tenantId: string, select: typeof projectFields) {
  return page(await db.forTenant(tenantId).project.findMany(listArgs(select)), { limit: LIST_LIMIT })
}

/**
 * The same query in SQL, for clients that bypass Prisma and RLS: `$1` is the tenant's id; the rows
 * (LIST_LIMIT + 1 of them) have the table's snake_case columns (created_at, updated_at).
 */
export const LIST_SQL = `SELECT id, name, description, created_at, updated_at FROM projects WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT ${pageArgs({ limit: LIST_LIMIT }).take}`
