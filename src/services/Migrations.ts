import { readdir, readFile } from "node:fs/promises"
import { fileURLToPath } from "node:url"
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Data, Effect } from "effect"

/**
 * Applies `supabase/migrations` to a database the Supabase CLI does not manage: a plain Postgres server or PGlite.
 *
 * Applied versions are recorded where the Supabase CLI records them, `supabase_migrations.schema_migrations`, so a
 * database migrated here and later linked to a Supabase project is not migrated twice, and the other way round.
 */

/** One migration: `<version>_<name>.sql`, the version being the UTC timestamp `YYYYMMDDHHMMSS` the Supabase CLI uses. */
export interface MigrationFile {
  readonly version: string
  readonly name: string
  readonly sql: string
}

/** The migrations directory could not be read, or holds a `.sql` file whose name is not `<version>_<name>.sql`. */
export class MigrationFileError extends Data.TaggedError("MigrationFileError")<{
  readonly path: string
  readonly message: string
  readonly cause?: unknown
}> {}

/** The repository's `supabase/migrations`, found from this module so that it works from any working directory. */
export const migrationsDirectory: URL = new URL("../../supabase/migrations/", import.meta.url)

const fileNamePattern = /^(\d+)_(.+)\.sql$/

// Serialises migrators of the same database (advisory locks are per database), e.g. two CLI processes starting at once.
const migrationLock = "select pg_advisory_xact_lock(hashtext('supabase_migrations.schema_migrations'))"

const ensureHistoryTable = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient

  yield* sql.unsafe(migrationLock)
  yield* sql`create schema if not exists supabase_migrations`
  yield* sql`create table if not exists supabase_migrations.schema_migrations (
    version text primary key,
    name text,
    statements text[]
  )`
})

/**
 * Applies one migration unless it is recorded already, in one transaction with its record: a migration that fails
 * leaves neither its changes nor its record behind. The file runs as one multi-statement text, and is recorded as
 * a single statement (the Supabase CLI splits files; nothing reads the split back).
 */
const applyOne = (file: MigrationFile) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient

    yield* sql.unsafe(migrationLock)
    const recorded = yield* sql`select 1 from supabase_migrations.schema_migrations where version = ${file.version}`
    if (recorded.length > 0) {
      return false
    }

    yield* sql.unsafe(file.sql).unprepared
    yield* sql`insert into supabase_migrations.schema_migrations (version, name, statements)
      values (${file.version}, ${file.name}, ${[file.sql]}::text[])`
    return true
  }).pipe(Effect.withSpan("Migrations.applyOne", { attributes: { version: file.version, name: file.name } }))

/**
 * Applies the migrations not yet recorded, in version order, and answers the versions it applied. Running it again
 * applies nothing. The SQL texts are passed in, so a runtime without Node's file system can bundle them.
 */
export const applyMigrations = (
  files: ReadonlyArray<MigrationFile>
): Effect.Effect<ReadonlyArray<string>, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql.withTransaction(ensureHistoryTable)

    const ordered = [...files].sort((a, b) => compareVersions(a.version, b.version))
    const applied: Array<string> = []
    for (const file of ordered) {
      const isNew = yield* sql.withTransaction(applyOne(file))
      if (isNew) {
        applied.push(file.version)
      }
    }
    return applied
  })

/** Versions are digit strings; a longer one is later, as the Supabase CLI orders them. */
const compareVersions = (a: string, b: string): number =>
  a.length === b.length ? (a < b ? -1 : a > b ? 1 : 0) : a.length - b.length

/** Parses `<version>_<name>.sql`; other names are not migrations. */
export const parseFileName = (fileName: string): { readonly version: string; readonly name: string } | undefined => {
  const match = fileNamePattern.exec(fileName)
  return match === null ? undefined : { version: match[1], name: match[2] }
}

/** Reads every `.sql` file of a directory. A `.sql` file with another name fails loudly rather than being skipped. */
export const readMigrationFiles = (
  directory: URL = migrationsDirectory
): Effect.Effect<ReadonlyArray<MigrationFile>, MigrationFileError> =>
  Effect.gen(function* () {
    const path = fileURLToPath(directory)
    const names = yield* Effect.tryPromise({
      try: () => readdir(path),
      catch: (cause) => new MigrationFileError({ path, message: "cannot list the migrations directory", cause })
    })

    const sqlFiles = names.filter((name) => name.endsWith(".sql")).sort()
    return yield* Effect.forEach(sqlFiles, (fileName) => readOne(directory, fileName))
  })

const readOne = (directory: URL, fileName: string) => {
  const path = fileURLToPath(new URL(fileName, directory))
  const parsed = parseFileName(fileName)
  if (parsed === undefined) {
    return Effect.fail(new MigrationFileError({ path, message: "a migration is named <version>_<name>.sql" }))
  }

  return Effect.tryPromise({
    try: () => readFile(path, "utf8"),
    catch: (cause) => new MigrationFileError({ path, message: "cannot read the migration", cause })
  }).pipe(Effect.map((sql): MigrationFile => ({ ...parsed, sql })))
}

/** Applies the repository's migrations from disk; answers the versions it applied (none when up to date). */
export const migrate: Effect.Effect<
  ReadonlyArray<string>,
  SqlError | MigrationFileError,
  SqlClient.SqlClient
> = readMigrationFiles().pipe(Effect.flatMap(applyMigrations))
