import t from 'tap'
import { build, insertTenant } from './helper.ts'

t.test('health answers on every host, tenant or not', async (t) => {
  const { app, ownerUrl } = await build(t)
  await insertTenant(ownerUrl, 'acme')
  for (const host of ['localhost', 'acme.localhost', 'nope.localhost', 'elsewhere.example']) {
    const res = await app.inject({ url: '/healthz', headers: { host } })
    t.equal(res.statusCode, 200, host)
    t.same(res.json(), { status: 'ok' })
  }
  const ready = await app.inject({ url: '/readyz', headers: { host: 'acme.localhost' } })
  t.equal(ready.statusCode, 200)
})

t.test('unknown routes answer 404 NOT_FOUND in the error shape', async (t) => {
  const { app } = await build(t)
  const res = await app.inject({ url: '/nope', headers: { host: 'localhost' } })
  t.equal(res.statusCode, 404)
  t.equal(res.json().error.code, 'NOT_FOUND')
  t.match(res.json().error.requestId, /^[0-9a-f-]{36}$/)
})
