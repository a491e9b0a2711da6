/**
 * Reading stored records: what both backends answer, for the dashboard, telemetry and export.
 * Pages are keyed by `seq` (one `seq` space per log, whatever the number of writers), so a cursor
 * stays right while records are appended.
 *
 * @module
 */
import { isJsonObject } from "../../jsonrpc/json.ts";
import type { AuditRecord, Direction, RecordKind } from "../record.ts";

/** Which records. Every field is optional; the ones given must all match. */
export interface RecordFilter {
  /** `ts` at or after this instant (milliseconds since the epoch). */
  from?: number;
  /** `ts` before this instant (milliseconds since the epoch). */
  to?: number;
  kinds?: readonly RecordKind[];
  direction?: Direction;
  /** Exact method. */
  method?: string;
  /** Exact tool name. */
  toolName?: string;
  session?: string;
  clientId?: string;
  serverId?: string;
  /** The decision's action. */
  action?: "allow" | "deny" | "rate_limited" | "filter";
  /** Only records that are errors: `error` set, or a result with `isError: true`. */
  errorsOnly?: boolean;
  /**
   * Free text: records whose params, result or error (as JSON text) contain it,
   * case-insensitively. At least three characters, else the query is refused ({@link QueryError}).
   */
  q?: string;
  /** Records with `seq` at or above / at or below these. */
  fromSeq?: number;
  toSeq?: number;
}

/** One page of a query. */
export interface PageRequest {
  filter: RecordFilter;
  /** `newest`: descending `seq`; `oldest`: ascending. */
  order: "newest" | "oldest";
  /** At most this many records (1–1000). */
  limit: number;
  /** Keyset cursor: continue after this `seq` in the page's order (exclusive). */
  after?: number;
}

/** A record as read back: the record and its exact stored line. */
export interface ReadRecord {
  record: AuditRecord;
  line: string;
}

/** What a page holds. */
export interface Page {
  records: ReadRecord[];
  /** The cursor for the next page (`after`), or null when there is none. */
  next: number | null;
}

/** Counts over the records a filter selects. */
export interface Stats {
  records: number;
  firstSeq: number | null;
  lastSeq: number | null;
  firstTs: string | null;
  lastTs: string | null;
  byKind: Partial<Record<RecordKind, number>>;
  /** Records that are errors (as `errorsOnly`). */
  errors: number;
  /** Requests refused by policy or pinning (`decision.action: deny`, enforced). */
  denied: number;
  rateLimited: number;
  /** `tools/call` requests by tool name, most first (at most 20). */
  topTools: { name: string; count: number }[];
}

/** Counts over no record: where both backends' stats start. */
export function emptyStats(): Stats {
  return {
    records: 0,
    firstSeq: null,
    lastSeq: null,
    firstTs: null,
    lastTs: null,
    byKind: {},
    errors: 0,
    denied: 0,
    rateLimited: 0,
    topTools: [],
  };
}

/** Why a query was refused (a bad filter or cursor): the caller's fault. */
export class QueryError extends Error {
  override name = "QueryError";
}

/** Reads a log, whichever backend holds it. */
export interface RecordQuery {
  /** One page, in the order asked, after the cursor. */
  page(request: PageRequest): Promise<Page>;
  /** Counts over the filtered records. */
  stats(filter: RecordFilter): Promise<Stats>;
  /** Every record the filter selects, in `seq` order, read in bounded memory. */
  stream(filter: RecordFilter, signal?: AbortSignal): AsyncIterable<ReadRecord>;
  /** Releases what the query holds open. Idempotent. */
  close(): void;
}

/** True when the record is an error: `error` set, or a tool result with `isError: true`. */
export function isErrorRecord(r: AuditRecord): boolean {
  if (r.error !== null) return true;
  return isJsonObject(r.result) && r.result.isError === true;
}

/**
 * Whether a record matches a filter, for backends that filter in memory (JSONL). `q` is matched
 * against the stored line's `params`, `result` and `error` text, case-insensitively.
 */
export function matches(r: AuditRecord, f: RecordFilter): boolean {
  if (f.fromSeq !== undefined && r.seq < f.fromSeq) return false;
  if (f.toSeq !== undefined && r.seq > f.toSeq) return false;
  if (f.from !== undefined || f.to !== undefined) {
    const t = Date.parse(r.ts);
    if (f.from !== undefined && !(t >= f.from)) return false;
    if (f.to !== undefined && !(t < f.to)) return false;
  }
  if (f.kinds !== undefined && !f.kinds.includes(r.kind)) return false;
  if (f.direction !== undefined && r.direction !== f.direction) return false;
  if (f.method !== undefined && r.method !== f.method) return false;
  if (f.toolName !== undefined && r.tool_name !== f.toolName) return false;
  if (f.session !== undefined && r.session !== f.session) return false;
  if (f.clientId !== undefined && r.client_id !== f.clientId) return false;
  if (f.serverId !== undefined && r.server_id !== f.serverId) return false;
  if (f.action !== undefined && r.decision?.action !== f.action) return false;
  if (f.errorsOnly === true && !isErrorRecord(r)) return false;
  if (f.q !== undefined && f.q !== "") {
    const needle = f.q.toLowerCase();
    const text = [r.params, r.result, r.error].map((v) => JSON.stringify(v)).join("\n");
    if (!text.toLowerCase().includes(needle)) return false;
  }
  return true;
}
