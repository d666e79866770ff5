// Development convenience: variables from a `.env` file in the working folder, when there is one.
// Variables already set in the environment win (Node's process.loadEnvFile never overrides them).
// `.env` is git-ignored; `.env.example` lists every variable with its default.
import { existsSync } from 'node:fs'

/** Loads `file` (default `.env`) into process.env if it exists; returns whether it did. */
export function loadEnvFileIfPresent (file = '.env'): boolean {
  if (!existsSync(file)) return false
  process.loadEnvFile(file)
  return true
}
