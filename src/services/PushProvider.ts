import { Context, type Effect, type Either } from "effect"
import type { PushError } from "../domain/Errors.ts"
import type { PushTokenRow } from "../domain/Evaluation.ts"
import type { PushContent } from "../domain/Message.ts"
import type { PushTicket, ReceiptCheck } from "../domain/Receipts.ts"
import type { ScenarioType } from "../domain/Scenario.ts"

export type { PushTicket, ReceiptCheck } from "../domain/Receipts.ts"

/** One notification for one mentor, to be delivered to each of their live devices. */
export interface PushRequest {
  readonly notificationId: string
  readonly userId: string
  readonly scenarioType: ScenarioType
  readonly content: PushContent
  readonly tokens: ReadonlyArray<PushTokenRow>
}

/** What the provider said about one device: delivered, gone for good (revoke it), or failed for now. */
export type TokenDelivery =
  | { readonly tokenId: string; readonly outcome: "delivered" }
  | { readonly tokenId: string; readonly outcome: "unregistered" }
  | { readonly tokenId: string; readonly outcome: "failed"; readonly error: PushError }

export interface PushProviderApi {
  readonly name: string
  /** The device platforms it can reach; a mentor's tokens of other platforms are not sent to. All when absent. */
  readonly platforms?: ReadonlyArray<PushTokenRow["platform"]>
  /** Fails only when nothing at all could be attempted; per-device failures are in the answer. */
  readonly send: (request: PushRequest) => Effect.Effect<ReadonlyArray<TokenDelivery>, PushError>
  /**
   * Sends many notifications in as few requests as the provider allows, answering for each in order.
   * Providers without a batch API leave it out and are called once per notification.
   */
  readonly sendBatch?: (
    requests: ReadonlyArray<PushRequest>
  ) => Effect.Effect<ReadonlyArray<Either.Either<ReadonlyArray<TokenDelivery>, PushError>>>
  /**
   * Which of these notifications the provider is known to have delivered. Only a provider that can
   * tell (the outbox can, FCM and Expo cannot) offers it; after a crash mid-send it decides whether a
   * notification is sent again or given up as of unknown outcome.
   */
  readonly confirmDelivered?: (notificationIds: ReadonlyArray<string>) => Effect.Effect<ReadonlySet<string>, PushError>
  /**
   * The tickets of the deliveries of one send, for a provider whose answer to a send only says it accepted the
   * message (Expo): whether the device got it is asked for later, by ticket, with `checkReceipts`. The two come
   * together: a provider offers both or neither.
   */
  readonly ticketsOf?: (deliveries: ReadonlyArray<TokenDelivery>) => ReadonlyArray<PushTicket>
  /** What the receipts of earlier sends say: which tokens to revoke, which tickets to ask about again. */
  readonly checkReceipts?: (tickets: ReadonlyArray<PushTicket>) => Effect.Effect<ReceiptCheck, PushError>
}

export class PushProvider extends Context.Tag("scenario-scheduler/PushProvider")<PushProvider, PushProviderApi>() {}
