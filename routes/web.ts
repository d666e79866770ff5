// The tenant web page (tenant hosts only): GET / and its script and stylesheet, from public/.
// The files are read once, when the routes are registered, and sent from memory. The script and
// stylesheet are separate files so the default Content-Security-Policy (script-src 'self') allows
// them: nothing here loosens CSP. The page signs in on the cookie flow (see public/app.js).
import { readFile } from 'node:fs/promises'
import type { FastifyInstance } from 'fastify'

const PUBLIC_DIR = new URL('../public/', import.meta.url)

const FILES = [
  { url: '/', file: 'index.html', type: 'text/html; charset=utf-8' },
  // Links of invitation and reset emails open the same page, which shows the matching screen.
  { url: '/accept-invitation', file: 'index.html', type: 'text/html; charset=utf-8' },
  { url: '/reset-password', file: 'index.html', type: 'text/html; charset=utf-8' },
  { url: '/app.js', file: 'app.js', type: 'text/javascript; charset=utf-8' },
  { url: '/app.css', file: 'app.css', type: 'text/css; charset=utf-8' },
] as const

export default async function webRoutes (app: FastifyInstance) {
  for (const { url, file, type } of FILES) {
    const body = await readFile(new URL(file, PUBLIC_DIR))
    app.get(url, { schema: { hide: true } }, async (_request, reply) => {
      // Revalidated on every load (no tenant data in these files, but a deploy must show at once).
      return reply.type(type).header('cache-control', 'no-cache').send(body)
    })
  }
}
