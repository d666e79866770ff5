// A real SMTP server for tests (the `smtp-server` package) on a free loopback port: every message
// the app sends is parsed (mailparser) and kept, so tests read back recipient, subject and link.
import { simpleParser, type ParsedMail } from 'mailparser'
import { SMTPServer } from 'smtp-server'
import { build, freePort, insertTenant } from './helper.ts'

type Tap = { teardown(fn: () => unknown): void }

export interface ReceivedMail {
  to: string
  subject: string
  text: string
  html: string
  messageId: string
  /** The first http(s) link of the text part. */
  link: string | null
  raw: ParsedMail
}

export interface TestSmtp {
  url: string
  port: number
  messages: ReceivedMail[]
  /** The first message to `to` received after `after` messages (polls; generous bound for liveness). */
  waitFor(to: string, options?: { after?: number; timeoutMs?: number }): Promise<ReceivedMail>
  /** Makes the server answer 451 (a temporary failure) to every message while `on`. */
  failTemporarily(on: boolean): void
  close(): Promise<void>
}

/** Starts the server; `port` to reuse a known one (e.g. to start it later than the app). */
export async function startSmtp (t: Tap, options: { port?: number; delayMs?: number } = {}): Promise<TestSmtp> {
  const messages: ReceivedMail[] = []
  let failing = false
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData (stream, _session, callback) {
      simpleParser(stream).then(async (parsed) => {
        // A slow server: the message is accepted only after the delay (a job is mid-send meanwhile).
        if (options.delayMs) await new Promise((resolve) => setTimeout(resolve, options.delayMs))
        if (failing) return callback(Object.assign(new Error('try again later'), { responseCode: 451 }))
        const text = parsed.text ?? ''
        const to = Array.isArray(parsed.to) ? parsed.to[0]!.text : parsed.to?.text ?? ''
        messages.push({ to, subject: parsed.subject ?? '', text, html: typeof parsed.html === 'string' ? parsed.html : '', messageId: parsed.messageId ?? '', link: /https?:\/\/\S+/.exec(text)?.[0] ?? null, raw: parsed })
        callback()
      }, callback)
    },
  })
  const port = options.port ?? (await freePort())
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => resolve())
  })
  const close = () => new Promise<void>((resolve) => server.close(() => resolve()))
  t.teardown(close)
  return {
    url: `smtp://127.0.0.1:${port}`,
    port,
    messages,
    failTemporarily: (on) => { failing = on },
    close,
    async waitFor (to, { after = 0, timeoutMs = 20_000 } = {}) {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const found = messages.slice(after).find((m) => m.to.toLowerCase() === to.toLowerCase())
        if (found) return found
        if (Date.now() > deadline) throw new Error(`no email to ${to} within ${timeoutMs} ms (got ${messages.length})`)
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    },
  }
}

/** The token of a link received by email. */
export const tokenOf = (mail: ReceivedMail) => new URL(mail.link!).searchParams.get('token')!

/** Passwords of the people tests: the users' own, and the one they change to. */
export const PASSWORD = 'correct horse battery staple'
export const NEW_PASSWORD = 'a brand new passphrase here'

/** The real app with its email going to a test SMTP server (polling every 0.5 s), and tenants acme and globex. */
export async function buildWithMail (t: Parameters<typeof build>[0], env: Record<string, string> = {}) {
  const smtp = await startSmtp(t)
  const built = await build(t, { env: { SMTP_URL: smtp.url, JOB_POLL_INTERVAL_S: '0.5', ...env } })
  const acmeId = await insertTenant(built.ownerUrl, 'acme')
  const globexId = await insertTenant(built.ownerUrl, 'globex')
  return { ...built, smtp, acmeId, globexId }
}
