/**
 * The audit record, schema version 1 (SPEC §3). Field names are the stored names.
 *
 * @module
 */
import type { JsonObject, JsonValue } from "../jsonrpc/json.ts";
import type { JsonRpcId, RpcError } from "../jsonrpc/message.ts";

/** What a record describes. */
export type RecordKind = "request" | "notification" | "response" | "error" | "invalid" | "event";

/** Which way the message went; `proxy` for the proxy's own events. */
export type Direction = "client_to_server" | "server_to_client" | "proxy";

/** The transport a record was seen on. */
export type TransportName = "stdio" | "http";

/**
 * What the guardrails decided about a request (SPEC §3), or did to a `tools/list` answer
 * (`filter`). Fields beyond the first three appear only when they say something.
 */
export type Decision = {
  action: "allow" | "deny" | "rate_limited" | "filter";
  /** The deciding policy rule's index; null for the default action and other guardrails. */
  rule: number | null;
  reason: string;
  /** `false`: monitor mode recorded a denial it did not carry out. */
  enforced?: false;
  /** The guardrail that refused, when it was not the policy (`pinning`). */
  by?: "pinning";
  /** For `filter`: the tools taken out, and why. */
  hidden?: { name: string; reason: string }[];
  /** For `filter`: the SHA-256 of the server's answer as it arrived, before filtering. */
  upstream_sha256?: string;
};

/** The fields a caller supplies; the log fills in the rest. */
export type AuditFields = {
  kind: RecordKind;
  direction: Direction;
  transport: TransportName;
  session: string | null;
  jsonrpc_id: JsonRpcId;
  method: string | null;
  tool_name: string | null;
  params: JsonValue;
  result: JsonValue;
  error: RpcError | null;
  redacted: string[];
  duration_ms: number | null;
  decision: Decision | null;
  client_info: JsonObject | null;
  wire_sha256: string | null;
  /**
   * The upstream URL the message was sent to or came from, for HTTP upstreams (the HTTP proxy and
   * the stdio→HTTP bridge); null for a stdio upstream and for the proxy's own events.
   */
  upstream: string | null;
};

/** A complete stored record. */
export type AuditRecord = AuditFields & {
  v: 1;
  seq: number;
  id: string;
  ts: string;
  client_id: string;
  server_id: string;
  prev: string;
  sig: string | null;
};

/** Every field of a record, in the order SPEC §3 lists them. A golden test pins this list. */
export const RECORD_FIELDS = [
  "v",
  "seq",
  "id",
  "ts",
  "kind",
  "direction",
  "transport",
  "upstream",
  "session",
  "jsonrpc_id",
  "method",
  "tool_name",
  "params",
  "result",
  "error",
  "redacted",
  "duration_ms",
  "decision",
  "client_id",
  "server_id",
  "client_info",
  "wire_sha256",
  "prev",
  "sig",
] as const;

/** The `method` names of the proxy's own events. */
export const EventMethod = {
  Start: "audit/start",
  Stop: "audit/stop",
  Recover: "audit/recover",
  Checkpoint: "audit/checkpoint",
  /**
   * The first record of a new active file after rotation: names the archive the previous records
   * went to, the seq it continues after, and archives retention deleted.
   */
  Rotate: "audit/rotate",
  /** Archives deleted by retention (`max_files`, `max_age_days`) outside a rotation: at start. */
  Retention: "audit/retention",
  Reload: "audit/reload",
  /** The first `tools/list` of a server: its tools' definitions are pinned. */
  ToolsPinned: "audit/tools_pinned",
  /** A server's tool definitions differ from the pinned ones. */
  ToolsChanged: "audit/tools_changed",
} as const;

/** `prev` of the first record. */
export const GENESIS = "0".repeat(64);

/** Fields of an event record with nothing but its method and details. */
export function eventFields(
  method: string,
  details: JsonObject,
  transport: TransportName,
  session: string | null,
): AuditFields {
  return {
    kind: "event",
    direction: "proxy",
    transport,
    session,
    jsonrpc_id: null,
    method,
    tool_name: null,
    params: details,
    result: null,
    error: null,
    redacted: [],
    duration_ms: null,
    decision: null,
    client_info: null,
    wire_sha256: null,
    upstream: null,
  };
}
