// Writes `.env.example` from the configuration schema (src/config.ts), so the list of variables and
// their defaults has one source. `npm run env:example` rewrites it; test/config.test.ts fails when
// the committed file differs from what this prints.
import { writeFileSync } from 'node:fs'
import { ConfigSchema } from '../src/config.ts'

interface PropertySchema { default?: unknown, description?: string }

/** The text of `.env.example`: one commented block per variable of ConfigSchema, in schema order. */
export function envExample (): string {
  const lines = [
    '# Every configuration variable, with its default (generated from src/config.ts by `npm run env:example`).',
    '# Copy to .env for development; `npm start` and the scripts load .env when it exists.',
    '# Variables set in the environment win over .env. In production set secrets in the environment, not here.',
    '',
  ]
  const properties = ConfigSchema.properties as unknown as Record<string, PropertySchema>
  for (const [name, schema] of Object.entries(properties)) {
    if (schema.description) lines.push(`# ${schema.description}`)
    lines.push(schema.default === undefined ? `# ${name}=` : `# ${name}=${String(schema.default)}`)
  }
  return `${lines.join('\n')}\n`
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  writeFileSync('.env.example', envExample())
  console.log('wrote .env.example')
}
