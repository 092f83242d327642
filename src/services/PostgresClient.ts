import { PgClient } from "@effect/sql-pg"
import { Duration, type Redacted } from "effect"
import pg from "pg"

const dateOid = 1082

/**
 * node-postgres turns a `date` into a JavaScript Date at local midnight, which shifts the calendar
 * date in any time zone east or west of UTC. Scenario dates are calendar dates, so they stay text.
 */
const types = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === dateOid ? (value: string) => value : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser
}

/** A client for a Postgres server (Supabase's database or any other), failing within seconds when it is unreachable. */
export const layer = (url: Redacted.Redacted<string>, applicationName = "scenario-scheduler") =>
  PgClient.layer({
    url,
    types,
    connectTimeout: Duration.seconds(5),
    applicationName
  })
