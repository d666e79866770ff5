// Links in emails point at the tenant's own host: its verified custom domain, else
// <slug>.<BASE_DOMAIN>; https outside development (PUBLIC_URL_SCHEME), and a port only when one is
// configured (PUBLIC_PORT) or in development (PORT).
import type { Config } from '../config.ts'

export type LinkConfig = Pick<Config, 'BASE_DOMAIN' | 'PORT' | 'PUBLIC_PORT' | 'publicUrlScheme' | 'isDevelopment'>

/** The tenant's host name, without port. */
export function tenantHost (config: Pick<Config, 'BASE_DOMAIN'>, tenant: { slug: string; domain: string | null }): string {
  return tenant.domain ?? `${tenant.slug}.${config.BASE_DOMAIN}`
}

/** `<scheme>://<tenant host>[:port]<path>?token=<token>`. */
export function tenantLink (config: LinkConfig, tenant: { slug: string; domain: string | null }, path: string, token: string): string {
  const port = config.PUBLIC_PORT ?? (config.isDevelopment ? config.PORT : undefined)
  const url = new URL(`${config.publicUrlScheme}://${tenantHost(config, tenant)}${port ? `:${port}` : ''}${path}`)
  url.searchParams.set('token', token)
  return url.toString()
}
