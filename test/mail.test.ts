// Email configuration: production refuses to start without SMTP_URL while invitations or reset are
// on; development without SMTP_URL writes each message to DATA_DIR/outbox (and the log).
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { simpleParser } from 'mailparser'
import t from 'tap'
import { ConfigError, loadConfig } from '../src/config.ts'
import { Mailer } from '../src/mail/mailer.ts'
import { invitationMail, passwordResetMail } from '../src/mail/templates.ts'
import { startSmtp } from './mail-helper.ts'

const production = {
  NODE_ENV: 'production',
  DATABASE_URL: 'postgresql://u@127.0.0.1/db',
  APP_DATABASE_URL: 'postgresql://api@127.0.0.1/db',
  JWT_PRIVATE_KEYS: 'k',
  CSRF_SECRET: 'x'.repeat(32),
  API_KEY_SECRET: 'y'.repeat(32),
}
const mail = { SMTP_URL: 'smtp://mail.example.com:587', MAIL_FROM: 'Acme <no-reply@acme.example>' }
const refusal = (env: Record<string, string>) => { try { loadConfig(env); return '' } catch (e) { return (e as Error).message } }

t.test('production without SMTP_URL refuses to start while invitations or reset are enabled', async (t) => {
  t.throws(() => loadConfig(production), ConfigError)
  t.throws(() => loadConfig({ ...production, MAIL_FROM: mail.MAIL_FROM }), /SMTP_URL/)
  t.throws(() => loadConfig({ ...production, MAIL_FROM: mail.MAIL_FROM, INVITATIONS_ENABLED: 'false' }), /SMTP_URL/, 'reset alone needs it too')
  t.throws(() => loadConfig({ ...production, MAIL_FROM: mail.MAIL_FROM, PASSWORD_RESET_ENABLED: 'false' }), /SMTP_URL/, 'invitations alone need it too')
  t.doesNotThrow(() => loadConfig({ ...production, INVITATIONS_ENABLED: 'false', PASSWORD_RESET_ENABLED: 'false' }), 'both off: no email, nothing required')
  t.doesNotThrow(() => loadConfig({ ...production, ...mail }))
  t.throws(() => loadConfig({ ...production, SMTP_URL: mail.SMTP_URL }), /MAIL_FROM/, 'the From address is required too')
  t.throws(() => loadConfig({ ...production, ...mail, PUBLIC_URL_SCHEME: 'http' }), /PUBLIC_URL_SCHEME/, 'links with one-time tokens over http are refused')
  t.throws(() => loadConfig({ ...production, ...mail, SMTP_URL: 'http://nope' }), /SMTP_URL: /, 'a URL is named, not echoed')
  t.notMatch(refusal({ ...production, ...mail, SMTP_URL: 'http://user:secret@x' }), /secret/, 'a malformed SMTP_URL\'s password is not echoed')
  t.notMatch(refusal({ ...production, SMTP_URL: 'smtp://user:secret@mail.example.com' }), /secret/, 'nor a valid one in another refusal')
})

t.test('development without SMTP_URL: the message goes to DATA_DIR/outbox and the log', async (t) => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'outbox-'))
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  const logged: string[] = []
  const config = loadConfig({ NODE_ENV: 'development', DATA_DIR: dataDir })
  const mailer = new Mailer(config, { info: (_f, m) => logged.push(m) })
  t.equal(mailer.destination, path.join(dataDir, 'outbox'))
  const mail = invitationMail({ role: 'admin', link: 'http://acme.localhost:3000/accept-invitation?token=abc&step=1', expiresAt: new Date('2030-01-01T00:00:00Z') })
  await mailer.send({ to: 'x@example.com', ...mail, messageId: '<m1@acme.localhost>' })
  const files = await readdir(path.join(dataDir, 'outbox'))
  t.equal(files.length, 1)
  const eml = await simpleParser(await readFile(path.join(dataDir, 'outbox', files[0]!)))
  t.equal(eml.to && !Array.isArray(eml.to) ? eml.to.text : '', 'x@example.com')
  t.match(eml.text, /accept-invitation\?token=abc/)
  t.match(String(eml.html), /href="http:\/\/acme.localhost:3000\/accept-invitation\?token=abc&amp;step=1"/, 'the link is escaped in the HTML part')
  t.match(logged.join('\n'), /accept-invitation\?token=abc/, 'the link is in the development log')
})

t.test('SMTP round trip: from, to, subject, text and HTML arrive', async (t) => {
  const smtp = await startSmtp(t)
  const config = loadConfig({ NODE_ENV: 'test', SMTP_URL: smtp.url, MAIL_FROM: 'Acme <no-reply@acme.example>' })
  const mailer = new Mailer(config, { info () {} })
  t.teardown(() => mailer.close())
  const mail = invitationMail({ role: 'member', link: 'https://acme.example.com/accept-invitation?token=t0k', expiresAt: new Date('2030-01-01T00:00:00Z') })
  await mailer.send({ to: 'bob@example.com', ...mail, messageId: '<m2@acme.example.com>' })
  const received = await smtp.waitFor('bob@example.com')
  t.equal(received.subject, 'You are invited to join acme.example.com')
  t.same(received.raw.from?.value, [{ address: 'no-reply@acme.example', name: 'Acme' }], 'MAIL_FROM')
  t.equal(received.messageId, '<m2@acme.example.com>')
  t.equal(received.link, 'https://acme.example.com/accept-invitation?token=t0k')
  t.match(received.html, /href="https:\/\/acme.example.com\/accept-invitation\?token=t0k"/)
  // A server that refuses is an error the job sees (and retries).
  smtp.failTemporarily(true)
  await t.rejects(mailer.send({ to: 'bob@example.com', ...mail, messageId: '<m3@acme.example.com>' }))
})

// The test's SMTP server offers no STARTTLS, as a misconfigured relay (or a middlebox that strips
// the offer) would: production does not send one-time links and credentials to it in cleartext.
t.test('production: an smtp:// server without STARTTLS is refused unless the URL opts out', async (t) => {
  const smtp = await startSmtp(t)
  const send = async (url: string, to: string) => {
    const mailer = new Mailer({ SMTP_URL: url, mailFrom: 'Acme <no-reply@acme.example>', dataDir: tmpdir(), isProduction: true }, { info () {} })
    try {
      await mailer.send({ to, subject: 's', text: 'https://acme.example.com/accept-invitation?token=secret', html: '', messageId: `<${to}>` })
    } finally {
      mailer.close()
    }
  }
  await t.rejects(send(smtp.url, 'plain@example.com'), /STARTTLS/i, 'refused: no STARTTLS offered')
  await send(`${smtp.url}?requireTLS=false`, 'relay@example.com')
  t.equal((await smtp.waitFor('relay@example.com')).to, 'relay@example.com', '?requireTLS=false: sent (a relay on the same host)')
})

t.test('the invitation names the role with its article', async (t) => {
  const intro = (role: string) => invitationMail({ role, link: 'https://acme.example.com/accept-invitation?token=t', expiresAt: new Date('2030-01-01T00:00:00Z') }).text.split('\n')[0]
  t.same(['owner', 'admin', 'member'].map(intro), [
    'You have been invited to join acme.example.com as an owner.',
    'You have been invited to join acme.example.com as an admin.',
    'You have been invited to join acme.example.com as a member.',
  ])
})

// Review 63: a retry late in the link's life said "for 1 minutes".
t.test('the reset email counts its minutes in words that agree', async (t) => {
  const footer = (ttlMinutes: number) => passwordResetMail({ link: 'https://acme.example.com/reset-password?token=t', ttlMinutes }).text.match(/The link works once, for [^.]*\./)?.[0]
  t.same([1, 2, 30].map(footer), [
    'The link works once, for 1 minute.',
    'The link works once, for 2 minutes.',
    'The link works once, for 30 minutes.',
  ])
})

t.test('a reset window longer than the link\'s lifetime is refused at start', async (t) => {
  t.match(refusal({ PASSWORD_RESET_WINDOW_S: '3600' }), /PASSWORD_RESET_WINDOW_S \(3600\) must not exceed PASSWORD_RESET_TTL_S \(1800\)/, 'the old default window of an hour, against the 30-minute link')
  t.doesNotThrow(() => loadConfig({ PASSWORD_RESET_WINDOW_S: '3600', PASSWORD_RESET_TTL_S: '3600' }), 'a link that lives as long as the window')
  t.doesNotThrow(() => loadConfig({ PASSWORD_RESET_WINDOW_S: '3600', PASSWORD_RESET_ENABLED: 'false' }), 'nothing to check with the reset off')
  t.doesNotThrow(() => loadConfig({}), 'the defaults agree')
})
