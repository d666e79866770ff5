export function cliDatabaseUrl(): string { return process.env.DATABASE_URL ?? 'postgresql://postgres:postgres@127.0.0.1:54329/app' }
