import { SqlClient, type SqlError } from "@effect/sql"
import { expect } from "@effect/vitest"
import { Effect, Either, Schema } from "effect"
import { type RunEventName, runEvents } from "../../src/domain/LogEvents.ts"

/**
 * The checks every adapter's run log must pass, whichever process wrote it: each line one JSON
 * object carrying `component` and `invocation_id`; the run's lines opened by `scheduler_run_started`
 * and closed by `scheduler_run_completed`, written exactly once and last; and not one piece of the
 * personal data or secrets the database holds, anywhere in the output.
 */

export type LogEntry = Record<string, unknown>

/** Parses NDJSON; a line that is not JSON fails the test with the line in the message. */
export const parseLines = (lines: ReadonlyArray<string>): ReadonlyArray<LogEntry> =>
  lines
    .filter((line) => line.trim() !== "")
    .map((line) => {
      try {
        return JSON.parse(line) as LogEntry
      } catch {
        throw new Error(`not a JSON line: ${line}`)
      }
    })

export const expectEveryLineTagged = (entries: ReadonlyArray<LogEntry>): void => {
  for (const entry of entries) {
    expect(entry).toMatchObject({
      timestamp: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/),
      level: expect.stringMatching(/^(debug|info|warn|error)$/),
      event: expect.any(String),
      component: "scenario-scheduler",
      invocation_id: expect.stringMatching(/^[0-9a-f-]{36}$/)
    })
  }
}

/** Each line of a run's event carries the fields the log contract gives that event, of the right types. */
export const expectContractFields = (entries: ReadonlyArray<LogEntry>): void => {
  for (const entry of entries) {
    const schema = runEvents[entry.event as RunEventName]
    if (schema === undefined) continue

    const decoded = Schema.decodeUnknownEither(schema as Schema.Schema<unknown, unknown>)(entry)
    expect(
      Either.isRight(decoded),
      `${String(entry.event)}: ${Either.isLeft(decoded) ? decoded.left.message : ""}`
    ).toBe(true)
  }
}

/** The lines of one run: started first, completed last and once, each with its contract's fields. Answers them. */
export const expectRunLog = (entries: ReadonlyArray<LogEntry>, invocationId: string): ReadonlyArray<LogEntry> => {
  const run = entries.filter((entry) => entry.invocation_id === invocationId)

  expectEveryLineTagged(run)
  expectContractFields(run)
  expect(run[0]?.event).toBe("scheduler_run_started")
  expect(run.filter((entry) => entry.event === "scheduler_run_completed")).toHaveLength(1)
  expect(run[run.length - 1]?.event).toBe("scheduler_run_completed")
  return run
}

/** Every name, email, phone number and push token in the database: none may appear in any output. */
export const secretsInDatabase: Effect.Effect<
  ReadonlyArray<string>,
  SqlError.SqlError,
  SqlClient.SqlClient
> = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ value: string }>`
      select value from (
        select full_name as value from peer_mentors
        union select email from peer_mentors
        union select phone from peer_mentors
        union select token from push_tokens
      ) as personal
      where value is not null and value <> ''`
  return rows.map((row) => row.value)
})

export const expectNoneOf = (output: string, secrets: ReadonlyArray<string>): void => {
  expect(secrets.length).toBeGreaterThan(0)
  expect(secrets.filter((secret) => output.includes(secret))).toEqual([])
}
