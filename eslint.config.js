// Lint rules: neostandard, the Fastify ecosystem's style (standard, no semicolons), with TypeScript.
import neostandard from 'neostandard'

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
    files: ['src/**/*.ts'],
    rules: {
      'no-restricted-syntax': ['error', {
        selector: "TSNonNullExpression > MemberExpression[object.name='request']",
        message: 'Read request decorations through their throwing getters (request.principal, request.tenantId, request.db).',
      }],
    },
  },
]
