import assert from "node:assert/strict";
import { SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import {
  AlwaysOnSampler,
  type ReadableSpan,
  type SpanProcessor,
  TracerProvider,
} from "@opentelemetry/sdk-trace";
import {
  cutText,
  ExchangeSpans,
  type ExchangeSpansOptions,
  hrTimeOf,
  remoteParent,
  serverOf,
  SPAN_TEXT_LIMIT,
} from "./spans.ts";
import type { AuditRecord } from "../audit/record.ts";
import { rawNumber } from "../jsonrpc/json.ts";
import { Logger } from "../log.ts";
import { RecordSequence } from "./testdata/records.ts";

const T0 = Date.parse("2026-03-01T10:00:00.000Z");
const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID = "00f067aa0ba902b7";

const records = new RecordSequence(
  { id: (seq) => `id-${seq}`, ts: (seq) => new Date(T0 + seq * 10).toISOString() },
  { sig: "hmac-sha256:k1:abcd" },
);
/** A stored record with everything a test does not say filled in. */
function rec(fields: Partial<AuditRecord>): AuditRecord {
  return records.next(fields);
}

function call(id: number, tool: string, extra: Partial<AuditRecord> = {}): AuditRecord {
  return rec({
    kind: "request",
    jsonrpc_id: id,
    method: "tools/call",
    tool_name: tool,
    params: { name: tool, arguments: { secret_thing: "do-not-export" } },
    ...extra,
  });
}

function answer(id: number, tool: string, extra: Partial<AuditRecord> = {}): AuditRecord {
  return rec({
    kind: "response",
    direction: "server_to_client",
    jsonrpc_id: id,
    method: "tools/call",
    tool_name: tool,
    result: { content: [{ type: "text", text: "result-text-not-exported" }] },
    duration_ms: 4.25,
    ...extra,
  });
}

/** A tracer whose ended spans land in `ended`, through the real SDK. */
function harness(options: Partial<ExchangeSpansOptions> = {}) {
  const ended: ReadableSpan[] = [];
  const collect: SpanProcessor = {
    onStart() {},
    onEnd(span) {
      ended.push(span);
    },
    forceFlush: () => Promise.resolve(),
    shutdown: () => Promise.resolve(),
  };
  const provider = new TracerProvider({
    sampler: new AlwaysOnSampler(),
    spanProcessors: [collect],
  });
  const lines: Record<string, unknown>[] = [];
  const spans = new ExchangeSpans({
    tracer: provider.getTracer("test"),
    methods: "tools/call",
    storage: "jsonl",
    upstream: null,
    logger: new Logger("debug", (line) => lines.push(JSON.parse(line))),
    ...options,
  });
  return { spans, ended, lines };
}

function nanos(t: readonly [number, number]): bigint {
  return BigInt(t[0]) * 1_000_000_000n + BigInt(t[1]);
}

Deno.test("a tools/call exchange becomes one CLIENT span with the Go attribute set in its order, ours after", () => {
  const { spans, ended } = harness();
  const req = call(1, "echo", { session: "s-1" });
  const res = answer(1, "echo", { session: "s-1" });
  spans.record(req);
  assert.equal(ended.length, 0);
  spans.record(res);
  assert.equal(ended.length, 1);
  const span = ended[0]!;
  assert.equal(span.name, "tools/call echo");
  assert.equal(span.kind, SpanKind.CLIENT);
  assert.deepEqual(span.status, { code: SpanStatusCode.OK });
  assert.deepEqual(Object.entries(span.attributes), [
    ["mcp.method.name", "tools/call"],
    ["network.transport", "pipe"],
    ["mcp_audit.entry_id", req.id],
    ["mcp_audit.direction", "client_to_server"],
    ["mcp_audit.signature.present", true],
    ["gen_ai.operation.name", "execute_tool"],
    ["jsonrpc.request.id", "1"],
    ["gen_ai.tool.name", "echo"],
    ["mcp_audit.client_id", "agent-1"],
    ["mcp_audit.server_id", "srv-1"],
    ["mcp_audit.storage", "jsonl"],
    ["mcp_audit.seq", req.seq],
    ["mcp_audit.response.seq", res.seq],
    ["mcp_audit.response.entry_id", res.id],
    ["mcp.session.id", "s-1"],
  ]);
  // End at the answer's ts; start duration_ms before it.
  const end = Date.parse(res.ts);
  assert.deepEqual(span.endTime, hrTimeOf(end));
  assert.equal(nanos(span.endTime) - nanos(span.startTime), 4_250_000n);
  // Nothing of params or results is exported.
  const text = JSON.stringify(span.attributes);
  assert.ok(!text.includes("do-not-export") && !text.includes("result-text-not-exported"));
  assert.equal(spans.pending, 0);
});

Deno.test("status as the Go tool: ERROR with the error's message, error.type and the code as an int", () => {
  const cases: [number, string][] = [
    [-32030, "policy_denied"],
    [-32029, "rate_limited"],
    [-32602, "jsonrpc_error"],
  ];
  for (const [code, type] of cases) {
    const { spans, ended } = harness();
    spans.record(call(1, "t"));
    spans.record(
      answer(1, "t", { kind: "error", result: null, error: { code, message: `m${code}` } }),
    );
    const span = ended[0]!;
    assert.deepEqual(span.status, { code: SpanStatusCode.ERROR, message: `m${code}` });
    assert.equal(span.attributes["rpc.response.status_code"], code);
    assert.equal(span.attributes["error.type"], type);
  }
});

Deno.test("a tool result with isError is ERROR tool_error, with no status code", () => {
  const { spans, ended } = harness();
  spans.record(call(1, "t"));
  spans.record(answer(1, "t", { result: { content: [], isError: true } }));
  assert.deepEqual(ended[0]!.status, { code: SpanStatusCode.ERROR, message: "tool_error" });
  assert.equal(ended[0]!.attributes["error.type"], "tool_error");
  assert.equal(ended[0]!.attributes["rpc.response.status_code"], undefined);
});

Deno.test("a refused call (the proxy's -32030 answer) is a span with the guardrail's decision", () => {
  const { spans, ended } = harness();
  const decision = { action: "deny" as const, rule: 0, reason: "no shell" };
  spans.record(call(3, "shell", { decision }));
  spans.record(
    answer(3, "shell", {
      kind: "error",
      result: null,
      error: { code: -32030, message: "Policy denied" },
      duration_ms: 0.1,
    }),
  );
  const span = ended[0]!;
  assert.equal(span.attributes["error.type"], "policy_denied");
  assert.equal(span.attributes["mcp_audit.decision.action"], "deny");
  assert.equal(span.attributes["mcp_audit.decision.enforced"], undefined);
  // Monitor mode and pinning say so.
  const monitor = harness();
  monitor.spans.record(
    call(4, "shell", { decision: { ...decision, enforced: false, by: "pinning" } }),
  );
  monitor.spans.record(answer(4, "shell"));
  const attrs = monitor.ended[0]!.attributes;
  assert.equal(attrs["mcp_audit.decision.enforced"], false);
  assert.equal(attrs["mcp_audit.decision.by"], "pinning");
});

Deno.test("methods: tools/call only by default; every method with all, named by method alone", () => {
  const only = harness();
  only.spans.record(rec({ method: "initialize", jsonrpc_id: 0 }));
  only.spans.record(
    rec({ kind: "response", direction: "server_to_client", method: "initialize", jsonrpc_id: 0 }),
  );
  assert.equal(only.ended.length, 0);
  assert.equal(only.spans.pending, 0);
  const all = harness({ methods: "all" });
  all.spans.record(rec({ method: "initialize", jsonrpc_id: 0 }));
  all.spans.record(
    rec({ kind: "response", direction: "server_to_client", method: "initialize", jsonrpc_id: 0 }),
  );
  assert.equal(all.ended[0]?.name, "initialize");
  assert.equal(all.ended[0]?.attributes["gen_ai.operation.name"], undefined);
});

Deno.test("a server→client request (sampling) is a SERVER span, paired with the client's answer", () => {
  const { spans, ended } = harness({ methods: "all" });
  spans.record(
    rec({ direction: "server_to_client", method: "sampling/createMessage", jsonrpc_id: "s1" }),
  );
  // The client's own request with the same id, the other way, is another exchange.
  spans.record(rec({ direction: "client_to_server", method: "ping", jsonrpc_id: "s1" }));
  spans.record(
    rec({
      kind: "response",
      direction: "client_to_server",
      method: "sampling/createMessage",
      jsonrpc_id: "s1",
      duration_ms: 2,
    }),
  );
  assert.equal(ended.length, 1);
  assert.equal(ended[0]!.name, "sampling/createMessage");
  assert.equal(ended[0]!.kind, SpanKind.SERVER);
  assert.equal(ended[0]!.attributes["mcp_audit.direction"], "server_to_client");
  assert.equal(spans.pending, 1);
});

Deno.test("traceparent in params._meta makes the span its child; tracestate is kept", () => {
  const { spans, ended } = harness();
  const meta = {
    traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`,
    tracestate: "vendor=abc,other=1",
  };
  spans.record(call(1, "echo", { params: { name: "echo", _meta: meta } }));
  spans.record(answer(1, "echo"));
  const span = ended[0]!;
  assert.equal(span.spanContext().traceId, TRACE_ID);
  assert.equal(span.parentSpanContext?.spanId, PARENT_ID);
  assert.equal(span.parentSpanContext?.isRemote, true);
  assert.equal(span.spanContext().traceState?.serialize(), "vendor=abc,other=1");
  assert.notEqual(span.spanContext().spanId, PARENT_ID);
});

Deno.test("an invalid traceparent makes a root span, without error", () => {
  const bad = [
    `00-${"0".repeat(32)}-${PARENT_ID}-01`, // all-zero trace id
    `00-${TRACE_ID}-${"0".repeat(16)}-01`, // all-zero parent id
    `ff-${TRACE_ID}-${PARENT_ID}-01`, // version ff
    `00-${TRACE_ID.toUpperCase()}-${PARENT_ID}-01`,
    `00-${TRACE_ID}-${PARENT_ID}-01-extra`, // version 00 has no more fields
    "garbage",
  ];
  for (const traceparent of bad) {
    const { spans, ended } = harness();
    spans.record(call(1, "echo", { params: { _meta: { traceparent } } }));
    spans.record(answer(1, "echo"));
    const span = ended[0]!;
    assert.equal(span.parentSpanContext, undefined, traceparent);
    assert.notEqual(span.spanContext().traceId, TRACE_ID);
  }
  for (const params of [null, "x", { _meta: "x" }, { _meta: { traceparent: 7 } }]) {
    assert.equal(trace.getSpanContext(remoteParent(params)), undefined);
  }
});

Deno.test("requests are paired by session: the same id in two sessions is two exchanges", () => {
  const { spans, ended } = harness();
  spans.record(call(1, "a", { session: "A" }));
  spans.record(call(1, "b", { session: "B" }));
  spans.record(answer(1, "b", { session: "B" }));
  spans.record(answer(1, "a", { session: "A" }));
  assert.deepEqual(ended.map((s) => s.name), ["tools/call b", "tools/call a"]);
});

Deno.test('ids keep their type: "1" does not answer 1 from a client, but a server\'s "1" is paired as the proxy pairs it', () => {
  const { spans, ended } = harness({ methods: "all" });
  spans.record(rec({ direction: "server_to_client", method: "roots/list", jsonrpc_id: 1 }));
  spans.record(
    rec({ kind: "response", direction: "client_to_server", method: null, jsonrpc_id: "1" }),
  );
  assert.equal(ended.length, 0);
  spans.record(call(7, "echo"));
  spans.record(answer(7, "echo", { jsonrpc_id: "7" }));
  assert.equal(ended.length, 1);
  // A number kept as its text pairs with itself.
  spans.record(call(0, "big", { jsonrpc_id: rawNumber("12345678901234567890") }));
  spans.record(answer(0, "big", { jsonrpc_id: rawNumber("12345678901234567890") }));
  assert.equal(ended[1]?.attributes["jsonrpc.request.id"], "12345678901234567890");
});

Deno.test("the waiting map is bounded: the oldest request is forgotten, counted, and logged once per batch", () => {
  const { spans, ended, lines } = harness({ maxPending: 2 });
  const before = spans.evicted;
  spans.record(call(1, "a"));
  spans.record(call(2, "b"));
  spans.record(call(3, "c"));
  spans.reportEvictions(before);
  assert.equal(spans.pending, 2);
  assert.equal(spans.evicted, 1);
  spans.record(answer(1, "a"));
  assert.equal(ended.length, 0, "the forgotten request gets no span");
  spans.record(answer(3, "c"));
  assert.equal(ended.length, 1);
  const line = lines.find((l) =>
    l.msg === "otel: too many unanswered requests; the oldest get no span"
  );
  assert.equal(line?.evicted, 1);
  assert.equal(line?.max_pending, 2);
  spans.reportEvictions(spans.evicted);
  assert.equal(lines.length, 1);
});

Deno.test("notifications/cancelled from the requester ends the span as cancelled", () => {
  const { spans, ended } = harness();
  const req = call(5, "slow");
  spans.record(req);
  // From the other side it names another request.
  spans.record(
    rec({
      kind: "notification",
      direction: "server_to_client",
      method: "notifications/cancelled",
      jsonrpc_id: null,
      params: { requestId: 5 },
    }),
  );
  assert.equal(ended.length, 0);
  const cancel = rec({
    kind: "notification",
    method: "notifications/cancelled",
    jsonrpc_id: null,
    params: { requestId: 5, reason: "user" },
  });
  spans.record(cancel);
  assert.equal(ended.length, 1);
  assert.equal(ended[0]!.attributes["error.type"], "cancelled");
  assert.equal(ended[0]!.attributes["mcp_audit.response.seq"], cancel.seq);
  assert.equal(ended[0]!.status.code, SpanStatusCode.ERROR);
  assert.deepEqual(ended[0]!.startTime, hrTimeOf(Date.parse(req.ts)));
  spans.record(answer(5, "slow"));
  assert.equal(ended.length, 1, "a late answer makes no second span");
});

Deno.test("audit/stop ends every unanswered request with no_answer", () => {
  const { spans, ended } = harness();
  spans.record(call(1, "a"));
  spans.record(call(2, "b"));
  spans.record(rec({ kind: "event", direction: "proxy", method: "audit/stop", jsonrpc_id: null }));
  assert.deepEqual(ended.map((s) => s.attributes["error.type"]), ["no_answer", "no_answer"]);
  assert.equal(spans.pending, 0);
});

Deno.test("HTTP: network attributes, and server.address/port from the record's upstream or the configured one", () => {
  const { spans, ended } = harness({ upstream: "https://mcp.example.com/mcp" });
  spans.record(call(1, "a", { transport: "http" }));
  spans.record(answer(1, "a", { transport: "http" }));
  spans.record(call(2, "b", { transport: "http", upstream: "http://[::1]:8080/mcp" }));
  spans.record(answer(2, "b", { transport: "http" }));
  const [a, b] = ended;
  assert.equal(a?.attributes["network.transport"], "tcp");
  assert.equal(a?.attributes["network.protocol.name"], "http");
  assert.equal(a?.attributes["server.address"], "mcp.example.com");
  assert.equal(a?.attributes["server.port"], 443);
  assert.equal(b?.attributes["server.address"], "::1");
  assert.equal(b?.attributes["server.port"], 8080);
});

Deno.test("serverOf: explicit port, else 80/443 by scheme; nothing for what is not a URL", () => {
  assert.deepEqual(serverOf("http://10.0.0.5/mcp"), { address: "10.0.0.5", port: 80 });
  assert.deepEqual(serverOf("https://h:9443"), { address: "h", port: 9443 });
  assert.equal(serverOf("npx server"), null);
  assert.equal(serverOf(null), null);
  assert.equal(serverOf(""), null);
});

Deno.test("record() returns the context a log record belongs to: the caller's for a request, the span's for its answer", () => {
  const { spans, ended } = harness();
  const params = { _meta: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` } };
  const reqCtx = spans.record(call(1, "echo", { params }));
  assert.equal(trace.getSpanContext(reqCtx)?.spanId, PARENT_ID);
  const resCtx = spans.record(answer(1, "echo"));
  assert.equal(trace.getSpanContext(resCtx)?.spanId, ended[0]!.spanContext().spanId);
  assert.equal(
    trace.getSpanContext(spans.record(rec({ kind: "notification", method: "x" }))),
    undefined,
  );
});

Deno.test("cutText keeps short text, cuts long text to the limit with a marker naming its length, never splitting a pair", () => {
  assert.equal(cutText("tools/call"), "tools/call");
  assert.equal(cutText("x".repeat(SPAN_TEXT_LIMIT)), "x".repeat(SPAN_TEXT_LIMIT));
  const long = "x".repeat(SPAN_TEXT_LIMIT + 1);
  const cut = cutText(long);
  assert.equal(cut.length, SPAN_TEXT_LIMIT);
  assert.ok(cut.endsWith(`…[truncated: ${SPAN_TEXT_LIMIT + 1} chars]`), cut.slice(-40));
  assert.ok(cut.startsWith("xxxx"));
  // A pair that would straddle the cut goes whole: no lone surrogate is left.
  for (let pad = 0; pad < 4; pad++) {
    const text = "a".repeat(pad) + "😀".repeat(200);
    const c = cutText(text, 64);
    assert.ok(c.length <= 64, `${c.length}`);
    assert.ok(c.isWellFormed(), `pad ${pad}: ${c}`);
    assert.ok(text.startsWith(c.slice(0, c.indexOf("…"))));
  }
  // A limit shorter than the marker still holds.
  assert.equal(cutText("x".repeat(100), 5).length, 5);
});

Deno.test("spans carry at most SPAN_TEXT_LIMIT of any text a client or server chose: name, method, tool, id, session, ids, status", () => {
  const { spans, ended } = harness({ methods: "all" });
  const big = (c: string) => c.repeat(1 << 20);
  spans.record(
    rec({
      method: `m${big("m")}`,
      jsonrpc_id: 1,
      session: `s${big("s")}`,
      client_id: `c${big("c")}`,
      server_id: `v${big("v")}`,
    }),
  );
  spans.record(
    answer(1, "x", { method: null, tool_name: null, session: `s${big("s")}` }),
  );
  spans.record(call(0, `t${big("t")}`, { jsonrpc_id: `i${big("i")}` }));
  spans.record(
    answer(0, "t", {
      kind: "error",
      jsonrpc_id: `i${big("i")}`,
      result: null,
      error: { code: -32000, message: `e${big("e")}` },
    }),
  );
  spans.record(call(7, "n", { jsonrpc_id: rawNumber("9".repeat(5000)) }));
  spans.record(answer(7, "n", { jsonrpc_id: rawNumber("9".repeat(5000)) }));
  assert.equal(ended.length, 3, "the long session, id and number still pair");
  for (const span of ended) {
    assert.ok(span.name.length <= SPAN_TEXT_LIMIT, `name ${span.name.length}`);
    assert.ok((span.status.message ?? "").length <= SPAN_TEXT_LIMIT, "status message");
    for (const [k, v] of Object.entries(span.attributes)) {
      if (typeof v === "string") assert.ok(v.length <= SPAN_TEXT_LIMIT, `${k} ${v.length}`);
    }
  }
  const [first, second, third] = ended;
  assert.match(first!.name, /^mmmm.*…\[truncated: 1048577 chars\]$/);
  assert.match(
    String(first!.attributes["mcp.session.id"]),
    /^ssss.*…\[truncated: 1048577 chars\]$/,
  );
  assert.match(String(first!.attributes["mcp_audit.client_id"]), /^cccc/);
  assert.match(String(first!.attributes["mcp_audit.server_id"]), /^vvvv/);
  assert.match(second!.name, /^tools\/call tttt.*…\[truncated: \d+ chars\]$/);
  assert.match(String(second!.attributes["gen_ai.tool.name"]), /^tttt.*truncated/);
  assert.match(String(second!.attributes["jsonrpc.request.id"]), /^iiii.*truncated/);
  assert.match(second!.status.message ?? "", /^eeee.*…\[truncated: 1048577 chars\]$/);
  assert.match(String(third!.attributes["jsonrpc.request.id"]), /^9999.*truncated: 5000 chars/);
});

Deno.test("two long ids that share their first SPAN_TEXT_LIMIT characters are two exchanges", () => {
  const { spans, ended } = harness();
  const prefix = "p".repeat(SPAN_TEXT_LIMIT * 2);
  spans.record(call(0, "a", { jsonrpc_id: `${prefix}a` }));
  spans.record(call(0, "b", { jsonrpc_id: `${prefix}b` }));
  spans.record(answer(0, "b", { jsonrpc_id: `${prefix}b` }));
  spans.record(answer(0, "a", { jsonrpc_id: `${prefix}a` }));
  assert.deepEqual(ended.map((s) => s.name), ["tools/call b", "tools/call a"]);
});

Deno.test("one session's flood of unanswered requests forgets its own oldest, never another session's", () => {
  const { spans, ended, lines } = harness({ maxPending: 3 });
  const before = spans.evicted;
  spans.record(call(1, "slow", { session: "A" }));
  for (let i = 100; i < 110; i++) spans.record(call(i, "hang", { session: "B" }));
  spans.reportEvictions(before);
  assert.equal(spans.pending, 4);
  assert.equal(spans.evicted, 7);
  spans.record(answer(1, "slow", { session: "A" }));
  spans.record(answer(100, "hang", { session: "B" }));
  spans.record(answer(109, "hang", { session: "B" }));
  assert.deepEqual(ended.map((s) => s.attributes["jsonrpc.request.id"]), ["1", "109"]);
  assert.equal(lines.length, 1);
  assert.equal(lines[0]?.evicted, 7);
  assert.equal(lines[0]?.max_pending, 3);
});

Deno.test("past the total bound, the session with the most waiting forgets its oldest", () => {
  const { spans, ended } = harness({ maxPending: 100, maxPendingTotal: 6 });
  spans.record(call(1, "a", { session: "A" }));
  spans.record(call(2, "a", { session: "A" }));
  for (let i = 10; i < 14; i++) spans.record(call(i, "b", { session: "B" }));
  assert.equal(spans.pending, 6);
  // C's first request goes past the total: B, the busiest, forgets its oldest (10).
  spans.record(call(20, "c", { session: "C" }));
  assert.equal(spans.pending, 6);
  assert.equal(spans.evicted, 1);
  // Now A has 2, B 3, C 1: B again.
  spans.record(call(3, "a", { session: "A" }));
  assert.equal(spans.evicted, 2);
  for (
    const [id, session] of [[1, "A"], [2, "A"], [3, "A"], [20, "C"], [10, "B"], [11, "B"]] as const
  ) {
    spans.record(answer(id, "x", { session }));
  }
  assert.deepEqual(ended.map((s) => s.attributes["jsonrpc.request.id"]), ["1", "2", "3", "20"]);
});

Deno.test("past maxSessions, the session least recently heard from is forgotten whole", () => {
  const { spans, ended } = harness({ maxSessions: 2 });
  spans.record(call(1, "a", { session: "A" }));
  spans.record(call(2, "a", { session: "A" }));
  spans.record(call(1, "b", { session: "B" }));
  // A is heard from again, so B is the quiet one when C arrives.
  spans.record(call(3, "a", { session: "A" }));
  spans.record(call(1, "c", { session: "C" }));
  assert.equal(spans.pending, 4);
  assert.equal(spans.evicted, 1);
  spans.record(answer(1, "b", { session: "B" }));
  assert.equal(ended.length, 0, "B was forgotten");
  spans.record(answer(1, "a", { session: "A" }));
  spans.record(answer(1, "c", { session: "C" }));
  assert.deepEqual(ended.map((s) => s.name), ["tools/call a", "tools/call c"]);
  // audit/stop ends what every session still has waiting.
  spans.record(rec({ kind: "event", direction: "proxy", method: "audit/stop", jsonrpc_id: null }));
  assert.equal(ended.length, 4);
  assert.equal(spans.pending, 0);
});

/** An HTTP initialize request, stored before the server names the session. */
function initialize(id: number | string, extra: Partial<AuditRecord> = {}): AuditRecord {
  return rec({
    transport: "http",
    method: "initialize",
    jsonrpc_id: id,
    params: { protocolVersion: "2025-11-25" },
    ...extra,
  });
}

/** Its answer, stored with the session the server named. */
function initialized(id: number | string, session: string): AuditRecord {
  return rec({
    kind: "response",
    direction: "server_to_client",
    transport: "http",
    method: "initialize",
    jsonrpc_id: id,
    session,
    result: { protocolVersion: "2025-11-25" },
    duration_ms: 2,
  });
}

Deno.test("HTTP: an initialize stored without a session pairs with its answer in the session the server named", () => {
  const { spans, ended } = harness({ methods: "all" });
  const req = initialize("init");
  spans.record(req);
  const res = initialized("init", "session-1");
  spans.record(res);
  assert.equal(ended.length, 1);
  const span = ended[0]!;
  assert.equal(span.name, "initialize");
  assert.equal(span.status.code, SpanStatusCode.OK);
  assert.equal(span.attributes["mcp_audit.seq"], req.seq);
  assert.equal(span.attributes["mcp_audit.response.seq"], res.seq);
  assert.equal(span.attributes["mcp.session.id"], "session-1");
  assert.equal(spans.pending, 0);
  spans.record(rec({ kind: "event", direction: "proxy", method: "audit/stop", jsonrpc_id: null }));
  assert.equal(ended.length, 1, "no no_answer span at stop");
});

Deno.test("HTTP: two sessionless initializes with the same id at once — no span pairs the wrong records, none ends as no_answer", () => {
  const { spans, ended } = harness({ methods: "all" });
  spans.record(initialize(0));
  spans.record(initialize(0));
  spans.record(initialized(0, "session-1"));
  spans.record(initialized(0, "session-2"));
  assert.equal(ended.length, 0);
  assert.equal(spans.pending, 0);
  spans.record(rec({ kind: "event", direction: "proxy", method: "audit/stop", jsonrpc_id: null }));
  assert.equal(ended.length, 0);
  // One after the other, each is paired.
  spans.record(initialize(0));
  spans.record(initialized(0, "session-3"));
  spans.record(initialize(0));
  spans.record(initialized(0, "session-4"));
  assert.deepEqual(ended.map((s) => s.attributes["mcp.session.id"]), ["session-3", "session-4"]);
});

Deno.test("only initialize is looked for without a session: another answer in a session never takes a sessionless request", () => {
  const { spans, ended } = harness({ methods: "all" });
  spans.record(call(5, "echo", { transport: "http" }));
  spans.record(answer(5, "echo", { transport: "http", session: "session-1" }));
  assert.equal(ended.length, 0);
  // A sessionless initialize is not taken by an answer of another method, nor the other way.
  spans.record(initialize(6));
  spans.record(answer(6, "echo", { transport: "http", session: "session-1" }));
  assert.equal(ended.length, 0);
  spans.record(
    rec({
      kind: "response",
      direction: "server_to_client",
      method: "initialize",
      jsonrpc_id: 5,
      session: "session-1",
    }),
  );
  assert.equal(ended.length, 0);
  assert.equal(spans.pending, 2);
  // Answered without a session, as a stateless server does, both pair as ever.
  spans.record(answer(5, "echo", { transport: "http" }));
  spans.record(initialized(6, "session-2"));
  assert.deepEqual(ended.map((s) => s.name), ["tools/call echo", "initialize"]);
});
