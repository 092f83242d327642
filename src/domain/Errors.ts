import { Data, Match, Schema } from "effect"

/**
 * Every failure the scheduler reports is one of these tagged errors. Their `message` is meant for
 * people and may carry text from a database or provider, so it is always scrubbed before logging.
 */

/**
 * The database could not be reached (`unavailable`), is not the schema the program needs (`schema`:
 * a missing function or table, a refused permission), or one statement failed (`query`). Only the
 * last is worth retrying mentor by mentor; the others end the run.
 */
export class DatabaseError extends Data.TaggedError("DatabaseError")<{
  readonly reason: DatabaseErrorReason
  /** The SQLSTATE code, when the server sent one. */
  readonly code?: string | undefined
  readonly message: string
  readonly cause?: unknown
}> {}

export type DatabaseErrorReason = "unavailable" | "schema" | "query"

/**
 * SQLSTATE classes and socket errors that say the database cannot be used at all: the server is gone,
 * overloaded or cancelling statements, the login is refused (28) or the database does not exist (3D).
 */
const unavailableCodes = /^(08|57|53|28|3D|ECONN|ENOTFOUND|ETIMEDOUT|EAI_AGAIN|EPIPE|EHOSTUNREACH)/

/** Undefined objects and refused privileges (42xxx) or unsupported features: not the scheduler's schema. */
const schemaCodes = /^(42|0A)/

const unavailableMessage = /connect|connection timed out|terminat|closed|failed to open/i

/** Classifies a database failure from its SQLSTATE (or socket error code) and, lacking one, its message. */
export const databaseErrorReason = (code: string | undefined, message: string): DatabaseErrorReason => {
  if (code !== undefined && unavailableCodes.test(code)) return "unavailable"
  if (code !== undefined && schemaCodes.test(code)) return "schema"
  return code === undefined && unavailableMessage.test(message) ? "unavailable" : "query"
}

/** The names Postgres attaches to an error: objects of the schema, never values of a row. */
export interface DatabaseErrorNames {
  readonly table?: string | undefined
  readonly column?: string | undefined
  readonly constraint?: string | undefined
}

/**
 * What a database failure may say in a log. Connection and schema errors speak of hosts and objects,
 * so their text is kept; the text of a failed statement can quote the row it failed on (a name, an
 * email), so it is replaced by the SQLSTATE and the names of the objects involved.
 */
export const databaseErrorMessage = (
  reason: DatabaseErrorReason,
  code: string | undefined,
  serverMessage: string,
  names: DatabaseErrorNames = {}
): string => {
  if (reason !== "query") return serverMessage

  const objects = [
    names.table && `table ${names.table}`,
    names.column && `column ${names.column}`,
    names.constraint && `constraint ${names.constraint}`
  ].filter(Boolean)
  const where = objects.length > 0 ? ` on ${objects.join(", ")}` : ""
  return `statement failed with SQLSTATE ${code ?? "unknown"}${where}`
}

/** A row from the database did not match the schema the program expects. */
export class InvalidRowError extends Data.TaggedError("InvalidRowError")<{
  readonly entity: string
  readonly message: string
}> {}

/** An organisation's settings (time zone, scenario parameters) or the scheduler's own configuration are unusable. */
export class InvalidConfigError extends Data.TaggedError("InvalidConfigError")<{
  readonly reason: "timezone" | "scenario_params" | "environment"
  readonly message: string
}> {}

export type PushErrorReason =
  | "invalid_payload"
  | "invalid_token"
  | "unregistered_token"
  | "authentication"
  | "rate_limited"
  | "unavailable"
  | "timeout"
  | "unknown"

/** A push provider refused or failed a send. */
export class PushError extends Data.TaggedError("PushError")<{
  readonly provider: string
  readonly reason: PushErrorReason
  /** The HTTP status the provider answered with, when there was an answer. */
  readonly status?: number | undefined
  /** How long the provider asked us to wait before trying again, when it said so. */
  readonly retryAfterMs?: number | undefined
  readonly message: string
}> {}

/** Another run holds the lock for the same scope, so this one stands down. */
export class RunLockedError extends Data.TaggedError("RunLockedError")<{
  readonly message: string
}> {}

/** A bug or an exception nobody anticipated, caught at the edge of the run so it is still reported. */
export class UnexpectedError extends Data.TaggedError("UnexpectedError")<{
  readonly message: string
}> {}

export type SchedulerError =
  | DatabaseError
  | InvalidRowError
  | InvalidConfigError
  | PushError
  | RunLockedError
  | UnexpectedError

/** The `error_type` field of a log line: a closed set an operator can group and alert on. */
export const ErrorType = Schema.Literal(
  "database_unavailable",
  "database_schema_mismatch",
  "database_error",
  "invalid_row",
  "invalid_timezone",
  "invalid_scenario_config",
  "invalid_configuration",
  "push_invalid_payload",
  "push_invalid_token",
  "push_unregistered_token",
  "push_authentication_failed",
  "push_rate_limited",
  "push_unavailable",
  "push_timeout",
  "push_unknown",
  "run_locked",
  "unexpected"
)
export type ErrorType = typeof ErrorType.Type

const pushErrorTypes: Record<PushErrorReason, ErrorType> = {
  invalid_payload: "push_invalid_payload",
  invalid_token: "push_invalid_token",
  unregistered_token: "push_unregistered_token",
  authentication: "push_authentication_failed",
  rate_limited: "push_rate_limited",
  unavailable: "push_unavailable",
  timeout: "push_timeout",
  unknown: "push_unknown"
}

const databaseErrorTypes: Record<DatabaseErrorReason, ErrorType> = {
  unavailable: "database_unavailable",
  schema: "database_schema_mismatch",
  query: "database_error"
}

const configErrorTypes: Record<InvalidConfigError["reason"], ErrorType> = {
  timezone: "invalid_timezone",
  scenario_params: "invalid_scenario_config",
  environment: "invalid_configuration"
}

/**
 * The one place an error becomes an `error_type`. Adding an error to `SchedulerError` without a
 * case here, or a reason without an entry in the tables above, does not compile.
 */
export const errorType: (error: SchedulerError) => ErrorType = Match.type<SchedulerError>().pipe(
  Match.tagsExhaustive({
    DatabaseError: (error): ErrorType => databaseErrorTypes[error.reason],
    InvalidRowError: (): ErrorType => "invalid_row",
    InvalidConfigError: (error) => configErrorTypes[error.reason],
    PushError: (error) => pushErrorTypes[error.reason],
    RunLockedError: (): ErrorType => "run_locked",
    UnexpectedError: (): ErrorType => "unexpected"
  })
)
