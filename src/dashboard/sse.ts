/**
 * The bytes of the dashboard's event stream (`GET /api/v1/stream`, Server-Sent Events): a
 * `retry` field first, then one `record` event per stored record with its `seq` as the event id
 * (so a reconnecting client's `Last-Event-ID` says where to resume), and `: ping` comments that
 * keep idle connections open through proxies. Nothing else is ever sent.
 *
 * @example
 * ```ts
 * import { encodeRecord, RETRY } from "./sse.ts";
 *
 * const line = '{"seq":7}'; // a stored line, as the query reads it back
 * // encodeRecord({ record, line }, true) is the bytes of "id: 7\nevent: record\ndata: {\"seq\":7}\n\n"
 * new TextDecoder().decode(RETRY); // "retry: 2000\n\n"
 * ```
 *
 * @module
 */
import type { AuditRecord } from "../audit/record.ts";
import { isErrorRecord, type ReadRecord } from "../audit/storage/query.ts";
import type { StreamItem } from "./api.ts";

const encoder = new TextEncoder();

/** How long a client waits before reconnecting (milliseconds), sent first. */
export const RETRY_MS = 2000;

/** The first bytes of every stream. */
export const RETRY: Uint8Array = encoder.encode(`retry: ${RETRY_MS}\n\n`);

/** A heartbeat: a comment line, ignored by `EventSource` and by fetch-based readers alike. */
export const PING: Uint8Array = encoder.encode(": ping\n\n");

/** What the page is told of a record when the stream is not `full`. */
export function streamItem(r: AuditRecord): StreamItem {
  return {
    seq: r.seq,
    ts: r.ts,
    kind: r.kind,
    direction: r.direction,
    method: r.method,
    tool_name: r.tool_name,
    session: r.session,
    // A raw number (an id beyond 2^53 as sent) is the number JSON.parse reads it as.
    jsonrpc_id: typeof r.jsonrpc_id === "object" && r.jsonrpc_id !== null
      ? Number(r.jsonrpc_id.rawJSON)
      : r.jsonrpc_id,
    client_id: r.client_id,
    is_error: isErrorRecord(r),
    action: r.decision?.action ?? null,
  };
}

/**
 * One `record` event: `id: <seq>`, `event: record`, and the data: the exact stored line when
 * `full`, else a {@link StreamItem} as JSON.
 *
 * A stored line is one line of canonical JSON, which escapes every line break; a line that held
 * one anyway would be sent as several `data:` fields, which a client joins with `\n`, rather than
 * end the event early and let the rest be read as fields of its own.
 */
export function encodeRecord(r: ReadRecord, full: boolean): Uint8Array {
  const data = full ? r.line : JSON.stringify(streamItem(r.record));
  const fields = data.split(/\r\n|\r|\n/).map((part) => `data: ${part}\n`).join("");
  return encoder.encode(`id: ${r.record.seq}\nevent: record\n${fields}\n`);
}
