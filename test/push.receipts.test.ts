import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Duration, Effect, Layer, Redacted, Schema } from "effect"
import { PushReceiptsChecked, PushReceiptsCheckFailed } from "../src/domain/LogEvents.ts"
import { PushProvider } from "../src/services/PushProvider.ts"
import * as SupabaseStore from "../src/services/SupabaseStore.ts"
import { describeEachDatabase, describeServer, postgresLayer, TestDatabase } from "./support/databases.ts"
import { type ExpoScript, startExpo, ticketIdOf } from "./support/expo.ts"
import { postgrestStandIn } from "./support/postgrest.ts"
import { dueMentors, resetDatabase, runOnce, runOptions } from "./support/runs.ts"

/**
 * Expo's ticket says only that it accepted a message; its receipt, read later, says whether the device is still
 * there. A run stores the tickets of what it sent, and a later run reads their receipts and revokes gone devices.
 */

const tokens = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  return yield* sql<{ id: string; token: string; revoked: boolean }>`
    select id::text as id, token, revoked_at is not null as revoked from push_tokens order by id`
})

const storedTickets = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  return yield* sql<{ ticket_id: string; token_id: string; notification_id: string | null }>`
    select ticket_id, token_id::text as token_id, notification_id::text as notification_id
    from push_receipts order by token_id`
})

const receipt = {
  ok: { status: "ok" },
  gone: { status: "error", message: "gone", details: { error: "DeviceNotRegistered" } }
}

/** The Expo stand-in as the run's push provider. */
const expoProvider = (script: ExpoScript) =>
  Effect.map(startExpo(script), (expo) => ({ ...expo, layer: Layer.succeed(PushProvider, expo.provider) }))

// The first run waits the default fifteen minutes, so it asks for nothing; later runs wait not at all.
const checkAtOnce = () => runOptions({ receiptDelayMs: 0 })

describeEachDatabase("Expo receipts checked by a later run", (it) => {
  it.scoped("revokes only the token whose receipt says its device is gone, and forgets the tickets", () =>
    Effect.gen(function* () {
      yield* resetDatabase
      yield* dueMentors(3)
      const [gone, ...kept] = yield* tokens
      const goneTicket = ticketIdOf(gone?.token ?? "")
      const expo = yield* expoProvider({
        receipts: (ids) => Object.fromEntries(ids.map((id) => [id, id === goneTicket ? receipt.gone : receipt.ok]))
      })

      const sending = yield* runOnce(runOptions(), expo.layer)
      const stored = yield* storedTickets

      expect(sending.summary.stats.dispatched).toBe(3)
      expect(expo.receiptRequests).toEqual([])
      expect(stored.map((ticket) => [ticket.ticket_id, ticket.token_id])).toEqual(
        [gone, ...kept].map((token) => [ticketIdOf(token?.token ?? ""), token?.id])
      )
      expect(stored.every((ticket) => ticket.notification_id !== null)).toBe(true)

      const checking = yield* runOnce(checkAtOnce(), expo.layer)

      expect(checking.summary.outcome).toBe("completed")
      expect(expo.receiptRequests.map((ids) => [...ids].sort())).toEqual([stored.map((t) => t.ticket_id).sort()])
      expect((yield* tokens).filter((token) => token.revoked).map((token) => token.id)).toEqual([gone?.id])
      expect(yield* storedTickets).toEqual([])
      const [checked] = checking.events("push_receipts_checked")
      expect(Schema.decodeUnknownSync(PushReceiptsChecked)(checked)).toEqual({
        checked: 3,
        revoked: 1,
        pending: 0,
        failed: 0
      })
    })
  )

  it.scoped("keeps the tickets for later when Expo cannot answer, and the run still completes", () =>
    Effect.gen(function* () {
      yield* resetDatabase
      yield* dueMentors(2)
      const [answered, later] = yield* tokens
      let down = true
      const expo = yield* expoProvider({
        getReceipts: () => (down ? { status: 503, body: { errors: [{ code: "UNAVAILABLE" }] } } : undefined),
        receipts: () => ({ [ticketIdOf(answered?.token ?? "")]: receipt.ok })
      })
      yield* runOnce(runOptions(), expo.layer)

      const failing = yield* runOnce(checkAtOnce(), expo.layer)

      expect(failing.summary.outcome).toBe("completed")
      expect(expo.receiptRequests).toHaveLength(1)
      expect(yield* storedTickets).toHaveLength(2)
      const [failure] = failing.events("push_receipts_check_failed")
      expect(failure).toMatchObject({ level: "warn" })
      expect(Schema.decodeUnknownSync(PushReceiptsCheckFailed)(failure)).toMatchObject({ tickets: 2 })

      down = false
      const recovered = yield* runOnce(checkAtOnce(), expo.layer)

      // Only the ticket with a receipt is forgotten; the other is asked about again by a later run.
      expect((yield* storedTickets).map((ticket) => ticket.token_id)).toEqual([later?.id])
      expect(recovered.events("push_receipts_checked")).toEqual([
        expect.objectContaining({ checked: 2, revoked: 0, pending: 1, failed: 0 })
      ])
      expect((yield* tokens).some((token) => token.revoked)).toBe(false)
    })
  )
})

describeServer("the Supabase store's ticket calls", () => {
  layer(postgresLayer, { timeout: Duration.minutes(1), excludeTestServices: true })((it) => {
    it.scoped("store, answer and settle tickets through the Data API", () =>
      Effect.gen(function* () {
        yield* resetDatabase
        yield* dueMentors(2)
        const [gone, kept] = yield* tokens
        const standIn = yield* postgrestStandIn({ databaseUrl: (yield* TestDatabase).url, maxRows: 1000 })
        const store = yield* SupabaseStore.make({
          url: standIn.url,
          key: Redacted.make(standIn.serviceKey),
          maxRows: 1000,
          requestTimeoutMs: 10_000
        })
        const tickets = [gone, kept].map((token) => ({
          ticketId: `ticket-${token?.id}`,
          tokenId: token?.id ?? "",
          notificationId: null
        }))

        // A token deleted since the send is skipped, not a failure of the others.
        yield* store.recordTickets([...tickets, { ticketId: "ticket-orphan", tokenId: "999999", notificationId: null }])
        const due = yield* store.dueTickets(0, 10)
        yield* store.settleTickets(
          due.map((ticket) => ticket.ticketId),
          [gone?.id ?? ""]
        )

        const byTicket = (a: { ticketId: string }, b: { ticketId: string }) => a.ticketId.localeCompare(b.ticketId)
        expect([...due].sort(byTicket)).toEqual(
          tickets.map(({ ticketId, tokenId }) => ({ ticketId, tokenId })).sort(byTicket)
        )
        expect((yield* tokens).filter((token) => token.revoked).map((token) => token.id)).toEqual([gone?.id])
        expect(yield* storedTickets).toEqual([])
        expect(standIn.calls.filter((call) => call.status >= 300)).toEqual([])
      })
    )
  })
})
