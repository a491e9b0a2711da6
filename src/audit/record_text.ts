/**
 * The canonical text of a record. The record's fields are fixed, so their canonical order is too:
 * the members before `sig` and those after it are put in that order in two objects, with the
 * values of free shape (params, result, error, decision, client info) in canonical order too, and
 * each object is written by one `JSON.stringify` — faster than joining some fifty pieces. A value
 * `JSON.stringify` would not write canonically sends the record to a writer that goes field by
 * field. This is the hot path of every message, and equal to `canonicalize(record)` by test.
 *
 * @module
 */
import { canonicalize, orderedForStringify } from "./canonical.ts";
import type { AuditRecord } from "./record.ts";
import type { Signer } from "./signing.ts";

/** A record's canonical text around its `sig` member. */
export interface RecordText {
  /** Canonical text of the record without `sig`: what is signed. */
  unsigned: string;
  /** Canonical text of the record with `sig` set to `sig`: what is stored and hashed. */
  signed(sig: string | null): string;
}

function text(value: string | null): string {
  return value === null ? "null" : JSON.stringify(value);
}

/**
 * The canonical text before `sig` (the opening brace and the members from `client_id` to
 * `session`) and after it (from `tool_name` to the closing brace), field by field.
 */
function partsByField(r: Omit<AuditRecord, "sig">): [string, string] {
  return [head(r), tail(r)];
}

/** {@link partsByField} with two `JSON.stringify` calls; undefined when a value needs the other. */
function partsByStringify(r: Omit<AuditRecord, "sig">): [string, string] | undefined {
  const clientInfo = orderedForStringify(r.client_info);
  const decision = orderedForStringify(r.decision);
  const durationMs = orderedForStringify(r.duration_ms);
  const error = orderedForStringify(r.error);
  const jsonrpcId = orderedForStringify(r.jsonrpc_id);
  const params = orderedForStringify(r.params);
  const redacted = orderedForStringify(r.redacted);
  const result = orderedForStringify(r.result);
  const seq = orderedForStringify(r.seq);
  const v = orderedForStringify(r.v);
  if (
    clientInfo === undefined || decision === undefined || durationMs === undefined ||
    error === undefined || jsonrpcId === undefined || params === undefined ||
    redacted === undefined || result === undefined || seq === undefined || v === undefined ||
    !strings(r)
  ) return undefined;
  // Members in RFC 8785 order; "sig" falls between "session" and "tool_name".
  const before = JSON.stringify({
    client_id: r.client_id,
    client_info: clientInfo,
    decision,
    direction: r.direction,
    duration_ms: durationMs,
    error,
    id: r.id,
    jsonrpc_id: jsonrpcId,
    kind: r.kind,
    method: r.method,
    params,
    prev: r.prev,
    redacted,
    result,
    seq,
    server_id: r.server_id,
    session: r.session,
  });
  const after = JSON.stringify({
    tool_name: r.tool_name,
    transport: r.transport,
    ts: r.ts,
    upstream: r.upstream,
    v,
    wire_sha256: r.wire_sha256,
  });
  return [before.slice(0, -1), "," + after.slice(1)];
}

/**
 * Whether the fields typed as strings (or null) are: `JSON.stringify` would leave out a member
 * whose value is missing, where the writer refuses it.
 */
function strings(r: Omit<AuditRecord, "sig">): boolean {
  return typeof r.client_id === "string" && typeof r.direction === "string" &&
    typeof r.id === "string" && typeof r.kind === "string" && typeof r.prev === "string" &&
    typeof r.server_id === "string" && typeof r.transport === "string" &&
    typeof r.ts === "string" && r.method !== undefined && r.session !== undefined &&
    r.tool_name !== undefined && r.upstream !== undefined && r.wire_sha256 !== undefined;
}

/** The canonical text before `sig`, field by field. */
function head(r: Omit<AuditRecord, "sig">): string {
  // Members in RFC 8785 order; "sig" falls between "session" and "tool_name".
  return '{"client_id":' + JSON.stringify(r.client_id) +
    ',"client_info":' + (r.client_info === null ? "null" : canonicalize(r.client_info)) +
    ',"decision":' + (r.decision === null ? "null" : canonicalize(r.decision)) +
    ',"direction":' + JSON.stringify(r.direction) +
    ',"duration_ms":' + (r.duration_ms === null ? "null" : canonicalize(r.duration_ms)) +
    ',"error":' + (r.error === null ? "null" : canonicalize(r.error)) +
    ',"id":' + JSON.stringify(r.id) +
    ',"jsonrpc_id":' + canonicalize(r.jsonrpc_id) +
    ',"kind":' + JSON.stringify(r.kind) +
    ',"method":' + text(r.method) +
    ',"params":' + canonicalize(r.params) +
    ',"prev":' + JSON.stringify(r.prev) +
    ',"redacted":' + (r.redacted.length === 0 ? "[]" : canonicalize(r.redacted)) +
    ',"result":' + canonicalize(r.result) +
    ',"seq":' + canonicalize(r.seq) +
    ',"server_id":' + JSON.stringify(r.server_id) +
    ',"session":' + text(r.session);
}

/** The canonical text after `sig`, field by field. */
function tail(r: Omit<AuditRecord, "sig">): string {
  return ',"tool_name":' + text(r.tool_name) +
    ',"transport":' + JSON.stringify(r.transport) +
    ',"ts":' + JSON.stringify(r.ts) +
    ',"upstream":' + text(r.upstream) +
    ',"v":' + canonicalize(r.v) +
    ',"wire_sha256":' + text(r.wire_sha256) + "}";
}

/** Builds the canonical text of `r` without and with its signature. */
export function recordText(r: Omit<AuditRecord, "sig">): RecordText {
  const [before, after] = partsByStringify(r) ?? partsByField(r);
  return {
    unsigned: before + after,
    signed: (sig) => before + ',"sig":' + text(sig) + after,
  };
}

/**
 * Signs `record` — sets its `sig` from the canonical text without it, or to null without a
 * signer — and returns its stored line: the canonical text with `sig`. Both texts are made from
 * one writing of the other members.
 *
 * @example
 * ```ts ignore
 * const line = signedLine(record, hmacSigner(secret));
 * line === canonicalize(record); // true, record.sig set
 * ```
 */
export function signedLine(record: AuditRecord, signer: Pick<Signer, "sign"> | null): string {
  const [before, after] = partsByStringify(record) ?? partsByField(record);
  record.sig = signer === null ? null : signer.sign(before + after);
  return before + ',"sig":' + text(record.sig) + after;
}
