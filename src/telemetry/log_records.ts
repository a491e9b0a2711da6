/**
 * Audit records as OpenTelemetry log records (`otel.logs: true`): how a fleet of proxies feeds one
 * collector, and any SIEM behind it.
 *
 * The body is the exact stored line, as a string, so whoever receives it can check its signature
 * and its place in the chain (`seq`, `prev`, `sig` are attributes too, for search). It is the
 * stored copy: redacted as the log is, never the wire. The body is never cut; the attributes a
 * client or server chose (method, tool name, session, client and server ids) are cut as a span's
 * are, to `SPAN_TEXT_LIMIT` with a marker, for they repeat what the body holds whole.
 *
 * @example
 * ```ts
 * import { LoggerProvider } from "@opentelemetry/sdk-logs";
 * import { ROOT_CONTEXT } from "@opentelemetry/api";
 * import { auditLogRecord } from "./log_records.ts";
 *
 * const logger = new LoggerProvider().getLogger("mcp-audit");
 * // log.observe((batch) => { for (const r of batch) logger.emit(auditLogRecord(r, ROOT_CONTEXT)); });
 * ```
 *
 * @module
 */
import type { Context } from "@opentelemetry/api";
import { type LogAttributes, type LogRecord, SeverityNumber } from "@opentelemetry/api-logs";
import { type AuditRecord, EventMethod } from "../audit/record.ts";
import type { StoredRecord } from "../audit/storage/store.ts";
import { cutText, hrTimeOf } from "./spans.ts";

/** The `eventName` of every exported audit record. */
export const AUDIT_EVENT_NAME = "mcp_audit.record";

/**
 * WARN for what a reader of the log should look at: error answers, messages that broke the wire
 * rules, refusals the guardrails carried out, a log that had to recover, and changed tool
 * definitions. INFO for everything else.
 */
export function severityOf(r: AuditRecord): SeverityNumber {
  if (r.kind === "error" || r.kind === "invalid") return SeverityNumber.WARN;
  const d = r.decision;
  if (
    d !== null && (d.action === "deny" || d.action === "rate_limited") && d.enforced !== false
  ) return SeverityNumber.WARN;
  if (r.method === EventMethod.Recover || r.method === EventMethod.ToolsChanged) {
    return SeverityNumber.WARN;
  }
  return SeverityNumber.INFO;
}

/**
 * The log record of one stored audit record. `context` is the trace it belongs to (the exchange's
 * span, or the caller's trace for a request), so that a backend shows the record beside the span.
 */
export function auditLogRecord(stored: StoredRecord, context: Context): LogRecord {
  const r = stored.record;
  const a: LogAttributes = {};
  a["mcp_audit.seq"] = r.seq;
  a["mcp_audit.prev"] = r.prev;
  if (r.sig !== null) a["mcp_audit.sig"] = r.sig;
  a["mcp_audit.entry_id"] = r.id;
  a["mcp_audit.kind"] = r.kind;
  a["mcp_audit.direction"] = r.direction;
  if (r.method !== null) a["mcp.method.name"] = cutText(r.method);
  if (r.tool_name !== null) a["gen_ai.tool.name"] = cutText(r.tool_name);
  if (r.session !== null) a["mcp.session.id"] = cutText(r.session);
  if (r.client_id !== "") a["mcp_audit.client_id"] = cutText(r.client_id);
  if (r.server_id !== "") a["mcp_audit.server_id"] = cutText(r.server_id);
  const severity = severityOf(r);
  const ms = Date.parse(r.ts);
  const record: LogRecord = {
    eventName: AUDIT_EVENT_NAME,
    severityNumber: severity,
    severityText: severity === SeverityNumber.WARN ? "WARN" : "INFO",
    body: stored.line,
    attributes: a,
    context,
  };
  if (!Number.isNaN(ms)) record.timestamp = hrTimeOf(ms);
  return record;
}
