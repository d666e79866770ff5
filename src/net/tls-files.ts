// Native HTTPS's certificate and key (TLS_CERT_FILE, TLS_KEY_FILE), read and checked at start, so
// that a swapped or damaged file stops the server with a message naming the variable instead of an
// OpenSSL error from deep inside `https.createServer`.
import { createPrivateKey, X509Certificate } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { ConfigError } from '../config.ts'

/**
 * Reads `certFile` (PEM certificate chain, the server's own first) and `keyFile` (its PEM private
 * key) and returns their bytes for `https.createServer({ cert, key })`.
 * @throws ConfigError naming TLS_CERT_FILE or TLS_KEY_FILE when a file cannot be read, is not what
 *   the variable says (a key where the certificate should be, or the reverse), or when the key is
 *   not the certificate's. Never echoes a file's content.
 */
export async function readTlsFiles (certFile: string, keyFile: string): Promise<{ cert: Buffer, key: Buffer }> {
  const problem = (variable: string, what: string) => new ConfigError(`Invalid configuration:\n  ${variable}: ${what}`)
  const read = (file: string, variable: string) => readFile(file).catch((error: NodeJS.ErrnoException) => {
    throw problem(variable, `cannot read the file (${error.code ?? error.message})`)
  })
  const [cert, key] = await Promise.all([read(certFile, 'TLS_CERT_FILE'), read(keyFile, 'TLS_KEY_FILE')])
  let certificate: X509Certificate
  try {
    certificate = new X509Certificate(cert)
  } catch {
    throw problem('TLS_CERT_FILE', 'not a PEM certificate (is it the key file? the two may be swapped)')
  }
  let privateKey
  try {
    privateKey = createPrivateKey(key)
  } catch {
    throw problem('TLS_KEY_FILE', 'not a PEM private key (is it the certificate? the two may be swapped; an encrypted key is not supported)')
  }
  if (!certificate.checkPrivateKey(privateKey)) throw problem('TLS_KEY_FILE', 'not the private key of the certificate in TLS_CERT_FILE')
  return { cert, key }
}
