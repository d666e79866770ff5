// Fastify's own route table of every app a test builds — not the OpenAPI document, which leaves out
// a route registered with `schema: { hide: true }` (review: such a route escaped both route matrices).
// Each Fastify instance is announced on the `fastify.initialization` diagnostics channel before any
// plugin loads (Fastify "Diagnostics Channel"); an onRoute hook added there sees every route the
// app registers, in every encapsulated scope. Nothing in the application exists for the tests.
import { subscribe } from 'node:diagnostics_channel'
import type { FastifyInstance, RouteOptions } from 'fastify'

/** One registered route: `route` as the OpenAPI document spells it (`GET /v1/projects/{id}`). */
export interface RegisteredRoute {
  route: string
  method: string
  /** The path with `{param}` placeholders (`/v1/projects/{id}`). */
  path: string
  /** The route asked to be left out of the OpenAPI document (`schema.hide`). */
  hidden: boolean
}

const tables = new WeakMap<FastifyInstance, RegisteredRoute[]>()

subscribe('fastify.initialization', (message) => {
  const { fastify } = message as { fastify: FastifyInstance }
  const table: RegisteredRoute[] = []
  tables.set(fastify, table)
  fastify.addHook('onRoute', (options: RouteOptions) => {
    const path = options.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}')
    const hidden = Boolean((options.schema as { hide?: boolean } | undefined)?.hide)
    for (const method of [options.method].flat()) table.push({ route: `${method} ${path}`, method, path, hidden })
  })
})

/**
 * Every route `app` registered, once each, without the HEAD route of a path that has a GET (the
 * twin Fastify adds to each GET: exposeHeadRoutes). Throws for an app built before this module was imported (its routes
 * were not seen).
 */
export function registeredRoutes (app: FastifyInstance): RegisteredRoute[] {
  const table = tables.get(app)
  if (!table) throw new Error('registeredRoutes: this app was built before test/route-table.ts was imported')
  const gets = new Set(table.filter((r) => r.method === 'GET').map((r) => r.path))
  const seen = new Set<string>()
  return table.filter((r) => !(r.method === 'HEAD' && gets.has(r.path)) && !seen.has(r.route) && seen.add(r.route))
}
