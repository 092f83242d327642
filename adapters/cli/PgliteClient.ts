/**
 * An `@effect/sql` client for PGlite, the embedded WASM build of Postgres the CLI uses when no database URL is given.
 *
 * PGlite is a single Postgres backend: it has exactly one session, so this client owns one connection and lets one
 * statement (or one transaction) use it at a time. Statements are compiled by `@effect/sql-pg`'s compiler, so
 * fragments such as `sql.in`, `sql.insert` and identifiers produce the same SQL as on a Postgres server.
 *
 * PGlite takes no lock on its data directory: two processes opening the same `dataDir` at once both write to it and
 * corrupt the database. This client takes none either; the CLI holds a `DataDirectoryLock` around it, and any other
 * caller that opens a directory on disk must do the same.
 */

import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import * as PgClient from "@effect/sql-pg/PgClient"
import { PGlite, type Results } from "@electric-sql/pglite"
import { Context, Effect, Layer, type Scope, Stream } from "effect"

type Row = Record<string, unknown>

type RowTransform = (<A extends object>(rows: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined

/** The options of {@link make} and {@link layer}. */
export interface PgliteClientConfig {
  /** A directory on disk holding the database; `undefined` keeps the database in memory and loses it on close. */
  readonly dataDir?: string | undefined
}

/** A `SqlClient` backed by PGlite, with the directory it stores its data in. */
export interface PgliteClient extends SqlClient.SqlClient {
  readonly config: PgliteClientConfig
}

export const PgliteClient = Context.GenericTag<PgliteClient>("scenario-scheduler/PgliteClient")

const INT8 = 20
const DATE = 1082

/**
 * Values PGlite would otherwise parse its own way. `bigint` stays text, as node-postgres returns it, because a
 * JavaScript number cannot hold every value. `date` stays `YYYY-MM-DD` text: a calendar date has no instant, and a
 * `Date` at some midnight reads as another day in another time zone. node-postgres differs here (a `Date` at local
 * midnight), so code that reads `date` columns through either client accepts both, or selects them as text.
 */
const parsers = { [INT8]: (value: string) => value, [DATE]: (value: string) => value }

const open = (config: PgliteClientConfig) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: () => PGlite.create({ dataDir: config.dataDir, parsers }),
      catch: (cause) => new SqlError({ cause, message: "PgliteClient: failed to open the database" })
    }),
    // A failure to close leaves nothing for the caller to do, so it is logged rather than raised from a finalizer.
    (db) => Effect.tryPromise(() => db.close()).pipe(Effect.ignoreLogged)
  )

const attempt = <A>(run: () => Promise<A>): Effect.Effect<A, SqlError> =>
  Effect.tryPromise({
    try: run,
    catch: (cause) => new SqlError({ cause, message: "Failed to execute statement" })
  })

/** Rows in the shape node-postgres gives them: one array for one statement, an array per statement for several. */
const rowsOf = (results: ReadonlyArray<Results>): ReadonlyArray<object> =>
  results.length === 1 ? results[0].rows : results.map((result) => result.rows)

/**
 * Statements without parameters go through the simple query protocol, which accepts several statements separated by
 * semicolons (migrations rely on that); statements with parameters use the extended protocol, one statement each.
 */
const run = (
  db: PGlite,
  sql: string,
  params: ReadonlyArray<unknown>
): Effect.Effect<ReadonlyArray<Results>, SqlError> =>
  params.length === 0
    ? attempt(() => db.exec(sql))
    : attempt(() => db.query<Row>(sql, [...params]).then((result) => [result]))

const makeConnection = (db: PGlite): Connection => {
  const execute = (sql: string, params: ReadonlyArray<unknown>, transformRows: RowTransform) =>
    Effect.map(run(db, sql, params), (results) => {
      const rows = rowsOf(results)
      return transformRows ? transformRows(rows) : rows
    })

  return {
    execute,
    executeRaw: (sql, params) =>
      Effect.map(run(db, sql, params), (results) => (results.length === 1 ? results[0] : results)),
    executeValues: (sql, params) =>
      Effect.map(
        attempt(() => db.query<Array<unknown>>(sql, [...params], { rowMode: "array" })),
        (result) => result.rows
      ),
    executeUnprepared: execute,
    // PGlite has no cursors over its single session: the rows are read at once and then streamed.
    executeStream: (sql, params, transformRows) => Stream.fromIterableEffect(execute(sql, params, transformRows))
  }
}

/**
 * Opens PGlite and builds the client; the database closes when the scope does.
 *
 * The one connection is handed out under a semaphore for the lifetime of the scope that acquires it: a statement
 * holds it while it runs, and a transaction (whose connection `Client.make` acquires through `transactionAcquirer`)
 * holds it from `BEGIN` to `COMMIT`, so no other fiber's statement can land inside someone else's transaction.
 * Statements inside a transaction reuse its connection without asking again. `sql.reserve` inside a transaction
 * would wait for itself and must not be used there.
 */
export const make = (
  config: PgliteClientConfig
): Effect.Effect<PgliteClient, SqlError, Scope.Scope | Reactivity.Reactivity> =>
  Effect.gen(function* () {
    const db = yield* open(config)

    const semaphore = yield* Effect.makeSemaphore(1)
    const connection = makeConnection(db)
    const acquirer = Effect.uninterruptibleMask((restore) =>
      restore(semaphore.take(1)).pipe(
        Effect.zipRight(Effect.addFinalizer(() => semaphore.release(1))),
        Effect.as(connection)
      )
    )

    const client = yield* SqlClient.make({
      acquirer,
      transactionAcquirer: acquirer,
      compiler: PgClient.makeCompiler(),
      spanAttributes: [
        ["db.system.name", "postgresql"],
        ["db.namespace", config.dataDir ?? "memory"]
      ]
    })

    return Object.assign(client, { config })
  })

/** Provides a PGlite database as both `SqlClient` and `PgliteClient`; it is closed when the layer is released. */
export const layer = (config: PgliteClientConfig = {}): Layer.Layer<PgliteClient | SqlClient.SqlClient, SqlError> =>
  Layer.scopedContext(
    Effect.map(make(config), (client) =>
      Context.make(PgliteClient, client).pipe(Context.add(SqlClient.SqlClient, client))
    )
  ).pipe(Layer.provide(Reactivity.layer))
