import { parseArgs } from "node:util"
import { Data, Either, Schema } from "effect"
import { IsoMoment } from "../../src/domain/Moment.ts"
import { ScenarioType } from "../../src/domain/Scenario.ts"
import type { OverlapPolicy } from "../../src/services/Store.ts"

/** A command line that cannot be run as given: exit status 64 with usage. */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}

export const usage = `Usage: scenario-scheduler <command> [options]

Commands:
  migrate                      apply the migrations in supabase/migrations
  seed                         fill an empty database with a demo population
      --mentors N              how many mentors (default 600)
      --random-seed S          seed for the generator (default 42)
      --now ISO                date the demo is built around (default: now)
  run                          run the scheduler once
      --now ISO                judge scenarios as of this moment (default: now)
      --dry-run                judge and count, but claim, send and write nothing
      --budget-ms N            stop starting pages after N ms (default 25000)
      --page-size N            mentors per page (default 1000)
      --scenarios LIST         comma-separated: inactivity,milestone,expiry (default all)
      --overlap POLICY         while another run is running: skip (stand down, the default)
                               or allow (run anyway; SCHEDULER_OVERLAP)
  demo                         migrate, seed an empty database, then run (what npm start does)

Options for every command:
  --database-url URL           a Postgres URL (or DATABASE_URL); without either, the embedded
                               database in ./.scenario-scheduler/ is used
  -h, --help                   show this text

Exit status: 0 completed (or skipped: another run was running), 2 partial, 1 failed, 64 bad usage.
`

export interface RunFlags {
  readonly now?: Date | undefined
  readonly dryRun: boolean
  readonly budgetMs?: number | undefined
  readonly pageSize?: number | undefined
  readonly scenarios?: ReadonlyArray<ScenarioType> | undefined
  readonly overlap?: OverlapPolicy | undefined
}

export interface SeedFlags {
  readonly mentors: number
  readonly randomSeed: number
  readonly now?: Date | undefined
}

export type Command =
  | { readonly _tag: "help" }
  | { readonly _tag: "migrate"; readonly databaseUrl?: string | undefined }
  | { readonly _tag: "seed"; readonly databaseUrl?: string | undefined; readonly seed: SeedFlags }
  | { readonly _tag: "run"; readonly databaseUrl?: string | undefined; readonly run: RunFlags }
  | {
      readonly _tag: "demo"
      readonly databaseUrl?: string | undefined
      readonly seed: SeedFlags
      readonly run: RunFlags
    }

const optionsByCommand = {
  migrate: [],
  seed: ["mentors", "random-seed", "now"],
  run: ["now", "dry-run", "budget-ms", "page-size", "scenarios", "overlap"],
  demo: ["mentors", "random-seed", "now", "dry-run", "budget-ms", "page-size", "scenarios", "overlap"]
} as const

type CommandName = keyof typeof optionsByCommand

const allOptions = {
  "database-url": { type: "string" },
  help: { type: "boolean", short: "h" },
  mentors: { type: "string" },
  "random-seed": { type: "string" },
  now: { type: "string" },
  "dry-run": { type: "boolean" },
  "budget-ms": { type: "string" },
  "page-size": { type: "string" },
  scenarios: { type: "string" },
  overlap: { type: "string" }
} as const

const OverlapFromString = Schema.compose(Schema.String, Schema.Literal("skip", "allow"))

/** Decimal digits only: `Number` would also take 0x10, 1e3 and the empty string. */
const WholeNumber = Schema.String.pipe(Schema.pattern(/^-?\d{1,10}$/), Schema.compose(Schema.NumberFromString))

const PositiveInteger = (max: number) => WholeNumber.pipe(Schema.int(), Schema.between(1, max))

const ScenarioListFromString = Schema.transform(Schema.String, Schema.Array(Schema.String), {
  strict: true,
  decode: (text) => [...new Set(text.split(",").map((part) => part.trim()))],
  encode: (parts) => parts.join(",")
}).pipe(Schema.compose(Schema.NonEmptyArray(ScenarioType)))

const decodeFlag = <A>(name: string, schema: Schema.Schema<A, string>, value: string | undefined, hint: string) => {
  if (value === undefined) return undefined
  return Either.getOrThrowWith(
    Schema.decodeEither(schema)(value),
    () => new UsageError({ message: `--${name} ${hint}` })
  )
}

const isCommand = (name: string | undefined): name is CommandName => name !== undefined && name in optionsByCommand

const checkOptionsBelong = (command: CommandName, values: Record<string, unknown>) => {
  const allowed: ReadonlyArray<string> = [...optionsByCommand[command], "database-url", "help"]
  const stray = Object.keys(values).find((name) => !allowed.includes(name))
  if (stray !== undefined) throw new UsageError({ message: `--${stray} is not an option of ${command}` })
}

type Values = ReturnType<typeof parseValues>

const parseValues = (argv: ReadonlyArray<string>) =>
  parseArgs({ args: [...argv], options: allOptions, allowPositionals: true, strict: true })

const runFlags = (values: Values["values"]): RunFlags => ({
  now: decodeFlag(
    "now",
    IsoMoment,
    values.now,
    "must be an ISO-8601 date or a timestamp with its zone, e.g. 2026-12-04T06:00:00Z"
  ),
  dryRun: values["dry-run"] ?? false,
  budgetMs: decodeFlag(
    "budget-ms",
    PositiveInteger(3_600_000),
    values["budget-ms"],
    "must be a whole number of ms from 1 to 3600000"
  ),
  pageSize: decodeFlag(
    "page-size",
    PositiveInteger(10_000),
    values["page-size"],
    "must be a whole number from 1 to 10000"
  ),
  scenarios: decodeFlag(
    "scenarios",
    ScenarioListFromString,
    values.scenarios,
    "must list scenarios from inactivity,milestone,expiry"
  ),
  overlap: decodeFlag("overlap", OverlapFromString, values.overlap, "must be skip or allow")
})

const seedFlags = (values: Values["values"]): SeedFlags => ({
  mentors:
    decodeFlag("mentors", PositiveInteger(1_000_000), values.mentors, "must be a whole number from 1 to 1000000") ??
    600,
  randomSeed: decodeFlag("random-seed", WholeNumber, values["random-seed"], "must be a whole number") ?? 42,
  now: decodeFlag(
    "now",
    IsoMoment,
    values.now,
    "must be an ISO-8601 date or a timestamp with its zone, e.g. 2026-12-04T06:00:00Z"
  )
})

/** A Postgres URL, checked here so that a typo is a usage error rather than a failed connection. */
export const checkDatabaseUrl = (url: string | undefined): string | undefined => {
  if (url === undefined) return undefined

  const parsed = URL.canParse(url) ? new URL(url) : undefined
  if (parsed === undefined || !["postgres:", "postgresql:"].includes(parsed.protocol) || parsed.hostname === "") {
    throw new UsageError({ message: "--database-url must be a postgres:// or postgresql:// URL with a host" })
  }
  return url
}

const toCommand = (name: CommandName, values: Values["values"]): Command => {
  const databaseUrl = checkDatabaseUrl(values["database-url"])
  switch (name) {
    case "migrate":
      return { _tag: "migrate", databaseUrl }
    case "seed":
      return { _tag: "seed", databaseUrl, seed: seedFlags(values) }
    case "run":
      return { _tag: "run", databaseUrl, run: runFlags(values) }
    case "demo":
      return { _tag: "demo", databaseUrl, seed: seedFlags(values), run: runFlags(values) }
  }
}

/** Reads the command line; anything it cannot make sense of is a UsageError, never a guess. */
export const parseCommand = (argv: ReadonlyArray<string>): Either.Either<Command, UsageError> =>
  Either.try({
    try: () => {
      const { values, positionals } = parseValues(argv)
      if (values.help) return { _tag: "help" } as const

      const [name, ...extra] = positionals
      if (!isCommand(name)) {
        throw new UsageError({ message: name === undefined ? "a command is required" : `unknown command: ${name}` })
      }
      if (extra.length > 0) throw new UsageError({ message: `unexpected argument: ${extra[0]}` })

      checkOptionsBelong(name, values)
      return toCommand(name, values)
    },
    catch: (error) =>
      error instanceof UsageError
        ? error
        : new UsageError({ message: error instanceof Error ? error.message : "the command line cannot be read" })
  })
