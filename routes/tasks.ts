// Tasks of a project (tenant hosts, any signed-in user): shared/API.md "Resources". Every route first
// finds the project in this tenant: another tenant's project, like a missing one, is a 404.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import Type from 'typebox'
import { ListQuery, Page, page, pageArgs } from '../src/api/pagination.ts'
import { isStorableDate, NoContent, Nullable, TaskStatusSchema, Timestamp, TimestampInput, Uuid, responses, signedIn } from '../src/api/schemas.ts'
import { requirePermission } from '../src/auth/permissions.ts'
import { AppError, notFound } from '../src/errors.ts'
import type { Prisma } from '../src/generated/prisma/client.ts'

const Status = TaskStatusSchema
const Title = Type.String({ minLength: 1, maxLength: 500 })
const Description = Nullable(Type.String({ maxLength: 10_000 }))
const DueAt = Nullable(TimestampInput)

export const Task = Type.Object({
  id: Uuid,
  projectId: Uuid,
  title: Type.String(),
  description: Nullable(Type.String()),
  status: Status,
  dueAt: Nullable(Timestamp),
  createdAt: Timestamp,
  updatedAt: Timestamp,
})

const CreateTask = Type.Object({
  title: Title,
  description: Type.Optional(Description),
  status: Type.Optional(Status),
  dueAt: Type.Optional(DueAt),
}, { additionalProperties: false })
const UpdateTask = Type.Partial(CreateTask, { additionalProperties: false })

const ProjectParams = Type.Object({ projectId: Uuid }, { additionalProperties: false })
const TaskParams = Type.Object({ projectId: Uuid, id: Uuid }, { additionalProperties: false })

const taskFields = { id: true, projectId: true, title: true, description: true, status: true, dueAt: true, createdAt: true, updatedAt: true } as const

const tags = ['tasks']
const security = signedIn

/** 404 unless the project exists in this tenant. */
async function assertProject (request: FastifyRequest, projectId: string): Promise<void> {
  const project = await request.db.project.findFirst({ where: { id: projectId }, select: { id: true } })
  if (!project) throw notFound('Project')
}

/** Body dates arrive as ISO strings; Prisma wants Date (or null to clear). */
function withDueAt<T extends { dueAt?: string | null }> (body: T) {
  const { dueAt, ...rest } = body
  return dueAt === undefined ? rest : { ...rest, dueAt: dueAt === null ? null : parseDueAt(dueAt) }
}

/** A format-valid date-time may still be no storable instant (leap second, year 0 or 10000): a 400, not a 500. */
function parseDueAt (text: string): Date {
  const date = new Date(text)
  if (!isStorableDate(date)) throw new AppError('VALIDATION_FAILED', 'body/dueAt must be an instant in the years 0001–9999 (no leap second)')
  return date
}

const taskRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const canRead = requirePermission('tasks.read')
  const canWrite = requirePermission('tasks.write')

  app.get('/v1/projects/:projectId/tasks', {
    onRequest: canRead,
    schema: { tags, security, summary: 'List the tasks of a project, newest first', params: ProjectParams, querystring: ListQuery, response: responses({ 200: Page(Task) }) },
  }, async (request) => {
    const { projectId } = request.params
    const args = pageArgs(request.query) // a bad cursor is a 400 before any query
    await assertProject(request, projectId)
    const rows = await request.db.task.findMany({ ...args, where: { ...args.where, projectId }, select: taskFields })
    return page(rows, request.query)
  })

  app.post('/v1/projects/:projectId/tasks', {
    onRequest: canWrite,
    schema: { tags, security, summary: 'Create a task', params: ProjectParams, body: CreateTask, response: responses({ 201: Task }) },
  }, async (request, reply) => {
    const { projectId } = request.params
    await assertProject(request, projectId)
    // The project being deleted meanwhile fails the (tenant_id, project_id) foreign key: P2003, a 404.
    const data: Prisma.TaskUncheckedCreateInput = { ...withDueAt(request.body), projectId }
    return reply.code(201).send(await request.db.task.create({ data, select: taskFields }))
  })

  app.get('/v1/projects/:projectId/tasks/:id', {
    onRequest: canRead,
    schema: { tags, security, summary: 'Read a task', params: TaskParams, response: responses({ 200: Task }) },
  }, async (request) => {
    // Matching on (id, projectId) makes a task of a missing or foreign project a 404 as well.
    const { projectId, id } = request.params
    const task = await request.db.task.findFirst({ where: { id, projectId }, select: taskFields })
    if (!task) throw notFound('Task')
    return task
  })

  app.patch('/v1/projects/:projectId/tasks/:id', {
    onRequest: canWrite,
    schema: { tags, security, summary: 'Change a task', params: TaskParams, body: UpdateTask, response: responses({ 200: Task }) },
  }, async (request) => {
    const { projectId, id } = request.params
    return request.db.task.update({ where: { id, projectId }, data: withDueAt(request.body), select: taskFields })
  })

  app.delete('/v1/projects/:projectId/tasks/:id', {
    onRequest: canWrite,
    schema: { tags, security, summary: 'Delete a task', params: TaskParams, response: responses({ 204: NoContent }) },
  }, async (request, reply) => {
    const { projectId, id } = request.params
    await request.db.task.delete({ where: { id, projectId }, select: { id: true } })
    return reply.code(204).send(null)
  })
}

export default taskRoutes
