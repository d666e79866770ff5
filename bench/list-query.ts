// The benchmark's one query, "the 20 newest projects of a tenant", as every client under comparison
// sends it: GET /v1/projects?limit=20's own arguments (routes/projects.ts: 21 rows, the extra one
// tells whether a next page exists) for Prisma, and the same in plain SQL for the `pg` baseline.
// Shared by bench/baseline-server.ts, bench/prisma-only-server.ts, bench/ab.ts and
// test/prisma-promotion-child.ts, so that a change to the route's pagination reaches them all.
import { pageArgs } from '../src/api/pagination.ts'
import { projectFields } from '../routes/projects.ts'

/** The list route's findMany arguments for `?limit=20` (a fresh object per call: Prisma's extensions may rewrite arguments). */
export function listArgs () {
  return { ...pageArgs({ limit: 20 }), select: projectFields }
}

/** The same query in SQL ($1: the tenant's id), for clients that bypass Prisma and RLS. */
export const LIST_SQL = `SELECT id, name, description, created_at, updated_at FROM projects WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT ${pageArgs({ limit: 20 }).take}`
