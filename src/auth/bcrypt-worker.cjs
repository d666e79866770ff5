// A bcrypt worker thread of the piscina pool (see passwords.ts). Plain JavaScript so that it loads the same way under
// tsx, ts-node (tests) and a compiled build. Synchronous bcrypt is right here: this thread does
// nothing else, and the main thread's event loop never waits for it.
//
// CommonJS, not ESM: piscina loads its worker file with require() first, and on Node 20.19+ a
// require() of an .mjs file goes through require(esm), which under the test runner's loader hooks
// once aborted a test process with a native assertion (`CreateRequiredModuleFacade`, 2026-12-05).
// A .cjs file is required the ordinary way.
'use strict'
const { readlinkSync } = require('node:fs')
const os = require('node:os')
const { threadId } = require('node:worker_threads')
const bcrypt = require('bcryptjs')

// On a machine with few cores, a login burst would still take the CPU from the event loop (and
// from PostgreSQL). On Linux a thread has its own nice value: this thread takes the lowest
// priority, so hashing uses the CPU only when requests do not need it. Elsewhere: no-op.
try {
  os.setPriority(Number(readlinkSync('/proc/thread-self').split('/').pop()), 19)
} catch {}

/** One task: `{ op: 'hash', args: [plain, cost] }` → hash, `compare` → boolean, `threadId` → number. */
module.exports = function run ({ op, args }) {
  if (op === 'hash') return bcrypt.hashSync(args[0], args[1])
  if (op === 'compare') return bcrypt.compareSync(args[0], args[1])
  if (op === 'threadId') return threadId
  throw new Error(`unknown operation ${op}`)
}
