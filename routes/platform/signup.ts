// Self-service signup (platform host): creates a tenant and its first owner in one transaction.
// Off (the route does not exist) when SIGNUP_ENABLED is false.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { DisplayName, Email, responses } from '../../src/api/schemas.ts'
import { AppError, conflict } from '../../src/errors.ts'
import { auditContext, recordAuditEvent } from '../../src/audit/audit-log.ts'
import { isValidSlug } from '../../src/tenancy/host.ts'
import { isUniqueViolation, tenantDirectory } from '../../src/tenancy/tenant-directory.ts'
import { TenantView } from '../tenant.ts'
import { toPublicUser } from '../../src/auth/public-user.ts'
import { User, userFields } from '../users.ts'

const Signup = Type.Object({
  slug: Type.String({ minLength: 3, maxLength: 63, description: 'a-z 0-9 -, not starting or ending with -, no -- in 3rd and 4th place (xn--…), not reserved; the tenant answers on <slug>.<BASE_DOMAIN>' }),
  name: DisplayName,
  owner: Type.Object({
    email: Email,
    password: Type.String({ description: 'at least PASSWORD_MIN_LENGTH characters, at most 72 bytes of UTF-8' }),
    name: DisplayName,
  }, { additionalProperties: false }),
}, { additionalProperties: false })

const SignedUp = Type.Object({ tenant: TenantView, owner: User })

const signupRoutes: FastifyPluginAsyncTypebox = async (app) => {
  if (!app.config.SIGNUP_ENABLED) return // signup off: the route is unknown (404)

  // Each signup creates a tenant and runs a bcrypt hash: limited per client address (429 + Retry-After).
  const signupsPerAddress = app.limits.create({ name: 'signup-address', max: app.config.SIGNUP_PER_IP_MAX, windowMs: app.config.SIGNUP_PER_IP_WINDOW_S * 1000 })

  app.post('/v1/tenants', {
    onRequest: signupsPerAddress.enforce,
    schema: { tags: ['signup'], summary: 'Create a tenant and its owner', body: Signup, response: responses({ 201: SignedUp }) },
  }, async (request, reply) => {
    const { slug, name, owner } = request.body
    if (!isValidSlug(slug)) throw new AppError('VALIDATION_FAILED', 'body/slug must be 3–63 characters of a-z 0-9 -, not start or end with -, not hold -- in 3rd and 4th place, and not be reserved')
    const passwordHash = await app.passwords.hash(owner.password, 'owner/password')
    try {
      const created = await app.platformDb.$transaction(async (tx) => {
        // tenants is under row-level security: a new tenant is made through its named function.
        const tenant = await tenantDirectory.signup(tx, slug, name)
        // Row-level security admits the owner's row only once the transaction names its tenant.
        await tx.$executeRaw`SELECT set_config('app.tenant_id', ${tenant.id}, true)`
        const user = await tx.user.create({
          data: { tenantId: tenant.id, email: owner.email.toLowerCase(), name: owner.name, role: 'owner', passwordHash },
          select: userFields,
        })
        // The tenant's log starts with its first owner (self-service: the actor is the system).
        await recordAuditEvent(tx, {
          ...auditContext(request, { type: 'system', id: null }),
          tenantId: tenant.id,
          action: 'user.created',
          target: { type: 'user', id: user.id },
          data: { email: user.email, name: user.name, role: user.role, signup: true },
        })
        return { tenant, owner: toPublicUser(user) }
      })
      // A lookup of the slug that found nothing before the signup must not answer 404 for the new
      // host (the change feed records changes, not new tenants): this instance forgets it at once,
      // the others are told.
      app.tenants.invalidate({ id: created.tenant.id, slug })
      return reply.code(201).send(created)
    } catch (error) {
      if (isUniqueViolation(error)) throw conflict('This slug is taken')
      throw error
    }
  })
}

export default signupRoutes
