import { createServer, type IncomingHttpHeaders } from "node:http"
import type { AddressInfo } from "node:net"
import { Effect } from "effect"

/**
 * A local HTTP server on 127.0.0.1 (a random port) that answers JSON as a test scripts it: the
 * stand-in for a push provider or an OAuth endpoint. It closes when the test's scope does.
 */

export interface Reply {
  readonly status: number
  readonly headers?: Readonly<Record<string, string>>
  readonly body?: unknown
  /** Never answer, to make the client time out. */
  readonly hang?: boolean
}

export interface Received {
  readonly path: string
  readonly headers: IncomingHttpHeaders
  readonly body: string
}

export const listen = (handle: (request: Received) => Reply | Promise<Reply>) =>
  Effect.acquireRelease(
    Effect.async<{ readonly url: string; readonly close: () => Promise<void> }>((resume) => {
      const server = createServer((request, response) => {
        const chunks: Array<Buffer> = []
        request.on("data", (chunk: Buffer) => chunks.push(chunk))
        request.on("end", async () => {
          const body = Buffer.concat(chunks).toString("utf8")
          const reply = await handle({ path: request.url ?? "", headers: request.headers, body })
          if (reply.hang) return

          response.writeHead(reply.status, { "content-type": "application/json", ...reply.headers })
          response.end(reply.body === undefined ? "" : JSON.stringify(reply.body))
        })
      })

      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as AddressInfo
        const close = () =>
          new Promise<void>((resolve) => {
            server.closeAllConnections()
            server.close(() => resolve())
          })
        resume(Effect.succeed({ url: `http://127.0.0.1:${port}`, close }))
      })
    }),
    (server) => Effect.promise(server.close)
  )
