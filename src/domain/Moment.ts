import { Schema } from "effect"

/**
 * `Date` quietly rolls 2026-02-30 over into March; whoever wrote it made a mistake. Years outside
 * 1970–2999 are typing mistakes too, and push date arithmetic in the database out of range.
 */
const isCalendarDate = (text: string): boolean => {
  const [year, month, day] = text.slice(0, 10).split("-").map(Number) as [number, number, number]
  const date = new Date(Date.UTC(year, month - 1, day))
  const real = date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day
  return real && year >= 1970 && year <= 2999
}

/**
 * An ISO-8601 moment with an explicit calendar date, as `now` is given to a run: `2026-12-04`
 * (midnight UTC) or `2026-12-04T06:00:00Z`. A time must say its zone (`Z` or an offset): read in the
 * host's zone, the same flag would judge a different day on another machine.
 */
export const IsoMoment = Schema.String.pipe(
  Schema.pattern(/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2}))?$/),
  Schema.filter(isCalendarDate, { message: () => "not a date of the calendar" }),
  Schema.compose(Schema.Date)
)
