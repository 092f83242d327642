/**
 * The two contestants on the same data: one scheduler run (the library as an adapter wires it, over
 * the SQL store and the outbox provider) and one run of the naive loop. Before each, the database is
 * taken back to the population, so that both do the same work; after each, what it wrote is reduced
 * to a digest, so that the two can be compared.
 */
import { randomUUID } from "node:crypto"
import { writeFile } from "node:fs/promises"
import { SqlClient } from "@effect/sql"
import { Effect, Layer } from "effect"
import type { SchedulerError } from "../src/domain/Errors.ts"
import { defaultRunOptions } from "../src/program/RunOptions.ts"
import { type RunSummary, runScheduler } from "../src/program/Scheduler.ts"
import * as Logger from "../src/services/Logger.ts"
import * as OutboxProvider from "../src/services/OutboxProvider.ts"
import * as SqlStore from "../src/services/SqlStore.ts"
import type { DatabaseKind } from "./Databases.ts"
import { type Cost, measure } from "./Measure.ts"
import { type NaiveResult, runNaive } from "./naive.ts"

/** The run judges this moment: the same calendar day in all three of the population's zones. */
export const benchNow = new Date("2026-12-04T06:00:00Z")
export const benchToday = "2026-12-04"

/** A budget no benchmark reaches, so that a run is never cut short: whether it completed is reported. */
const BUDGET_MS = 10 * 60_000

export interface Written {
  readonly count: number
  /** Every notification the run wrote, with its key, window, payload, status and attempts. */
  readonly digest: string
}

export interface SchedulerRun {
  readonly pageSize: number
  readonly summary: RunSummary
  readonly cost: Cost
  readonly written: Written
  readonly logLines: number
}

export interface NaiveRun {
  readonly result: NaiveResult
  readonly cost: Cost
  readonly written: Written
}

/** The project's own logger, writing nowhere: its cost is part of the run, its lines are only counted. */
const countingLogger = () => {
  const counter = { lines: 0 }
  const layer = Logger.layer({
    write: () => {
      counter.lines++
    }
  })
  return { counter, layer }
}

/** What the runs wrote; the population's history has no invocation_id. */
const notificationsWritten = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<Written>`
    select
      count(*)::integer as count,
      md5(coalesce(string_agg(
        idempotency_key || '|' || cooldown_window_start || '|' || payload::text || '|' || status || '|' || attempts,
        ',' order by idempotency_key
      ), '')) as digest
    from scenario_notifications
    where invocation_id is not null
  `
  return rows[0] as Written
})

/** Takes the database back to the population: the notifications and runs of earlier runs go, and the outbox. */
const reset = (outbox: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`delete from scenario_notifications where invocation_id is not null`
    yield* sql`delete from scheduler_runs`
    yield* sql.unsafe("vacuum analyze scenario_notifications, scheduler_runs")
    yield* Effect.promise(() => writeFile(outbox, ""))
  })

/** One scheduler run with the default options but the page size, and a budget it cannot exhaust. */
export const schedulerRun = (database: DatabaseKind, pageSize: number, outbox: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const logger = countingLogger()
    const services = SqlStore.layer.pipe(
      Layer.provide(Layer.succeed(SqlClient.SqlClient, sql)),
      Layer.merge(OutboxProvider.layer(outbox)),
      Layer.mapError((error): SchedulerError => error)
    )
    const options = { ...defaultRunOptions, invocationId: randomUUID(), now: benchNow, budgetMs: BUDGET_MS, pageSize }

    yield* reset(outbox)
    const { value, cost } = yield* measure(database, runScheduler(options, services).pipe(Effect.provide(logger.layer)))

    const run: SchedulerRun = {
      pageSize,
      summary: value,
      cost,
      written: yield* notificationsWritten,
      logLines: logger.counter.lines
    }
    return run
  })

export const naiveRun = (database: DatabaseKind, outbox: string) =>
  Effect.gen(function* () {
    yield* reset(outbox)
    const { value, cost } = yield* measure(
      database,
      runNaive({ invocationId: randomUUID(), now: benchNow, scenarios: defaultRunOptions.scenarios }).pipe(
        Effect.provide(OutboxProvider.layer(outbox))
      )
    )

    const run: NaiveRun = { result: value, cost, written: yield* notificationsWritten }
    return run
  })
