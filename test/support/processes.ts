/**
 * CLI processes a test watches while they run: to kill one in the middle of its work, or to start another while
 * the first still holds something. Waiting is always for a condition, polled, with a deadline.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtemp, readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { cliPath } from "./cli.ts"

/** A fresh directory for the scope (a working directory, an outbox), removed when the scope closes. */
export const temporaryDirectory = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "scenario-scheduler-"))),
  (directory) => Effect.promise(() => rm(directory, { recursive: true, force: true }).catch(() => undefined))
)

export interface RunningCli {
  readonly child: ChildProcess
  readonly pid: number
  /** The complete lines written to stdout so far, parsed. */
  readonly entries: () => ReadonlyArray<Record<string, unknown>>
  /** Resolves with the exit code (null when killed by a signal) once the process has ended. */
  readonly exited: Promise<number | null>
}

const parseLines = (text: string): ReadonlyArray<Record<string, unknown>> =>
  text
    .split("\n")
    .slice(0, -1)
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as Record<string, unknown>)

export const startCli = (
  args: ReadonlyArray<string>,
  options: { readonly cwd: string; readonly env?: Record<string, string | undefined> }
): RunningCli => {
  const child = spawn(process.execPath, [cliPath, ...args], {
    cwd: options.cwd,
    env: { ...process.env, DATABASE_URL: undefined, LOG_LEVEL: undefined, ...options.env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let stdout = ""
  child.stdout?.on("data", (chunk) => {
    stdout += chunk
  })
  child.stderr?.resume()
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on("error", reject)
    child.on("close", (code) => resolve(code))
  })

  return { child, pid: child.pid as number, entries: () => parseLines(stdout), exited }
}

/** A CLI process for the scope: killed when the scope closes, so a failing test leaves none running. */
export const startCliScoped = (...args: Parameters<typeof startCli>) =>
  Effect.acquireRelease(
    Effect.sync(() => startCli(...args)),
    (running) =>
      Effect.promise(async () => {
        if (running.child.exitCode === null && running.child.signalCode === null) {
          running.child.kill("SIGKILL")
          await running.exited
        }
      })
  )

/** Polls `condition` every few milliseconds until it holds; fails after `timeoutMs` saying what it waited for. */
export const waitFor = async (what: string, condition: () => Promise<boolean> | boolean, timeoutMs = 30_000) => {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** The lines of a JSONL file, parsed; none when it does not exist. */
export const jsonLines = async (path: string): Promise<ReadonlyArray<Record<string, unknown>>> => {
  const text = await readFile(path, "utf8").catch(() => "")
  return parseLines(text.endsWith("\n") || text === "" ? text : `${text}\n`)
}
