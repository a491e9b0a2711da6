import assert from "node:assert/strict";
import {
  ERROR_BODY_LIMIT,
  headerProblem,
  loggableUrl,
  networkError,
  OtelConfigError,
  OtlpExportError,
  otlpHeaders,
  OtlpHttpTransport,
  type OtlpTransportOptions,
  otlpUrl,
  retryableStatus,
  retryAfterMs,
} from "./otlp_transport.ts";
import { Logger } from "../log.ts";
import {
  RecordingHealth,
  type Responder,
  startReceiver,
} from "../../tests/fixtures/otlp_receiver.ts";

const DATA = new TextEncoder().encode('{"resourceSpans":[]}');

function captureLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = new Logger("debug", (line) => lines.push(JSON.parse(line)));
  return { logger, lines };
}

/** A transport against `url` with small, test-sized settings. */
function transportTo(
  url: string,
  overrides: Partial<OtlpTransportOptions> = {},
): {
  transport: OtlpHttpTransport;
  health: RecordingHealth;
  lines: Record<string, unknown>[];
  stop: AbortController;
} {
  const health = new RecordingHealth();
  const { logger, lines } = captureLogger();
  const stop = new AbortController();
  const transport = new OtlpHttpTransport({
    signal: "traces",
    url: otlpUrl(url, "traces"),
    protocol: "http/json",
    compression: "none",
    headers: {},
    userAgent: "mcp-audit/9.9.9",
    timeoutMs: 5000,
    retry: { max_retries: 3, initial_interval_ms: 1, max_interval_ms: 5 },
    fetch,
    health,
    logger,
    stop: stop.signal,
    ...overrides,
  });
  return { transport, health, lines, stop };
}

/** Answers each request with the next of `answers`; then 200. */
function scripted(...answers: (() => Response)[]): Responder {
  let i = 0;
  return () => (answers[i++] ?? (() => Response.json({})))();
}

Deno.test("otlpUrl appends the signal's path, keeps a path prefix and query, and swaps a signal path already there", () => {
  assert.equal(otlpUrl("http://c:4318", "traces").href, "http://c:4318/v1/traces");
  assert.equal(otlpUrl("http://c:4318/", "logs").href, "http://c:4318/v1/logs");
  assert.equal(otlpUrl("https://c/otlp/", "traces").href, "https://c/otlp/v1/traces");
  assert.equal(otlpUrl("http://c:4318/v1/traces", "traces").href, "http://c:4318/v1/traces");
  assert.equal(otlpUrl("http://c:4318/v1/traces", "logs").href, "http://c:4318/v1/logs");
  assert.equal(otlpUrl("http://c/p?tenant=a#x", "traces").href, "http://c/p/v1/traces?tenant=a");
});

Deno.test("otlpUrl refuses an endpoint without an http(s) scheme or a host, naming otel.endpoint", () => {
  for (const bad of ["localhost:4318", "ftp://c/", "not a url", "unix:/tmp/sock", "http://"]) {
    assert.throws(() => otlpUrl(bad, "traces"), (e: unknown) => {
      assert.ok(e instanceof OtelConfigError, `${bad}: ${e}`);
      assert.equal(e.key, "otel.endpoint");
      return true;
    });
  }
});

Deno.test("loggableUrl leaves out credentials, the query and the fragment", () => {
  assert.equal(loggableUrl(new URL("https://u:p@c/v1/traces")), "https://c/v1/traces");
  assert.equal(
    loggableUrl(new URL("https://u:p@c:4318/otlp/v1/logs?api_key=s3cr3t&x=1#tok")),
    "https://c:4318/otlp/v1/logs",
  );
  assert.equal(loggableUrl(otlpUrl("http://c/p?token=s3cr3t", "traces")), "http://c/p/v1/traces");
});

Deno.test("otlpHeaders: configured headers, Content-Type by protocol over a configured one, gzip, User-Agent unless configured", () => {
  const h = otlpHeaders(
    { Authorization: "Bearer x", "Content-Type": "text/plain", "Content-Encoding": "br" },
    "http/protobuf",
    "none",
    "mcp-audit/1.0.0",
  );
  assert.equal(h.get("authorization"), "Bearer x");
  assert.equal(h.get("content-type"), "application/x-protobuf");
  assert.equal(h.get("content-encoding"), null);
  assert.equal(h.get("user-agent"), "mcp-audit/1.0.0");
  const g = otlpHeaders({ "User-Agent": "mine/2" }, "http/json", "gzip", "mcp-audit/1.0.0");
  assert.equal(g.get("content-type"), "application/json");
  assert.equal(g.get("content-encoding"), "gzip");
  assert.equal(g.get("user-agent"), "mine/2");
});

Deno.test("otlpHeaders refuses a header HTTP does not allow, naming the key", () => {
  assert.throws(() => otlpHeaders({ "bad name": "x" }, "http/json", "none", "ua"), (e: unknown) => {
    assert.ok(e instanceof OtelConfigError);
    assert.equal(e.key, "otel.headers.bad name");
    return true;
  });
  assert.throws(
    () => otlpHeaders({ "X-Ok": "line\nbreak" }, "http/json", "none", "ua"),
    OtelConfigError,
  );
});

Deno.test("otlpHeaders names a refused header and never shows its value, in the message, the key or a cause", () => {
  const token = "s3cr3t-t0ken";
  for (
    const value of [
      `Bearer ${token}\n`,
      `Bearer ${token}\r\nX-Evil: 1`,
      `Bearer ${token}\u0000`,
      `Bearer ${token}€`,
    ]
  ) {
    assert.throws(
      () => otlpHeaders({ Authorization: value }, "http/json", "none", "ua"),
      (e: unknown) => {
        assert.ok(e instanceof OtelConfigError);
        assert.equal(e.key, "otel.headers.Authorization");
        assert.match(e.problem, /value is not shown/);
        const said = `${e.message} ${e.stack} ${String(e.cause)} ${JSON.stringify(e)}`;
        assert.ok(!said.includes(token), said);
        return true;
      },
    );
  }
  assert.equal(headerProblem("X-Api-Key", "Latin-1 is fine: é"), null);
  assert.equal(headerProblem("bad name", "x"), "is not a valid HTTP header name");
});

Deno.test("retryAfterMs reads delta-seconds and HTTP dates; a past date is 0; anything else is null", () => {
  const now = Date.parse("2026-01-01T00:00:00Z");
  assert.equal(retryAfterMs("3", now), 3000);
  assert.equal(retryAfterMs(" 0 ", now), 0);
  assert.equal(retryAfterMs("Thu, 01 Jan 2026 00:00:02 GMT", now), 2000);
  assert.equal(retryAfterMs("Wed, 31 Dec 2025 23:00:00 GMT", now), 0);
  assert.equal(retryAfterMs(null, now), null);
  assert.equal(retryAfterMs("-1", now), null);
  assert.equal(retryAfterMs("1.5", now), null);
  assert.equal(retryAfterMs("soon", now), null);
});

Deno.test("retryableStatus: 408, 429 and 5xx except 501, as the Go tool", () => {
  for (const s of [408, 429, 500, 502, 503, 504, 599]) assert.ok(retryableStatus(s), `${s}`);
  for (const s of [400, 401, 403, 404, 413, 501, 301]) assert.ok(!retryableStatus(s), `${s}`);
});

Deno.test("a successful send posts once to /v1/traces with the headers and reports one ok attempt with its items", async () => {
  await using receiver = startReceiver();
  const { transport, health } = transportTo(receiver.url, {
    headers: { "X-Tenant": "blue" },
  });
  transport.carrying(7);
  const response = await transport.send(DATA, 1000);
  assert.equal(response.status, "success");
  assert.equal(receiver.requests.length, 1);
  const req = receiver.requests[0]!;
  assert.equal(req.method, "POST");
  assert.equal(req.path, "/v1/traces");
  assert.equal(req.headers.get("x-tenant"), "blue");
  assert.equal(req.headers.get("content-type"), "application/json");
  assert.equal(req.headers.get("user-agent"), "mcp-audit/9.9.9");
  assert.equal(req.headers.get("content-encoding"), null);
  assert.deepEqual(req.body, DATA);
  assert.deepEqual(health.events, [{ kind: "attempt", signal: "traces", status: "ok", items: 7 }]);
});

Deno.test("gzip: the body is sent gzipped with Content-Encoding, and unzips to the encoded request", async () => {
  await using receiver = startReceiver();
  const { transport } = transportTo(receiver.url, { compression: "gzip" });
  transport.carrying(1);
  assert.equal((await transport.send(DATA, 1000)).status, "success");
  const req = receiver.requests[0]!;
  assert.equal(req.headers.get("content-encoding"), "gzip");
  assert.deepEqual([req.raw[0], req.raw[1]], [0x1f, 0x8b]);
  assert.deepEqual(req.body, DATA);
});

Deno.test("500 then 200: retried after the backoff, one retry and one ok attempt", async () => {
  await using receiver = startReceiver({
    respond: scripted(() => new Response("busy", { status: 500 })),
  });
  const { transport, health, lines } = transportTo(receiver.url);
  transport.carrying(2);
  assert.equal((await transport.send(DATA, 1000)).status, "success");
  assert.equal(receiver.requests.length, 2);
  assert.deepEqual(health.attempts(), ["retry", "ok"]);
  const retry = lines.find((l) => l.msg === "otel export retrying");
  assert.equal(retry?.status, 500);
  assert.equal(retry?.wait_ms, 1);
});

Deno.test("429 with Retry-After: the wait is the server's, capped at max_interval_ms, and the backoff does not grow", async () => {
  await using receiver = startReceiver({
    respond: scripted(
      () => new Response("slow down", { status: 429, headers: { "retry-after": "1" } }),
      () => new Response("slow down", { status: 429, headers: { "retry-after": "0" } }),
      () => new Response("again", { status: 503 }),
    ),
  });
  const { transport, health, lines } = transportTo(receiver.url, {
    retry: { max_retries: 3, initial_interval_ms: 2, max_interval_ms: 40 },
  });
  transport.carrying(1);
  assert.equal((await transport.send(DATA, 1000)).status, "success");
  assert.deepEqual(health.attempts(), ["retry", "retry", "retry", "ok"]);
  const waits = lines.filter((l) => l.msg === "otel export retrying").map((l) => l.wait_ms);
  // 1 s capped at 40 ms; then 0 s as asked; then the first backoff step (2 ms), not the third.
  assert.deepEqual(waits, [40, 0, 2]);
});

Deno.test("400 with a body: no retry, permanent_error, the body logged (at most 1 KiB)", async () => {
  const long = "x".repeat(5000);
  await using receiver = startReceiver({
    respond: () => new Response(`bad request: ${long}`, { status: 400 }),
  });
  const { transport, health, lines } = transportTo(receiver.url);
  transport.carrying(3);
  const response = await transport.send(DATA, 1000);
  assert.equal(response.status, "failure");
  assert.ok(response.status === "failure" && response.error instanceof OtlpExportError);
  assert.equal(response.error.kind, "permanent_error");
  assert.equal(response.error.status, 400);
  assert.equal(receiver.requests.length, 1);
  assert.deepEqual(health.attempts(), ["permanent_error"]);
  const failed = lines.find((l) => l.msg === "otel export failed");
  assert.equal(failed?.level, "warn");
  assert.equal(failed?.status, 400);
  assert.equal(typeof failed?.error, "string");
  const logged = String(failed?.error);
  assert.ok(logged.startsWith("bad request: xxx"), logged.slice(0, 50));
  assert.equal(logged.length, ERROR_BODY_LIMIT);
});

Deno.test("501 is not retried", async () => {
  await using receiver = startReceiver({ respond: () => new Response("", { status: 501 }) });
  const { transport, health } = transportTo(receiver.url);
  transport.carrying(1);
  assert.equal((await transport.send(DATA, 1000)).status, "failure");
  assert.deepEqual(health.attempts(), ["permanent_error"]);
});

Deno.test("a 5xx on every attempt: max_retries + 1 attempts, the last one an error, its body logged once", async () => {
  await using receiver = startReceiver({ respond: () => new Response("down", { status: 502 }) });
  const { transport, health, lines } = transportTo(receiver.url, {
    retry: { max_retries: 2, initial_interval_ms: 1, max_interval_ms: 2 },
  });
  transport.carrying(4);
  const response = await transport.send(DATA, 1000);
  assert.ok(response.status === "failure" && response.error instanceof OtlpExportError);
  assert.equal(response.error.kind, "error");
  assert.equal(receiver.requests.length, 3);
  assert.deepEqual(health.attempts(), ["retry", "retry", "error"]);
  const failed = lines.filter((l) => l.msg === "otel export failed");
  assert.equal(failed.length, 1);
  assert.equal(failed[0]?.error, "HTTP 502: down");
  assert.equal(failed[0]?.attempts, 3);
});

Deno.test("a run of failures is logged as a warning once, then quietly, and the recovery is logged", async () => {
  let fail = true;
  await using receiver = startReceiver({
    respond: () => fail ? new Response("no", { status: 400 }) : Response.json({}),
  });
  const { transport, lines } = transportTo(receiver.url);
  for (let i = 0; i < 3; i++) {
    transport.carrying(1);
    await transport.send(DATA, 1000);
  }
  fail = false;
  transport.carrying(1);
  await transport.send(DATA, 1000);
  const levels = lines.filter((l) => l.msg === "otel export failed").map((l) => l.level);
  assert.deepEqual(levels, ["warn", "debug", "debug"]);
  const recovered = lines.find((l) => l.msg === "otel export recovered");
  assert.equal(recovered?.failed_exports, 3);
});

Deno.test("collector unreachable: network errors are retried, then the export fails with error", async () => {
  // A port that was just free: nothing listens there.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const { transport, health, lines } = transportTo(`http://127.0.0.1:${port}`, {
    retry: { max_retries: 1, initial_interval_ms: 1, max_interval_ms: 1 },
  });
  transport.carrying(5);
  const response = await transport.send(DATA, 1000);
  assert.ok(response.status === "failure" && response.error instanceof OtlpExportError);
  assert.equal(response.error.kind, "error");
  assert.deepEqual(health.attempts(), ["retry", "error"]);
  const failed = lines.find((l) => l.msg === "otel export failed");
  // Deno's message is "fetch failed"; the reason is its cause's.
  assert.match(String(failed?.error), /^network error: fetch failed: .*Connection refused/i);
});

Deno.test("networkError gives the causes, and every URL in them without credentials, query or fragment", () => {
  const inner = new Error(
    "error sending request for url (https://user:pa55@collector:4318/v1/traces?api_key=s3cr3t#frag): client error (Connect): tcp connect error: Connection refused (os error 111)",
  );
  const said = networkError(new TypeError("fetch failed", { cause: inner }));
  assert.equal(
    said,
    "fetch failed: error sending request for url (https://collector:4318/v1/traces): client error (Connect): tcp connect error: Connection refused (os error 111)",
  );
  // Causes that are not errors, repeated messages, a loop, and a URL the parser refuses.
  const loop = new Error("a", { cause: "b" });
  assert.equal(networkError(loop), "a: b");
  const self: Error = new Error("again");
  self.cause = self;
  assert.equal(networkError(self), "again");
  assert.equal(networkError(new Error("at http://u:p@[bad/x?t=1 now")), "at http://[bad/x now");
  assert.ok(networkError(new Error("x".repeat(5000))).length <= 1025);
});

Deno.test("a collector that never answers: each attempt ends at timeout_ms and counts as retryable", async () => {
  await using receiver = startReceiver({
    respond: () => receiver.released.then(() => new Response("late")),
  });
  const { transport, health, lines } = transportTo(receiver.url, {
    timeoutMs: 30,
    retry: { max_retries: 1, initial_interval_ms: 1, max_interval_ms: 1 },
  });
  transport.carrying(1);
  const response = await transport.send(DATA, 1000);
  assert.ok(response.status === "failure" && response.error instanceof OtlpExportError);
  assert.equal(response.error.kind, "error");
  assert.equal(receiver.requests.length, 2);
  assert.deepEqual(health.attempts(), ["retry", "error"]);
  assert.match(String(lines.find((l) => l.msg === "otel export failed")?.error), /timeout_ms/);
});

Deno.test("stop ends an attempt in flight at once: the export fails with shutdown, nothing more is sent", async () => {
  await using receiver = startReceiver({
    respond: () => receiver.released.then(() => new Response("late")),
  });
  const { transport, health, stop } = transportTo(receiver.url, { timeoutMs: 60_000 });
  transport.carrying(9);
  const sent = transport.send(DATA, 1000);
  await receiver.waitFor(
    () => receiver.requests.length === 1,
    "the request",
    AbortSignal.timeout(10_000),
  );
  stop.abort();
  const response = await sent;
  assert.ok(response.status === "failure" && response.error instanceof OtlpExportError);
  assert.equal(response.error.kind, "shutdown");
  assert.deepEqual(health.attempts(), ["error"]);
  assert.equal(receiver.requests.length, 1);
});

Deno.test("stop ends a backoff wait at once (here a 60 s Retry-After)", async () => {
  await using receiver = startReceiver({
    respond: () => new Response("", { status: 429, headers: { "retry-after": "60" } }),
  });
  const { transport, health, stop } = transportTo(receiver.url, {
    retry: { max_retries: 5, initial_interval_ms: 60_000, max_interval_ms: 60_000 },
  });
  transport.carrying(1);
  const sent = transport.send(DATA, 1000);
  await receiver.waitFor(
    () => receiver.requests.length === 1,
    "the request",
    AbortSignal.timeout(10_000),
  );
  // The attempt is reported once its answer is read; the wait follows.
  await health.until(() => health.attempts().length === 1);
  stop.abort();
  const response = await sent;
  assert.ok(response.status === "failure" && response.error instanceof OtlpExportError);
  assert.equal(response.error.kind, "shutdown");
  assert.deepEqual(health.attempts(), ["retry"]);
});

Deno.test("a redirect is not followed: the configured headers never go to another place", async () => {
  await using other = startReceiver();
  await using receiver = startReceiver({
    respond: () =>
      new Response(null, { status: 307, headers: { location: `${other.url}/v1/traces` } }),
  });
  const { transport, health } = transportTo(receiver.url, {
    headers: { Authorization: "Bearer s" },
  });
  transport.carrying(1);
  assert.equal((await transport.send(DATA, 1000)).status, "failure");
  assert.deepEqual(health.attempts(), ["permanent_error"]);
  assert.equal(other.requests.length, 0);
});
