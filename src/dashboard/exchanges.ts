/**
 * Exchanges: a request with its answer (response, error, or the proxy's refusal), or a record
 * that stands alone (notification, event, invalid message, an answer whose request the log no
 * longer holds). Built from the query API alone, with bounded reads.
 *
 * Pairing follows the proxy: a request waits under its key — the `session`, the JSON-RPC id
 * (type and value: `"1"` is not `1`) and the way it travelled — and the first answer travelling
 * the other way with that key answers it. A later request with the same key takes the place of one
 * still waiting (the proxy forgets the first), so, in the log, a request's answer is the next record
 * with its key when that record is an answer, and an answer's request is the previous record with
 * its key when that is a request. Anything else is unanswered, or an answer of its own.
 *
 * @module
 */
import type { AuditRecord, Direction, RecordKind } from "../audit/record.ts";
import {
  isErrorRecord,
  matches,
  type ReadRecord,
  type RecordFilter,
  type RecordQuery,
} from "../audit/storage/query.ts";
import { isJsonObject } from "../jsonrpc/json.ts";
import {
  BadRequestError,
  type ExchangeDetail,
  type ExchangesPage,
  type ExchangeState,
  type ExchangeSummary,
} from "./api.ts";
import {
  asRequest,
  Budget,
  type Cursor,
  LIST_SEQS,
  LogSpan,
  MAX_LIMIT,
  PAIR_SEQS,
  parseCursor,
  parseFilter,
  parseLimit,
  positiveInteger,
  seqCursor,
  SeqScan,
} from "./params.ts";
import { recordAt } from "./records_view.ts";

/** Kinds that start an exchange when `kind` is not given: answers are shown in theirs. */
export const DEFAULT_EXCHANGE_KINDS: readonly RecordKind[] = [
  "request",
  "notification",
  "invalid",
  "event",
];
const ERROR_MESSAGE_CHARS = 200;
// The first read after a record is small: an answer usually follows its request closely.
const FIRST_PAIR_PAGE = 200;
const PAIR_KINDS: readonly RecordKind[] = ["request", "response", "error"];

export { Budget };

/** True for a `response` or `error` record: an answer. */
export function isAnswer(r: AuditRecord): boolean {
  return r.kind === "response" || r.kind === "error";
}

function opposite(d: Direction): Direction {
  switch (d) {
    case "client_to_server":
      return "server_to_client";
    case "server_to_client":
      return "client_to_server";
    case "proxy":
      return "proxy";
    default: {
      const never: never = d;
      return never;
    }
  }
}

/** The JSON-RPC id of a record as the API shows it: a string, a number, or null. */
export function rpcId(r: AuditRecord): string | number | null {
  const id: unknown = r.jsonrpc_id;
  return typeof id === "string" || typeof id === "number" ? id : null;
}

/**
 * The key a request waits under and its answer comes back with: session, id with its type, and
 * the request's direction. Null for a record that takes no part in pairing.
 */
export function pairKey(r: AuditRecord): string | null {
  const id = rpcId(r);
  if (id === null) return null;
  let direction: Direction;
  if (r.kind === "request") direction = r.direction;
  else if (isAnswer(r)) direction = opposite(r.direction);
  else return null;
  if (direction === "proxy") return null;
  return JSON.stringify([r.session, typeof id === "number" ? "n" : "s", String(id), direction]);
}

/** A request the proxy refused (enforced): `denied` (policy, pinning) or `rate_limited`. */
export function refusalOf(r: AuditRecord): "denied" | "rate_limited" | null {
  const d = r.decision;
  if (r.kind !== "request" || d === null || d.enforced === false) return null;
  if (d.action === "deny") return "denied";
  if (d.action === "rate_limited") return "rate_limited";
  return null;
}

/** One session every record shares, for a narrower read; undefined when they differ. */
function commonSession(records: readonly AuditRecord[]): string | undefined {
  const s = records[0]?.session;
  if (typeof s !== "string") return undefined;
  return records.every((r) => r.session === s) ? s : undefined;
}

/**
 * Reads pairing records from `after` on, in `order`, window by window, within the budget (in
 * seqs scanned); `skip` names a seq the read may jump to, when nothing before it is needed, or
 * null when nothing more is.
 * `end.reached` is set when the log has no more.
 */
async function* pairingRecords(
  query: RecordQuery,
  span: LogSpan,
  targets: readonly AuditRecord[],
  order: "oldest" | "newest",
  after: number,
  budget: Budget,
  skip: () => number | null | undefined,
  end: { reached: boolean },
): AsyncGenerator<ReadRecord> {
  const session = commonSession(targets);
  const filter: RecordFilter = {
    kinds: PAIR_KINDS,
    ...(session === undefined ? {} : { session }),
  };
  const scan = await SeqScan.open(query, span, filter, order, after, budget);
  let size = FIRST_PAIR_PAGE;
  for (;;) {
    const to = skip();
    if (to === null) return;
    if (to !== undefined) scan.skipTo(to);
    if (scan.done) break;
    yield* await scan.read(size);
    size = MAX_LIMIT;
  }
  end.reached = scan.exhausted;
}

/**
 * Walks the pairing records of `targets` (sorted in `order`) from the first of them: each target
 * the read passes, not read itself, is handed to `visit` with null, then each record read with its
 * stored line. While nothing is `waiting`, the read jumps to the next target or, past the last,
 * stops; it stops too once `resolved()` after the last target. Returns whether the log's end was
 * reached.
 */
async function walkPairs(
  query: RecordQuery,
  span: LogSpan,
  targets: readonly AuditRecord[],
  order: "oldest" | "newest",
  budget: Budget,
  waiting: ReadonlyMap<string, AuditRecord>,
  visit: (r: AuditRecord, read: ReadRecord | null) => void,
  resolved: () => boolean,
): Promise<boolean> {
  let next = 0;
  const passed = order === "oldest"
    ? (seq: number, at: number) => seq < at
    : (seq: number, at: number) => seq > at;
  const end = { reached: false };
  const skip = () => waiting.size === 0 ? targets[next]?.seq ?? null : undefined;
  const records = pairingRecords(query, span, targets, order, targets[0]!.seq, budget, skip, end);
  for await (const read of records) {
    const r = read.record;
    while (next < targets.length && passed(targets[next]!.seq, r.seq)) {
      visit(targets[next++]!, null);
    }
    visit(r, read);
    if (resolved() && next >= targets.length) break;
  }
  return end.reached;
}

/**
 * The answers of `requests`, read forwards from the oldest of them: request seq → answer (with
 * its stored line).
 * A request missing from the map has no answer in the records read (unanswered, replaced by a
 * later request with its key, or beyond the budget).
 */
export async function answersOf(
  query: RecordQuery,
  requests: readonly AuditRecord[],
  budget: Budget,
  span: LogSpan = new LogSpan(query),
): Promise<Map<number, ReadRecord>> {
  const out = new Map<number, ReadRecord>();
  const targets = uniqueBySeq(requests.filter((r) => r.kind === "request" && pairKey(r) !== null))
    .sort((a, b) => a.seq - b.seq);
  if (targets.length === 0) return out;
  const isTarget = new Set(targets.map((t) => t.seq));
  const seen = new Set<number>();
  const waiting = new Map<string, AuditRecord>();
  let unresolved = targets.length;

  const request = (r: AuditRecord) => {
    const k = pairKey(r);
    if (k === null) return;
    const w = waiting.get(k);
    if (w !== undefined && w.seq < r.seq) {
      // Replaced by a later request with its key: the proxy forgot it.
      waiting.delete(k);
      unresolved--;
    }
    if (isTarget.has(r.seq) && !seen.has(r.seq)) {
      seen.add(r.seq);
      waiting.set(k, r);
    }
  };
  const answer = (read: ReadRecord) => {
    const r = read.record;
    const k = pairKey(r);
    if (k === null) return;
    const w = waiting.get(k);
    if (w !== undefined && w.seq < r.seq) {
      out.set(w.seq, read);
      waiting.delete(k);
      unresolved--;
    }
  };

  await walkPairs(
    query,
    span,
    targets,
    "oldest",
    budget,
    waiting,
    // A target passed over is a request: only answers come without one.
    (r, read) => {
      if (r.kind === "request") request(r);
      else if (read !== null) answer(read);
    },
    () => unresolved === 0,
  );
  return out;
}

/**
 * The requests of `answers`, read backwards from the newest of them: answer seq → its request
 * (with its stored line), or null for an answer of its own — the record before it with its key is
 * another answer, or the log holds none. An answer missing from the map is undecided: the budget
 * ran out first.
 */
export async function requestsOf(
  query: RecordQuery,
  answers: readonly AuditRecord[],
  budget: Budget,
  span: LogSpan = new LogSpan(query),
): Promise<Map<number, ReadRecord | null>> {
  const out = new Map<number, ReadRecord | null>();
  const targets: AuditRecord[] = [];
  for (const r of uniqueBySeq(answers.filter(isAnswer))) {
    // Without an id (a parse error's answer) it answers no request.
    if (pairKey(r) === null) out.set(r.seq, null);
    else targets.push(r);
  }
  targets.sort((a, b) => b.seq - a.seq);
  if (targets.length === 0) return out;
  const isTarget = new Set(targets.map((t) => t.seq));
  const seen = new Set<number>();
  const waiting = new Map<string, AuditRecord>();
  let unresolved = targets.length;

  const visit = (r: AuditRecord, read: ReadRecord | null) => {
    const k = pairKey(r);
    if (k === null) return;
    const w = waiting.get(k);
    if (w !== undefined && w.seq > r.seq) {
      out.set(w.seq, r.kind === "request" ? read : null);
      waiting.delete(k);
      unresolved--;
    }
    if (isTarget.has(r.seq) && !seen.has(r.seq)) {
      seen.add(r.seq);
      waiting.set(k, r);
    }
  };

  const reached = await walkPairs(
    query,
    span,
    targets,
    "newest",
    budget,
    waiting,
    visit,
    () => unresolved === 0,
  );
  if (reached) { for (const t of targets) if (!out.has(t.seq)) out.set(t.seq, null); }
  return out;
}

function uniqueBySeq(records: readonly AuditRecord[]): AuditRecord[] {
  const bySeq = new Map<number, AuditRecord>();
  for (const r of records) bySeq.set(r.seq, r);
  return [...bySeq.values()];
}

/** At most `n` characters (code points), so that no surrogate pair is cut. */
function clip(text: string, n: number): string {
  if (text.length <= n) return text;
  return [...text].slice(0, n).join("");
}

/** The error text of an answer: its error's message, or a tool error's first text. */
export function errorText(answer: AuditRecord): string | null {
  const e: unknown = answer.error;
  if (typeof e === "object" && e !== null && "message" in e) {
    return typeof e.message === "string" ? clip(e.message, ERROR_MESSAGE_CHARS) : "";
  }
  if (!isErrorRecord(answer) || !isJsonObject(answer.result)) return null;
  const content = answer.result.content;
  if (!Array.isArray(content)) return null;
  for (const item of content) {
    if (isJsonObject(item) && item.type === "text" && typeof item.text === "string") {
      return clip(item.text, ERROR_MESSAGE_CHARS);
    }
  }
  return null;
}

function clientName(r: AuditRecord): string | null {
  const info = r.client_info;
  if (!isJsonObject(info)) return null;
  return typeof info.name === "string" ? info.name : null;
}

function stateOf(first: AuditRecord | null, answer: AuditRecord | null): ExchangeState {
  if (first === null) return answer !== null && isErrorRecord(answer) ? "error" : "ok";
  switch (first.kind) {
    case "response":
    case "error":
      // An answer of its own.
      return isErrorRecord(first) ? "error" : "ok";
    case "request": {
      const refused = refusalOf(first);
      if (refused !== null) return refused;
      if (answer === null) return "pending";
      return isErrorRecord(answer) ? "error" : "ok";
    }
    case "notification":
    case "invalid":
    case "event":
      return "none";
    default: {
      const never: never = first.kind;
      return never;
    }
  }
}

/**
 * The summary of an exchange: `first` is its request (or notification, event, invalid message),
 * null for an answer of its own; `answer` the answer found, if any.
 */
export function summarize(first: AuditRecord | null, answer: AuditRecord | null): ExchangeSummary {
  const head = first ?? answer;
  if (head === null) throw new TypeError("an exchange has at least one record");
  // An invalid message's record names what was wrong with it.
  const failed = answer ?? (head.kind === "invalid" ? head : null);
  const error = failed !== null && isErrorRecord(failed) ? errorText(failed) : null;
  return {
    key: String(head.seq),
    kind: head.kind,
    state: stateOf(first, answer),
    ts: head.ts,
    direction: head.direction,
    method: head.method ?? answer?.method ?? null,
    tool_name: head.tool_name ?? answer?.tool_name ?? null,
    session: head.session,
    client_id: head.client_id,
    server_id: head.server_id,
    client_name: clientName(head),
    jsonrpc_id: rpcId(head),
    duration_ms: answer?.duration_ms ?? null,
    decision: head.decision,
    error_message: error,
    request_seq: first?.seq ?? null,
    answer_seq: answer?.seq ?? null,
  };
}

/** An exchange found for a page, and the position its cursor is. */
interface Item {
  first: AuditRecord | null;
  answer: AuditRecord | null;
  /** The seq of the record that put it on the page. */
  at: number;
}

/** Where a listing starts and which way it reads. */
interface Start {
  order: "newest" | "oldest";
  /** Exclusive, in the order read. */
  after: number | undefined;
  /** The cursor given (`after=`), for an empty page's `newer`. */
  given: number | undefined;
}

function startOf(cursor: Cursor | null): Start {
  if (cursor === null) return { order: "newest", after: undefined, given: undefined };
  const seq = seqCursor(cursor);
  return cursor.dir === "after"
    ? { order: "oldest", after: seq, given: seq }
    : { order: "newest", after: seq, given: undefined };
}

/** What a listing read: the items, the last record looked at, and whether more may follow it. */
interface Scan {
  items: Item[];
  last: number | undefined;
  more: boolean;
}

/**
 * Turns records read into items, window by window, until `limit` items or the listing's budget
 * ({@link LIST_SEQS} seqs): `take` maps a page of records to the items they make, in the order
 * read (`spare`: some make none).
 */
async function scanPages(
  query: RecordQuery,
  span: LogSpan,
  filter: RecordFilter,
  start: Start,
  limit: number,
  seqs: number,
  spare: boolean,
  take: (records: AuditRecord[]) => Promise<Item[]>,
): Promise<Scan> {
  const scan = await SeqScan.open(
    query,
    span,
    filter,
    start.order,
    start.after,
    new Budget(seqs),
  );
  const items: Item[] = [];
  for (;;) {
    // Where the scan stopped: every seq up to it was looked at.
    if (scan.done) return { items, last: scan.position, more: !scan.exhausted };
    // When records may make no item, a page reads more than the items still wanted.
    const records = (await scan.read((limit - items.length) * (spare ? 2 : 1))).map((r) =>
      r.record
    );
    const made = await take(records);
    // `made` is in the order read; each item's `at` is a record of this page.
    let used = 0;
    for (const item of made) {
      items.push(item);
      used++;
      if (items.length === limit) break;
    }
    if (items.length === limit) {
      const at = items[items.length - 1]!.at;
      const rest = records.some((r) => start.order === "newest" ? r.seq < at : r.seq > at);
      return { items, last: at, more: rest || !scan.exhausted || used < made.length };
    }
  }
}

function pageOf(scan: Scan, start: Start): ExchangesPage {
  const items = start.order === "oldest" ? [...scan.items].reverse() : scan.items;
  const summaries = items.map((i) => summarize(i.first, i.answer));
  if (start.order === "oldest") {
    const oldest = items[items.length - 1];
    return {
      items: summaries,
      older: oldest !== undefined && (start.given ?? 0) > 0 ? String(oldest.at) : null,
      // What was looked at and left out need not be looked at again.
      newer: String(scan.last ?? start.given ?? 0),
    };
  }
  return {
    items: summaries,
    older: scan.more && scan.last !== undefined ? String(scan.last) : null,
    newer: items.length > 0 ? String(items[0]!.at) : null,
  };
}

/**
 * A page of exchanges, newest first; cursors as for records (`before=`, `after=`).
 *
 * Filters (`method`, `tool`, `client`, `session`, `server`, `direction`, `decision`, `from`,
 * `to`, `kind`, `from_seq`, `to_seq`) apply to an exchange's first record; `kind` is every kind
 * but `response` and `error` unless given (an answer whose request the log no longer holds is
 * listed when `kind` names its kind). `errors=1` and `q` select exchanges whose request or answer
 * matches: each is listed once, where its newest matching record is, and the cursor is that
 * record's seq.
 *
 * @example
 * ```ts
 * const page = await exchangesPage(query, new URLSearchParams("method=tools/call&limit=20"));
 * for (const x of page.items) console.log(x.key, x.state, x.tool_name, x.duration_ms);
 * ```
 * The listing scans at most `options.seqs` seqs (default {@link LIST_SEQS}), pairing at most
 * {@link PAIR_SEQS} more: a short or empty page's cursor goes on from where the scan stopped.
 * @throws {BadRequestError} for a malformed parameter or cursor
 */
export async function exchangesPage(
  query: RecordQuery,
  params: URLSearchParams,
  options: { seqs?: number } = {},
): Promise<ExchangesPage> {
  const f = parseFilter(params);
  const limit = parseLimit(params);
  const start = startOf(parseCursor(params));
  const kinds = f.kinds ?? DEFAULT_EXCHANGE_KINDS;
  const { errorsOnly, q, ...rest } = f;
  const first: RecordFilter = { ...rest, kinds };
  const pairs = new Budget(PAIR_SEQS);
  const span = new LogSpan(query);
  const seqs = options.seqs ?? LIST_SEQS;
  return await asRequest(async () => {
    if (errorsOnly !== true && q === undefined) {
      const spare = kinds.includes("response") || kinds.includes("error");
      const scan = await scanPages(
        query,
        span,
        first,
        start,
        limit,
        seqs,
        spare,
        async (records) => {
          const answers = records.filter(isAnswer);
          const requestOf = await requestsOf(query, answers, pairs, span);
          return records.flatMap((r): Item[] => {
            if (!isAnswer(r)) return [{ first: r, answer: null, at: r.seq }];
            // An answer with its request is shown in its request's exchange; one whose request
            // could not be looked for within the budget is not listed.
            return requestOf.get(r.seq) === null ? [{ first: null, answer: r, at: r.seq }] : [];
          });
        },
      );
      const answerOf = await answersOf(
        query,
        scan.items.flatMap((i) => i.first === null ? [] : [i.first]),
        pairs,
        span,
      );
      for (const item of scan.items) {
        if (item.first !== null) item.answer = answerOf.get(item.first.seq)?.record ?? null;
      }
      return pageOf(scan, start);
    }
    return pageOf(await searchScan(query, span, f, first, start, limit, seqs, pairs), start);
  });
}

/** `errors=1` and `q`: exchanges whose request or answer matches, at their newest match. */
async function searchScan(
  query: RecordQuery,
  span: LogSpan,
  f: RecordFilter,
  first: RecordFilter,
  start: Start,
  limit: number,
  seqs: number,
  pairs: Budget,
): Promise<Scan> {
  const kinds = first.kinds ?? DEFAULT_EXCHANGE_KINDS;
  // What a matching record can be: the first record's filters that an answer shares with its
  // request (session, client, server, method and tool, copied onto answers; an answer comes
  // after its request, so `from` and `from_seq` bound it too).
  const answerKinds: RecordKind[] = ["response", "error"];
  const match: RecordFilter = {
    kinds: kinds.includes("request") ? [...new Set([...kinds, ...answerKinds])] : kinds,
  };
  if (f.errorsOnly === true) match.errorsOnly = true;
  if (f.q !== undefined) match.q = f.q;
  if (f.method !== undefined) match.method = f.method;
  if (f.toolName !== undefined) match.toolName = f.toolName;
  if (f.session !== undefined) match.session = f.session;
  if (f.clientId !== undefined) match.clientId = f.clientId;
  if (f.serverId !== undefined) match.serverId = f.serverId;
  if (f.from !== undefined) match.from = f.from;
  if (f.fromSeq !== undefined) match.fromSeq = f.fromSeq;
  const listed = new Set<number>();
  return await scanPages(query, span, match, start, limit, seqs, true, async (records) => {
    const requestOf = await requestsOf(query, records.filter(isAnswer), pairs, span);
    const answerOf = await answersOf(
      query,
      records.filter((r) => r.kind === "request"),
      pairs,
      span,
    );
    const items: Item[] = [];
    for (const m of records) {
      let head: AuditRecord;
      let item: Item;
      if (isAnswer(m)) {
        const request = requestOf.get(m.seq)?.record ?? null;
        head = request ?? m;
        item = { first: request, answer: m, at: m.seq };
      } else {
        const answer = answerOf.get(m.seq)?.record ?? null;
        // Listed where its answer is, when that matches too: once, at its newest match.
        if (answer !== null && matches(answer, match)) continue;
        head = m;
        item = { first: m, answer, at: m.seq };
      }
      if (!matches(head, first) || listed.has(head.seq)) continue;
      listed.add(head.seq);
      items.push(item);
    }
    return items;
  });
}

/**
 * One exchange in full, by its key (the seq of its first record). The seq of an answer whose
 * request is found gives that request's exchange (whose `key` says so). Null when the log holds
 * no record of that seq.
 * @throws {BadRequestError} when the key is not a positive integer
 */
export async function exchangeDetail(
  query: RecordQuery,
  key: string,
): Promise<ExchangeDetail | null> {
  const seq = positiveInteger(key);
  if (seq === null) throw new BadRequestError("an exchange key is a positive integer");
  const record = await recordAt(query, seq);
  if (record === null) return null;
  const budget = new Budget(PAIR_SEQS);
  const span = new LogSpan(query);
  let first: AuditRecord | null = record;
  let answer: AuditRecord | null = null;
  if (isAnswer(record)) {
    first = (await requestsOf(query, [record], budget, span)).get(record.seq)?.record ?? null;
    answer = record;
  } else if (record.kind === "request") {
    answer = (await answersOf(query, [record], budget, span)).get(record.seq)?.record ?? null;
  }
  return { ...summarize(first, answer), request: first, answer };
}
