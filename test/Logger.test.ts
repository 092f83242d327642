import { describe, expect, it } from "@effect/vitest"
import { Cause, Data, Effect, FastCheck as fc, LogLevel, Redacted, TestClock } from "effect"
import { layer, logEvent, MAX_LINE_LENGTH } from "../src/services/Logger.ts"
import { makeLogCapture } from "./support/captureLogs.ts"

class DatabaseUnavailable extends Data.TaggedError("DatabaseUnavailable")<{ readonly message: string }> {}

const invocationId = "0b6e7a52-3f4e-4d4c-9a53-2a8f0c1d9e77"

/** Runs `program` with a fresh capture and answers the lines it wrote. */
const capture = <A, E>(program: Effect.Effect<A, E>, minimumLevel: LogLevel.LogLevel = LogLevel.All) =>
  Effect.gen(function* () {
    const logs = makeLogCapture({ minimumLevel })

    yield* Effect.provide(program, logs.layer)
    return logs
  })

const onlyEntry = <A, E>(program: Effect.Effect<A, E>) =>
  Effect.map(capture(program), (logs) => {
    expect(logs.entries()).toHaveLength(1)
    return { line: logs.lines()[0] ?? "", entry: logs.entries()[0] ?? {} }
  })

const expectOneLine = (line: string | undefined): void => {
  expect(line).toBeDefined()
  expect(line?.endsWith("\n")).toBe(true)
  expect(line?.indexOf("\n")).toBe((line?.length ?? 0) - 1)
  expect(() => JSON.parse(line ?? "")).not.toThrow()
}

describe("makeJsonLogger", () => {
  it.effect("writes each entry as one newline-terminated JSON line, in one write", () =>
    Effect.gen(function* () {
      const writes: Array<string> = []
      const program = Effect.all([Effect.logInfo("first"), Effect.logWarning("second"), Effect.logError("third")])

      yield* Effect.provide(program, layer({ write: (line) => writes.push(line) }))

      expect(writes).toHaveLength(3)
      writes.forEach(expectOneLine)
      expect(writes.map((line) => JSON.parse(line).event)).toEqual(["first", "second", "third"])
    })
  )

  it.effect("stamps each line with the ISO-8601 UTC time of the entry", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(Date.parse("2024-03-01T12:34:56.789+02:00"))

      const { entry } = yield* onlyEntry(Effect.logInfo("tick"))

      expect(entry.timestamp).toBe("2024-03-01T10:34:56.789Z")
    })
  )

  it.effect("maps Effect's levels onto debug, info, warn and error", () =>
    Effect.gen(function* () {
      const logs = yield* capture(
        Effect.all([
          Effect.logTrace("trace"),
          Effect.logDebug("debug"),
          Effect.logInfo("info"),
          Effect.logWarning("warning"),
          Effect.logError("error"),
          Effect.logFatal("fatal")
        ])
      )

      expect(logs.entries().map((entry) => [entry.event, entry.level])).toEqual([
        ["trace", "debug"],
        ["debug", "debug"],
        ["info", "info"],
        ["warning", "warn"],
        ["error", "error"],
        ["fatal", "error"]
      ])
    })
  )

  it.effect("leaves out debug lines by default", () =>
    Effect.gen(function* () {
      const writes: Array<string> = []

      yield* Effect.provide(
        Effect.all([Effect.logDebug("hidden"), Effect.logInfo("shown")]),
        layer({ write: (line) => writes.push(line) })
      )

      expect(writes.map((line) => JSON.parse(line).event)).toEqual(["shown"])
    })
  )

  it.effect("puts timestamp, level and event first, then annotations, then the message's fields", () =>
    Effect.gen(function* () {
      const program = logEvent("info", "scheduler_run_started", { page_size: 500, dry_run: false }).pipe(
        Effect.annotateLogs({ component: "scheduler", invocation_id: invocationId })
      )

      const { entry } = yield* onlyEntry(program)

      expect(Object.keys(entry)).toEqual([
        "timestamp",
        "level",
        "event",
        "component",
        "invocation_id",
        "page_size",
        "dry_run"
      ])
      expect(entry).toMatchObject({
        level: "info",
        event: "scheduler_run_started",
        component: "scheduler",
        invocation_id: invocationId,
        page_size: 500,
        dry_run: false
      })
    })
  )

  it.effect("takes the event from a string message or from an object's event field", () =>
    Effect.gen(function* () {
      const logs = yield* capture(
        Effect.all([
          Effect.logInfo("plain_event"),
          Effect.logWarning({ event: "notification_duplicate_skipped", scenario_type: "inactivity" }),
          logEvent("error", "scheduler_run_failed", { error_type: "database_unavailable" })
        ])
      )

      expect(logs.entries()).toMatchObject([
        { event: "plain_event", level: "info" },
        { event: "notification_duplicate_skipped", level: "warn", scenario_type: "inactivity" },
        { event: "scheduler_run_failed", level: "error", error_type: "database_unavailable" }
      ])
    })
  )

  it.effect("keeps extra arguments of a log call", () =>
    Effect.gen(function* () {
      const { entry } = yield* onlyEntry(Effect.logInfo("page_done", { page: 2 }, 42))

      expect(entry).toMatchObject({ event: "page_done", page: 2, details: [42] })
    })
  )

  it.effect("does not let fields overwrite timestamp, level or event", () =>
    Effect.gen(function* () {
      const { entry } = yield* onlyEntry(
        logEvent("warn", "scheduler_run_partial", { timestamp: "yesterday", level: "debug", event: "other" }).pipe(
          Effect.annotateLogs("event", "annotated")
        )
      )

      expect(entry).toMatchObject({
        event: "scheduler_run_partial",
        level: "warn",
        timestamp: "1970-01-01T00:00:00.000Z"
      })
    })
  )

  it.effect("writes errors as their name and scrubbed message, never as {}", () =>
    Effect.gen(function* () {
      const { entry } = yield* onlyEntry(
        logEvent("error", "mentor_evaluation_error", {
          error: new Error("no route to kari@example.no"),
          tagged: new DatabaseUnavailable({ message: "password=hunter2 refused" })
        })
      )

      expect(entry.error).toEqual({ name: "Error", message: "no route to [email]" })
      expect(entry.tagged).toEqual({ name: "DatabaseUnavailable", message: "password=[redacted] refused" })
    })
  )

  it.effect("writes bigints, dates, shared values and cycles as JSON can hold them", () =>
    Effect.gen(function* () {
      const shared = { page: 1 }
      const cyclic: Record<string, unknown> = { id: "a" }
      cyclic.self = cyclic

      const { entry } = yield* onlyEntry(
        logEvent("info", "values", {
          activity_id: 9007199254740993n,
          at: new Date("2024-01-15T10:30:00.000Z"),
          first: shared,
          second: shared,
          cyclic
        })
      )

      expect(entry).toMatchObject({
        activity_id: "9007199254740993",
        at: "2024-01-15T10:30:00.000Z",
        first: { page: 1 },
        second: { page: 1 },
        cyclic: { id: "a", self: "[circular]" }
      })
    })
  )

  it.effect("escapes embedded newlines instead of splitting the line", () =>
    Effect.gen(function* () {
      const { line, entry } = yield* onlyEntry(
        logEvent("error", "multi_line", { error_message: "first\nsecond\r\nthird" })
      )

      expectOneLine(line)
      expect(entry.error_message).toBe("first\nsecond\r\nthird")
    })
  )

  it.effect("redacts sensitive fields and annotations", () =>
    Effect.gen(function* () {
      const { line, entry } = yield* onlyEntry(
        logEvent("info", "mentor_loaded", {
          user_id: invocationId,
          full_name: "Kari Nordmann",
          email: "kari@example.no",
          push_token: "ExponentPushToken[abc]",
          service_account: { private_key: "-----BEGIN PRIVATE KEY-----" }
        }).pipe(Effect.annotateLogs("authorization", "Bearer abc"))
      )

      expect(entry).toMatchObject({
        user_id: invocationId,
        full_name: "[redacted]",
        email: "[redacted]",
        push_token: "[redacted]",
        service_account: "[redacted]",
        authorization: "[redacted]"
      })
      expect(line).not.toMatch(/Kari|kari@|ExponentPushToken|abc/)
    })
  )

  it.effect("never shows a Redacted value", () =>
    Effect.gen(function* () {
      const secret = Redacted.make("s3cret")
      const logs = yield* capture(
        Effect.all([
          logEvent("info", "configured", { database_url: secret, nested: { list: [secret] } }),
          Effect.logInfo("direct", secret),
          Effect.logError("failed", Cause.fail(secret)).pipe(Effect.annotateLogs("connection", secret))
        ])
      )

      expect(logs.lines().join("")).not.toContain("s3cret")
    })
  )

  it.effect("adds a short, scrubbed rendering of the cause", () =>
    Effect.gen(function* () {
      const failure = new DatabaseUnavailable({
        message: "connect postgres://app:pw1@db.local failed for ola@example.no"
      })
      const defect = new Error("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln rejected")
      const cause = Cause.parallel(Cause.fail(failure), Cause.die(defect))

      const { entry } = yield* onlyEntry(Effect.logError("scheduler_run_failed", cause))

      expect(entry.cause).toBe(
        "DatabaseUnavailable: connect postgres://app:[redacted]@db.local failed for [email]; defect Error: token [jwt] rejected"
      )
    })
  )

  it.effect("logs the cause of a failed effect without its stack trace", () =>
    Effect.gen(function* () {
      const { entry } = yield* onlyEntry(
        Effect.fail(new DatabaseUnavailable({ message: "timeout after 5000 ms" })).pipe(
          Effect.tapErrorCause((cause) => Effect.logError("store_failed", cause)),
          Effect.ignore
        )
      )

      expect(entry.cause).toBe("DatabaseUnavailable: timeout after 5000 ms")
    })
  )

  it.effect("scrubs personal data and secrets inside message text", () =>
    Effect.gen(function* () {
      const message = [
        "send to ola@example.no",
        "+47 912 34 567",
        "Bearer abc.def",
        "dXk9aQqlTTmZ-2n1nc1Xw:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx4bGGN8zpq7MxYoOL2eqVxrIr1j7F2QPNL0cjWlk6a6PVbCtnyaKIFd",
        "ExpoPushToken[zzzzzzzzzzzzzzzzzzzzzz]",
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----"
      ].join(" | ")

      const { line, entry } = yield* onlyEntry(logEvent("error", "push_failed", { error_message: message }))

      expect(entry.error_message).toBe("send to [email] | [phone] | Bearer [token] | [token] | [token] | [key]")
      expect(line).not.toMatch(/ola@|912 34 567|abc\.def|APA91b|zzzz|MIIEvQ/)
    })
  )

  it.effect("keeps UUIDs, dates and small numbers intact", () =>
    Effect.gen(function* () {
      const text = `user ${invocationId} on 2024-01-15, at 2024-01-15T10:30:00.000Z, 3 pages in 1234 ms`

      const { entry } = yield* onlyEntry(
        logEvent("info", "scheduler_run_completed", { note: text, evaluated: 1234, resume_cursor: invocationId })
      )

      expect(entry).toMatchObject({ note: text, evaluated: 1234, resume_cursor: invocationId })
    })
  )
})

describe("line length", () => {
  const underLimit = (line: string): void => {
    expectOneLine(line)
    expect(new TextEncoder().encode(line).length).toBeLessThan(MAX_LINE_LENGTH)
  }

  it.effect("cuts a 50,000-character field and says so", () =>
    Effect.gen(function* () {
      const { line, entry } = yield* onlyEntry(logEvent("error", "huge", { error_message: "word ".repeat(10_000) }))

      underLimit(line)
      expect(entry.error_message).toMatch(/…\[truncated \d+ chars\]$/)
    })
  )

  it.effect("shrinks many long fields rather than dropping them", () =>
    Effect.gen(function* () {
      const fields = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`field_${i}`, "é".repeat(3_000)]))

      const { line, entry } = yield* onlyEntry(logEvent("info", "wide", fields))

      underLimit(line)
      expect(Object.keys(entry)).toEqual(expect.arrayContaining(Object.keys(fields)))
      expect(entry.truncated).toBeUndefined()
    })
  )

  it.effect("drops fields and marks the line truncated when there are too many", () =>
    Effect.gen(function* () {
      const fields = Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`field_${i}`, `value number ${i}`]))

      const { line, entry } = yield* onlyEntry(
        logEvent("info", "very_wide", fields).pipe(
          Effect.annotateLogs({ component: "scheduler", invocation_id: invocationId })
        )
      )

      underLimit(line)
      expect(entry).toMatchObject({
        event: "very_wide",
        component: "scheduler",
        invocation_id: invocationId,
        truncated: true
      })
      expect(entry.dropped_fields).toBeGreaterThan(0)
      expect(Object.keys(entry).filter((key) => key.startsWith("field_")).length).toBe(
        500 - Number(entry.dropped_fields)
      )
    })
  )

  it.effect("cuts a long event name", () =>
    Effect.gen(function* () {
      const { line, entry } = yield* onlyEntry(Effect.logInfo("e".repeat(20_000)))

      underLimit(line)
      expect(String(entry.event).length).toBeLessThan(300)
    })
  )

  const jsonish: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
    value: fc.oneof(
      { depthSize: "small" },
      fc.string({ unit: "binary" }),
      fc.constantFrom("line\nbreak", "tab\there", "\u2028sep\u2029", "\r\n"),
      fc.double(),
      fc.bigInt(),
      fc.boolean(),
      fc.constant(null),
      fc.constant(undefined),
      fc.date(),
      fc.array(tie("value"), { maxLength: 5 }),
      fc.dictionary(fc.string(), tie("value"), { maxKeys: 5 })
    )
  })).value

  it.effect.prop(
    "writes any value as exactly one line of valid JSON under the limit",
    { fields: fc.dictionary(fc.string(), jsonish, { maxKeys: 30 }), event: fc.string({ unit: "binary" }) },
    ({ fields, event }) =>
      Effect.gen(function* () {
        const logs = yield* capture(logEvent("info", event, fields))

        expect(logs.lines()).toHaveLength(1)
        underLimit(logs.lines()[0] ?? "")
      })
  )

  it.effect.prop(
    "writes any message at all as one valid line",
    {
      message: fc.anything({ withBigInt: true, withDate: true, withMap: true, withSet: true, withNullPrototype: true })
    },
    ({ message }) =>
      Effect.gen(function* () {
        const logs = yield* capture(Effect.logInfo(message))

        expect(logs.lines()).toHaveLength(1)
        underLimit(logs.lines()[0] ?? "")
      })
  )
})
