// The deployment's secrets (CSRF_SECRET, API_KEY_SECRET) and the keys derived from them; the JWT
// signing keys (src/auth/keys.ts) use only the file helper. In development a secret the environment
// does not give lives in the data folder. Several processes may start at once (tests, `npm run dev`
// twice): the file is written whole under a temporary name and linked into place, so nobody ever
// reads half a key, and the first writer wins.
import { hkdfSync, randomBytes, randomUUID } from 'node:crypto'
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import path from 'node:path'
import type { Config } from '../config.ts'

/**
 * The deployment secret `name`: the configuration's (the environment's) when set; else in production
 * throws `Error('<name> is required in production')`; else (development, tests) the file
 * DATA_DIR/keys/`file`, 32 random bytes as base64url, created on first use and then shared by every
 * process on that data folder.
 */
export async function deploymentSecret<Name extends 'CSRF_SECRET' | 'API_KEY_SECRET'> (config: Pick<Config, 'isProduction' | 'dataDir' | Name>, name: Name, file: string): Promise<string> {
  const value = config[name]
  if (value) return value
  if (config.isProduction) throw new Error(`${name} is required in production`)
  return readOrCreateSecretFile(path.join(config.dataDir, 'keys', file), () => randomBytes(32).toString('base64url'))
}

/** CSRF_SECRET, or outside production DATA_DIR/keys/csrf-secret; it also keys the link tokens and device cookies (each with its own derivedKey). */
export const csrfSecret = (config: Pick<Config, 'CSRF_SECRET' | 'isProduction' | 'dataDir'>): Promise<string> =>
  deploymentSecret(config, 'CSRF_SECRET', 'csrf-secret')

/**
 * A 32-byte key for one use, derived from a deployment secret by HKDF-SHA256 (RFC 5869; salt
 * "tenant-api", info `label`): keys of different labels are independent, so one secret serves
 * several uses without a value of one ever being valid for another. Changing a label changes its key.
 */
export function derivedKey (secret: string, label: string): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, 'tenant-api', label, 32))
}

/** The secret in `file`, written first with `create()` (mode 0600, in a 0700 folder) when there is none. */
export async function readOrCreateSecretFile (file: string, create: () => string): Promise<string> {
  try {
    return await readFile(file, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
  // Only the secrets' own folder is private: its parents (the data folder) must stay traversable,
  // e.g. by the embedded PostgreSQL's OS user.
  await mkdir(path.dirname(path.dirname(file)), { recursive: true })
  await mkdir(path.dirname(file), { mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'EEXIST') throw error
  })
  const temporary = `${file}.${process.pid}.${randomUUID()}.tmp`
  await writeFile(temporary, create(), { mode: 0o600 })
  try {
    await link(temporary, file)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
  } finally {
    await rm(temporary, { force: true })
  }
  return readFile(file, 'utf8')
}
