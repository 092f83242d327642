import { Config, type ConfigError, Option, Redacted } from "effect"
import { InvalidConfigError } from "../domain/Errors.ts"

/** The building blocks of the settings every service reads from the environment. */

export const environmentError = (message: string) => new InvalidConfigError({ reason: "environment", message })

export const fromConfigError = (error: ConfigError.ConfigError) => environmentError(String(error))

export const isHttpUrl = (text: string): boolean =>
  URL.canParse(text) && ["https:", "http:"].includes(new URL(text).protocol)

/** An http(s) URL, without the trailing slashes that would double up when paths are appended. */
export const httpUrl = (name: string) =>
  Config.string(name).pipe(
    Config.validate({ message: "must be an http(s) URL", validation: isHttpUrl }),
    Config.map((url) => url.replace(/\/+$/, ""))
  )

export const integerBetween = (name: string, min: number, max: number = Number.MAX_SAFE_INTEGER) =>
  Config.integer(name).pipe(
    Config.validate({
      message: max === Number.MAX_SAFE_INTEGER ? `must be at least ${min}` : `must be between ${min} and ${max}`,
      validation: (n) => n >= min && n <= max
    })
  )

/** An unset and an empty variable both mean "not given": deployment tools often leave secrets blank. */
export const optionalSecret = (name: string) =>
  Config.option(Config.redacted(name)).pipe(Config.map(Option.filter((secret) => Redacted.value(secret).trim() !== "")))
