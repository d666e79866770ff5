/**
 * The token of an `Authorization: Bearer <token>` header (RFC 6750 §2.1; the scheme name is
 * case-insensitive, RFC 9110 §11.1), or undefined for a missing header or any other form.
 */
export function bearerToken (header: string | undefined): string | undefined {
  return header ? /^Bearer +(\S+) *$/i.exec(header)?.[1] : undefined
}
