// `npm run test:mutations`: applies each curated fault of test/mutations/faults.ts to the source, one
// at a time, runs the test files that must catch it, and restores the source. Prints each fault
// with the test that caught it (or SURVIVED), and the total time; exits non-zero on a survivor, on a
// failing baseline, or when a fault's `find` no longer matches its file exactly once.
//
//   npm run test:mutations                      every fault (after a baseline run of their tests)
//   npm run test:mutations -- name another      only these faults (names or substrings of names)
//   npm run test:mutations -- --no-baseline     skip the unmodified run of the tests
//   npm run test:mutations -- --check           only check that every fault still applies
//
// One PostgreSQL serves every run: an embedded one started here (or TEST_DATABASE_URL); each run of
// test/run.ts migrates its own template from the (possibly patched) migrations. Source files are
// restored after each fault, on Ctrl-C and on crashes; a run killed outright (SIGKILL) leaves a
// backup that the next run restores before anything else (.data/mutations-backup.json).
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/db/embedded-postgres.ts'
import { freePort } from '../helper.ts'
import { FAULTS, type Edit, type Fault } from './faults.ts'

const ROOT = path.resolve(import.meta.dirname, '../..')
const BACKUP = path.join(ROOT, '.data/mutations-backup.json')
/** A fault whose tests have not failed by then counts as a survivor (tap's own timeout is 120 s per file). */
const FAULT_TIMEOUT_MS = 10 * 60_000

const args = process.argv.slice(2)
const onlyCheck = args.includes('--check')
const baseline = !args.includes('--no-baseline')
const selectors = args.filter((a) => !a.startsWith('--'))

// ── Restoring the source, whatever happens ────────────────────────────────────────────────────
let originals = new Map<string, string>()

function restore (): void {
  for (const [file, text] of originals) writeFileSync(path.join(ROOT, file), text)
  originals = new Map()
  rmSync(BACKUP, { force: true })
}

function recoverFromKilledRun (): void {
  if (!existsSync(BACKUP)) return
  const saved = JSON.parse(readFileSync(BACKUP, 'utf8')) as Record<string, string>
  for (const [file, text] of Object.entries(saved)) writeFileSync(path.join(ROOT, file), text)
  rmSync(BACKUP, { force: true })
  console.log(`restored ${Object.keys(saved).join(', ')} from a previous run that was killed`)
}

const edits = (fault: Fault): Edit[] => [fault, ...(fault.also ?? [])]

/** Applies edits in order; each `find` must occur exactly once in the file as it is at that point. */
function apply (fault: Fault): void {
  const texts = new Map<string, string>()
  for (const edit of edits(fault)) {
    const text = texts.get(edit.file) ?? readFileSync(path.join(ROOT, edit.file), 'utf8')
    texts.set(edit.file, text.replace(edit.find, () => edit.replace))
  }
  originals = new Map([...texts.keys()].map((file) => [file, readFileSync(path.join(ROOT, file), 'utf8')]))
  mkdirSync(path.dirname(BACKUP), { recursive: true })
  writeFileSync(BACKUP, JSON.stringify(Object.fromEntries(originals)))
  for (const [file, text] of texts) writeFileSync(path.join(ROOT, file), text)
}

/** Why the fault cannot be applied to the current source (needs re-anchoring), or null. */
function anchorProblem (fault: Fault): string | null {
  const texts = new Map<string, string>()
  for (const edit of edits(fault)) {
    const full = path.join(ROOT, edit.file)
    if (!existsSync(full)) return `${edit.file} does not exist`
    const text = texts.get(edit.file) ?? readFileSync(full, 'utf8')
    const count = text.split(edit.find).length - 1
    if (count !== 1) return `${edit.file}: \`${edit.find.trim().slice(0, 70)}\` occurs ${count} times (must be exactly once)`
    texts.set(edit.file, text.replace(edit.find, () => edit.replace))
  }
  for (const test of fault.tests) if (!existsSync(path.join(ROOT, test))) return `${test} does not exist`
  return null
}

// ── Running tests ─────────────────────────────────────────────────────────────────────────────
let child: ReturnType<typeof spawn> | undefined
let embedded: EmbeddedPostgres | undefined
let embeddedDir: string | undefined

interface Outcome {
  failed: boolean
  timedOut: boolean
  /** "file › subtest › assertion" of the first failing assertion. */
  caughtBy?: string
  output: string
}

/**
 * "file › subtest › assertion" of the first failing assertion in tap's output: the assertion's
 * `not ok` line, and the `# Subtest:` headers above it at each smaller indentation.
 */
export function firstFailure (output: string): string | undefined {
  const headers: string[] = [] // headers[indent / 4]: the latest subtest opened at that depth
  for (const line of output.split('\n')) {
    const header = /^(\s*)# Subtest: (.*)$/.exec(line)
    if (header) {
      const depth = header[1]!.length / 4
      headers.length = depth
      headers[depth] = header[2]!
      continue
    }
    const failure = /^(\s*)not ok \d+ - (.*?)(?: # time=[\d.]+m?s)?$/.exec(line)
    if (failure) {
      const depth = failure[1]!.length / 4
      const chain = [...headers.slice(0, depth), failure[2]!]
      // A failing subtest's own summary line repeats its header: keep the name once.
      return chain.filter((name, k) => name !== chain[k - 1]).join(' › ')
    }
  }
  return undefined
}

function runTests (files: string[], grep: string[] | undefined, adminUrl: string, bail = true): Promise<Outcome> {
  return new Promise((resolve) => {
    // --bail: the first failing assertion is enough to call the fault caught.
    const tapArgs = [...files, ...(grep ?? []).map((g) => `--grep=${g}`), ...(bail ? ['--bail'] : [])]
    child = spawn(process.execPath, ['--import', 'tsx', 'test/run.ts', ...tapArgs], {
      cwd: ROOT,
      env: { ...process.env, TEST_DATABASE_URL: adminUrl, FORCE_COLOR: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group: tap and its test processes are stopped together
    })
    let output = ''
    child.stdout!.on('data', (chunk) => (output += chunk))
    child.stderr!.on('data', (chunk) => (output += chunk))
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      killChild()
    }, FAULT_TIMEOUT_MS)
    const group = child.pid
    child.on('exit', (code) => {
      clearTimeout(timer)
      // tap's --bail ends the run without the tests' teardowns: the server processes they started
      // would keep running (and serving load) and slow every later fault and benchmark. (A
      // PostgreSQL of a test's own is its own process group: it stays, idle, in .data/.)
      if (group) try { process.kill(-group, 'SIGKILL') } catch {}
      child = undefined
      resolve({ failed: code !== 0, timedOut, caughtBy: firstFailure(output), output })
    })
  })
}

function killChild (): void {
  if (child?.pid) {
    try {
      process.kill(-child.pid, 'SIGKILL')
    } catch {}
  }
}

async function shutdown (code: number): Promise<never> {
  killChild()
  restore()
  await embedded?.stop().catch(() => {})
  if (embeddedDir) rmSync(embeddedDir, { recursive: true, force: true })
  process.exit(code)
}

process.on('SIGINT', () => {
  console.log('\ninterrupted: restoring the source')
  void shutdown(130)
})
process.on('SIGTERM', () => void shutdown(143))
process.on('uncaughtException', (error) => {
  console.error(error)
  void shutdown(1)
})
process.on('exit', () => restore()) // last resort: synchronous

// ── Main ──────────────────────────────────────────────────────────────────────────────────────
recoverFromKilledRun()
const names = new Set<string>()
for (const fault of FAULTS) {
  if (names.has(fault.name)) throw new Error(`two faults are named ${fault.name}`)
  names.add(fault.name)
}
const selected = selectors.length ? FAULTS.filter((f) => selectors.some((s) => f.name.includes(s))) : FAULTS
if (selected.length === 0) {
  console.error(`no fault matches ${selectors.join(', ')}`)
  process.exit(2)
}
const unanchored = selected.map((f) => [f.name, anchorProblem(f)] as const).filter(([, problem]) => problem)
if (unanchored.length) {
  console.error('These faults no longer apply to the source; re-anchor them in test/mutations/faults.ts:')
  for (const [name, problem] of unanchored) console.error(`  ${name}: ${problem}`)
  process.exit(2)
}
console.log(`${selected.length} faults apply to the current source`)
if (onlyCheck) process.exit(0)

const started = Date.now()
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`
let adminUrl = process.env.TEST_DATABASE_URL
if (!adminUrl) {
  embeddedDir = path.join(ROOT, '.data/test-postgres', `mutations-${process.pid}`)
  embedded = await startEmbeddedPostgres({ dir: embeddedDir, port: await freePort(), database: 'postgres' })
  adminUrl = embedded.adminUrl
}

if (baseline) {
  const files = [...new Set(selected.flatMap((f) => f.tests))].sort()
  const at = Date.now()
  process.stdout.write(`baseline: ${files.length} test files without any fault … `)
  const outcome = await runTests(files, undefined, adminUrl, false)
  if (outcome.failed) {
    const log = path.join(ROOT, '.data/mutations-baseline.log')
    writeFileSync(log, outcome.output)
    console.log(`FAILED (${seconds(Date.now() - at)}): ${outcome.caughtBy ?? 'no failing assertion'}\nThe tests must pass before faults can be judged (full output: ${path.relative(ROOT, log)}).`)
    await shutdown(1)
  }
  console.log(`pass (${seconds(Date.now() - at)})`)
}

const survivors: string[] = []
for (const [index, fault] of selected.entries()) {
  const at = Date.now()
  const label = `[${String(index + 1).padStart(2)}/${selected.length}] ${fault.name}`
  apply(fault)
  let outcome: Outcome
  try {
    outcome = await runTests(fault.tests, fault.grep, adminUrl)
  } finally {
    restore()
  }
  const took = seconds(Date.now() - at)
  if (outcome.failed && outcome.caughtBy && !outcome.timedOut) {
    console.log(`caught    ${label} (${took})\n          breaks: ${fault.breaks}\n          caught by ${outcome.caughtBy}`)
  } else {
    survivors.push(fault.name)
    const why = outcome.timedOut ? 'TIMED OUT' : outcome.failed ? 'tests failed without a failing assertion (crash?)' : 'every listed test passed'
    console.log(`SURVIVED  ${label} (${took})\n          breaks: ${fault.breaks}\n          ${why}: ${fault.tests.join(', ')}${fault.grep ? ` --grep ${fault.grep.join(' ')}` : ''}`)
    if (outcome.failed) console.log(outcome.output.slice(-3000))
  }
}

const caught = selected.length - survivors.length
console.log(`\n${selected.length} faults: ${caught} caught, ${survivors.length} survived${survivors.length ? ` (${survivors.join(', ')})` : ''}; total ${seconds(Date.now() - started)}`)
await shutdown(survivors.length ? 1 : 0)
