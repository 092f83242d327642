import { Cause, Effect, Layer, Logger, LogLevel } from "effect"
import { alwaysWritten, type RunEventFields, type RunEventName } from "../domain/LogEvents.ts"
import { DEFAULT_MAX_STRING_LENGTH, sanitizeFields, scrubText, truncate } from "../domain/Redaction.ts"

/**
 * The project's structured logger: every entry is one line of JSON, written in one call, with
 * `timestamp`, `level` and `event` first, then the fiber's log annotations, then the fields of the
 * message. Everything passes through `sanitizeFields`, so no personal data or secret reaches a line.
 *
 * Message convention: `Effect.logInfo("scheduler_run_started")` logs an event without fields;
 * `Effect.logInfo({ event: "scheduler_run_started", page_size: 500 })` (or `logEvent`) adds fields.
 */

export type Level = "debug" | "info" | "warn" | "error"

/** Supabase's limit for one log line. Lines are kept below it counted in UTF-8 bytes, never fewer than characters. */
export const MAX_LINE_LENGTH = 10_000

const MAX_EVENT_LENGTH = 200

// Strings are never shrunk below this to make room, so ids and timestamps stay whole; fields are dropped instead.
const MIN_SHRUNK_STRING_LENGTH = 64

const RESERVED_KEYS = new Set(["timestamp", "level", "event"])

// Without these a line cannot be tied to its run, so they are the last fields to go.
const KEPT_FIELDS = new Set(["component", "invocation_id"])

interface Head {
  readonly timestamp: string
  readonly level: Level
  readonly event: string
}

type Fields = Record<string, unknown>

const levelOf = (logLevel: LogLevel.LogLevel): Level => {
  switch (logLevel._tag) {
    case "All":
    case "Trace":
    case "Debug":
      return "debug"
    case "Info":
    case "None":
      return "info"
    case "Warning":
      return "warn"
    case "Error":
    case "Fatal":
      return "error"
  }
}

const logLevels: Record<Level, LogLevel.LogLevel> = {
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warn: LogLevel.Warning,
  error: LogLevel.Error
}

// ---------------------------------------------------------------------------------------------
// From an entry to fields
// ---------------------------------------------------------------------------------------------

const isPlainRecord = (value: unknown): value is Fields => {
  if (typeof value !== "object" || value === null) {
    return false
  }

  const prototype = Object.getPrototypeOf(value)
  return prototype === Object.prototype || prototype === null
}

const setAll = (target: Map<string, unknown>, source: Iterable<readonly [string, unknown]>): void => {
  for (const [key, value] of source) {
    if (!RESERVED_KEYS.has(key)) {
      target.set(key, value)
    }
  }
}

/**
 * Effect hands a logger the arguments of `Effect.log*` as an array (one item per argument, causes
 * removed); other callers may pass a single value. The first item names the event.
 */
const readMessage = (message: unknown, fields: Map<string, unknown>): string => {
  const [first, ...rest] = Array.isArray(message) ? message : [message]
  const details: Array<unknown> = []
  let event = "log"

  if (typeof first === "string") {
    event = first
  } else if (isPlainRecord(first)) {
    event = typeof first.event === "string" ? first.event : event
    setAll(fields, Object.entries(first))
  } else if (first !== undefined) {
    fields.set("message", first)
  }

  for (const part of rest) {
    if (isPlainRecord(part)) {
      setAll(fields, Object.entries(part))
    } else {
      details.push(part)
    }
  }
  if (details.length > 0) {
    fields.set("details", details)
  }
  return event
}

const collectFields = (options: Logger.Logger.Options<unknown>): { event: string; fields: Map<string, unknown> } => {
  const fields = new Map<string, unknown>()

  setAll(fields, options.annotations)
  const event = readMessage(options.message, fields)

  if (!Cause.isEmpty(options.cause)) {
    fields.set("cause", options.cause)
  }
  return { event, fields }
}

// ---------------------------------------------------------------------------------------------
// Fitting a line under the limit
// ---------------------------------------------------------------------------------------------

const utf8Length = (text: string): number => {
  let bytes = 0
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    bytes += code < 0x80 ? 1 : code < 0x800 ? 2 : code >= 0xd800 && code <= 0xdfff ? 2 : 3
  }
  return bytes
}

// Spreading `head` twice keeps its keys first and its values final, whatever the fields hold.
// JSON.stringify escapes "\n" but leaves U+2028/U+2029, which some log readers treat as line breaks.
const serialize = (head: Head, fields: Fields): string =>
  JSON.stringify({ ...head, ...fields, ...head })
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029")

const fits = (line: string): boolean => utf8Length(line) + 1 < MAX_LINE_LENGTH

interface Leaf {
  readonly parent: Record<string | number, unknown>
  readonly key: string | number
  readonly value: string
}

const collectLeaves = (value: unknown, leaves: Array<Leaf>): Array<Leaf> => {
  if (typeof value !== "object" || value === null) {
    return leaves
  }

  const parent = value as Record<string | number, unknown>
  for (const key of Object.keys(parent)) {
    const child = parent[key]
    if (typeof child === "string") {
      leaves.push({ parent, key, value: child })
    } else {
      collectLeaves(child, leaves)
    }
  }
  return leaves
}

const capStrings = (leaves: ReadonlyArray<Leaf>, cap: number): void => {
  for (const leaf of leaves) {
    leaf.parent[leaf.key] = truncate(leaf.value, cap)
  }
}

/** Finds, by bisection, the longest string length at which the line fits, and cuts every longer string to it. */
const shrinkStrings = (head: Head, fields: Fields): boolean => {
  const leaves = collectLeaves(fields, [])
  let tooLong = leaves.reduce((longest, leaf) => Math.max(longest, leaf.value.length), 0)
  let fitting = MIN_SHRUNK_STRING_LENGTH

  capStrings(leaves, fitting)
  if (tooLong <= fitting || !fits(serialize(head, fields))) {
    return false
  }

  while (tooLong - fitting > 1) {
    const middle = Math.floor((tooLong + fitting) / 2)
    capStrings(leaves, middle)
    if (fits(serialize(head, fields))) {
      fitting = middle
    } else {
      tooLong = middle
    }
  }
  capStrings(leaves, fitting)
  return true
}

const fieldCost = (key: string, value: unknown): number => utf8Length(JSON.stringify({ [key]: value })) - 1

/** Drops the largest fields first (the later one among equals) until the line fits, and says so. */
const dropFields = (head: Head, fields: Fields): string => {
  const order = Object.keys(fields)
    .map((key, index) => ({ key, index, cost: KEPT_FIELDS.has(key) ? -1 : fieldCost(key, fields[key]) }))
    .sort((a, b) => b.cost - a.cost || b.index - a.index)
  const kept: Fields = { ...fields }
  let dropped = 0
  let line = serialize(head, kept)

  while (!fits(line) && dropped < order.length) {
    let excess = utf8Length(line) + 1 - MAX_LINE_LENGTH

    while (excess > 0 && dropped < order.length) {
      const next = order[dropped++]
      excess -= next.cost
      delete kept[next.key]
    }
    line = serialize(head, { ...kept, truncated: true, dropped_fields: dropped })
  }
  return fits(line) ? line : serialize(head, { truncated: true })
}

const renderLine = (head: Head, fields: Fields): string => {
  const line = serialize(head, fields)
  if (fits(line)) {
    return line
  }
  if (shrinkStrings(head, fields)) {
    return serialize(head, fields)
  }
  return dropFields(head, fields)
}

// ---------------------------------------------------------------------------------------------
// The logger
// ---------------------------------------------------------------------------------------------

const formatEntry = (options: Logger.Logger.Options<unknown>): string => {
  const { event, fields } = collectFields(options)
  const head: Head = {
    timestamp: options.date.toISOString(),
    level: levelOf(options.logLevel),
    event: truncate(scrubText(event), MAX_EVENT_LENGTH)
  }

  return renderLine(head, sanitizeFields(fields, DEFAULT_MAX_STRING_LENGTH))
}

/**
 * A logger that renders each entry as one line of JSON (newline included) and hands it to `write`
 * in a single call, so concurrent fibers never interleave within a line.
 */
export const makeJsonLogger = (write: (line: string) => void): Logger.Logger<unknown, void> =>
  Logger.make((options) => {
    const line = `${formatEntry(options)}\n`

    // A logger that cannot write has nowhere to report it, and must not fail the program it observes.
    try {
      write(line)
    } catch {
      return
    }
  })

/** Logs `event` at `level` with `fields` merged into the line, through Effect's logging. */
export const logEvent = (
  level: Level,
  event: string,
  fields: Readonly<Record<string, unknown>> = {}
): Effect.Effect<void> => Effect.logWithLevel(logLevels[level], { ...fields, event })

/**
 * Logs one of the run's events with exactly the fields the contract gives it. Lines the contract
 * requires of every run are written whatever the minimum level.
 */
export const emit = <N extends RunEventName>(level: Level, event: N, fields: RunEventFields<N>): Effect.Effect<void> =>
  alwaysWritten.has(event) ? logRunEvent(level, event, fields) : logEvent(level, event, fields)

/**
 * Logs a line the log contract requires of every run (started, partial, failed, completed): it is
 * written whatever minimum level the operator set, so that a quiet log still shows each run.
 */
export const logRunEvent = (
  level: Level,
  event: string,
  fields: Readonly<Record<string, unknown>> = {}
): Effect.Effect<void> => logEvent(level, event, fields).pipe(Logger.withMinimumLogLevel(LogLevel.All))

interface DenoGlobal {
  readonly stdout: { readonly writeSync: (bytes: Uint8Array) => number }
}

interface ProcessGlobal {
  readonly stdout?: { readonly write: (text: string) => unknown }
}

const encoder = new TextEncoder()

const writeDeno = (deno: DenoGlobal, line: string): void => {
  let bytes = encoder.encode(line)

  // writeSync may write only part of the buffer.
  while (bytes.length > 0) {
    const written = deno.stdout.writeSync(bytes)
    if (written <= 0) {
      return
    }
    bytes = bytes.subarray(written)
  }
}

/** Writes a line to standard output on Node (and Deno's Node compatibility), else through Deno's own API. */
export const stdoutWriter = (line: string): void => {
  const runtime = globalThis as { readonly process?: ProcessGlobal; readonly Deno?: DenoGlobal }

  if (runtime.process?.stdout !== undefined) {
    runtime.process.stdout.write(line)
  } else if (runtime.Deno !== undefined) {
    writeDeno(runtime.Deno, line)
  }
}

/**
 * Replaces Effect's default logger with the JSON logger and sets the minimum level (Info unless
 * told otherwise). Lines go to standard output unless `write` says where.
 */
export const layer = (
  options: { readonly write?: (line: string) => void; readonly minimumLevel?: LogLevel.LogLevel } = {}
): Layer.Layer<never> =>
  Layer.merge(
    Logger.replace(Logger.defaultLogger, makeJsonLogger(options.write ?? stdoutWriter)),
    Logger.minimumLogLevel(options.minimumLevel ?? LogLevel.Info)
  )
