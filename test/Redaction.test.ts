import { describe, expect, it } from "@effect/vitest"
import { Cause, Data, FastCheck as fc, Redacted } from "effect"
import { isSensitiveKey, sanitize, sanitizeFields, scrubText } from "../src/domain/Redaction.ts"

class ProviderError extends Data.TaggedError("ProviderError")<{ readonly message: string }> {}

const secrets: ReadonlyArray<{ readonly label: string; readonly text: string; readonly secret: string }> = [
  {
    label: "an email",
    text: "mentor ola.nordmann+test@example.no could not be reached",
    secret: "ola.nordmann+test@example.no"
  },
  { label: "a Norwegian phone number", text: "sms to +47 912 34 567 failed", secret: "912 34 567" },
  { label: "a US phone number", text: "call +1 (555) 123-4567 later", secret: "123-4567" },
  { label: "a phone number with 00 prefix", text: "number 0047 912 34 567", secret: "912 34 567" },
  { label: "an unbroken phone number", text: "phone=91234567", secret: "91234567" },
  { label: "a dashed phone number", text: "reach 555-123-4567", secret: "555-123-4567" },
  { label: "a bearer token", text: "header Authorization: Bearer abc.DEF_123-xyz rejected", secret: "abc.DEF_123-xyz" },
  {
    label: "a JWT",
    text: "token eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJlLXBhcnQ expired",
    secret: "eyJzdWIiOiIxMjMifQ"
  },
  {
    label: "an FCM registration token",
    text: "unregistered dXk9aQqlTTmZ-2n1nc1Xw:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx4bGGN8zpq7MxYoOL2eqVxrIr1j7F2QPNL0cjWlk6a6PVbCtnyaKIFdTHi28cpAE9MqYv0dTsM1LmPkW5AvyPuB9cHNVsgpOxgPbiVuLB",
    secret: "APA91bHun4MxP5egoKMwt2KZFBaFUH"
  },
  {
    label: "an Expo push token",
    text: "DeviceNotRegistered: ExponentPushToken[xxxxxxxxxxxxxxxxxxxxxx]",
    secret: "xxxxxxxxxxxxxxxxxxxxxx"
  },
  { label: "a short Expo push token", text: "ticket for ExpoPushToken[abc123DEF456] failed", secret: "abc123DEF456" },
  {
    label: "a PEM private key",
    text: 'credentials {"private_key":"-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\\n-----END PRIVATE KEY-----\\n"}',
    secret: "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7"
  },
  {
    label: "a Postgres URL password",
    text: "connect postgres://postgres:s3cr3t-pw@db.example.com:5432/postgres failed",
    secret: "s3cr3t-pw"
  },
  {
    label: "a key=value password",
    text: "host=127.0.0.1 user=postgres password=hunter2 dbname=app",
    secret: "hunter2"
  },
  {
    label: "a long base64 run",
    text: `service key ${"QWxhZGRpbjpvcGVuIHNlc2FtZQ".repeat(5)} leaked`,
    secret: "QWxhZGRpbjpvcGVuIHNlc2FtZQQWxhZGRpbjpvcGVuIHNlc2FtZQ"
  }
]

const keptAsIs: ReadonlyArray<{ readonly label: string; readonly text: string }> = [
  { label: "a UUID", text: "user 123e4567-e89b-12d3-a456-426614174000 evaluated" },
  { label: "a UUID made of digits", text: "user 12345678-1234-1234-1234-123456789012 evaluated" },
  { label: "an ISO date", text: "evaluation_date 2024-01-15 for chapter" },
  { label: "an ISO timestamp", text: "started at 2024-01-15T10:30:00.000Z, resumed 2024-01-15T10:35:12+01:00" },
  { label: "a SQL timestamp", text: "created 2024-01-15 10:30:00" },
  { label: "counts and durations", text: "evaluated 500 of 12000 mentors in 1234 ms, page 3, budget 120000ms" },
  { label: "versions and addresses", text: "pglite 0.2.17 at 127.0.0.1:5432, ratio 3.14159265358979" }
]

describe("scrubText", () => {
  it.each(secrets)("masks $label", ({ text, secret }) => {
    const scrubbed = scrubText(text)

    expect(scrubbed).not.toContain(secret)
    expect(scrubbed).toMatch(/\[(email|phone|token|jwt|key|redacted)\]/)
  })

  it("names what it masked", () => {
    expect(scrubText("a@b.no +47 912 34 567 eyJa.eyJb.c Bearer x")).toBe("[email] [phone] [jwt] Bearer [token]")
  })

  it("keeps the user and host of a database URL", () => {
    expect(scrubText("postgresql://app:pw@localhost/db")).toBe("postgresql://app:[redacted]@localhost/db")
  })

  it.each(keptAsIs)("keeps $label", ({ text }) => {
    expect(scrubText(text)).toBe(text)
  })

  it("masks a private key even when the message was cut before its end", () => {
    expect(scrubText("key: -----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA")).toBe("key: [key]")
  })

  it("masks an address that follows another with only a quote between them", () => {
    expect(scrubText("bob@example.com'alice@example.org")).not.toContain("alice")
  })

  it("scans a long text without any separator and still finds what follows it", () => {
    const scrubbed = scrubText(`${"a".repeat(50_000)} kari@example.no`)

    expect(scrubbed.endsWith(" [email]")).toBe(true)
  })

  it.prop(
    "never lets an email through, whatever surrounds it",
    {
      before: fc.string(),
      separator: fc.constantFrom(" ", "\n", ", ", ": ", "<", "(", "'", '"', "="),
      email: fc.emailAddress(),
      after: fc.string()
    },
    ({ before, separator, email, after }) => {
      expect(scrubText(`${before}${separator}${email}${separator}${after}`)).not.toContain(email)
    },
    { fastCheck: { numRuns: 1_000 } }
  )

  it.prop(
    "never lets a Norwegian mobile number through",
    { digits: fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 7, maxLength: 7 }), text: fc.string() },
    ({ digits, text }) => {
      const number = `+47 9${digits.slice(0, 2).join("")} ${digits.slice(2, 4).join("")} ${digits.slice(4).join("")}`

      expect(scrubText(`${text} ${number} ${text}`)).not.toContain(number.slice(4))
    }
  )

  it.prop("keeps UUIDs and timestamps", { id: fc.uuid(), at: fc.date({ noInvalidDate: true }) }, ({ id, at }) => {
    const text = `user ${id} at ${at.toISOString()}`

    expect(scrubText(text)).toBe(text)
  })
})

describe("isSensitiveKey", () => {
  const sensitive = [
    "email",
    "phone",
    "name",
    "full_name",
    "first_name",
    "last_name",
    "token",
    "push_token",
    "access_token",
    "authorization",
    "password",
    "secret",
    "api_key",
    "key",
    "private_key",
    "service_account",
    "jwt",
    "cookie",
    "Email",
    "FULL-NAME",
    "pushToken",
    "x-api-key",
    "mentor_email",
    "tokens"
  ]
  const notSensitive = [
    "event",
    "scenario_type",
    "error_type",
    "user_id",
    "invocation_id",
    "organisation_id",
    "resume_cursor",
    "component",
    "scenarios",
    "error_message",
    "idempotency_key",
    "organisation_name",
    "tokens_revoked",
    "no_push_token",
    "duration_ms"
  ]

  it.each(sensitive)("treats %s as sensitive", (key) => {
    expect(isSensitiveKey(key)).toBe(true)
  })

  it.each(notSensitive)("treats %s as safe", (key) => {
    expect(isSensitiveKey(key)).toBe(false)
  })
})

describe("sanitize", () => {
  it("redacts sensitive fields at any depth and scrubs the others", () => {
    const value = {
      user_id: "123e4567-e89b-12d3-a456-426614174000",
      mentor: { full_name: "Kari Nordmann", contact: { email: "kari@example.no" } },
      note: "ask kari@example.no"
    }

    expect(sanitize(value)).toEqual({
      user_id: "123e4567-e89b-12d3-a456-426614174000",
      mentor: { full_name: "[redacted]", contact: { email: "[redacted]" } },
      note: "ask [email]"
    })
  })

  it("cuts long strings and says by how much", () => {
    expect(sanitize("x".repeat(50), 10)).toBe("xxxxxxxxxx…[truncated 40 chars]")
  })

  it("writes errors as their name and scrubbed message", () => {
    expect(sanitize(new TypeError("no device for a@b.no"))).toEqual({
      name: "TypeError",
      message: "no device for [email]"
    })
    expect(sanitize(new ProviderError({ message: "Bearer abc" }))).toEqual({
      name: "ProviderError",
      message: "Bearer [token]"
    })
    expect(sanitize({ _tag: "Timeout", message: "after 5000 ms" })).toEqual({
      name: "Timeout",
      message: "after 5000 ms"
    })
  })

  it("follows an error's cause but not its other fields", () => {
    const error = Object.assign(new Error("insert failed", { cause: new Error("duplicate key") }), {
      detail: "Key (email)=(kari@example.no) already exists"
    })

    expect(sanitize(error)).toEqual({
      name: "Error",
      message: "insert failed",
      cause: { name: "Error", message: "duplicate key" }
    })
  })

  it("never reveals a Redacted value", () => {
    const rendered = JSON.stringify(sanitize({ url: Redacted.make("s3cret"), list: [Redacted.make("s3cret")] }))

    expect(rendered).not.toContain("s3cret")
    expect(rendered).toContain("[redacted]")
  })

  it("turns values JSON cannot hold into ones it can", () => {
    const value = {
      count: 12n,
      at: new Date("2024-01-15T10:30:00.000Z"),
      invalid: new Date("not a date"),
      table: new Map([["a", 1]]),
      set: new Set(["x", "y"]),
      callback: () => 1,
      symbol: Symbol("s"),
      missing: undefined,
      list: [undefined, 1],
      ratio: Number.NaN
    }

    expect(sanitize(value)).toEqual({
      count: "12",
      at: "2024-01-15T10:30:00.000Z",
      invalid: null,
      table: { a: 1 },
      set: ["x", "y"],
      list: [null, 1],
      ratio: "NaN"
    })
  })

  it("writes a shared value twice and a cycle once", () => {
    const shared = { page: 1 }
    const cyclic: Record<string, unknown> = { id: "a" }
    cyclic.self = cyclic

    expect(sanitize({ first: shared, second: shared, cyclic })).toEqual({
      first: { page: 1 },
      second: { page: 1 },
      cyclic: { id: "a", self: "[circular]" }
    })
  })

  it("bounds depth and array length", () => {
    let nested: unknown = "bottom"
    for (let i = 0; i < 20; i++) {
      nested = { nested }
    }
    const rendered = JSON.stringify(sanitize({ nested, list: Array.from({ length: 1_000 }, (_, i) => i) }))

    expect(rendered).toContain('"[depth]"')
    expect(rendered).not.toContain("bottom")
    expect(rendered).toContain("…[900 more items]")
  })

  it("bounds the number of keys of a nested object, but not of top-level log fields", () => {
    const wide = Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`field_${i}`, i]))

    expect(Object.keys(sanitize(wide) as object)).toHaveLength(201)
    expect(Object.keys(sanitizeFields(Object.entries(wide)))).toHaveLength(500)
  })

  it("renders a Cause briefly and scrubbed", () => {
    const cause = Cause.sequential(
      Cause.fail(new ProviderError({ message: "to a@b.no" })),
      Cause.die(new Error("boom"))
    )

    expect(sanitize({ cause })).toEqual({ cause: "ProviderError: to [email]; defect Error: boom" })
  })

  it.prop(
    "always yields a value JSON.stringify renders",
    [
      fc.anything({
        withBigInt: true,
        withDate: true,
        withMap: true,
        withSet: true,
        withNullPrototype: true,
        withTypedArray: true,
        withSparseArray: true
      })
    ],
    ([value]) => {
      expect(() => JSON.stringify(sanitize(value))).not.toThrow()
    }
  )
})
