/**
 * The legacy HTTP+SSE transport (2024-11-05) passes through the HTTP proxy: the SDK's SSE client
 * against server-everything's `sse` mode, with the session's messages recorded.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { auditEnv, readLog } from "./helpers.ts";
import { drainLines, lineMatching, LISTENING, splitLines } from "./lines.ts";

const root = new URL("..", import.meta.url).pathname;
const deno = Deno.execPath();

Deno.test("a legacy HTTP+SSE server works through the proxy, and its messages are recorded", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-legacy-" });
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = probe.addr.port;
  probe.close();
  const server = new Deno.Command(deno, {
    args: ["run", "-A", "npm:@modelcontextprotocol/server-everything@2026.8.31", "sse"],
    env: { PORT: String(port) },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const serverOut = splitLines(server.stderr)[Symbol.asyncIterator]();
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
      `http://127.0.0.1:${port}/sse`,
    ],
    env: {
      ...auditEnv(`${dir}/audit.jsonl`),
      AUDIT_SECRET: "legacy-sse-secret-0123456789abcdef",
    },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const proxyErr = splitLines(proxy.stderr)[Symbol.asyncIterator]();
  try {
    await lineMatching(serverOut, /running on port/);
    const [, url] = await lineMatching(proxyErr, LISTENING);
    const client = new Client({ name: "legacy-sse-client", version: "1.0.0" });
    await client.connect(new SSEClientTransport(new URL(`${url}/sse`)));
    const echo = await client.callTool({ name: "echo", arguments: { message: "legacy" } });
    assertEquals(echo.content, [{ type: "text", text: "Echo: legacy" }]);
    await client.close();
    proxy.kill("SIGTERM");
    await drainLines(proxyErr);
    assertEquals((await proxy.status).code, 0);
    const recs = (await readLog(`${dir}/audit.jsonl`)).records;
    const answer = recs.find((r) => r.kind === "response" && r.tool_name === "echo");
    assert(
      answer !== undefined,
      "the answer that came over the SSE stream is recorded and correlated",
    );
    const invalid = recs.filter((r) => r.kind === "invalid");
    assertEquals(invalid, [], "nothing but JSON-RPC messages recorded");
  } finally {
    for (const p of [proxy, server]) {
      try {
        p.kill("SIGKILL");
      } catch {
        // Already ended.
      }
      await p.status;
    }
    await drainLines(serverOut);
    Deno.removeSync(dir, { recursive: true });
  }
});
