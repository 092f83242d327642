import { Effect } from "effect"
import { errorType } from "../domain/Errors.ts"
import type { PushTicket, ReceiptCheck } from "../domain/Receipts.ts"
import { emit } from "../services/Logger.ts"
import { PushProvider } from "../services/PushProvider.ts"
import { Store } from "../services/Store.ts"

/** Tickets checked per run: one receipts request to Expo, one answer from the Data API at its default cap. */
export const receiptsPerRun = 1000

export interface ReceiptOptions {
  /** How old a ticket must be before its receipt is asked for. */
  readonly delayMs: number
}

/** The tickets that have an answer: every checked one but those still without a receipt. */
const answeredTickets = (due: ReadonlyArray<PushTicket>, check: ReceiptCheck): ReadonlyArray<string> => {
  const pending = new Set(check.pending.map((ticket) => ticket.ticketId))
  return due.filter((ticket) => !pending.has(ticket.ticketId)).map((ticket) => ticket.ticketId)
}

/**
 * Asks the provider for the receipts of tickets earlier runs stored, revokes the tokens of the devices it reports
 * gone and forgets the tickets it answered for. A provider without receipts makes this nothing. When the provider
 * cannot answer, the tickets stay for a later run and this run goes on.
 */
export const checkReceipts = (options: ReceiptOptions) =>
  Effect.gen(function* () {
    const provider = yield* PushProvider
    const check = provider.checkReceipts
    if (check === undefined) return

    const store = yield* Store
    const due = yield* store.dueTickets(Math.ceil(options.delayMs / 1000), receiptsPerRun)
    if (due.length === 0) return

    const answer = yield* Effect.either(check(due))
    if (answer._tag === "Left") {
      return yield* emit("warn", "push_receipts_check_failed", {
        tickets: due.length,
        error_type: errorType(answer.left),
        error_message: answer.left.message
      })
    }

    yield* store.settleTickets(answeredTickets(due, answer.right), answer.right.revokeTokenIds)
    yield* emit("info", "push_receipts_checked", {
      checked: due.length,
      revoked: answer.right.revokeTokenIds.length,
      pending: answer.right.pending.length,
      failed: answer.right.failed.length
    })
  })
