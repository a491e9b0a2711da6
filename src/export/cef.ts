/**
 * A record as one ArcSight CEF line, mapped and escaped as go-contract.md §8.2 says:
 * `CEF:0|mcp-audit|mcp-audit|<version>|<class>|<name>|<severity>|<extension>`.
 *
 * Header fields escape `\` and `|` and turn line breaks into spaces; extension values escape `\`,
 * `=`, LF (`\n`) and CR (`\r`). Every other control character (NUL, ESC, VT, FF, the rest of C0,
 * DEL, C1 with NEL, U+2028, U+2029) becomes U+FFFD in both, since CEF has no escape for it and a
 * syslog relay or a terminal would act on it raw (see controls.ts). Values are cut to the CEF
 * dictionary's length for their key before escaping, so a cut never splits an escape, and never
 * between the halves of a surrogate pair. `seq` (`cn3`) and the record id (`externalId`) are always
 * present.
 *
 * @module
 */
import type { AuditRecord } from "../audit/record.ts";
import { canonicalize } from "../audit/canonical.ts";
import { VERSION } from "../version.ts";
import { escapeJsonControls, replaceControls } from "./controls.ts";
import { clientApplication, describeRecord, timeOf } from "./describe.ts";

/**
 * At most `max` UTF-16 code units of `text`, never ending inside a surrogate pair. A consumer
 * counting characters as code points sees no more than `max` either.
 */
export function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  const last = text.charCodeAt(max - 1);
  const cut = last >= 0xd800 && last <= 0xdbff ? max - 1 : max;
  return text.slice(0, cut);
}

/**
 * A header field: `\` and `|` escaped, line breaks made spaces, other control characters made
 * U+FFFD, cut to `max` first.
 */
export function headerField(text: string, max: number): string {
  return replaceControls(truncate(text, max))
    .replace(/\r\n|[\r\n]/g, " ")
    .replace(/[\\|]/g, (c) => "\\" + c);
}

const EXTENSION_ESCAPES: Readonly<Record<string, string>> = {
  "\\": "\\\\",
  "=": "\\=",
  "\n": "\\n",
  "\r": "\\r",
};

/**
 * An extension value: cut to `max`, trailing spaces dropped (a parser cannot tell them from the
 * separator), other control characters than CR and LF made U+FFFD, then `\`, `=`, LF and CR
 * escaped. `|` needs no escape here.
 */
export function extensionValue(text: string, max: number): string {
  return replaceControls(truncate(text, max).replace(/ +$/, ""))
    .replace(/[\\=\n\r]/g, (c) => EXTENSION_ESCAPES[c]!);
}

// Lengths from the CEF key dictionary (go-contract.md §8.2).
const LIMITS = {
  act: 63,
  outcome: 63,
  externalId: 40,
  msg: 1023,
  reason: 1023,
  suser: 1023,
  requestClientApplication: 1023,
  destinationServiceName: 1023,
  cat: 1023,
  dhost: 1023,
  deviceProcessName: 1023,
  app: 31,
  proto: 31,
  cs: 4000,
} as const;

// Header lengths: vendor, product 63; version 31; class id 1023; name 512.
const NAME_MAX = 512;

/** Severity 0–10: ok 1, error or tool error 3, rate limited 5, policy denial 7. */
function severityOf(level: 1 | 2 | 3, rateLimited: boolean): number {
  if (level === 3) return 7;
  if (rateLimited) return 5;
  return level === 2 ? 3 : 1;
}

/**
 * Maps one record to its CEF line (no newline).
 * @throws {RecordMappingError} when the record's `ts` is not a time
 */
export function cefLine(r: AuditRecord): string {
  const time = timeOf(r);
  const d = describeRecord(r);
  const classId = d.refusal?.kind === "deny"
    ? "policy-deny"
    : d.refusal?.kind === "rate_limited"
    ? "rate-limited"
    : r.kind;
  const header = [
    "CEF:0",
    headerField("mcp-audit", 63),
    headerField("mcp-audit", 63),
    headerField(VERSION, 31),
    headerField(classId, 1023),
    headerField(d.summary, NAME_MAX),
    String(severityOf(d.level, d.refusal?.kind === "rate_limited")),
  ].join("|");

  const ext: string[] = [];
  const put = (key: string, value: string | number | null, max: number): void => {
    if (value === null) return;
    const text = typeof value === "number" ? String(value) : extensionValue(value, max);
    if (text !== "") ext.push(`${key}=${text}`);
  };
  const custom = (n: number, label: string, value: string | null): void => {
    if (value === null) return;
    put(`cs${n}Label`, label, LIMITS.cs);
    put(`cs${n}`, value, LIMITS.cs);
  };
  const number = (n: number, label: string, value: number | null): void => {
    if (value === null || !Number.isFinite(value)) return;
    put(`cn${n}Label`, label, LIMITS.cs);
    put(`cn${n}`, value, LIMITS.cs);
  };

  put("rt", time, 0);
  const duration = (r.kind === "response" || r.kind === "error") &&
      typeof r.duration_ms === "number"
    ? Math.round(r.duration_ms)
    : null;
  if (duration !== null) {
    put("start", time - duration, 0);
    put("end", time, 0);
  }
  put("externalId", r.id, LIMITS.externalId);
  put("cat", r.kind, LIMITS.cat);
  put(
    "act",
    // Whether an event or an invalid message was passed on is not this record's to say.
    r.decision !== null
      ? r.decision.action
      : r.kind === "event" || r.kind === "invalid"
      ? null
      : "forward",
    LIMITS.act,
  );
  const known = d.failed || d.answer.kind === "success";
  put("outcome", known ? (d.failed ? "failure" : "success") : null, LIMITS.outcome);
  const reason = d.refusal?.reason ?? (d.answer.kind === "error" ? d.answer.message : null);
  put("reason", reason, LIMITS.reason);
  put("suser", r.client_id, LIMITS.suser);
  put("requestClientApplication", clientApplication(r), LIMITS.requestClientApplication);
  put("destinationServiceName", r.server_id, LIMITS.destinationServiceName);
  if (d.upstream !== null) {
    // An address goes in `dst`, a name in `dhost`.
    put(d.upstream.isIp ? "dst" : "dhost", d.upstream.host, LIMITS.dhost);
    put("dpt", d.upstream.port, 0);
  }
  if (r.transport === "http") put("proto", "TCP", LIMITS.proto);
  put("app", "MCP", LIMITS.app);
  put(
    "deviceDirection",
    r.direction === "client_to_server" ? 0 : r.direction === "server_to_client" ? 1 : null,
    0,
  );
  put("deviceProcessName", "mcp-audit", LIMITS.deviceProcessName);
  custom(1, "mcpMethod", r.method);
  custom(2, "toolName", r.tool_name);
  custom(3, "mcpSession", r.session);
  // JSON text: its own escapes keep a control character in a string id exact.
  custom(
    4,
    "jsonrpcId",
    r.jsonrpc_id === null ? null : escapeJsonControls(canonicalize(r.jsonrpc_id)),
  );
  custom(5, "policyRule", d.policyName);
  custom(6, "recordSig", r.sig ?? r.prev);
  number(1, "durationMs", duration);
  number(2, "jsonrpcErrorCode", d.answer.kind === "error" ? d.answer.code : null);
  number(3, "seq", r.seq);
  put("msg", reason === null || reason === "" ? d.summary : `${d.summary}: ${reason}`, LIMITS.msg);
  return `${header}|${ext.join(" ")}`;
}
