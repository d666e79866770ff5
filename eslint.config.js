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
]
