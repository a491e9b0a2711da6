import assert from "node:assert/strict";
import { Hono } from "hono";
import { Logger } from "../../log.ts";
import type { RequestInfo } from "./host_origin_guard.ts";
import { listen, type ListenOptions, type ServeLimits } from "./serve.ts";

const encoder = new TextEncoder();

const LIMITS: ServeLimits = {
  maxHeaderBytes: 16 * 1024,
  readHeaderTimeoutMs: 10_000,
  readTimeoutMs: 10_000,
  writeTimeoutMs: 10_000,
  idleTimeoutMs: 10_000,
  maxConnections: 2,
};

/** A listener on a free loopback port serving an app that counts what reaches it. */
async function serve(more: Partial<ListenOptions> = {}) {
  const lines: Record<string, unknown>[] = [];
  const logger = new Logger("debug", (l) => lines.push(JSON.parse(l)));
  let reached = 0;
  const app = new Hono<{ Bindings: RequestInfo }>();
  app.all("*", (c) => {
    reached++;
    return c.text("ok\n");
  });
  const stop = new AbortController();
  const listener = await listen(app, {
    hostname: "127.0.0.1",
    port: 0,
    signal: stop.signal,
    logger,
    name: "test",
    limits: LIMITS,
    ...more,
  });
  return {
    port: listener.addr.port,
    lines,
    get reached() {
      return reached;
    },
    logged: (msg: string) => lines.filter((l) => l.msg === msg),
    async [Symbol.asyncDispose]() {
      stop.abort();
      await listener.finished;
    },
  };
}

/** Sends `text` on a new connection and reads until the server closes it. */
async function raw(port: number, text: string): Promise<string> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(encoder.encode(text));
  return await new Response(conn.readable).text();
}

function statusLine(answer: string): string {
  return answer.slice(0, answer.indexOf("\r\n"));
}

Deno.test("TRACE, which no Request can carry, is a 405 with the listener's Allow, never reaching the app; a flood is logged once", async () => {
  await using s = await serve({ allow: "GET, HEAD" });
  for (let i = 0; i < 20; i++) {
    const answer = await raw(
      s.port,
      "TRACE / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert.equal(statusLine(answer), "HTTP/1.1 405 Method Not Allowed");
    assert.match(answer, /\r\nallow: GET, HEAD\r\n/i);
  }
  // TRACK (and CONNECT) the parser refuses itself, through the same throttle.
  const track = await raw(
    s.port,
    "TRACK / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
  );
  assert.match(statusLine(track), /^HTTP\/1\.1 4\d\d /);
  assert.equal(s.reached, 0);
  const ok = await raw(s.port, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  assert.equal(statusLine(ok), "HTTP/1.1 200 OK");
  assert.equal(s.logged("could not answer an HTTP request").length, 0);
  const refused = s.logged("refused a malformed or slow HTTP request");
  // Throttled: the first line, then one a 10 s at most (the 21 requests take milliseconds).
  assert.ok(refused.length >= 1 && refused.length <= 2, JSON.stringify(s.lines));
  assert.equal(refused[0]!.status, 405);
  assert.equal(refused[0]!.listener, "test");
  assert.ok(s.lines.every((l) => l.level !== "error"), JSON.stringify(s.lines));
});

Deno.test("without an Allow of its own, a listener's 405 lists the methods a Request can carry", async () => {
  await using s = await serve();
  const answer = await raw(
    s.port,
    "TRACE / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
  );
  assert.equal(statusLine(answer), "HTTP/1.1 405 Method Not Allowed");
  assert.match(answer, /\r\nallow: GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH\r\n/i);
});

async function refusedConnection(more: Partial<ListenOptions>) {
  const s = await serve(more);
  const held = await Promise.all(
    Array.from(
      { length: LIMITS.maxConnections },
      () => Deno.connect({ hostname: "127.0.0.1", port: s.port }),
    ),
  );
  try {
    // The held ones are admitted in order: one request on each makes sure they all are.
    for (const c of held) {
      await c.write(encoder.encode("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
      const buf = new Uint8Array(1024);
      assert.ok((await c.read(buf)) !== null);
    }
    const answer = await raw(s.port, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert.equal(statusLine(answer), "HTTP/1.1 503 Service Unavailable");
  } finally {
    for (const c of held) c.close();
  }
  await s[Symbol.asyncDispose]();
  return s.lines.filter((l) => /^refused a connection/.test(String(l.msg)));
}

Deno.test("a refused connection is logged with the proxy.http key that sets the cap, by default", async () => {
  const lines = await refusedConnection({ name: "proxy" });
  assert.equal(lines.length, 1);
  assert.equal(lines[0]!.msg, "refused a connection: proxy.http.max_connections reached");
  assert.equal(lines[0]!.listener, "proxy");
  assert.equal(lines[0]!.max_connections, LIMITS.maxConnections);
});

Deno.test("a listener with fixed limits names them as its own, never a proxy.http key", async () => {
  const lines = await refusedConnection({
    name: "metrics",
    limitName: () => "the metrics listener's limit",
  });
  assert.equal(lines.length, 1);
  assert.equal(lines[0]!.msg, "refused a connection: the metrics listener's limit reached");
  assert.equal(lines[0]!.listener, "metrics");
  assert.ok(!JSON.stringify(lines).includes("proxy.http"));
});

Deno.test("a request head over the header limit is refused 431 and logged with the limit's name", async () => {
  await using s = await serve({ limitName: (key) => `fixed ${key}` });
  const answer = await raw(
    s.port,
    `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${"a".repeat(LIMITS.maxHeaderBytes)}\r\n\r\n`,
  );
  assert.equal(statusLine(answer), "HTTP/1.1 431 Request Header Fields Too Large");
  const refused = s.logged("refused a malformed or slow HTTP request");
  assert.equal(refused.length, 1);
  assert.equal(refused[0]!.limit, "fixed max_header_bytes");
});

Deno.test("with requestSignal false, the client leaving aborts info.closed, and the Request carries no signal of it", async () => {
  const lines: Record<string, unknown>[] = [];
  const logger = new Logger("debug", (l) => lines.push(JSON.parse(l)));
  const seen = Promise.withResolvers<{ requestAborted: boolean }>();
  const arrived = Promise.withResolvers<void>();
  const app = new Hono<{ Bindings: RequestInfo }>();
  app.all("*", async (c) => {
    const closed = c.env.closed;
    assert.ok(closed !== undefined, "the listener hands the app the client's signal");
    arrived.resolve();
    await new Promise((resolve) => closed.addEventListener("abort", resolve, { once: true }));
    seen.resolve({ requestAborted: c.req.raw.signal.aborted });
    return c.text("too late\n");
  });
  const stop = new AbortController();
  const listener = await listen(app, {
    hostname: "127.0.0.1",
    port: 0,
    signal: stop.signal,
    logger,
    name: "test",
    limits: LIMITS,
    requestSignal: false,
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  await conn.write(encoder.encode("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  await arrived.promise;
  conn.close();
  assert.deepEqual(await seen.promise, { requestAborted: false });
  stop.abort();
  await listener.finished;
});
