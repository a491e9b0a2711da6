/**
 * The Go tool's dashboard API, kept for the scripts written against it (go-contract §0, §2):
 * `GET /api/entries` — its entries, one per answered exchange and per notification, rebuilt from
 * our records — and `GET /api/stats`, with its field names and the meanings they should have had.
 * Bodies are written as Go's `json.Encoder` writes them ({@link goJson}).
 *
 * @module
 */
import type { AuditRecord, Direction } from "../audit/record.ts";
import {
  isErrorRecord,
  type ReadRecord,
  type RecordFilter,
  type RecordQuery,
} from "../audit/storage/query.ts";
import { isJsonObject, isRawNumber, type JsonValue, parseLossless } from "../jsonrpc/json.ts";
import { BadRequestError, type GoEntry, type GoStats } from "./api.ts";
import { isAnswer, refusalOf, requestsOf } from "./exchanges.ts";
import {
  asRequest,
  Budget,
  daysFromCivil,
  LIST_SEQS,
  LogSpan,
  MAX_LIMIT,
  PAIR_SEQS,
  parseRfc3339,
  REQUEST_SEQS,
  SeqScan,
} from "./params.ts";
import { byCodePoint, NAMES_CAP } from "./window_stats.ts";

/** The most entries one `/api/entries` answer holds (the Go tool had no cap). */
export const GO_MAX_LIMIT = 10_000;
const GO_DEFAULT_LIMIT = 100;
const GO_TOP_TOOLS = 5;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** `limit` as Go's `strconv.Atoi` reads it: ≤ 0 is the default; above the cap, the cap. */
function goLimit(params: URLSearchParams): number {
  const raw = params.get("limit");
  if (raw === null || raw === "") return GO_DEFAULT_LIMIT;
  if (!/^[+-]?[0-9]+$/.test(raw)) throw new BadRequestError("dashboard: invalid limit");
  const n = BigInt(raw);
  if (n < INT64_MIN || n > INT64_MAX) throw new BadRequestError("dashboard: invalid limit");
  if (n <= 0n) return GO_DEFAULT_LIMIT;
  return n > BigInt(GO_MAX_LIMIT) ? GO_MAX_LIMIT : Number(n);
}

/** `from`/`to` as Go's `time.Parse(time.RFC3339, v)` reads them; null when absent or empty. */
function goTimeParam(params: URLSearchParams, name: "from" | "to"): number | null {
  const raw = params.get(name);
  if (raw === null || raw === "") return null;
  const t = parseRfc3339(raw, "go");
  if (t === null) throw new BadRequestError(`dashboard: invalid ${name} timestamp`);
  // Both ends are inclusive in Go; records are stamped to the millisecond.
  return name === "from" ? t.ms + (t.fraction ? 1 : 0) : t.ms + 1;
}

/**
 * A timestamp as Go writes a UTC `time.Time` (RFC3339Nano): the fraction without trailing
 * zeros, no dot when nothing is left of it.
 */
export function goTime(ts: string): string {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(ts);
  if (m !== null) {
    const fraction = (m[2] ?? "").slice(0, 9).replace(/0+$/, "");
    return m[1]! + (fraction === "" ? "" : "." + fraction) + "Z";
  }
  const t = Date.parse(ts);
  return Number.isNaN(t) ? ts : goTime(new Date(t).toISOString());
}

function arrow(d: Direction): GoEntry["direction"] {
  return d === "server_to_client" ? "server→client" : "client→server";
}

/** A record's fields with every number as stored (big integers too). */
function lossless(read: ReadRecord): Record<string, JsonValue | undefined> {
  try {
    const v = parseLossless(read.line);
    if (isJsonObject(v)) return v;
  } catch {
    // A line the backend parsed is JSON; the record itself is used if it were not.
  }
  return {
    params: read.record.params,
    result: read.record.result,
    error: read.record.error,
    jsonrpc_id: read.record.jsonrpc_id,
  };
}

/** The JSON-RPC id as Go's `request_id`: a string as it is, a number as its text; null: none. */
function requestId(id: JsonValue | undefined): string | null {
  if (typeof id === "string") return id;
  if (typeof id === "number") return JSON.stringify(id);
  if (isRawNumber(id)) return id.rawJSON;
  return null;
}

type GoError = NonNullable<GoEntry["error"]>;

function goError(v: JsonValue | undefined): GoError | null {
  if (!isJsonObject(v)) return null;
  const code = v.code;
  const error: GoError = {
    code: typeof code === "number" ? code : isRawNumber(code) ? Number(code.rawJSON) : 0,
    message: typeof v.message === "string" ? v.message : "",
  };
  if (Object.hasOwn(v, "data") && v.data !== undefined) error.data = v.data;
  return error;
}

/** The Go entry of an answer (with its request, when found) or of a notification. */
function goEntry(read: ReadRecord, request: ReadRecord | null): GoEntry {
  const r = read.record;
  const req: AuditRecord | null = request?.record ?? null;
  const own = lossless(read);
  const asked = request === null ? null : lossless(request);
  const answered = isAnswer(r);
  const source = answered ? req : r;
  const direction = answered && req !== null && refusalOf(req) !== null
    ? "client→server"
    : arrow(r.direction);
  const id = requestId((asked ?? own).jsonrpc_id);
  const tool = r.tool_name ?? req?.tool_name ?? null;
  const params = answered ? asked?.params : own.params;
  const result = answered ? own.result : undefined;
  const error = answered ? goError(own.error) : null;
  const duration = typeof r.duration_ms === "number" && Number.isFinite(r.duration_ms)
    ? Math.round(r.duration_ms)
    : 0;
  return {
    id: (req ?? r).id,
    timestamp: goTime(r.ts),
    direction,
    transport: r.transport,
    method: r.method ?? req?.method ?? "",
    ...(id === null ? {} : { request_id: id }),
    ...(tool === null || tool === "" ? {} : { tool_name: tool }),
    ...(params === undefined || params === null ? {} : { params }),
    ...(result === undefined || result === null ? {} : { result }),
    ...(error === null ? {} : { error }),
    duration_ms: duration,
    client_id: (req ?? r).client_id,
    server_id: (req ?? r).server_id,
    signature: source?.sig ?? "",
  };
}

/**
 * `GET /api/entries`: the Go tool's entries, newest first (by seq: the order they were stored).
 * One per answer — a client's call answered by the server is `server→client`, a refused call
 * `client→server` with its `error`, a server's request answered by the client `client→server` —
 * and one per notification, with the way it travelled. Events, invalid messages and unanswered
 * requests are never entries, as in Go. `id`, `params` and `signature` are the request's (an
 * answer whose request the log no longer holds has its own id, no params and `""`); `timestamp`
 * is the answer's (Go wrote the entry when the answer came).
 *
 * Parameters as Go reads them: `limit` (`strconv.Atoi`; ≤ 0 → 100; at most 10,000), `method`,
 * `tool_name`, `client_id` (exact), `from`, `to` (RFC 3339 as Go parses it, both inclusive); the
 * first of a repeated parameter, unknown ones ignored. The newest {@link LIST_SEQS} records are
 * looked at, at most (a bare array has no cursor to go on with): a filter matching little answers
 * what those hold (`options.seqs` sets how many).
 *
 * @example
 * ```ts
 * const body = goJson(await goEntries(query, new URLSearchParams("limit=20&tool_name=echo")));
 * ```
 * @throws {BadRequestError} with the Go tool's text: `dashboard: invalid limit`,
 *   `dashboard: invalid from timestamp`, `dashboard: invalid to timestamp`
 */
export async function goEntries(
  query: RecordQuery,
  params: URLSearchParams,
  options: { seqs?: number } = {},
): Promise<GoEntry[]> {
  const limit = goLimit(params);
  const filter: RecordFilter = { kinds: ["notification", "response", "error"] };
  const method = params.get("method");
  if (method !== null && method !== "") filter.method = method;
  const tool = params.get("tool_name");
  if (tool !== null && tool !== "") filter.toolName = tool;
  const client = params.get("client_id");
  if (client !== null && client !== "") filter.clientId = client;
  const from = goTimeParam(params, "from");
  if (from !== null) filter.from = from;
  const to = goTimeParam(params, "to");
  if (to !== null) filter.to = to;
  return await asRequest(async () => {
    const span = new LogSpan(query);
    // A bare array has no cursor: what the bounded scan found, newest first, is the answer.
    const scan = await SeqScan.open(
      query,
      span,
      filter,
      "newest",
      undefined,
      new Budget(options.seqs ?? LIST_SEQS),
    );
    const found: ReadRecord[] = [];
    while (found.length < limit && !scan.done) found.push(...await scan.read(limit - found.length));
    const requestOf = await requestsOf(
      query,
      found.map((r) => r.record).filter(isAnswer),
      new Budget(PAIR_SEQS),
      span,
    );
    return found.map((r) => goEntry(r, requestOf.get(r.record.seq) ?? null));
  });
}

/** The `year-month-day` of an instant in a time zone, as days since the epoch. */
function localDay(format: Intl.DateTimeFormat, t: number): number {
  let y = 0;
  let m = 0;
  let d = 0;
  for (const part of format.formatToParts(t)) {
    if (part.type === "year") y = Number(part.value);
    else if (part.type === "month") m = Number(part.value);
    else if (part.type === "day") d = Number(part.value);
  }
  return daysFromCivil(y, m, d);
}

/**
 * The first instant of `now`'s day in `timeZone` (IANA): its midnight, or, on a day that skips
 * midnight for summer time, the instant the day starts.
 * @throws {RangeError} for a zone the runtime does not know
 */
export function startOfDay(now: Date, timeZone: string): number {
  const format = new Intl.DateTimeFormat("en-US-u-ca-gregory-nu-latn", {
    timeZone,
    year: "numeric",
    month: "numeric",
    day: "numeric",
  });
  const t = now.getTime();
  const today = localDay(format, t);
  // A day lasts at most about 26 hours: its start is within two days before now.
  let lo = t - 2 * 86_400_000;
  let hi = t;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (localDay(format, mid) >= today) hi = mid;
    else lo = mid;
  }
  return hi;
}

/**
 * `GET /api/stats`, Go's field names: over today (from midnight in `timeZone` to `now`),
 * `total_today` = client requests (refused ones included), `error_rate` = answers to them that are
 * errors — the proxy's refusals are such answers — over `total_today` (0 when none; at most 1),
 * `top_tools` = today's `tools/call` requests by tool, count then name, top 5 (`[]` when none).
 * Of today, the newest {@link REQUEST_SEQS} records are read at most: on a busier day the counts
 * are of those.
 *
 * @example
 * ```ts
 * const body = goJson(await goStats(query, new Date(), "Europe/Paris"));
 * ```
 * @throws {RangeError} for a zone the runtime does not know
 */
export async function goStats(query: RecordQuery, now: Date, timeZone: string): Promise<GoStats> {
  const from = startOfDay(now, timeZone);
  const to = now.getTime() + 1;
  return await asRequest(async () => {
    const filter: RecordFilter = { kinds: ["request", "response", "error"], from, to };
    const span = new LogSpan(query);
    const scan = await SeqScan.open(
      query,
      span,
      filter,
      "newest",
      undefined,
      new Budget(REQUEST_SEQS),
    );
    let total = 0;
    let failed = 0;
    const tools = new Map<string, number>();
    while (!scan.done) {
      for (const { record: r } of await scan.read(MAX_LIMIT)) {
        if (r.kind === "request" && r.direction === "client_to_server") {
          total++;
          if (r.method === "tools/call" && typeof r.tool_name === "string" && true) {
            if (tools.has(r.tool_name) || tools.size < NAMES_CAP) {
              tools.set(r.tool_name, (tools.get(r.tool_name) ?? 0) + 1);
            }
          }
        } else if (isAnswer(r) && r.direction === "server_to_client" && isErrorRecord(r)) {
          failed++;
        }
      }
    }
    return {
      total_today: total,
      error_rate: total > 0 ? Math.min(1, failed / total) : 0,
      top_tools: [...tools]
        .map(([name, count]) => ({ name, count }))
        .sort((a, b) => b.count - a.count || byCodePoint(a.name, b.name))
        .slice(0, GO_TOP_TOOLS),
    };
  });
}

// JSON's escapes as JSON.stringify writes them, one at a time, so that `\\u…` is never misread.
const ESCAPE = /\\(?:u[0-9a-f]{4}|.)|[<>&\u2028\u2029]/g;
const GO_ESCAPES: Readonly<Record<string, string>> = {
  "<": "\\u003c",
  ">": "\\u003e",
  "&": "\\u0026",
  "\u2028": "\\u2028",
  "\u2029": "\\u2029",
};

/**
 * JSON text as Go's `json.Encoder` writes it (Go 1.22 and later): members in the order given,
 * `<`, `>`, `&`, U+2028 and U+2029 escaped as `\u003c`…, a lone surrogate (invalid UTF-8 in Go)
 * as `\ufffd`, and a newline at the end.
 *
 * @example
 * ```ts
 * goJson([{ name: "<b>" }]); // '[{"name":"\\u003cb\\u003e"}]\n'
 * ```
 */
export function goJson(value: unknown): string {
  const text = JSON.stringify(value) ?? "null";
  return text.replace(ESCAPE, (m) => {
    if (m.length === 6 && m >= "\\ud800" && m <= "\\udfff") return "\\ufffd";
    return GO_ESCAPES[m] ?? m;
  }) + "\n";
}
