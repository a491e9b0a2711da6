import assert from "node:assert/strict";
import { OtelConfigError, type OtelOptions, startOtel } from "./otel.ts";
import type { Config } from "../config/config.ts";
import type { AuditRecord } from "../audit/record.ts";
import type { StoredRecord } from "../audit/storage/store.ts";
import { Logger } from "../log.ts";
import { RecordSequence, stored as storedRecord } from "./testdata/records.ts";
import {
  decodeProtobufLogBodies,
  decodeProtobufSpans,
  type ReceiverOptions,
  RecordingHealth,
  startReceiver,
} from "../../tests/fixtures/otlp_receiver.ts";

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID = "00f067aa0ba902b7";

function config(endpoint: string, overrides: Partial<Config["otel"]> = {}): Config["otel"] {
  return {
    enabled: true,
    endpoint,
    service_name: "mcp-audit-test",
    headers: {},
    tls: { ca_file: "", server_name: "", insecure_skip_verify: false },
    retry: { max_retries: 1, initial_interval_ms: 1, max_interval_ms: 2 },
    queue_size: 100,
    batch_size: 10,
    flush_interval_ms: 5,
    timeout_ms: 2000,
    methods: "tools/call",
    logs: false,
    protocol: "http/json",
    compression: "none",
    shutdown_timeout_ms: 5000,
    ...overrides,
  };
}

function options(
  endpoint: string,
  overrides: Partial<Config["otel"]> = {},
): OtelOptions & { health: RecordingHealth; lines: Record<string, unknown>[] } {
  const health = new RecordingHealth();
  const lines: Record<string, unknown>[] = [];
  return {
    config: config(endpoint, overrides),
    fetch,
    health,
    lines,
    logger: new Logger("debug", (line) => lines.push(JSON.parse(line))),
    version: "1.2.3",
    storage: "sqlite",
    upstream: null,
  };
}

const records = new RecordSequence({
  id: (seq) => `id-${seq}`,
  ts: (seq) => new Date(Date.parse("2026-03-01T10:00:00Z") + seq).toISOString(),
}, { tool_name: "echo", client_id: "c", server_id: "s" });
function stored(fields: Partial<AuditRecord>): StoredRecord {
  return storedRecord(records.next(fields));
}

/** A traced tools/call and its answer. */
function exchange(id: number, traceparent?: string): StoredRecord[] {
  const params = traceparent === undefined
    ? { name: "echo" }
    : { name: "echo", _meta: { traceparent } };
  return [
    stored({ jsonrpc_id: id, params }),
    stored({
      kind: "response",
      direction: "server_to_client",
      jsonrpc_id: id,
      duration_ms: 1,
      result: {},
    }),
  ];
}

function receiver(options?: ReceiverOptions) {
  return startReceiver(options);
}

Deno.test("startOtel refuses a bad endpoint or header with OtelConfigError naming the key", () => {
  for (const endpoint of ["collector:4318", "ftp://c", ""]) {
    assert.throws(() => startOtel(options(endpoint)), (e: unknown) => {
      assert.ok(e instanceof OtelConfigError);
      assert.equal(e.key, "otel.endpoint");
      return true;
    });
  }
  assert.throws(
    () => startOtel(options("http://127.0.0.1:4318", { headers: { "a b": "x" } })),
    (e: unknown) => e instanceof OtelConfigError && e.key === "otel.headers.a b",
  );
});

Deno.test("spans and log records arrive over OTLP/JSON, with the resource, the parentage and the exact lines", async () => {
  await using rx = receiver();
  const o = options(rx.url, { logs: true });
  const otel = startOtel(o);
  const batch = [
    ...exchange(1, `00-${TRACE_ID}-${PARENT_ID}-01`),
    stored({
      kind: "notification",
      method: "notifications/initialized",
      tool_name: null,
      jsonrpc_id: null,
    }),
  ];
  otel.records(batch);
  const signal = AbortSignal.timeout(10_000);
  await rx.waitFor(
    () => rx.spans().length === 1 && rx.logs().length === 3,
    "a span and 3 logs",
    signal,
  );
  const span = rx.spans()[0]!;
  assert.equal(span.name, "tools/call echo");
  assert.equal(span.traceId, TRACE_ID);
  assert.equal(span.parentSpanId, PARENT_ID);
  assert.equal(span.kind, 3); // CLIENT
  assert.equal(span.scope, "mcp-audit");
  assert.equal(span.attributes.get("mcp_audit.storage"), "sqlite");
  assert.equal(span.resource.get("service.name"), "mcp-audit-test");
  assert.equal(span.resource.get("service.version"), "1.2.3");
  assert.equal(span.resource.get("process.pid"), Deno.pid);
  assert.equal(span.resource.get("host.name"), Deno.hostname());
  const logs = rx.logs();
  assert.deepEqual(logs.map((l) => l.body), batch.map((s) => s.line));
  assert.deepEqual(
    logs.map((l) => l.attributes.get("mcp_audit.seq")),
    batch.map((s) => s.record.seq),
  );
  // The answer's log record sits in the exchange's span; the request's in the caller's.
  assert.equal(logs[0]!.spanId, PARENT_ID);
  assert.equal(logs[1]!.spanId, span.spanId);
  assert.equal(logs[1]!.traceId, TRACE_ID);
  await otel.shutdown();
  assert.deepEqual(o.health.drops(), []);
  assert.ok(o.health.attempts("traces").every((s) => s === "ok"));
  assert.ok(o.health.attempts("logs").length >= 1);
  assert.equal(
    rx.requests.find((r) => r.path === "/v1/traces")?.headers.get("user-agent"),
    "mcp-audit/1.2.3",
  );
});

Deno.test("http/protobuf with gzip: protobuf content type, gzip encoding, and fields that decode", async () => {
  await using rx = receiver();
  const o = options(rx.url, { protocol: "http/protobuf", compression: "gzip", logs: true });
  const otel = startOtel(o);
  const batch = exchange(2, `00-${TRACE_ID}-${PARENT_ID}-01`);
  otel.records(batch);
  await otel.shutdown();
  const traces = rx.requests.filter((r) => r.path === "/v1/traces");
  const logs = rx.requests.filter((r) => r.path === "/v1/logs");
  assert.equal(traces.length, 1);
  assert.equal(logs.length, 1);
  for (const r of [...traces, ...logs]) {
    assert.equal(r.headers.get("content-type"), "application/x-protobuf");
    assert.equal(r.headers.get("content-encoding"), "gzip");
  }
  assert.deepEqual(decodeProtobufSpans(traces[0]!.body), [
    { name: "tools/call echo", traceId: TRACE_ID, parentSpanId: PARENT_ID },
  ]);
  assert.deepEqual(decodeProtobufLogBodies(logs[0]!.body), batch.map((s) => s.line));
});

Deno.test("otel.methods all: every request method gets a span", async () => {
  await using rx = receiver();
  const otel = startOtel(options(rx.url, { methods: "all" }));
  otel.records([
    stored({ method: "tools/list", tool_name: null, jsonrpc_id: 1 }),
    stored({
      kind: "response",
      direction: "server_to_client",
      method: "tools/list",
      tool_name: null,
      jsonrpc_id: 1,
    }),
    ...exchange(2),
  ]);
  await otel.shutdown();
  assert.deepEqual(rx.spans().map((s) => s.name).sort(), ["tools/call echo", "tools/list"]);
});

Deno.test("an unreachable collector: records() returns at once, shutdown returns, the batch is dropped as error", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const o = options(`http://127.0.0.1:${port}`);
  const otel = startOtel(o);
  otel.records(exchange(1));
  await otel.shutdown();
  assert.deepEqual(o.health.attempts(), ["retry", "error"]);
  assert.deepEqual(o.health.drops(), [{ reason: "error", items: 1 }]);
  assert.ok(o.lines.some((l) => l.msg === "otel export failed" && l.level === "warn"));
});

Deno.test("a hung collector: shutdown returns at otel.shutdown_timeout_ms, and what was queued is dropped as shutdown", async () => {
  await using rx = receiver({ respond: () => rx.released.then(() => Response.json({})) });
  const o = options(rx.url, {
    batch_size: 1,
    timeout_ms: 60_000,
    shutdown_timeout_ms: 50,
    logs: true,
  });
  const otel = startOtel(o);
  otel.records([...exchange(1), ...exchange(2)]);
  await rx.waitFor(() => rx.requests.length >= 1, "the first export", AbortSignal.timeout(10_000));
  await otel.shutdown();
  const dropped = (signal: "traces" | "logs") =>
    o.health.drops(signal).reduce((n, d) => n + d.items, 0);
  // The export in flight is aborted: it reports its drop when its fetch ends, right after.
  await o.health.until(() => dropped("traces") === 2 && dropped("logs") === 4);
  assert.ok(o.health.drops().every((d) => d.reason === "shutdown"));
});

Deno.test("records after shutdown are dropped as shutdown; records() never throws", async () => {
  await using rx = receiver();
  const o = options(rx.url);
  const otel = startOtel(o);
  await otel.shutdown();
  otel.records(exchange(1));
  assert.deepEqual(o.health.drops(), [{ reason: "shutdown", items: 1 }]);
  otel.records([stored({ ts: "not a time" }), stored({ kind: "response", ts: "nope" })]);
  await otel.shutdown();
});

Deno.test("log requests stay within 4 MiB however their lines escape; a line larger than that goes alone", async () => {
  await using rx = receiver();
  const o = options(rx.url, { logs: true, batch_size: 100, queue_size: 100 });
  const otel = startOtel(o);
  // Every `"` of the text is `\"` in the line and `\\\"` in an OTLP/JSON request: a line of
  // 1.2 M characters is a 2.4 MB request.
  const quotes = '"'.repeat(600_000);
  const batch = Array.from(
    { length: 5 },
    () => stored({ kind: "notification", method: "x", tool_name: null, params: { text: quotes } }),
  );
  const huge = stored({
    kind: "notification",
    method: "x",
    tool_name: null,
    params: { text: "y".repeat(5 * 1024 * 1024) },
  });
  otel.records([...batch, huge]);
  await otel.shutdown();
  assert.deepEqual(o.health.drops(), []);
  const requests = rx.requests.filter((r) => r.path === "/v1/logs");
  assert.deepEqual(rx.logs().map((l) => l.body), [...batch, huge].map((s) => s.line));
  const sizes = requests.map((r) => r.body.length);
  const last = sizes.pop();
  assert.ok(sizes.every((n) => n <= 4 * 1024 * 1024), `request sizes ${sizes}`);
  assert.ok(last !== undefined && last > 4 * 1024 * 1024, "the 5 MiB line went, alone");
});

Deno.test("the span queue is bounded in bytes too: with a hung collector, spans of hostile text are dropped before otel.queue_size", async () => {
  await using rx = receiver({ respond: () => rx.released.then(() => Response.json({})) });
  const o = options(rx.url, {
    queue_size: 100_000,
    batch_size: 1,
    timeout_ms: 60_000,
    shutdown_timeout_ms: 10,
  });
  const otel = startOtel(o);
  // Three bytes a character; every span cuts it to 1024 characters, twice (name and attribute).
  const tool = "字".repeat(1 << 20);
  const fields = (id: number, kind: "request" | "response"): AuditRecord => ({
    ...stored({}).record,
    kind,
    direction: kind === "request" ? "client_to_server" : "server_to_client",
    jsonrpc_id: id,
    tool_name: tool,
  });
  const records: StoredRecord[] = [];
  for (let id = 1; id <= 4000; id++) {
    // The line is not read for spans: a short one keeps the test small.
    records.push({ line: "{}", record: fields(id, "request") });
    records.push({ line: "{}", record: fields(id, "response") });
  }
  otel.records(records);
  const full = o.health.drops("traces").filter((d) => d.reason === "queue_full");
  await otel.shutdown();
  const dropped = full.reduce((n, d) => n + d.items, 0);
  // 16 MiB of spans of about 7 KiB each wait; the rest are refused, long before 100 000.
  assert.ok(dropped > 1000 && dropped < 4000, `queue_full drops: ${dropped}`);
});
