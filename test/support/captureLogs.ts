import { type Layer, LogLevel } from "effect"
import * as JsonLogger from "../../src/services/Logger.ts"

/** The lines a test's program logged, kept in memory. */
export interface LogCapture {
  /** Provide this to the program under test: it installs the JSON logger writing into this capture. */
  readonly layer: Layer.Layer<never>
  /** Every line exactly as written, each with its trailing "\n". */
  readonly lines: () => ReadonlyArray<string>
  /** Every line parsed as JSON; throws if a line is not valid JSON. */
  readonly entries: () => ReadonlyArray<Record<string, unknown>>
  /** Forgets the lines written so far. */
  readonly clear: () => void
}

/**
 * Collects what the project's JSON logger writes, so a test can assert on the lines an operator
 * would see. Debug and above are kept unless `minimumLevel` says otherwise.
 *
 * @example
 * const logs = makeLogCapture()
 * yield* program.pipe(Effect.provide(logs.layer))
 * expect(logs.entries().map((entry) => entry.event)).toContain("scheduler_run_completed")
 */
export const makeLogCapture = (options: { readonly minimumLevel?: LogLevel.LogLevel } = {}): LogCapture => {
  const written: Array<string> = []

  return {
    layer: JsonLogger.layer({
      write: (line) => {
        written.push(line)
      },
      minimumLevel: options.minimumLevel ?? LogLevel.Debug
    }),
    lines: () => [...written],
    entries: () => written.map((line) => JSON.parse(line) as Record<string, unknown>),
    clear: () => {
      written.length = 0
    }
  }
}
