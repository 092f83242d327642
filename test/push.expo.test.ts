import { describe, expect, it } from "@effect/vitest"
import { Chunk, Clock, Effect, Either, Fiber, Redacted, TestClock } from "effect"
import type { PushError } from "../src/domain/Errors.ts"
import type { PushTokenRow } from "../src/domain/Evaluation.ts"
import { renderMessage } from "../src/domain/Message.ts"
import * as ExpoProvider from "../src/services/ExpoProvider.ts"
import type { PushRequest, TokenDelivery } from "../src/services/PushProvider.ts"
import { withBatchRetries } from "../src/services/PushRetry.ts"
import { makeLogCapture } from "./support/captureLogs.ts"
import { ACCESS_TOKEN, defaultTicket, type Reply, startExpo, ticketIdOf } from "./support/expo.ts"

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

const expoTokenValue = (label: string) => `ExponentPushToken[${label}-xq81Mz0aPk]`

const expoToken = (id: string, label: string): PushTokenRow => ({
  id,
  token: Redacted.make(expoTokenValue(label)),
  platform: "expo"
})

const notificationIdOf = (index: number) => `7c1e4a2b-0000-4000-8000-${String(index).padStart(12, "0")}`

const notification = (index: number, tokens: ReadonlyArray<PushTokenRow>): PushRequest => ({
  notificationId: notificationIdOf(index),
  userId: `3f0d9b6a-0000-4000-8000-${String(index).padStart(12, "0")}`,
  scenarioType: "inactivity",
  content: renderMessage("inactivity", notificationIdOf(index), { days_inactive: 14 + index }),
  tokens
})

/** Sixty mentors with two devices each; the second device of mentor 17 is gone. */
const sixtyMentors = Array.from({ length: 60 }, (_, index) =>
  notification(index, [
    expoToken(`${index}-a`, `m${index}a`),
    expoToken(`${index}-b`, index === 17 ? `m${index}b-gone` : `m${index}b`)
  ])
)

const deliveriesOf = (answer: Either.Either<ReadonlyArray<TokenDelivery>, PushError> | undefined) => {
  if (answer === undefined || Either.isLeft(answer)) {
    throw new Error("expected deliveries")
  }
  return answer.right
}

const failureOf = (delivery: TokenDelivery | undefined): PushError => {
  if (delivery?.outcome !== "failed") {
    throw new Error(`expected a failed delivery, got ${delivery?.outcome}`)
  }
  return delivery.error
}

const realPause = Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 5)))

const awaitSleepUntil = (wakeAtMs: number) =>
  Effect.gen(function* () {
    for (let round = 0; round < 1_000; round++) {
      if (Chunk.some(yield* TestClock.sleeps(), (at) => at === wakeAtMs)) {
        return
      }
      yield* realPause
    }
    return yield* Effect.dieMessage(`nothing slept until ${wakeAtMs}`)
  })

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

describe("Expo batches", () => {
  it.scoped("60 notifications of 2 tokens go out in 2 requests of at most 100 recipients", () =>
    Effect.gen(function* () {
      const expo = yield* startExpo()

      const answers = yield* expo.provider.sendBatch(sixtyMentors)

      expect(expo.sends.map((call) => call.messages.length)).toEqual([100, 20])
      const sent = expo.sends.flatMap((call) => call.messages.map((message) => message.to))
      expect(new Set(sent).size).toBe(120)
      expect(expo.sends.every((call) => call.authorization === `Bearer ${ACCESS_TOKEN}`)).toBe(true)

      expect(answers).toHaveLength(60)
      answers.forEach((answer, index) => {
        const expected = index === 17 ? ["delivered", "unregistered"] : ["delivered", "delivered"]
        expect(deliveriesOf(answer).map((delivery) => delivery.outcome)).toEqual(expected)
      })
      expect(deliveriesOf(answers[17])[1]).toEqual({ tokenId: "17-b", outcome: "unregistered" })
    })
  )

  it.scoped("messages carry the title, the body and string data, one message per token", () =>
    Effect.gen(function* () {
      const expo = yield* startExpo({}, null)

      yield* expo.provider.send(sixtyMentors[3])

      const [first, second] = expo.sends[0].messages
      expect(expo.sends[0].authorization).toBeUndefined()
      expect(first).toEqual({
        to: expoTokenValue("m3a"),
        title: sixtyMentors[3].content.title,
        body: sixtyMentors[3].content.body,
        data: sixtyMentors[3].content.data
      })
      expect(second.to).toBe(expoTokenValue("m3b"))
      expect(Object.values(first.data).every((value) => typeof value === "string")).toBe(true)
    })
  )

  it("a notification is split across requests only when it alone exceeds the limit", () => {
    const tokens = (prefix: string, count: number) =>
      Array.from({ length: count }, (_, index) => expoToken(`${prefix}${index}`, `${prefix}${index}`))
    const sizes = (requests: ReadonlyArray<PushRequest>) =>
      ExpoProvider.packRecipients(requests).map((chunk) => chunk.length)

    expect(
      sizes([notification(1, tokens("a", 60)), notification(2, tokens("b", 60)), notification(3, tokens("c", 30))])
    ).toEqual([60, 90])
    expect(sizes([notification(1, tokens("a", 30)), notification(2, tokens("b", 150))])).toEqual([30, 100, 50])
    expect(sizes([])).toEqual([])
  })

  it.scoped("tickets are matched to tokens by position, and the accepted ones are kept for receipts", () =>
    Effect.gen(function* () {
      const expo = yield* startExpo({
        ticket: (message) =>
          message.to.includes("big")
            ? { status: "error", message: "too big", details: { error: "MessageTooBig" } }
            : message.to.includes("busy")
              ? { status: "error", message: "slow down", details: { error: "MessageRateExceeded" } }
              : defaultTicket(message)
      })

      const deliveries = yield* expo.provider.send(
        notification(1, [expoToken("1", "ok"), expoToken("2", "big"), expoToken("3", "busy"), expoToken("4", "gone")])
      )

      expect(deliveries.map((delivery) => delivery.outcome)).toEqual(["delivered", "failed", "failed", "unregistered"])
      expect(failureOf(deliveries[1]).reason).toBe("invalid_payload")
      expect(failureOf(deliveries[2]).reason).toBe("rate_limited")
      expect(ExpoProvider.ticketsOf(deliveries)).toEqual([{ tokenId: "1", ticketId: ticketIdOf(expoTokenValue("ok")) }])
    })
  )

  it.scoped("tokens of another platform are failed, kept and not sent", () =>
    Effect.gen(function* () {
      const expo = yield* startExpo()
      const fcmToken: PushTokenRow = { id: "9", token: Redacted.make("fcm-native-token-1"), platform: "fcm" }

      const deliveries = yield* expo.provider.send(notification(1, [fcmToken, expoToken("1", "ok")]))

      expect(deliveries.map((delivery) => delivery.outcome)).toEqual(["failed", "delivered"])
      expect(failureOf(deliveries[0]).reason).toBe("invalid_token")
      expect(expo.sends[0].messages.map((message) => message.to)).toEqual([expoTokenValue("ok")])
    })
  )

  it.scoped("a refused access token fails the send as an authentication error", () =>
    Effect.gen(function* () {
      const expo = yield* startExpo({
        send: () => ({ status: 401, body: { errors: [{ code: "UNAUTHORIZED", message: "bad token" }] } })
      })

      const error = yield* Effect.flip(expo.provider.send(sixtyMentors[0]))

      expect(error).toMatchObject({ provider: "expo", reason: "authentication", status: 401 })
    })
  )

  it.scoped("a 503 with Retry-After is retried once, for the whole batch", () =>
    Effect.gen(function* () {
      const expo = yield* startExpo({
        send: (call) =>
          call.index === 0 ? { status: 503, headers: { "retry-after": "3" }, body: { errors: [] } } : undefined
      })
      const nowMs = yield* Clock.currentTimeMillis
      const send = withBatchRetries(expo.provider.sendBatch, { deadlineMs: nowMs + 20_000, maxAttempts: 3 })

      const fiber = yield* Effect.fork(send(sixtyMentors.slice(0, 10)))
      yield* awaitSleepUntil(3_000)
      yield* TestClock.adjust("3 seconds")
      const outcomes = yield* Fiber.join(fiber)

      expect(expo.sends).toHaveLength(2)
      expect(outcomes.every((outcome) => outcome._tag === "Answered" && outcome.attempts === 2)).toBe(true)
    })
  )
})

describe("Expo receipts", () => {
  it.scoped("answer which tokens to revoke and which tickets to ask about again", () =>
    Effect.gen(function* () {
      const expo = yield* startExpo({
        receipts: () => ({
          "ticket-ok": { status: "ok" },
          "ticket-gone": { status: "error", message: "gone", details: { error: "DeviceNotRegistered" } },
          "ticket-big": { status: "error", message: "too big", details: { error: "MessageTooBig" } }
        })
      })

      const check = yield* expo.provider.checkReceipts([
        { tokenId: "1", ticketId: "ticket-ok" },
        { tokenId: "2", ticketId: "ticket-gone" },
        { tokenId: "3", ticketId: "ticket-big" },
        { tokenId: "4", ticketId: "ticket-later" }
      ])

      expect(check.revokeTokenIds).toEqual(["2"])
      expect(check.deliveredTokenIds).toEqual(["1"])
      expect(check.failed.map((entry) => [entry.tokenId, entry.error.reason])).toEqual([["3", "invalid_payload"]])
      expect(check.pending).toEqual([{ tokenId: "4", ticketId: "ticket-later" }])
    })
  )

  it.scoped("are asked for at most 1000 at a time", () =>
    Effect.gen(function* () {
      const expo = yield* startExpo()
      const tickets = Array.from({ length: 1_001 }, (_, index) => ({ tokenId: `${index}`, ticketId: `t-${index}` }))

      const check = yield* expo.provider.checkReceipts(tickets)

      expect(expo.receiptRequests.map((ids) => ids.length)).toEqual([1_000, 1])
      expect(check.pending).toHaveLength(1_001)
    })
  )
})

describe("Expo secrets", () => {
  it.scoped("no token or access token reaches an error or a log line", () =>
    Effect.gen(function* () {
      const logs = makeLogCapture()
      const replies: ReadonlyArray<Reply> = [
        { status: 429, headers: { "retry-after": "600" }, body: { errors: [{ code: "TOO_MANY_REQUESTS" }] } },
        { status: 400, body: { errors: [{ code: "VALIDATION_ERROR", message: `"${expoTokenValue("m0a")}" is bad` }] } },
        { status: 401, body: { errors: [{ code: "UNAUTHORIZED", message: `Bearer ${ACCESS_TOKEN} refused` }] } }
      ]
      const expo = yield* startExpo({ send: (call) => replies[call.index] })
      const nowMs = yield* Clock.currentTimeMillis
      const send = withBatchRetries(expo.provider.sendBatch, { deadlineMs: nowMs + 10_000, maxAttempts: 3 })
      const errors: Array<PushError> = []

      yield* Effect.gen(function* () {
        for (let round = 0; round < 4; round++) {
          for (const outcome of yield* send(sixtyMentors.slice(15, 20))) {
            if (outcome._tag === "Failed") {
              errors.push(outcome.error)
            } else {
              for (const delivery of outcome.deliveries) {
                if (delivery.outcome === "failed") {
                  errors.push(delivery.error)
                }
              }
            }
          }
        }
      }).pipe(Effect.provide(logs.layer))

      const secrets = [ACCESS_TOKEN, ...sixtyMentors.slice(15, 20).flatMap((request) => request.tokens)].map(
        (secret) => (typeof secret === "string" ? secret : Redacted.value(secret.token))
      )
      const texts = [...errors.map((error) => error.message), ...logs.lines()]
      expect(errors.map((error) => error.reason)).toEqual(
        expect.arrayContaining(["rate_limited", "invalid_payload", "authentication"])
      )
      expect(logs.lines().length).toBeGreaterThan(0)
      for (const secret of [...secrets, "xq81Mz0aPk"]) {
        for (const text of texts) {
          expect(text).not.toContain(secret)
        }
      }
    })
  )
})
