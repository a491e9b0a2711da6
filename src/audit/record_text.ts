/**
 * The canonical text of a record, written out field by field. The record's fields are fixed, so
 * their canonical order is too; only the values of free shape (params, result, error, decision,
 * client info, JSON-RPC id) go through the general canonicalizer, strings straight through
 * `JSON.stringify` (RFC 8785's string form). This is the hot path of every message, and equal to
 * `canonicalize(record)` by test.
 *
 * @module
 */
import { canonicalize } from "./canonical.ts";
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

/** The canonical text before `sig` (members from `client_id` to `session`, opening brace). */
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

/** The canonical text after `sig` (members from `tool_name` to `wire_sha256`, closing brace). */
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
  const before = head(r);
  const after = tail(r);
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
  const before = head(record);
  const after = tail(record);
  record.sig = signer === null ? null : signer.sign(before + after);
  return before + ',"sig":' + text(record.sig) + after;
}
