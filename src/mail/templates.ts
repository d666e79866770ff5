// The emails of invitations and password reset: plain text plus a simple HTML alternative, naming the
// tenant by the host of the link they carry (the tenant's own host). Not by the tenant's display name:
// anyone can sign a tenant up and name it, so a name such as "Your mailbox is full. Sign in at
// https://evil.example to keep it" would put an attacker's words and link, ahead of ours, into mail
// sent from the service to any address they invite (review 88). A host is the platform's word: a
// slug under BASE_DOMAIN or a verified domain. Every interpolated value is HTML-escaped in the HTML part.

export interface LinkMail {
  subject: string
  text: string
  html: string
}

const escapeHtml = (value: string) =>
  value.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)

function layout (paragraphs: string[], link: string, action: string, footer: string): string {
  return [
    '<!doctype html><html><body style="font-family:sans-serif;line-height:1.5">',
    ...paragraphs.map((p) => `<p>${escapeHtml(p)}</p>`),
    `<p><a href="${escapeHtml(link)}">${escapeHtml(action)}</a></p>`,
    `<p style="color:#666;font-size:90%">${escapeHtml(footer)}</p>`,
    '</body></html>',
  ].join('\n')
}

/** The host the mail names the tenant by: the link's own (`https://acme.example.com/…` → `acme.example.com`). */
const tenantHost = (link: string): string => new URL(link).host

/**
 * The invitation email: `link` on the tenant's host, `role` as given (member, admin…), `expiresAt`
 * shown in UTC to the minute. Throws TypeError when `link` is not an absolute URL.
 */
export function invitationMail (input: { role: string; link: string; expiresAt: Date }): LinkMail {
  const host = tenantHost(input.link)
  const intro = `You have been invited to join ${host} as ${/^[aeiou]/.test(input.role) ? 'an' : 'a'} ${input.role}.`
  const footer = `The link works once and expires on ${input.expiresAt.toISOString().replace('T', ' ').slice(0, 16)} UTC. If you did not expect this invitation, ignore this email.`
  return {
    subject: `You are invited to join ${host}`,
    text: `${intro}\n\nAccept the invitation and choose your password:\n${input.link}\n\n${footer}\n`,
    html: layout([intro], input.link, 'Accept the invitation', footer),
  }
}

/**
 * The password-reset email: `link` on the tenant's host; `ttlMinutes`: how long the link works
 * (minutes). Throws TypeError when `link` is not an absolute URL.
 */
export function passwordResetMail (input: { link: string; ttlMinutes: number }): LinkMail {
  const host = tenantHost(input.link)
  const intro = `Someone asked to reset the password of your account on ${host}.`
  const footer = `The link works once, for ${input.ttlMinutes} ${input.ttlMinutes === 1 ? 'minute' : 'minutes'}. If you did not ask for this, ignore this email: your password stays as it is.`
  return {
    subject: `Reset your password on ${host}`,
    text: `${intro}\n\nChoose a new password:\n${input.link}\n\n${footer}\n`,
    html: layout([intro], input.link, 'Choose a new password', footer),
  }
}
