import { Array as Arr, Effect, Either, Layer, Option, Redacted, Schema } from "effect"
import { PushError, type PushErrorReason } from "../domain/Errors.ts"
import type { PushTokenRow } from "../domain/Evaluation.ts"
import type { PushTicket, ReceiptCheck } from "../domain/Receipts.ts"
import {
  codeOrNothing,
  type HttpAnswer,
  isSuccess,
  makeRequestLimiter,
  post,
  type RequestLimits,
  reasonForStatus
} from "./PushHttp.ts"
import { PushProvider, type PushProviderApi, type PushRequest, type TokenDelivery } from "./PushProvider.ts"

/**
 * The Expo push service. Messages go out in batches of at most 100 recipients per request, one
 * message per token so that the tickets Expo answers with map back to tokens by position.
 *
 * Batching: `sendBatch` packs many notifications into as few requests as it can, keeping each
 * notification's tokens in one request unless the notification alone has more than 100. The
 * single-notification `send` of the provider interface is `sendBatch` of one, so a program that
 * sends notification by notification makes one request per notification; one that hands a page
 * of notifications to `sendBatch` makes one per hundred tokens.
 *
 * A ticket only says Expo accepted the message. Whether Apple or Google delivered it is in the
 * receipt, available later: `checkReceipts` answers which tokens to revoke from the ticket ids.
 */

const PROVIDER = "expo"

/** Expo accepts at most this many messages in one send request. */
export const MAX_RECIPIENTS_PER_REQUEST = 100

/** Expo accepts at most this many ticket ids in one receipts request. */
export const MAX_RECEIPTS_PER_REQUEST = 1000

export interface ExpoOptions {
  /** `https://exp.host` in production, without a trailing slash. */
  readonly baseUrl: string
  /** Needed only when the Expo project enforces access tokens for push. */
  readonly accessToken: Option.Option<Redacted.Redacted<string>>
  readonly requestTimeoutMs: number
  readonly limits: RequestLimits
}

/** Which device a ticket is for: what a later run needs to act on the receipt. */
export type ExpoTicket = PushTicket

export type { ReceiptCheck } from "../domain/Receipts.ts"

export interface ExpoPushApi extends PushProviderApi {
  /** Sends many notifications in as few requests as the recipient limit allows; answers for each, in order. */
  readonly sendBatch: (
    requests: ReadonlyArray<PushRequest>
  ) => Effect.Effect<ReadonlyArray<Either.Either<ReadonlyArray<TokenDelivery>, PushError>>>
  readonly ticketsOf: (deliveries: ReadonlyArray<TokenDelivery>) => ReadonlyArray<ExpoTicket>
  readonly checkReceipts: (tickets: ReadonlyArray<ExpoTicket>) => Effect.Effect<ReceiptCheck, PushError>
}

// ---------------------------------------------------------------------------------------------
// Tickets and receipts
// ---------------------------------------------------------------------------------------------

const ErrorDetails = Schema.optional(Schema.Struct({ error: Schema.optional(Schema.String) }))

const Ticket = Schema.Union(
  Schema.Struct({ status: Schema.Literal("ok"), id: Schema.String }),
  Schema.Struct({ status: Schema.Literal("error"), details: ErrorDetails })
)

const SendResponse = Schema.Struct({ data: Schema.Array(Ticket) })

const Receipt = Schema.Union(
  Schema.Struct({ status: Schema.Literal("ok") }),
  Schema.Struct({ status: Schema.Literal("error"), details: ErrorDetails })
)

const ReceiptsResponse = Schema.Struct({ data: Schema.Record({ key: Schema.String, value: Receipt }) })

const RequestErrors = Schema.Struct({ errors: Schema.Array(Schema.Struct({ code: Schema.optional(Schema.String) })) })

// InvalidCredentials and MismatchSenderId mean the app's FCM or APNs credentials stored at Expo
// are wrong, which may hold for one platform only: the token fails, the run goes on.
const ticketReasons: Readonly<Record<string, PushErrorReason>> = {
  MessageTooBig: "invalid_payload",
  InvalidCredentials: "authentication",
  MismatchSenderId: "authentication",
  MessageRateExceeded: "rate_limited"
}

/** A delivery Expo accepted, with the ticket its receipt is later asked for by. */
type AcceptedDelivery = Extract<TokenDelivery, { readonly outcome: "delivered" }> & { readonly ticketId: string }

/** The tickets of the deliveries Expo accepted, for the receipt check of a later run. */
export const ticketsOf = (deliveries: ReadonlyArray<TokenDelivery>): ReadonlyArray<ExpoTicket> =>
  deliveries.flatMap((delivery) =>
    delivery.outcome === "delivered" && "ticketId" in delivery && typeof delivery.ticketId === "string"
      ? [{ tokenId: delivery.tokenId, ticketId: delivery.ticketId }]
      : []
  )

/** Expo's messages name the token, so only its error code is kept. */
const ticketError = (code: string | undefined): PushError => {
  const known = codeOrNothing(code)
  return new PushError({
    provider: PROVIDER,
    reason: (known && ticketReasons[known]) || "unknown",
    message: `Expo refused the message${known ? `: ${known}` : ""}`
  })
}

const deliveryOfTicket = (tokenId: string, ticket: typeof Ticket.Type): TokenDelivery => {
  if (ticket.status === "ok") {
    const accepted: AcceptedDelivery = { tokenId, outcome: "delivered", ticketId: ticket.id }
    return accepted
  }
  if (ticket.details?.error === "DeviceNotRegistered") {
    return { tokenId, outcome: "unregistered" }
  }
  return { tokenId, outcome: "failed", error: ticketError(ticket.details?.error) }
}

const requestError = (answer: HttpAnswer): PushError => {
  const codes = Option.match(Schema.decodeUnknownOption(RequestErrors)(answer.body), {
    onNone: () => [],
    onSome: (body) => body.errors.flatMap((entry) => codeOrNothing(entry.code) ?? [])
  })

  return new PushError({
    provider: PROVIDER,
    reason: reasonForStatus(answer.status),
    status: answer.status,
    retryAfterMs: answer.retryAfterMs,
    message: `Expo answered ${answer.status}${codes.length > 0 ? ` (${codes.join(", ")})` : ""}`
  })
}

// ---------------------------------------------------------------------------------------------
// Batching
// ---------------------------------------------------------------------------------------------

interface Recipient {
  /** The position of the notification in the batch. */
  readonly notification: number
  readonly token: PushTokenRow
}

/** Fills requests up to the limit, starting a new one rather than splitting a notification that would still fit. */
export const packRecipients = (
  requests: ReadonlyArray<PushRequest>,
  max: number = MAX_RECIPIENTS_PER_REQUEST
): ReadonlyArray<ReadonlyArray<Recipient>> => {
  const chunks: Array<Array<Recipient>> = []
  let current: Array<Recipient> = []

  requests.forEach((request, notification) => {
    const recipients = request.tokens
      .filter((token) => token.platform === "expo")
      .map((token) => ({ notification, token }))

    if (current.length > 0 && current.length + recipients.length > max) {
      chunks.push(current)
      current = []
    }
    for (const recipient of recipients) {
      if (current.length === max) {
        chunks.push(current)
        current = []
      }
      current.push(recipient)
    }
  })

  if (current.length > 0) {
    chunks.push(current)
  }
  return chunks
}

const wrongPlatform = (token: PushTokenRow): TokenDelivery => ({
  tokenId: token.id,
  outcome: "failed",
  error: new PushError({
    provider: PROVIDER,
    reason: "invalid_token",
    message: `a ${token.platform} token cannot be sent through Expo`
  })
})

interface ChunkAnswer {
  readonly recipients: ReadonlyArray<Recipient>
  readonly answer: Either.Either<ReadonlyArray<TokenDelivery>, PushError>
}

/** The answers of every request, put back together per notification in token order. */
const assemble = (
  requests: ReadonlyArray<PushRequest>,
  chunks: ReadonlyArray<ChunkAnswer>
): ReadonlyArray<Either.Either<ReadonlyArray<TokenDelivery>, PushError>> => {
  const byToken = new Map<string, TokenDelivery>()
  const refused = new Map<number, PushError>()

  for (const { recipients, answer } of chunks) {
    if (Either.isLeft(answer)) {
      for (const recipient of recipients) {
        refused.set(recipient.notification, answer.left)
      }
    } else {
      for (const delivery of answer.right) {
        byToken.set(delivery.tokenId, delivery)
      }
    }
  }

  return requests.map((request, notification) => {
    const error = refused.get(notification)
    if (error !== undefined) {
      return Either.left(error)
    }
    return Either.right(request.tokens.map((token) => byToken.get(token.id) ?? wrongPlatform(token)))
  })
}

const authHeaders = (options: ExpoOptions): Record<string, string> => {
  const headers: Record<string, string> = { "content-type": "application/json", accept: "application/json" }

  if (Option.isSome(options.accessToken)) {
    headers.authorization = `Bearer ${Redacted.value(options.accessToken.value)}`
  }
  return headers
}

const messagesOf = (requests: ReadonlyArray<PushRequest>, recipients: ReadonlyArray<Recipient>): string =>
  JSON.stringify(
    recipients.map(({ notification, token }) => {
      const { content } = requests[notification]
      return { to: Redacted.value(token.token), title: content.title, body: content.body, data: content.data }
    })
  )

const failEach = (recipients: ReadonlyArray<Recipient>, error: PushError): ReadonlyArray<TokenDelivery> =>
  recipients.map(({ token }) => ({ tokenId: token.id, outcome: "failed", error }))

/**
 * One request's answer, per recipient. Only refused credentials fail the request as a whole;
 * any other failure (busy, down, slow, malformed) becomes a failure of each of its tokens, which
 * a retry may cure.
 */
const answerOfChunk = (recipients: ReadonlyArray<Recipient>, answer: HttpAnswer) => {
  if (answer.status === 401 || answer.status === 403) {
    return Effect.fail(requestError(answer))
  }
  if (!isSuccess(answer.status)) {
    return Effect.succeed(failEach(recipients, requestError(answer)))
  }

  return Option.match(Schema.decodeUnknownOption(SendResponse)(answer.body), {
    onSome: ({ data }) =>
      data.length === recipients.length
        ? Effect.succeed(recipients.map(({ token }, index) => deliveryOfTicket(token.id, data[index])))
        : Effect.succeed(
            failEach(
              recipients,
              unexpectedAnswer(`Expo answered ${data.length} tickets for ${recipients.length} messages`)
            )
          ),
    onNone: () => Effect.succeed(failEach(recipients, unexpectedAnswer("Expo answered without tickets")))
  })
}

const unexpectedAnswer = (message: string) => new PushError({ provider: PROVIDER, reason: "unknown", message })

// ---------------------------------------------------------------------------------------------
// Receipts
// ---------------------------------------------------------------------------------------------

const emptyCheck: ReceiptCheck = { revokeTokenIds: [], deliveredTokenIds: [], failed: [], pending: [] }

const combine = (a: ReceiptCheck, b: ReceiptCheck): ReceiptCheck => ({
  revokeTokenIds: [...a.revokeTokenIds, ...b.revokeTokenIds],
  deliveredTokenIds: [...a.deliveredTokenIds, ...b.deliveredTokenIds],
  failed: [...a.failed, ...b.failed],
  pending: [...a.pending, ...b.pending]
})

const checkOf = (tickets: ReadonlyArray<ExpoTicket>, receipts: typeof ReceiptsResponse.Type): ReceiptCheck => {
  const check = {
    revokeTokenIds: [] as Array<string>,
    deliveredTokenIds: [] as Array<string>,
    failed: [] as Array<{ readonly tokenId: string; readonly error: PushError }>,
    pending: [] as Array<ExpoTicket>
  }

  for (const ticket of tickets) {
    const receipt = receipts.data[ticket.ticketId]

    if (receipt === undefined) {
      check.pending.push(ticket)
    } else if (receipt.status === "ok") {
      check.deliveredTokenIds.push(ticket.tokenId)
    } else if (receipt.details?.error === "DeviceNotRegistered") {
      check.revokeTokenIds.push(ticket.tokenId)
    } else {
      check.failed.push({ tokenId: ticket.tokenId, error: ticketError(receipt.details?.error) })
    }
  }
  return check
}

// ---------------------------------------------------------------------------------------------
// The provider
// ---------------------------------------------------------------------------------------------

export const make = (options: ExpoOptions): Effect.Effect<ExpoPushApi> =>
  Effect.gen(function* () {
    const limiter = yield* makeRequestLimiter(options.limits)

    const postTo = (path: string, body: string) =>
      limiter.limit(
        post({
          provider: PROVIDER,
          target: "Expo",
          url: `${options.baseUrl}${path}`,
          headers: authHeaders(options),
          body,
          timeoutMs: options.requestTimeoutMs
        })
      )

    const sendChunk = (requests: ReadonlyArray<PushRequest>, recipients: ReadonlyArray<Recipient>) =>
      postTo("/--/api/v2/push/send", messagesOf(requests, recipients)).pipe(
        Effect.matchEffect({
          onFailure: (error) => Effect.succeed(failEach(recipients, error)),
          onSuccess: (answer) => answerOfChunk(recipients, answer)
        }),
        Effect.either,
        Effect.map((answer): ChunkAnswer => ({ recipients, answer }))
      )

    const sendBatch = (requests: ReadonlyArray<PushRequest>) =>
      Effect.forEach(packRecipients(requests), (recipients) => sendChunk(requests, recipients), {
        concurrency: "unbounded"
      }).pipe(Effect.map((chunks) => assemble(requests, chunks)))

    const checkChunk = (tickets: ReadonlyArray<ExpoTicket>) =>
      Effect.gen(function* () {
        const answer = yield* postTo(
          "/--/api/v2/push/getReceipts",
          JSON.stringify({ ids: tickets.map((ticket) => ticket.ticketId) })
        )
        if (!isSuccess(answer.status)) {
          return yield* Effect.fail(requestError(answer))
        }

        const receipts = yield* Schema.decodeUnknown(ReceiptsResponse)(answer.body).pipe(
          Effect.mapError(() => unexpectedAnswer("Expo answered without receipts"))
        )
        return checkOf(tickets, receipts)
      })

    return {
      name: PROVIDER,
      platforms: ["expo"],
      send: (request) => Effect.flatMap(sendBatch([request]), ([answer]) => answer),
      sendBatch,
      ticketsOf,
      checkReceipts: (tickets) =>
        Effect.forEach(Arr.chunksOf(tickets, MAX_RECEIPTS_PER_REQUEST), checkChunk, { concurrency: "unbounded" }).pipe(
          Effect.map((checks) => checks.reduce(combine, emptyCheck))
        )
    }
  })

/** Provides the Expo provider as the program's PushProvider, with `sendBatch`, `ticketsOf` and `checkReceipts`. */
export const layer = (options: ExpoOptions): Layer.Layer<PushProvider> => Layer.effect(PushProvider, make(options))
