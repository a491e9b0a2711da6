import assert from "node:assert/strict";
import { loadConfig } from "../config/load.ts";
import { checkUpstream, PROTOCOL_VERSION, readAnswer } from "./upstream_check.ts";

function config(upstreamArgv: string[], env: Record<string, string> = {}) {
  return loadConfig({ env, flags: new Map(), upstreamArgv }).config;
}

const deps = (timeoutMs = 10_000) => ({
  env: { PATH: Deno.env.get("PATH") ?? "" },
  timeoutMs,
  mono: () => performance.now(),
});

/** A stdio MCP server: answers initialize, writes every line it got to `record` when stdin ends. */
const SERVER = `
const record = Deno.args[0];
const got = [];
let pending = "";
for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
  pending += chunk;
  const lines = pending.split("\\n");
  pending = lines.pop();
  for (const line of lines) {
    got.push(line);
    const m = JSON.parse(line);
    if (m.method === "initialize") {
      console.log(JSON.stringify({ jsonrpc: "2.0", method: "notifications/message", params: {} }));
      console.log(JSON.stringify({ jsonrpc: "2.0", id: m.id, result: {
        protocolVersion: m.params.protocolVersion, capabilities: {},
        serverInfo: { name: "fixture", version: "1.2.3" } } }));
    }
  }
}
Deno.writeTextFileSync(record, got.join("\\n"));
`;

Deno.test("upstream: a stdio server is asked initialize and nothing else, and ends when its stdin closes", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const argv = [Deno.execPath(), "eval", SERVER, `${dir}/got.txt`];
    const r = await checkUpstream(config(argv), deps());
    assert.equal(r.status, "ok", JSON.stringify(r));
    assert.match(
      r.detail,
      new RegExp(`^fixture 1\\.2\\.3, protocol ${PROTOCOL_VERSION} \\(stdio: `),
    );
    assert.deepEqual(r.notes, ["1 other line(s) on its stdout before the answer"]);
    // Written by the server once its stdin ended: it exited by itself, having read one request.
    const got = Deno.readTextFileSync(`${dir}/got.txt`).split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(got.map((m) => m.method), ["initialize"]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("upstream: a command that is not there, one that exits, and one that never answers fail with why", async () => {
  const missing = await checkUpstream(config(["no-such-mcp-server-here"]), deps());
  assert.equal(missing.status, "fail");
  assert.match(missing.detail, /^cannot start upstream "no-such-mcp-server-here"/);
  assert.match(missing.fix ?? "", /is installed and on PATH/);

  const exits = await checkUpstream(config([Deno.execPath(), "eval", "Deno.exit(3)"]), deps());
  assert.equal(exits.status, "fail");
  assert.match(exits.detail, /: it exited \(code 3\) before answering initialize$/);

  // cat sends the request back: a line that is no answer, then nothing until stdin closes.
  const silent = await checkUpstream(config(["cat"]), deps(200));
  assert.equal(silent.status, "fail");
  assert.equal(silent.detail, "cat: no answer within 200 ms");
  assert.match(silent.fix ?? "", /--timeout MS/);
});

Deno.test("upstream: no upstream configured is skipped, a bad command line fails", async () => {
  assert.equal((await checkUpstream(config([]), deps())).status, "skip");
  const bad = await checkUpstream(config([], { MCP_AUDIT_PROXY_UPSTREAM: "npx 'open" }), deps());
  assert.equal(bad.status, "fail");
  assert.equal(bad.detail, "proxy.upstream: unterminated ' quote");
});

Deno.test("upstream: a URL gets one initialize POST (SSE answer) and its session is ended with DELETE", async () => {
  const seen: string[] = [];
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) => {
      seen.push(`${req.method} ${req.headers.get("accept")} ${req.headers.get("mcp-session-id")}`);
      if (req.method === "DELETE") return new Response(null, { status: 200 });
      const m = await req.json();
      if (m.params.protocolVersion !== PROTOCOL_VERSION) return new Response(null, { status: 400 });
      const body = `event: message\ndata: ${
        JSON.stringify({
          jsonrpc: "2.0",
          id: m.id,
          result: { protocolVersion: "2025-03-26", serverInfo: { name: "remote", version: "9" } },
        })
      }\n\n`;
      return new Response(body, {
        headers: { "content-type": "text/event-stream", "mcp-session-id": "s-1" },
      });
    },
  );
  const url = `http://127.0.0.1:${server.addr.port}/mcp`;
  const r = await checkUpstream(config([], { MCP_AUDIT_PROXY_UPSTREAM: url }), deps());
  assert.equal(r.status, "ok", JSON.stringify(r));
  assert.match(r.detail, new RegExp(`^remote 9, protocol 2025-03-26 \\(http: ${url}, \\d+ ms\\)$`));
  assert.deepEqual(seen, ["POST application/json, text/event-stream null", "DELETE */* s-1"]);
});

Deno.test("upstream: a URL that answers 401 fails with what the proxy cannot send", async () => {
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response("no", { status: 401 }),
  );
  const url = `http://127.0.0.1:${server.addr.port}/mcp`;
  const r = await checkUpstream(config([], { MCP_AUDIT_PROXY_UPSTREAM: url }), deps());
  assert.equal(r.status, "fail");
  assert.equal(r.detail, `${url} answered initialize with HTTP 401`);
  assert.match(r.fix ?? "", /credentials/);
});

Deno.test("upstream: readAnswer takes only a response to its own id", () => {
  assert.equal(readAnswer('{"jsonrpc":"2.0","id":2,"result":{}}'), undefined);
  assert.equal(readAnswer("not json"), undefined);
  assert.deepEqual(readAnswer('{"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"no"}}'), {
    kind: "error",
    text: "error -32600: no",
  });
});
