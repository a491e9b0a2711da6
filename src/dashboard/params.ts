/**
 * The query parameters of `/api/v1/*`, read into what the storage query API takes. Unknown
 * parameters are ignored, an empty one is as good as absent, and the first of a repeated one wins;
 * a malformed one is a {@link BadRequestError} naming the parameter and what it must be.
 *
 * Also the RFC 3339 reader both APIs share: strict RFC 3339 for `/api/v1`, and what Go's
 * `time.Parse(time.RFC3339, v)` accepts for the Go-compatible `/api/entries`.
 *
 * @module
 */
import {
  QueryError,
  type ReadRecord,
  type RecordFilter,
  type RecordQuery,
} from "../audit/storage/query.ts";
import { setImmediate } from "node:timers";
import type { Direction, RecordKind } from "../audit/record.ts";
import { BadRequestError } from "./api.ts";

/** The most items a page holds, as the query API allows. */
export const MAX_LIMIT = 1000;
/** Items a page holds when `limit` is not given. */
export const DEFAULT_LIMIT = 50;
const MIN_Q = 3;
const MAX_Q = 1024;

/** Every record kind, in the order SPEC §3 lists them. */
export const RECORD_KINDS: readonly RecordKind[] = [
  "request",
  "notification",
  "response",
  "error",
  "invalid",
  "event",
];
const DIRECTIONS: readonly Direction[] = ["client_to_server", "server_to_client", "proxy"];
const ACTIONS = ["allow", "deny", "rate_limited", "filter"] as const;
type Action = typeof ACTIONS[number];

/** A keyset cursor: `before=` (older than it) or `after=` (newer than it). */
export interface Cursor {
  dir: "before" | "after";
  value: string;
}

/** A parameter's first value; null when absent or empty. */
export function param(params: URLSearchParams, name: string): string | null {
  const v = params.get(name);
  return v === null || v === "" ? null : v;
}

function oneOf<T extends string>(value: string, allowed: readonly T[]): T | undefined {
  return allowed.find((a) => a === value);
}

/**
 * Reads the record filter of `/api/v1` requests: `method`, `tool`, `client`, `session`,
 * `server` (exact strings), `kind` (a comma list of record kinds), `direction`, `decision`
 * (`allow|deny|rate_limited|filter`), `errors` (`1|true|0|false`), `from` and `to` (RFC 3339 with
 * an offset, or integer milliseconds since the epoch; `to` exclusive), `q` (3 to 1024 characters),
 * `from_seq` and `to_seq` (positive integers, inclusive).
 *
 * @example
 * ```ts
 * const f = parseFilter(new URLSearchParams("kind=request,error&from=2026-06-10T12:00:00Z"));
 * // { kinds: ["request", "error"], from: 1781092800000 }
 * ```
 * @throws {BadRequestError} for a malformed parameter
 */
export function parseFilter(params: URLSearchParams): RecordFilter {
  const f: RecordFilter = {};
  const exact = (name: string): string | undefined => param(params, name) ?? undefined;
  const method = exact("method");
  if (method !== undefined) f.method = method;
  const tool = exact("tool");
  if (tool !== undefined) f.toolName = tool;
  const client = exact("client");
  if (client !== undefined) f.clientId = client;
  const session = exact("session");
  if (session !== undefined) f.session = session;
  const server = exact("server");
  if (server !== undefined) f.serverId = server;

  const kind = param(params, "kind");
  if (kind !== null) f.kinds = parseKinds(kind);

  const direction = param(params, "direction");
  if (direction !== null) {
    const d = oneOf(direction, DIRECTIONS);
    if (d === undefined) {
      throw new BadRequestError("direction must be client_to_server, server_to_client or proxy");
    }
    f.direction = d;
  }

  const decision = param(params, "decision");
  if (decision !== null) {
    const a: Action | undefined = oneOf(decision, ACTIONS);
    if (a === undefined) {
      throw new BadRequestError("decision must be allow, deny, rate_limited or filter");
    }
    f.action = a;
  }

  const errors = param(params, "errors");
  if (errors !== null) {
    if (errors === "1" || errors === "true") f.errorsOnly = true;
    else if (errors !== "0" && errors !== "false") {
      throw new BadRequestError("errors must be 1, true, 0 or false");
    }
  }

  for (const name of ["from", "to"] as const) {
    const v = param(params, name);
    if (v === null) continue;
    const t = parseInstant(v);
    if (t === null) {
      throw new BadRequestError(
        `${name} must be an RFC 3339 time with an offset (2026-06-10T12:00:00Z) ` +
          "or whole milliseconds since the epoch",
      );
    }
    // `from` is inclusive and `to` exclusive on millisecond timestamps: a time between two
    // milliseconds selects from the next one on, for both.
    f[name] = t.ms + (t.fraction ? 1 : 0);
  }

  const q = param(params, "q");
  if (q !== null) {
    const chars = q.length > 4 * MAX_Q ? Infinity : [...q].length;
    if (chars < MIN_Q || chars > MAX_Q) {
      throw new BadRequestError(`q must be ${MIN_Q} to ${MAX_Q} characters`);
    }
    f.q = q;
  }

  for (const [name, key] of [["from_seq", "fromSeq"], ["to_seq", "toSeq"]] as const) {
    const v = param(params, name);
    if (v === null) continue;
    const n = positiveInteger(v);
    if (n === null) throw new BadRequestError(`${name} must be a positive integer`);
    f[key] = n;
  }
  return f;
}

function parseKinds(text: string): RecordKind[] {
  const kinds: RecordKind[] = [];
  for (const part of text.split(",")) {
    const k = oneOf(part.trim(), RECORD_KINDS);
    if (k === undefined) {
      throw new BadRequestError(
        `kind must be a comma-separated list of ${RECORD_KINDS.join(", ")}`,
      );
    }
    if (!kinds.includes(k)) kinds.push(k);
  }
  return kinds;
}

/** A positive integer written in plain decimal digits, at most 2^53 - 1; else null. */
export function positiveInteger(text: string): number | null {
  if (!/^[0-9]{1,16}$/.test(text)) return null;
  const n = Number(text);
  return Number.isSafeInteger(n) && n >= 1 ? n : null;
}

/**
 * `limit`: an integer from 1 to 1000; `fallback` (50 unless given) when absent.
 * @throws {BadRequestError} for anything else
 */
export function parseLimit(params: URLSearchParams, fallback: number = DEFAULT_LIMIT): number {
  const v = param(params, "limit");
  if (v === null) return fallback;
  const n = positiveInteger(v);
  if (n === null || n > MAX_LIMIT) {
    throw new BadRequestError(`limit must be an integer from 1 to ${MAX_LIMIT}`);
  }
  return n;
}

/**
 * `before=` or `after=`, or null when neither is given. The value is opaque here: each listing
 * reads its own.
 * @throws {BadRequestError} when both are given
 */
export function parseCursor(params: URLSearchParams): Cursor | null {
  const before = param(params, "before");
  const after = param(params, "after");
  if (before !== null && after !== null) {
    throw new BadRequestError("before and after cannot be given together");
  }
  if (before !== null) return { dir: "before", value: before };
  if (after !== null) return { dir: "after", value: after };
  return null;
}

/**
 * A cursor that is a seq: a positive integer, or 0 for `after` (from the start).
 * @throws {BadRequestError} naming the parameter
 */
export function seqCursor(cursor: Cursor): number {
  if (cursor.dir === "after" && cursor.value === "0") return 0;
  const n = positiveInteger(cursor.value);
  if (n === null) {
    throw new BadRequestError(`${cursor.dir} must be a cursor this API gave (a positive integer)`);
  }
  return n;
}

/** An instant read from text: whole milliseconds since the epoch, and whether a fraction of a millisecond was cut off. */
export interface Instant {
  ms: number;
  fraction: boolean;
}

/** The most milliseconds from the epoch a `Date` holds, either way. */
const MAX_TIME = 8.64e15;

/**
 * `from`/`to` of `/api/v1`: RFC 3339 with an offset, or integer milliseconds since the epoch;
 * null for anything else, or a time a `Date` cannot hold.
 */
export function parseInstant(text: string): Instant | null {
  if (/^[0-9]{1,16}$/.test(text)) {
    const ms = Number(text);
    return ms <= MAX_TIME ? { ms, fraction: false } : null;
  }
  return parseRfc3339(text, "strict");
}

const STRICT =
  /^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?([Zz]|[+-][0-9]{2}:[0-9]{2})$/;
// Go's RFC 3339 parse is a fast path and, when that fails, the general layout parser; together
// they also take a one-digit hour, a comma before the fraction, and offsets up to 24:60.
const GO =
  /^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{1,2}):([0-9]{2}):([0-9]{2})(?:[.,]([0-9]+))?(Z|[+-][0-9]{2}:[0-9]{2})$/;

/**
 * Reads an RFC 3339 date-time with an offset. `strict`: RFC 3339 itself (a `T` or `t`, a `Z` or
 * `z`, offsets to 23:59). `go`: what Go's `time.Parse(time.RFC3339, v)` accepts (an upper-case
 * `T` and `Z` only, but a one-digit hour, `,` before the fraction, offsets to 24:60). Seconds
 * 0–59 (no leap second), days checked against their month. Null when it is not one.
 */
export function parseRfc3339(text: string, mode: "strict" | "go"): Instant | null {
  const m = (mode === "go" ? GO : STRICT).exec(text);
  if (m === null) return null;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month)) return null;
  if (hour > 23 || minute > 59 || second > 59) return null;
  let offsetMinutes = 0;
  const zone = m[8]!;
  if (zone !== "Z" && zone !== "z") {
    const oh = Number(zone.slice(1, 3));
    const om = Number(zone.slice(4, 6));
    const [maxHour, maxMinute] = mode === "go" ? [24, 60] : [23, 59];
    if (oh > maxHour || om > maxMinute) return null;
    offsetMinutes = (oh * 60 + om) * (zone.startsWith("-") ? -1 : 1);
  }
  const digits = m[7] ?? "";
  const millis = Number(digits.slice(0, 3).padEnd(3, "0"));
  const fraction = /[1-9]/.test(digits.slice(3));
  const days = daysFromCivil(year, month, day);
  const ms = days * 86_400_000 + ((hour * 60 + minute - offsetMinutes) * 60 + second) * 1000 +
    millis;
  return { ms, fraction };
}

function daysIn(year: number, month: number): number {
  if (month === 2) {
    const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
    return leap ? 29 : 28;
  }
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/** Days from 1970-01-01 to a proleptic Gregorian date (any year, unlike `Date.UTC` below 100). */
export function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const mp = (month + 9) % 12;
  const doy = Math.floor((153 * mp + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}

/**
 * Runs a read, turning the query API's {@link QueryError} (a filter it refuses) into the
 * {@link BadRequestError} the HTTP app answers 400 with.
 */
export async function asRequest<T>(read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (e) {
    if (e instanceof QueryError) throw new BadRequestError(e.message, { cause: e });
    throw e;
  }
}

/**
 * Seqs one query call reads at most: a read of the log is confined to a window this wide. The
 * SQLite backend answers a call synchronously, so this also bounds how long one call holds the
 * event loop — which, in a proxy, is the one that forwards messages.
 */
export const SEQ_WINDOW = 5_000;
/** Seqs one request scans at most: the records, sessions and stats listings. */
export const REQUEST_SEQS = 100_000;
/** Of a request that pairs requests with answers: seqs its listing scans at most… */
export const LIST_SEQS = 60_000;
/** …and seqs its pairing scans at most (answers usually follow their request closely). */
export const PAIR_SEQS = 40_000;
/**
 * Writers' clocks differ a little: a time-bounded scan stops a window after a record this much
 * beyond its time bound, so that a record stored late but stamped inside it is still read.
 */
export const SKEW_MS = 60_000;

/** How many seqs a request may still scan. */
export class Budget {
  #left: number;

  constructor(seqs: number) {
    this.#left = seqs;
  }

  /** Seqs that may still be scanned. */
  get left(): number {
    return this.#left;
  }

  /** Counts seqs scanned. */
  take(seqs: number): void {
    this.#left -= seqs;
  }
}

/** The first and last seq of the log, each read once (a one-record page) and kept for a request. */
export class LogSpan {
  readonly #query: RecordQuery;
  #first: Promise<number | null> | undefined;
  #last: Promise<number | null> | undefined;

  constructor(query: RecordQuery) {
    this.#query = query;
  }

  /** The oldest record's seq; null for an empty log. */
  first(): Promise<number | null> {
    this.#first ??= this.#end("oldest");
    return this.#first;
  }

  /** The newest record's seq when first asked; null for an empty log. */
  last(): Promise<number | null> {
    this.#last ??= this.#end("newest");
    return this.#last;
  }

  async #end(order: "oldest" | "newest"): Promise<number | null> {
    const page = await this.#query.page({ filter: {}, order, limit: 1 });
    return page.records[0]?.record.seq ?? null;
  }
}

/**
 * A filter read through the log in `seq` windows of at most {@link SEQ_WINDOW}, newest or oldest
 * first, until the log's end in that order or the budget (in seqs, matching or not) is spent. So
 * that a filter matching little costs what the budget allows, never the whole log: the caller
 * then hands out {@link position} as a cursor and the client continues from there.
 *
 * @example
 * ```ts
 * const scan = await SeqScan.open(query, new LogSpan(query), { method: "x" }, "newest", undefined, new Budget(60_000));
 * while (!scan.done) for (const r of await scan.read(100)) console.log(r.record.seq);
 * // scan.exhausted: nothing is left; else continue with `before=${scan.position}`
 * ```
 */
export class SeqScan {
  readonly #query: RecordQuery;
  readonly #filter: RecordFilter;
  readonly #order: "newest" | "oldest";
  readonly #budget: Budget;
  /** The log's end in the order read: lowest seq (newest first) or highest (oldest first). */
  readonly #end: number;
  #position: number;
  #exhausted: boolean;

  private constructor(
    query: RecordQuery,
    filter: RecordFilter,
    order: "newest" | "oldest",
    budget: Budget,
    end: number,
    position: number,
  ) {
    this.#query = query;
    this.#filter = filter;
    this.#order = order;
    this.#budget = budget;
    this.#end = end;
    this.#position = position;
    this.#exhausted = order === "newest" ? position <= end : position >= end;
  }

  /**
   * A scan starting after `after` (exclusive, in `order`; undefined: from the log's end that
   * order starts at), within the filter's `fromSeq`/`toSeq` and the log's first and last seq.
   */
  static async open(
    query: RecordQuery,
    span: LogSpan,
    filter: RecordFilter,
    order: "newest" | "oldest",
    after: number | undefined,
    budget: Budget,
  ): Promise<SeqScan> {
    const first = await span.first();
    const last = await span.last();
    if (first === null || last === null) {
      return new SeqScan(query, filter, order, budget, 0, order === "newest" ? 0 : after ?? 0);
    }
    if (order === "newest") {
      const end = Math.max(first, filter.fromSeq ?? 1);
      const position = Math.min(after ?? Infinity, (filter.toSeq ?? Infinity) + 1, last + 1);
      return new SeqScan(query, filter, order, budget, end, position);
    }
    const end = Math.min(last, filter.toSeq ?? Infinity);
    const position = Math.max(after ?? 0, (filter.fromSeq ?? 1) - 1, first - 1);
    return new SeqScan(query, filter, order, budget, end, position);
  }

  /**
   * Where the scan stopped, as a cursor in its order (exclusive): newest first, every seq at or
   * above it was read; oldest first, every seq at or below it.
   */
  get position(): number {
    return this.#position;
  }

  /** True when nothing the filter selects is left beyond {@link position} (in the log read). */
  get exhausted(): boolean {
    return this.#exhausted;
  }

  /** True when the scan may read no more: exhausted, or its budget spent. */
  get done(): boolean {
    return this.#exhausted || this.#budget.left <= 0;
  }

  /** Moves past seqs the caller needs no record of (up to `seq`, exclusive), unread and free. */
  skipTo(seq: number): void {
    if (this.#order === "newest") {
      if (seq < this.#position) this.#position = Math.max(seq, this.#end);
      this.#exhausted = this.#position <= this.#end;
    } else {
      if (seq > this.#position) this.#position = Math.min(seq, this.#end);
      this.#exhausted = this.#position >= this.#end;
    }
  }

  /**
   * One query call: up to `limit` records of the next window, in the scan's order. Empty when the
   * window held none (the scan still moved on); empty too once {@link done}.
   */
  async read(limit: number): Promise<ReadRecord[]> {
    if (this.done) return [];
    // Between windows the event loop runs what waits (a proxy's forwarding above all).
    await new Promise<void>((resolve) => setImmediate(resolve));
    const width = Math.min(SEQ_WINDOW, this.#budget.left);
    const newest = this.#order === "newest";
    const lo = newest ? Math.max(this.#end, this.#position - width) : this.#position + 1;
    const hi = newest ? this.#position - 1 : Math.min(this.#end, this.#position + width);
    const page = await this.#query.page({
      filter: { ...this.#filter, fromSeq: lo, toSeq: hi },
      order: this.#order,
      limit: Math.max(1, Math.min(MAX_LIMIT, limit)),
    });
    const moved = page.next ?? (newest ? lo : hi);
    this.#budget.take(newest ? this.#position - moved : moved - this.#position);
    this.#position = moved;
    this.#exhausted = newest ? moved <= this.#end : moved >= this.#end;
    if (page.next === null && !this.#exhausted && await this.#pastTime(lo, hi)) {
      this.#exhausted = true;
    }
    return page.records;
  }

  /**
   * Whether a window read to its end lies beyond the filter's time bound (by more than
   * {@link SKEW_MS}): then so does everything further, as time rises with seq.
   */
  async #pastTime(lo: number, hi: number): Promise<boolean> {
    const newest = this.#order === "newest";
    const bound = newest ? this.#filter.from : this.#filter.to;
    if (bound === undefined) return false;
    // The window's record furthest along: its lowest newest first, its highest oldest first.
    const probe = await this.#query.page({
      filter: { fromSeq: lo, toSeq: hi },
      order: newest ? "oldest" : "newest",
      limit: 1,
    });
    const r = probe.records[0]?.record;
    if (r === undefined) return false;
    const t = Date.parse(r.ts);
    return newest ? t < bound - SKEW_MS : t >= bound + SKEW_MS;
  }
}
