import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, FastCheck as fc, Layer, TestClock } from "effect"

import type { SchedulerError } from "../src/domain/Errors.ts"
import { defaultRunOptions, type RunOptions } from "../src/program/RunOptions.ts"
import { runScheduler } from "../src/program/Scheduler.ts"
import type { PushProvider } from "../src/services/PushProvider.ts"
import type { Store } from "../src/services/Store.ts"
import { makeLogCapture } from "./support/captureLogs.ts"
import { type FakeMentor, makeFakeWorld, mentorId } from "./support/FakeServices.ts"
import { expectContractFields } from "./support/runLog.ts"

const options = (overrides: Partial<RunOptions> = {}): RunOptions => ({
  ...defaultRunOptions,
  invocationId: "11111111-1111-4111-8111-111111111111",
  now: new Date("2026-12-04T06:00:00Z"),
  ...overrides
})

/** Runs the scheduler over scripted mentors and answers the parsed log lines with the summary. */
const runOver = (
  mentors: ReadonlyArray<FakeMentor>,
  runOptions: Partial<RunOptions> = {},
  world = makeFakeWorld(mentors),
  services: Layer.Layer<Store | PushProvider, SchedulerError> = world.layer
) =>
  Effect.gen(function* () {
    const capture = makeLogCapture()
    const summary = yield* runScheduler(options(runOptions), services).pipe(Effect.provide(capture.layer))
    const entries = capture.entries()
    expectContractFields(entries)
    const event = (name: string) => entries.filter((entry) => entry.event === name)
    return { summary, entries, lines: capture.lines(), event, world }
  })

const mentors = (count: number, script: (index: number) => Partial<FakeMentor> = () => ({})) =>
  Array.from({ length: count }, (_, index) => ({ userId: mentorId(index + 1), ...script(index) }))

describe("scheduler run log", () => {
  it.effect("announces the run with its settings", () =>
    Effect.gen(function* () {
      const { entries } = yield* runOver(mentors(3), { pageSize: 2, budgetMs: 9_000, dryRun: true })

      expect(entries[0]).toMatchObject({
        event: "scheduler_run_started",
        level: "info",
        component: "scenario-scheduler",
        invocation_id: "11111111-1111-4111-8111-111111111111",
        scenarios: ["inactivity", "milestone", "expiry"],
        budget_ms: 9_000,
        page_size: 2,
        dry_run: true
      })
    })
  )

  it.effect("ends with exact counts for a known list of mentors", () =>
    Effect.gen(function* () {
      const list = mentors(7, (index) => {
        if (index < 3) return { due: ["inactivity"] }
        if (index === 3) return { due: ["milestone", "expiry"] }
        if (index === 4) return { suppressed: [{ scenario: "inactivity", reason: "opted_out" }] }
        if (index === 5) return { suppressed: [{ scenario: "expiry", reason: "no_push_token" }] }
        return {}
      })

      const { entries, world } = yield* runOver(list, { pageSize: 3 })
      const last = entries[entries.length - 1]

      expect(last).toMatchObject({
        event: "scheduler_run_completed",
        outcome: "completed",
        partial: false,
        total_active: 7,
        evaluated: 7,
        dispatched: 5,
        suppressed: 2,
        suppressed_by: { opted_out: 1, no_push_token: 1, cooldown: 0, duplicate: 0, dry_run: 0 },
        errors: 0,
        pages_processed: 3
      })
      expect(world.sent).toHaveLength(5)
      expect(world.finishedRuns[0]?.outcome).toBe("completed")
    })
  )

  it.effect("reports a failing mentor and carries on with the others", () =>
    Effect.gen(function* () {
      const list = mentors(6, (index) => ({
        due: ["inactivity"],
        breaksEvaluation: index === 1,
        pushFails: index === 4,
        email: `mentor${index}@example.org`
      }))

      const { event, world } = yield* runOver(list, { pageSize: 3 })
      const errors = event("mentor_evaluation_error")

      expect(errors).toEqual([
        expect.objectContaining({ user_id: mentorId(2), error_type: "database_error", level: "error" }),
        expect.objectContaining({
          user_id: mentorId(5),
          error_type: "push_invalid_payload",
          scenario_type: "inactivity"
        })
      ])
      expect(world.sent.map((request) => request.userId)).toEqual([mentorId(1), mentorId(3), mentorId(4), mentorId(6)])
      expect(event("scheduler_run_completed")[0]).toMatchObject({ evaluated: 6, errors: 2, dispatched: 4, failed: 1 })
    })
  )

  it.effect("skips a duplicate claim with a warning and counts it as suppressed", () =>
    Effect.gen(function* () {
      const list = mentors(2, () => ({ due: ["expiry"] }))
      const world = makeFakeWorld(list)
      world.claimedKeys.add(`${mentorId(2)}:expiry:2026-12-04`)

      const { event } = yield* runOver(list, {}, world)

      expect(event("notification_duplicate_skipped")).toEqual([
        expect.objectContaining({ level: "warn", user_id: mentorId(2), scenario_type: "expiry" })
      ])
      expect(event("scheduler_run_completed")[0]).toMatchObject({ dispatched: 1, suppressed: 1 })
    })
  )

  it.effect("stops at the budget, says how many mentors are left and where to resume", () =>
    Effect.gen(function* () {
      const list = mentors(100, () => ({ due: ["inactivity"] }))
      const world = makeFakeWorld(list, { evaluateMs: 1_000 })

      const { entries, event, summary } = yield* runOver(list, { pageSize: 10, budgetMs: 5_000 }, world)

      // Pages start at 0, 1, 2 and 3 s; at 4 s another 1 s page would overrun the 5 s budget.
      expect(event("scheduler_run_partial")).toEqual([
        expect.objectContaining({ level: "warn", remaining: 60, resume_cursor: mentorId(40) })
      ])
      expect(entries[entries.length - 1]).toMatchObject({
        event: "scheduler_run_completed",
        partial: true,
        outcome: "partial",
        evaluated: 40,
        pages_processed: 4
      })
      expect(summary.outcome).toBe("partial")
      expect(world.finishedRuns[0]).toMatchObject({ outcome: "partial", resumeCursor: mentorId(40) })
    })
  )

  it.effect("reports a failed run and still writes the completion entry last", () =>
    Effect.gen(function* () {
      const list = mentors(3)
      const { entries, event, summary } = yield* runOver(list, {}, makeFakeWorld(list, { unavailable: true }))

      expect(event("scheduler_run_failed")).toEqual([
        expect.objectContaining({ level: "error", error_type: "database_unavailable" })
      ])
      expect(event("scheduler_run_completed")).toHaveLength(1)
      expect(entries[entries.length - 1]).toMatchObject({ event: "scheduler_run_completed", outcome: "failed" })
      expect(summary.outcome).toBe("failed")
    })
  )

  it.effect("reports services that cannot even be built as a failed run", () =>
    Effect.gen(function* () {
      const { DatabaseError } = yield* Effect.promise(() => import("../src/domain/Errors.ts"))
      const broken = Layer.fail(
        new DatabaseError({ reason: "unavailable", code: "ECONNREFUSED", message: "connect ECONNREFUSED" })
      )

      const { entries, event } = yield* runOver([], {}, makeFakeWorld([]), broken)

      expect(event("scheduler_run_failed")[0]).toMatchObject({ error_type: "database_unavailable" })
      expect(entries.map((entry) => entry.event)).toEqual([
        "scheduler_run_started",
        "scheduler_run_failed",
        "scheduler_run_completed"
      ])
    })
  )

  it.effect("writes only parseable lines from the project's logger, without personal data", () =>
    Effect.gen(function* () {
      const list = mentors(4, (index) => ({
        due: ["inactivity"],
        breaksEvaluation: index === 0,
        pushFails: index === 2,
        email: `kari.nordmann${index}@example.no`
      }))

      const { lines } = yield* runOver(list)

      expect(lines.length).toBeGreaterThan(3)
      for (const line of lines) {
        expect(line.endsWith("\n")).toBe(true)
        const entry = JSON.parse(line)
        expect(entry).toMatchObject({ component: "scenario-scheduler", invocation_id: expect.any(String) })
        expect(entry.timestamp).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/)
      }
      const output = lines.join("")
      expect(output).not.toMatch(/kari\.nordmann/)
      expect(output).not.toMatch(/ExponentPushToken/)
    })
  )
})

describe("scheduler safeguards", () => {
  it.effect("judges and counts in a dry run, and claims, sends and records nothing", () =>
    Effect.gen(function* () {
      const list = mentors(4, () => ({ due: ["inactivity"] }))
      const { event, world } = yield* runOver(list, { dryRun: true })

      expect(event("scheduler_run_completed")[0]).toMatchObject({ evaluated: 4, dispatched: 0, suppressed: 4 })
      expect(event("scheduler_run_completed")[0]?.suppressed_by).toMatchObject({ dry_run: 4 })
      expect(world.claimedKeys.size).toBe(0)
      expect(world.sent).toHaveLength(0)
      expect(world.finishedRuns).toHaveLength(0)
    })
  )

  it.effect("caps per-mentor lines and counts the ones left out", () =>
    Effect.gen(function* () {
      const list = mentors(9, () => ({ due: ["expiry"], pushFails: true }))
      const { event } = yield* runOver(list, { maxDetailLines: 3 })

      expect(event("mentor_evaluation_error")).toHaveLength(3)
      expect(event("scheduler_run_completed")[0]).toMatchObject({ errors: 9, log_lines_omitted: 6, level: "warn" })
    })
  )

  it.effect("narrows a failing page down by halves instead of one statement per mentor", () =>
    Effect.gen(function* () {
      const list = mentors(64, (index) => ({ breaksEvaluation: index === 37 }))
      const world = makeFakeWorld(list)
      const { event } = yield* runOver(list, { pageSize: 64 }, world)

      expect(event("mentor_evaluation_error").map((entry) => entry.user_id)).toEqual([mentorId(38)])
      // 1 for the page, then two halves at each of six levels.
      expect(world.evaluations()).toBe(13)
    })
  )

  it.effect("ends the run on a database without the scheduler's schema, with a hint, not a line per mentor", () =>
    Effect.gen(function* () {
      const list = mentors(20)
      const { event, summary } = yield* runOver(list, {}, makeFakeWorld(list, { schemaMissing: true }))

      expect(event("mentor_evaluation_error")).toHaveLength(0)
      expect(event("scheduler_run_failed")).toEqual([
        expect.objectContaining({ error_type: "database_schema_mismatch", hint: expect.stringContaining("migrate") })
      ])
      expect(summary.outcome).toBe("failed")
    })
  )

  it.effect("stops sending at the first refused credential and fails the run once", () =>
    Effect.gen(function* () {
      const list = mentors(30, () => ({ due: ["inactivity"] }))
      const world = makeFakeWorld(list, { credentialsRefused: true })
      const { event } = yield* runOver(list, { dispatchConcurrency: 1, pageSize: 10 }, world)

      expect(event("mentor_evaluation_error")).toHaveLength(0)
      expect(event("scheduler_run_failed")).toEqual([
        expect.objectContaining({ error_type: "push_authentication_failed" })
      ])
      // Everything claimed is deferred to a later run, nothing is lost as failed.
      expect(world.recorded.every((result) => result.status === "deferred")).toBe(true)
      expect(world.recorded).toHaveLength(10)
    })
  )

  it.effect("ends an interrupted run as partial, with the completion line still last", () =>
    Effect.gen(function* () {
      const list = mentors(50, () => ({ due: ["inactivity"] }))
      const world = makeFakeWorld(list, { evaluateMs: 1_000 })
      const capture = makeLogCapture()

      const fiber = yield* Effect.fork(
        runScheduler(options({ pageSize: 10, budgetMs: 60_000 }), world.layer).pipe(Effect.provide(capture.layer))
      )
      yield* TestClock.adjust(2_500)
      yield* Fiber.interrupt(fiber)

      const entries = capture.entries()
      expect(entries[entries.length - 1]).toMatchObject({ event: "scheduler_run_completed", outcome: "partial" })
      expect(world.finishedRuns[0]?.outcome).toBe("partial")
    })
  )
})

describe("scheduler accounting", () => {
  const scenarioSets = fc.subarray(["inactivity", "milestone", "expiry"] as const)
  const mentorScript = fc.record({
    due: scenarioSets,
    breaksEvaluation: fc.nat(9).map((n) => n === 0),
    pushFails: fc.boolean()
  })

  it.effect.prop(
    "accounts for every active mentor exactly once",
    [fc.array(mentorScript, { maxLength: 40 }), fc.integer({ min: 1, max: 12 }), fc.integer({ min: 0, max: 8 })],
    ([scripts, pageSize, pagesWithinBudget]) =>
      Effect.gen(function* () {
        const list = scripts.map((script, index) => ({ userId: mentorId(index + 1), ...script }))
        const world = makeFakeWorld(list, { evaluateMs: 100 })
        // Room for the given number of pages of 100 ms, plus the guard's reserve.
        const budgetMs = pagesWithinBudget * 100 + 101

        const { event } = yield* runOver(list, { pageSize, budgetMs }, world)
        const completed = event("scheduler_run_completed")[0] as Record<string, number>
        const remaining = (event("scheduler_run_partial")[0]?.remaining as number | undefined) ?? 0

        const evaluatedMentors = list.slice(0, completed.evaluated)
        const expectedErrors = evaluatedMentors.filter((m) => m.breaksEvaluation || (m.pushFails && m.due.length > 0))
        const expectedSent = evaluatedMentors.filter((m) => !m.breaksEvaluation && !m.pushFails)

        expect(completed.total_active).toBe(list.length)
        expect(completed.evaluated + remaining).toBe(list.length)
        expect(completed.errors).toBe(expectedErrors.length)
        expect(completed.dispatched).toBe(expectedSent.reduce((sum, m) => sum + m.due.length, 0))
        expect(world.sent.length).toBe(completed.dispatched)
        expect(new Set(world.sent.map((r) => `${r.userId}:${r.scenarioType}`)).size).toBe(world.sent.length)
      }),
    { fastCheck: { numRuns: 60 } }
  )
})
