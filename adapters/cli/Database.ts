import { mkdir } from "node:fs/promises"
import { join } from "node:path"
import type { SqlClient, SqlError } from "@effect/sql"
import { Config, Effect, Layer, Redacted } from "effect"
import { DatabaseError } from "../../src/domain/Errors.ts"
import { logEvent } from "../../src/services/Logger.ts"
import { type MigrationFileError, migrate } from "../../src/services/Migrations.ts"
import * as PostgresClient from "../../src/services/PostgresClient.ts"
import { fromSqlError } from "../../src/services/SqlStore.ts"
import * as DataDirectoryLock from "./DataDirectoryLock.ts"
import * as PgliteClient from "./PgliteClient.ts"

/** Where the embedded database, the outbox and other local state live, relative to the working directory. */
export const dataDirectory = ".scenario-scheduler"

export const outboxPath = join(dataDirectory, "outbox.jsonl")

/** Held by the one process that has the embedded database open; beside the directory, which PGlite owns. */
export const lockPath = join(dataDirectory, "pgdata.lock")

/** How long a command waits for another process to close the embedded database before it gives up. */
export const embeddedDatabaseWaitMs = Config.integer("EMBEDDED_DATABASE_WAIT_MS").pipe(
  Config.validate({ message: "must be between 0 and 600000", validation: (n) => n >= 0 && n <= 600_000 }),
  Config.withDefault(10_000)
)

/** Taken before PGlite opens the directory and given back after it has closed it. */
const lockLayer = Layer.unwrapEffect(
  embeddedDatabaseWaitMs.pipe(
    Effect.map((waitMs) => DataDirectoryLock.layer({ path: lockPath, waitMs })),
    Effect.mapError((error) => new DatabaseError({ reason: "unavailable", message: String(error) }))
  )
)

/**
 * A Postgres server when a URL is given; otherwise the embedded PGlite database, created and
 * migrated on first use so that a fresh checkout runs without any setup. A server is never
 * migrated implicitly: its schema belongs to whoever runs `migrate` (or `supabase db push`).
 * The embedded database is opened by one process at a time (see DataDirectoryLock).
 */
export const databaseLayer = (databaseUrl: DatabaseUrl): Layer.Layer<SqlClient.SqlClient, DatabaseError> => {
  if (databaseUrl !== undefined) {
    return PostgresClient.layer(databaseUrl).pipe(Layer.mapError(fromSqlError))
  }

  const directory = join(dataDirectory, "pgdata")
  const created = Layer.effectDiscard(
    Effect.tryPromise({
      try: () => mkdir(directory, { recursive: true }),
      catch: (cause) =>
        new DatabaseError({ reason: "unavailable", message: `cannot create ${directory}: ${String(cause)}` })
    })
  )
  // However PGlite fails to open its directory, the database is not there for this run.
  const embedded = PgliteClient.layer({ dataDir: directory }).pipe(
    Layer.mapError((error) => {
      const { code, message, cause } = fromSqlError(error)
      return new DatabaseError({ reason: "unavailable", code, message, cause })
    }),
    Layer.provide(created),
    Layer.provide(lockLayer)
  )
  const migrated = Layer.effectDiscard(
    migrate.pipe(
      Effect.tap((applied) => (applied.length > 0 ? logEvent("info", "migrations_applied", { applied }) : Effect.void)),
      Effect.mapError(migrationFailure)
    )
  )
  return Layer.provideMerge(migrated, embedded)
}

const migrationFailure = (error: SqlError.SqlError | MigrationFileError): DatabaseError =>
  error._tag === "SqlError" ? fromSqlError(error) : new DatabaseError({ reason: "query", message: error.message })

/** Where the database is: a Postgres URL (a secret, it may hold a password), or the embedded database. */
export type DatabaseUrl = Redacted.Redacted<string> | undefined

export const redactedUrl = (url: string | undefined): DatabaseUrl =>
  url === undefined || url === "" ? undefined : Redacted.make(url)
