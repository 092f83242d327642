import { readdir, readFile } from "node:fs/promises"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { assert, describe, expect, it } from "@effect/vitest"
import { Effect, Either, Redacted } from "effect"
import { bearerToken, isAuthorized } from "../adapters/edge/Auth.ts"
import { makeEdgeFunction } from "../adapters/edge/Function.ts"
import { parseRunRequest } from "../adapters/edge/RunRequest.ts"

/** The Edge Function's request handling that needs no Deno: the credential, the body, the import map. */

const repository = fileURLToPath(new URL("../", import.meta.url))
const secret = Redacted.make("a-cron-secret-of-some-length")

describe("the cron secret", () => {
  it.effect("admits exactly the secret as a Bearer token", () =>
    Effect.gen(function* () {
      const cases = [
        ["Bearer a-cron-secret-of-some-length", true],
        ["bearer a-cron-secret-of-some-length", true],
        ["Bearer a-cron-secret-of-some-lengt", false],
        ["Bearer a-cron-secret-of-some-length2", false],
        ["Basic a-cron-secret-of-some-length", false],
        ["a-cron-secret-of-some-length", false],
        ["Bearer ", false],
        [null, false]
      ] as const

      for (const [header, expected] of cases) {
        assert.deepStrictEqual([header, yield* isAuthorized(header, secret)], [header, expected])
      }
    })
  )

  it("reads the token of a Bearer header only", () => {
    assert.strictEqual(bearerToken("Bearer abc"), "abc")
    assert.strictEqual(bearerToken("Bearer  abc "), "abc")
    assert.strictEqual(bearerToken("Bearer a b"), undefined)
    assert.strictEqual(bearerToken("Token abc"), undefined)
  })
})

describe("the request body", () => {
  it("means the defaults when empty", () => {
    assert.deepStrictEqual(parseRunRequest(""), Either.right({}))
    assert.deepStrictEqual(parseRunRequest("{}"), Either.right({}))
  })

  it("takes scenarios, dry_run and now", () => {
    const parsed = Either.getOrThrow(
      parseRunRequest('{"scenarios":["expiry","milestone"],"dry_run":true,"now":"2026-12-04T06:00:00Z"}')
    )

    assert.deepStrictEqual(parsed, {
      scenarios: ["expiry", "milestone"],
      dry_run: true,
      now: new Date("2026-12-04T06:00:00Z")
    })
  })

  it("refuses what it cannot use, naming the field and not its value", () => {
    const refused = (body: string) => Either.getOrThrow(Either.flip(parseRunRequest(body)))

    expect(refused('{"dryRun":true}').message).toBe("dryRun is not a known field")
    expect(refused('{"now":"2026-02-30"}').message).toBe(
      "now must be an ISO-8601 date or timestamp, e.g. 2026-12-04T06:00:00Z"
    )
    expect(refused('{"scenarios":["kari@example.org"]}').message).not.toContain("kari@example.org")
    expect(refused("[1]").status).toBe(400)
    expect(refused("{").message).toBe("the body is not JSON")
  })
})

describe("the import map", () => {
  const importMap = async () =>
    JSON.parse(await readFile(join(repository, "adapters/edge/import_map.json"), "utf8")) as {
      readonly imports: Record<string, string>
    }

  const sourcesUnder = async (directory: string): Promise<ReadonlyArray<string>> => {
    const entries = await readdir(join(repository, directory), { recursive: true })
    return entries.filter((entry) => entry.endsWith(".ts")).map((entry) => join(repository, directory, entry))
  }

  it("pins every package to the version package.json installs", async () => {
    const { imports } = await importMap()
    const { dependencies } = JSON.parse(await readFile(join(repository, "package.json"), "utf8")) as {
      readonly dependencies: Record<string, string>
    }

    for (const [name, target] of Object.entries(imports)) {
      const pkg = name.replace(/\/$/, "")
      const expected = name.endsWith("/") ? `npm:/${pkg}@${dependencies[pkg]}/` : `npm:${pkg}@${dependencies[pkg]}`
      assert.deepStrictEqual([name, target], [name, expected])
    }
  })

  it("maps every package the function's code imports", async () => {
    const { imports } = await importMap()
    const files = [...(await sourcesUnder("src")), ...(await sourcesUnder("adapters/edge"))]
    const specifiers = new Set<string>()
    for (const file of files) {
      for (const match of (await readFile(file, "utf8")).matchAll(/from "([^".][^"]*)"/g)) {
        if (!match[1]?.startsWith("node:")) specifiers.add(match[1] as string)
      }
    }

    const unmapped = [...specifiers].filter(
      (specifier) =>
        !(specifier in imports) &&
        !Object.keys(imports).some((prefix) => prefix.endsWith("/") && specifier.startsWith(prefix))
    )
    assert.deepStrictEqual(unmapped, [])
  })
})

describe("the function's own answers", () => {
  const secretText = "a-cron-secret-of-some-length"

  /** The function as Supabase would build it, with its log lines and the runs it asked to be kept alive for. */
  const edgeFunctionWith = (env: Readonly<Record<string, string>>) => {
    const lines: Array<string> = []
    const kept: Array<Promise<unknown>> = []
    const edgeFunction = makeEdgeFunction({
      env,
      write: (line) => void lines.push(line),
      waitUntil: (promise) => void kept.push(promise)
    })
    return { edgeFunction, kept, entries: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>) }
  }

  const post = (authorization?: string) =>
    new Request("http://127.0.0.1/", {
      method: "POST",
      headers: authorization === undefined ? {} : { authorization }
    })

  it.effect("refuses every request with 500 while the cron secret is unset or empty, and says why in the log", () =>
    Effect.gen(function* () {
      for (const env of [{}, { SCHEDULER_CRON_SECRET: "" }] as ReadonlyArray<Record<string, string>>) {
        const { edgeFunction, entries } = edgeFunctionWith(env)
        const answer = yield* Effect.promise(() => edgeFunction.handle(post("Bearer ")))

        assert.strictEqual(answer.status, 500)
        assert.deepStrictEqual(yield* Effect.promise(() => answer.json()), { error: "not_configured" })
        expect(entries()).toEqual([
          expect.objectContaining({
            event: "edge_function_misconfigured",
            error_type: "invalid_configuration",
            component: "scenario-scheduler",
            invocation_id: expect.any(String)
          })
        ])
        yield* Effect.promise(() => edgeFunction.dispose())
      }
    })
  )

  it.effect("tells only an authorized caller that a setting is malformed", () =>
    Effect.gen(function* () {
      const { edgeFunction, entries } = edgeFunctionWith({
        SCHEDULER_CRON_SECRET: secretText,
        SCHEDULER_BUDGET_MS: "lots"
      })

      const stranger = yield* Effect.promise(() => edgeFunction.handle(post("Bearer guess")))
      const cron = yield* Effect.promise(() => edgeFunction.handle(post(`Bearer ${secretText}`)))

      assert.deepStrictEqual([stranger.status, cron.status], [401, 500])
      expect(String(entries().at(-1)?.error_message)).toContain("SCHEDULER_BUDGET_MS")
      yield* Effect.promise(() => edgeFunction.dispose())
    })
  )

  it.effect("answers 202 before a run whose services cannot be built, which then fails with the reason", () =>
    Effect.gen(function* () {
      const { edgeFunction, entries, kept } = edgeFunctionWith({ SCHEDULER_CRON_SECRET: secretText })

      const answer = yield* Effect.promise(() => edgeFunction.handle(post(`Bearer ${secretText}`)))
      const { invocation_id } = (yield* Effect.promise(() => answer.json())) as { invocation_id: string }
      yield* Effect.promise(() => Promise.all(kept))
      const run = entries().filter((entry) => entry.invocation_id === invocation_id)

      assert.strictEqual(answer.status, 202)
      assert.strictEqual(kept.length, 1)
      expect(run.map((entry) => entry.event)).toEqual([
        "scheduler_run_started",
        "scheduler_run_failed",
        "scheduler_run_completed"
      ])
      expect(run[1]).toMatchObject({ error_type: "invalid_configuration" })
      expect(String(run[1]?.error_message)).toContain("SUPABASE_URL")
      yield* Effect.promise(() => edgeFunction.dispose())
    })
  )
})
