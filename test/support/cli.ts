import { spawn } from "node:child_process"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

/** The CLI as a user runs it: `bin/scenario-scheduler.js` in a process of its own. */
export const cliPath = fileURLToPath(new URL("../../bin/scenario-scheduler.js", import.meta.url))

export interface CliResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  readonly entries: ReadonlyArray<Record<string, unknown>>
  readonly elapsedMs: number
}

/** Runs one CLI command to the end; stdout is parsed as NDJSON (a line that is not JSON throws). */
export const runCli = (
  args: ReadonlyArray<string>,
  options: { readonly cwd: string; readonly env?: Record<string, string | undefined> }
): Promise<CliResult> =>
  new Promise((resolve, reject) => {
    const started = Date.now()
    const child = spawn(process.execPath, [cliPath, ...args], {
      cwd: options.cwd,
      env: { ...process.env, DATABASE_URL: undefined, LOG_LEVEL: undefined, ...options.env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk) => {
      stdout += chunk
    })
    child.stderr.on("data", (chunk) => {
      stderr += chunk
    })
    child.on("error", reject)
    child.on("close", (code) => {
      try {
        const entries = stdout
          .split("\n")
          .filter((line) => line.length > 0)
          .map((line) => JSON.parse(line) as Record<string, unknown>)
        resolve({ code, stdout, stderr, entries, elapsedMs: Date.now() - started })
      } catch (error) {
        reject(new Error(`stdout is not NDJSON: ${String(error)}\n${stdout}`))
      }
    })
  })

/** A fresh working directory, removed afterwards, so each test has its own embedded database. */
export const withWorkingDirectory = async <A>(use: (directory: string) => Promise<A>): Promise<A> => {
  const directory = await mkdtemp(join(tmpdir(), "scenario-scheduler-"))
  try {
    return await use(directory)
  } finally {
    await rm(directory, { recursive: true, force: true })
  }
}

export const eventsOf = (result: CliResult, event: string) => result.entries.filter((entry) => entry.event === event)
