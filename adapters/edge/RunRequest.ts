import { Data, Effect, Either, ParseResult, Schema } from "effect"
import { IsoMoment } from "../../src/domain/Moment.ts"
import { ScenarioList } from "../../src/domain/Scenario.ts"

/** What a caller may ask of one run in the request body; everything else comes from the environment. */
export const RunRequestBody = Schema.Struct({
  scenarios: Schema.optional(ScenarioList),
  dry_run: Schema.optional(Schema.Boolean),
  now: Schema.optional(IsoMoment)
})
export type RunRequestBody = typeof RunRequestBody.Type

/** A body larger than this is refused unread: a run request is a few dozen bytes. */
export const MAX_BODY_BYTES = 16_384

/** A body the function cannot use: 400 (malformed) or 413 (too large), with a message for the caller. */
export class BadRequest extends Data.TaggedError("BadRequest")<{
  readonly status: 400 | 413
  readonly message: string
}> {}

const decode = Schema.decodeUnknownEither(RunRequestBody, { onExcessProperty: "error", errors: "all" })

const expectations: Readonly<Record<string, string>> = {
  scenarios: "must list scenarios from inactivity, milestone, expiry",
  dry_run: "must be true or false",
  now: "must be an ISO-8601 date or timestamp, e.g. 2026-12-04T06:00:00Z"
}

/** Names each wrong field and what it must be, without repeating the values sent (they reach the log too). */
const describe = (error: ParseResult.ParseError): string => {
  const problems = ParseResult.ArrayFormatter.formatErrorSync(error).map((issue) => {
    const field = String(issue.path[0] ?? "")
    if (issue._tag === "Unexpected") return `${field} is not a known field`
    return field in expectations ? `${field} ${expectations[field]}` : "the body must be a JSON object"
  })
  return [...new Set(problems)].join("; ")
}

const parseJson = (text: string): Either.Either<unknown, BadRequest> =>
  Either.try({
    try: () => JSON.parse(text) as unknown,
    catch: () => new BadRequest({ status: 400, message: "the body is not JSON" })
  })

/** An empty body means "the defaults"; anything else must be a JSON object of known fields. */
export const parseRunRequest = (text: string): Either.Either<RunRequestBody, BadRequest> => {
  if (text.trim() === "") return Either.right({})

  return Either.flatMap(parseJson(text), (json) =>
    Either.mapLeft(decode(json), (error) => new BadRequest({ status: 400, message: describe(error) }))
  )
}

const tooLarge = new BadRequest({ status: 413, message: `the body is larger than ${MAX_BODY_BYTES} bytes` })

/** Reads and decodes a request's body, refusing one that announces or turns out to be too large. */
export const readRunRequest = (request: Request): Effect.Effect<RunRequestBody, BadRequest> =>
  Effect.gen(function* () {
    const announced = Number(request.headers.get("content-length") ?? "0")
    if (announced > MAX_BODY_BYTES) return yield* Effect.fail(tooLarge)

    const bytes = yield* Effect.tryPromise({
      try: () => request.arrayBuffer(),
      catch: () => new BadRequest({ status: 400, message: "the body could not be read" })
    })
    if (bytes.byteLength > MAX_BODY_BYTES) return yield* Effect.fail(tooLarge)

    const text = yield* Effect.try({
      try: () => new TextDecoder("utf-8", { fatal: true }).decode(bytes),
      catch: () => new BadRequest({ status: 400, message: "the body is not UTF-8 text" })
    })
    return yield* parseRunRequest(text)
  })
