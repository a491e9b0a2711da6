/**
 * The bench's bare HTTP relay: a Hono app whose one route forwards each request with `fetch` to
 * the upstream and returns its answer, with no audit — the floor of a Hono + `fetch` proxy in
 * Deno, measured by `deno task bench` beside the direct upstream and the proxy. The hop-by-hop
 * headers are left to `fetch` and `Deno.serve`, which set their own.
 *
 * Usage: `deno run --allow-net scripts/bench_http_relay.ts --upstream URL [--port N]` (port 0,
 * the default: any free port). Writes `listening on http://HOST:PORT/mcp` to stderr once it
 * accepts connections; runs until killed.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Hono } from "hono";

const { values } = parseArgs({
  args: Deno.args,
  options: { upstream: { type: "string" }, port: { type: "string", default: "0" } },
  strict: true,
});
if (values.upstream === undefined) {
  console.error(
    "usage: deno run --allow-net scripts/bench_http_relay.ts --upstream URL [--port N]",
  );
  Deno.exit(2);
}
const upstream = new URL(values.upstream);

const app = new Hono();
app.all("/mcp", async function relay(c) {
  const req = c.req.raw;
  const headers = new Headers(req.headers);
  headers.delete("host");
  const res = await fetch(upstream, {
    method: req.method,
    headers,
    // The bench's bodies are small: read whole, as a simple relay would.
    body: req.method === "GET" || req.method === "HEAD" ? null : await req.arrayBuffer(),
    signal: req.signal,
  });
  return new Response(res.body, { status: res.status, headers: res.headers });
});

const server = Deno.serve({
  hostname: "127.0.0.1",
  port: Number(values.port),
  onListen: ({ hostname, port }) => console.error(`listening on http://${hostname}:${port}/mcp`),
}, app.fetch);
Deno.addSignalListener("SIGTERM", () => server.shutdown());
await server.finished;
