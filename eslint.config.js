// Lint rules: neostandard, the Fastify ecosystem's style (standard, no semicolons), with TypeScript.
import neostandard from 'neostandard'

// String-built SQL: `$queryRawUnsafe`, `$executeRawUnsafe` and `Prisma.raw` take a string, so a
// value spliced into it is SQL injection (OWASP Top 10 A03); the tagged `$queryRaw`/`$executeRaw` and
// `Prisma.sql` bind every value as a parameter. The few calls that run a constant statement, SQL
// written by a library with its values bound, or a checked identifier, say why on the line
// (eslint-disable-next-line … -- reason).
const UNSAFE_RAW_SQL = [
  ...['$queryRawUnsafe', '$executeRawUnsafe'].map((property) => ({ property })),
  { object: 'Prisma', property: 'raw' },
].map((restriction) => ({
  ...restriction,
  message: 'String-built SQL: use the tagged templates $queryRaw / $executeRaw / Prisma.sql, which bind each interpolated value as a parameter.',
}))
/** Files of code, TypeScript or JavaScript, under `dir`. */
const codeIn = (dir) => `${dir}/**/*.{ts,mts,cts,js,mjs,cjs}`
/** The application's code. */
const APPLICATION = ['src', 'routes', 'plugins', 'scripts', 'prisma'].map(codeIn)
// Tenant routes read and write through request.db, the tenant's scoped client. The unscoped client
// skips the scoped client's filter, and under row-level security it sees nothing without a tenant;
// a client of another tenant id (`database.forTenant`) or the tables' owner's connection
// (`database.ownerUrl`, `pg`) would step around the Host's tenant: platform routes
// (routes/platform/) may; a tenant route that must, says why on the line.
const PLATFORM_CLIENTS = [
  { property: 'platformDb', message: 'Tenant routes use request.db (the scoped client); the unscoped platformDb is for platform code.' },
  { property: 'forTenant', message: 'Tenant routes use request.db, the client of the tenant of the Host: never a client of a tenant id the route picks.' },
  { property: 'ownerUrl', message: "Tenant routes use request.db: the tables' owner's connection is for migrations and checks." },
]

export default [
  ...neostandard({
    ts: true,
    ignores: ['src/generated/**', 'dist/**', 'coverage/**', '.data/**', 'bench/results/**', 'node_modules/**', 'docs/**'],
  }),
  {
    rules: {
      // The test fixtures have a method named `call` (`acme.call('owner', …)`): not Function#call.
      'no-useless-call': 'off',
      // `new Promise((r) => setTimeout(r, ms))` is the idiom for a pause; the name carries nothing.
      'promise/param-names': 'off',
      // `void promise` marks a deliberate fire-and-forget (its errors are handled where it settles).
      'no-void': 'off',
    },
  },
  {
    // Values a hook puts on the request are read through throwing getters (request.principal,
    // request.tenantId, request.db: plugins/auth.ts, plugins/tenant.ts), never `request.user!`: an
    // assertion would hide a route registered without its hook. Routes and plugins use none at all.
    files: ['routes/**/*.ts', 'plugins/**/*.ts'],
    rules: { '@typescript-eslint/no-non-null-assertion': 'error' },
  },
  {
    files: APPLICATION,
    rules: { 'no-restricted-properties': ['error', ...UNSAFE_RAW_SQL] },
  },
  {
    files: [codeIn('routes')],
    ignores: ['routes/platform/**'],
    rules: {
      'no-restricted-properties': ['error', ...UNSAFE_RAW_SQL, ...PLATFORM_CLIENTS],
      'no-restricted-imports': ['error', { paths: [{ name: 'pg', message: 'Tenant routes use request.db, never a connection of their own.' }] }],
    },
  },
  {
    files: ['src/**/*.ts'],
    rules: {
      'no-restricted-syntax': ['error', {
        selector: "TSNonNullExpression > MemberExpression[object.name='request']",
        message: 'Read request decorations through their throwing getters (request.principal, request.tenantId, request.db).',
      }],
    },
  },
]
