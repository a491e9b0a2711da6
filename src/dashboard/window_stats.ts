/**
 * Counts over a time window (`GET /api/v1/stats`): calls, errors, refusals, pending calls,
 * latency percentiles, top tools and clients, and the same per time bucket.
 *
 * The window's requests and answers are read newest first, scanning at most {@link STATS_CAP}
 * seqs: beyond that the counts are of the newest (`partial: true`). Calls are paired with their answers
 * among the records read, as exchanges are (see `exchanges.ts`).
 *
 * @module
 */
import type { AuditRecord } from "../audit/record.ts";
import { isErrorRecord, type RecordFilter, type RecordQuery } from "../audit/storage/query.ts";
import { isJsonObject } from "../jsonrpc/json.ts";
import { BadRequestError, type Latency, type StatsBucket, type WindowStats } from "./api.ts";
import { isAnswer, pairKey, refusalOf } from "./exchanges.ts";
import {
  asRequest,
  Budget,
  LogSpan,
  MAX_LIMIT,
  param,
  parseFilter,
  positiveInteger,
  REQUEST_SEQS,
  SeqScan,
} from "./params.ts";

/** The most seqs scanned for one answer. */
export const STATS_CAP = REQUEST_SEQS;
const MAX_BUCKETS = 500;
const DEFAULT_BUCKETS = 60;
const HOUR_MS = 3_600_000;
/** Different tool or client names counted, at most: later new names are not counted. */
export const NAMES_CAP = 10_000;
const TOP = 10;
// The proxy's refusals (jsonrpc/errors.ts: PolicyDenied, RateLimited), for an answer whose
// request was not read.
const REFUSAL_CODES: readonly number[] = [-32030, -32029];

/** What is kept of an answer until its request is read (answers come first, newest first). */
interface AnswerFacts {
  bucket: number;
  error: boolean;
  duration: number | null;
  tool: string | null;
  code: number | null;
}

/** The record after a request's, with its key, as read so far. */
type Later = { kind: "request" } | { kind: "answer"; facts: AnswerFacts };

/** Counts by name, of at most {@link NAMES_CAP} names. */
class NameCounts {
  readonly #counts = new Map<string, { count: number; errors: number }>();

  #entry(name: string): { count: number; errors: number } | undefined {
    let e = this.#counts.get(name);
    if (e === undefined && this.#counts.size < NAMES_CAP) {
      e = { count: 0, errors: 0 };
      this.#counts.set(name, e);
    }
    return e;
  }

  count(name: string): void {
    const e = this.#entry(name);
    if (e !== undefined) e.count++;
  }

  error(name: string): void {
    const e = this.#entry(name);
    if (e !== undefined) e.errors++;
  }

  /** The `n` counted most, then by name. */
  top(n: number): { name: string; count: number; errors: number }[] {
    return [...this.#counts].map(([name, e]) => ({ name, count: e.count, errors: e.errors }))
      .sort((a, b) => b.count - a.count || byCodePoint(a.name, b.name))
      .slice(0, n);
  }
}

/** Compares strings by code point (UTF-8 byte order, as Go and SQLite do). */
export function byCodePoint(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i]!.codePointAt(0)! - y[i]!.codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/** Nearest-rank percentiles of durations. */
export function latencyOf(durations: readonly number[]): Latency {
  if (durations.length === 0) return { count: 0, p50: null, p95: null, p99: null, max: null };
  const sorted = Float64Array.from(durations).sort();
  const rank = (p: number) => sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
  return {
    count: sorted.length,
    p50: rank(50),
    p95: rank(95),
    p99: rank(99),
    max: sorted[sorted.length - 1]!,
  };
}

function parseBuckets(params: URLSearchParams): number {
  const v = param(params, "buckets");
  if (v === null) return DEFAULT_BUCKETS;
  const n = positiveInteger(v);
  if (n === null || n > MAX_BUCKETS) {
    throw new BadRequestError(`buckets must be an integer from 1 to ${MAX_BUCKETS}`);
  }
  return n;
}

function clientNameOf(r: AuditRecord): string {
  const info = r.client_info;
  if (isJsonObject(info) && typeof info.name === "string" && info.name !== "") return info.name;
  return r.client_id;
}

function errorCode(r: AuditRecord): number | null {
  const e: unknown = r.error;
  return typeof e === "object" && e !== null && "code" in e && typeof e.code === "number"
    ? e.code
    : null;
}

/**
 * Counts over the window `from`–`to` (RFC 3339 or milliseconds; default: the hour before `now`),
 * in `buckets` (1–500, default 60) of `ceil(window / buckets)` ms from `from`; `method`, `tool`,
 * `client`, `session`, `server` narrow it, other filters are not used.
 *
 * - calls: client requests (`request`, `client_to_server`), by their time;
 * - denied, rate_limited: calls refused (enforced);
 * - errors: answers to calls that are errors, by their time, but for the proxy's refusals;
 * - pending: calls whose answer is not among the records read;
 * - latency: answers' `duration_ms` (refusals left out), by the answer's time;
 * - top_tools: `tools/call` calls by tool (and their errors); top_clients: calls by
 *   `client_info.name`, else `client_id`.
 *
 * @example
 * ```ts
 * const s = await windowStats(query, new URLSearchParams("buckets=12"), new Date());
 * console.log(s.calls, s.errors, s.latency.p95, s.buckets.length);
 * ```
 * `options.cap`: the most seqs scanned (default {@link STATS_CAP}).
 * @throws {BadRequestError} for a malformed parameter, or `from` not before `to`
 */
export async function windowStats(
  query: RecordQuery,
  params: URLSearchParams,
  now: Date,
  options: { cap?: number } = {},
): Promise<WindowStats> {
  const cap = options.cap ?? STATS_CAP;
  const f = parseFilter(params);
  const bucketCount = parseBuckets(params);
  const to = f.to ?? now.getTime();
  const from = f.from ?? to - HOUR_MS;
  if (!(from < to)) throw new BadRequestError("from must be before to");
  const bucketMs = Math.ceil((to - from) / bucketCount);
  const n = Math.ceil((to - from) / bucketMs);
  const filter: RecordFilter = { from, to, kinds: ["request", "response", "error"] };
  if (f.method !== undefined) filter.method = f.method;
  if (f.toolName !== undefined) filter.toolName = f.toolName;
  if (f.clientId !== undefined) filter.clientId = f.clientId;
  if (f.session !== undefined) filter.session = f.session;
  if (f.serverId !== undefined) filter.serverId = f.serverId;

  const buckets = Array.from({ length: n }, (_, i) => ({
    start: from + i * bucketMs,
    calls: 0,
    errors: 0,
    durations: [] as number[],
  }));
  const tools = new NameCounts();
  const clients = new NameCounts();
  const later = new Map<string, Later>();
  let calls = 0;
  let errors = 0;
  let denied = 0;
  let rateLimited = 0;
  let pending = 0;

  const settle = (a: AnswerFacts, refused: boolean) => {
    if (refused) return;
    const b = buckets[a.bucket]!;
    if (a.error) {
      errors++;
      b.errors++;
      if (a.tool !== null) tools.error(a.tool);
    }
    if (a.duration !== null) b.durations.push(a.duration);
  };
  const alone = (a: AnswerFacts) => settle(a, a.code !== null && REFUSAL_CODES.includes(a.code));

  const visit = (r: AuditRecord) => {
    const t = Date.parse(r.ts);
    if (!(t >= from && t < to)) return;
    const bucket = Math.min(n - 1, Math.floor((t - from) / bucketMs));
    if (r.kind === "request" && r.direction === "client_to_server") {
      calls++;
      buckets[bucket]!.calls++;
      const refused = refusalOf(r);
      if (refused === "denied") denied++;
      if (refused === "rate_limited") rateLimited++;
      if (r.method === "tools/call" && typeof r.tool_name === "string") tools.count(r.tool_name);
      clients.count(clientNameOf(r));
      const k = pairKey(r);
      const next = k === null ? undefined : later.get(k);
      if (next?.kind === "answer") settle(next.facts, refused !== null);
      else pending++;
      if (k !== null) later.set(k, { kind: "request" });
    } else if (isAnswer(r) && r.direction === "server_to_client") {
      const facts: AnswerFacts = {
        bucket,
        error: isErrorRecord(r),
        duration: typeof r.duration_ms === "number" && Number.isFinite(r.duration_ms)
          ? r.duration_ms
          : null,
        tool: r.method === "tools/call" && typeof r.tool_name === "string" ? r.tool_name : null,
        code: errorCode(r),
      };
      const k = pairKey(r);
      if (k === null) return alone(facts);
      // The answer read before (later in time) with this key follows another answer: its own.
      const next = later.get(k);
      if (next?.kind === "answer") alone(next.facts);
      later.set(k, { kind: "answer", facts });
    }
  };

  let read = 0;
  let partial = false;
  await asRequest(async () => {
    // Newest first, window by window: the scan ends a window past `from` (by the clock skew).
    const scan = await SeqScan.open(
      query,
      new LogSpan(query),
      filter,
      "newest",
      undefined,
      new Budget(cap),
    );
    while (!scan.done) {
      const records = await scan.read(MAX_LIMIT);
      for (const { record } of records) visit(record);
      read += records.length;
    }
    partial = !scan.exhausted;
  });
  for (const next of later.values()) if (next.kind === "answer") alone(next.facts);

  const all: number[] = [];
  const out: StatsBucket[] = buckets.map((b) => {
    for (const d of b.durations) all.push(d);
    return {
      start: new Date(b.start).toISOString(),
      calls: b.calls,
      errors: b.errors,
      latency: latencyOf(b.durations),
    };
  });
  return {
    from: new Date(from).toISOString(),
    to: new Date(to).toISOString(),
    bucket_ms: bucketMs,
    calls,
    errors,
    denied,
    rate_limited: rateLimited,
    pending,
    latency: latencyOf(all),
    top_tools: tools.top(TOP),
    top_clients: clients.top(TOP).map(({ name, count }) => ({ name, count })),
    buckets: out,
    records_read: read,
    partial,
  };
}
