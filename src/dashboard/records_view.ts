/**
 * Stored records as the dashboard lists them (`GET /api/v1/records`, `/api/v1/records/{seq}`):
 * newest first, with `seq` as the cursor. A listing scans at most {@link REQUEST_SEQS} seqs
 * (in windows, see {@link SeqScan}): a filter that matches little answers a short or empty page
 * whose cursor goes on from where the scan stopped.
 *
 * @module
 */
import type { AuditRecord } from "../audit/record.ts";
import type { RecordQuery } from "../audit/storage/query.ts";
import { BadRequestError, type RecordsPage } from "./api.ts";
import {
  asRequest,
  Budget,
  LogSpan,
  parseCursor,
  parseFilter,
  parseLimit,
  REQUEST_SEQS,
  seqCursor,
  SeqScan,
} from "./params.ts";

/**
 * A page of records, newest first. No cursor: the newest `limit`. `before=<seq>`: the `limit`
 * newest older than it. `after=<seq>`: the `limit` oldest newer than it (what arrived since),
 * returned newest first; pass `newer` back as `after` until a page comes back empty and `newer`
 * stays the same. `older` is null only when nothing older is left. `options.seqs`: the most seqs
 * scanned (default {@link REQUEST_SEQS}).
 *
 * @example
 * ```ts
 * const first = await recordsPage(query, new URLSearchParams("kind=request&limit=20"));
 * if (first.older !== null) {
 *   await recordsPage(query, new URLSearchParams({ kind: "request", before: first.older }));
 * }
 * ```
 * @throws {BadRequestError} for a malformed parameter or cursor
 */
export async function recordsPage(
  query: RecordQuery,
  params: URLSearchParams,
  options: { seqs?: number } = {},
): Promise<RecordsPage> {
  const filter = parseFilter(params);
  const limit = parseLimit(params);
  const cursor = parseCursor(params);
  return await asRequest(async () => {
    const span = new LogSpan(query);
    const budget = new Budget(options.seqs ?? REQUEST_SEQS);
    if (cursor?.dir === "after") {
      const after = seqCursor(cursor);
      const scan = await SeqScan.open(query, span, filter, "oldest", after, budget);
      const found: AuditRecord[] = [];
      while (found.length < limit && !scan.done) {
        for (const r of await scan.read(limit - found.length)) found.push(r.record);
      }
      const items = found.reverse();
      const oldest = items[items.length - 1];
      return {
        items,
        // Older records than the page's oldest are those up to the cursor, when there are any.
        older: oldest !== undefined && after > 0 ? String(oldest.seq) : null,
        // Every seq up to where the scan stopped was read: what matched is on this page.
        newer: String(scan.position),
      };
    }
    const before = cursor === null ? undefined : seqCursor(cursor);
    const scan = await SeqScan.open(query, span, filter, "newest", before, budget);
    const items: AuditRecord[] = [];
    while (items.length < limit && !scan.done) {
      for (const r of await scan.read(limit - items.length)) items.push(r.record);
    }
    return {
      items,
      // Where the scan stopped, when more may be older: a page emptied by the scan's bound
      // still carries it, and the client goes on from there.
      older: scan.exhausted ? null : String(scan.position),
      newer: items.length > 0 ? String(items[0]!.seq) : null,
    };
  });
}

/**
 * The record of one seq, or null when the log holds none.
 * @throws {BadRequestError} when `seq` is not a positive integer
 */
export async function recordAt(query: RecordQuery, seq: number): Promise<AuditRecord | null> {
  if (!Number.isSafeInteger(seq) || seq < 1) {
    throw new BadRequestError("seq must be a positive integer");
  }
  const page = await query.page({
    filter: { fromSeq: seq, toSeq: seq },
    order: "oldest",
    limit: 1,
  });
  return page.records[0]?.record ?? null;
}
