/**
 * The demo population behind `scenario-scheduler seed`: three organisations, their chapters and a
 * crowd of peer mentors with about eighteen months of activity, certifications and push tokens,
 * shaped so that every scenario has mentors to fire on.
 *
 * Everything is drawn from one seeded pseudo-random stream and dated relative to `now`, so the
 * same arguments give the same rows on every machine. Rows are generated and inserted one chunk of
 * mentors at a time, which keeps memory flat at any size.
 */
import { SqlClient, type SqlError } from "@effect/sql"
import { Effect } from "effect"
import { scenarioDefaults } from "../../src/domain/Scenario.ts"

export interface SeedOptions {
  /** How many peer mentors to create; a non-negative integer. */
  readonly mentors: number
  /** Chooses the population: the same seed, mentor count and `now` give identical rows. */
  readonly randomSeed: number
  /** The moment every date is relative to. */
  readonly now: Date
}

export interface SeededOrganisation {
  readonly name: string
  readonly timezone: string
  readonly chapters: number
  readonly mentors: number
}

/** What a seed wrote: rows per table and the organisations, without any personal data. */
export interface SeedSummary {
  readonly organisations: ReadonlyArray<SeededOrganisation>
  readonly counts: {
    readonly organisations: number
    readonly chapters: number
    readonly peer_mentors: number
    readonly mentor_activities: number
    readonly push_tokens: number
    readonly scenario_evaluation_config: number
  }
}

// ---------------------------------------------------------------------------------------------
// Seeded randomness
// ---------------------------------------------------------------------------------------------

interface Rng {
  readonly uint32: () => number
  readonly float: () => number
  /** An integer in [min, max], both inclusive. */
  readonly int: (min: number, max: number) => number
  readonly chance: (probability: number) => boolean
  readonly pick: <A>(items: ReadonlyArray<A>) => A
  readonly weighted: <A>(entries: ReadonlyArray<readonly [A, number]>) => A
}

/** The murmur3 finaliser: a bijection on 32-bit integers that scatters neighbouring inputs. */
const mix32 = (value: number): number => {
  let x = value >>> 0
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b)
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35)
  return (x ^ (x >>> 16)) >>> 0
}

/** sfc32: 128 bits of state, so long runs of ids and tokens do not repeat the way a 32-bit state would. */
const makeRng = (seed: number): Rng => {
  const low = Math.trunc(seed) >>> 0
  const high = Math.floor(Math.trunc(seed) / 2 ** 32) >>> 0
  let a = mix32(low ^ 0x9e3779b9)
  let b = mix32(high ^ 0x243f6a88)
  let c = mix32(a ^ 0xb7e15162)
  let d = mix32(b ^ 0x3c6ef372)

  const uint32 = (): number => {
    const t = (((a + b) | 0) + d) | 0
    d = (d + 1) | 0
    a = b ^ (b >>> 9)
    b = (c + (c << 3)) | 0
    c = (c << 21) | (c >>> 11)
    c = (c + t) | 0
    return t >>> 0
  }

  // The first outputs after seeding are still correlated with the seed.
  for (let i = 0; i < 16; i++) uint32()

  const float = () => uint32() / 2 ** 32
  const int = (min: number, max: number) => min + Math.floor(float() * (max - min + 1))
  const chance = (probability: number) => float() < probability
  const pick = <A>(items: ReadonlyArray<A>): A => items[int(0, items.length - 1)] as A

  const weighted = <A>(entries: ReadonlyArray<readonly [A, number]>): A => {
    let rest = float() * entries.reduce((sum, [, weight]) => sum + weight, 0)
    for (const [value, weight] of entries) {
      rest -= weight
      if (rest < 0) return value
    }
    // Rounding can leave a sliver past the last weight.
    return entries[entries.length - 1]?.[0] as A
  }

  return { uint32, float, int, chance, pick, weighted }
}

// ---------------------------------------------------------------------------------------------
// Ids and push tokens
// ---------------------------------------------------------------------------------------------

/**
 * Per-kind keys for the unique part of ids and tokens. Keying the bijection `mix32` means that two
 * different indices of one kind can never produce the same value, so uniqueness does not rest on luck.
 */
interface UniqueKeys {
  readonly organisation: number
  readonly chapter: number
  readonly mentor: number
  readonly token: number
}

const hex8 = (value: number) => value.toString(16).padStart(8, "0")

/** A uuid in v4 format: the first 32 bits are unique per index, the remaining ones random. */
const uuid = (rng: Rng, key: number, index: number): string => {
  const head = hex8(mix32(index ^ key))
  const mid = hex8(rng.uint32())
  const clock = hex8(rng.uint32())
  const node = hex8(rng.uint32())
  const variant = (((rng.uint32() >>> 30) & 3) | 8).toString(16)
  return `${head}-${mid.slice(0, 4)}-4${mid.slice(5)}-${variant}${clock.slice(1, 4)}-${clock.slice(4)}${node}`
}

const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

const randomChars = (rng: Rng, length: number): string => {
  let out = ""
  while (out.length < length) {
    let bits = rng.uint32()
    for (let i = 0; i < 5 && out.length < length; i++) {
      out += BASE64URL.charAt(bits & 63)
      bits >>>= 6
    }
  }
  return out
}

/** Six base64url characters that encode the unique 32 bits of `index`, plus four random bits on top. */
const uniqueChars = (rng: Rng, key: number, index: number): string => {
  const unique = mix32(index ^ key)
  let out = BASE64URL.charAt(((rng.uint32() & 15) << 2) | (unique >>> 30))
  for (let shift = 24; shift >= 0; shift -= 6) out += BASE64URL.charAt((unique >>> shift) & 63)
  return out
}

type Platform = "fcm" | "expo"

/** FCM registration tokens are an instance id, a colon and a long `APA91b` body; Expo wraps its id. */
const pushToken = (rng: Rng, keys: UniqueKeys, index: number, platform: Platform): string => {
  const id = uniqueChars(rng, keys.token, index) + randomChars(rng, 16)
  return platform === "fcm" ? `${id}:APA91b${randomChars(rng, 134)}` : `ExponentPushToken[${id}]`
}

// ---------------------------------------------------------------------------------------------
// Calendar of one organisation
// ---------------------------------------------------------------------------------------------

const DAY_MS = 86_400_000

/** Dates are calendar days in the organisation's zone, counted in days from the local date of `now`. */
interface Calendar {
  /** The 'YYYY-MM-DD' date `offset` days from today (negative in the past). */
  readonly date: (offset: number) => string
  /** The instant of `minuteOfDay` local time on that date, never later than `now`, as an ISO timestamp. */
  readonly instant: (offset: number, minuteOfDay: number) => string
}

const localWallClock = (now: Date, timeZone: string): number => {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone,
    hourCycle: "h23",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit"
  }).formatToParts(now)
  const field = (type: Intl.DateTimeFormatPartTypes) => Number(parts.find((part) => part.type === type)?.value)
  return Date.UTC(field("year"), field("month") - 1, field("day"), field("hour"), field("minute"), field("second"))
}

/**
 * The zone's offset is taken once, at `now`. Across a daylight-saving change an instant is then off
 * by an hour, which never moves it to another date because local times are kept between 08:00 and 21:00.
 */
const makeCalendar = (now: Date, timeZone: string): Calendar => {
  const nowMs = now.getTime()
  const wallClock = localWallClock(now, timeZone)
  const offsetMs = wallClock - Math.floor(nowMs / 1000) * 1000
  const today = Math.floor(wallClock / DAY_MS)
  const dates = new Map<number, string>()

  const date = (offset: number): string => {
    const cached = dates.get(offset)
    if (cached !== undefined) return cached
    const formatted = new Date((today + offset) * DAY_MS).toISOString().slice(0, 10)
    dates.set(offset, formatted)
    return formatted
  }

  const instant = (offset: number, minuteOfDay: number): string => {
    const ms = (today + offset) * DAY_MS + minuteOfDay * 60_000 - offsetMs
    return new Date(Math.min(ms, nowMs)).toISOString()
  }

  return { date, instant }
}

// ---------------------------------------------------------------------------------------------
// Organisations, chapters and people
// ---------------------------------------------------------------------------------------------

interface People {
  readonly firstNames: ReadonlyArray<string>
  readonly lastNames: ReadonlyArray<string>
  readonly phone: (rng: Rng) => string
}

/** Names are listed separated by white space to keep the lists compact. */
const names = (list: string): ReadonlyArray<string> => list.trim().split(/\s+/)

const digits = (rng: Rng, count: number) => Array.from({ length: count }, () => rng.int(0, 9)).join("")

const norwegian: People = {
  firstNames: names(`
    Kari Ingrid Nora Emma Sofie Maja Ida Thea Hanne Silje Marte Ragnhild Solveig Astrid Live Ola Lars
    Jonas Henrik Magnus Erik Sindre Øystein Håkon Eirik Torbjørn Aksel Mathias Sander Even Amina Yusuf
  `),
  lastNames: names(`
    Hansen Johansen Olsen Larsen Andersen Pedersen Nilsen Kristiansen Jensen Karlsen Johnsen Pettersen
    Eriksen Berg Haugen Hagen Johannessen Andreassen Jacobsen Dahl Jørgensen Halvorsen Lund Strand
    Solberg Bakken Moen Aas Lie Sæther Ali Nguyen
  `),
  phone: (rng) => `+47 ${rng.pick(["4", "9"])}${digits(rng, 2)} ${digits(rng, 2)} ${digits(rng, 3)}`
}

// Numbers in the 555-01xx block are reserved for fiction.
const american: People = {
  firstNames: names(`
    James Mary Michael Patricia Robert Jennifer David Linda William Elizabeth Maria Jose Aisha Darnell
    Keisha Tyrone Emily Tyler Brianna Kevin Priya Wei Carlos Gabriela Hannah Ethan Olivia Marcus Jasmine
    Noah
  `),
  lastNames: names(`
    Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez
    Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Thompson White Harris Clark Lewis Robinson
    Walker Patel Nguyen
  `),
  phone: (rng) => `+1 ${rng.pick(["518", "845", "914"])}-555-01${digits(rng, 2)}`
}

// The 0491 570 block is reserved for fictional mobile numbers.
const australian: People = {
  firstNames: names(`
    Charlotte Olivia Amelia Isla Mia Ava Grace Chloe Zoe Matilda Oliver Jack William Noah Thomas Lachlan
    Cooper Riley Hamish Liam Mitchell Declan Bailey Jarrah Kirra Mei Arjun Sienna Harper Tane
  `),
  lastNames: names(`
    Smith Jones Williams Brown Wilson Taylor Johnson White Martin Anderson Thompson Nguyen Thomas Walker
    Harris Lee Ryan Robinson Kelly King Campbell Mitchell O'Brien Murphy Kennedy Tran Singh Chen
    Papadopoulos Russo
  `),
  phone: (rng) => `+61 491 570 ${digits(rng, 3)}`
}

interface OrganisationTemplate {
  readonly name: string
  readonly timezone: string
  /** Relative share of the mentors. */
  readonly share: number
  readonly chapters: ReadonlyArray<string>
  readonly people: People
  /** Overrides the default days without activity before a mentor counts as lapsed. */
  readonly inactivityDays?: number
}

const organisationTemplates: ReadonlyArray<OrganisationTemplate> = [
  {
    name: "Likepersonsnettverket Norge",
    timezone: "Europe/Oslo",
    share: 0.45,
    chapters: ["Oslo og Viken", "Vestland", "Trøndelag", "Nord-Norge"],
    people: norwegian
  },
  {
    name: "Hudson Valley Peer Mentors",
    timezone: "America/New_York",
    share: 0.35,
    chapters: ["Albany", "Poughkeepsie", "Westchester"],
    people: american,
    inactivityDays: 21
  },
  {
    name: "Harbour City Mentoring Network",
    timezone: "Australia/Sydney",
    share: 0.2,
    chapters: ["Inner West", "Parramatta"],
    people: australian
  }
]

interface Organisation {
  readonly id: string
  readonly template: OrganisationTemplate
  readonly chapters: ReadonlyArray<{ readonly id: string; readonly name: string }>
  readonly calendar: Calendar
}

/** The seed's fixed inputs plus its random stream, shared by every generator below. */
interface World {
  readonly rng: Rng
  readonly keys: UniqueKeys
  readonly nowMs: number
  readonly organisations: ReadonlyArray<Organisation>
  /** Running index of push tokens, the input of their unique part. */
  tokenCount: number
}

const makeWorld = (options: SeedOptions): World => {
  const rng = makeRng(options.randomSeed)
  const keys: UniqueKeys = {
    organisation: rng.uint32(),
    chapter: rng.uint32(),
    mentor: rng.uint32(),
    token: rng.uint32()
  }
  let chapterIndex = 0
  const organisations = organisationTemplates.map((template, index) => ({
    id: uuid(rng, keys.organisation, index),
    template,
    chapters: template.chapters.map((name) => ({ id: uuid(rng, keys.chapter, chapterIndex++), name })),
    calendar: makeCalendar(options.now, template.timezone)
  }))
  return { rng, keys, nowMs: options.now.getTime(), organisations, tokenCount: 0 }
}

// ---------------------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------------------

type MentorStatus = "active" | "paused" | "inactive"

// Row shapes are type aliases (not interfaces) so they fit `sql.insert`'s record parameter.
type MentorRow = {
  readonly user_id: string
  readonly organisation_id: string
  readonly chapter_id: string | null
  readonly status: MentorStatus
  readonly full_name: string
  readonly email: string
  readonly phone: string
  readonly certification_expires_at: string | null
  readonly notifications_enabled: boolean
  readonly created_at: string
}

type ActivityRow = {
  readonly user_id: string
  readonly activity_date: string
  readonly kind: string
  readonly created_at: string
}

type TokenRow = {
  readonly user_id: string
  readonly token: string
  readonly platform: Platform
  readonly created_at: string
  readonly revoked_at: string | null
}

interface MentorChunk {
  readonly mentors: Array<MentorRow>
  readonly activities: Array<ActivityRow>
  readonly tokens: Array<TokenRow>
}

// ---------------------------------------------------------------------------------------------
// Activity histories
// ---------------------------------------------------------------------------------------------

/** About eighteen months. */
const HISTORY_DAYS = 548

/** Mentors sitting at or just past a default milestone; higher milestones are rarer. */
const milestones: ReadonlyArray<readonly [number, number]> = scenarioDefaults.milestone.params.thresholds.map(
  (threshold) => [threshold, 1000 / threshold] as const
)

/**
 * How a mentor has engaged. The mix is tuned for about twenty activities per mentor and for each
 * scenario to have mentors to fire on: lapsed ones for inactivity, ones just past a threshold for
 * milestones, and new ones with little or nothing recorded yet.
 */
type Pattern = "regular" | "occasional" | "lapsed" | "new" | "milestone"

const patterns: ReadonlyArray<readonly [Pattern, number]> = [
  ["regular", 0.38],
  ["occasional", 0.3],
  ["lapsed", 0.18],
  ["new", 0.08],
  ["milestone", 0.06]
]

const activityKinds: ReadonlyArray<readonly [string, number]> = [
  ["session", 0.6],
  ["check_in", 0.2],
  ["training", 0.1],
  ["event", 0.1]
]

/** When a mentor joined and the days of their activities, in days before today. */
interface History {
  readonly createdAgo: number
  readonly activityAgo: ReadonlyArray<number>
}

/** `count` activity days: the latest exactly `lastAgo` days ago, the others anywhere since joining. */
const spread = (rng: Rng, createdAgo: number, lastAgo: number, count: number): History => {
  if (count === 0) return { createdAgo, activityAgo: [] }
  const activityAgo = Array.from({ length: count - 1 }, () => rng.int(lastAgo, createdAgo))
  activityAgo.push(lastAgo)
  return { createdAgo, activityAgo: activityAgo.sort((x, y) => y - x) }
}

/** A count from a weekly rate drawn in [minRate, maxRate] over `days`. */
const countAtRate = (rng: Rng, days: number, minRate: number, maxRate: number, atLeast: number) =>
  Math.max(atLeast, Math.round((days / 7) * (minRate + rng.float() * (maxRate - minRate))))

const milestoneHistory = (rng: Rng): History => {
  const threshold = rng.weighted(milestones)
  const count = threshold + (rng.chance(0.6) ? 0 : rng.int(1, 2))
  // Joined long enough ago for the count to be plausible: at most about three activities a week.
  const createdAgo = Math.min(HISTORY_DAYS, Math.max(30, Math.ceil(count * 2.2) + rng.int(0, 60)))
  return spread(rng, createdAgo, rng.int(0, 3), count)
}

const history = (rng: Rng, pattern: Pattern): History => {
  switch (pattern) {
    case "regular": {
      const createdAgo = rng.int(30, HISTORY_DAYS)
      const lastAgo = rng.int(0, 6)
      return spread(rng, createdAgo, lastAgo, countAtRate(rng, createdAgo - lastAgo, 0.25, 1.25, 2))
    }
    case "occasional": {
      const createdAgo = rng.int(30, HISTORY_DAYS)
      const lastAgo = rng.int(0, 13)
      return spread(rng, createdAgo, lastAgo, countAtRate(rng, createdAgo - lastAgo, 0.1, 0.6, 1))
    }
    case "lapsed": {
      const createdAgo = rng.int(60, HISTORY_DAYS)
      const lastAgo = rng.int(15, Math.min(120, createdAgo - 14))
      return spread(rng, createdAgo, lastAgo, countAtRate(rng, createdAgo - lastAgo, 0.15, 0.6, 1))
    }
    case "new": {
      const createdAgo = rng.int(0, 21)
      const count = rng.chance(0.4) ? 0 : rng.int(1, 3)
      return spread(rng, createdAgo, rng.int(0, createdAgo), count)
    }
    case "milestone":
      return milestoneHistory(rng)
  }
}

// ---------------------------------------------------------------------------------------------
// Mentors
// ---------------------------------------------------------------------------------------------

/** Local times of day, in minutes, kept away from midnight (see `makeCalendar`). */
const daytime = (rng: Rng) => rng.int(8 * 60, 21 * 60 - 1)

const emailLocalPart = (first: string, last: string) =>
  `${first}.${last}`
    .toLowerCase()
    .replaceAll("æ", "ae")
    .replaceAll("ø", "o")
    .replaceAll("å", "a")
    .replace(/[^a-z.]/g, "")

/** example.com, .org and .net are reserved, so no demo address belongs to anyone. */
const email = (rng: Rng, first: string, last: string, index: number) =>
  `${emailLocalPart(first, last)}${index + 1}@${rng.pick(["example.com", "example.org", "example.net"])}`

type Certification = "none" | "expired" | "soon" | "later"

/** "soon" is within the expiry warning window, so that scenario has mentors to warn. */
const certifications: ReadonlyArray<readonly [Certification, number]> = [
  ["none", 15],
  ["expired", 10],
  ["soon", 8],
  ["later", 67]
]

const certification = (rng: Rng, calendar: Calendar): string | null => {
  switch (rng.weighted(certifications)) {
    case "none":
      return null
    case "expired":
      return calendar.date(-rng.int(1, 400))
    case "soon":
      return calendar.date(rng.int(0, 30))
    case "later":
      return calendar.date(rng.int(31, 730))
  }
}

const statuses: ReadonlyArray<readonly [MentorStatus, number]> = [
  ["active", 88],
  ["paused", 7],
  ["inactive", 5]
]

// Someone who joined in the last weeks has had no time to step back yet.
const mentorStatus = (rng: Rng, pattern: Pattern): MentorStatus =>
  pattern === "new" ? "active" : rng.weighted(statuses)

const mentorRow = (
  world: World,
  organisation: Organisation,
  index: number,
  createdAgo: number,
  pattern: Pattern
): MentorRow => {
  const { rng } = world
  const { people } = organisation.template
  const first = rng.pick(people.firstNames)
  const last = rng.pick(people.lastNames)
  return {
    user_id: uuid(rng, world.keys.mentor, index),
    organisation_id: organisation.id,
    chapter_id: rng.chance(0.08) ? null : rng.pick(organisation.chapters).id,
    status: mentorStatus(rng, pattern),
    full_name: `${first} ${last}`,
    email: email(rng, first, last, index),
    phone: people.phone(rng),
    certification_expires_at: certification(rng, organisation.calendar),
    notifications_enabled: !rng.chance(0.05),
    created_at: organisation.calendar.instant(-createdAgo, daytime(rng))
  }
}

const activityRows = (rng: Rng, calendar: Calendar, userId: string, activityAgo: ReadonlyArray<number>) =>
  activityAgo.map(
    (ago): ActivityRow => ({
      user_id: userId,
      activity_date: calendar.date(-ago),
      kind: rng.weighted(activityKinds),
      created_at: calendar.instant(-ago, daytime(rng))
    })
  )

const between = (rng: Rng, fromMs: number, toMs: number) => Math.floor(fromMs + rng.float() * (toMs - fromMs))

const tokenRow = (world: World, userId: string, platform: Platform, createdMs: number, revokedMs: number | null) => {
  const row: TokenRow = {
    user_id: userId,
    token: pushToken(world.rng, world.keys, world.tokenCount, platform),
    platform,
    created_at: new Date(createdMs).toISOString(),
    revoked_at: revokedMs === null ? null : new Date(revokedMs).toISOString()
  }
  world.tokenCount++
  return row
}

/**
 * Most mentors have the app installed on one device; some moved to a second one, often leaving
 * the first token revoked, and a few uninstalled, leaving no live token at all.
 */
const tokenRows = (world: World, mentor: MentorRow): Array<TokenRow> => {
  const { rng, nowMs } = world
  if (!rng.chance(0.85)) return []

  const platform: Platform = rng.chance(0.6) ? "fcm" : "expo"
  const joinedMs = Date.parse(mentor.created_at)
  const firstMs = between(rng, joinedMs, joinedMs + (nowMs - joinedMs) * 0.2)

  if (rng.chance(0.15)) {
    const secondMs = between(rng, firstMs, nowMs)
    const secondPlatform = rng.chance(0.8) ? platform : platform === "fcm" ? "expo" : "fcm"
    const replaced = rng.chance(0.5) ? secondMs : null
    return [
      tokenRow(world, mentor.user_id, platform, firstMs, replaced),
      tokenRow(world, mentor.user_id, secondPlatform, secondMs, null)
    ]
  }

  const uninstalled = rng.chance(0.03) ? between(rng, firstMs, nowMs) : null
  return [tokenRow(world, mentor.user_id, platform, firstMs, uninstalled)]
}

const addMentor = (world: World, index: number, chunk: MentorChunk): void => {
  const { rng } = world
  const organisation = rng.weighted(world.organisations.map((org) => [org, org.template.share] as const))
  const pattern = rng.weighted(patterns)
  const { activityAgo, createdAgo } = history(rng, pattern)
  const mentor = mentorRow(world, organisation, index, createdAgo, pattern)

  chunk.mentors.push(mentor)
  chunk.activities.push(...activityRows(rng, organisation.calendar, mentor.user_id, activityAgo))
  chunk.tokens.push(...tokenRows(world, mentor))
}

/** One chunk's worth of mentors is a single statement for the mentor rows and keeps memory flat. */
const MENTORS_PER_CHUNK = 1000

/** Lazily, so that only one chunk of generated rows is held at a time. */
function* mentorChunks(world: World, total: number): Generator<MentorChunk> {
  for (let start = 0; start < total; start += MENTORS_PER_CHUNK) {
    const chunk: MentorChunk = { mentors: [], activities: [], tokens: [] }
    for (let index = start; index < Math.min(total, start + MENTORS_PER_CHUNK); index++) addMentor(world, index, chunk)
    yield chunk
  }
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

/** Postgres numbers bind parameters with 16 bits. */
const MAX_PARAMETERS = 65_535

// Larger statements were measured no faster on a Postgres server and slower on PGlite.
const MAX_ROWS_PER_STATEMENT = 1000

/** Multi-row inserts, each statement kept under both the row cap and the parameter limit. */
const insertRows = <Row extends Record<string, unknown>>(
  sql: SqlClient.SqlClient,
  table: string,
  rows: ReadonlyArray<Row>
): Effect.Effect<number, SqlError.SqlError> => {
  const [first] = rows
  if (first === undefined) return Effect.succeed(0)
  const columns = Object.keys(first).length
  const perStatement = Math.min(MAX_ROWS_PER_STATEMENT, Math.floor(MAX_PARAMETERS / columns))

  const statements = Array.from({ length: Math.ceil(rows.length / perStatement) }, (_, i) =>
    rows.slice(i * perStatement, (i + 1) * perStatement)
  )
  return Effect.forEach(statements, (batch) => sql`INSERT INTO ${sql(table)} ${sql.insert(batch)}`, {
    discard: true
  }).pipe(Effect.as(rows.length))
}

const insertOrganisations = (sql: SqlClient.SqlClient, world: World) =>
  Effect.gen(function* () {
    const organisations = yield* insertRows(
      sql,
      "organisations",
      world.organisations.map((org) => ({ id: org.id, name: org.template.name, timezone: org.template.timezone }))
    )

    const chapters = yield* insertRows(
      sql,
      "chapters",
      world.organisations.flatMap((org) =>
        org.chapters.map((chapter) => ({ id: chapter.id, organisation_id: org.id, name: chapter.name }))
      )
    )

    return { organisations, chapters }
  })

/**
 * Only organisations that override a default get a row; for the others a missing row means the
 * defaults. There are at most a handful, so one statement each is fine.
 */
const insertScenarioConfig = (sql: SqlClient.SqlClient, world: World) =>
  Effect.forEach(
    world.organisations.flatMap((org) => (org.template.inactivityDays === undefined ? [] : [org])),
    (org) => {
      const params = JSON.stringify({
        ...scenarioDefaults.inactivity.params,
        inactivity_days: org.template.inactivityDays
      })
      const cooldownDays = scenarioDefaults.inactivity.cooldownDays

      // Cast through text so that every driver hands the JSON to Postgres exactly as written.
      return sql`
        INSERT INTO scenario_evaluation_config (organisation_id, scenario_type, enabled, cooldown_days, params)
        VALUES (${org.id}, 'inactivity', true, ${cooldownDays}, ${params}::text::jsonb)
      `
    }
  ).pipe(Effect.map((statements) => statements.length))

const insertMentors = (sql: SqlClient.SqlClient, world: World, total: number) =>
  Effect.gen(function* () {
    const counts = { peer_mentors: 0, mentor_activities: 0, push_tokens: 0 }
    const perOrganisation = new Map<string, number>()

    for (const chunk of mentorChunks(world, total)) {
      // Parents first: activities and tokens reference the mentors of their own chunk.
      counts.peer_mentors += yield* insertRows(sql, "peer_mentors", chunk.mentors)
      counts.mentor_activities += yield* insertRows(sql, "mentor_activities", chunk.activities)
      counts.push_tokens += yield* insertRows(sql, "push_tokens", chunk.tokens)

      for (const mentor of chunk.mentors) {
        perOrganisation.set(mentor.organisation_id, (perOrganisation.get(mentor.organisation_id) ?? 0) + 1)
      }
    }

    return { counts, perOrganisation }
  })

// The CLI checks its flags before calling, so options that get here invalid are a bug: a defect.
const validate = (options: SeedOptions): Effect.Effect<void> => {
  if (!Number.isSafeInteger(options.mentors) || options.mentors < 0) {
    return Effect.dieMessage("seed: mentors must be a non-negative integer")
  }
  if (!Number.isFinite(options.randomSeed)) {
    return Effect.dieMessage("seed: randomSeed must be a finite number")
  }
  if (Number.isNaN(options.now.getTime())) {
    return Effect.dieMessage("seed: now must be a valid date")
  }
  return Effect.void
}

/**
 * Fills an empty database (see `isDatabaseEmpty`) with the demo population. It runs in one
 * transaction, so a failed seed leaves the database empty and the CLI can simply try again.
 */
export const seed = (options: SeedOptions): Effect.Effect<SeedSummary, SqlError.SqlError, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    yield* validate(options)
    const sql = yield* SqlClient.SqlClient
    const world = makeWorld(options)

    const written = yield* sql.withTransaction(
      Effect.gen(function* () {
        const parents = yield* insertOrganisations(sql, world)
        const config = yield* insertScenarioConfig(sql, world)
        const mentors = yield* insertMentors(sql, world, options.mentors)
        return { parents, config, mentors }
      })
    )

    return {
      organisations: world.organisations.map((org) => ({
        name: org.template.name,
        timezone: org.template.timezone,
        chapters: org.chapters.length,
        mentors: written.mentors.perOrganisation.get(org.id) ?? 0
      })),
      counts: { ...written.parents, ...written.mentors.counts, scenario_evaluation_config: written.config }
    }
  }).pipe(Effect.withSpan("Seed.seed", { attributes: { mentors: options.mentors } }))

/** True when there are neither organisations nor mentors: the state `seed` expects to start from. */
export const isDatabaseEmpty: Effect.Effect<boolean, SqlError.SqlError, SqlClient.SqlClient> = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ readonly empty: boolean }>`
      SELECT NOT EXISTS (SELECT 1 FROM organisations) AND NOT EXISTS (SELECT 1 FROM peer_mentors) AS empty
    `
  return rows[0]?.empty === true
})
