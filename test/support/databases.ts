/**
 * The databases tests run against: an in-memory PGlite, which needs nothing, and a database of their own on the
 * Postgres server at `TEST_DATABASE_URL`, created for each suite that builds the layer and dropped after it.
 *
 * A test that needs the server is skipped, with a line saying so, when the server does not answer; with `CI` set
 * it runs anyway and fails, because a CI machine without its server is broken rather than a reason to test less.
 */
import { randomBytes } from "node:crypto"
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { PgClient } from "@effect/sql-pg"
import type { Vitest } from "@effect/vitest"
import { layer } from "@effect/vitest"
import { Context, Data, Duration, Effect, Layer, Redacted } from "effect"
import { describe } from "vitest"
import * as PgliteClient from "../../adapters/cli/PgliteClient.ts"
import { type MigrationFileError, migrate } from "../../src/services/Migrations.ts"
import * as PostgresClient from "../../src/services/PostgresClient.ts"

export type DatabaseName = "pglite" | "postgres"

export type TestDatabaseError = SqlError | MigrationFileError

/** The database a server test runs in, for tests that start another process (the CLI) against it. */
export class TestDatabase extends Context.Tag("test/TestDatabase")<TestDatabase, { readonly url: string }>() {}

/** The server's maintenance database: where test databases are created from and dropped. */
export const serverUrl: string = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"

const inCi = process.env.CI !== undefined && process.env.CI !== ""

const migrated = <E, R>(client: Layer.Layer<SqlClient.SqlClient, E, R>) =>
  Layer.effectDiscard(migrate).pipe(Layer.provideMerge(client))

/** A fresh in-memory PGlite with the migrations applied. */
export const pgliteLayer: Layer.Layer<SqlClient.SqlClient, TestDatabaseError> = migrated(PgliteClient.layer({}))

const adminLayer = PgClient.layer({
  url: Redacted.make(serverUrl),
  maxConnections: 1,
  connectTimeout: Duration.seconds(3),
  applicationName: "scenario-scheduler-tests"
})

const databaseUrl = (name: string): string => {
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  return url.toString()
}

/** Creates `scheduler_test_<random>` and drops it, connections and all, when the scope closes. */
const testDatabaseLayer = Layer.scoped(
  TestDatabase,
  Effect.gen(function* () {
    const admin = yield* SqlClient.SqlClient
    const name = `scheduler_test_${randomBytes(6).toString("hex")}`

    yield* Effect.acquireRelease(admin`create database ${admin(name)}`, () =>
      admin`drop database if exists ${admin(name)} with (force)`.pipe(Effect.orDie)
    )
    return { url: databaseUrl(name) }
  })
).pipe(Layer.provide(adminLayer))

const serverClientLayer = Layer.unwrapEffect(
  Effect.map(TestDatabase, ({ url }) => PostgresClient.layer(Redacted.make(url), "scenario-scheduler-tests"))
)

/**
 * A database of its own on the server, migrated, with its URL. The layer's scope closes the client's pool before
 * the database is dropped (layers release in the reverse order of their acquisition).
 */
export const postgresLayer: Layer.Layer<SqlClient.SqlClient | TestDatabase, TestDatabaseError> = migrated(
  serverClientLayer
).pipe(Layer.provideMerge(testDatabaseLayer))

/** Both databases, so a suite can run once on each. */
export const databases: ReadonlyArray<readonly [DatabaseName, Layer.Layer<SqlClient.SqlClient, TestDatabaseError>]> = [
  ["pglite", pgliteLayer],
  ["postgres", postgresLayer]
]

let availability: Promise<boolean> | undefined

/** Whether the server at `TEST_DATABASE_URL` answers a query; asked once per test file. */
export const serverAvailable = (): Promise<boolean> => {
  availability ??= Effect.runPromise(
    SqlClient.SqlClient.pipe(
      Effect.flatMap((sql) => sql`select 1`),
      Effect.provide(adminLayer),
      Effect.as(true),
      Effect.timeout(Duration.seconds(5)),
      Effect.orElseSucceed(() => false)
    )
  )
  return availability
}

/** Where the server is, without the password a URL may hold, for the line that says it is missing. */
const serverAddress = (): string => {
  const url = new URL(serverUrl)
  return `${url.hostname}:${url.port === "" ? "5432" : url.port}`
}

const reachable = await serverAvailable()

if (!reachable && !inCi) {
  process.stderr.write(`Postgres server unreachable at ${serverAddress()}: server tests are skipped\n`)
}

/**
 * `describe` for tests that need the server: skipped when it is unreachable, except on CI (see above). The suite's
 * title says why it was skipped.
 */
export const describeServer = (name: string, body: () => void): void => {
  if (reachable || inCi) {
    describe(name, body)
  } else {
    describe.skip(`${name} (skipped: Postgres server unreachable at ${serverAddress()})`, body)
  }
}

/** A test that must not leave its rows behind: run inside a transaction that is always rolled back. */
class RolledBack<A> extends Data.TaggedError("RolledBack")<{ readonly value: A }> {}

export const rolledBack = <A, E, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | SqlError, R | SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const outcome = yield* sql
      .withTransaction(Effect.flatMap(effect, (value) => Effect.fail(new RolledBack({ value }))))
      .pipe(Effect.flip)

    // Anything but our own signal is the effect's error, which the rollback must not swallow.
    if (outcome instanceof RolledBack) {
      return outcome.value as A
    }
    return yield* Effect.fail(outcome as E | SqlError)
  })

/**
 * Runs a suite once per database, each with the database shared by its tests (built before the first, released
 * after the last). The server suite is gated by {@link describeServer}.
 */
export const describeEachDatabase = (
  name: string,
  body: (it: Vitest.MethodsNonLive<SqlClient.SqlClient, true>, database: DatabaseName) => void
): void => {
  for (const [database, databaseLayer] of databases) {
    const suite = () =>
      layer(databaseLayer, { timeout: Duration.minutes(1), excludeTestServices: true })((it) => body(it, database))
    if (database === "postgres") {
      describeServer(`${name} [${database}]`, suite)
    } else {
      describe(`${name} [${database}]`, suite)
    }
  }
}
