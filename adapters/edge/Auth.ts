import { Effect, Redacted } from "effect"

/**
 * The cron job's credential: `Authorization: Bearer <SCHEDULER_CRON_SECRET>`. The comparison takes
 * the same time wherever the given token differs from the secret and whatever its length: both are
 * hashed first, and the digests compared byte by byte without stopping early.
 */

const encoder = new TextEncoder()

const sha256 = async (text: string): Promise<Uint8Array> =>
  new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)))

/** Equal-length byte strings compared in time independent of their contents. */
export const constantTimeEqual = (a: Uint8Array, b: Uint8Array): boolean => {
  if (a.length !== b.length) return false

  let difference = 0
  for (let index = 0; index < a.length; index++) {
    difference |= (a[index] as number) ^ (b[index] as number)
  }
  return difference === 0
}

/** The token of a `Bearer` Authorization header; undefined for a missing header or another scheme. */
export const bearerToken = (header: string | null): string | undefined => /^Bearer +(\S+) *$/i.exec(header ?? "")?.[1]

/** Whether the Authorization header carries the secret. */
export const isAuthorized = (header: string | null, secret: Redacted.Redacted<string>): Effect.Effect<boolean> =>
  Effect.promise(async () => {
    const token = bearerToken(header)
    // Hashed even when there is no token, so that a missing one costs the same time as a wrong one.
    const [given, expected] = await Promise.all([sha256(token ?? ""), sha256(Redacted.value(secret))])
    return constantTimeEqual(given, expected) && token !== undefined
  })
