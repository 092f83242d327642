/**
 * The Supabase Edge Function `scenario-scheduler` (see supabase/config.toml), called by pg_cron
 * through pg_net with `Authorization: Bearer <SCHEDULER_CRON_SECRET>`.
 */
import { makeEdgeFunction } from "../Function.ts"
import { denoRuntime, onBeforeUnload, waitUntilOf } from "../Runtime.ts"

const deno = denoRuntime()
const edgeFunction = makeEdgeFunction({ env: deno.env.toObject(), waitUntil: waitUntilOf() })

onBeforeUnload((reason) => {
  void edgeFunction.shutdown(reason)
})

deno.serve(edgeFunction.handle)
