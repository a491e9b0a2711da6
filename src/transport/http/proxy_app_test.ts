import assert from "node:assert/strict";
import { Exchange } from "../../pipeline/exchange.ts";
import { StorageError } from "../../audit/storage/errors.ts";
import { storedRecords as stored, testAuditLog } from "../../audit/testdata/test_audit_log.ts";
import { Logger } from "../../log.ts";
import { createProxyApp } from "./proxy_app.ts";
import { SessionRegistry } from "./sessions.ts";

function requestsIn(records: Record<string, unknown>[]): unknown[] {
  return records.filter((r) => r.kind === "request").map((r) => r.jsonrpc_id);
}

/**
 * The proxy app in-process over a real log, with an upstream on loopback that answers every call
 * and notes, as each request arrives, the request ids the log already holds.
 */
function setup(opts: { failing?: () => boolean } = {}) {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-proxy-app-" });
  const path = `${dir}/audit.jsonl`;
  const log = testAuditLog(path, "http");
  const lines: Record<string, unknown>[] = [];
  const logger = new Logger("debug", (l) => lines.push(JSON.parse(l)));
  const arrivals: { id: unknown; logged: unknown[] }[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const call = await req.json();
    arrivals.push({ id: call.id, logged: requestsIn(stored(path)) });
    return Response.json({ jsonrpc: "2.0", id: call.id, result: { ok: true } });
  });
  const upstream = new URL(`http://127.0.0.1:${server.addr.port}/mcp`);
  let commits = 0;
  const app = createProxyApp({
    upstream,
    fetch: (input, init) => fetch(input, init),
    sessions: new SessionRegistry(
      (session) =>
        new Exchange(
          {
            log,
            transport: "http",
            live: { guard: null, redactors: [] },
            mono: () => performance.now(),
            maxMessageBytes: 1 << 20,
            logger,
          },
          session,
          upstream.href,
        ),
      100,
      () => {},
    ),
    logger,
    maxMessageBytes: 1 << 20,
    maxRequestBodyBytes: 1 << 20,
    upstreamTimeoutMs: 10_000,
    forwardHeaders: new Set(),
    allowedHosts: new Set(["localhost"]),
    allowedOrigins: new Set(),
    beforeWrite: () => {
      commits++;
      if (opts.failing?.()) throw new StorageError("the log's disk is full");
      log.beforeForward();
    },
    retry: { maxRetries: 0, initialIntervalMs: 1, maxIntervalMs: 1 },
  });
  const call = async (id: number): Promise<Response> =>
    await app.request("http://localhost/mcp", {
      method: "POST",
      headers: { host: "localhost", "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params: { name: "t" } }),
    });
  return {
    call,
    path,
    lines,
    arrivals,
    get commits() {
      return commits;
    },
    async [Symbol.asyncDispose]() {
      await server.shutdown();
      log.close();
      Deno.removeSync(dir, { recursive: true });
    },
  };
}

Deno.test("requests of one turn are stored by one commit before any reaches the upstream, answers before they reach the client", async () => {
  await using proxy = setup();
  const answers = await Promise.all([1, 2, 3, 4, 5].map((id) => proxy.call(id)));
  for (const [i, res] of answers.entries()) {
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { jsonrpc: "2.0", id: i + 1, result: { ok: true } });
  }
  // The first request to arrive upstream found all five requests in the log already.
  assert.equal(proxy.arrivals.length, 5);
  assert.deepEqual(proxy.arrivals[0]!.logged, [1, 2, 3, 4, 5]);
  // Each answer was stored before the client got it.
  const records = stored(proxy.path);
  assert.equal(records.filter((r) => r.kind === "response").length, 5);
  assert.ok(proxy.commits < 10, `fewer commits than two a request (${proxy.commits})`);
});

Deno.test("a log that cannot store fails closed: every request of the turn and after gets 500, nothing reaches the upstream, each failure is logged", async () => {
  await using proxy = setup({ failing: () => true });
  const answers = await Promise.all([1, 2, 3].map((id) => proxy.call(id)));
  const later = await proxy.call(4);
  for (const res of [...answers, later]) {
    assert.equal(res.status, 500);
    assert.equal(await res.text(), "internal error\n");
  }
  assert.equal(proxy.arrivals.length, 0, "the upstream saw nothing");
  const failures = proxy.lines.filter((l) => l.msg === "request failed inside the proxy");
  assert.equal(failures.length, 4);
  for (const f of failures) {
    assert.equal(f.error, "StorageError: the log's disk is full");
    assert.equal(f.method, "POST");
    assert.equal(f.path, "/mcp");
  }
  assert.equal(proxy.commits, 2, "one commit for the turn of three, one for the later request");
});

Deno.test("a store that fails once (busy) fails that turn's requests only; the next turn is stored and forwarded", async () => {
  let failures = 1;
  await using proxy = setup({ failing: () => failures-- > 0 });
  const answers = await Promise.all([1, 2].map((id) => proxy.call(id)));
  for (const res of answers) assert.equal(res.status, 500);
  const later = await proxy.call(3);
  assert.equal(later.status, 200);
  assert.deepEqual(await later.json(), { jsonrpc: "2.0", id: 3, result: { ok: true } });
  assert.deepEqual(proxy.arrivals.map((a) => a.id), [3], "only the stored turn's request went on");
});
