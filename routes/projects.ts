// Projects (tenant hosts, any signed-in user): shared/API.md "Resources".
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { ListQuery, Page, page, pageArgs } from '../src/api/pagination.ts'
import { DisplayName, IdParams, NoContent, Nullable, Timestamp, Uuid, responses, signedIn } from '../src/api/schemas.ts'
import { auditedChange } from '../src/audit/audit-log.ts'
import { requirePermission } from '../src/auth/permissions.ts'
import { notFound } from '../src/errors.ts'
import { Prisma } from '../src/generated/prisma/client.ts'

const Description = Nullable(Type.String({ maxLength: 10_000 }))

export const Project = Type.Object({
  id: Uuid,
  name: Type.String(),
  description: Nullable(Type.String()),
  createdAt: Timestamp,
  updatedAt: Timestamp,
})

const CreateProject = Type.Object({ name: DisplayName, description: Type.Optional(Description) }, { additionalProperties: false })
const UpdateProject = Type.Object({ name: Type.Optional(DisplayName), description: Type.Optional(Description) }, { additionalProperties: false, minProperties: 1 })

/** The columns a project answer shows (the response schema would drop others anyway). */
export const projectFields = { id: true, name: true, description: true, createdAt: true, updatedAt: true } as const
/** The same columns in a raw statement's RETURNING (the writes are raw: change and audit event in one statement). */
const RETURNING = Prisma.sql`RETURNING id, name, description, created_at AS "createdAt", updated_at AS "updatedAt"`
type ProjectRow = { id: string, name: string, description: string | null, createdAt: Date, updatedAt: Date }

const tags = ['projects']
const security = signedIn

const projectRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const canRead = requirePermission('projects.read')
  const canWrite = requirePermission('projects.write')

  app.get('/v1/projects', {
    onRequest: canRead,
    schema: { tags, security, summary: 'List projects, newest first', querystring: ListQuery, response: responses({ 200: Page(Project) }) },
  }, async (request) => {
    const args = pageArgs(request.query)
    const rows = await request.db.project.findMany({ ...args, select: projectFields })
    return page(rows, request.query)
  })

  app.post('/v1/projects', {
    onRequest: canWrite,
    schema: { tags, security, summary: 'Create a project', body: CreateProject, response: responses({ 201: Project }) },
  }, async (request, reply) => {
    // Raw SQL names the tenant itself (row-level security checks it again).
    const { name, description = null } = request.body
    const [created] = await auditedChange<ProjectRow>(request,
      Prisma.sql`INSERT INTO projects (tenant_id, name, description) VALUES (${request.tenantId}::uuid, ${name}, ${description}) ${RETURNING}`,
      { action: 'project.created', targetType: 'project', data: request.body })
    if (!created) throw new Error('INSERT … RETURNING returned no row') // cannot happen: the insert either succeeds or throws
    return reply.code(201).send(created)
  })

  app.get('/v1/projects/:id', {
    onRequest: canRead,
    schema: { tags, security, summary: 'Read a project', params: IdParams, response: responses({ 200: Project }) },
  }, async (request) => {
    const project = await request.db.project.findFirst({ where: { id: request.params.id }, select: projectFields })
    if (!project) throw notFound('Project')
    return project
  })

  app.patch('/v1/projects/:id', {
    onRequest: canWrite,
    schema: { tags, security, summary: 'Change a project', params: IdParams, body: UpdateProject, response: responses({ 200: Project }) },
  }, async (request) => {
    // A missing id (or another tenant's) changes no row, writes no event: 404.
    const { name, description } = request.body
    const set = [Prisma.sql`updated_at = CURRENT_TIMESTAMP`]
    if (name !== undefined) set.push(Prisma.sql`name = ${name}`)
    if (description !== undefined) set.push(Prisma.sql`description = ${description}`)
    const [project] = await auditedChange<ProjectRow>(request,
      Prisma.sql`UPDATE projects SET ${Prisma.join(set)} WHERE tenant_id = ${request.tenantId}::uuid AND id = ${request.params.id}::uuid ${RETURNING}`,
      { action: 'project.updated', targetType: 'project', data: request.body })
    if (!project) throw notFound('Project')
    return project
  })

  app.delete('/v1/projects/:id', {
    onRequest: canWrite,
    schema: { tags, security, summary: 'Delete a project and its tasks', params: IdParams, response: responses({ 204: NoContent }) },
  }, async (request, reply) => {
    // Its tasks go with it: the foreign key cascades. The event keeps the project's name.
    const [deleted] = await auditedChange(request,
      Prisma.sql`DELETE FROM projects WHERE tenant_id = ${request.tenantId}::uuid AND id = ${request.params.id}::uuid RETURNING id, name`,
      { action: 'project.deleted', targetType: 'project', rowFields: ['name'] })
    if (!deleted) throw notFound('Project')
    return reply.code(204).send(null)
  })
}

export default projectRoutes
