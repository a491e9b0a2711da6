/**
 * The canonical text of a record, written out field by field. The record's fields are fixed, so
 * their canonical order is too; only their values go through the general canonicalizer. This is
 * the hot path of every message, and equal to `canonicalize(record)` by test.
 *
 * @module
 */
import { canonicalize } from "./canonical.ts";
import type { AuditRecord } from "./record.ts";

/** A record's canonical text around its `sig` member. */
export interface RecordText {
  /** Canonical text of the record without `sig`: what is signed. */
  unsigned: string;
  /** Canonical text of the record with `sig` set to `sig`: what is stored and hashed. */
  signed(sig: string | null): string;
}

/** Builds the canonical text of `r` without and with its signature. */
export function recordText(r: Omit<AuditRecord, "sig">): RecordText {
  // Members in RFC 8785 order; "sig" falls between "session" and "tool_name".
  const head = '{"client_id":' + canonicalize(r.client_id) +
    ',"client_info":' + canonicalize(r.client_info) +
    ',"decision":' + canonicalize(r.decision) +
    ',"direction":' + canonicalize(r.direction) +
    ',"duration_ms":' + canonicalize(r.duration_ms) +
    ',"error":' + canonicalize(r.error) +
    ',"id":' + canonicalize(r.id) +
    ',"jsonrpc_id":' + canonicalize(r.jsonrpc_id) +
    ',"kind":' + canonicalize(r.kind) +
    ',"method":' + canonicalize(r.method) +
    ',"params":' + canonicalize(r.params) +
    ',"prev":' + canonicalize(r.prev) +
    ',"redacted":' + canonicalize(r.redacted) +
    ',"result":' + canonicalize(r.result) +
    ',"seq":' + canonicalize(r.seq) +
    ',"server_id":' + canonicalize(r.server_id) +
    ',"session":' + canonicalize(r.session);
  const tail = ',"tool_name":' + canonicalize(r.tool_name) +
    ',"transport":' + canonicalize(r.transport) +
    ',"ts":' + canonicalize(r.ts) +
    ',"upstream":' + canonicalize(r.upstream) +
    ',"v":' + canonicalize(r.v) +
    ',"wire_sha256":' + canonicalize(r.wire_sha256) + "}";
  return {
    unsigned: head + tail,
    signed: (sig) => head + ',"sig":' + (sig === null ? "null" : JSON.stringify(sig)) + tail,
  };
}
