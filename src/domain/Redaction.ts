import { Cause, Chunk, Redacted } from "effect"

/**
 * What may reach a log line. Personal data (names, emails, phone numbers) and secrets (push tokens,
 * keys, JWTs, passwords) are masked twice: by the key they are stored under, and by their shape
 * inside any text, because they also arrive inside messages from the database or a provider.
 */

/** Strings longer than this are cut by `sanitize` unless told otherwise. */
export const DEFAULT_MAX_STRING_LENGTH = 2_000

const MAX_DEPTH = 8
const MAX_ARRAY_ITEMS = 100
const MAX_OBJECT_KEYS = 200
const MAX_KEY_LENGTH = 200

// Text beyond this is not scanned at all: scrubbing stays cheap even for a pathological message.
const MAX_SCANNED_LENGTH = 100_000

const TRUNCATION_MARKER = /…\[truncated (\d+) chars\]$/

// ---------------------------------------------------------------------------------------------
// Text
// ---------------------------------------------------------------------------------------------

const PEM_PRIVATE_KEY =
  /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)|-----END [A-Z0-9 ]*PRIVATE KEY-----/g

// The lookbehind keeps the scan linear: a scheme can only start where a word starts.
const URL_PASSWORD = /(?<![a-z0-9+.-])([a-z][a-z0-9+.-]*:\/\/[^\s:/?#@]*:)[^\s@/?#]+@/gi

const KEY_VALUE_SECRET = /\b(password|passwd|pwd|secret|token|api[_-]?key|access[_-]?token|sslkey)=([^\s&;,'"]+)/gi

const AUTH_SCHEME = /\b(Bearer|Basic)\s+[^\s"',;]+/gi

const EXPO_TOKEN = /Expo(?:nent)?PushToken\[[^\]\s]*\]?/g

const JWT = /\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g

const FCM_TOKEN = /(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{8,}:[A-Za-z0-9_-]{60,}/g

const EMAIL_LOCAL = "A-Za-z0-9.!#$%&'*+/=?^_`{|}~-"

// No lookbehind: the leftmost match already starts where the local part does, and a lookbehind would
// miss an address that follows another with only a local-part character between them (`a@b.io'c@d.io`).
const EMAIL = new RegExp(`[${EMAIL_LOCAL}]+@[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)*\\.[A-Za-z]{2,}`, "g")

const LONG_TOKEN = /[A-Za-z0-9+/_-]{100,}={0,2}/g

// Identifiers and dates look like digit groups, so phone numbers are only looked for between them.
const PROTECTED_NUMBERS =
  /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?/gi

const PHONE_CANDIDATE = /(?<![\w.+])\+?\(?\d[\d \u00a0()-]{6,22}\d(?!\w|\.\d)/g

const isLongToken = (run: string): boolean => /\d/.test(run) && /[A-Za-z]/.test(run)

const maskPhone = (candidate: string): string => {
  const digits = candidate.replace(/\D/g, "").length
  const separated = /[^\d]/.test(candidate)

  // Written without separators, a phone number has 8 to 12 digits here; longer unbroken runs are
  // versions, epoch milliseconds or ids. With separators (or a +) E.164 allows up to 15.
  if (digits < 8 || (digits > 12 && !separated) || digits > 15) {
    return candidate
  }
  return "[phone]"
}

const scrubPhones = (text: string): string => {
  let result = ""
  let last = 0

  for (const match of text.matchAll(PROTECTED_NUMBERS)) {
    const start = match.index ?? 0
    result += text.slice(last, start).replace(PHONE_CANDIDATE, maskPhone) + match[0]
    last = start + match[0].length
  }

  return result + text.slice(last).replace(PHONE_CANDIDATE, maskPhone)
}

// Cutting mid-word could leave half an email or token that no longer matches a pattern.
const limitScanned = (text: string): string => {
  if (text.length <= MAX_SCANNED_LENGTH) {
    return text
  }

  const head = text.slice(0, MAX_SCANNED_LENGTH)
  const lastSpace = head.search(/\s\S*$/)
  const kept = lastSpace > 0 ? head.slice(0, lastSpace) : ""
  return `${kept}…[truncated ${text.length - kept.length} chars]`
}

/**
 * Masks personal data and secrets inside arbitrary text: emails, phone numbers, bearer tokens,
 * JWTs, FCM and Expo push tokens, long base64 runs, PEM private keys and passwords in URLs or
 * `key=value` connection strings. UUIDs, ISO dates and timestamps and numbers shorter than eight
 * digits are left as they are.
 */
export const scrubText = (text: string): string =>
  scrubPhones(
    limitScanned(text)
      .replace(PEM_PRIVATE_KEY, "[key]")
      .replace(URL_PASSWORD, "$1[redacted]@")
      .replace(KEY_VALUE_SECRET, "$1=[redacted]")
      .replace(AUTH_SCHEME, "$1 [token]")
      .replace(EXPO_TOKEN, "[token]")
      .replace(JWT, "[jwt]")
      .replace(FCM_TOKEN, "[token]")
      .replace(EMAIL, "[email]")
      .replace(LONG_TOKEN, (run) => (isLongToken(run) ? "[token]" : run))
  )

/**
 * Cuts a string to `max` characters and says how much was left out. A string already cut keeps
 * one marker that counts everything removed.
 */
export const truncate = (text: string, max: number): string => {
  const marker = TRUNCATION_MARKER.exec(text)
  const base = marker ? text.slice(0, marker.index) : text
  const removedBefore = marker ? Number(marker[1]) : 0

  if (base.length <= max) {
    return text
  }
  return `${base.slice(0, max)}…[truncated ${removedBefore + base.length - max} chars]`
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

const NEVER_SENSITIVE = new Set([
  "event",
  "scenario_type",
  "error_type",
  "user_id",
  "invocation_id",
  "organisation_id",
  "resume_cursor",
  "component",
  "scenarios",
  "idempotency_key",
  "cache_key",
  "sort_key",
  "partition_key",
  "lock_key"
])

const SENSITIVE_NAMES = new Set([
  "name",
  "fullname",
  "firstname",
  "lastname",
  "surname",
  "username",
  "displayname",
  "email",
  "mail",
  "phone",
  "mobile",
  "msisdn",
  "tel",
  "token",
  "pushtoken",
  "accesstoken",
  "refreshtoken",
  "auth",
  "authorization",
  "password",
  "passwd",
  "pwd",
  "secret",
  "apikey",
  "key",
  "privatekey",
  "serviceaccount",
  "jwt",
  "cookie",
  "dsn",
  "credentials"
])

const SENSITIVE_WORDS = new Set([
  "email",
  "emails",
  "phone",
  "phones",
  "token",
  "tokens",
  "password",
  "passwd",
  "secret",
  "secrets",
  "authorization",
  "jwt",
  "cookie",
  "cookies",
  "credential",
  "credentials"
])

// A trailing word that describes a count or a kind, not the value itself: `token_count`, `email_verified`.
const NEUTRAL_SUFFIXES = new Set([
  "count",
  "counts",
  "total",
  "type",
  "types",
  "kind",
  "status",
  "platform",
  "provider",
  "id",
  "ids",
  "at",
  "ms",
  "revoked",
  "expired",
  "missing",
  "present",
  "verified",
  "enabled",
  "length"
])

// A leading word that says whether the thing exists, not what it is: `no_push_token`, `has_email`.
const ABSENCE_PREFIXES = new Set(["no", "has", "without", "missing"])

// Names of things that are not people: `organisation_name` or `constraint_name` are safe to log.
const IMPERSONAL_NAME_OWNERS = new Set([
  "organisation",
  "organization",
  "org",
  "chapter",
  "scenario",
  "event",
  "file",
  "table",
  "schema",
  "column",
  "constraint",
  "function",
  "job",
  "provider",
  "service",
  "host",
  "database",
  "db",
  "span",
  "app",
  "platform",
  "error"
])

const normalizeKey = (key: string): string =>
  key
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .toLowerCase()
    .replace(/[\s.-]+/g, "_")
    .replace(/^_+|_+$/g, "")

const isSensitiveName = (words: ReadonlyArray<string>): boolean => {
  const last = words.at(-1)
  return (last === "name" || last === "names") && !IMPERSONAL_NAME_OWNERS.has(words[0] ?? "")
}

/**
 * Whether a field of this name holds personal data or a secret, whatever its value looks like.
 * Case and `_` / `-` / camelCase separators do not matter.
 */
export const isSensitiveKey = (key: string): boolean => {
  const normalized = normalizeKey(key)
  const words = normalized.split("_").filter((word) => word.length > 0)
  const last = words.at(-1) ?? ""

  if (NEVER_SENSITIVE.has(normalized)) {
    return false
  }
  if (SENSITIVE_NAMES.has(words.join("")) || normalized.includes("service_account")) {
    return true
  }
  if (words.length > 1 && (NEUTRAL_SUFFIXES.has(last) || ABSENCE_PREFIXES.has(words[0] ?? ""))) {
    return false
  }

  return words.some((word) => SENSITIVE_WORDS.has(word)) || last === "key" || isSensitiveName(words)
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

/** A count or a flag under a sensitive name (`push_tokens: 3`) is not the secret itself; a phone stored as a number is. */
const mayHoldSecret = (key: string, value: unknown): boolean => {
  if (value === undefined || value === null) return false
  if (typeof value === "boolean") return false
  if (typeof value === "number" || typeof value === "bigint") return /phone|mobile|msisdn|tel/i.test(key)
  return true
}

interface ErrorLike {
  readonly name: string
  readonly message: string
  readonly cause?: unknown
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null

const asErrorLike = (value: unknown): ErrorLike | undefined => {
  if (!isObject(value)) {
    return undefined
  }

  const tag = typeof value._tag === "string" ? value._tag : undefined
  if (!(value instanceof Error) && !(tag !== undefined && typeof value.message === "string")) {
    return undefined
  }

  const name = tag ?? (typeof value.name === "string" && value.name.length > 0 ? value.name : "Error")
  const message = typeof value.message === "string" ? value.message : ""
  return { name, message, cause: value.cause }
}

const describeValue = (value: unknown): string => {
  const error = asErrorLike(value)
  if (error !== undefined) {
    return error.message.length > 0 ? `${error.name}: ${error.message}` : error.name
  }
  if (typeof value === "string") {
    return value
  }
  return JSON.stringify(sanitize(value, 200)) ?? typeof value
}

/**
 * A short, scrubbed account of a Cause for a log line: each failure and defect as
 * `Tag: message`, and whether the fiber was interrupted. No stack traces.
 */
export const describeCause = (cause: Cause.Cause<unknown>, maxLength = 1_000): string => {
  const failures = Chunk.toReadonlyArray(Cause.failures(cause)).map(describeValue)
  const defects = Chunk.toReadonlyArray(Cause.defects(cause)).map((defect) => `defect ${describeValue(defect)}`)
  const interrupted = Cause.isInterrupted(cause) ? ["interrupted"] : []
  const parts = [...failures, ...defects, ...interrupted]

  return truncate(scrubText(parts.length > 0 ? parts.join("; ") : "empty"), maxLength)
}

interface Walk {
  readonly maxStringLength: number
  readonly ancestors: Set<object>
}

const sanitizeString = (text: string, walk: Walk): string => truncate(scrubText(text), walk.maxStringLength)

const sanitizeKey = (key: string): string => truncate(scrubText(key), MAX_KEY_LENGTH)

const sanitizeError = (error: ErrorLike, walk: Walk, depth: number): Record<string, unknown> => {
  const result: Record<string, unknown> = {
    name: sanitizeString(error.name, walk),
    message: sanitizeString(error.message, walk)
  }

  // Only an error's cause is followed: its other fields may carry row values, such as a Postgres `detail`.
  const cause = asErrorLike(error.cause)
  if (cause !== undefined) {
    result.cause = depth + 1 < MAX_DEPTH ? sanitizeError(cause, walk, depth + 1) : "[depth]"
  }
  return result
}

const sanitizeEntries = (
  entries: Iterable<readonly [string, unknown]>,
  walk: Walk,
  depth: number,
  maxKeys = MAX_OBJECT_KEYS
): Record<string, unknown> => {
  const result: Record<string, unknown> = {}
  let count = 0

  for (const [key, value] of entries) {
    if (count === maxKeys) {
      result["…"] = "[more keys]"
      break
    }

    const sanitized =
      isSensitiveKey(key) && mayHoldSecret(key, value) ? "[redacted]" : walkValue(value, walk, depth + 1)
    if (sanitized !== undefined) {
      // defineProperty, because assigning a key named `__proto__` would silently drop it.
      Object.defineProperty(result, sanitizeKey(key), {
        value: sanitized,
        enumerable: true,
        writable: true,
        configurable: true
      })
      count++
    }
  }
  return result
}

const sanitizeArray = (items: ReadonlyArray<unknown>, walk: Walk, depth: number): Array<unknown> => {
  const kept = items.slice(0, MAX_ARRAY_ITEMS).map((item) => walkValue(item, walk, depth + 1) ?? null)

  if (items.length > MAX_ARRAY_ITEMS) {
    kept.push(`…[${items.length - MAX_ARRAY_ITEMS} more items]`)
  }
  return kept
}

const ownEntries = (value: object): Array<readonly [string, unknown]> =>
  Object.keys(value).map((key) => {
    try {
      return [key, (value as Record<string, unknown>)[key]] as const
    } catch {
      return [key, "[unreadable]"] as const
    }
  })

const hasToJSON = (value: object): value is { toJSON: () => unknown } =>
  typeof (value as { toJSON?: unknown }).toJSON === "function"

const sanitizeContainer = (value: object, walk: Walk, depth: number, viaToJSON: boolean): unknown => {
  if (Array.isArray(value)) {
    return sanitizeArray(value, walk, depth)
  }
  if (value instanceof Map) {
    return sanitizeEntries(
      Array.from(value, ([key, item]) => [String(key), item] as const),
      walk,
      depth
    )
  }
  if (value instanceof Set) {
    return sanitizeArray(Array.from(value), walk, depth)
  }
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) {
    return `[binary ${value.byteLength} bytes]`
  }
  if (!viaToJSON && hasToJSON(value)) {
    return walkValue(value.toJSON(), walk, depth, true)
  }
  return sanitizeEntries(ownEntries(value), walk, depth)
}

const walkObject = (value: object, walk: Walk, depth: number, viaToJSON: boolean): unknown => {
  if (Redacted.isRedacted(value)) {
    return "[redacted]"
  }
  if (value instanceof Date) {
    return Number.isNaN(value.getTime()) ? null : value.toISOString()
  }
  if (Cause.isCause(value)) {
    return describeCause(value, walk.maxStringLength)
  }

  const error = asErrorLike(value)
  if (error !== undefined) {
    return sanitizeError(error, walk, depth)
  }
  if (walk.ancestors.has(value)) {
    return "[circular]"
  }
  if (depth >= MAX_DEPTH) {
    return "[depth]"
  }

  walk.ancestors.add(value)
  try {
    return sanitizeContainer(value, walk, depth, viaToJSON)
  } catch {
    return "[unserializable]"
  } finally {
    walk.ancestors.delete(value)
  }
}

const walkValue = (value: unknown, walk: Walk, depth: number, viaToJSON = false): unknown => {
  switch (typeof value) {
    case "string":
      return sanitizeString(value, walk)
    case "number":
      return Number.isFinite(value) ? value : String(value)
    case "bigint":
      return value.toString()
    case "boolean":
      return value
    case "undefined":
    case "function":
    case "symbol":
      return undefined
    case "object":
      return value === null ? null : walkObject(value, walk, depth, viaToJSON)
  }
}

/**
 * Turns any value into one that `JSON.stringify` renders faithfully and that is safe to log.
 *
 * Fields with a sensitive name become `"[redacted]"`, strings are scrubbed and cut to
 * `maxStringLength` (plus a marker saying how much was cut), errors become `{ name, message }`,
 * `Redacted` values stay hidden, bigints and dates become strings, maps and sets become objects and
 * arrays, and `undefined`, functions and symbols are left out (`null` inside arrays). A value met
 * twice is written twice; only a true cycle is written as `"[circular]"`. Nesting deeper than eight
 * levels is written as `"[depth]"`, and arrays keep their first hundred items.
 */
export const sanitize = (value: unknown, maxStringLength: number = DEFAULT_MAX_STRING_LENGTH): unknown =>
  walkValue(value, { maxStringLength, ancestors: new Set() }, 0)

/**
 * `sanitize` for the top-level fields of a log line: each field is sanitized as `sanitize` would
 * inside an object, but their number is not bounded, because the caller bounds the whole line.
 */
export const sanitizeFields = (
  entries: Iterable<readonly [string, unknown]>,
  maxStringLength: number = DEFAULT_MAX_STRING_LENGTH
): Record<string, unknown> =>
  sanitizeEntries(entries, { maxStringLength, ancestors: new Set() }, 0, Number.POSITIVE_INFINITY)
