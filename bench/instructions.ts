// Instructions per request, counted by valgrind's callgrind (BENCH_INSTRUCTIONS=1 in `npm run bench`).
//
// Why: on the shared 2-core VMs this project is measured on, CPU time per request swings between
// runs (the list 0.355 ms/req on one machine, 0.70 on another; the tenancy + auth line 1.10 × to
// 1.56 × across runs of the same code: bench/HISTORY.md, rounds eleven and twelve). callgrind counts the
// instructions a process executes, which other work on the machine does not change, so the ratio of
// two servers' counts for the same requests is steadier than their CPU times (about ±10 %, mostly
// whether a mark-compact falls in the counted windows: bench/HISTORY.md, round thirteen). It is not time: the
// kernel's work in a system call is not counted, and an instruction that waits on memory counts as
// one, so the ratio says how much more work one server's own code does, not how much longer a
// request takes.
//
// How: the server runs under `valgrind --tool=callgrind` (every thread: the main one, libuv's pool,
// V8's helpers) with instrumentation off, which runs it only a few times slower than native, so that
// its warm-up reaches steady state (V8's tiers, Prisma's caches) in reasonable time; then
// instrumentation is switched on (`callgrind_control -i on`), and for each window the counters are
// zeroed (`-z`), requests are sent, and the counters are dumped (`-d`): Ir of the windows /
// requests answered. Instrumented, a server answers ~1/50 as many requests a second, so whatever it
// does by the clock (the change feed's polling) weighs ~50 × more per request than at full speed:
// an idle window is counted too and printed as a bound on that part (bench/run.ts).
import { execFile, execFileSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** True when `valgrind` and `callgrind_control` (Debian's package valgrind) can be run. */
export function callgrindAvailable (): boolean {
  try {
    execFileSync('valgrind', ['--version'], { stdio: 'ignore' })
    execFileSync('callgrind_control', ['-h'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/**
 * The command that starts a program under callgrind, instrumentation off until startCounting, dumps
 * written to `dir` (`callgrind.<pid>.<n>`): put it before `node …` in the spawn's arguments.
 */
export function callgrindCommand (dir: string): string[] {
  return ['valgrind', '--tool=callgrind', '--instr-atstart=no', `--callgrind-out-file=${path.join(dir, 'callgrind.%p')}`]
}

/** The name of dump `n` of process `pid`, without `n`: `callgrind.<pid>.` (callgrindCommand's `%p`). */
const dumpPrefix = (pid: number) => `callgrind.${pid}.`

/** The numbers of the dumps process `pid` has written to `dir` so far (`callgrind.<pid>.<n>`, from 1). */
function dumpNumbers (dir: string, pid: number): number[] {
  const prefix = dumpPrefix(pid)
  return readdirSync(dir).filter((f) => f.startsWith(prefix)).map((f) => Number(f.slice(prefix.length))).filter((n) => n > 0)
}

/** Instructions (Ir) of the newest dump of process `pid` in `dir` numbered above `before`, waiting up to `timeoutMs` (ms) for it. */
async function dumpedInstructions (dir: string, pid: number, before: number, timeoutMs = 60_000): Promise<number> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const dumps = dumpNumbers(dir, pid).filter((n) => n > before)
    if (dumps.length) {
      const file = path.join(dir, `${dumpPrefix(pid)}${Math.max(...dumps)}`)
      const summary = existsSync(file) ? /^summary:\s*(\d+)/m.exec(readFileSync(file, 'utf8')) : null
      if (summary) return Number(summary[1])
    }
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  throw new Error(`no callgrind dump of process ${pid} in ${dir} after ${timeoutMs} ms`)
}

/** Sends `callgrind_control <flag> <pid>`; throws when it fails or finds no such process. */
async function control (flag: '-z' | '-d' | '--instr=on', pid: number, serverEnv: Record<string, string>): Promise<void> {
  // valgrind names its pipes to vgdb after the user ($LOGNAME, else $USER) and the host ($HOST, else
  // $HOSTNAME) as the server saw them (the API's HOST is its listening address), in $TMPDIR (else
  // /tmp): callgrind_control must look for the same names in the same place. (An idle server is
  // reached too: vgdb interrupts a process blocked in a system call with ptrace.)
  const env = { ...process.env }
  for (const name of ['LOGNAME', 'USER', 'HOST', 'HOSTNAME', 'TMPDIR']) {
    if (serverEnv[name] === undefined) delete env[name]
    else env[name] = serverEnv[name]
  }
  const { stdout, stderr } = await run('callgrind_control', [flag, String(pid)], { env })
  // It exits 0 also when it cannot reach the process; it then says so.
  if (/error|not detected|failed/i.test(stdout + stderr)) throw new Error(`callgrind_control ${flag} ${pid}: ${(stdout + stderr).trim()}`)
}

/**
 * Switches on the instrumentation of process `pid` (started with callgrindCommand; `serverEnv` is its
 * environment): call it once, after the warm-up. Throws when callgrind_control fails.
 */
export async function startCounting (pid: number, serverEnv: Record<string, string>): Promise<void> {
  await control('--instr=on', pid, serverEnv)
}

/**
 * Counts the instructions process `pid` (running under callgrindCommand(dir)) executes while `work`
 * runs: zeroes its counters, awaits `work`, dumps them; `serverEnv` is the environment the server was
 * started with. Resolves with the count (Ir) and `work`'s own result; throws when callgrind_control
 * fails or no dump appears within a minute.
 */
export async function countInstructions<T> (dir: string, pid: number, serverEnv: Record<string, string>, work: () => Promise<T>): Promise<{ instructions: number; result: T }> {
  await control('-z', pid, serverEnv)
  const result = await work()
  const before = Math.max(0, ...dumpNumbers(dir, pid))
  await control('-d', pid, serverEnv)
  return { instructions: await dumpedInstructions(dir, pid, before), result }
}
