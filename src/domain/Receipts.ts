import type { PushError } from "./Errors.ts"

/**
 * What a provider that answers with tickets (Expo) needs to learn later whether a message reached
 * the device: the ticket, and the token it was for, so that a gone device's token can be revoked.
 */
export interface PushTicket {
  readonly tokenId: string
  readonly ticketId: string
}

/** A ticket as a run stores it, with the notification it was sent for. */
export interface SentTicket extends PushTicket {
  readonly notificationId: string | null
}

/** What the receipts of earlier sends say. */
export interface ReceiptCheck {
  /** Devices the provider reports as no longer registered: revoke these tokens. */
  readonly revokeTokenIds: ReadonlyArray<string>
  readonly deliveredTokenIds: ReadonlyArray<string>
  /** Receipts that report another failure; these tokens are kept. */
  readonly failed: ReadonlyArray<{ readonly tokenId: string; readonly error: PushError }>
  /** Tickets without a receipt yet: ask again in a later run. */
  readonly pending: ReadonlyArray<PushTicket>
}
