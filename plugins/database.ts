// Makes the database available to the app: `app.database` (clients, health) and `app.platformDb`
// (the unscoped client, for platform work only). The database is opened by the caller
// (src/app.ts), so that tests and the server decide where it lives.
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Database } from '../src/db/database.ts'
import type { PrismaClient } from '../src/generated/prisma/client.ts'

declare module 'fastify' {
  interface FastifyInstance {
    database: Database
    /** Unscoped: never use it for tenant data on a request path; use request.db. */
    platformDb: PrismaClient
  }
}

export interface DatabasePluginOptions {
  database: Database
  /** Close the database with the app (the server does; a test sharing one database does not). */
  closeWithApp: boolean
}

export default fp<DatabasePluginOptions>(
  async function databasePlugin (app: FastifyInstance, { database, closeWithApp }) {
    app.decorate('database', database)
    app.decorate('platformDb', database.platformDb)
    // Runs after the server stopped accepting and in-flight requests finished (fastify.close()).
    if (closeWithApp) app.addHook('onClose', async () => database.close())
  },
  { name: 'database' }
)
