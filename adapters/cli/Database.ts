import { join } from "node:path"
import type { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Duration, Effect, Layer, Redacted } from "effect"
import type { DatabaseError } from "../../src/domain/Errors.ts"
import { migrate } from "../../src/services/Migrations.ts"
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
    return PgClient.layer({
      url: databaseUrl,
      connectTimeout: Duration.seconds(5),
      applicationName: "scenario-scheduler"
    }).pipe(Layer.mapError(fromSqlError))
  }

  const embedded = PgliteClient.layer({ dataDir: join(dataDirectory, "pgdata") })
  const migrated = Layer.effectDiscard(migrate.pipe(Effect.mapError(fromSqlError)))
  return Layer.provideMerge(migrated, embedded).pipe(
    Layer.mapError(
      (error) => ("_tag" in error && error._tag === "SqlError" ? fromSqlError(error as never) : error) as DatabaseError
    )
  )
}

export const redactedUrl = (url: string | undefined): Redacted.Redacted<string> | undefined =>
  url === undefined || url === "" ? undefined : Redacted.make(url)
