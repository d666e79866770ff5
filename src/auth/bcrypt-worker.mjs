// A bcrypt worker thread of the piscina pool (see passwords.ts). Plain JavaScript so that it loads the same way under
// tsx, ts-node (tests) and a compiled build. Synchronous bcrypt is right here: this thread does
// nothing else, and the main thread's event loop never waits for it.
import { readlinkSync } from 'node:fs'
import os from 'node:os'
import { threadId } from 'node:worker_threads'
import bcrypt from 'bcryptjs'

// On a machine with few cores, a login burst would still take the CPU from the event loop (and
// from PostgreSQL). On Linux a thread has its own nice value: this thread takes the lowest
// priority, so hashing uses the CPU only when requests do not need it. Elsewhere: no-op.
try {
  os.setPriority(Number(readlinkSync('/proc/thread-self').split('/').pop()), 19)
} catch {}

export default function run ({ op, args }) {
  if (op === 'hash') return bcrypt.hashSync(args[0], args[1])
  if (op === 'compare') return bcrypt.compareSync(args[0], args[1])
  if (op === 'threadId') return threadId
  throw new Error(`unknown operation ${op}`)
}
