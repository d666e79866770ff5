// An unexpected failure inside a handler: the client gets a generic 500 in the contract's shape,
// the log gets the error with the request id, and the process keeps serving.
import { Writable } from 'node:stream'
import t from 'tap'
import { buildApp } from '../src/app.ts'
import { createDatabase } from '../src/db/database.ts'
import { createTestDatabase, testConfig } from './helper.ts'

t.test('a handler that throws answers 500 INTERNAL without leaking anything', async (t) => {
  const url = await createTestDatabase(t)
  const config = testConfig(url)
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _enc, done) { lines.push(String(chunk)); done() } })
  const app = await buildApp({ config, database: createDatabase(config, url), logger: { level: 'error', stream } })
  t.teardown(() => app.close())
  app.get('/boom', { config: { anyHost: true } }, async () => {
    throw new Error('relation "users" does not exist: SELECT password_hash FROM users')
  })

  const res = await app.inject({ url: '/boom', headers: { host: 'localhost' } })
  t.equal(res.statusCode, 500)
  const body = res.json()
  t.same(Object.keys(body.error).sort(), ['code', 'message', 'requestId'])
  t.equal(body.error.code, 'INTERNAL')
  t.notMatch(res.body, /SELECT|password_hash|users|at .*\.ts/, 'no SQL, no stack')
  const logged = lines.join('')
  t.match(logged, body.error.requestId, 'the log names the request id')
  t.match(logged, /SELECT password_hash/, 'and carries the real error for operators')
  t.equal((await app.inject({ url: '/healthz', headers: { host: 'localhost' } })).statusCode, 200, 'the process keeps serving')
})
