import { appendFile, mkdir, readFile } from "node:fs/promises"
import { dirname } from "node:path"
import { Effect, Either, Layer } from "effect"
import { PushError } from "../domain/Errors.ts"
import { PushProvider, type PushRequest } from "./PushProvider.ts"

/**
 * The local stand-in for a push service: every message is appended as one JSON line to a file, so
 * a demo run shows what mentors would receive. The device tokens are secrets and are not written;
 * only how many devices the message was meant for.
 */
const outboxLine = (request: PushRequest, at: Date): string =>
  `${JSON.stringify({
    timestamp: at.toISOString(),
    notification_id: request.notificationId,
    user_id: request.userId,
    scenario_type: request.scenarioType,
    title: request.content.title,
    body: request.content.body,
    data: request.content.data,
    devices: request.tokens.length
  })}\n`

const delivered = (request: PushRequest) =>
  request.tokens.map((token) => ({ tokenId: token.id, outcome: "delivered" as const }))

export interface OutboxOptions {
  /**
   * How long each message takes to "send", as a push service's round trip would. Zero (the default) writes at
   * once; a delay shows locally how the timeout guard, deferral and crash recovery behave with a slow provider.
   */
  readonly delayMs?: number | undefined
}

export const make = (path: string, options: OutboxOptions = {}) =>
  Effect.gen(function* () {
    yield* Effect.tryPromise({
      try: () => mkdir(dirname(path), { recursive: true }),
      catch: (cause) => new PushError({ provider: "outbox", reason: "unavailable", message: String(cause) })
    })

    const append = (text: string) =>
      Effect.tryPromise({
        try: () => appendFile(path, text),
        catch: (cause) =>
          new PushError({
            provider: "outbox",
            reason: "unavailable",
            message: cause instanceof Error ? cause.message : "outbox write failed"
          })
      })

    const currentDate = Effect.clockWith((clock) => clock.currentTimeMillis).pipe(Effect.map((ms) => new Date(ms)))

    // One append per call: an O_APPEND write never interleaves with another process's lines.
    const sendBatch = (requests: ReadonlyArray<PushRequest>) =>
      Effect.gen(function* () {
        const now = yield* currentDate
        yield* append(requests.map((request) => outboxLine(request, now)).join(""))
        return requests.map((request) => Either.right(delivered(request)))
      }).pipe(Effect.catchAll((error) => Effect.succeed(requests.map(() => Either.left(error)))))

    return PushProvider.of({
      name: "outbox",
      send: (request) =>
        Effect.gen(function* () {
          if (options.delayMs) yield* Effect.sleep(options.delayMs)
          yield* append(outboxLine(request, yield* currentDate))
          return delivered(request)
        }),

      // A page's messages in one write rather than one file open per message. A delay is a per-message round trip,
      // so with one the messages go one by one through `send`.
      ...(options.delayMs ? {} : { sendBatch }),

      confirmDelivered: (notificationIds) => deliveredAmong(path, notificationIds)
    })
  })

const outboxFailure = (cause: unknown) =>
  new PushError({
    provider: "outbox",
    reason: "unavailable",
    message: cause instanceof Error ? cause.message : "outbox read failed"
  })

/** The outbox is its own delivery record: a notification is delivered when its line is in the file. */
const deliveredAmong = (path: string, notificationIds: ReadonlyArray<string>) =>
  Effect.tryPromise({
    try: () =>
      readFile(path, "utf8").catch((error: NodeJS.ErrnoException) =>
        error.code === "ENOENT" ? "" : Promise.reject(error)
      ),
    catch: outboxFailure
  }).pipe(
    Effect.map((text) => {
      const wanted = new Set(notificationIds)
      const delivered = new Set<string>()
      for (const line of text.split("\n")) {
        const id = /"notification_id":"([0-9a-f-]{36})"/.exec(line)?.[1]
        if (id !== undefined && wanted.has(id)) delivered.add(id)
      }
      return delivered as ReadonlySet<string>
    })
  )

export const layer = (path: string, options: OutboxOptions = {}): Layer.Layer<PushProvider, PushError> =>
  Layer.effect(PushProvider, make(path, options))
