/**
 * Where a benchmark runs: a database of its own on the Postgres server, created with a random name
 * and dropped afterwards (connections and all), or an in-memory PGlite. Both are migrated with the
 * repository's migrations before anything else happens.
 */
import { randomBytes } from "node:crypto"
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { PgClient } from "@effect/sql-pg"
import { Duration, Effect, Layer, Redacted } from "effect"
import * as PgliteClient from "../adapters/cli/PgliteClient.ts"
import { type MigrationFileError, migrate } from "../src/services/Migrations.ts"
import * as PostgresClient from "../src/services/PostgresClient.ts"

export type DatabaseKind = "postgres" | "pglite"

/** The server's maintenance database, where benchmark databases are created from and dropped. */
export const serverUrl: string =
  process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"

const adminLayer = PgClient.layer({
  url: Redacted.make(serverUrl),
  maxConnections: 1,
  connectTimeout: Duration.seconds(5),
  applicationName: "scenario-scheduler-bench"
})

const urlOf = (name: string): string => {
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  return url.toString()
}

/** A fresh database on the server; the name is random so that benchmarks and tests never meet. */
const freshServerDatabase = Layer.unwrapScoped(
  Effect.gen(function* () {
    const admin = yield* SqlClient.SqlClient
    const name = `scheduler_bench_${randomBytes(6).toString("hex")}`

    yield* Effect.acquireRelease(admin`create database ${admin(name)}`, () =>
      admin`drop database if exists ${admin(name)} with (force)`.pipe(Effect.orDie)
    )
    return PostgresClient.layer(Redacted.make(urlOf(name)), "scenario-scheduler-bench")
  })
).pipe(Layer.provide(adminLayer))

const migrated = <E>(client: Layer.Layer<SqlClient.SqlClient, E>) =>
  Layer.effectDiscard(migrate).pipe(Layer.provideMerge(client))

/** The client of a freshly made, migrated database of the given kind; releasing the layer removes it. */
export const databaseLayer = (kind: DatabaseKind): Layer.Layer<SqlClient.SqlClient, SqlError | MigrationFileError> =>
  kind === "postgres" ? migrated(freshServerDatabase) : migrated(PgliteClient.layer({}))

/** Whether the server answers at all, so that a missing server is one clear line rather than a stack trace. */
export const serverAnswers: Effect.Effect<boolean> = SqlClient.SqlClient.pipe(
  Effect.flatMap((sql) => sql`select 1`),
  Effect.provide(adminLayer),
  Effect.as(true),
  Effect.timeout(Duration.seconds(5)),
  Effect.orElseSucceed(() => false)
)
