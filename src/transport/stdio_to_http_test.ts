import assert from "node:assert/strict";
import { Exchange } from "../pipeline/exchange.ts";
import { StorageError } from "../audit/storage/errors.ts";
import { storedRecords as stored, testAuditLog } from "../audit/testdata/test_audit_log.ts";
import { Logger } from "../log.ts";
import { type BridgeOutcome, runStdioToHttp } from "./stdio_to_http.ts";

function idsOf(records: Record<string, unknown>[], kind: string): unknown[] {
  return records.filter((r) => r.kind === kind).map((r) => r.jsonrpc_id);
}

/**
 * The bridge in-process over a real log: the client is a pair of streams, the upstream a loopback
 * server that answers every request, as JSON or (for `sse/…` methods) as an SSE stream, and notes
 * as each arrives which requests the log already holds. The log can be made to fail.
 */
function setup(opts: { failing?: boolean; failOnArrival?: boolean } = {}) {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-stdio-to-http-" });
  const path = `${dir}/audit.jsonl`;
  let failing = opts.failing ?? false;
  const log = testAuditLog(path, "stdio");
  const lines: Record<string, unknown>[] = [];
  const logger = new Logger("debug", (l) => lines.push(JSON.parse(l)));
  const arrivals: { id: unknown; logged: unknown[] }[] = [];
  const arrived = Promise.withResolvers<void>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    if (req.method !== "POST") return new Response(null, { status: 405 });
    const call = await req.json();
    arrivals.push({ id: call.id, logged: idsOf(stored(path), "request") });
    // The log fails while the upstream answers: the answer's record cannot be stored.
    if (opts.failOnArrival) failing = true;
    arrived.resolve();
    if (call.id === undefined) return new Response(null, { status: 202 });
    const answer = JSON.stringify({ jsonrpc: "2.0", id: call.id, result: { ok: true } });
    if (typeof call.method === "string" && call.method.startsWith("sse/")) {
      return new Response(`event: message\ndata: ${answer}\n\n`, {
        headers: { "content-type": "text/event-stream" },
      });
    }
    return new Response(answer, { headers: { "content-type": "application/json" } });
  });
  const upstream = new URL(`http://127.0.0.1:${server.addr.port}/mcp`);
  const toProxy = new TransformStream<Uint8Array, Uint8Array>();
  const fromProxy = new TransformStream<Uint8Array<ArrayBuffer>, Uint8Array<ArrayBuffer>>();
  const exchange = new Exchange(
    {
      log,
      transport: "stdio",
      live: { guard: null, redactors: [] },
      mono: () => performance.now(),
      maxMessageBytes: 1 << 16,
      logger,
    },
    "s1",
    upstream.href,
  );
  exchange.vouch();
  let commits = 0;
  const stop = new AbortController();
  const outcome: Promise<BridgeOutcome> = runStdioToHttp({
    upstream,
    fetch: (input, init) => fetch(input, init),
    client: { readable: toProxy.readable, writable: fromProxy.writable },
    exchange,
    beforeWrite: () => {
      commits++;
      if (failing) throw new StorageError("the log's disk is full");
      log.beforeForward();
    },
    maxMessageBytes: 1 << 16,
    upstreamTimeoutMs: 10_000,
    logger,
    signal: stop.signal,
  });
  const input = toProxy.writable.getWriter();
  const output = fromProxy.readable.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  return {
    path,
    lines,
    arrivals,
    /** Resolves when the first request reaches the upstream. */
    arrived: arrived.promise,
    outcome,
    write: (text: string): Promise<void> => input.write(new TextEncoder().encode(text)),
    end: (): Promise<void> => input.close(),
    /** The next line the bridge wrote to the client, and the records stored when it came. */
    async next(): Promise<{ line: string; stored: Record<string, unknown>[] } | null> {
      while (!buffered.includes("\n")) {
        const { value, done } = await output.read();
        if (done) return null;
        buffered += value;
      }
      const at = buffered.indexOf("\n");
      const line = buffered.slice(0, at);
      buffered = buffered.slice(at + 1);
      return { line, stored: stored(path) };
    },
    get commits() {
      return commits;
    },
    async [Symbol.asyncDispose]() {
      stop.abort();
      await input.close().catch(() => {});
      await outcome;
      await output.cancel().catch(() => {});
      await server.shutdown();
      log.close();
      Deno.removeSync(dir, { recursive: true });
    },
  };
}

const call = (id: number, method = "tools/call"): string =>
  JSON.stringify({ jsonrpc: "2.0", id, method, params: { name: "t" } }) + "\n";

Deno.test("each line reaches the upstream once its record is stored, and each answer reaches the client once its own is", async () => {
  await using bridge = setup();
  await bridge.write(call(1) + call(2, "sse/call") + call(3));
  const got = new Map<unknown, Record<string, unknown>[]>();
  for (let i = 0; i < 3; i++) {
    const next = await bridge.next();
    assert.ok(next !== null);
    const message = JSON.parse(next.line);
    assert.deepEqual(message.result, { ok: true });
    got.set(message.id, next.stored);
  }
  for (const id of [1, 2, 3]) {
    assert.ok(idsOf(got.get(id)!, "response").includes(id), `answer ${id} came before its record`);
    const arrival = bridge.arrivals.find((a) => a.id === id);
    assert.ok(arrival?.logged.includes(id), `request ${id} came upstream before its record`);
  }
  await bridge.end();
  assert.deepEqual(await bridge.outcome, { exitCode: 0, reason: "client closed its input" });
});

Deno.test("a bridge whose log cannot store fails closed: nothing reaches the upstream or the client, and it exits 1", async () => {
  await using bridge = setup({ failing: true });
  await bridge.write(call(1));
  const outcome = await bridge.outcome;
  assert.deepEqual(outcome, {
    exitCode: 1,
    reason: "reading from the client failed: StorageError: the log's disk is full",
  });
  assert.equal(await bridge.next(), null, "the client got nothing");
  assert.deepEqual(bridge.arrivals, [], "the upstream saw nothing");
  assert.deepEqual(idsOf(stored(bridge.path), "request"), []);
});

Deno.test("a bridge whose log cannot store refuses an oversized line without answering it", async () => {
  await using bridge = setup({ failing: true });
  await bridge.write(
    JSON.stringify({
      jsonrpc: "2.0",
      id: 7,
      method: "ping",
      params: { pad: "x".repeat(1 << 16) },
    }) +
      "\n",
  );
  const outcome = await bridge.outcome;
  assert.equal(outcome.exitCode, 1);
  assert.equal(await bridge.next(), null, "the client got nothing");
  assert.deepEqual(bridge.arrivals, []);
});

Deno.test("an answer whose record cannot be stored never reaches the client, and the next line ends the bridge with 1", async () => {
  await using bridge = setup({ failOnArrival: true });
  await bridge.write(call(1));
  await bridge.arrived;
  // The log failed as the upstream answered: the answer is not written, nor is the next line.
  await bridge.write(call(2));
  const outcome = await bridge.outcome;
  assert.deepEqual(outcome, {
    exitCode: 1,
    reason: "reading from the client failed: StorageError: the log's disk is full",
  });
  assert.equal(await bridge.next(), null, "the client got nothing");
  assert.deepEqual(bridge.arrivals.map((a) => a.id), [1]);
});
