import { Schema } from "effect"

/** `Date` quietly rolls 2026-02-30 over into March; whoever wrote it made a mistake. */
const isCalendarDate = (text: string): boolean => {
  const [year, month, day] = text.slice(0, 10).split("-").map(Number) as [number, number, number]
  const date = new Date(Date.UTC(year, month - 1, day))
  return date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day
}

/**
 * An ISO-8601 moment with an explicit calendar date, as `now` is given to a run: `2026-12-04` or
 * `2026-12-04T06:00:00Z`. `Date.parse` alone would accept far too much.
 */
export const IsoMoment = Schema.String.pipe(
  Schema.pattern(/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/),
  Schema.filter(isCalendarDate, { message: () => "not a date of the calendar" }),
  Schema.compose(Schema.Date)
)
