// One-time tokens of invitation and password-reset links.
//
// A token is HMAC-SHA256(key, purpose ‖ tenant ‖ row id), base64url (256 bits): unguessable without
// the server's key, and bound to its purpose and tenant by construction. Only SHA-256(token) is
// stored (a fast hash suffices for 256 random-looking bits: OWASP Forgot Password Cheat Sheet,
// NIST SP 800-63B §5.1.1.2 for high-entropy secrets). Deriving instead of drawing the token is what
// lets a background job (re)build the link without the token ever being written anywhere — not in
// the job's row, not in the table: a job run twice sends the same link.
//
// The key is derived (HKDF, RFC 5869) from CSRF_SECRET — in development the generated file in
// DATA_DIR/keys — under its own label, so no new production secret is needed and a CSRF token can
// never equal a link token.
import { createHash, createHmac } from 'node:crypto'
import { csrfSecret, derivedKey } from '../auth/secrets.ts'
import type { Config } from '../config.ts'

export type TokenPurpose = 'invitation' | 'password-reset'

/** Link tokens as they appear in URLs: 43 base64url characters. */
export const LINK_TOKEN_PATTERN = '^[A-Za-z0-9_-]{43}$'

export class LinkTokens {
  private constructor (private readonly key: Buffer) {}

  /** Keyed by the CSRF secret plugins/auth.ts reads (csrfSecret); throws in production without CSRF_SECRET. */
  static async load (config: Pick<Config, 'CSRF_SECRET' | 'isProduction' | 'dataDir'>): Promise<LinkTokens> {
    return new LinkTokens(derivedKey(await csrfSecret(config), 'one-time link tokens v1'))
  }

  /** The token of row `id` of `tenantId` for `purpose` (deterministic). */
  token (purpose: TokenPurpose, tenantId: string, id: string): string {
    return createHmac('sha256', this.key).update(`${purpose}\0${tenantId}\0${id}`).digest('base64url')
  }

  /** The stored form of `token` (SHA-256, hex). */
  static hash (token: string): string {
    return createHash('sha256').update(token).digest('hex')
  }
}
