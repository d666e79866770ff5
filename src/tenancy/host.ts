// Reads the Host header the way shared/API.md "Hosts and tenants" says: port ignored,
// case-insensitive, one trailing dot ignored; the bare base domain and reserved labels are the
// platform; one label under the base domain is a tenant slug; anything else may be a custom domain.

export const RESERVED_LABELS = new Set([
  'www', 'api', 'admin', 'app', 'static', 'assets', 'cdn', 'docs', 'status', 'mail', 'smtp', 'auth', 'login',
  'dashboard', 'console', 'platform', 'support', 'help', 'blog', 'dev', 'staging', 'test', 'internal', 'root',
])

const SLUG = /^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])$/
// RFC 1123 host names (letters, digits, hyphens, dots) with an optional port.
const HOST_SYNTAX = /^(?<name>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*\.?)(?::(?<port>\d{1,5}))?$/

export type HostTarget =
  | { kind: 'platform' }
  | { kind: 'slug'; slug: string }
  | { kind: 'domain'; domain: string }
  | { kind: 'unknown' }
  | { kind: 'invalid' }

/**
 * Whether `slug` may name a tenant: 3–63 of a-z 0-9 -, no leading/trailing -, not one of
 * RESERVED_LABELS, and no hyphens in its 3rd and 4th places — labels DNS reserves (RFC 5891
 * §4.2.3.1) for encodings such as IDNA's `xn--`, which browsers show decoded: `xn--pple-43d` is
 * displayed as "аpple" with a Cyrillic "а", a look-alike of another tenant's host (IDN homograph
 * attack; OWASP).
 */
export function isValidSlug (slug: string): boolean {
  return SLUG.test(slug) && !RESERVED_LABELS.has(slug) && slug.slice(2, 4) !== '--'
}

const IPV6_LITERAL = /^\[[0-9a-f:.]+\](?::(?<port>\d{1,5}))?$/
/** A TCP port is 0–65535 (RFC 793); a longer or larger number makes the Host invalid, not ignored. */
const MAX_PORT = 65_535

/**
 * What a Host header names, for BASE_DOMAIN `baseDomain` (lower case, no trailing dot): the
 * platform, a tenant slug, a custom domain, nothing of ours (an IP address, a name that cannot be
 * a slug) or an invalid header (bad syntax, over 260 characters, a port above 65535). Never throws.
 */
export function parseHost (host: string | undefined, baseDomain: string): HostTarget {
  if (!host || host.length > 260) return { kind: 'invalid' }
  const lower = host.toLowerCase()
  const match = IPV6_LITERAL.exec(lower) ?? HOST_SYNTAX.exec(lower)
  if (!match?.groups || Number(match.groups.port ?? 0) > MAX_PORT) return { kind: 'invalid' }
  if (lower.startsWith('[')) return { kind: 'unknown' } // an address names no tenant
  const name = match.groups.name!.replace(/\.$/, '')
  if (name === baseDomain) return { kind: 'platform' }
  if (name.endsWith(`.${baseDomain}`)) {
    const label = name.slice(0, -baseDomain.length - 1)
    if (RESERVED_LABELS.has(label)) return { kind: 'platform' }
    // Nested labels (a.b.<base>) and labels that cannot be slugs name no tenant.
    return SLUG.test(label) ? { kind: 'slug', slug: label } : { kind: 'unknown' }
  }
  return { kind: 'domain', domain: name }
}
