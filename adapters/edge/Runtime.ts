/**
 * What the adapter uses of the Deno and Supabase Edge runtimes. The globals are typed here rather
 * than through Deno's own declarations, so that the adapter type-checks with the rest of the
 * project and its logic can be tested under Node.
 */

export type Handler = (request: Request) => Response | Promise<Response>

export interface ServeOptions {
  readonly hostname?: string
  readonly port?: number
  readonly onListen?: (address: { readonly hostname: string; readonly port: number }) => void
}

export interface HttpServer {
  readonly finished: Promise<void>
  readonly shutdown: () => Promise<void>
}

export interface DenoRuntime {
  readonly env: { readonly toObject: () => Record<string, string> }
  readonly serve: {
    (handler: Handler): HttpServer
    (options: ServeOptions, handler: Handler): HttpServer
  }
  readonly addSignalListener: (signal: "SIGINT" | "SIGTERM", listener: () => void) => void
}

interface EdgeRuntimeGlobal {
  readonly waitUntil: (promise: Promise<unknown>) => void
}

export const denoRuntime = (): DenoRuntime => {
  const deno = (globalThis as { readonly Deno?: DenoRuntime }).Deno
  if (deno === undefined) {
    throw new Error("the edge adapter runs on Deno")
  }
  return deno
}

/** Supabase's `EdgeRuntime.waitUntil`, which keeps the isolate alive for work after the response; absent elsewhere. */
export const waitUntilOf = (): ((promise: Promise<unknown>) => void) | undefined => {
  const edge = (globalThis as { readonly EdgeRuntime?: EdgeRuntimeGlobal }).EdgeRuntime
  return edge === undefined ? undefined : (promise) => edge.waitUntil(promise)
}

/** Supabase says why it is about to stop the isolate (WallClockTime, CPUTime, Memory, EarlyDrop…) in `detail.reason`. */
const unloadReason = (event: Event): string => {
  const detail: unknown = (event as Partial<CustomEvent<unknown>>).detail
  const reason =
    typeof detail === "object" && detail !== null ? (detail as { readonly reason?: unknown }).reason : undefined
  return typeof reason === "string" && reason.length > 0 ? reason : event.type
}

/** Calls `listener` with the reason when the runtime is about to stop the isolate. */
export const onBeforeUnload = (listener: (reason: string) => void): void => {
  globalThis.addEventListener("beforeunload", (event) => listener(unloadReason(event)))
}

/**
 * Where the function's JSON lines go. Supabase turns what an Edge Function writes through `console`
 * into its log events, one per call; writes to stdout by other means are not promised to reach them.
 * So each line the project's logger renders is handed to console.log in one call, without the
 * logger's newline, which console adds back. Under plain Deno this is the same one write to stdout.
 */
export const consoleWriter = (line: string): void => {
  // biome-ignore lint/suspicious/noConsole: the sink of the project's JSON logger on Supabase, not a log call of its own
  console.log("%s", line.endsWith("\n") ? line.slice(0, -1) : line)
}
