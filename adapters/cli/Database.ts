import { mkdir } from "node:fs/promises"
import { join } from "node:path"
import type { SqlClient, SqlError } from "@effect/sql"
import { Effect, Layer, Redacted } from "effect"
import { DatabaseError } from "../../src/domain/Errors.ts"
import { logEvent } from "../../src/services/Logger.ts"
import { type MigrationFileError, migrate } from "../../src/services/Migrations.ts"
import * as PostgresClient from "../../src/services/PostgresClient.ts"
import { fromSqlError } from "../../src/services/SqlStore.ts"
import * as PgliteClient from "./PgliteClient.ts"

/** Where the embedded database, the outbox and other local state live, relative to the working directory. */
export const dataDirectory = ".scenario-scheduler"

export const outboxPath = join(dataDirectory, "outbox.jsonl")

/**
 * A Postgres server when a URL is given; otherwise the embedded PGlite database, created and
 * migrated on first use so that a fresh checkout runs without any setup. A server is never
 * migrated implicitly: its schema belongs to whoever runs `migrate` (or `supabase db push`).
 */
export const databaseLayer = (
  databaseUrl: Redacted.Redacted<string> | undefined
): Layer.Layer<SqlClient.SqlClient, DatabaseError> => {
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
  const embedded = PgliteClient.layer({ dataDir: directory }).pipe(Layer.mapError(fromSqlError), Layer.provide(created))
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

export const redactedUrl = (url: string | undefined): Redacted.Redacted<string> | undefined =>
  url === undefined || url === "" ? undefined : Redacted.make(url)
