// Which hops of X-Forwarded-For the server believes. `TRUST_PROXY=true` would trust every hop, so the
// client address would be the leftmost entry — the one the client wrote itself — and every
// per-address limit could be escaped by sending a made-up X-Forwarded-For. So the proxies are named
// (addresses/CIDRs) or counted (hops), never assumed, and the client address is the first hop,
// reading from the right, that is not one of them (what @fastify/proxy-addr computes).
import proxyAddr from '@fastify/proxy-addr'

/** `off`: no header is believed; `addresses`: these proxies/CIDRs; `hops`: this many proxies in front. */
export type TrustProxySetting =
  | { kind: 'off' }
  | { kind: 'addresses'; addresses: string[] }
  | { kind: 'hops'; hops: number }

/** Decides whether `address`, the `hop`-th from the server (0 = the socket's peer), is a trusted proxy. */
export type TrustFunction = (address: string, hop: number) => boolean

/**
 * Parses TRUST_PROXY: `false`/empty (off), a hop count (`1`), or comma-separated addresses, CIDRs
 * or the names `loopback`, `linklocal`, `uniquelocal` (`10.0.0.5, 192.168.0.0/16`).
 * @throws Error with a readable message for `true` (unsafe: trusts every hop) and for bad addresses.
 */
export function parseTrustProxy (value: string): TrustProxySetting {
  const text = value.trim()
  if (text === '' || text === 'false' || text === '0') return { kind: 'off' }
  if (text === 'true') {
    throw new Error('true would trust every hop, making the client-written X-Forwarded-For entry the client address; name your proxies\' addresses/CIDRs (e.g. 10.0.0.5,10.1.0.0/16) or give the number of proxies in front (e.g. 1)')
  }
  if (/^\d+$/.test(text)) return { kind: 'hops', hops: Number(text) }
  const addresses = text.split(',').map((entry) => entry.trim()).filter(Boolean)
  try {
    proxyAddr.compile(addresses) // validates every entry
  } catch (error) {
    throw new Error(`expected addresses, CIDRs, loopback/linklocal/uniquelocal or a hop count: ${(error as Error).message}`)
  }
  return { kind: 'addresses', addresses }
}

/**
 * The trust function Fastify (`trustProxy`) and plugins/tenant.ts (X-Forwarded-Host) share, or
 * false when no proxy is trusted. A hop count trusts the `hops` nearest hops whatever their address
 * (Fastify 5's own numeric `trustProxy` trusts nothing, hence a function).
 */
export function trustFunction (setting: TrustProxySetting): TrustFunction | false {
  if (setting.kind === 'off') return false
  if (setting.kind === 'hops') return (_address, hop) => hop < setting.hops
  return proxyAddr.compile(setting.addresses)
}
