// Lint rules: neostandard, the Fastify ecosystem's style (standard, no semicolons), with TypeScript.
import neostandard from 'neostandard'

export default neostandard({
  ts: true,
  ignores: ['src/generated/**', 'dist/**', 'coverage/**', '.data/**', 'bench/results/**', 'node_modules/**'],
})
