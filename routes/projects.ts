// Projects (tenant hosts, any signed-in user): shared/API.md "Resources".
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { ListQuery, Page, page, pageArgs } from '../src/api/pagination.ts'
import { IdParams, NoContent, Nullable, Timestamp, Uuid, responses, signedIn } from '../src/api/schemas.ts'
import { requirePermission } from '../src/auth/permissions.ts'
import { notFound } from '../src/errors.ts'
import type { Prisma } from '../src/generated/prisma/client.ts'

const Name = Type.String({ minLength: 1, maxLength: 200 })
const Description = Nullable(Type.String({ maxLength: 10_000 }))

export const Project = Type.Object({
  id: Uuid,
  name: Type.String(),
  description: Nullable(Type.String()),
  createdAt: Timestamp,
  updatedAt: Timestamp,
})

const CreateProject = Type.Object({ name: Name, description: Type.Optional(Description) }, { additionalProperties: false })
const UpdateProject = Type.Object({ name: Type.Optional(Name), description: Type.Optional(Description) }, { additionalProperties: false })

/** The columns a project answer shows (the response schema would drop others anyway). */
export const projectFields = { id: true, name: true, description: true, createdAt: true, updatedAt: true } as const

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
    const data: Prisma.ProjectUncheckedCreateInput = request.body
    return reply.code(201).send(await request.db.project.create({ data, select: projectFields }))
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
    // A missing id (or another tenant's) is Prisma's P2025: 404 NOT_FOUND (plugins/error-handler.ts).
    return request.db.project.update({ where: { id: request.params.id }, data: request.body, select: projectFields })
  })

  app.delete('/v1/projects/:id', {
    onRequest: canWrite,
    schema: { tags, security, summary: 'Delete a project and its tasks', params: IdParams, response: responses({ 204: NoContent }) },
  }, async (request, reply) => {
    // Its tasks go with it: the foreign key cascades.
    await request.db.project.delete({ where: { id: request.params.id }, select: { id: true } })
    return reply.code(204).send(null)
  })
}

export default projectRoutes
