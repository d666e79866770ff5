// The OpenAPI document: valid OpenAPI 3.1, generated from the route schemas, served with its UI on
// the platform host and on tenant hosts.
import { Validator } from '@seriousme/openapi-schema-validator'
import { readFile } from 'node:fs/promises'
import t from 'tap'
import { build, insertTenant } from './helper.ts'

const TENANT_PATHS = ['/v1/tenant', '/v1/users', '/v1/users/{id}', '/v1/projects', '/v1/projects/{id}', '/v1/projects/{projectId}/tasks', '/v1/projects/{projectId}/tasks/{id}', '/v1/api-keys', '/v1/api-keys/{id}']

/** The API-key scope each operation documents (none: keys are refused there). */
function keyScope (method: string, path: string): string | null {
  const resource = path.startsWith('/v1/projects/{projectId}/tasks') ? 'tasks' : path.startsWith('/v1/projects') ? 'projects' : path.startsWith('/v1/users') ? 'users' : path === '/v1/tenant' ? 'tenant' : null
  if (!resource) return null
  if (method === 'get') return `${resource}:read`
  return resource === 'projects' || resource === 'tasks' ? `${resource}:write` : null
}

t.test('GET /docs/json is a valid OpenAPI 3.1 document describing every route', async (t) => {
  const { app } = await build(t, { env: { PLATFORM_ADMIN_TOKEN: 'x'.repeat(40) } })
  const res = await app.inject({ url: '/docs/json', headers: { host: 'localhost' } })
  t.equal(res.statusCode, 200)
  const doc = res.json()
  const result = await new Validator().validate(doc)
  t.ok(result.valid, JSON.stringify(result.errors ?? null).slice(0, 2000))
  t.equal(doc.openapi, '3.1.0')
  for (const path of [...TENANT_PATHS, '/v1/tenants', '/v1/admin/tenants', '/v1/admin/tenants/{slug}', '/healthz']) t.ok(doc.paths[path], path)
  t.same(Object.keys(doc.components.securitySchemes).sort(), ['apiKeyAuth', 'bearerAuth', 'cookieAuth', 'platformAdminToken'])
  t.match(doc.components.securitySchemes.apiKeyAuth, { type: 'http', scheme: 'bearer', bearerFormat: /^tk_live_/ })
  t.match(doc.components.securitySchemes.bearerAuth, { type: 'http', scheme: 'bearer' })
  t.match(doc.components.securitySchemes.cookieAuth, { type: 'apiKey', in: 'cookie' })
  for (const path of TENANT_PATHS) {
    for (const [method, operation] of Object.entries<any>(doc.paths[path])) {
      const scope = keyScope(method, path)
      t.same(operation.security, [{ bearerAuth: [] }, { cookieAuth: [] }, ...(scope ? [{ apiKeyAuth: [scope] }] : [])], `${method} ${path} needs a token${scope ? ` or a key with ${scope}` : ''}`)
      t.ok(operation.responses['4XX'] ?? operation.responses['4xx'], `${method} ${path} documents errors`)
      const body = operation.requestBody?.content?.['application/json']?.schema
      if (body) t.equal(body.additionalProperties, false, `${method} ${path}: unknown properties refused`)
    }
  }
  t.notMatch(res.body, /passwordHash|password_hash|authVersion/, 'no hidden field is documented')
  const user = doc.paths['/v1/users/{id}'].get.responses['200'].content['application/json'].schema
  t.same(Object.keys(user.properties).sort(), ['active', 'createdAt', 'email', 'id', 'name', 'role', 'updatedAt'])
})

// Review: names went into emails and the log with line breaks, control characters or nothing but
// spaces. Every `name` a request body takes, at any depth, is the one DisplayName (src/api/schemas.ts):
// a route added with a plain string fails here.
t.test('every name a request body takes refuses line breaks, control characters and blanks', async (t) => {
  const { app } = await build(t, { env: { PLATFORM_ADMIN_TOKEN: 'x'.repeat(40) } })
  const doc = (await app.inject({ url: '/docs/json', headers: { host: 'localhost' } })).json()
  const names: string[] = []
  const walk = (schema: any, where: string) => {
    for (const [key, property] of Object.entries<any>(schema?.properties ?? {})) {
      if (key === 'name') names.push(`${where}.name: ${property.format ?? 'no format'}`)
      walk(property, `${where}.${key}`)
    }
    for (const branch of schema?.anyOf ?? []) walk(branch, where)
  }
  for (const [path, operations] of Object.entries<any>(doc.paths)) {
    for (const [method, operation] of Object.entries<any>(operations)) walk(operation.requestBody?.content?.['application/json']?.schema, `${method.toUpperCase()} ${path}`)
  }
  t.ok(names.length >= 8, `${names.length} names found`)
  t.same(names.filter((name) => !name.endsWith(': display-name')), [], 'each is a display-name')
})

t.test('the docs answer on the platform host and on tenant hosts', async (t) => {
  const { app, ownerUrl } = await build(t)
  await insertTenant(ownerUrl, 'acme')
  for (const host of ['localhost', 'api.localhost', 'acme.localhost']) {
    const ui = await app.inject({ url: '/docs', headers: { host } })
    t.equal(ui.statusCode, 200, host)
    t.match(ui.headers['content-type'], /text\/html/)
    t.match(ui.body, /swagger/i)
    const json = await app.inject({ url: '/docs/json', headers: { host } })
    t.equal(json.statusCode, 200)
    t.equal(json.json().openapi, '3.1.0')
    const yaml = await app.inject({ url: '/docs/yaml', headers: { host } })
    t.equal(yaml.statusCode, 200)
  }
  const initializer = await app.inject({ url: '/docs/static/swagger-initializer.js', headers: { host: 'acme.localhost' } })
  t.equal(initializer.statusCode, 200, 'UI assets too')
})

// Review: a route added by the README guide could leave the document's tags and the README's Routes
// table behind without any test noticing. Every operation names a tag the document declares, and
// the README lists it (`METHOD /path` or `GET/POST /path`, parameters as `:name`).
t.test('every operation has a declared tag and a row in the README\'s Routes table', async (t) => {
  const { app } = await build(t, { env: { PLATFORM_ADMIN_TOKEN: 'x'.repeat(40) } })
  const doc = (await app.inject({ url: '/docs/json', headers: { host: 'localhost' } })).json()
  const declared = new Set(doc.tags.map((tag: { name: string }) => tag.name))
  const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8')
  const table = readme.slice(readme.indexOf('\n## Routes\n'), readme.indexOf('\n## ', readme.indexOf('\n## Routes\n') + 1))
  const listed = new Set<string>()
  for (const [, methods, path] of table.matchAll(/`([A-Z]+(?:\/[A-Z]+)*) (\/[^`\s]*)`/g)) {
    for (const method of methods!.split('/')) listed.add(`${method} ${path}`)
  }
  const untagged: string[] = []
  const unlisted: string[] = []
  for (const [path, operations] of Object.entries<any>(doc.paths)) {
    for (const [method, operation] of Object.entries<any>(operations)) {
      const name = `${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`
      if (!operation.tags?.length || !operation.tags.every((tag: string) => declared.has(tag))) untagged.push(`${name} (${operation.tags ?? 'no tag'})`)
      if (!listed.has(name)) unlisted.push(name)
    }
  }
  t.ok(Object.keys(doc.paths).length >= 20, `${Object.keys(doc.paths).length} paths documented`)
  t.same(untagged, [], 'each tag is declared in plugins/docs.ts')
  t.same(unlisted, [], 'each operation is in the README\'s Routes table')
})
