/**
 * The Edge Function as `npm run edge` serves it: `adapters/edge/local.ts` under the Deno of the `deno`
 * npm package, resolving npm packages from this repository's node_modules, in a process of its own.
 * Its stdout is read line by line, so a test waits for the line it expects instead of for a time.
 */
import { type ChildProcessByStdio, spawn } from "node:child_process"
import { createRequire } from "node:module"
import { createInterface } from "node:readline"
import type { Readable } from "node:stream"
import { fileURLToPath } from "node:url"

const repository = fileURLToPath(new URL("../../", import.meta.url))

/** The binary the `deno` package ships, as its own launcher finds it (without the Node process in between). */
export const denoExecutable = (): string => {
  const require = createRequire(import.meta.url)
  return (require("deno/install_api.cjs") as { readonly runInstall: () => string }).runInstall()
}

type Entry = Record<string, unknown>

interface Waiter {
  readonly predicate: (entry: Entry) => boolean
  readonly resolve: (entry: Entry) => void
  readonly reject: (error: Error) => void
}

export interface EdgeProcess {
  readonly url: string
  /** Every line written to stdout so far, as written. */
  readonly lines: () => ReadonlyArray<string>
  readonly stderr: () => string
  /** Resolves with the first line (already written or still to come) that matches; rejects after `timeoutMs`. */
  readonly waitFor: (predicate: (entry: Entry) => boolean, timeoutMs?: number) => Promise<Entry>
  /** Sends a signal and resolves with the exit code once the process has ended. */
  readonly stop: (signal?: NodeJS.Signals) => Promise<number | null>
}

const parse = (line: string): Entry | undefined => {
  try {
    return JSON.parse(line) as Entry
  } catch {
    return undefined
  }
}

const watch = (child: ChildProcessByStdio<null, Readable, Readable>) => {
  const lines: Array<string> = []
  const waiters = new Set<Waiter>()
  let stderr = ""
  let ended: Error | undefined

  createInterface({ input: child.stdout }).on("line", (line) => {
    lines.push(line)
    const entry = parse(line)
    for (const waiter of waiters) {
      if (entry !== undefined && waiter.predicate(entry)) {
        waiters.delete(waiter)
        waiter.resolve(entry)
      }
    }
  })
  child.stderr.on("data", (chunk) => {
    stderr += chunk
  })
  child.on("exit", (code, signal) => {
    ended = new Error(`deno exited (${code ?? signal}) before the line was written\n${stderr}`)
    for (const waiter of waiters) waiter.reject(ended)
    waiters.clear()
  })

  const waitFor = (predicate: (entry: Entry) => boolean, timeoutMs = 30_000) =>
    new Promise<Entry>((resolve, reject) => {
      const found = lines.map(parse).find((entry) => entry !== undefined && predicate(entry))
      if (found !== undefined) return resolve(found)
      if (ended !== undefined) return reject(ended)

      const timer = setTimeout(() => {
        waiters.delete(waiter)
        reject(new Error(`no such line within ${timeoutMs} ms\n${lines.join("\n")}\n${stderr}`))
      }, timeoutMs)
      const waiter: Waiter = {
        predicate,
        resolve: (entry) => {
          clearTimeout(timer)
          resolve(entry)
        },
        reject: (error) => {
          clearTimeout(timer)
          reject(error)
        }
      }
      waiters.add(waiter)
    })

  return { lines: () => [...lines], stderr: () => stderr, waitFor }
}

/**
 * Starts the function on 127.0.0.1 with a free port and the given environment (and nothing else of
 * this process's), and resolves once it listens. Deno may reach 127.0.0.1 only, read files, and
 * write under `writableDirectory`.
 */
export const startEdgeFunction = async (
  env: Readonly<Record<string, string>>,
  writableDirectory: string
): Promise<EdgeProcess> => {
  const child = spawn(
    denoExecutable(),
    [
      "run",
      "--no-prompt",
      "--config",
      "adapters/edge/deno.local.json",
      "--allow-net=127.0.0.1",
      "--allow-env",
      "--allow-read",
      `--allow-write=${writableDirectory}`,
      "adapters/edge/local.ts"
    ],
    {
      cwd: repository,
      env: {
        PATH: process.env.PATH ?? "",
        HOME: process.env.HOME ?? "",
        ...(process.env.DENO_DIR ? { DENO_DIR: process.env.DENO_DIR } : {}),
        DENO_NO_UPDATE_CHECK: "1",
        NO_COLOR: "1",
        PORT: "0",
        ...env
      },
      stdio: ["ignore", "pipe", "pipe"]
    }
  )
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
  const watched = watch(child)

  const stop = (signal: NodeJS.Signals = "SIGTERM") => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal)
    return exited
  }

  try {
    const listening = await watched.waitFor((entry) => entry.event === "edge_server_listening", 60_000)
    return { ...watched, url: `http://127.0.0.1:${String(listening.port)}`, stop }
  } catch (error) {
    await stop("SIGKILL")
    throw error
  }
}
