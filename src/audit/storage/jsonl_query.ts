/**
 * {@link RecordQuery} over a JSONL log and its archives: read-only (it never creates, locks or
 * changes a file), and right while proxies append and rotate.
 *
 * A JSONL log has no index, so what it costs to answer:
 * - the newest page reads files backwards from their end in 64 KiB blocks: the newest 50 records
 *   of a 1 GB log cost about their own bytes;
 * - a page after a cursor finds its place in a plain file by bisecting on `seq` (a few small
 *   reads), and passes over whole files whose `seq` range (first and last line) is outside it;
 * - a filter is applied record by record, so a filter that selects few records reads on until it
 *   has a page, up to the whole log — or up to its `fromSeq`/`toSeq`, where reading stops;
 * - `stats` is always one pass over every record the `seq` bounds leave in (the SQLite backend
 *   answers from its indexes);
 * - a compressed archive can only be read from its start.
 *
 * Pages are keyed by `seq`, which the chain keeps rising through every file of a log; the reader
 * relies on that to pass over files and bisect. A log whose `seq`s do not rise (tampered with) is
 * still read without failing, but pages of it may miss records: `verify` is what finds that.
 *
 * @module
 */
import { parseJson } from "../../jsonrpc/json.ts";
import { type AuditRecord, RECORD_FIELDS, type RecordKind } from "../record.ts";
import { StorageError } from "./errors.ts";
import { type LogFile, LogFiles, OpenedLogFile, type ReadLinesOptions } from "./log_lines.ts";
import {
  emptyStats,
  isErrorRecord,
  matches,
  type Page,
  type PageRequest,
  QueryError,
  type ReadRecord,
  type RecordFilter,
  type RecordQuery,
  type Stats,
} from "./query.ts";

/** How the query reads. */
export interface JsonlQueryOptions {
  /** The longest line read, in bytes (default 1 GiB); a longer one fails the query. */
  maxLine?: number;
  /** Called with the number of bytes of every read from disk (tests, metrics). */
  onRead?: (bytes: number) => void;
}

const MAX_LIMIT = 1000;
const MIN_Q = 3;
const MAX_Q = 1024;
// Lines looked at from a file's start or end for its first or last record (torn lines first).
const PROBE_LINES = 16;
// Bisecting stops when what is left is this small: reading it is cheaper than more probes.
const BISECT_STOP = 128 * 1024;
const BISECT_STEPS = 64;
const PROBE_CHUNK = 4096;
const LF = 0x0a;
// Tool names counted exactly; past this many different ones, the rarest gives way.
const TOOL_COUNTERS = 1000;
const TOP_TOOLS = 20;

/** A stored line parsed as a record of ours, or null: torn, foreign, not JSON. */
export function parseRecord(text: string): AuditRecord | null {
  if (!text.startsWith("{")) return null;
  let v: unknown;
  try {
    v = parseJson(text);
  } catch {
    return null;
  }
  return isAuditRecord(v) ? v : null;
}

function isAuditRecord(v: unknown): v is AuditRecord {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  for (const field of RECORD_FIELDS) if (!Object.hasOwn(v, field)) return false;
  return "seq" in v && typeof v.seq === "number" && Number.isSafeInteger(v.seq) && v.seq >= 1 &&
    "prev" in v && typeof v.prev === "string" && "ts" in v && typeof v.ts === "string" &&
    "kind" in v && typeof v.kind === "string" && "decision" in v &&
    (v.decision === null || (typeof v.decision === "object" && !Array.isArray(v.decision)));
}

const SEQ_KEY = ',"seq":';

/**
 * The `seq` of a canonical line without parsing it, or null. In canonical order every member after
 * `seq` is a string, a number or null, so the last `,"seq":` of the line is the record's own.
 * Only ever used to pass over lines; a line kept is parsed.
 */
function peekSeq(text: string): number | null {
  const at = text.lastIndexOf(SEQ_KEY);
  if (at === -1) return null;
  let i = at + SEQ_KEY.length;
  let n = 0;
  const start = i;
  for (; i < text.length && i - start <= 15; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) break;
    n = n * 10 + (c - 48);
  }
  if (i === start || text.charCodeAt(i) !== 44) return null;
  return n;
}

/** Refuses what no backend answers: a short `q`, numbers that are not numbers. */
function checkFilter(f: RecordFilter): void {
  if (f.q !== undefined && f.q !== "") {
    const chars = f.q.length > 4 * MAX_Q ? Infinity : [...f.q].length;
    if (chars < MIN_Q) throw new QueryError(`q must be at least ${MIN_Q} characters`);
    if (chars > MAX_Q) throw new QueryError(`q must be at most ${MAX_Q} characters`);
  }
  const numbers = { from: f.from, to: f.to, fromSeq: f.fromSeq, toSeq: f.toSeq };
  for (const [key, value] of Object.entries(numbers)) {
    if (value !== undefined && !Number.isFinite(value)) {
      throw new QueryError(`${key} must be a finite number`);
    }
  }
}

/** The records a filter selects among lines, cheapest test first. */
class LineFilter {
  readonly #filter: RecordFilter;
  readonly #min: number;
  readonly #max: number;
  // The lowercased `q` when it can be looked for in the raw line first: a `q` with no JSON
  // punctuation lies within one token, which reads the same in the line as in the record's text.
  readonly #needle: string | null;

  constructor(filter: RecordFilter) {
    this.#filter = filter;
    this.#min = filter.fromSeq ?? -Infinity;
    this.#max = filter.toSeq ?? Infinity;
    const q = filter.q;
    this.#needle = q !== undefined && q !== "" && !/[",:{}[\]\\]/.test(q) ? q.toLowerCase() : null;
  }

  /**
   * The line is a record after `toSeq`. Parsed to be sure before a read is ended on it: a line
   * that only looks like a record must not hide the records after it.
   */
  past(text: string): boolean {
    if (this.#max === Infinity) return false;
    const seq = peekSeq(text);
    return seq !== null && seq > this.#max && (parseRecord(text)?.seq ?? 0) > this.#max;
  }

  /** The line is a record before `fromSeq` (parsed to be sure, as {@link past}). */
  before(text: string): boolean {
    if (this.#min === -Infinity) return false;
    const seq = peekSeq(text);
    return seq !== null && seq < this.#min &&
      (parseRecord(text)?.seq ?? Infinity) < this.#min;
  }

  read(text: string): ReadRecord | null {
    const seq = peekSeq(text);
    if (seq !== null && (seq < this.#min || seq > this.#max)) return null;
    if (this.#needle !== null && !text.toLowerCase().includes(this.#needle)) return null;
    const record = parseRecord(text);
    if (record === null || !matches(record, this.#filter)) return null;
    return { record, line: text };
  }
}

/** A line found by a probe: where it is, and its `seq` if it has one. */
interface Probe {
  start: number;
  end: number;
  seq: number | null;
}

/**
 * The first complete line starting after byte `at - 1` (at a line start, or after the next
 * newline) and ending before `limit`, or null. Reads small chunks: only the line's end is kept,
 * where a canonical line's `seq` is.
 */
async function probeLine(file: OpenedLogFile, at: number, limit: number): Promise<Probe | null> {
  const buf = new Uint8Array(PROBE_CHUNK);
  let pos = Math.max(0, at - 1);
  let start = at === 0 ? 0 : -1;
  let tail = new Uint8Array(0);
  while (pos < limit) {
    const n = await file.readAt(pos, buf.subarray(0, Math.min(PROBE_CHUNK, limit - pos)));
    if (n === 0) return null;
    let chunk = buf.subarray(0, n);
    if (start === -1) {
      const nl = chunk.indexOf(LF);
      if (nl === -1) {
        pos += n;
        continue;
      }
      start = pos + nl + 1;
      chunk = chunk.subarray(nl + 1);
      pos = start;
      if (chunk.length === 0) continue;
    }
    const nl = chunk.indexOf(LF);
    const piece = nl === -1 ? chunk : chunk.subarray(0, nl);
    // The line's last bytes so far; `piece` is never longer than the window.
    const joined = new Uint8Array(Math.min(tail.length + piece.length, PROBE_CHUNK));
    const fromTail = joined.length - piece.length;
    joined.set(tail.subarray(tail.length - fromTail), 0);
    joined.set(piece, fromTail);
    tail = joined;
    if (nl !== -1) {
      const end = pos + nl + 1;
      return { start, end, seq: peekSeq(new TextDecoder().decode(tail)) };
    }
    pos += chunk.length;
  }
  return null;
}

/**
 * Bisects a plain file on `seq`: `lo` is at or before the first line whose `seq` is above `seq`,
 * `hi` at or after it, both line starts (or the ends of the file), at most about
 * {@link BISECT_STOP} apart unless a probe found no `seq`.
 */
async function bracket(
  file: OpenedLogFile,
  seq: number,
): Promise<{ lo: number; hi: number }> {
  let lo = 0;
  let hi = file.size;
  for (let step = 0; step < BISECT_STEPS && hi - lo > BISECT_STOP; step++) {
    const probe = await probeLine(file, lo + Math.floor((hi - lo) / 2), hi);
    if (probe === null || probe.seq === null) break;
    if (probe.seq > seq) hi = probe.start;
    else lo = probe.end;
  }
  return { lo, hi };
}

/** First and last `seq` of the files of one snapshot, read when first asked. */
class SeqBounds {
  readonly #files: readonly LogFile[];
  readonly #options: ReadLinesOptions;
  readonly #first = new Map<number, number | null>();
  readonly #last = new Map<number, number | null>();

  constructor(files: readonly LogFile[], options: ReadLinesOptions) {
    this.#files = files;
    this.#options = options;
  }

  async first(i: number): Promise<number | null> {
    const known = this.#first.get(i);
    if (known !== undefined) return known;
    let seq: number | null = null;
    {
      using file = await OpenedLogFile.open(this.#files[i]!, this.#options);
      if (file !== null) seq = await firstOf(file.lines(0, PROBE_CHUNK));
    }
    this.#first.set(i, seq);
    return seq;
  }

  /** At least the last `seq` of file `i`; a `.gz` is not read for it (the next file's first). */
  async last(i: number): Promise<number | null> {
    const known = this.#last.get(i);
    if (known !== undefined) return known;
    let seq: number | null = null;
    const f = this.#files[i]!;
    if (f.kind === "archive" && f.archive.gzip) {
      if (i + 1 < this.#files.length) {
        const next = await this.first(i + 1);
        if (next !== null) seq = next - 1;
      }
    } else {
      using file = await OpenedLogFile.open(f, this.#options);
      if (file !== null && !file.gzip) {
        seq = await firstOf(file.linesBackward(file.size, PROBE_CHUNK));
      }
    }
    this.#last.set(i, seq);
    return seq;
  }
}

async function firstOf(lines: AsyncGenerator<{ text: string }>): Promise<number | null> {
  let n = 0;
  for await (const l of lines) {
    const r = parseRecord(l.text);
    if (r !== null) return r.seq;
    if (++n >= PROBE_LINES) return null;
  }
  return null;
}

/** Counts of tool names in bounded memory: exact up to {@link TOOL_COUNTERS} names. */
class ToolCounts {
  readonly #counts = new Map<string, number>();

  add(name: string): void {
    const c = this.#counts.get(name);
    if (c !== undefined) {
      this.#counts.set(name, c + 1);
      return;
    }
    if (this.#counts.size < TOOL_COUNTERS) {
      this.#counts.set(name, 1);
      return;
    }
    // Space-saving: the rarest name gives its place, and its count, to the new one.
    let rarest = "";
    let least = Infinity;
    for (const [k, v] of this.#counts) {
      if (v < least) {
        least = v;
        rarest = k;
      }
    }
    this.#counts.delete(rarest);
    this.#counts.set(name, least + 1);
  }

  top(n: number): { name: string; count: number }[] {
    return [...this.#counts].map(([name, count]) => ({ name, count }))
      .sort((a, b) => b.count - a.count || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .slice(0, n);
  }
}

function pageOf(found: ReadRecord[], limit: number): Page {
  if (found.length <= limit) return { records: found, next: null };
  const records = found.slice(0, limit);
  return { records, next: records[records.length - 1]!.record.seq };
}

/**
 * Reads the JSONL log at `path` and its archives.
 *
 * @example
 * ```ts
 * const query = new JsonlQuery("audit.jsonl");
 * const page = await query.page({ filter: { kinds: ["request"] }, order: "newest", limit: 50 });
 * for (const { record } of page.records) console.log(record.seq, record.method);
 * query.close();
 * ```
 */
export class JsonlQuery implements RecordQuery {
  readonly #path: string;
  readonly #options: JsonlQueryOptions;
  readonly #snapshots = new Set<LogFiles>();
  #closed = false;

  constructor(path: string, options: JsonlQueryOptions = {}) {
    this.#path = path;
    this.#options = options;
  }

  #readOptions(signal?: AbortSignal): ReadLinesOptions {
    const o: ReadLinesOptions = {};
    if (signal !== undefined) o.signal = signal;
    if (this.#options.maxLine !== undefined) o.maxLine = this.#options.maxLine;
    if (this.#options.onRead !== undefined) o.onRead = this.#options.onRead;
    return o;
  }

  /** The log's files now; the active one held open until disposed, or until {@link close}. */
  #snapshot(): { files: readonly LogFile[] } & Disposable {
    if (this.#closed) throw new StorageError(`the query of ${this.#path} was closed`);
    const snapshot = LogFiles.open(this.#path);
    this.#snapshots.add(snapshot);
    return {
      files: snapshot.files,
      [Symbol.dispose]: () => {
        this.#snapshots.delete(snapshot);
        snapshot.close();
      },
    };
  }

  /**
   * Every record the filter selects, in `seq` order. Files whose `seq` range lies outside
   * `fromSeq`/`toSeq` are passed over; torn and foreign lines are skipped.
   * @throws {QueryError} for a bad filter
   * @throws {LogNotFoundError} when there is no log at the path
   */
  async *stream(filter: RecordFilter, signal?: AbortSignal): AsyncGenerator<ReadRecord> {
    checkFilter(filter);
    const options = this.#readOptions(signal);
    using snapshot = this.#snapshot();
    const files = snapshot.files;
    const bounds = new SeqBounds(files, options);
    const lines = new LineFilter(filter);
    for (let i = 0; i < files.length; i++) {
      if (filter.toSeq !== undefined) {
        const first = await bounds.first(i);
        if (first !== null && first > filter.toSeq) continue;
      }
      if (filter.fromSeq !== undefined) {
        const last = await bounds.last(i);
        if (last !== null && last < filter.fromSeq) continue;
      }
      using file = await OpenedLogFile.open(files[i]!, options);
      if (file === null) continue;
      const from = filter.fromSeq !== undefined && filter.fromSeq > 1 && !file.gzip
        ? (await bracket(file, filter.fromSeq - 1)).lo
        : 0;
      for await (const l of file.lines(from)) {
        // Seqs rise through the log: a record past `toSeq` ends the read, here and after.
        if (lines.past(l.text)) return;
        const r = lines.read(l.text);
        if (r !== null) yield r;
      }
    }
  }

  /**
   * One page: `newest` reads backwards from the end (or from the cursor), `oldest` forwards.
   * `next` is the last `seq` returned when more records follow, else null.
   * @throws {QueryError} for a bad filter, limit or cursor
   */
  async page(request: PageRequest): Promise<Page> {
    const { filter, order, limit, after } = request;
    checkFilter(filter);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
      throw new QueryError(`limit must be an integer from 1 to ${MAX_LIMIT}`);
    }
    if (after !== undefined && (!Number.isSafeInteger(after) || after < 0)) {
      throw new QueryError("after must be a seq (a whole number, 0 or more)");
    }
    switch (order) {
      case "oldest":
        return await this.#oldest(filter, limit, after);
      case "newest":
        return await this.#newest(filter, limit, after);
      default: {
        const never: never = order;
        throw new QueryError(`order must be newest or oldest, not ${String(never)}`);
      }
    }
  }

  async #oldest(filter: RecordFilter, limit: number, after: number | undefined): Promise<Page> {
    const from = after === undefined ? filter.fromSeq : Math.max(after + 1, filter.fromSeq ?? 0);
    const f: RecordFilter = from === undefined ? filter : { ...filter, fromSeq: from };
    const found: ReadRecord[] = [];
    for await (const r of this.stream(f)) {
      found.push(r);
      if (found.length > limit) break;
    }
    return pageOf(found, limit);
  }

  async #newest(filter: RecordFilter, limit: number, after: number | undefined): Promise<Page> {
    const before = Math.min(after === undefined ? Infinity : after - 1, filter.toSeq ?? Infinity);
    const f: RecordFilter = before === Infinity ? filter : { ...filter, toSeq: before };
    const need = limit + 1;
    const found: ReadRecord[] = [];
    const options = this.#readOptions();
    using snapshot = this.#snapshot();
    const files = snapshot.files;
    const bounds = new SeqBounds(files, options);
    const lines = new LineFilter(f);
    for (let i = files.length - 1; i >= 0 && found.length < need; i--) {
      if (before !== Infinity) {
        const first = await bounds.first(i);
        if (first !== null && first > before) continue;
      }
      if (filter.fromSeq !== undefined) {
        const last = await bounds.last(i);
        if (last !== null && last < filter.fromSeq) continue;
      }
      using file = await OpenedLogFile.open(files[i]!, options);
      if (file === null) continue;
      if (!file.gzip) {
        const end = before === Infinity ? file.size : (await bracket(file, before)).hi;
        let reachedStart = false;
        for await (const l of file.linesBackward(end)) {
          // Seqs rise through the log: a record before `fromSeq` ends the read, here and before.
          if (lines.before(l.text)) {
            reachedStart = true;
            break;
          }
          const r = lines.read(l.text);
          if (r === null) continue;
          found.push(r);
          if (found.length >= need) break;
        }
        if (reachedStart) break;
        continue;
      }
      // A .gz reads forwards only: keep the last records it holds that the page still needs.
      const room = need - found.length;
      const ring: ReadRecord[] = [];
      let count = 0;
      for await (const l of file.lines()) {
        const r = lines.read(l.text);
        if (r === null) continue;
        ring[count % room] = r;
        count++;
      }
      for (let k = 0; k < Math.min(count, room); k++) found.push(ring[(count - 1 - k) % room]!);
    }
    return pageOf(found, limit);
  }

  /**
   * Counts over the filtered records, in one pass over the log (JSONL has no index: this reads
   * every record the `seq` bounds leave in). `firstTs`/`lastTs` are those of the first and last
   * record in `seq` order; `denied` counts records of refused messages (`decision.action: deny`,
   * enforced); `topTools` is exact up to 1,000 different tool names, approximate beyond.
   * @throws {QueryError} for a bad filter
   */
  async stats(filter: RecordFilter): Promise<Stats> {
    const stats: Stats = emptyStats();
    const tools = new ToolCounts();
    for await (const { record: r } of this.stream(filter)) {
      stats.records++;
      if (stats.firstSeq === null) {
        stats.firstSeq = r.seq;
        stats.firstTs = r.ts;
      }
      stats.lastSeq = r.seq;
      stats.lastTs = r.ts;
      const kind: RecordKind = r.kind;
      stats.byKind[kind] = (stats.byKind[kind] ?? 0) + 1;
      if (isErrorRecord(r)) stats.errors++;
      if (r.decision?.action === "deny" && r.decision.enforced !== false) stats.denied++;
      if (r.decision?.action === "rate_limited") stats.rateLimited++;
      if (r.kind === "request" && r.method === "tools/call" && typeof r.tool_name === "string") {
        tools.add(r.tool_name);
      }
    }
    stats.topTools = tools.top(TOP_TOOLS);
    return stats;
  }

  /** Closes the files of reads under way (they fail) and refuses new ones. Idempotent. */
  close(): void {
    this.#closed = true;
    for (const s of this.#snapshots) s.close();
    this.#snapshots.clear();
  }
}
