import { Schema } from "effect"
import { ScenarioType } from "./Scenario.ts"

/**
 * Rows as the SQL functions return them. Each is decoded with its Schema at the store boundary, so
 * the program only ever sees values of the shapes below.
 */

const Uuid = Schema.UUID

/** Dates arrive as `YYYY-MM-DD` text from Postgres and as `Date` from some drivers; both become text. */
export const CalendarDate = Schema.Union(
  Schema.String.pipe(Schema.pattern(/^\d{4}-\d{2}-\d{2}$/)),
  Schema.transform(Schema.DateFromSelf, Schema.String, {
    strict: true,
    decode: (date) => date.toISOString().slice(0, 10),
    encode: (text) => new Date(`${text}T00:00:00Z`)
  })
)

export const SuppressionReason = Schema.Literal("opted_out", "no_push_token", "cooldown", "duplicate", "dry_run")
export type SuppressionReason = typeof SuppressionReason.Type

/** Why the SQL evaluation could not judge a mentor (or one scenario of a mentor). */
export const EvaluationErrorReason = Schema.Literal("invalid_timezone", "invalid_scenario_config")
export type EvaluationErrorReason = typeof EvaluationErrorReason.Type

/** The scenario data a notification carries; its shape depends on the scenario. */
export const Payload = Schema.Record({ key: Schema.String, value: Schema.Unknown })
export type Payload = typeof Payload.Type

/** A scenario that is due for a mentor: what the claim step needs to insert a notification. */
export const Candidate = Schema.Struct({
  user_id: Uuid,
  organisation_id: Uuid,
  scenario_type: ScenarioType,
  evaluation_date: CalendarDate,
  cooldown_window_start: CalendarDate,
  idempotency_key: Schema.String,
  payload: Payload
})
export type Candidate = typeof Candidate.Type

const CandidateRow = Schema.Struct({
  ...Candidate.fields,
  status: Schema.Literal("candidate"),
  reason: Schema.Null
})

const SuppressedRow = Schema.Struct({
  ...Candidate.fields,
  status: Schema.Literal("suppressed"),
  reason: Schema.Literal("opted_out", "no_push_token", "cooldown")
})

const NothingDueRow = Schema.Struct({
  user_id: Uuid,
  organisation_id: Uuid,
  status: Schema.Literal("none")
})

const ErrorRow = Schema.Struct({
  user_id: Uuid,
  organisation_id: Uuid,
  scenario_type: Schema.NullOr(ScenarioType),
  status: Schema.Literal("error"),
  reason: EvaluationErrorReason
})

/** One row of `scheduler_evaluate`: a verdict on one scenario of one mentor, or on the mentor as a whole. */
export const EvaluationRow = Schema.Union(CandidateRow, SuppressedRow, NothingDueRow, ErrorRow)
export type EvaluationRow = typeof EvaluationRow.Type

/** A mentor's live push token, as `scheduler_claim` returns them. */
export const PushTokenRow = Schema.Struct({
  id: Schema.Union(Schema.String, Schema.Number.pipe(Schema.int())).pipe(
    Schema.transform(Schema.String, { strict: true, decode: String, encode: (id) => id })
  ),
  token: Schema.Redacted(Schema.String),
  platform: Schema.Literal("fcm", "expo")
})
export type PushTokenRow = typeof PushTokenRow.Type

/** A notification this run inserted, and so owns: it alone may dispatch it. */
export const ClaimedNotification = Schema.Struct({
  notification_id: Uuid,
  user_id: Uuid,
  scenario_type: ScenarioType,
  idempotency_key: Schema.String,
  payload: Payload,
  tokens: Schema.Array(PushTokenRow)
})
export type ClaimedNotification = typeof ClaimedNotification.Type

/** A notification taken over from a run that did not finish it; its earlier send may or may not have happened. */
export const ReclaimedNotification = Schema.Struct({
  ...ClaimedNotification.fields,
  outcome_unknown: Schema.Boolean
})
export type ReclaimedNotification = typeof ReclaimedNotification.Type

export const DispatchStatus = Schema.Literal("dispatched", "failed", "deferred", "pending")
export type DispatchStatus = typeof DispatchStatus.Type

/** What the program tells the database about one claimed notification once it has tried to send it. */
export interface DispatchResult {
  readonly notification_id: string
  readonly status: DispatchStatus
  readonly error_type: string | null
  readonly revoked_token_ids: ReadonlyArray<string>
}
