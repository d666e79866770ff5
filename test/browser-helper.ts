// Debian's Chromium for the browser tests (playwright-core drives it; nothing is downloaded).
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import { chromium, type BrowserContext } from 'playwright-core'
import { createUser } from './auth-helper.ts'
import { insertTenant } from './helper.ts'

/** Where Chromium is: CHROMIUM_PATH, else Debian's package (`apt-get install chromium`). */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

type Tap = { teardown (fn: () => unknown): void }

/**
 * A fresh headless Chromium profile of `viewport` (px), closed and removed when the test ends.
 * No try/skip: a Chromium that cannot start fails the test. Waits are 8 s per action.
 */
export async function launchChromium (t: Tap, viewport = { width: 1200, height: 800 }): Promise<BrowserContext> {
  const userDataDir = await mkdtemp(path.join(tmpdir(), 'chromium-'))
  t.teardown(() => rm(userDataDir, { recursive: true, force: true }))
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    // Background networking off: this machine's closed network refuses those connections.
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    viewport,
    timeout: 20_000,
  })
  t.teardown(() => context.close())
  // Generous: CI runs the browser files beside the rest of the suite on 2 cores (a wait only ends early).
  context.setDefaultTimeout(20_000)
  return context
}

/** The password of the users `acmeOnLoopback` creates. */
export const BROWSER_PASSWORD = 'correct horse battery staple'

/**
 * Serves `app` on a free loopback port with tenant `acme`, its owner alice@acme.example and its
 * member carol@acme.example (password BROWSER_PASSWORD): what every browser test starts from.
 */
export async function acmeOnLoopback (app: FastifyInstance, ownerUrl: string): Promise<{ port: number, acmeUrl: string, acmeId: string }> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as AddressInfo).port
  const acmeId = await insertTenant(ownerUrl, 'acme')
  await createUser(ownerUrl, acmeId, { email: 'alice@acme.example', password: BROWSER_PASSWORD, role: 'owner', name: 'Alice' })
  await createUser(ownerUrl, acmeId, { email: 'carol@acme.example', password: BROWSER_PASSWORD, role: 'member', name: 'Carol' })
  return { port, acmeUrl: `http://acme.localhost:${port}/`, acmeId }
}
