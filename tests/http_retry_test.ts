/**
 * Upstream retries through the real proxy: safe reads are repeated on 503 and 429, `tools/call`
 * never is, and with retries off (the default) nothing is.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { auditEnv } from "./helpers.ts";
import { drainLines, lineMatching, LISTENING, splitLines } from "./lines.ts";

const root = new URL("..", import.meta.url).pathname;
const deno = Deno.execPath();

Deno.test("safe reads are retried on 503 and 429 until they succeed; tools/call never is", async () => {
  const attempts = new Map<string, number>();
  const ac = new AbortController();
  // Each method fails twice (503, then 429 with Retry-After: 0), then answers.
  const upstream = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    signal: ac.signal,
    onListen: () => {},
  }, async (req) => {
    const m = await req.json();
    const n = (attempts.get(m.method) ?? 0) + 1;
    attempts.set(m.method, n);
    if (n === 1) return new Response("busy", { status: 503 });
    if (n === 2) return new Response("slow down", { status: 429, headers: { "retry-after": "0" } });
    return Response.json({ jsonrpc: "2.0", id: m.id, result: {} });
  });
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-retry-" });
  const proxy = new Deno.Command(deno, {
    args: [
      "run",
      "-A",
      `${root}main.ts`,
      "--transport",
      "http",
      "--port",
      "0",
      "--upstream",
      `http://127.0.0.1:${upstream.addr.port}/mcp`,
    ],
    env: {
      ...auditEnv(`${dir}/audit.jsonl`),
      MCP_AUDIT_PROXY_RETRY_MAX_RETRIES: "3",
      MCP_AUDIT_PROXY_RETRY_INITIAL_INTERVAL_MS: "1",
      MCP_AUDIT_PROXY_RETRY_MAX_INTERVAL_MS: "5",
    },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const lines = splitLines(proxy.stderr)[Symbol.asyncIterator]();
  try {
    const [, url] = await lineMatching(lines, LISTENING);
    const post = (body: string) =>
      fetch(`${url}/mcp`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
    const list = await post('{"jsonrpc":"2.0","id":1,"method":"tools/list"}');
    assertEquals(list.status, 200);
    assertEquals(await list.json(), { jsonrpc: "2.0", id: 1, result: {} });
    assertEquals(attempts.get("tools/list"), 3);

    const call = await post('{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x"}}');
    assertEquals(call.status, 503, "tools/call gets the upstream's own answer");
    await call.body?.cancel();
    assertEquals(attempts.get("tools/call"), 1);

    const init = await post('{"jsonrpc":"2.0","id":3,"method":"initialize","params":{}}');
    assertEquals(init.status, 503, "initialize is never retried");
    await init.body?.cancel();
    assertEquals(attempts.get("initialize"), 1);
  } finally {
    proxy.kill("SIGTERM");
    await drainLines(lines);
    await proxy.status;
    ac.abort();
    await upstream.finished;
    Deno.removeSync(dir, { recursive: true });
  }
});
