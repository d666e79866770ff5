// 400 interleaved requests of two tenants, concurrently over real sockets: no answer ever contains
// the other tenant's rows (the scoped client, RLS and the tenant context under real concurrency).
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { buildApi } from './api-helper.ts'

// node:http, because fetch does not let a caller choose the Host header.
function get (port: number, path: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      let body = ''
      res.on('data', (chunk) => (body += chunk))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    }).on('error', reject)
  })
}

t.test('concurrent requests of two tenants never see each other\'s rows', async (t) => {
  const api = await buildApi(t)
  for (const tenant of [api.acme, api.globex]) {
    for (let i = 0; i < 5; i++) {
      const res = await tenant.call('member', { method: 'POST', url: '/v1/projects', payload: { name: `${tenant.slug} project ${i}` } })
      t.equal(res.statusCode, 201)
    }
  }
  await api.app.listen({ port: 0, host: '127.0.0.1' })
  const port = (api.app.server.address() as AddressInfo).port

  const request = async (i: number) => {
    const tenant = i % 2 ? api.acme : api.globex
    const other = i % 2 ? api.globex : api.acme
    const { status, body } = await get(port, '/v1/projects?limit=100', { host: tenant.host, authorization: `Bearer ${tenant.users.member.accessToken}` })
    return { ok: status === 200, leaked: body.includes(other.slug), own: (body.match(new RegExp(`${tenant.slug} project`, 'g')) ?? []).length }
  }
  const results = await Promise.all(Array.from({ length: 400 }, (_, i) => request(i)))
  t.equal(results.filter((r) => !r.ok).length, 0, 'all 400 answered 200')
  t.equal(results.filter((r) => r.leaked).length, 0, 'no answer named the other tenant')
  t.ok(results.every((r) => r.own === 5), 'every answer listed exactly its own 5 projects')
})
