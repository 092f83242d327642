import { Config, Effect, Layer } from "effect"
import { InvalidConfigError, type SchedulerError } from "../../src/domain/Errors.ts"
import { fromConfigError } from "../../src/services/EnvironmentConfig.ts"
import * as PostgresClient from "../../src/services/PostgresClient.ts"
import { pushProviderLayer } from "../../src/services/PushConfig.ts"
import type { PushProvider } from "../../src/services/PushProvider.ts"
import * as SqlStore from "../../src/services/SqlStore.ts"
import type { Store } from "../../src/services/Store.ts"
import * as SupabaseStore from "../../src/services/SupabaseStore.ts"

/**
 * The services of one run of the Edge Function, built from the environment when the run starts and
 * released when it ends, so a run that cannot build them still reports `scheduler_run_failed`.
 *
 * SCHEDULER_STORE chooses how the function reaches the database:
 * - `supabase` (default): the Data API through supabase-js, with the service role or a secret key;
 * - `direct`: a Postgres connection to SUPABASE_DB_URL. node-postgres sends every statement
 *   unnamed (no named prepared statements), which Supabase's transaction pooler accepts as it is.
 */

export const storeKind = Config.literal(
  "supabase",
  "direct"
)("SCHEDULER_STORE").pipe(Config.withDefault("supabase" as const))

/** Supabase allows writing under /tmp only. */
export const outboxPath = Config.string("OUTBOX_PATH").pipe(Config.withDefault("/tmp/scenario-scheduler/outbox.jsonl"))

const directStore: Layer.Layer<Store, SchedulerError> = Layer.unwrapEffect(
  Effect.map(Effect.mapError(Config.redacted("SUPABASE_DB_URL"), fromConfigError), (url) =>
    SqlStore.layer.pipe(
      Layer.provide(PostgresClient.layer(url, "scenario-scheduler-edge").pipe(Layer.mapError(SqlStore.fromSqlError)))
    )
  )
)

const storeLayer: Layer.Layer<Store, SchedulerError> = Layer.unwrapEffect(
  Effect.map(Effect.mapError(storeKind, fromConfigError), (kind) =>
    kind === "direct" ? directStore : SupabaseStore.layerConfig
  )
)

/**
 * On the Edge the provider must be named: the outbox default of local runs would only write to the
 * function's /tmp, and a deployment that forgot the setting would mark every notification sent.
 */
const providerNamed = Config.string("PUSH_PROVIDER").pipe(
  Effect.mapError(
    () =>
      new InvalidConfigError({
        reason: "environment",
        message: "PUSH_PROVIDER must be set on the Edge Function: fcm, expo, or outbox for a trial"
      })
  )
)

const pushLayer: Layer.Layer<PushProvider, SchedulerError> = Layer.unwrapEffect(
  Effect.zipRight(providerNamed, Effect.mapError(outboxPath, fromConfigError)).pipe(Effect.map(pushProviderLayer))
)

export const servicesLayer: Layer.Layer<Store | PushProvider, SchedulerError> = Layer.merge(storeLayer, pushLayer)
