// Sends email with nodemailer: over SMTP when SMTP_URL is set; otherwise (development and tests
// only — production refuses to start without SMTP_URL, see src/config.ts) each message is written
// to DATA_DIR/outbox/<time>-<id>.eml and summarised in the log, so that its links can be clicked.
// Messages are only ever sent from background jobs (src/people/*), never inside a request.
import { mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import nodemailer, { type Transporter } from 'nodemailer'
import type { Config } from '../config.ts'

/** One message: plain text and a simple HTML alternative. */
export interface Mail {
  to: string
  subject: string
  text: string
  html: string
  /**
   * A stable Message-ID (RFC 5322 §3.6.4) derived from the job's idempotency key, so that a
   * message sent twice after a crash is recognisable as the same message by mail clients.
   */
  messageId: string
}

export interface MailLog {
  info(fields: object, message: string): void
}

export class Mailer {
  private readonly transport: Transporter
  private readonly outbox?: string
  private readonly refuse: boolean = false

  constructor (private readonly config: Pick<Config, 'SMTP_URL' | 'mailFrom' | 'dataDir' | 'isProduction'>, private readonly log: MailLog) {
    if (config.SMTP_URL) {
      this.transport = nodemailer.createTransport({
        url: config.SMTP_URL, // its query parameters win over the options below
        // Short timeouts (ms): a hung SMTP server fails the job (which is retried) instead of holding it.
        connectionTimeout: 10_000,
        greetingTimeout: 10_000,
        socketTimeout: 20_000,
        // Production: an smtp:// connection must upgrade with STARTTLS (the messages carry one-time
        // links, the URL a password); nodemailer would otherwise go on in cleartext with a server
        // that offers no STARTTLS, or whose offer a middlebox strips. `?requireTLS=false` in the URL
        // opts out, e.g. for a relay on the same host.
        requireTLS: config.isProduction && new URL(config.SMTP_URL).protocol === 'smtp:',
      })
    } else if (config.isProduction) {
      // Reachable only with invitations and reset disabled (src/config.ts refuses otherwise): a
      // message that still comes is an error for its job, never a file on a production disk.
      this.transport = nodemailer.createTransport({ streamTransport: true, buffer: true })
      this.refuse = true
    } else {
      this.transport = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' })
      this.outbox = path.join(config.dataDir, 'outbox')
    }
  }

  /** Where messages go: 'smtp' or the outbox directory (development). */
  get destination (): string {
    return this.refuse ? 'none (SMTP_URL unset)' : this.outbox ?? 'smtp'
  }

  /** Sends `mail`; throws when the SMTP server refuses it or cannot be reached (the job retries). */
  async send (mail: Mail): Promise<void> {
    if (this.refuse) throw new Error('cannot send email: SMTP_URL is not configured')
    const info = await this.transport.sendMail({ from: this.config.mailFrom, ...mail })
    if (this.outbox) {
      await mkdir(this.outbox, { recursive: true })
      const file = path.join(this.outbox, `${new Date().toISOString().replaceAll(':', '-')}-${mail.messageId.replace(/[^A-Za-z0-9.-]/g, '_')}.eml`)
      await writeFile(file, (info as unknown as { message: Buffer }).message)
      // Development only: the link is in the text, which is the point of the outbox.
      this.log.info({ to: mail.to, subject: mail.subject, file }, `email (no SMTP_URL, development outbox):\n${mail.text}`)
    }
  }

  close (): void {
    this.transport.close()
  }
}
