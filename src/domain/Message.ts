import type { Payload } from "./Evaluation.ts"
import type { ScenarioType } from "./Scenario.ts"

/** The text a mentor sees on their phone. It never names anyone: the payload holds only numbers and dates. */
export interface PushContent {
  readonly title: string
  readonly body: string
  /** Sent alongside for the app to deep-link; push providers want every value as a string. */
  readonly data: Readonly<Record<string, string>>
}

const numberOf = (payload: Payload, key: string): string => String(payload[key] ?? "")

const texts: Record<ScenarioType, (payload: Payload) => { title: string; body: string }> = {
  inactivity: (payload) => ({
    title: "We miss you",
    body:
      payload.last_activity_date == null
        ? `You joined ${numberOf(payload, "days_inactive")} days ago. Your first mentee would love to hear from you.`
        : `It has been ${numberOf(payload, "days_inactive")} days since your last activity. Your mentees would love to hear from you.`
  }),
  milestone: (payload) => ({
    title: "Milestone reached",
    body: `You have logged ${numberOf(payload, "threshold")} activities. Thank you for your time!`
  }),
  expiry: (payload) => ({
    title: "Certification expiring soon",
    body: `Your certification expires on ${numberOf(payload, "expires_on")}. Renew it to keep mentoring.`
  })
}

export const renderMessage = (scenarioType: ScenarioType, notificationId: string, payload: Payload): PushContent => {
  const data: Record<string, string> = { scenario_type: scenarioType, notification_id: notificationId }
  for (const [key, value] of Object.entries(payload)) {
    if (value === null || value === undefined) continue
    data[key] = typeof value === "string" ? value : JSON.stringify(value)
  }

  return { ...texts[scenarioType](payload), data }
}
