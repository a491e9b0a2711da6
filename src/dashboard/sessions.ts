/**
 * Sessions (`GET /api/v1/sessions`): the records read newest first, grouped by their `session`.
 *
 * A log has no index of sessions, so one call scans at most {@link SESSIONS_READ} seqs, and a
 * session is summed over the records of it that the call read: one that began before them shows
 * only its newest part, and the next page (`before=`) shows it again with the part before.
 *
 * @module
 */
import type { AuditRecord } from "../audit/record.ts";
import { isErrorRecord, type RecordFilter, type RecordQuery } from "../audit/storage/query.ts";
import { isJsonObject } from "../jsonrpc/json.ts";
import { BadRequestError, type SessionsPage, type SessionSummary } from "./api.ts";
import {
  asRequest,
  Budget,
  LogSpan,
  MAX_LIMIT,
  parseCursor,
  parseFilter,
  parseLimit,
  REQUEST_SEQS,
  seqCursor,
  SeqScan,
} from "./params.ts";

/** The most seqs one call scans (in windows: a filter matching little costs no more). */
export const SESSIONS_READ = REQUEST_SEQS;

function clientName(r: AuditRecord): string | null {
  const info = r.client_info;
  return isJsonObject(info) && typeof info.name === "string" ? info.name : null;
}

/**
 * A page of sessions, most recently active first. `limit` sessions (1–1000, default 50);
 * `before=<cursor>` continues with what is older; `client`, `server`, `session`, `from`, `to`
 * narrow the records read (other filters are not used). `client_name` is that of the oldest
 * record read with a `client_info`; `calls` counts client requests, `errors` records that are
 * errors (refusals included). `options.read`: the most seqs scanned (default {@link SESSIONS_READ}).
 *
 * @example
 * ```ts
 * const page = await sessionsPage(query, new URLSearchParams("limit=10"));
 * for (const s of page.items) console.log(s.session, s.client_name, s.calls, s.last_ts);
 * ```
 * @throws {BadRequestError} for a malformed parameter, or `after=` (sessions page backwards only)
 */
export async function sessionsPage(
  query: RecordQuery,
  params: URLSearchParams,
  options: { read?: number } = {},
): Promise<SessionsPage> {
  const cap = options.read ?? SESSIONS_READ;
  const f = parseFilter(params);
  const limit = parseLimit(params);
  const cursor = parseCursor(params);
  if (cursor?.dir === "after") {
    throw new BadRequestError("sessions are paged with before, not after");
  }
  const before = cursor === null ? undefined : seqCursor(cursor);
  const filter: RecordFilter = {};
  if (f.clientId !== undefined) filter.clientId = f.clientId;
  if (f.serverId !== undefined) filter.serverId = f.serverId;
  if (f.session !== undefined) filter.session = f.session;
  if (f.from !== undefined) filter.from = f.from;
  if (f.to !== undefined) filter.to = f.to;

  const sessions = new Map<string, SessionSummary>();
  // The seq just above the newest record of the first session left off the page: the next page
  // starts there.
  let resume: number | null = null;
  const scan = await asRequest(async () => {
    const scan = await SeqScan.open(
      query,
      new LogSpan(query),
      filter,
      "newest",
      before,
      new Budget(cap),
    );
    while (!scan.done) {
      for (const { record: r } of await scan.read(MAX_LIMIT)) {
        const id = r.session;
        if (typeof id !== "string") continue;
        let s = sessions.get(id);
        if (s === undefined) {
          if (sessions.size >= limit) {
            resume ??= r.seq + 1;
            continue;
          }
          s = {
            session: id,
            transport: r.transport === "stdio" || r.transport === "http" ? r.transport : null,
            client_id: r.client_id,
            server_id: r.server_id,
            client_name: null,
            first_seq: r.seq,
            last_seq: r.seq,
            first_ts: r.ts,
            last_ts: r.ts,
            records: 0,
            calls: 0,
            errors: 0,
          };
          sessions.set(id, s);
        }
        s.first_seq = r.seq;
        s.first_ts = r.ts;
        s.records++;
        if (r.kind === "request" && r.direction === "client_to_server") s.calls++;
        if (isErrorRecord(r)) s.errors++;
        s.client_name = clientName(r) ?? s.client_name;
      }
    }
    return scan;
  });
  let older: string | null = null;
  if (resume !== null) older = String(resume);
  else if (!scan.exhausted) older = String(scan.position);
  return { items: [...sessions.values()], older };
}
