import { assert, assertEquals } from "../../tests/assert.ts";
import { type AuditRecord, GENESIS } from "../audit/record.ts";
import { recordText } from "../audit/record_text.ts";
import type { StoredRecord } from "../audit/storage/store.ts";
import { loadConfig } from "../config/load.ts";
import { Logger } from "../log.ts";
import { ProxyStats } from "./proxy_stats.ts";
import { Telemetry, TelemetryStartError } from "./telemetry.ts";
import type { TelemetryStart } from "./worker_protocol.ts";
import { METRICS_OPTIONS } from "./testdata/metrics_options.ts";
import { record as testRecord } from "./testdata/records.ts";

const quiet = new Logger("error", () => {});

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected a rejection");
}
const defaults =
  loadConfig({ file: undefined, env: {}, flags: new Map(), upstreamArgv: [] }).config;

const metricsOnly: TelemetryStart = {
  logLevel: "error",
  metrics: { ...METRICS_OPTIONS },
  otel: null,
};

function stored(seq: number, kind: AuditRecord["kind"], toolName: string): StoredRecord {
  const record = testRecord({
    seq,
    id: `01J${String(seq).padStart(23, "0")}`,
    ts: "2026-12-06T12:00:00.000Z",
    kind,
    direction: kind === "request" ? "client_to_server" : "server_to_client",
    session: "s",
    jsonrpc_id: seq,
    tool_name: toolName,
    result: kind === "response" ? { content: [] } : null,
    duration_ms: kind === "response" ? 1.5 : null,
    client_id: "c",
    server_id: "s",
    prev: GENESIS,
  });
  return { line: recordText(record).signed(null), record };
}

function sources(stats = new ProxyStats()) {
  return { log: () => ({ queued: 2, queueCapacity: 8, backpressure: 1 }), stats };
}

Deno.test("the telemetry worker counts the batches it is sent, and answers scrapes with them", async () => {
  const stats = new ProxyStats();
  stats.retried("503");
  const t = await Telemetry.start(metricsOnly, sources(stats), quiet);
  try {
    t.records([stored(1, "request", "echo"), stored(2, "response", "echo")]);
    t.records([stored(3, "request", "add"), stored(4, "response", "add")]);
    // Messages to the worker keep their order: the scrape sees both batches.
    const { body, contentType } = await t.scrape("text/plain");
    assert(contentType.startsWith("text/plain"), contentType);
    assert(
      body.includes('mcp_audit_tool_calls_total{transport="stdio",tool_name="echo",status="ok"} 1'),
    );
    assert(
      body.includes('mcp_audit_tool_calls_total{transport="stdio",tool_name="add",status="ok"} 1'),
    );
    assert(body.includes("mcp_audit_chain_seq 4"), body);
    // The main thread's counters, read at the scrape.
    assert(body.includes("mcp_audit_async_queue_depth 2"), body);
    assert(body.includes('mcp_audit_http_upstream_retries_total{reason="503"} 1'), body);
  } finally {
    await t.shutdown();
  }
});

Deno.test("a bad otel setting fails the start with the key at fault, and the worker ends", async () => {
  const start: TelemetryStart = {
    ...metricsOnly,
    otel: {
      config: { ...defaults.otel, enabled: true, endpoint: "ftp://collector" },
      version: "0.0.0",
      storage: "jsonl",
      upstream: null,
    },
  };
  const e = await rejection(Telemetry.start(start, sources(), quiet));
  assert(e instanceof TelemetryStartError, String(e));
  assertEquals(e.key, "otel.endpoint");
});

Deno.test("after shutdown, a scrape fails instead of waiting", async () => {
  const t = await Telemetry.start(metricsOnly, sources(), quiet);
  await t.shutdown();
  assert((await rejection(t.scrape(null))) instanceof Error);
});

const FAILING_WORKER = new URL("./testdata/failing_worker.ts", import.meta.url);

Deno.test("with metrics alone, the start does not wait for the worker: one that fails to load is logged, and scrapes then fail", async () => {
  const failed = Promise.withResolvers<string>();
  const logger = new Logger("error", (line) => failed.resolve(line));
  // Resolves although the worker never loads: the start returns before it would know.
  const t = await Telemetry.start(metricsOnly, sources(), logger, FAILING_WORKER);
  try {
    // Sent before the failure is known: taken as into a worker that is still loading.
    t.records([stored(1, "request", "echo")]);
    const line = await failed.promise;
    assert(line.includes("the telemetry worker failed"), line);
    assert(line.includes("this worker cannot load"), line);
    const e = await rejection(t.scrape(null));
    assert(e instanceof Error && e.message.includes("this worker cannot load"), String(e));
  } finally {
    await t.shutdown();
  }
});

Deno.test("with OpenTelemetry on, a worker that fails to load fails the start", async () => {
  const start: TelemetryStart = {
    ...metricsOnly,
    otel: {
      config: { ...defaults.otel, enabled: true },
      version: "0.0.0",
      storage: "jsonl",
      upstream: null,
    },
  };
  const e = await rejection(Telemetry.start(start, sources(), quiet, FAILING_WORKER));
  assert(e instanceof TelemetryStartError, String(e));
  assert(e.problem.includes("this worker cannot load"), e.problem);
});

Deno.test("with metrics alone, a run that sends the worker nothing never creates it", async () => {
  const lines: string[] = [];
  const logger = new Logger("debug", (line) => lines.push(line));
  const t = await Telemetry.start(metricsOnly, sources(), logger, FAILING_WORKER);
  // Created, this worker would fail, and the shutdown would wait for and log its failure.
  await t.shutdown();
  assertEquals(lines, []);
});
