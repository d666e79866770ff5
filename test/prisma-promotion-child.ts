// Child process of test/prisma-runtime.test.ts, started with `--trace-gc-nvp`: runs the list
// route's query through the app's scoped client (CHILD_TENANT_ID on CHILD_DATABASE_URL), one after
// another, and prints a line before and after the measured queries, between which the parent adds
// up what V8's scavenges promoted to the old generation.
import { createDatabase, usePreparedStatements } from '../src/db/database.ts'
import { listArgs } from '../bench/list-query.ts'
import { projectFields } from '../routes/projects.ts'
import { testConfig } from './helper.ts'

const url = process.env.CHILD_DATABASE_URL!
const tenantId = process.env.CHILD_TENANT_ID!
const count = Number(process.env.CHILD_QUERIES ?? 3000)
const config = testConfig(url)
const database = createDatabase(config, url, undefined, { preparedStatements: await usePreparedStatements(config, config.APP_DATABASE_URL ?? url) })
const list = () => database.forTenant(tenantId).project.findMany(listArgs(projectFields))

for (let i = 0; i < 500; i++) await list() // warm-up: connections, plan cache, optimised code
console.log('measure-start')
for (let i = 0; i < count; i++) await list()
console.log(`measure-end ${count}`)
await database.close()
