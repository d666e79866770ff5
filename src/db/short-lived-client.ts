// One connection for one piece of work (start-up checks, grants, retention), closed afterwards.
import pg from 'pg'

/**
 * Opens a pg client on `connectionString`, runs `work` with it and closes it, whatever happens.
 * The client listens for `error` its whole life: a connection dying mid-work (the database
 * restarting) rejects the pending query instead of ending the process. `connectTimeoutMs` bounds
 * the connect and `queryTimeoutMs` each query, client-side (ms; 0: pg's default, unbounded).
 * @throws what `connect` or `work` throws (the client is closed first).
 */
export async function withShortLivedClient<T> (connectionString: string, work: (client: pg.Client) => Promise<T>, connectTimeoutMs = 0, queryTimeoutMs = 0): Promise<T> {
  // keepAlive: a connection whose network died is noticed by the OS, not held open for hours.
  const client = new pg.Client({ connectionString, connectionTimeoutMillis: connectTimeoutMs, keepAlive: true, ...(queryTimeoutMs ? { query_timeout: queryTimeoutMs } : {}) })
  client.on('error', () => {})
  try {
    await client.connect()
    return await work(client)
  } finally {
    await client.end().catch(() => {})
  }
}
