/**
 * The HTTP proxy in front of a TLS upstream on loopback, with certificates the test makes:
 * a custom CA, a server name override, and an unknown CA refused with a recorded 502.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { makeCerts, NAMED_HOST } from "./fixtures/tls/make_certs.ts";
import { auditEnv, readLog } from "./helpers.ts";
import { drainLines, lineMatching, LISTENING, splitLines } from "./lines.ts";

const root = new URL("..", import.meta.url).pathname;
const deno = Deno.execPath();

/** Runs the proxy with `env`, sends one request, returns the answer and the records. */
async function throughProxy(upstream: string, env: Record<string, string>) {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-tls-" });
  const log = `${dir}/audit.jsonl`;
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
      upstream,
    ],
    env: { AUDIT_SECRET: "tls-test-secret-0123456789abcdef", ...auditEnv(log), ...env },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const lines = splitLines(proxy.stderr)[Symbol.asyncIterator]();
  try {
    const [, url] = await lineMatching(lines, LISTENING);
    const res = await fetch(`${url}/mcp`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
      },
      body: '{"jsonrpc":"2.0","id":7,"method":"ping"}',
    });
    const body = await res.text();
    proxy.kill("SIGTERM");
    await drainLines(lines);
    await proxy.status;
    const { records } = await readLog(log);
    return { status: res.status, body, records };
  } finally {
    try {
      proxy.kill("SIGKILL");
    } catch {
      // Already ended.
    }
    await proxy.status;
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test("the HTTP proxy reaches TLS upstreams with a custom CA, a server name override, or not at all", async () => {
  await using certs = await makeCerts();
  const ac = new AbortController();
  const answer = (req: Request) =>
    req.json().then((m) => Response.json({ jsonrpc: "2.0", id: m.id, result: {} }));
  const plain = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: certs.server.cert,
    key: certs.server.key,
    signal: ac.signal,
    onListen: () => {},
  }, answer);
  const named = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: certs.named.cert,
    key: certs.named.key,
    signal: ac.signal,
    onListen: () => {},
  }, answer);
  try {
    const ok = await throughProxy(`https://127.0.0.1:${plain.addr.port}/mcp`, {
      MCP_AUDIT_PROXY_TLS_CA_FILE: certs.ca.certFile,
    });
    assertEquals(ok.status, 200);
    assertEquals(ok.body, '{"jsonrpc":"2.0","id":7,"result":{}}');
    assert(ok.records.some((r) => r.kind === "response" && r.jsonrpc_id === 7));

    const renamed = await throughProxy(`https://127.0.0.1:${named.addr.port}/mcp`, {
      MCP_AUDIT_PROXY_TLS_CA_FILE: certs.ca.certFile,
      MCP_AUDIT_PROXY_TLS_SERVER_NAME: NAMED_HOST,
    });
    assertEquals(renamed.status, 200);

    const refused = await throughProxy(`https://127.0.0.1:${plain.addr.port}/mcp`, {
      MCP_AUDIT_PROXY_TLS_CA_FILE: certs.otherCa.certFile,
    });
    assertEquals(refused.status, 502);
    assertEquals(JSON.parse(refused.body).error.code, -32603);
    const error = refused.records.find((r) => r.kind === "error");
    assertEquals(error?.jsonrpc_id, 7);
  } finally {
    ac.abort();
    await plain.finished;
    await named.finished;
  }
});
