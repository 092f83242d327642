import { SqlClient } from "@effect/sql"
import { expect } from "@effect/vitest"
import { Effect } from "effect"
import type { Candidate, EvaluationRow } from "../src/domain/Evaluation.ts"
import { allScenarioTypes } from "../src/domain/Scenario.ts"
import * as SqlStore from "../src/services/SqlStore.ts"
import type { StoreApi } from "../src/services/Store.ts"
import { describeEachDatabase } from "./support/databases.ts"
import { dueMentors, now, recordingProvider, resetDatabase, runOnce, runOptions } from "./support/runs.ts"

interface NotificationRow {
  readonly id: string
  readonly user_id: string
  readonly status: string
  readonly invocation_id: string
}

const notifications = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  return yield* sql<NotificationRow>`
    select id, user_id, status, invocation_id from scenario_notifications order by user_id`
})

describeEachDatabase("claiming a batch", (it) => {
  it.effect("sends a key the batch holds twice once, and counts the second as suppressed", () =>
    Effect.gen(function* () {
      yield* resetDatabase
      yield* dueMentors(4)
      const provider = recordingProvider()

      // As when two evaluations of the same mentor end up in one batch: every candidate twice.
      const twice = (store: StoreApi): StoreApi => ({
        ...store,
        evaluate: (userIds, at, scenarios) =>
          store.evaluate(userIds, at, scenarios).pipe(
            Effect.map((evaluation) => ({
              ...evaluation,
              rows: evaluation.rows.flatMap(
                (row): ReadonlyArray<EvaluationRow> => (row.status === "candidate" ? [row, row] : [row])
              )
            }))
          )
      })

      const options = runOptions()
      const { completed, events } = yield* runOnce(options, provider.layer, twice)
      const rows = yield* notifications

      expect(completed).toMatchObject({
        evaluated: 4,
        dispatched: 4,
        suppressed: 4,
        suppressed_by: expect.objectContaining({ duplicate: 4 }),
        errors: 0
      })
      expect(events("notification_duplicate_skipped")).toHaveLength(4)
      expect(rows).toHaveLength(4)
      expect(rows.every((row) => row.status === "dispatched" && row.invocation_id === options.invocationId)).toBe(true)
      expect(new Set(provider.sent.map((request) => request.notificationId)).size).toBe(4)
      expect(provider.sent).toHaveLength(4)
    })
  )

  it.effect("sends only the half of a batch another run did not claim first", () =>
    Effect.gen(function* () {
      yield* resetDatabase
      yield* dueMentors(6)
      const provider = recordingProvider()
      const otherRun = crypto.randomUUID()

      // Another run claims every other candidate between this run's evaluation and its claim.
      const raced = (store: StoreApi): StoreApi => ({
        ...store,
        claim: (invocationId, candidates) =>
          store
            .claim(
              otherRun,
              candidates.filter((_, index) => index % 2 === 0)
            )
            .pipe(Effect.zipRight(store.claim(invocationId, candidates)))
      })

      const options = runOptions()
      const { completed, events } = yield* runOnce(options, provider.layer, raced)
      const rows = yield* notifications
      const ours = rows.filter((row) => row.invocation_id === options.invocationId)
      const theirs = rows.filter((row) => row.invocation_id === otherRun)

      expect(completed).toMatchObject({
        evaluated: 6,
        dispatched: 3,
        suppressed: 3,
        suppressed_by: expect.objectContaining({ duplicate: 3 })
      })
      expect(events("notification_duplicate_skipped")).toHaveLength(3)
      expect(rows).toHaveLength(6)
      expect(ours.map((row) => row.status)).toEqual(["dispatched", "dispatched", "dispatched"])
      expect(theirs.map((row) => row.status)).toEqual(["pending", "pending", "pending"])
      expect(provider.sent.map((request) => request.userId).sort()).toEqual(ours.map((row) => row.user_id).sort())
    })
  )

  it.effect("takes over every claim a dead run left, a page at a time, and sends each once", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* resetDatabase
      yield* dueMentors(5)
      const store = yield* SqlStore.makeSqlStore
      const mentors = (yield* sql<{ user_id: string }>`select user_id from peer_mentors`).map((row) => row.user_id)
      const evaluation = yield* store.evaluate(mentors, now, allScenarioTypes)
      const candidates = evaluation.rows.filter((row): row is Candidate & EvaluationRow => row.status === "candidate")
      // A run claimed all five and died before it began to send them.
      yield* store.claim(crypto.randomUUID(), candidates)
      const provider = recordingProvider()

      const { completed, events } = yield* runOnce(runOptions({ pageSize: 2, claimLeaseMs: 0 }), provider.layer)
      const rows = yield* notifications

      expect(events("abandoned_notifications_recovered").map((entry) => entry.reclaimed)).toEqual([2, 2, 1])
      expect(completed).toMatchObject({
        recovered: 5,
        dispatched: 5,
        suppressed_by: expect.objectContaining({ cooldown: 5 })
      })
      expect(rows.map((row) => row.status)).toEqual(Array(5).fill("dispatched"))
      expect(new Set(provider.sent.map((request) => request.notificationId)).size).toBe(5)
      expect(provider.sent).toHaveLength(5)
    })
  )

  it.effect(
    "hands a deferred notification to one later run only, and lets another run take it only after a lease",
    () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* resetDatabase
        yield* dueMentors(1)
        const store = yield* SqlStore.makeSqlStore
        const [mentor] = (yield* sql<{ user_id: string }>`select user_id from peer_mentors`).map((row) => row.user_id)
        const evaluation = yield* store.evaluate([mentor ?? ""], now, allScenarioTypes)
        const candidates = evaluation.rows.filter((row): row is Candidate & EvaluationRow => row.status === "candidate")
        const claimer = crypto.randomUUID()
        const { claimed } = yield* store.claim(claimer, candidates.slice(0, 1))
        // The provider was busy: the run that claimed it deferred it and ended.
        yield* store.recordDispatch(
          claimer,
          claimed.map((n) => ({
            notification_id: n.notification_id,
            status: "deferred",
            error_type: "push_rate_limited",
            revoked_token_ids: []
          }))
        )
        const options = { leaseSeconds: 900, limit: 10, maxAttempts: 4 }

        const first = yield* store.reclaim(crypto.randomUUID(), options)
        const second = yield* store.reclaim(crypto.randomUUID(), options)
        const afterLease = yield* store.reclaim(crypto.randomUUID(), { ...options, leaseSeconds: 0 })

        expect(first.reclaimed.map((n) => [n.notification_id, n.outcome_unknown])).toEqual([
          [claimed[0]?.notification_id, false]
        ])
        expect(second.reclaimed).toHaveLength(0)
        // The run that took it over died before sending: never marked, so still safe to send.
        expect(afterLease.reclaimed.map((n) => n.outcome_unknown)).toEqual([false])
      })
  )
})
