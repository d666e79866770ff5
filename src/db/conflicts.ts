// PostgreSQL's answers to two writers that got in each other's way: 40001 (serialization failure)
// and 40P01 (deadlock detected). The statement or transaction that got one was rolled back whole,
// so running it again is safe, and usually succeeds: the other writer has finished meanwhile.
import { Prisma } from '../generated/prisma/client.ts'

const CONFLICT_SQLSTATES = new Set(['40001', '40P01'])

/**
 * The SQLSTATE of a database error however Prisma reports it: its `meta.driverAdapterError` (P2010,
 * a raw statement; known request errors) or a DriverAdapterError itself (a failed COMMIT), whose
 * cause @prisma/adapter-pg gives the SQLSTATE as `originalCode`. Undefined for anything else.
 */
export function sqlStateOf (error: unknown): string | undefined {
  return driverErrorCause(error)?.originalCode
}

function driverErrorCause (error: unknown): { kind?: unknown, originalCode?: string } | undefined {
  const failed = error as { name?: string, cause?: unknown, meta?: { driverAdapterError?: { cause?: unknown } } } | null
  const cause = (failed?.meta?.driverAdapterError?.cause ?? (failed?.name === 'DriverAdapterError' ? failed.cause : undefined)) as { kind?: unknown, originalCode?: unknown } | undefined
  if (cause === null || typeof cause !== 'object') return undefined
  return { kind: cause.kind, originalCode: typeof cause.originalCode === 'string' ? cause.originalCode : undefined }
}

/**
 * Whether `error` is a 40001 or 40P01 however Prisma reports it: P2034 from a transaction, P2010
 * (a raw statement) or a DriverAdapterError (a failed COMMIT) whose cause @prisma/adapter-pg names
 * `TransactionWriteConflict`, with the SQLSTATE as its originalCode.
 */
export function isWriteConflict (error: unknown): boolean {
  if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2034') return true
  const cause = driverErrorCause(error)
  return cause?.kind === 'TransactionWriteConflict' || (cause?.originalCode !== undefined && CONFLICT_SQLSTATES.has(cause.originalCode))
}
