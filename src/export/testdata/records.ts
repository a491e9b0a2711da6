/**
 * A varied signed log for the export tests: every kind, both directions, both transports, each
 * decision, errors and tool errors, server-initiated requests, numbers no double holds, and
 * values that attack CSV and CEF. Lines are built as the proxy stores them (`recordText`, chained
 * by SHA-256, HMAC-signed).
 *
 * @module
 */
import { sha256Hex } from "../../audit/chain.ts";
import { type AuditFields, type AuditRecord, eventFields, GENESIS } from "../../audit/record.ts";
import { recordText } from "../../audit/record_text.ts";
import { hmacSigner } from "../../audit/signing.ts";
import { rawNumber } from "../../jsonrpc/json.ts";
import type { ReadRecord } from "../../audit/storage/query.ts";

/** The HMAC secret the sample log is signed with. */
export const SAMPLE_SECRET = "export-test-secret";

const BASE: AuditFields = {
  kind: "request",
  direction: "client_to_server",
  transport: "stdio",
  session: "s-1",
  jsonrpc_id: null,
  method: null,
  tool_name: null,
  params: null,
  result: null,
  error: null,
  redacted: [],
  duration_ms: null,
  decision: null,
  client_info: { name: "claude-ai", version: "0.1.0" },
  wire_sha256: "ab".repeat(32),
  upstream: null,
};

/** Fields with the defaults above. */
export function fields(over: Partial<AuditFields>): AuditFields {
  return { ...BASE, ...over };
}

/** What a record is for a test, and its fields. */
export interface Sample {
  name: string;
  fields: AuditFields;
}

/** The records of the sample log, in order. */
export const SAMPLES: readonly Sample[] = [
  {
    name: "start",
    fields: eventFields("audit/start", { version: "0.1.0", pid: 4242 }, "stdio", "s-1"),
  },
  {
    name: "initialize",
    fields: fields({
      jsonrpc_id: 0,
      method: "initialize",
      params: {
        protocolVersion: "2025-06-18",
        clientInfo: { name: "claude-ai", version: "0.1.0" },
      },
    }),
  },
  {
    name: "initialize answered",
    fields: fields({
      kind: "response",
      direction: "server_to_client",
      jsonrpc_id: 0,
      method: "initialize",
      result: { protocolVersion: "2025-06-18" },
      duration_ms: 12.345,
    }),
  },
  {
    name: "tools/list filtered",
    fields: fields({
      kind: "response",
      direction: "server_to_client",
      jsonrpc_id: 1,
      method: "tools/list",
      result: { tools: [{ name: "read_file" }] },
      duration_ms: 3,
      decision: {
        action: "filter",
        rule: null,
        reason: "1 of the server's tools hidden from this client",
        hidden: [{ name: "delete_file", reason: "denied by policy" }],
        upstream_sha256: "cd".repeat(32),
      },
    }),
  },
  {
    name: "tools/call allowed",
    fields: fields({
      jsonrpc_id: 2,
      method: "tools/call",
      tool_name: "read_file",
      params: { name: "read_file", arguments: { path: "/srv/a.txt" } },
      decision: { action: "allow", rule: 1, reason: "reads are fine" },
    }),
  },
  {
    name: "tool error",
    fields: fields({
      kind: "response",
      direction: "server_to_client",
      jsonrpc_id: 2,
      method: "tools/call",
      tool_name: "read_file",
      result: { isError: true, content: [{ type: "text", text: "ENOENT" }] },
      duration_ms: 40.5,
    }),
  },
  {
    name: "denied",
    fields: fields({
      jsonrpc_id: 7,
      method: "tools/call",
      tool_name: "delete_file",
      params: { name: "delete_file", arguments: { path: "/etc/passwd" } },
      decision: {
        action: "deny",
        rule: 0,
        reason: "Destructive filesystem operations are blocked",
      },
    }),
  },
  {
    name: "denied answer",
    fields: fields({
      kind: "error",
      direction: "server_to_client",
      jsonrpc_id: 7,
      method: "tools/call",
      tool_name: "delete_file",
      error: { code: -32030, message: "policy denied" },
      duration_ms: 0.2,
    }),
  },
  {
    name: "monitor-mode denial",
    fields: fields({
      jsonrpc_id: 8,
      method: "tools/call",
      tool_name: "delete_file",
      decision: { action: "deny", rule: 0, reason: "would be blocked", enforced: false },
    }),
  },
  {
    name: "pinning denial",
    fields: fields({
      jsonrpc_id: 9,
      method: "tools/call",
      tool_name: "changed_tool",
      decision: { action: "deny", rule: null, reason: "definition changed", by: "pinning" },
    }),
  },
  {
    name: "rate limited",
    fields: fields({
      jsonrpc_id: "req-10",
      method: "tools/call",
      tool_name: "read_file",
      decision: { action: "rate_limited", rule: null, reason: "over 60 requests per minute" },
    }),
  },
  {
    name: "resources/read over http",
    fields: fields({
      transport: "http",
      upstream: "https://mcp.example.com/mcp",
      jsonrpc_id: 11,
      method: "resources/read",
      params: { uri: "file:///srv/readme.md" },
    }),
  },
  {
    name: "resources/subscribe to an IPv6 upstream",
    fields: fields({
      transport: "http",
      upstream: "http://[::1]:8443/mcp",
      jsonrpc_id: 12,
      method: "resources/subscribe",
      params: { uri: "file:///srv/log" },
    }),
  },
  {
    name: "resources/unsubscribe",
    fields: fields({ jsonrpc_id: 13, method: "resources/unsubscribe", params: { uri: "x:y" } }),
  },
  {
    name: "server request",
    fields: fields({
      direction: "server_to_client",
      jsonrpc_id: "srv-1",
      method: "roots/list",
    }),
  },
  {
    name: "client answers the server",
    fields: fields({
      kind: "response",
      direction: "client_to_server",
      jsonrpc_id: "srv-1",
      method: "roots/list",
      result: { roots: [] },
      duration_ms: 1,
    }),
  },
  {
    name: "notification",
    fields: fields({
      kind: "notification",
      direction: "server_to_client",
      method: "notifications/progress",
      params: { progress: 1, total: -1 },
    }),
  },
  {
    name: "ping without a session",
    fields: fields({ session: null, client_info: null, jsonrpc_id: 14, method: "ping" }),
  },
  {
    name: "invalid",
    fields: fields({ kind: "invalid" }),
  },
  {
    name: "unknown error",
    fields: fields({
      kind: "error",
      direction: "server_to_client",
      jsonrpc_id: 15,
      method: "prompts/get",
      error: { code: -32600, message: "Invalid Request" },
      duration_ms: 2,
    }),
  },
  {
    name: "big numbers",
    fields: fields({
      jsonrpc_id: rawNumber("18446744073709551616"),
      method: "tools/call",
      tool_name: "calc",
      params: { name: "calc", arguments: { x: rawNumber("1e400"), y: -0.5 } },
    }),
  },
  {
    name: "hostile",
    fields: fields({
      session: "+SUM(1,2)",
      jsonrpc_id: "-1",
      method: "=cmd|' /C calc'!A0",
      tool_name: "@evil|name=x\\y\nz",
      decision: {
        action: "deny",
        rule: 3,
        reason: "-bad\r\nreason | with = and \\ and 😀 and \u202e",
      },
      params: { "a,b": '"quoted"', "10": 1, "9": 2 },
    }),
  },
  {
    name: "rotate",
    fields: eventFields(
      "audit/rotate",
      { archive: "audit.jsonl.20260610T220000Z", cause: "size", continues_after_seq: 22 },
      "stdio",
      null,
    ),
  },
];

/** The chain's timestamps: one second apart from this instant. */
export const FIRST_TS = Date.parse("2026-11-25T03:49:36.219Z");

/**
 * Chains `samples` into stored records: seq from `firstSeq`, prev the SHA-256 of the previous
 * line, ts a second apart, signed with {@link SAMPLE_SECRET}.
 */
export function chain(
  samples: readonly Sample[],
  options: { firstSeq?: number; prev?: string; firstTs?: number; clientId?: string } = {},
): ReadRecord[] {
  const signer = hmacSigner(SAMPLE_SECRET);
  let prev = options.prev ?? GENESIS;
  const firstSeq = options.firstSeq ?? 1;
  const out: ReadRecord[] = [];
  samples.forEach((s, i) => {
    const seq = firstSeq + i;
    const unsigned: Omit<AuditRecord, "sig"> = {
      ...s.fields,
      v: 1,
      seq,
      id: ulidLike(seq),
      ts: new Date((options.firstTs ?? FIRST_TS) + i * 1000).toISOString(),
      client_id: options.clientId ?? "claude-desktop",
      server_id: "filesystem",
      prev,
    };
    const text = recordText(unsigned);
    const sig = signer.sign(text.unsigned);
    const line = text.signed(sig);
    out.push({ record: { ...unsigned, sig }, line });
    prev = sha256Hex(line);
  });
  return out;
}

/** A fixed 26-character Crockford base32 id for a seq, shaped like a ULID. */
function ulidLike(seq: number): string {
  const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  let text = "";
  for (let n = seq; n > 0; n = Math.floor(n / 32)) text = alphabet[n % 32] + text;
  return "01KB" + text.padStart(22, "0");
}

/** The sample log: {@link SAMPLES} chained from seq 1. */
export function sampleLog(): ReadRecord[] {
  return chain(SAMPLES);
}

/** A sample's stored record, by name. */
export function sample(name: string): ReadRecord {
  const log = sampleLog();
  const i = SAMPLES.findIndex((s) => s.name === name);
  if (i < 0) throw new Error(`no sample ${name}`);
  return log[i]!;
}

/**
 * Text that a line-based reader splits or a terminal acts on, as an MCP server can put it in a
 * tool name, an error message or a reason: each C0 control but TAB, DEL, C1 (NEL, CSI, OSC),
 * U+2028 and U+2029, and the attack reviewer's values.
 */
export const CONTROL_TEXTS: readonly string[] = [
  "nul\u0000byte",
  "\u001b[2J\u001b[31mRED",
  "\u001b]8;;http://evil\u0007link\u001b]8;;\u0007",
  "vt\u000bff\u000cx",
  "nel\u0085x",
  "ls\u2028sep\u2029x",
  "del\u007fx",
  "csi\u009b31mx",
  "osc\u009d0;title\u009cx",
  "line1\nline2",
  "cr\rret",
  "crlf\r\nx",
  "tab\tstays",
  "every C0 " + Array.from({ length: 32 }, (_, c) => String.fromCharCode(c)).join(""),
  "every C1 " + Array.from({ length: 33 }, (_, c) => String.fromCharCode(0x7f + c)).join(""),
];

/** A raw character no SIEM line may hold: C0 but TAB, DEL, C1, U+2028, U+2029. */
// deno-lint-ignore no-control-regex
export const RAW_CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u2028\u2029]/;

/** Where some reader ends a line: CRLF, LF, CR, VT, FF, NEL, U+2028, U+2029. */
// deno-lint-ignore no-control-regex
export const ANY_LINE_BREAK = /\r\n|[\n\r\u000b\u000c\u0085\u2028\u2029]/;
