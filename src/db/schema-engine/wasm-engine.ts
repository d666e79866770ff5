// Loads Prisma's schema engine compiled to WebAssembly and connects it to a driver-adapter factory,
// so migrations need no native `schema-engine` binary (which the CLI would download).
//
// Pin-sensitive: `@prisma/schema-engine-wasm` is an internal package versioned by engine hash and its
// JS glue (wasm-bindgen) must match the .wasm's import names exactly. We prefer the .wasm shipped
// inside the installed `prisma` CLI (the exact engine build the CLI expects) and fall back to the
// package's own. Upgrading `prisma` means re-pinning `@prisma/schema-engine-wasm` to a glue whose
// imports match; a mismatch fails loudly at instantiate time (LinkError), never silently.
import { existsSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import * as glue from '@prisma/schema-engine-wasm/schema_engine_bg'
import type { MigrationDirectory, MigrationList, SchemaEngine, SchemaFilter } from '@prisma/schema-engine-wasm/schema_engine_bg'
import {
  bindMigrationAwareSqlAdapterFactory,
  type SqlMigrationAwareDriverAdapterFactory,
} from '@prisma/driver-adapter-utils'

export type { MigrationList, SchemaEngine, SchemaFilter }

/** No external tables/enums: the engine manages everything in the schema. */
export const noFilter: SchemaFilter = { externalTables: [], externalEnums: [] }

// A Rust panic's text only reaches this global registry (the thrown JS error just says "unreachable").
let lastPanicMessage = ''
const registry = globalThis as { PRISMA_WASM_PANIC_REGISTRY?: { set_message(message: string): void } }
registry.PRISMA_WASM_PANIC_REGISTRY ??= { set_message: (message) => { lastPanicMessage = message } }

/** The message of the last engine panic in this process ('' if none). */
export function lastEnginePanic (): string {
  return lastPanicMessage
}

/** Path of the engine .wasm in use: the installed CLI's build, else the npm package's. */
export function engineWasmPath (): string {
  const require = createRequire(import.meta.url)
  const cliBuild = path.join(path.dirname(require.resolve('prisma/package.json')), 'build/schema_engine_bg.wasm')
  if (existsSync(cliBuild)) return cliBuild
  const gluePath = fileURLToPath(import.meta.resolve('@prisma/schema-engine-wasm/schema_engine_bg'))
  return path.join(path.dirname(gluePath), 'schema_engine_bg.wasm')
}

// The project's lib (ES2023, no DOM) has no WebAssembly typings; declare the one call we make.
declare const WebAssembly: {
  instantiate(bytes: Uint8Array, imports: object): Promise<{ instance: { exports: object } }>
}

let loading: Promise<void> | undefined

/**
 * Instantiates the engine once per process. The package's entry point does `import * from './x.wasm'`,
 * which plain Node 20 cannot load (needs --experimental-wasm-modules), so we wire the glue by hand.
 */
function loadEngineWasm (): Promise<void> {
  loading ??= (async () => {
    const bytes = await readFile(engineWasmPath())
    const { instance } = await WebAssembly.instantiate(bytes, { './schema_engine_bg.js': withUnrefTimers(glue) })
    glue.__wbg_set_wasm(instance.exports)
    ;(instance.exports as { __wbindgen_start(): void }).__wbindgen_start()
  })()
  return loading
}

/**
 * The engine races its I/O against timers (e.g. a 10 s advisory-lock timeout) that it never clears;
 * a pending one would keep Node alive for seconds after the work is done. Its I/O keeps the process
 * alive while it matters, so the timers need not: unref them.
 */
function withUnrefTimers (imports: typeof glue): Record<string, unknown> {
  const patched: Record<string, unknown> = { ...imports }
  for (const name of Object.keys(imports).filter((key) => key.startsWith('__wbg_setTimeout_'))) {
    patched[name] = (callback: () => void, ms: number) => setTimeout(callback, ms >>> 0).unref()
  }
  return patched
}

/** Engine build hash of the loaded .wasm, e.g. for `schema-engine --version`. */
export async function engineVersion (): Promise<string> {
  await loadEngineWasm()
  return glue.version()
}

export type SchemaFile = [path: string, content: string]

/**
 * A schema engine over `factory`. `schemaFiles` are the Prisma schema files ([path, content]);
 * the engine uses them for commands that take no explicit schema.
 */
export async function createSchemaEngine (
  factory: SqlMigrationAwareDriverAdapterFactory,
  schemaFiles: SchemaFile[],
  log: (line: string) => void = () => {}
): Promise<SchemaEngine> {
  await loadEngineWasm()
  try {
    // An empty `datamodels` array panics in the engine's schema validation: pass undefined instead.
    return await glue.SchemaEngine.new(
      { datamodels: schemaFiles.length > 0 ? schemaFiles : undefined },
      log,
      bindMigrationAwareSqlAdapterFactory(factory)
    )
  } catch (error) {
    throw withPanicMessage(error)
  }
}

/** Adds the captured panic text (if any) to an engine error, whose own message is useless then. */
export function withPanicMessage (error: unknown): unknown {
  const panic = lastPanicMessage
  if (!panic || !(error instanceof Error) || error.message.includes(panic)) return error
  lastPanicMessage = ''
  error.message = `${error.message}\nSchema engine panic: ${panic}`
  return error
}

/**
 * Reads a migrations directory the way the Prisma CLI does (one sub-directory per migration holding
 * `migration.sql`, sorted by name; unreadable files are passed as errors for the engine to report).
 */
export async function loadMigrationsDirectory (dir: string, shadowDbInitScript = ''): Promise<MigrationList> {
  const baseDir = path.resolve(dir)
  const lockfile = await readFile(path.join(baseDir, 'migration_lock.toml'), 'utf8').catch(() => null)
  const entries = await readdir(baseDir, { withFileTypes: true }).catch(() => [])
  // Same order as the CLI's loader (localeCompare), so both agree on which migration comes first.
  const names = entries.filter((entry) => entry.isDirectory()).map((entry) => entry.name).sort((a, b) => a.localeCompare(b))
  const migrationDirectories: MigrationDirectory[] = await Promise.all(
    names.map(async (name) => ({
      path: name,
      migrationFile: {
        path: 'migration.sql',
        content: await readFile(path.join(baseDir, name, 'migration.sql'), 'utf8').then(
          (value) => ({ tag: 'ok' as const, value }),
          (error: Error) => ({ tag: 'error' as const, value: error.message })
        ),
      },
    }))
  )
  return {
    baseDir,
    lockfile: { path: 'migration_lock.toml', content: lockfile },
    migrationDirectories,
    shadowDbInitScript,
  }
}
