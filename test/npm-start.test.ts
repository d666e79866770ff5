// The README's start commands are npm scripts, and npm hands a signal only to the shell it runs
// the script in: without `exec` in the script, SIGTERM to `npm start` (a container's `docker stop`,
// a process manager) ended npm and left the server running without its drain, holding the port.
import net from 'node:net'
import t from 'tap'
import { sharedSecrets, startServer } from './cluster-helper.ts'
import { createTestDatabase } from './helper.ts'

const portIsFree = (port: number) => new Promise<boolean>((resolve) => {
  const socket = net.connect(port, '127.0.0.1')
  socket.once('connect', () => { socket.destroy(); resolve(false) })
  socket.once('error', () => resolve(true))
})

t.test('SIGTERM to `npm start` reaches the server: it drains, stops and frees its port', async (t) => {
  const ownerUrl = await createTestDatabase(t)
  const server = await startServer(t, { NODE_ENV: 'production', DATABASE_URL: ownerUrl, LOG_LEVEL: 'info', ...sharedSecrets() }, { npmScript: 'start' })
  await server.stop() // SIGTERM to npm, and the wait for npm to exit
  t.match(server.output(), /shutting down: finishing in-flight requests/, 'the server received the signal')
  t.match(server.output(), /stopped: in-flight requests finished, database closed/, 'and drained')
  t.ok(await portIsFree(server.port), 'nothing listens on its port any more')
})
