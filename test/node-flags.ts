// The production node flags, in a module of its own (node:fs only): scripts that only start servers
// (bench/stall-probe.ts) take them without loading the app that test/helper.ts imports.
import { readFileSync } from 'node:fs'

/**
 * The `node` flags of package.json's start:prod script, without its script, e.g.
 * `['--max-old-space-size=128', '--liftoff-only']`: tests and benchmarks that start a server "as in
 * production" take them from there, so a flag added to start:prod is exercised by CI too.
 */
export function productionNodeFlags (): string[] {
  const script = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> }).scripts['start:prod']!
  return script.split(/\s+/).filter((word) => word.startsWith('--'))
}
