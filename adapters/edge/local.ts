/**
 * Serves the Edge Function on this machine, as `npm run edge` does: on 127.0.0.1, on PORT (8000
 * unless set; 0 picks a free port, which the listening line names), with the environment Supabase
 * would give it; the outbox goes to .scenario-scheduler/ unless OUTBOX_PATH says otherwise.
 * SIGINT and SIGTERM stop it the way Supabase stops an isolate: runs still going are interrupted
 * and end as partial runs.
 */
import { Config } from "effect"
import { makeEdgeFunction } from "./Function.ts"
import { denoRuntime } from "./Runtime.ts"

const hostname = "127.0.0.1"

const port = Config.integer("PORT").pipe(
  Config.validate({
    message: "must be a port number, or 0 for any free port",
    validation: (n) => n >= 0 && n <= 65535
  }),
  Config.withDefault(8000)
)

// Beside the CLI's embedded database, rather than in the /tmp Supabase would allow.
const localDefaults = { OUTBOX_PATH: ".scenario-scheduler/outbox.jsonl" }

const deno = denoRuntime()
const edgeFunction = makeEdgeFunction({ env: { ...localDefaults, ...deno.env.toObject() } })

const server = deno.serve(
  {
    hostname,
    port: await edgeFunction.setting(port),
    // Deno would otherwise announce itself with a line that is not JSON.
    onListen: (address) => {
      void edgeFunction.log("info", "edge_server_listening", { hostname: address.hostname, port: address.port })
    }
  },
  edgeFunction.handle
)

let stopping = false

const stop = async (reason: string) => {
  if (stopping) return
  stopping = true

  await edgeFunction.log("info", "edge_server_stopping", { reason })
  await edgeFunction.shutdown(reason)
  await server.shutdown()
  await edgeFunction.dispose()
}

deno.addSignalListener("SIGINT", () => void stop("SIGINT"))
deno.addSignalListener("SIGTERM", () => void stop("SIGTERM"))
