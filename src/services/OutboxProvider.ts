import { appendFile, mkdir, readFile } from "node:fs/promises"
import { dirname } from "node:path"
import { Effect, Layer } from "effect"
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

export const make = (path: string) =>
  Effect.gen(function* () {
    yield* Effect.tryPromise({
      try: () => mkdir(dirname(path), { recursive: true }),
      catch: (cause) => new PushError({ provider: "outbox", reason: "unavailable", message: String(cause) })
    })

    return PushProvider.of({
      name: "outbox",
      send: (request) =>
        Effect.gen(function* () {
          const now = new Date(yield* Effect.clockWith((clock) => clock.currentTimeMillis))

          // One append per message: O_APPEND writes of one line never interleave between concurrent sends.
          yield* Effect.tryPromise({
            try: () => appendFile(path, outboxLine(request, now)),
            catch: (cause) =>
              new PushError({
                provider: "outbox",
                reason: "unavailable",
                message: cause instanceof Error ? cause.message : "outbox write failed"
              })
          })

          return request.tokens.map((token) => ({ tokenId: token.id, outcome: "delivered" as const }))
        }),

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

export const layer = (path: string): Layer.Layer<PushProvider, PushError> => Layer.effect(PushProvider, make(path))
