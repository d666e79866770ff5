// Tasks of a project (tenant hosts, any signed-in user): shared/API.md "Resources". Every route first
// finds the project in this tenant: another tenant's project, like a missing one, is a 404.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import Type from 'typebox'
import { ListQuery, Page, page, pageArgs } from '../src/api/pagination.ts'
import { isStorableDate, NoContent, Nullable, TaskStatusSchema, Timestamp, TimestampInput, Uuid, responses, signedIn } from '../src/api/schemas.ts'
import { auditedChange } from '../src/audit/audit-log.ts'
import { requirePermission } from '../src/auth/permissions.ts'
import { AppError, notFound } from '../src/errors.ts'
import { Prisma, type TaskStatus } from '../src/generated/prisma/client.ts'

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
const UpdateTask = Type.Partial(CreateTask, { additionalProperties: false, minProperties: 1 })

const ProjectParams = Type.Object({ projectId: Uuid }, { additionalProperties: false })
const TaskParams = Type.Object({ projectId: Uuid, id: Uuid }, { additionalProperties: false })

const taskFields = { id: true, projectId: true, title: true, description: true, status: true, dueAt: true, createdAt: true, updatedAt: true } as const
/** taskFields in a raw statement's RETURNING (the writes are raw: change and audit event in one statement). */
const RETURNING = Prisma.sql`RETURNING id, project_id AS "projectId", title, description, status::text AS status, due_at AS "dueAt", created_at AS "createdAt", updated_at AS "updatedAt"`
type TaskRow = { id: string, projectId: string, title: string, description: string | null, status: TaskStatus, dueAt: Date | null, createdAt: Date, updatedAt: Date }

const tags = ['tasks']
const security = signedIn

/** 404 unless the project exists in this tenant. */
async function assertProject (request: FastifyRequest, projectId: string): Promise<void> {
  const project = await request.db.project.findFirst({ where: { id: projectId }, select: { id: true } })
  if (!project) throw notFound('Project')
}

/** Body dates arrive as ISO strings: a Date, null to clear, undefined when absent. */
function dueAtOf (body: { dueAt?: string | null }): Date | null | undefined {
  return body.dueAt === undefined || body.dueAt === null ? body.dueAt : parseDueAt(body.dueAt)
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
    const { title, description = null, status = 'todo' } = request.body
    const dueAt = dueAtOf(request.body)
    // Inserted only if the project is this tenant's (else no row, no event: 404). A project deleted
    // meanwhile fails the (tenant_id, project_id) foreign key: nothing is written.
    // The event holds dueAt as stored (UTC, to the ms), as the row and the answer do, not as sent
    // (an undefined dueAt, not sent, is left out of the event as any undefined field is).
    const [task] = await auditedChange<TaskRow>(request, Prisma.sql`INSERT INTO tasks (tenant_id, project_id, title, description, status, due_at)
      SELECT p.tenant_id, p.id, ${title}, ${description}, ${status}::"TaskStatus", ${dueAt ?? null}::timestamptz FROM projects p
      WHERE p.tenant_id = ${request.tenantId}::uuid AND p.id = ${projectId}::uuid ${RETURNING}`,
    { action: 'task.created', targetType: 'task', data: { ...request.body, dueAt, projectId } })
    if (!task) throw notFound('Project')
    return reply.code(201).send(task)
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
    const { title, description, status } = request.body
    const dueAt = dueAtOf(request.body)
    const set = [Prisma.sql`updated_at = CURRENT_TIMESTAMP`]
    if (title !== undefined) set.push(Prisma.sql`title = ${title}`)
    if (description !== undefined) set.push(Prisma.sql`description = ${description}`)
    if (status !== undefined) set.push(Prisma.sql`status = ${status}::"TaskStatus"`)
    if (dueAt !== undefined) set.push(Prisma.sql`due_at = ${dueAt}::timestamptz`)
    // Matching on (tenant, project, id): a task of a missing or foreign project is a 404, with no event.
    const [task] = await auditedChange<TaskRow>(request, Prisma.sql`UPDATE tasks SET ${Prisma.join(set)}
      WHERE tenant_id = ${request.tenantId}::uuid AND project_id = ${projectId}::uuid AND id = ${id}::uuid ${RETURNING}`,
    { action: 'task.updated', targetType: 'task', data: { ...request.body, dueAt, projectId } })
    if (!task) throw notFound('Task')
    return task
  })

  app.delete('/v1/projects/:projectId/tasks/:id', {
    onRequest: canWrite,
    schema: { tags, security, summary: 'Delete a task', params: TaskParams, response: responses({ 204: NoContent }) },
  }, async (request, reply) => {
    const { projectId, id } = request.params
    const [deleted] = await auditedChange(request, Prisma.sql`DELETE FROM tasks
      WHERE tenant_id = ${request.tenantId}::uuid AND project_id = ${projectId}::uuid AND id = ${id}::uuid RETURNING id, title`,
    { action: 'task.deleted', targetType: 'task', data: { projectId }, rowFields: ['title'] })
    if (!deleted) throw notFound('Task')
    return reply.code(204).send(null)
  })
}

export default taskRoutes
