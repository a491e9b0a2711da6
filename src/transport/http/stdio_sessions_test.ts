import assert from "node:assert/strict";
import { Exchange } from "../../pipeline/exchange.ts";
import { StorageError } from "../../audit/storage/errors.ts";
import { storedRecords as stored, testAuditLog } from "../../audit/testdata/test_audit_log.ts";
import { Logger } from "../../log.ts";
import { StdioSessions } from "./stdio_sessions.ts";

const fixture = new URL("../../../tests/fixtures/recording_upstream.ts", import.meta.url).pathname;

/**
 * The bridge in-process over a real log, serving a recording stdio server (it answers `ping`, and
 * keeps every byte it reads in a file), with a log that can be made to fail.
 */
function setup() {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-stdio-sessions-" });
  const path = `${dir}/audit.jsonl`;
  const read = `${dir}/upstream-in`;
  const log = testAuditLog(path, "http");
  const lines: Record<string, unknown>[] = [];
  const waiting: { msg: string; resolve: () => void }[] = [];
  const logger = new Logger("debug", (l) => {
    const line = JSON.parse(l);
    lines.push(line);
    for (const w of waiting) if (w.msg === line.msg) w.resolve();
  });
  let failing = false;
  let commits = 0;
  let sessionIds = 0;
  const sessions = new StdioSessions({
    argv: [Deno.execPath(), "run", "-A", fixture, "--in", read, "--out", `${dir}/upstream-out`],
    env: { PATH: Deno.env.get("PATH") ?? "" },
    newExchange: (session) => {
      const exchange = new Exchange(
        {
          log,
          transport: "http",
          live: { guard: null, redactors: [] },
          mono: () => performance.now(),
          maxMessageBytes: 1 << 20,
          logger,
        },
        session === "" ? null : session,
      );
      exchange.vouch();
      return exchange;
    },
    newSessionId: () => `session-${++sessionIds}`,
    beforeWrite: () => {
      commits++;
      if (failing) throw new StorageError("the log's disk is full");
      log.beforeForward();
    },
    maxMessageBytes: 1 << 20,
    maxSessions: 10,
    idleMs: 60_000,
    graceMs: 5_000,
    logger,
    allowedHosts: new Set(["localhost"]),
    allowedOrigins: new Set(),
  });
  const app = sessions.app();
  const post = async (body: string, session?: string): Promise<Response> =>
    await app.request("http://localhost/mcp", {
      method: "POST",
      headers: {
        host: "localhost",
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        ...(session === undefined ? {} : { "mcp-session-id": session }),
      },
      body,
    });
  return {
    post,
    path,
    lines,
    dir,
    /** Resolves once a line with this message is logged. */
    logged(msg: string): Promise<void> {
      if (lines.some((l) => l.msg === msg)) return Promise.resolve();
      const { promise, resolve } = Promise.withResolvers<void>();
      waiting.push({ msg, resolve });
      return promise;
    },
    /** What the stdio server has read so far. */
    upstreamRead: () => Deno.readTextFileSync(read),
    fail() {
      failing = true;
    },
    get commits() {
      return commits;
    },
    sessions,
    async [Symbol.asyncDispose]() {
      // A failed log fails the end of a session too (its last records cannot be stored).
      await sessions.close().catch(() => {});
      log.close();
      Deno.removeSync(dir, { recursive: true });
    },
  };
}

const INITIALIZE = JSON.stringify({
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", v: "1" } },
});
const ping = (id: number): string => JSON.stringify({ jsonrpc: "2.0", id, method: "ping" });

/** The first SSE event of a stream, and the records stored when it arrived. */
async function firstEvent(
  res: Response,
  path: string,
): Promise<{ data: string; stored: Record<string, unknown>[] }> {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`stream ended before an event: ${text}`);
    text += value;
  }
  const records = stored(path);
  await reader.cancel();
  const data = text.split("\n").find((l) => l.startsWith("data: "))!.slice(6);
  return { data, stored: records };
}

/** Starts a session (the recording server never answers initialize) and returns its id. */
async function open(bridge: ReturnType<typeof setup>): Promise<string> {
  const res = await bridge.post(INITIALIZE);
  assert.equal(res.status, 200);
  const id = res.headers.get("mcp-session-id");
  assert.ok(id !== null);
  // The stream of the initialize is not read; dropping it records the request as undelivered.
  await res.body?.cancel();
  return id;
}

Deno.test("a server's answer reaches the client's stream only once its request and it are stored", async () => {
  await using bridge = setup();
  const session = await open(bridge);
  const res = await bridge.post(ping(2), session);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "text/event-stream");
  const { data, stored } = await firstEvent(res, bridge.path);
  assert.deepEqual(JSON.parse(data), { jsonrpc: "2.0", id: 2, result: { pong: true } });
  const ping2 = stored.filter((r) => r.jsonrpc_id === 2).map((r) => r.kind);
  assert.deepEqual(ping2, ["request", "response"]);
  assert.ok(bridge.upstreamRead().includes(ping(2)));
});

Deno.test("a bridge whose log cannot store fails closed: the POST gets 500 and the server never reads it", async () => {
  await using bridge = setup();
  const session = await open(bridge);
  const first = await firstEvent(await bridge.post(ping(2), session), bridge.path);
  assert.equal(JSON.parse(first.data).id, 2);
  bridge.fail();
  const refused = await bridge.post(ping(3), session);
  assert.equal(refused.status, 500);
  await refused.body?.cancel();
  const later = await bridge.post(ping(4), session);
  assert.equal(later.status, 500);
  await later.body?.cancel();
  // Ending the session closes the server's input: what it read is all it will ever read.
  await bridge.sessions.close().catch(() => {});
  const read = bridge.upstreamRead();
  assert.ok(read.includes(ping(2)));
  assert.ok(!read.includes(ping(3)), "the server read a request that has no record");
  assert.ok(!read.includes(ping(4)), "the server read a request that has no record");
  assert.deepEqual(stored(bridge.path).filter((r) => r.jsonrpc_id === 3), []);
});

Deno.test("a bridge whose log cannot store answers an oversized or unreadable body with 500, not its refusal", async () => {
  await using bridge = setup();
  const session = await open(bridge);
  bridge.fail();
  const unreadable = await bridge.post('{"jsonrpc":"2.0","id":5,', session);
  assert.equal(unreadable.status, 500);
  await unreadable.body?.cancel();
  const oversized = await bridge.post(
    JSON.stringify({ jsonrpc: "2.0", id: 6, method: "ping", params: { pad: "x".repeat(1 << 20) } }),
    session,
  );
  assert.equal(oversized.status, 500);
  await oversized.body?.cancel();
});

/** The pids of this process's children whose command line mentions `text` (Linux). */
function childrenMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const task of Deno.readDirSync("/proc/self/task")) {
    const children = Deno.readTextFileSync(`/proc/self/task/${task.name}/children`).trim();
    for (const pid of children === "" ? [] : children.split(" ").map(Number)) {
      const argv = Deno.readTextFileSync(`/proc/${pid}/cmdline`);
      if (argv.includes(text)) pids.push(pid);
    }
  }
  return pids;
}

Deno.test({
  name:
    "a server that ends on its own after the log failed: its waiting requests go unanswered, logged, and the proxy goes on",
  ignore: Deno.build.os !== "linux",
  async fn() {
    await using bridge = setup();
    await open(bridge); // its initialize waits for an answer that never comes
    bridge.fail();
    const [pid] = childrenMentioning(bridge.dir);
    assert.ok(pid !== undefined, "the session's server is a child of this process");
    Deno.kill(pid, "SIGKILL");
    // Before, the session's end rejected with nothing to catch it, which ends a Deno process.
    await bridge.logged("cannot record the answers to the session's waiting requests");
  },
});
