// Development secrets that live in the data folder (JWT keys, CSRF secret) when the environment
// gives none. Several processes may start at once (tests, `npm run dev` twice): the file is written
// whole under a temporary name and linked into place, so nobody ever reads half a key, and the
// first writer wins.
import { randomUUID } from 'node:crypto'
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import path from 'node:path'

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
