import assert from "node:assert/strict";
import { ROOT_CONTEXT, trace, TraceFlags } from "@opentelemetry/api";
import { SeverityNumber } from "@opentelemetry/api-logs";
import {
  LoggerProvider,
  type LogRecordProcessor,
  type ReadableLogRecord,
} from "@opentelemetry/sdk-logs";
import { AUDIT_EVENT_NAME, auditLogRecord, severityOf } from "./log_records.ts";
import type { AuditRecord } from "../audit/record.ts";
import { hrTimeOf, SPAN_TEXT_LIMIT } from "./spans.ts";
import { record, stored } from "./testdata/records.ts";

function rec(fields: Partial<AuditRecord>): AuditRecord {
  return record({
    seq: 42,
    id: "01HZX",
    ts: "2026-03-01T10:00:00.123Z",
    tool_name: "echo",
    params: { name: "echo" },
    prev: "ab".repeat(32),
    sig: "hmac-sha256:k1:cd",
    ...fields,
  });
}

Deno.test("a stored record becomes a log record: the exact line as body, its ts, the chain fields as attributes", () => {
  const r = rec({ session: "s-9" });
  const s = stored(r);
  const out = auditLogRecord(s, ROOT_CONTEXT);
  assert.equal(out.body, s.line);
  assert.equal(out.eventName, AUDIT_EVENT_NAME);
  assert.deepEqual(out.timestamp, hrTimeOf(Date.parse(r.ts)));
  assert.equal(out.severityNumber, SeverityNumber.INFO);
  assert.equal(out.severityText, "INFO");
  assert.deepEqual(out.attributes, {
    "mcp_audit.seq": 42,
    "mcp_audit.prev": "ab".repeat(32),
    "mcp_audit.sig": "hmac-sha256:k1:cd",
    "mcp_audit.entry_id": "01HZX",
    "mcp_audit.kind": "request",
    "mcp_audit.direction": "client_to_server",
    "mcp.method.name": "tools/call",
    "gen_ai.tool.name": "echo",
    "mcp.session.id": "s-9",
    "mcp_audit.client_id": "agent-1",
    "mcp_audit.server_id": "srv-1",
  });
});

Deno.test("absent fields are left out: no sig when unsigned, no method, tool or session", () => {
  const out = auditLogRecord(
    stored(rec({
      kind: "event",
      direction: "proxy",
      method: null,
      tool_name: null,
      sig: null,
      client_id: "",
      server_id: "",
    })),
    ROOT_CONTEXT,
  );
  assert.deepEqual(Object.keys(out.attributes ?? {}), [
    "mcp_audit.seq",
    "mcp_audit.prev",
    "mcp_audit.entry_id",
    "mcp_audit.kind",
    "mcp_audit.direction",
  ]);
});

Deno.test("severity: WARN for error and invalid records, carried-out refusals, recover and tools_changed events", () => {
  const deny = { action: "deny" as const, rule: 1, reason: "r" };
  const warn: Partial<AuditRecord>[] = [
    { kind: "error", error: { code: -32030, message: "Policy denied" } },
    { kind: "invalid" },
    { decision: deny },
    { decision: { ...deny, action: "rate_limited" } },
    { kind: "event", direction: "proxy", method: "audit/recover" },
    { kind: "event", direction: "proxy", method: "audit/tools_changed" },
  ];
  for (const f of warn) assert.equal(severityOf(rec(f)), SeverityNumber.WARN, JSON.stringify(f));
  const info: Partial<AuditRecord>[] = [
    {},
    { kind: "response" },
    { decision: { ...deny, enforced: false } }, // monitor mode: recorded, not carried out
    { decision: { action: "allow", rule: null, reason: "" } },
    { kind: "event", direction: "proxy", method: "audit/start" },
  ];
  for (const f of info) assert.equal(severityOf(rec(f)), SeverityNumber.INFO, JSON.stringify(f));
  assert.equal(auditLogRecord(stored(rec(warn[0]!)), ROOT_CONTEXT).severityText, "WARN");
});

Deno.test("through the SDK logger: the record carries the trace context it was given", () => {
  const got: ReadableLogRecord[] = [];
  const collect: LogRecordProcessor = {
    onEmit(r) {
      got.push(r);
    },
    forceFlush: () => Promise.resolve(),
    shutdown: () => Promise.resolve(),
  };
  const provider = new LoggerProvider({ processors: [collect] });
  const logger = provider.getLogger("test");
  const spanContext = {
    traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
    spanId: "00f067aa0ba902b7",
    traceFlags: TraceFlags.SAMPLED,
  };
  const s = stored(rec({}));
  logger.emit(auditLogRecord(s, trace.setSpanContext(ROOT_CONTEXT, spanContext)));
  logger.emit(auditLogRecord(s, ROOT_CONTEXT));
  assert.equal(got.length, 2);
  assert.equal(got[0]!.spanContext?.spanId, spanContext.spanId);
  assert.equal(got[0]!.body, s.line);
  assert.deepEqual(got[0]!.hrTime, hrTimeOf(Date.parse(s.record.ts)));
  assert.equal(got[1]!.spanContext, undefined);
});

Deno.test("the body is the whole line however long; the attributes a client or server chose are cut with a marker", () => {
  const big = "m".repeat(1 << 20);
  const s = stored(
    rec({ method: big, tool_name: big, session: big, client_id: big, server_id: big }),
  );
  const log = auditLogRecord(s, ROOT_CONTEXT);
  assert.equal(log.body, s.line);
  for (
    const key of [
      "mcp.method.name",
      "gen_ai.tool.name",
      "mcp.session.id",
      "mcp_audit.client_id",
      "mcp_audit.server_id",
    ]
  ) {
    const v = log.attributes?.[key];
    assert.equal(typeof v, "string", key);
    assert.equal(String(v).length, SPAN_TEXT_LIMIT, key);
    assert.ok(String(v).endsWith(`…[truncated: ${1 << 20} chars]`), key);
  }
});
