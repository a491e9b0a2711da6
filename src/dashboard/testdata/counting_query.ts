/**
 * A {@link RecordQuery} around a real one that adds up what each call may scan: a page confined
 * by `fromSeq`/`toSeq` costs the seqs from the window's start to its last record (all of the
 * window when the page is not full), a one-record page of the whole log (its first or last
 * record) costs one, and anything else — a filtered page with no seq bounds, stats, a stream —
 * counts as the whole log (Infinity), so a test of bounded reads fails on it.
 *
 * @module
 */
import type {
  Page,
  PageRequest,
  ReadRecord,
  RecordFilter,
  RecordQuery,
  Stats,
} from "../../audit/storage/query.ts";

/** Counts the seqs the calls through it may scan. */
export class CountingQuery implements RecordQuery {
  readonly #inner: RecordQuery;
  /** Seqs the calls so far may have scanned. */
  scanned = 0;

  constructor(inner: RecordQuery) {
    this.#inner = inner;
  }

  async page(request: PageRequest): Promise<Page> {
    const { fromSeq, toSeq, ...rest } = request.filter;
    const page = await this.#inner.page(request);
    if (fromSeq !== undefined && toSeq !== undefined && request.after === undefined) {
      // A full page stops at its last record: what lies beyond it in the window was not read.
      let end = request.order === "newest" ? fromSeq : toSeq;
      if (page.next !== null) end = page.next;
      this.scanned += Math.max(0, request.order === "newest" ? toSeq - end + 1 : end - fromSeq + 1);
    } else if (Object.keys(rest).length === 0 && request.limit === 1) {
      this.scanned += 1;
    } else {
      this.scanned = Infinity;
    }
    return page;
  }

  stats(filter: RecordFilter): Promise<Stats> {
    this.scanned = Infinity;
    return this.#inner.stats(filter);
  }

  stream(filter: RecordFilter, signal?: AbortSignal): AsyncIterable<ReadRecord> {
    this.scanned = Infinity;
    return this.#inner.stream(filter, signal);
  }

  close(): void {
    this.#inner.close();
  }
}
