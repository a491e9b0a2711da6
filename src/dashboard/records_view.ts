/**
 * Stored records as the dashboard lists them (`GET /api/v1/records`, `/api/v1/records/{seq}`):
 * one query-API page each, newest first, with `seq` as the cursor.
 *
 * @module
 */
import type { AuditRecord } from "../audit/record.ts";
import type { RecordQuery } from "../audit/storage/query.ts";
import { BadRequestError, type RecordsPage } from "./api.ts";
import { asRequest, parseCursor, parseFilter, parseLimit, seqCursor } from "./params.ts";

/**
 * A page of records, newest first. No cursor: the newest `limit`. `before=<seq>`: the `limit`
 * newest older than it. `after=<seq>`: the `limit` oldest newer than it (what arrived since),
 * returned newest first; pass `newer` back as `after` until a page comes back empty.
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
): Promise<RecordsPage> {
  const filter = parseFilter(params);
  const limit = parseLimit(params);
  const cursor = parseCursor(params);
  return await asRequest(async () => {
    if (cursor?.dir === "after") {
      const after = seqCursor(cursor);
      const page = await query.page({ filter, order: "oldest", limit, after });
      const items = page.records.map((r) => r.record).reverse();
      const oldest = items[items.length - 1];
      return {
        items,
        // Older records than the page's oldest are those up to the cursor, when there are any.
        older: oldest !== undefined && after > 0 ? String(oldest.seq) : null,
        newer: items.length > 0 ? String(items[0]!.seq) : String(after),
      };
    }
    const before = cursor === null ? undefined : seqCursor(cursor);
    const page = await query.page({
      filter,
      order: "newest",
      limit,
      ...(before === undefined ? {} : { after: before }),
    });
    const items = page.records.map((r) => r.record);
    return {
      items,
      older: page.next === null ? null : String(page.next),
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
