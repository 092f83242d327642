import { Schema } from "effect"
import { ErrorType } from "./Errors.ts"
import { ScenarioType } from "./Scenario.ts"

/**
 * The fields of every event the scheduler's run writes, as the log contract fixes them. The program
 * can only emit these shapes (the compiler checks each call), and tests decode the lines they read
 * with the same Schemas, so the contract is checked from both ends.
 */

const Count = Schema.Number.pipe(Schema.int(), Schema.nonNegative())
const UserId = Schema.UUID
const RunOutcome = Schema.Literal("completed", "partial", "failed", "skipped")

const SuppressedBy = Schema.Struct({
  opted_out: Count,
  no_push_token: Count,
  cooldown: Count,
  duplicate: Count,
  dry_run: Count
})

export const SchedulerRunStarted = Schema.Struct({
  scenarios: Schema.Array(ScenarioType),
  budget_ms: Count,
  page_size: Count,
  dry_run: Schema.Boolean,
  overlap: Schema.Literal("skip", "allow"),
  now: Schema.String
})

export const MentorEvaluationError = Schema.Struct({
  user_id: UserId,
  error_type: ErrorType,
  error_message: Schema.String,
  scenario_type: Schema.optional(ScenarioType)
})

export const NotificationDuplicateSkipped = Schema.Struct({
  user_id: UserId,
  scenario_type: ScenarioType
})

export const SchedulerRunPartial = Schema.Struct({
  remaining: Count,
  resume_cursor: Schema.NullOr(UserId)
})

export const SchedulerRunFailed = Schema.Struct({
  error_type: ErrorType,
  error_message: Schema.String,
  hint: Schema.optional(Schema.String)
})

export const SchedulerRunCompleted = Schema.Struct({
  total_active: Count,
  evaluated: Count,
  dispatched: Count,
  suppressed: Count,
  suppressed_by: SuppressedBy,
  failed: Count,
  errors: Count,
  pages_processed: Count,
  recovered: Count,
  duration_ms: Count,
  partial: Schema.Boolean,
  outcome: RunOutcome,
  remaining: Count,
  resume_cursor: Schema.NullOr(UserId),
  resumed: Schema.Boolean,
  dry_run: Schema.Boolean,
  log_lines_omitted: Count
})

export const SchedulerRunSkipped = Schema.Struct({
  holder_invocation_id: Schema.UUID,
  overlap: Schema.Literal("skip")
})

export const SchedulerRunResumed = Schema.Struct({ resume_cursor: UserId })

export const SchedulerRunLockLost = Schema.Struct({ run_lease_ms: Count })

export const AbandonedRunsClosed = Schema.Struct({ count: Count, invocation_ids: Schema.Array(Schema.UUID) })

export const AbandonedNotificationsRecovered = Schema.Struct({
  reclaimed: Count,
  sent: Count,
  confirmed_delivered: Count,
  given_up_outcome_unknown: Count,
  not_delivered: Count
})

export const UnattributedInvalidRows = Schema.Struct({ count: Count })

export const SchedulerRunRecordFailed = Schema.Struct({
  record: Schema.String,
  error_type: ErrorType,
  error_message: Schema.String
})

export const PushReceiptsChecked = Schema.Struct({
  checked: Count,
  revoked: Count,
  pending: Count,
  failed: Count
})

export const PushReceiptsCheckFailed = Schema.Struct({
  tickets: Count,
  error_type: ErrorType,
  error_message: Schema.String
})

export const PushTicketsRecordFailed = Schema.Struct({
  tickets: Count,
  error_type: ErrorType,
  error_message: Schema.String
})

/** Every event of a run, by name. */
export const runEvents = {
  scheduler_run_started: SchedulerRunStarted,
  mentor_evaluation_error: MentorEvaluationError,
  notification_duplicate_skipped: NotificationDuplicateSkipped,
  scheduler_run_partial: SchedulerRunPartial,
  scheduler_run_failed: SchedulerRunFailed,
  scheduler_run_completed: SchedulerRunCompleted,
  scheduler_run_skipped: SchedulerRunSkipped,
  scheduler_run_resumed: SchedulerRunResumed,
  scheduler_run_lock_lost: SchedulerRunLockLost,
  scheduler_run_record_failed: SchedulerRunRecordFailed,
  abandoned_runs_closed: AbandonedRunsClosed,
  abandoned_notifications_recovered: AbandonedNotificationsRecovered,
  unattributed_invalid_rows: UnattributedInvalidRows,
  push_receipts_checked: PushReceiptsChecked,
  push_receipts_check_failed: PushReceiptsCheckFailed,
  push_tickets_record_failed: PushTicketsRecordFailed
} as const

export type RunEventName = keyof typeof runEvents
export type RunEventFields<N extends RunEventName> = Schema.Schema.Type<(typeof runEvents)[N]>

/** The lines the contract requires of every run: written whatever minimum level the operator set. */
export const alwaysWritten: ReadonlySet<RunEventName> = new Set([
  "scheduler_run_started",
  "scheduler_run_partial",
  "scheduler_run_failed",
  "scheduler_run_completed",
  "scheduler_run_skipped"
])
