import assert from "node:assert/strict";
import type { WriteReport } from "../audit/chain.ts";
import type { AuditRecord, Decision } from "../audit/record.ts";
import type { StoredRecord } from "../audit/storage/store.ts";
import type { JsonValue } from "../jsonrpc/json.ts";
import { Logger } from "../log.ts";
import { Metrics, type MetricsOptions } from "./metrics.ts";
import { ALL_METRICS } from "./metric_names.ts";
import { ProxyStats } from "./proxy_stats.ts";
import { RecordSequence, stored } from "./testdata/records.ts";
import { promtool } from "../../tests/fixtures/promtool.ts";
import { METRICS_OPTIONS } from "./testdata/metrics_options.ts";

// --- a small reader of the exposition, to check what a scraper sees ---------------------------

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
interface Family {
  help: string;
  type: string;
  samples: Sample[];
}

function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const m of text.matchAll(re)) {
    out[m[1]!] = m[2]!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
  }
  return out;
}

/** Families by name, from text format 0.0.4. */
function parse(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  let current: Family | undefined;
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const help = /^# HELP (\S+) (.*)$/.exec(line);
    if (help) {
      current = { help: help[2]!, type: "", samples: [] };
      families.set(help[1]!, current);
      continue;
    }
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) {
      current!.type = type[2]!;
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `sample line: ${line}`);
    current!.samples.push({ name: m[1]!, labels: parseLabels(m[2] ?? ""), value: Number(m[3]) });
  }
  return families;
}

function value(
  families: Map<string, Family>,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const family = families.get(name.replace(/_(bucket|sum|count)$/, "")) ?? families.get(name);
  const s = family?.samples.find((s) =>
    s.name === name && Object.keys(labels).length === Object.keys(s.labels).length &&
    Object.entries(labels).every(([k, v]) => s.labels[k] === v)
  );
  return s?.value;
}

// --- records --------------------------------------------------------------------------------

const records = new RecordSequence(
  { id: (seq) => `id${seq}`, ts: () => "2026-01-01T00:00:00.000Z" },
  { client_id: "claude-desktop", server_id: "everything" },
);
function rec(fields: Partial<AuditRecord>): StoredRecord {
  return stored(records.next(fields));
}

/** A request and its answer, as the pipeline records them. */
function call(
  tool: string | null,
  answer: { result?: JsonValue; error?: { code: number; message: string } },
  method = "tools/call",
  ms = 12,
): StoredRecord[] {
  return [
    rec({ kind: "request", method, tool_name: tool }),
    rec({
      kind: answer.error ? "error" : "response",
      direction: "server_to_client",
      method,
      tool_name: tool,
      result: answer.result ?? null,
      error: answer.error ?? null,
      duration_ms: ms,
    }),
  ];
}

function decided(decision: Decision, fields: Partial<AuditRecord> = {}): StoredRecord {
  return rec({ kind: "request", tool_name: "echo", decision, ...fields });
}

function event(method: string, params: JsonValue): StoredRecord {
  return rec({ kind: "event", direction: "proxy", method, params, jsonrpc_id: null });
}

function fixture(options: Partial<MetricsOptions> = {}) {
  const log = { queued: 0, queueCapacity: 0, backpressure: 0 };
  const stats = new ProxyStats();
  const lines: string[] = [];
  const logger = new Logger("debug", (l) => lines.push(l));
  const metrics = new Metrics({ ...METRICS_OPTIONS, ...options }, { log, stats }, logger);
  return {
    log,
    stats,
    metrics,
    lines,
    async scrape(): Promise<Map<string, Family>> {
      return parse((await metrics.scrape(null)).body);
    },
    async [Symbol.asyncDispose]() {
      await metrics.shutdown();
    },
  };
}

const REPORT: WriteReport = { records: 1, seconds: 0.002, ok: true, mode: "sync" };

/** Feeds something to every metric, so that every labelled family shows. */
function feedEverything(f: ReturnType<typeof fixture>): void {
  const m = f.metrics;
  m.records([
    ...call("echo", { result: { content: [] } }),
    ...call("echo", { error: { code: -32602, message: "bad" } }),
    ...call(null, { result: { tools: [] } }, "tools/list"),
    rec({ kind: "notification", method: "notifications/initialized", jsonrpc_id: null }),
    decided({ action: "allow", rule: 0, reason: "ok" }),
    decided({ action: "rate_limited", rule: null, reason: "over" }),
    event("audit/tools_changed", { changes: [{ name: "echo", change: "changed" }] }),
    event("audit/reload", { trigger: "signal", outcome: "applied" }),
  ]);
  m.writes([REPORT, { records: 4, seconds: 0.01, ok: true, mode: "async" }]);
  f.stats.retried("503");
  f.stats.upstreamStarted();
  f.stats.upstreamEnded(0, null);
  for (const signal of ["traces", "logs"] as const) {
    m.attempt(signal, "ok", 3, 0.02);
    m.dropped(signal, "queue_full", 1);
  }
}

// --- the Go tool's metrics, golden (go-contract §1.1, §1.2) -----------------------------------

const GO_GOLDEN: [string, string, string[], string, number[]?][] = [
  [
    "mcp_audit_entries_total",
    "counter",
    ["transport", "direction", "method", "status"],
    "Total audit entries recorded.",
  ],
  [
    "mcp_audit_tool_calls_total",
    "counter",
    ["transport", "tool_name", "status"],
    "Total MCP tools/call audit entries recorded.",
  ],
  [
    "mcp_audit_policy_decisions_total",
    "counter",
    ["action"],
    "Total policy decisions for MCP tools/call requests.",
  ],
  [
    "mcp_audit_rate_limit_rejections_total",
    "counter",
    ["client_id", "tool_name"],
    "Total tools/call requests rejected by rate limits.",
  ],
  [
    "mcp_audit_http_upstream_retries_total",
    "counter",
    ["reason"],
    "Total HTTP upstream retry attempts.",
  ],
  [
    "mcp_audit_storage_writes_total",
    "counter",
    ["backend", "mode", "status"],
    "Total audit storage writes.",
  ],
  [
    "mcp_audit_storage_write_duration_seconds",
    "histogram",
    ["backend", "mode"],
    "Audit storage write duration in seconds.",
    [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  ],
  [
    "mcp_audit_async_backpressure_total",
    "counter",
    [],
    "Total times async audit writes encountered a full queue.",
  ],
  ["mcp_audit_async_batches_total", "counter", [], "Total async audit batches written."],
  [
    "mcp_audit_async_batch_size",
    "histogram",
    [],
    "Number of audit entries per async storage batch.",
    [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
  ],
  ["mcp_audit_async_queue_depth", "gauge", [], "Current number of queued async audit entries."],
  ["mcp_audit_async_queue_capacity", "gauge", [], "Maximum number of queued async audit entries."],
  [
    "mcp_audit_otel_export_requests_total",
    "counter",
    ["status"],
    "Total OTLP trace export requests.",
  ],
  ["mcp_audit_otel_spans_total", "counter", ["status"], "Total OTLP spans by export outcome."],
  [
    "mcp_audit_otel_export_duration_seconds",
    "histogram",
    ["status"],
    "OTLP trace export request duration in seconds.",
    [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  ],
  [
    "mcp_audit_otel_spans_dropped_total",
    "counter",
    ["reason"],
    "Total OTLP spans dropped before successful export.",
  ],
  ["mcp_audit_otel_queue_depth", "gauge", [], "Current number of queued OTLP spans."],
  ["mcp_audit_otel_queue_capacity", "gauge", [], "Maximum number of queued OTLP spans."],
];

const ADDED_GOLDEN: [string, string, string[], string, number[]?][] = [
  [
    "mcp_audit_otel_log_export_requests_total",
    "counter",
    ["status"],
    "Total OTLP log export requests.",
  ],
  [
    "mcp_audit_otel_log_records_total",
    "counter",
    ["status"],
    "Total OTLP log records by export outcome.",
  ],
  [
    "mcp_audit_otel_log_export_duration_seconds",
    "histogram",
    ["status"],
    "OTLP log export request duration in seconds.",
    [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  ],
  [
    "mcp_audit_otel_log_records_dropped_total",
    "counter",
    ["reason"],
    "Total OTLP log records dropped before successful export.",
  ],
  ["mcp_audit_otel_log_queue_depth", "gauge", [], "Current number of queued OTLP log records."],
  ["mcp_audit_otel_log_queue_capacity", "gauge", [], "Maximum number of queued OTLP log records."],
  [
    "mcp_audit_request_duration_seconds",
    "histogram",
    ["transport", "method", "tool_name", "status"],
    "Time from a request to its answer as the proxy saw them, in seconds, by how it ended (ok, rpc_error, tool_error).",
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
  ],
  [
    "mcp_audit_chain_seq",
    "gauge",
    [],
    "Sequence number of the last audit record this process stored.",
  ],
  [
    "mcp_audit_records_total",
    "counter",
    ["kind"],
    "Total audit records this process stored, by record kind.",
  ],
  [
    "mcp_audit_guardrail_decisions_total",
    "counter",
    ["method", "action", "by"],
    "Total guardrail decisions recorded, by method, action and deciding guardrail.",
  ],
  [
    "mcp_audit_tool_pin_changes_total",
    "counter",
    ["change"],
    "Total tool definitions found added, changed or removed since they were pinned.",
  ],
  [
    "mcp_audit_config_reloads_total",
    "counter",
    ["trigger", "outcome"],
    "Total configuration reloads, by what started them and their outcome.",
  ],
  ["mcp_audit_http_sessions_open", "gauge", [], "Current number of open HTTP sessions."],
  [
    "mcp_audit_upstream_processes_started_total",
    "counter",
    [],
    "Total upstream server processes started.",
  ],
  [
    "mcp_audit_upstream_process_exits_total",
    "counter",
    ["outcome"],
    "Total upstream server processes ended, by how they ended (clean, error, signal).",
  ],
];

function checkGolden(families: Map<string, Family>, golden: typeof GO_GOLDEN): void {
  for (const [name, type, labels, help, buckets] of golden) {
    const f = families.get(name);
    assert.ok(f, `${name} is served`);
    assert.equal(f.type, type, `${name} type`);
    assert.equal(f.help, help, `${name} help`);
    for (const s of f.samples) {
      const names = Object.keys(s.labels).filter((l) => l !== "le");
      assert.deepEqual(names, labels, `${name} labels`);
    }
    if (buckets !== undefined) {
      const les = [
        ...new Set(f.samples.filter((s) => s.name === `${name}_bucket`).map((s) => s.labels.le)),
      ];
      assert.deepEqual(les, [...buckets.map(String), "+Inf"], `${name} buckets`);
    } else {
      assert.ok(f.samples.every((s) => s.name === name), `${name} samples`);
    }
  }
}

Deno.test("golden: every Go metric with its name, type, labels, help text and buckets", async () => {
  await using f = fixture();
  feedEverything(f);
  checkGolden(await f.scrape(), GO_GOLDEN);
});

Deno.test("golden: the added metrics, and nothing served that the contract file does not name", async () => {
  await using f = fixture({ includeProcess: true, includeRuntime: true });
  feedEverything(f);
  const families = await f.scrape();
  checkGolden(families, ADDED_GOLDEN);
  const named = new Set(ALL_METRICS.map((s) => s.name));
  for (const name of families.keys()) assert.ok(named.has(name), `${name} is in metric_names.ts`);
  const golden = new Set([...GO_GOLDEN, ...ADDED_GOLDEN].map(([n]) => n));
  for (const s of ALL_METRICS) {
    if (s.origin === "go" || s.origin === "added") {
      assert.ok(golden.has(s.name), `${s.name} golden`);
    }
  }
});

Deno.test("at start: label-less counters and the batch-size histogram at 0, labelled ones absent", async () => {
  await using f = fixture();
  const families = await f.scrape();
  assert.equal(value(families, "mcp_audit_async_backpressure_total"), 0);
  assert.equal(value(families, "mcp_audit_async_batches_total"), 0);
  assert.equal(value(families, "mcp_audit_async_batch_size_count"), 0);
  assert.equal(value(families, "mcp_audit_async_batch_size_bucket", { le: "+Inf" }), 0);
  assert.equal(value(families, "mcp_audit_async_queue_depth"), 0);
  assert.equal(value(families, "mcp_audit_otel_queue_capacity"), 0);
  assert.equal(value(families, "mcp_audit_upstream_processes_started_total"), 0);
  assert.equal(families.has("mcp_audit_entries_total"), false);
  assert.equal(families.has("mcp_audit_tool_calls_total"), false);
});

Deno.test("entries: answers and notifications count once; requests, invalid messages and events do not", async () => {
  await using f = fixture();
  f.metrics.records([
    ...call("echo", { result: { content: [], isError: true } }),
    ...call("echo", { error: { code: -32602, message: "bad" } }),
    rec({ kind: "notification", method: "notifications/initialized", jsonrpc_id: null }),
    rec({
      kind: "notification",
      direction: "server_to_client",
      method: "vendor/thing",
      jsonrpc_id: null,
    }),
    // An invalid message and the proxy's -32600 answer to it: one entry, the answer.
    rec({ kind: "invalid", method: null, error: { code: -32600, message: "Invalid Request" } }),
    rec({
      kind: "error",
      direction: "server_to_client",
      method: null,
      error: { code: -32600, message: "Invalid Request" },
    }),
    event("audit/start", {}),
  ]);
  const m = await f.scrape();
  const entry = (direction: string, method: string, status: string) =>
    value(m, "mcp_audit_entries_total", { transport: "stdio", direction, method, status });
  // A tool result with isError counts ok, as the Go tool counts it.
  assert.equal(entry("server_to_client", "tools/call", "ok"), 1);
  assert.equal(entry("server_to_client", "tools/call", "rpc_error"), 1);
  assert.equal(entry("client_to_server", "notifications/initialized", "ok"), 1);
  assert.equal(entry("server_to_client", "other", "ok"), 1);
  assert.equal(entry("server_to_client", "unknown", "rpc_error"), 1);
  assert.equal(entry("client_to_server", "unknown", "rpc_error"), undefined);
  const total = m.get("mcp_audit_entries_total")!.samples.reduce((n, s) => n + s.value, 0);
  assert.equal(total, 5);
  assert.equal(value(m, "mcp_audit_records_total", { kind: "request" }), 2);
  assert.equal(value(m, "mcp_audit_records_total", { kind: "response" }), 1);
  assert.equal(value(m, "mcp_audit_records_total", { kind: "error" }), 2);
  assert.equal(value(m, "mcp_audit_records_total", { kind: "event" }), 1);
  assert.equal(value(m, "mcp_audit_records_total", { kind: "invalid" }), 1);
  assert.equal(value(m, "mcp_audit_chain_seq"), records.seq);
});

Deno.test("tool calls and request durations by tool and status (tool_error from isError)", async () => {
  await using f = fixture();
  f.metrics.records([
    ...call("echo", { result: { content: [] } }, "tools/call", 3),
    ...call("echo", { result: { content: [], isError: true } }, "tools/call", 700),
    ...call("add", { error: { code: -32000, message: "boom" } }, "tools/call", 30_000),
    ...call(null, { result: {} }, "ping", 0.2),
  ]);
  const m = await f.scrape();
  assert.equal(
    value(m, "mcp_audit_tool_calls_total", { transport: "stdio", tool_name: "echo", status: "ok" }),
    2,
  );
  assert.equal(
    value(m, "mcp_audit_tool_calls_total", {
      transport: "stdio",
      tool_name: "add",
      status: "rpc_error",
    }),
    1,
  );
  const d = (labels: Record<string, string>, suffix: string, le?: string) =>
    value(m, `mcp_audit_request_duration_seconds_${suffix}`, {
      transport: "stdio",
      ...labels,
      ...(le ? { le } : {}),
    });
  assert.equal(d({ method: "tools/call", tool_name: "echo", status: "ok" }, "count"), 1);
  assert.equal(d({ method: "tools/call", tool_name: "echo", status: "ok" }, "sum"), 0.003);
  assert.equal(
    d({ method: "tools/call", tool_name: "echo", status: "tool_error" }, "bucket", "0.5"),
    0,
  );
  assert.equal(
    d({ method: "tools/call", tool_name: "echo", status: "tool_error" }, "bucket", "1"),
    1,
  );
  assert.equal(
    d({ method: "tools/call", tool_name: "add", status: "rpc_error" }, "bucket", "30"),
    1,
  );
  assert.equal(d({ method: "ping", tool_name: "unknown", status: "ok" }, "bucket", "0.0005"), 1);
});

Deno.test("tool_labels false: the tool metrics stay, without the tool_name label", async () => {
  await using f = fixture({ toolLabels: false });
  f.metrics.records([
    ...call("echo", { result: {} }),
    ...call("add", { result: {} }),
    decided({ action: "rate_limited", rule: null, reason: "over" }),
  ]);
  const m = await f.scrape();
  assert.equal(value(m, "mcp_audit_tool_calls_total", { transport: "stdio", status: "ok" }), 2);
  assert.equal(
    value(m, "mcp_audit_rate_limit_rejections_total", { client_id: "claude-desktop" }),
    1,
  );
  assert.equal(
    value(m, "mcp_audit_request_duration_seconds_count", {
      transport: "stdio",
      method: "tools/call",
      status: "ok",
    }),
    2,
  );
  for (const f of m.values()) {
    for (const s of f.samples) assert.ok(!("tool_name" in s.labels), s.name);
  }
});

Deno.test("a hostile server's 10k listed tools and a client's 10k made-up names make at most 201 tool series", async () => {
  await using f = fixture();
  const listed = Array.from({ length: 10_000 }, (_, i) => ({ name: `tool_${i}` }));
  const batch: StoredRecord[] = [...call(null, { result: { tools: listed } }, "tools/list")];
  for (let i = 0; i < 10_000; i++) batch.push(...call(`tool_${i}`, { result: {} }));
  for (let i = 0; i < 10_000; i++) batch.push(...call(`made_up_${i}`, { result: {} }));
  batch.push(...call("not a valid name", { result: {} }));
  f.metrics.records(batch);
  const m = await f.scrape();
  const series = m.get("mcp_audit_tool_calls_total")!.samples;
  assert.ok(series.length <= 201, `${series.length} series`);
  const calls = (tool_name: string) =>
    value(m, "mcp_audit_tool_calls_total", { transport: "stdio", tool_name, status: "ok" });
  assert.equal(calls("tool_0"), 1);
  assert.equal(calls("tool_199"), 1);
  assert.equal(calls("tool_200"), undefined);
  assert.equal(calls("made_up_0"), undefined);
  assert.equal(calls("other"), 10_000 - 200 + 10_000 + 1);
  const durations = m.get("mcp_audit_request_duration_seconds")!.samples.filter((s) =>
    s.name.endsWith("_count")
  );
  assert.ok(durations.length <= 201 + 1);
  assert.equal(
    [...m.values()].some((f) => f.samples.some((s) => "otel_metric_overflow" in s.labels)),
    false,
  );
});

Deno.test("tool labels go to the server's listed tools first: called-only names get at most half", async () => {
  await using f = fixture({ maxToolLabels: 4 });
  f.metrics.records([
    // Called before any listing: two of them (half of 4) keep their names.
    ...call("made_up_1", { result: {} }),
    ...call("made_up_2", { result: {} }),
    ...call("made_up_3", { result: {} }),
    // A client's answer to a server's tools/list request lists nothing.
    rec({
      kind: "response",
      direction: "client_to_server",
      method: "tools/list",
      result: { tools: [{ name: "fake_1" }, { name: "fake_2" }] },
    }),
    ...call(null, {
      result: {
        tools: [
          { name: "echo" },
          { name: "made_up_1" },
          { name: "bad name" },
          { name: "add" },
          {
            name: "sub",
          },
          { nom: "x" },
          "y",
        ],
      },
    }, "tools/list"),
    ...call("echo", { result: {} }),
    ...call("add", { result: {} }),
    ...call("sub", { result: {} }),
    ...call("fake_1", { result: {} }),
    ...call("made_up_4", { result: {} }),
  ]);
  const m = await f.scrape();
  const calls = (tool_name: string) =>
    value(m, "mcp_audit_tool_calls_total", { transport: "stdio", tool_name, status: "ok" });
  // echo and add fill the budget (made_up_1 moved to the listed ones): sub comes too late.
  assert.equal(calls("made_up_1"), 1);
  assert.equal(calls("made_up_2"), 1);
  assert.equal(calls("echo"), 1);
  assert.equal(calls("add"), 1);
  assert.equal(calls("other"), 4);
});

Deno.test("guardrail decisions: policy, monitor mode, pinning, rate limit and filter, by method", async () => {
  await using f = fixture();
  f.metrics.records([
    decided({ action: "allow", rule: 0, reason: "ok" }),
    decided({ action: "deny", rule: 1, reason: "no" }),
    decided({ action: "deny", rule: 1, reason: "no", enforced: false }),
    decided({ action: "deny", rule: null, reason: "not pinned", by: "pinning" }),
    decided({ action: "rate_limited", rule: null, reason: "over" }),
    decided({ action: "allow", rule: 0, reason: "ok" }, {
      method: "resources/read",
      tool_name: null,
    }),
    rec({
      kind: "response",
      direction: "server_to_client",
      method: "tools/list",
      decision: {
        action: "filter",
        rule: null,
        reason: "1 hidden",
        hidden: [{ name: "x", reason: "policy" }],
      },
    }),
  ]);
  const m = await f.scrape();
  // Go counts the policy's verdicts on tools/call only; monitor mode's denials are denials.
  assert.equal(value(m, "mcp_audit_policy_decisions_total", { action: "allow" }), 1);
  assert.equal(value(m, "mcp_audit_policy_decisions_total", { action: "deny" }), 2);
  assert.equal(m.get("mcp_audit_policy_decisions_total")!.samples.length, 2);
  const g = (method: string, action: string, by: string) =>
    value(m, "mcp_audit_guardrail_decisions_total", { method, action, by });
  assert.equal(g("tools/call", "allow", "policy"), 1);
  assert.equal(g("tools/call", "deny", "policy"), 1);
  assert.equal(g("tools/call", "monitored_deny", "policy"), 1);
  assert.equal(g("tools/call", "deny", "pinning"), 1);
  assert.equal(g("tools/call", "rate_limited", "rate_limit"), 1);
  assert.equal(g("resources/read", "allow", "policy"), 1);
  assert.equal(g("tools/list", "filter", "policy"), 1);
  assert.equal(
    value(m, "mcp_audit_rate_limit_rejections_total", {
      client_id: "claude-desktop",
      tool_name: "echo",
    }),
    1,
  );
});

Deno.test("pin changes and reloads come from their events; odd values are other", async () => {
  await using f = fixture();
  f.metrics.records([
    event("audit/tools_changed", {
      changes: [
        { change: "added" },
        { change: "changed" },
        { change: "changed" },
        { change: "removed" },
        { change: "eaten" },
        7,
      ],
    }),
    event("audit/reload", { trigger: "signal", outcome: "applied" }),
    event("audit/reload", { trigger: "file", outcome: "rejected" }),
    event("audit/reload", { trigger: "cosmic ray" }),
    event("audit/tools_changed", "not an object"),
  ]);
  const m = await f.scrape();
  assert.equal(value(m, "mcp_audit_tool_pin_changes_total", { change: "changed" }), 2);
  assert.equal(value(m, "mcp_audit_tool_pin_changes_total", { change: "added" }), 1);
  assert.equal(value(m, "mcp_audit_tool_pin_changes_total", { change: "removed" }), 1);
  assert.equal(value(m, "mcp_audit_tool_pin_changes_total", { change: "other" }), 1);
  assert.equal(value(m, "mcp_audit_tool_pin_changes_total", { change: "unknown" }), 1);
  assert.equal(
    value(m, "mcp_audit_config_reloads_total", { trigger: "signal", outcome: "applied" }),
    1,
  );
  assert.equal(
    value(m, "mcp_audit_config_reloads_total", { trigger: "file", outcome: "rejected" }),
    1,
  );
  assert.equal(
    value(m, "mcp_audit_config_reloads_total", { trigger: "other", outcome: "unknown" }),
    1,
  );
});

Deno.test("storage writes: records per attempt by backend, mode and status; async batches", async () => {
  await using f = fixture({ backend: "sqlite" });
  f.log.queued = 7;
  f.log.queueCapacity = 4096;
  f.log.backpressure = 3;
  f.metrics.writes([
    { records: 1, seconds: 0.002, ok: true, mode: "sync" },
    { records: 128, seconds: 0.02, ok: true, mode: "async" },
    { records: 5, seconds: 0.003, ok: true, mode: "async" },
    { records: 9, seconds: 3, ok: false, mode: "async" },
  ]);
  const m = await f.scrape();
  const w = (mode: string, status: string) =>
    value(m, "mcp_audit_storage_writes_total", { backend: "sqlite", mode, status });
  assert.equal(w("sync", "ok"), 1);
  assert.equal(w("async", "ok"), 133);
  assert.equal(w("async", "error"), 9);
  assert.equal(
    value(m, "mcp_audit_storage_write_duration_seconds_count", {
      backend: "sqlite",
      mode: "async",
    }),
    3,
  );
  assert.equal(
    value(m, "mcp_audit_storage_write_duration_seconds_bucket", {
      backend: "sqlite",
      mode: "async",
      le: "2.5",
    }),
    2,
  );
  assert.equal(value(m, "mcp_audit_async_batches_total"), 2);
  assert.equal(value(m, "mcp_audit_async_batch_size_count"), 2);
  assert.equal(value(m, "mcp_audit_async_batch_size_bucket", { le: "8" }), 1);
  assert.equal(value(m, "mcp_audit_async_batch_size_bucket", { le: "128" }), 2);
  assert.equal(value(m, "mcp_audit_async_queue_depth"), 7);
  assert.equal(value(m, "mcp_audit_async_queue_capacity"), 4096);
  assert.equal(value(m, "mcp_audit_async_backpressure_total"), 3);
});

Deno.test("export health: attempts, items and drops by signal; queues read when scraped", async () => {
  await using f = fixture({ otelQueueCapacity: 1024 });
  let depth = 5;
  const m0 = await f.scrape();
  assert.equal(value(m0, "mcp_audit_otel_queue_capacity"), 1024);
  assert.equal(value(m0, "mcp_audit_otel_log_queue_capacity"), 0);
  f.metrics.queue("traces", () => ({ depth, capacity: 1024 }));
  f.metrics.queue("logs", () => {
    throw new Error("a broken reader reads as nothing");
  });
  f.metrics.attempt("traces", "retry", 64, 0.2);
  f.metrics.attempt("traces", "ok", 64, 0.02);
  f.metrics.attempt("traces", "ok", 0, 0.02);
  f.metrics.attempt("logs", "permanent_error", 10, 0.01);
  f.metrics.dropped("traces", "queue_full", 1);
  f.metrics.dropped("traces", "queue_full", 0);
  f.metrics.dropped("logs", "permanent_error", 10);
  depth = 9;
  const m = await f.scrape();
  assert.equal(value(m, "mcp_audit_otel_export_requests_total", { status: "ok" }), 1);
  assert.equal(value(m, "mcp_audit_otel_export_requests_total", { status: "retry" }), 1);
  assert.equal(value(m, "mcp_audit_otel_spans_total", { status: "retry" }), 64);
  assert.equal(value(m, "mcp_audit_otel_export_duration_seconds_count", { status: "ok" }), 1);
  assert.equal(value(m, "mcp_audit_otel_spans_dropped_total", { reason: "queue_full" }), 1);
  assert.equal(value(m, "mcp_audit_otel_queue_depth"), 9);
  assert.equal(
    value(m, "mcp_audit_otel_log_export_requests_total", { status: "permanent_error" }),
    1,
  );
  assert.equal(value(m, "mcp_audit_otel_log_records_total", { status: "permanent_error" }), 10);
  assert.equal(
    value(m, "mcp_audit_otel_log_records_dropped_total", { reason: "permanent_error" }),
    10,
  );
  assert.equal(value(m, "mcp_audit_otel_log_queue_depth"), 0);
  assert.equal(m.has("mcp_audit_otel_log_export_requests_total"), true);
});

Deno.test("transport counters are read when scraped", async () => {
  await using f = fixture();
  f.stats.retried("network");
  f.stats.retried("429");
  f.stats.retried("429");
  f.stats.retried("weird reason");
  f.stats.upstreamStarted();
  f.stats.upstreamStarted();
  f.stats.upstreamEnded(0, null);
  f.stats.upstreamEnded(1, null);
  f.stats.upstreamEnded(null, "SIGKILL");
  let open = 3;
  f.stats.sessionsOpen = () => open;
  const m = await f.scrape();
  assert.equal(value(m, "mcp_audit_http_upstream_retries_total", { reason: "429" }), 2);
  assert.equal(value(m, "mcp_audit_http_upstream_retries_total", { reason: "network" }), 1);
  assert.equal(value(m, "mcp_audit_http_upstream_retries_total", { reason: "other" }), 1);
  assert.equal(value(m, "mcp_audit_upstream_processes_started_total"), 2);
  for (const outcome of ["clean", "error", "signal"]) {
    assert.equal(value(m, "mcp_audit_upstream_process_exits_total", { outcome }), 1);
  }
  assert.equal(value(m, "mcp_audit_http_sessions_open"), 3);
  open = 1;
  assert.equal(value(await f.scrape(), "mcp_audit_http_sessions_open"), 1);
});

Deno.test("OpenMetrics when asked, text otherwise", async () => {
  await using f = fixture();
  feedEverything(f);
  const om = await f.metrics.scrape("application/openmetrics-text;version=1.0.0");
  assert.equal(om.contentType, "application/openmetrics-text; version=1.0.0; charset=utf-8");
  assert.ok(om.body.endsWith("# EOF\n"));
  assert.match(om.body, /^# TYPE mcp_audit_entries counter$/m);
  assert.match(om.body, /^mcp_audit_entries_total\{/m);
  const text = await f.metrics.scrape("text/plain");
  assert.equal(text.contentType, "text/plain; version=0.0.4; charset=utf-8");
  assert.match(text.body, /^# TYPE mcp_audit_entries_total counter$/m);
});

Deno.test("promtool finds the whole exposition clean (no parse error, no lint)", async () => {
  await using f = fixture({ includeProcess: true, includeRuntime: true });
  feedEverything(f);
  const { body } = await f.metrics.scrape(null);
  const { code, said } = await promtool(body);
  assert.equal(code, 0, said);
  assert.equal(said.trim(), "");
});

Deno.test("after shutdown a scrape fails with MetricsError instead of serving stale numbers", async () => {
  const f = fixture();
  await f.metrics.shutdown();
  await assert.rejects(() => f.metrics.scrape(null), { name: "MetricsError" });
});
