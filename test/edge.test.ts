import { mkdtemp, readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { SqlClient } from "@effect/sql"
import { assert, expect, layer } from "@effect/vitest"
import { Context, Duration, Effect, Layer } from "effect"
import { seed } from "../adapters/cli/Seed.ts"
import { describeServer, postgresLayer, TestDatabase } from "./support/databases.ts"
import { type EdgeProcess, startEdgeFunction } from "./support/edge.ts"
import { expectEveryLineTagged, expectNoneOf, expectRunLog, parseLines, secretsInDatabase } from "./support/runLog.ts"

/**
 * The Edge Function under real Deno, on 127.0.0.1, with the direct store on a seeded database of its
 * own on the server and the outbox as push provider: what a caller gets back, and what the log says.
 */

const secret = "edge-test-cron-secret-7f3a9c2e51b8"
const now = "2026-12-04T07:00:00Z"

interface Server {
  readonly edge: EdgeProcess
  readonly outboxPath: string
  readonly env: Readonly<Record<string, string>>
  readonly directory: string
}

class EdgeServer extends Context.Tag("test/EdgeServer")<EdgeServer, Server>() {}

const temporaryDirectory = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "scenario-scheduler-edge-"))),
  (directory) => Effect.promise(() => rm(directory, { recursive: true, force: true }))
)

const running = (env: Readonly<Record<string, string>>, directory: string) =>
  Effect.acquireRelease(
    Effect.promise(() => startEdgeFunction(env, directory)),
    (edge) => Effect.promise(() => edge.stop("SIGKILL"))
  )

const serverLayer = Layer.scoped(
  EdgeServer,
  Effect.gen(function* () {
    const { url } = yield* TestDatabase
    yield* Effect.orDie(seed({ mentors: 300, randomSeed: 9, now: new Date(now) }))
    const directory = yield* temporaryDirectory
    const outboxPath = join(directory, "outbox.jsonl")
    const env = {
      SCHEDULER_CRON_SECRET: secret,
      SCHEDULER_STORE: "direct",
      SUPABASE_DB_URL: url,
      PUSH_PROVIDER: "outbox",
      OUTBOX_PATH: outboxPath
    }

    return { edge: yield* running(env, directory), outboxPath, env, directory }
  })
).pipe(Layer.provideMerge(postgresLayer))

interface Answer {
  readonly status: number
  readonly body: string
  readonly headers: Headers
}

const request = (url: string, init: RequestInit = {}) =>
  Effect.promise(async (): Promise<Answer> => {
    const response = await fetch(url, init)
    return { status: response.status, body: await response.text(), headers: response.headers }
  })

const authorized = (body?: unknown): RequestInit => ({
  method: "POST",
  headers: { authorization: `Bearer ${secret}`, "content-type": "application/json" },
  ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) })
})

const startedRuns = (edge: EdgeProcess) =>
  parseLines(edge.lines()).filter((entry) => entry.event === "scheduler_run_started").length

const completionOf = (edge: EdgeProcess, invocationId: string) =>
  Effect.promise(() =>
    edge.waitFor((entry) => entry.event === "scheduler_run_completed" && entry.invocation_id === invocationId, 60_000)
  )

const invocationIdOf = (answer: Answer): string => {
  const body = JSON.parse(answer.body) as { invocation_id?: unknown }
  assert.match(String(body.invocation_id), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
  return String(body.invocation_id)
}

describeServer("the Edge Function under Deno", () => {
  layer(serverLayer, { timeout: Duration.minutes(2), excludeTestServices: true })((it) => {
    it.effect("refuses every method but POST with 405", () =>
      Effect.gen(function* () {
        const { edge } = yield* EdgeServer

        for (const method of ["GET", "PUT", "DELETE", "PATCH"]) {
          const answer = yield* request(edge.url, { method, headers: { authorization: `Bearer ${secret}` } })

          assert.deepStrictEqual([method, answer.status, answer.headers.get("allow")], [method, 405, "POST"])
          assert.deepStrictEqual(JSON.parse(answer.body), { error: "method_not_allowed" })
        }
      })
    )

    it.effect("refuses a missing or wrong secret with 401, the same way each time, and starts nothing", () =>
      Effect.gen(function* () {
        const { edge } = yield* EdgeServer
        const before = startedRuns(edge)
        const credentials = [
          undefined,
          "Bearer wrong",
          `Basic ${secret}`,
          `Bearer ${secret}x`,
          `Bearer ${secret.slice(1)}`
        ]

        const answers = yield* Effect.forEach(credentials, (authorization) =>
          request(edge.url, {
            method: "POST",
            headers: authorization === undefined ? {} : { authorization },
            body: "{}"
          })
        )

        assert.deepStrictEqual(
          answers.map((answer) => [answer.status, answer.body]),
          credentials.map(() => [401, JSON.stringify({ error: "unauthorized" })])
        )
        assert.strictEqual(startedRuns(edge), before)
        assert.notInclude(edge.lines().join("\n") + edge.stderr(), secret)
      })
    )

    it.effect("refuses a malformed body with 400 and says which field is wrong", () =>
      Effect.gen(function* () {
        const { edge } = yield* EdgeServer
        const before = startedRuns(edge)
        const bodies = [
          "{not json",
          "[]",
          "null",
          { dryRun: true },
          { dry_run: "yes" },
          { scenarios: [] },
          { scenarios: ["birthday"] },
          { now: "yesterday" },
          { now: "2026-02-30" }
        ]

        const answers = yield* Effect.forEach(bodies, (body) => request(edge.url, authorized(body)))

        for (const [index, answer] of answers.entries()) {
          assert.deepStrictEqual([bodies[index], answer.status], [bodies[index], 400])
          expect(JSON.parse(answer.body)).toMatchObject({ error: "invalid_body", message: expect.any(String) })
        }
        expect(JSON.parse(answers[3]?.body ?? "{}").message).toContain("dryRun")
        assert.strictEqual(startedRuns(edge), before)
      })
    )

    it.effect("answers 202 with the invocation_id at once and runs what the body asks: a dry run of one scenario", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const { edge } = yield* EdgeServer

        const answer = yield* request(edge.url, authorized({ dry_run: true, scenarios: ["expiry"], now }))
        assert.strictEqual(answer.status, 202)
        const invocationId = invocationIdOf(answer)
        const completed = yield* completionOf(edge, invocationId)
        const run = expectRunLog(parseLines(edge.lines()), invocationId)
        const recorded = yield* sql`select 1 from scheduler_runs where invocation_id = ${invocationId}`

        expect(run[0]).toMatchObject({ scenarios: ["expiry"], dry_run: true, now: "2026-12-04T07:00:00.000Z" })
        expect(completed).toMatchObject({ outcome: "completed", dry_run: true, dispatched: 0 })
        assert.deepStrictEqual(recorded, [])
      })
    )

    it.effect("completes a run whose log passes the log checks and holds no personal data", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const { edge, outboxPath } = yield* EdgeServer

        const answer = yield* request(edge.url, authorized({ now }))
        assert.strictEqual(answer.status, 202)
        const invocationId = invocationIdOf(answer)
        const completed = yield* completionOf(edge, invocationId)

        const entries = parseLines(edge.lines())
        expectEveryLineTagged(entries)
        expectRunLog(entries, invocationId)
        const [database] = yield* sql<{ active: number; dispatched: number }>`
          select
            (select count(*)::int from peer_mentors where status = 'active') as active,
            (select count(*)::int from scenario_notifications where status = 'dispatched') as dispatched`
        const outbox = (yield* Effect.promise(() => readFile(outboxPath, "utf8"))).trim().split("\n")

        expect(completed).toMatchObject({ outcome: "completed", partial: false, evaluated: database?.active })
        expect(completed.dispatched).toBeGreaterThan(0)
        assert.strictEqual(completed.dispatched, database?.dispatched)
        assert.strictEqual(outbox.length, database?.dispatched)
        expectNoneOf(edge.lines().join("\n") + edge.stderr(), [...(yield* secretsInDatabase), secret])
      })
    )

    it.scoped("logs a shutdown during a run, which ends as a partial run, and exits", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const { env, directory } = yield* EdgeServer
        const edge = yield* running(env, directory)

        // A partial run to resume from makes the run say when it is under way (scheduler_run_resumed); holding back
        // every write to notifications then keeps it from getting any further before it is stopped.
        const [first] = yield* sql<{ user_id: string }>`select min(user_id::text) as user_id from peer_mentors`
        yield* sql`insert into scheduler_runs (invocation_id, started_at, finished_at, outcome, resume_cursor)
          values (gen_random_uuid(), clock_timestamp(), clock_timestamp(), 'partial', ${first?.user_id ?? null}::uuid)`

        const { completed, exitCode, invocationId } = yield* sql.withTransaction(
          Effect.gen(function* () {
            yield* sql`lock table scenario_notifications in share mode`
            const answer = yield* request(edge.url, authorized({ now }))
            const invocationId = invocationIdOf(answer)
            yield* Effect.promise(() =>
              edge.waitFor((entry) => entry.event === "scheduler_run_resumed" && entry.invocation_id === invocationId)
            )

            const exitCode = yield* Effect.promise(() => edge.stop("SIGTERM"))
            return { completed: yield* completionOf(edge, invocationId), exitCode, invocationId }
          })
        )

        const run = expectRunLog(parseLines(edge.lines()), invocationId)
        const [row] = yield* sql<{
          outcome: string
        }>`select outcome from scheduler_runs where invocation_id = ${invocationId}`

        expect(run.find((entry) => entry.event === "edge_function_shutdown")).toMatchObject({
          level: "warn",
          reason: "SIGTERM"
        })
        expect(run.find((entry) => entry.event === "scheduler_run_partial")).toBeDefined()
        expect(completed).toMatchObject({ outcome: "partial", partial: true })
        assert.strictEqual(row?.outcome, "partial")
        assert.strictEqual(exitCode, 0)
      })
    )
  })
})
