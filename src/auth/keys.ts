// The access-token signing keys: a ring of asymmetric keys, each named by its RFC 7638 thumbprint
// (the JWT `kid`). Only the newest signs; every key verifies, so a new key can be added (and, a
// token lifetime later, the old one removed) without signing anyone out.
//
// JWT_PRIVATE_KEYS is a bundle of PEM private keys (PKCS#8 "PRIVATE KEY" or SEC1 "EC PRIVATE KEY"),
// Ed25519 (EdDSA) or P-256 (ES256), concatenated, newest LAST. Literal `\n` sequences are accepted
// for environments that cannot hold newlines. Without it (development, test), one Ed25519 key is
// generated into <DATA_DIR>/keys/jwt-private-keys.pem on first start; production refuses to start
// without it (src/config.ts).
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type JsonWebKey, type KeyObject } from 'node:crypto'
import path from 'node:path'
import { ConfigError, type Config } from '../config.ts'
import { readOrCreateSecretFile } from './secrets.ts'

export type JwtAlgorithm = 'EdDSA' | 'ES256'

export interface PublicJwk extends JsonWebKey {
  kid: string
  alg: JwtAlgorithm
  use: 'sig'
}

export interface SigningKey {
  kid: string
  alg: JwtAlgorithm
  privateKey: KeyObject
  publicKey: KeyObject
  jwk: PublicJwk
}

const PEM_BLOCK = /-----BEGIN (EC )?PRIVATE KEY-----[\s\S]+?-----END \1PRIVATE KEY-----/g

export class KeyRing {
  readonly signing: SigningKey
  private readonly byKid: Map<string, SigningKey>

  constructor (keys: SigningKey[]) {
    if (!keys.length) throw new Error('at least one JWT signing key is needed')
    this.signing = keys[keys.length - 1]!
    this.byKid = new Map(keys.map((key) => [key.kid, key]))
  }

  find (kid: string): SigningKey | undefined {
    return this.byKid.get(kid)
  }

  /** The JSON Web Key Set other services verify our tokens with. */
  jwks (): { keys: PublicJwk[] } {
    return { keys: [...this.byKid.values()].map((key) => key.jwk) }
  }
}

/**
 * The signing keys of a JWT_PRIVATE_KEYS bundle, oldest first.
 * @throws Error when the bundle holds no PEM block; ConfigError naming JWT_PRIVATE_KEYS and the
 *   block's position when a block is not a private key Node can read (a damaged copy-paste): the
 *   start stops with that message, never the key.
 */
export function parsePrivateKeys (bundle: string): SigningKey[] {
  const blocks = bundle.replace(/\\n/g, '\n').match(PEM_BLOCK) ?? []
  if (!blocks.length) throw new Error('JWT_PRIVATE_KEYS holds no PEM private key')
  return blocks.map((pem, index) => {
    let key: KeyObject
    try {
      key = createPrivateKey(pem)
    } catch (error) {
      throw new ConfigError(`Invalid configuration:\n  JWT_PRIVATE_KEYS: key ${index + 1} of ${blocks.length} is not a private key that can be read (${(error as Error).message}); check that it was copied whole`)
    }
    return signingKey(key)
  })
}

export function generatePrivateKeyPem (): string {
  const { privateKey } = generateKeyPairSync('ed25519')
  return privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
}

export async function loadKeyRing (config: Pick<Config, 'JWT_PRIVATE_KEYS' | 'isProduction' | 'dataDir'>): Promise<KeyRing> {
  if (config.JWT_PRIVATE_KEYS) return new KeyRing(parsePrivateKeys(config.JWT_PRIVATE_KEYS))
  if (config.isProduction) throw new Error('JWT_PRIVATE_KEYS is required in production')
  const pem = await readOrCreateSecretFile(path.join(config.dataDir, 'keys', 'jwt-private-keys.pem'), generatePrivateKeyPem)
  return new KeyRing(parsePrivateKeys(pem))
}

function signingKey (privateKey: KeyObject): SigningKey {
  const publicKey = createPublicKey(privateKey)
  const alg = algorithmOf(privateKey)
  const exported = publicKey.export({ format: 'jwk' })
  const kid = thumbprint(exported)
  return { kid, alg, privateKey, publicKey, jwk: { ...exported, kid, alg, use: 'sig' } }
}

function algorithmOf (key: KeyObject): JwtAlgorithm {
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA'
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256'
  throw new Error('JWT keys must be Ed25519 or EC P-256')
}

/** RFC 7638: SHA-256 of the required members in lexicographic order. */
function thumbprint (jwk: JsonWebKey): string {
  const members = jwk.kty === 'OKP' ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x } : { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url')
}
