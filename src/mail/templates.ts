// The emails of invitations and password reset: plain text plus a simple HTML alternative, naming the tenant and
// carrying a link on the tenant's own host. Every interpolated value is HTML-escaped in the HTML
// part (a tenant name is user input).

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

/** The invitation email. `expiresAt` is shown in UTC. */
export function invitationMail (input: { tenantName: string; role: string; link: string; expiresAt: Date }): LinkMail {
  const intro = `You have been invited to join ${input.tenantName} as ${/^[aeiou]/.test(input.role) ? 'an' : 'a'} ${input.role}.`
  const footer = `The link works once and expires on ${input.expiresAt.toISOString().replace('T', ' ').slice(0, 16)} UTC. If you did not expect this invitation, ignore this email.`
  return {
    subject: `You are invited to ${input.tenantName}`,
    text: `${intro}\n\nAccept the invitation and choose your password:\n${input.link}\n\n${footer}\n`,
    html: layout([intro], input.link, 'Accept the invitation', footer),
  }
}

/** The password-reset email. `ttlMinutes`: how long the link works. */
export function passwordResetMail (input: { tenantName: string; link: string; ttlMinutes: number }): LinkMail {
  const intro = `Someone asked to reset the password of your ${input.tenantName} account.`
  const footer = `The link works once, for ${input.ttlMinutes} ${input.ttlMinutes === 1 ? 'minute' : 'minutes'}. If you did not ask for this, ignore this email: your password stays as it is.`
  return {
    subject: `Reset your ${input.tenantName} password`,
    text: `${intro}\n\nChoose a new password:\n${input.link}\n\n${footer}\n`,
    html: layout([intro], input.link, 'Choose a new password', footer),
  }
}
