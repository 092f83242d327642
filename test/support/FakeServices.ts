import { Effect, Layer, Redacted, TestClock } from "effect"
import { DatabaseError, PushError } from "../../src/domain/Errors.ts"
import type { Candidate, ClaimedNotification, DispatchResult, EvaluationRow } from "../../src/domain/Evaluation.ts"
import type { SentTicket } from "../../src/domain/Receipts.ts"
import type { ScenarioType } from "../../src/domain/Scenario.ts"
import { PushProvider, type PushRequest } from "../../src/services/PushProvider.ts"
import { type MentorRange, Store, type StoreApi } from "../../src/services/Store.ts"

/**
 * An in-memory store and push provider for testing the program without a database. Each mentor is
 * scripted: which scenarios are due or suppressed, whether evaluating them breaks the statement,
 * whether sending to them fails. Time passes only through TestClock.
 */
export interface FakeMentor {
  readonly userId: string
  readonly due?: ReadonlyArray<ScenarioType>
  readonly suppressed?: ReadonlyArray<{ scenario: ScenarioType; reason: "opted_out" | "no_push_token" | "cooldown" }>
  /** Evaluating this mentor makes the whole statement fail, as a bad row would. */
  readonly breaksEvaluation?: boolean
  /** The push provider refuses this mentor's notifications. */
  readonly pushFails?: boolean
  /** Personal data that must never reach the log, even though errors mention it. */
  readonly email?: string
}

export interface FakeOptions {
  /** Simulated time each evaluate statement takes, applied with TestClock. */
  readonly evaluateMs?: number
  /** Every statement fails as though the server were gone. */
  readonly unavailable?: boolean
  /** Another run holds the run lock: a run under the skip policy stands down. */
  readonly lockedBy?: string
  /** The evaluation function is missing, as on a database nobody migrated. */
  readonly schemaMissing?: boolean
  /** The push provider refuses the run's credentials on every send. */
  readonly credentialsRefused?: boolean
}

export interface FakeWorld {
  readonly layer: Layer.Layer<Store | PushProvider>
  readonly sent: Array<PushRequest>
  readonly claimedKeys: Set<string>
  readonly recorded: Array<DispatchResult>
  readonly finishedRuns: Array<Parameters<StoreApi["finishRun"]>[0]>
  readonly coverage: Array<Parameters<StoreApi["recordCoverage"]>[0]>
  /** Push tickets stored and not yet settled; every stored ticket counts as due. */
  readonly tickets: Array<SentTicket>
  readonly revokedTokenIds: Array<string>
  /** How many evaluate statements the program issued. */
  readonly evaluations: () => number
}

const organisationId = "00000000-0000-4000-8000-000000000001"

const candidateOf = (userId: string, scenario: ScenarioType): Candidate => ({
  user_id: userId,
  organisation_id: organisationId,
  scenario_type: scenario,
  evaluation_date: "2026-12-04",
  cooldown_window_start: "2026-12-03",
  idempotency_key: `${userId}:${scenario}:2026-12-04`,
  payload: { days_inactive: 20 }
})

const rowsOf = (mentor: FakeMentor, scenarios: ReadonlyArray<ScenarioType>): Array<EvaluationRow> => {
  const due = (mentor.due ?? []).filter((scenario) => scenarios.includes(scenario))
  const suppressed = (mentor.suppressed ?? []).filter((entry) => scenarios.includes(entry.scenario))
  const rows: Array<EvaluationRow> = [
    ...due.map((scenario) => ({ ...candidateOf(mentor.userId, scenario), status: "candidate" as const, reason: null })),
    ...suppressed.map((entry) => ({
      ...candidateOf(mentor.userId, entry.scenario),
      status: "suppressed" as const,
      reason: entry.reason
    }))
  ]
  return rows.length > 0 ? rows : [{ user_id: mentor.userId, organisation_id: organisationId, status: "none" }]
}

const inRange = (userId: string, range: MentorRange) =>
  (range.after === null || userId > range.after) && (range.until === null || userId <= range.until)

export const makeFakeWorld = (mentors: ReadonlyArray<FakeMentor>, options: FakeOptions = {}): FakeWorld => {
  const byId = new Map(mentors.map((mentor) => [mentor.userId, mentor]))
  const sortedIds = [...byId.keys()].sort()
  const world = {
    sent: [] as Array<PushRequest>,
    claimedKeys: new Set<string>(),
    recorded: [] as Array<DispatchResult>,
    finishedRuns: [] as FakeWorld["finishedRuns"],
    coverage: [] as FakeWorld["coverage"],
    tickets: [] as Array<SentTicket>,
    revokedTokenIds: [] as Array<string>
  }

  const gone = () =>
    Effect.fail(
      new DatabaseError({ reason: "unavailable", code: "ECONNREFUSED", message: "connect ECONNREFUSED 127.0.0.1:1" })
    )
  const guard = <A>(effect: Effect.Effect<A, DatabaseError>) => (options.unavailable ? gone() : effect)
  let evaluations = 0

  const store: StoreApi = {
    openRun: (_invocationId, _startedAt, lock) =>
      guard(
        Effect.succeed({
          resumeCursor: null,
          lockedBy: lock.overlap === "skip" ? (options.lockedBy ?? null) : null,
          abandoned: []
        })
      ),
    renewRun: () => guard(Effect.succeed(true)),
    finishRun: (run) => guard(Effect.sync(() => void world.finishedRuns.push(run))),
    recordCoverage: (coverage) => guard(Effect.sync(() => void world.coverage.push(coverage))),
    countActive: (range) => guard(Effect.succeed(sortedIds.filter((id) => inRange(id, range)).length)),
    activePage: (range, limit) => guard(Effect.succeed(sortedIds.filter((id) => inRange(id, range)).slice(0, limit))),
    evaluate: (userIds, _now, scenarios) =>
      guard(
        Effect.gen(function* () {
          evaluations += 1
          if (options.evaluateMs) yield* TestClock.adjust(options.evaluateMs)
          if (options.schemaMissing) {
            return yield* Effect.fail(
              new DatabaseError({
                reason: "schema",
                code: "42883",
                message: "function scheduler_evaluate does not exist"
              })
            )
          }

          const broken = userIds.map((id) => byId.get(id)).find((mentor) => mentor?.breaksEvaluation)
          if (broken) {
            return yield* Effect.fail(
              new DatabaseError({
                reason: "query",
                code: "22P02",
                message: `invalid input syntax for row of ${broken.email ?? "someone"}`
              })
            )
          }

          const rows = userIds.flatMap((id) => {
            const mentor = byId.get(id)
            return mentor ? rowsOf(mentor, scenarios) : []
          })
          return { rows, invalid: [] }
        })
      ),
    claim: (_invocationId, candidates) =>
      guard(
        Effect.sync(() => {
          const claimed: Array<ClaimedNotification> = []
          for (const candidate of candidates) {
            if (world.claimedKeys.has(candidate.idempotency_key)) continue
            world.claimedKeys.add(candidate.idempotency_key)
            claimed.push({
              notification_id: crypto.randomUUID(),
              user_id: candidate.user_id,
              scenario_type: candidate.scenario_type,
              idempotency_key: candidate.idempotency_key,
              payload: candidate.payload,
              tokens: [{ id: "1", token: Redacted.make(`ExponentPushToken[${candidate.user_id}]`), platform: "expo" }]
            })
          }
          return { claimed, invalid: [] }
        })
      ),
    markSending: () => guard(Effect.void),
    recordDispatch: (_invocationId, results) => guard(Effect.sync(() => void world.recorded.push(...results))),
    reclaim: () => guard(Effect.succeed({ reclaimed: [], invalid: [] })),
    recordTickets: (tickets) =>
      guard(
        Effect.sync(() => {
          const known = new Set(world.tickets.map((ticket) => ticket.ticketId))
          world.tickets.push(...tickets.filter((ticket) => !known.has(ticket.ticketId)))
        })
      ),
    dueTickets: (_olderThanSeconds, limit) =>
      guard(Effect.succeed(world.tickets.slice(0, limit).map(({ ticketId, tokenId }) => ({ ticketId, tokenId })))),
    settleTickets: (ticketIds, revokeTokenIds) =>
      guard(
        Effect.sync(() => {
          const settled = new Set(ticketIds)
          world.revokedTokenIds.push(...revokeTokenIds)
          world.tickets.splice(0, world.tickets.length, ...world.tickets.filter((t) => !settled.has(t.ticketId)))
        })
      )
  }

  const provider = PushProvider.of({
    name: "fake",
    send: (request) => {
      const mentor = byId.get(request.userId)
      if (options.credentialsRefused) {
        return Effect.fail(
          new PushError({ provider: "fake", reason: "authentication", status: 401, message: "credentials refused" })
        )
      }
      if (mentor?.pushFails) {
        return Effect.fail(
          new PushError({
            provider: "fake",
            reason: "invalid_payload",
            status: 400,
            message: `rejected message for ${mentor.email ?? "someone"} with token ${Redacted.value(request.tokens[0]?.token ?? Redacted.make(""))}`
          })
        )
      }
      world.sent.push(request)
      return Effect.succeed(request.tokens.map((token) => ({ tokenId: token.id, outcome: "delivered" as const })))
    }
  })

  return {
    ...world,
    evaluations: () => evaluations,
    layer: Layer.merge(Layer.succeed(Store, store), Layer.succeed(PushProvider, provider))
  }
}

/** Deterministic uuids so mentors sort in the order they are listed. */
export const mentorId = (index: number): string => `00000000-0000-4000-8000-${index.toString(16).padStart(12, "0")}`
