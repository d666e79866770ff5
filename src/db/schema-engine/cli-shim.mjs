#!/usr/bin/env node
// The program the Prisma CLI runs as its schema engine (PRISMA_SCHEMA_ENGINE_BINARY, set in
// prisma.config.ts), in place of the native binary the CLI would download. It speaks the binary's
// protocol: newline-delimited JSON-RPC 2.0 on stdin/stdout, JSON log lines on stderr, plus the
// one-shot `--version` and `cli <command>` forms, and delegates to the WebAssembly engine.
// Plain .mjs because the CLI executes it directly; the logic lives in the TypeScript modules next
// to it, loaded through tsx (resolved relative to this file, so the CLI's cwd does not matter).
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { register } from 'tsx/esm/api'

register({ tsconfig: new URL('../../../tsconfig.json', import.meta.url).pathname })
const { createSchemaEngine, engineVersion, lastEnginePanic } = await import('./wasm-engine.ts')
const { pgConnectionSettings, pgMigrationAdapterFactory } = await import('./pg-adapter-factory.ts')
const { assertMigrationOrder, outOfOrderAllowed } = await import('../migration-order.ts')
const pg = (await import('pg')).default

const argv = process.argv.slice(2)
const log = (level, message, fields = {}) =>
  process.stderr.write(`${JSON.stringify({ level, fields: { message, ...fields }, target: 'schema_engine::logger' })}\n`)

if (argv.includes('--version')) {
  console.log(`schema-engine-cli ${await engineVersion()}`)
  process.exit(0)
}

const optionValues = (name) => argv.flatMap((arg, i) => (arg === name && argv[i + 1] !== undefined ? [argv[i + 1]] : []))
const datasource = JSON.parse(optionValues('--datasource')[0] ?? '{}')
if (typeof datasource.url !== 'string' || !/^postgres(ql)?:\/\//.test(datasource.url)) {
  log('ERROR', 'This schema engine (WebAssembly shim) needs a postgresql:// datasource url in prisma.config.ts.')
  process.exit(1)
}
const databaseUrl = datasource.url
const databaseName = decodeURIComponent(new URL(databaseUrl).pathname.slice(1)) || 'postgres'

/** Runs `run` on a connection to the server's maintenance database (the target may not exist yet). */
async function onServer (run) {
  const url = new URL(pgConnectionSettings(databaseUrl).connectionString)
  url.pathname = '/postgres'
  const client = new pg.Client({ connectionString: url.toString() })
  await client.connect()
  try {
    return await run(client)
  } finally {
    await client.end()
  }
}
// Asked of the target database itself: the maintenance one may be closed to the migrating login
// (REVOKE CONNECT ON DATABASE postgres FROM PUBLIC, a managed PostgreSQL) or not served at all
// (PgBouncer listing only the application's database), and `migrate deploy` asks this first.
async function databaseExists () {
  const client = new pg.Client({ connectionString: pgConnectionSettings(databaseUrl).connectionString })
  client.on('error', () => {})
  try {
    await client.connect()
    return true
  } catch (error) {
    if (error?.code === '3D000') return false // invalid_catalog_name: no such database
    throw error
  } finally {
    await client.end().catch(() => {})
  }
}
const createDatabase = () =>
  onServer((c) => c.query(`CREATE DATABASE "${databaseName.replaceAll('"', '""')}"`))

if (argv[0] === 'cli' || argv.includes('cli')) {
  // One-shot commands the CLI runs before RPC. It ignores the first stderr line, as the binary's is a banner.
  log('INFO', 'Starting schema engine CLI (WebAssembly shim)')
  const command = argv[argv.indexOf('cli') + 1]
  try {
    const exists = await databaseExists()
    if (command === 'can-connect-to-database' && !exists) {
      log('ERROR', `Database \`${databaseName}\` does not exist`, { error_code: 'P1003' })
      process.exit(1)
    }
    if (command === 'create-database' && !exists) await createDatabase()
    if (command === 'drop-database') await onServer((c) => c.query(`DROP DATABASE IF EXISTS "${databaseName.replaceAll('"', '""')}"`))
    process.exit(0)
  } catch (error) {
    log('ERROR', `Can't reach database server: ${error.message}`, { error_code: 'P1001' })
    process.exit(1)
  }
}

const schemaFiles = optionValues('--datamodels').map((file) => [file, readFileSync(file, 'utf8')])
const factory = pgMigrationAdapterFactory(databaseUrl)
let enginePromise
// The pooler check runs first so that its message reaches the CLI (an error thrown inside the
// engine's connect comes out as "External error id#0").
const engine = () =>
  (enginePromise ??= factory.assertDirect().then(() =>
    createSchemaEngine(factory, schemaFiles, (line) => process.stderr.write(line.endsWith('\n') ? line : `${line}\n`))))

const send = (message) => process.stdout.write(`${JSON.stringify({ jsonrpc: '2.0', ...message })}\n`)
let nextPrintId = 1_000_000

// The binary opens shadow databases inside createMigration/evaluateDataLoss; the WebAssembly engine
// only reuses a shadow-replayed schema cached by diagnoseMigrationHistory for the same migrations.
const warmShadowCache = async (params) => {
  await (await engine())
    .diagnoseMigrationHistory({ migrationsList: params.migrationsList, optInToShadowDatabase: true, filters: params.filters })
    .catch(() => {})
}

/** Methods whose wasm behaviour differs from the binary's; the rest pass straight through. */
const handlers = {
  // `migrate deploy` and `migrate dev` apply through this: refuse a migration that sorts before an
  // applied one, as the server does (src/db/migration-order.ts), unless MIGRATE_OUT_OF_ORDER=true.
  async applyMigrations (params) {
    const instance = await engine() // the pooler check first
    if (!outOfOrderAllowed(process.env.MIGRATE_OUT_OF_ORDER)) {
      await assertMigrationOrder(databaseUrl, params.migrationsList.migrationDirectories.map((folder) => folder.path))
    }
    return instance.applyMigrations(params)
  },
  async createMigration (params) {
    await warmShadowCache(params)
    return (await engine()).createMigration(params)
  },
  async evaluateDataLoss (params) {
    await warmShadowCache(params)
    return (await engine()).evaluateDataLoss(params)
  },
  async diff (params) {
    // The binary prints through a `print` request to the CLI and returns stdout: null.
    const result = await (await engine()).diff(params)
    if (result.stdout) send({ id: nextPrintId++, method: 'print', params: { content: result.stdout } })
    return { exitCode: result.exitCode, stdout: null }
  },
  getDatabaseVersion: async () => (await engine()).version(),
  async createDatabase () {
    if (!(await databaseExists())) await createDatabase()
    return { databaseName }
  },
}

let currentRequest // the request being handled, to answer it if the engine dies mid-way

async function handle (request) {
  currentRequest = request
  try {
    const handler = handlers[request.method]
    if (handler) return send({ id: request.id, result: (await handler(request.params ?? {})) ?? {} })
    const instance = await engine()
    if (typeof instance[request.method] !== 'function') throw new Error(`Method not supported by the WebAssembly schema engine: ${request.method}`)
    send({ id: request.id, result: (await instance[request.method](request.params ?? {})) ?? {} })
  } catch (error) {
    await fail(request, error)
  } finally {
    currentRequest = undefined
  }
}

async function fail (request, error) {
  const panic = lastEnginePanic()
  send({
    id: request?.id,
    error: {
      code: 4466,
      message: 'An error happened. Check the data field for details.',
      data: { is_panic: Boolean(panic), message: panic || String(error?.message ?? error), error_code: error?.code, meta: error?.meta ?? {} },
    },
  })
  if (panic) await shutdown(101) // a panicked WebAssembly instance must not be reused
}

// A panic inside an engine continuation surfaces as an uncaught "unreachable" rather than a
// rejection. Answer the pending request with it: if we just died, the CLI would not notice (it
// treats an exited engine's silence as success, e.g. `migrate diff --exit-code` returning 0).
process.on('uncaughtException', async (error) => {
  log('ERROR', String(lastEnginePanic() || error?.stack || error))
  if (currentRequest) await fail(currentRequest, error)
  await shutdown(101)
})
// The CLI ends stdin and then SIGTERMs us at once: still close connections and drop shadow databases.
process.on('SIGTERM', () => queue.then(() => shutdown(0)))

async function shutdown (code) {
  await factory.close().catch(() => {})
  process.exit(code)
}

let queue = Promise.resolve() // the engine handles one request at a time (`&mut self`)
createInterface({ input: process.stdin })
  .on('line', (line) => {
    if (!line.trim()) return
    const message = JSON.parse(line)
    if (message.method === undefined) return // the CLI's answer to our `print` request
    queue = queue.then(() => handle(message))
  })
  .on('close', () => queue.then(() => shutdown(0)))
