/**
 * A local server answering as the Expo push service, on 127.0.0.1, and the Expo provider pointed at it. Each test
 * scripts the answers it needs; the server remembers every send and every receipts request.
 */
import { Effect, Option, Redacted } from "effect"
import * as ExpoProvider from "../../src/services/ExpoProvider.ts"
import { listen, type Reply } from "./jsonServer.ts"

export type { Reply }

export interface ExpoMessage {
  readonly to: string
  readonly title: string
  readonly body: string
  readonly data: Record<string, unknown>
}

export interface SendCall {
  readonly index: number
  readonly authorization: string | undefined
  readonly messages: ReadonlyArray<ExpoMessage>
}

export interface ExpoScript {
  /** Answers a whole send request; the default answers one ticket per message from `ticket`. */
  readonly send?: (call: SendCall) => Reply | undefined
  readonly ticket?: (message: ExpoMessage) => unknown
  /** The receipts Expo has for these ticket ids; none by default. */
  readonly receipts?: (ids: ReadonlyArray<string>) => Record<string, unknown>
  /** Answers a whole receipts request instead, e.g. with a failure; the default answers `receipts`. */
  readonly getReceipts?: (ids: ReadonlyArray<string>) => Reply | undefined
}

/** The ticket id the server answers for a message to this token. */
export const ticketIdOf = (token: string) => `ticket-${token.replace(/\W/g, "")}`

// Like Expo, the error ticket's message quotes the token: the provider must not pass it on.
export const defaultTicket = (message: ExpoMessage) =>
  message.to.includes("gone")
    ? {
        status: "error",
        message: `"${message.to}" is not a registered push notification recipient`,
        details: { error: "DeviceNotRegistered", expoPushToken: message.to }
      }
    : { status: "ok", id: ticketIdOf(message.to) }

export const ACCESS_TOKEN = "expo-access-token-3f9a1c7e5b2d4f60"

/**
 * Starts the server with `script` and builds the Expo provider against it. `script` is read on every request, so a
 * test may change what a later request is answered by assigning to a mutable script of its own.
 */
export const startExpo = (script: ExpoScript = {}, accessToken: string | null = ACCESS_TOKEN) =>
  Effect.gen(function* () {
    const sends: Array<SendCall> = []
    const receiptRequests: Array<ReadonlyArray<string>> = []

    const server = yield* listen(({ path, headers, body }) => {
      if (path === "/--/api/v2/push/send") {
        const call = { index: sends.length, authorization: headers.authorization, messages: JSON.parse(body) }
        sends.push(call)
        return script.send?.(call) ?? { status: 200, body: { data: call.messages.map(script.ticket ?? defaultTicket) } }
      }

      if (path === "/--/api/v2/push/getReceipts") {
        const { ids } = JSON.parse(body) as { ids: ReadonlyArray<string> }
        receiptRequests.push(ids)
        return script.getReceipts?.(ids) ?? { status: 200, body: { data: script.receipts?.(ids) ?? {} } }
      }

      return { status: 418, body: { errors: [{ code: "UNEXPECTED_PATH" }] } }
    })

    const provider = yield* ExpoProvider.make({
      baseUrl: server.url,
      accessToken: Option.map(Option.fromNullable(accessToken), Redacted.make),
      requestTimeoutMs: 60_000,
      limits: { maxConcurrency: 6, maxRequestsPerSecond: 1_000 }
    })

    return { provider, sends, receiptRequests }
  })
