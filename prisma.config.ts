// Prisma CLI configuration. Prisma 7's CLI would download a native schema engine from a host many
// build machines cannot reach; we point it at our WebAssembly-backed engine instead (unless the
// caller chose another binary), so `prisma migrate *`, `prisma db *` and `prisma generate` work offline.
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'prisma/config'
import { cliDatabaseUrl } from './src/db/cli-url.ts'
import { loadEnvFileIfPresent } from './src/env-file.ts'

loadEnvFileIfPresent()

const root = path.dirname(fileURLToPath(import.meta.url))
process.env.PRISMA_SCHEMA_ENGINE_BINARY ??= path.join(root, 'src/db/schema-engine/cli-shim.mjs')

export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: {
    path: 'prisma/migrations',
    seed: 'tsx prisma/seed.ts',
  },
  datasource: { url: cliDatabaseUrl() },
})
