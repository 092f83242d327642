/**
 * A local stand-in for Supabase's Data API (PostgREST behind the API gateway), serving
 * `POST /rest/v1/rpc/<function>` on 127.0.0.1 over a real Postgres database, with PostgREST's
 * documented behaviour where the store depends on it:
 *
 * - the `apikey` header is required and names the role (service_role or anon); a Bearer token, when
 *   sent, must be one of the keys too, and the call runs as that role with its JWT claims set;
 * - the JSON body holds the arguments by name, converted to the function's parameter types the way
 *   PostgREST does it (`json_to_record`), and chooses the overload by those names;
 * - a set-returning function answers a JSON array, cut at `max-rows` rows; with `Prefer: count=exact`
 *   the total goes in `Content-Range`, and a cut answer is `206 Partial Content`; a scalar function
 *   answers its value as JSON, a void one `204 No Content`;
 * - a failure answers `{ code, message, details, hint }` with PostgREST's status for its SQLSTATE.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { Effect, type Scope } from "effect"
import pg from "pg"

export interface PostgrestCall {
  readonly fn: string
  readonly args: Record<string, unknown>
  readonly status: number
  /** Rows answered and rows the function returned, for set-returning functions. */
  readonly returned?: number
  readonly total?: number
  /** The error body as sent, for failed calls. */
  readonly error?: Record<string, unknown>
}

export interface PostgrestStandIn {
  /** The "project URL": the store appends `/rest/v1/rpc/<function>`. */
  readonly url: string
  readonly serviceKey: string
  readonly anonKey: string
  readonly calls: Array<PostgrestCall>
}

export interface PostgrestOptions {
  readonly databaseUrl: string
  readonly maxRows: number
}

interface Routine {
  readonly argNames: ReadonlyArray<string>
  readonly argTypes: ReadonlyArray<string>
  readonly returnsSet: boolean
  readonly returnsVoid: boolean
}

interface Answer {
  readonly status: number
  readonly body?: string
  readonly headers?: Record<string, string>
  readonly returned?: number
  readonly total?: number
}

const keys = { serviceKey: "test-service-role-key", anonKey: "test-anon-key" } as const

const roleOfKey = (key: string | undefined): string | undefined =>
  key === keys.serviceKey ? "service_role" : key === keys.anonKey ? "anon" : undefined

const errorAnswer = (status: number, body: Record<string, unknown>): Answer => ({ status, body: JSON.stringify(body) })

/** PostgREST's HTTP status for a SQLSTATE, as its documentation lists them. */
const statusOfSqlState = (code: string, role: string): number => {
  if (code === "42501") return role === "anon" ? 401 : 403
  if (code === "42883" || code === "42P01") return 404
  if (code === "23503" || code === "23505") return 409
  if (code === "25006") return 405
  if (code === "P0001") return 400
  if (/^(08|53)/.test(code)) return 503
  if (/^(0L|0P|28)/.test(code)) return 403
  if (/^(09|25|2D|38|39|3B|40|54|55|57|58|F0|HV|P0|XX)/.test(code)) return 500
  return 400
}

const findRoutine = async (client: pg.PoolClient, fn: string, names: ReadonlyArray<string>) => {
  const { rows } = await client.query<{
    arg_names: Array<string>
    arg_types: Array<string>
    returns_set: boolean
    returns_void: boolean
  }>(
    `select
       coalesce(array(
         select a.name
         from unnest(p.proargnames, coalesce(p.proargmodes, array_fill('i'::"char", array[cardinality(p.proargnames)])))
           with ordinality as a (name, mode, position)
         where a.mode in ('i', 'b', 'v')
         order by a.position
       ), '{}') as arg_names,
       array(
         select format_type(t.oid, null) from unnest(p.proargtypes::oid[]) with ordinality as t (oid, position)
         order by t.position
       ) as arg_types,
       p.proretset as returns_set,
       p.prorettype = 'pg_catalog.void'::regtype as returns_void
     from pg_proc as p
     join pg_namespace as n on n.oid = p.pronamespace
     where n.nspname = 'public' and p.proname = $1`,
    [fn]
  )
  const wanted = [...names].sort().join(",")
  const found = rows.find((row) => [...row.arg_names].sort().join(",") === wanted)

  return found === undefined
    ? undefined
    : ({
        argNames: found.arg_names,
        argTypes: found.arg_types,
        returnsSet: found.returns_set,
        returnsVoid: found.returns_void
      } satisfies Routine)
}

const quote = (name: string) => `"${name.replace(/"/g, '""')}"`

/** The call as PostgREST builds it: arguments typed through json_to_record, passed by name. */
const statementOf = (fn: string, routine: Routine): string => {
  const columns = routine.argNames.map((name, index) => `${quote(name)} ${routine.argTypes[index]}`).join(", ")
  const args = routine.argNames.map((name) => `${quote(name)} := pgrst_args.${quote(name)}`).join(", ")
  const argsSource =
    columns === "" ? "select" : `select * from pg_catalog.jsonb_to_record($1::jsonb) as pgrst_a (${columns})`
  const call = `public.${quote(fn)}(${args})`

  if (!routine.returnsSet) {
    return `with pgrst_args as (${argsSource}) select pg_catalog.to_json(${call})::text as body from pgrst_args`
  }
  return `with pgrst_args as (${argsSource}),
    pgrst_source as (select pgrst_t.* from pgrst_args, lateral ${call} as pgrst_t)
    select
      (select pg_catalog.count(*) from pgrst_source)::integer as total,
      coalesce((select pg_catalog.json_agg(pgrst_s) from (select * from pgrst_source limit $2) as pgrst_s), '[]')::text
        as body`
}

const contentRange = (returned: number, total: number | undefined) =>
  `${returned === 0 ? "*" : `0-${returned - 1}`}/${total === undefined ? "*" : total}`

const execute = async (
  client: pg.PoolClient,
  fn: string,
  routine: Routine,
  body: Record<string, unknown>,
  counted: boolean,
  maxRows: number
): Promise<Answer> => {
  const statement = statementOf(fn, routine)
  const params = routine.returnsSet ? [JSON.stringify(body), maxRows] : [JSON.stringify(body)]
  const { rows } = await client.query<{ body: string | null; total?: number }>(statement, params)
  const first = rows[0]

  if (!routine.returnsSet) {
    return routine.returnsVoid ? { status: 204 } : { status: 200, body: first?.body ?? "null" }
  }

  const answered = JSON.parse(first?.body ?? "[]") as Array<unknown>
  const total = first?.total ?? 0
  return {
    status: counted && answered.length < total ? 206 : 200,
    body: first?.body ?? "[]",
    headers: { "content-range": contentRange(answered.length, counted ? total : undefined) },
    returned: answered.length,
    total
  }
}

/** Runs the call in a transaction as the caller's role, the way PostgREST does for each request. */
const callAs = async (
  pool: pg.Pool,
  role: string,
  fn: string,
  body: Record<string, unknown>,
  counted: boolean,
  maxRows: number
): Promise<Answer> => {
  const client = await pool.connect()
  try {
    await client.query("begin")
    await client.query(`set local role ${quote(role)}`)
    await client.query("select set_config('request.jwt.claims', $1, true)", [JSON.stringify({ role })])

    const routine = await findRoutine(client, fn, Object.keys(body))
    if (routine === undefined) {
      await client.query("rollback")
      return errorAnswer(404, {
        code: "PGRST202",
        message: `Could not find the function public.${fn}(${Object.keys(body).join(", ")}) in the schema cache`,
        details: `Searched for the function public.${fn} with parameters ${Object.keys(body).join(", ")}`,
        hint: null
      })
    }

    const answer = await execute(client, fn, routine, body, counted, maxRows)
    await client.query("commit")
    return answer
  } catch (error) {
    await client.query("rollback").catch(() => undefined)
    const failure = error as pg.DatabaseError
    return errorAnswer(statusOfSqlState(failure.code ?? "XX000", role), {
      code: failure.code ?? "XX000",
      message: failure.message,
      details: failure.detail ?? null,
      hint: failure.hint ?? null
    })
  } finally {
    client.release()
  }
}

const readBody = (request: IncomingMessage): Promise<string> =>
  new Promise((resolve, reject) => {
    let text = ""
    request.setEncoding("utf8")
    request.on("data", (chunk: string) => {
      text += chunk
    })
    request.on("end", () => resolve(text))
    request.on("error", reject)
  })

const parseArgs = (text: string): Record<string, unknown> | undefined => {
  try {
    const parsed: unknown = text === "" ? {} : JSON.parse(text)
    return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : undefined
  } catch {
    return undefined
  }
}

/** The gateway's and PostgREST's checks of the credentials: the role to run as, or the refusal. */
const authenticate = (request: IncomingMessage): { role: string } | Answer => {
  const apikey = request.headers.apikey
  if (typeof apikey !== "string") {
    return errorAnswer(401, { message: "No API key found in request", hint: "No `apikey` request header was found." })
  }
  const role = roleOfKey(apikey)
  if (role === undefined) return errorAnswer(401, { message: "Invalid API key" })

  const authorization = request.headers.authorization
  if (authorization === undefined) return { role }
  const bearerRole = roleOfKey(/^Bearer (.+)$/.exec(authorization)?.[1])
  return bearerRole === undefined
    ? errorAnswer(401, { code: "PGRST301", message: "Expected 3 parts in JWT; got 1", details: null, hint: null })
    : { role: bearerRole }
}

const route = async (
  pool: pg.Pool,
  options: PostgrestOptions,
  request: IncomingMessage,
  calls: Array<PostgrestCall>
) => {
  const fn = /^\/rest\/v1\/rpc\/([A-Za-z0-9_]+)$/.exec(new URL(request.url ?? "/", "http://stand-in").pathname)?.[1]
  const text = await readBody(request)
  if (fn === undefined) return errorAnswer(404, { code: "PGRST125", message: "Invalid path specified in request URL" })
  if (request.method !== "POST") return errorAnswer(405, { code: "PGRST117", message: "Unsupported HTTP method" })

  const identity = authenticate(request)
  if (!("role" in identity)) return identity

  const args = parseArgs(text)
  if (args === undefined) {
    return errorAnswer(400, { code: "PGRST102", message: "Empty or invalid json", details: null, hint: null })
  }

  const counted = /\bcount=exact\b/.test(String(request.headers.prefer ?? ""))
  const answer = await callAs(pool, identity.role, fn, args, counted, options.maxRows)
  calls.push({
    fn,
    args,
    status: answer.status,
    returned: answer.returned,
    total: answer.total,
    error: answer.status >= 400 && answer.body ? (JSON.parse(answer.body) as Record<string, unknown>) : undefined
  })
  return answer
}

const send = (response: ServerResponse, answer: Answer) => {
  response.writeHead(answer.status, {
    ...(answer.body === undefined ? {} : { "content-type": "application/json; charset=utf-8" }),
    ...answer.headers
  })
  response.end(answer.body)
}

/** Starts the stand-in on a free port of 127.0.0.1; it stops, and its connections close, with the scope. */
export const postgrestStandIn = (options: PostgrestOptions): Effect.Effect<PostgrestStandIn, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const pool = new pg.Pool({ connectionString: options.databaseUrl, max: 4 })
      // An idle connection the server closes (the test database being dropped) is no failure of a call.
      pool.on("error", () => undefined)
      const calls: Array<PostgrestCall> = []
      const server = createServer((request, response) => {
        route(pool, options, request, calls).then(
          (answer) => send(response, answer),
          (error: unknown) => send(response, errorAnswer(500, { message: String(error) }))
        )
      })
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
      const { port } = server.address() as AddressInfo

      return { server, pool, standIn: { url: `http://127.0.0.1:${port}`, ...keys, calls } }
    }),
    ({ server, pool }) =>
      Effect.promise(async () => {
        server.closeAllConnections()
        await new Promise((resolve) => server.close(resolve))
        await pool.end()
      })
  ).pipe(Effect.map(({ standIn }) => standIn))
