// The lint rules that guard tenancy in code a team adds (eslint.config.js): a tenant route that
// reaches for the unscoped client, and string-built SQL anywhere in the application, fail `npm run
// lint` (CI's first stage). Linted as new files would be, at their paths in this repository.
import path from 'node:path'
import { ESLint } from 'eslint'
import t from 'tap'

const repoRoot = path.resolve(import.meta.dirname, '..')
const eslint = new ESLint({ cwd: repoRoot })

/**
 * What `npm run lint` reports for `code` saved as `file` (a path inside the repository): the rules
 * under test (`no-restricted-properties`, `no-restricted-imports`) and any parse error; style rules
 * are not asked here.
 */
async function lintAs (file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: path.join(repoRoot, file) })
  return result!.messages.filter((m) => m.fatal || m.ruleId?.startsWith('no-restricted-')).map((m) => m.ruleId ?? m.message)
}

const TENANT_ROUTE = `import type { FastifyInstance } from 'fastify'

export default async function commentRoutes (app: FastifyInstance) {
  app.get('/v1/comments', async (request) => {
    return await CLIENT.comment.findMany()
  })
}
`
const withClient = (client: string) => TENANT_ROUTE.replace('CLIENT', client)

t.test('a tenant route may not use the unscoped client; platform routes may', async (t) => {
  t.same(await lintAs('routes/comments.ts', withClient('request.db')), [], 'request.db passes')
  t.same(await lintAs('routes/comments.ts', withClient('app.platformDb')), ['no-restricted-properties'], 'app.platformDb in a tenant route fails')
  t.same(await lintAs('routes/comments.ts', withClient('request.server.platformDb')), ['no-restricted-properties'], 'reached through request.server too')
  t.same(await lintAs('routes/comments.ts', withClient("app.database.forTenant(String(request.headers['x-tenant']))")), ['no-restricted-properties'], 'a client of a tenant id the route picks fails')
  t.same(await lintAs('routes/comments.ts', 'import pg from \'pg\'\nexport const owner = (app: any) => new pg.Client({ connectionString: app.database.ownerUrl })\n'), ['no-restricted-imports', 'no-restricted-properties'], "the tables' owner's connection fails")
  t.same(await lintAs('routes/platform/comments.ts', withClient('app.platformDb')), [], 'a platform route may')
  t.same(await lintAs('routes/comments.js', withClient('app.platformDb').replace("import type { FastifyInstance } from 'fastify'\n", '').replace('(app: FastifyInstance)', '(app)')), ['no-restricted-properties'], 'in JavaScript too')
})

t.test('string-built SQL fails lint in routes, plugins and src; the tagged template passes', async (t) => {
  const query = (file: string, call: string) => file.endsWith('.ts')
    ? `export async function find (db: any, id: string) {\n  return await ${call}\n}\n`
    : `export async function find (db, id) {\n  return await ${call}\n}\n`
  const id = '$' + '{id}' // the interpolation inside the linted code
  for (const file of ['routes/comments.ts', 'plugins/comments.ts', 'src/comments/store.ts', 'src/comments/store.mjs']) {
    t.same(await lintAs(file, query(file, `db.$queryRawUnsafe(\`SELECT * FROM comments WHERE id = '${id}'\`)`)), ['no-restricted-properties'], `${file}: $queryRawUnsafe fails`)
    t.same(await lintAs(file, query(file, `db.$executeRawUnsafe(\`DELETE FROM comments WHERE id = '${id}'\`)`)), ['no-restricted-properties'], `${file}: $executeRawUnsafe fails`)
    t.same(await lintAs(file, query(file, `db.$queryRaw(Prisma.raw(\`SELECT * FROM comments WHERE id = '${id}'\`))`)), ['no-restricted-properties'], `${file}: Prisma.raw fails`)
    t.same(await lintAs(file, query(file, `db.$queryRaw\`SELECT * FROM comments WHERE id = ${id}::uuid\``)), [], `${file}: $queryRaw\`…\` passes`)
  }
})
