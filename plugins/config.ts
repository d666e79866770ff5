// Exposes the validated configuration (src/config.ts) as `app.config`.
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from '../src/config.ts'

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
  }
}

export default fp<{ config: Config }>(
  async function configPlugin (app: FastifyInstance, { config }) {
    app.decorate('config', config)
  },
  { name: 'config' }
)
