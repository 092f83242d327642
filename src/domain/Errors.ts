import { Data, Match } from "effect"

/**
 * Every failure the scheduler reports is one of these tagged errors. Their `message` is meant for
 * people and may carry text from a database or provider, so it is always scrubbed before logging.
 */

/** The database could not be reached, or a statement failed. */
export class DatabaseError extends Data.TaggedError("DatabaseError")<{
  readonly reason: "unavailable" | "query"
  /** The SQLSTATE code, when the server sent one. */
  readonly code?: string | undefined
  readonly message: string
  readonly cause?: unknown
}> {}

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
export type ErrorType =
  | "database_unavailable"
  | "database_error"
  | "invalid_row"
  | "invalid_timezone"
  | "invalid_scenario_config"
  | "invalid_configuration"
  | "push_invalid_payload"
  | "push_invalid_token"
  | "push_unregistered_token"
  | "push_authentication_failed"
  | "push_rate_limited"
  | "push_unavailable"
  | "push_timeout"
  | "push_unknown"
  | "run_locked"
  | "unexpected"

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
    DatabaseError: (error): ErrorType => (error.reason === "unavailable" ? "database_unavailable" : "database_error"),
    InvalidRowError: (): ErrorType => "invalid_row",
    InvalidConfigError: (error) => configErrorTypes[error.reason],
    PushError: (error) => pushErrorTypes[error.reason],
    RunLockedError: (): ErrorType => "run_locked",
    UnexpectedError: (): ErrorType => "unexpected"
  })
)
