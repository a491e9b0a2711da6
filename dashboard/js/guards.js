// @ts-check
/// <reference lib="dom" />
/**
 * Narrowing the API's JSON (`unknown`) to the shapes of `src/dashboard/api.ts`. Every answer the
 * page renders passes through one of these guards first; a shape that does not fit is a
 * {@link ShapeError}, shown as an error, never rendered half-understood.
 *
 * The page's own view types mirror api.ts with JSON payloads (`params`, `result`, `error`,
 * `client_info`) left `unknown`: they are only ever shown as text. `apiFits` below makes
 * `deno check dashboard/js/guards.js` fail when api.ts changes in a way the page does not follow.
 *
 * @module
 */

/** @typedef {import("../../src/dashboard/api.ts").Info} Info */
/** @typedef {import("../../src/dashboard/api.ts").ExchangeState} ExchangeState */
/** @typedef {import("../../src/dashboard/api.ts").ChainStatus} ChainStatus */
/** @typedef {import("../../src/dashboard/api.ts").StreamItem} StreamItem */
/** @typedef {import("../../src/dashboard/api.ts").SessionSummary} SessionSummary */
/** @typedef {import("../../src/dashboard/api.ts").SessionsPage} SessionsPage */
/** @typedef {import("../../src/dashboard/api.ts").Latency} Latency */
/** @typedef {import("../../src/dashboard/api.ts").StatsBucket} StatsBucket */
/** @typedef {import("../../src/dashboard/api.ts").WindowStats} WindowStats */
/** @typedef {import("../../src/audit/record.ts").RecordKind} RecordKind */
/** @typedef {import("../../src/audit/record.ts").Direction} Direction */

/**
 * @typedef {object} DecisionView
 * @property {"allow" | "deny" | "rate_limited" | "filter"} action
 * @property {number | null} rule
 * @property {string} reason
 * @property {unknown} [enforced]
 * @property {unknown} [by]
 * @property {unknown} [hidden]
 * @property {unknown} [upstream_sha256]
 */

/**
 * An audit record as the page reads it.
 * @typedef {object} RecordView
 * @property {number} seq
 * @property {string} id
 * @property {string} ts
 * @property {RecordKind} kind
 * @property {Direction} direction
 * @property {string} transport
 * @property {string | null} session
 * @property {import("../../src/jsonrpc/message.ts").JsonRpcId} jsonrpc_id (never `rawJSON` once parsed)
 * @property {string | null} method
 * @property {string | null} tool_name
 * @property {unknown} params
 * @property {unknown} result
 * @property {unknown} error
 * @property {string[]} redacted
 * @property {number | null} duration_ms
 * @property {DecisionView | null} decision
 * @property {string} client_id
 * @property {string} server_id
 * @property {unknown} client_info
 * @property {string | null} wire_sha256
 * @property {string} prev
 * @property {string | null} sig
 */

/**
 * @typedef {object} ExchangeSummaryView
 * @property {string} key
 * @property {RecordKind} kind
 * @property {ExchangeState} state
 * @property {string} ts
 * @property {Direction} direction
 * @property {string | null} method
 * @property {string | null} tool_name
 * @property {string | null} session
 * @property {string} client_id
 * @property {string} server_id
 * @property {string | null} client_name
 * @property {string | number | null} jsonrpc_id
 * @property {number | null} duration_ms
 * @property {DecisionView | null} decision
 * @property {string | null} error_message
 * @property {number | null} request_seq
 * @property {number | null} answer_seq
 */

/**
 * @typedef {ExchangeSummaryView & { request: RecordView | null, answer: RecordView | null }} ExchangeDetailView
 */

/** @typedef {{ items: ExchangeSummaryView[], older: string | null, newer: string | null }} ExchangesPageView */
/** @typedef {{ items: RecordView[], older: string | null, newer: string | null }} RecordsPageView */

/**
 * @typedef {object} PinView
 * @property {string} server
 * @property {string} name
 * @property {string} digest
 * @property {string} pinned_at
 */
/**
 * @typedef {object} PendingView
 * @property {string} server
 * @property {string} name
 * @property {"added" | "changed"} change
 * @property {string | null} pinned
 * @property {string} seen
 * @property {string} seen_at
 */
/** @typedef {{ path: string | null, pins: PinView[], pending: PendingView[], error: string | null }} PinsViewView */

/** A value that does not have the shape the page expects. */
export class ShapeError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "ShapeError";
  }
}

/**
 * @template T
 * @typedef {(value: unknown, at: string) => T} Guard
 */

/** Lists longer than this are refused: no page of the API is near it. */
const MAX_LIST = 100_000;

/** @type {Guard<string>} */
export const str = (v, at) => {
  if (typeof v !== "string") throw new ShapeError(`${at}: expected a string`);
  return v;
};

/** @type {Guard<number>} */
export const num = (v, at) => {
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new ShapeError(`${at}: expected a number`);
  }
  return v;
};

/** @type {Guard<boolean>} */
export const bool = (v, at) => {
  if (typeof v !== "boolean") throw new ShapeError(`${at}: expected true or false`);
  return v;
};

/** @type {Guard<unknown>} */
export const anything = (v) => v;

/** @type {Guard<string | number | null>} */
const rpcId = (v, at) => {
  if (v === null || typeof v === "string" || (typeof v === "number" && Number.isFinite(v))) {
    return v;
  }
  throw new ShapeError(`${at}: expected a JSON-RPC id`);
};

/**
 * @template T
 * @param {Guard<T>} guard
 * @returns {Guard<T | null>}
 */
export function nullable(guard) {
  return (v, at) => (v === null ? null : guard(v, at));
}

/**
 * @template {string} const T
 * @param {readonly T[]} values
 * @returns {Guard<T>}
 */
export function oneOf(values) {
  return (v, at) => {
    const found = values.find((x) => x === v);
    if (found === undefined) throw new ShapeError(`${at}: expected one of ${values.join(", ")}`);
    return found;
  };
}

/**
 * @template T
 * @param {Guard<T>} guard
 * @returns {Guard<T[]>}
 */
export function listOf(guard) {
  return (v, at) => {
    if (!Array.isArray(v)) throw new ShapeError(`${at}: expected a list`);
    if (v.length > MAX_LIST) throw new ShapeError(`${at}: more than ${MAX_LIST} items`);
    return v.map((item, i) => guard(item, `${at}[${i}]`));
  };
}

/**
 * @param {unknown} v
 * @returns {v is Record<string, unknown>}
 */
export function isObject(v) {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * An object with (at least) the members `spec` names, each narrowed by its guard. Members not in
 * `spec` are left out of the result.
 * @template {Record<string, Guard<unknown>>} S
 * @param {S} spec
 * @returns {Guard<{ [K in keyof S]: ReturnType<S[K]> }>}
 */
export function object(spec) {
  return (v, at) => {
    if (!isObject(v)) throw new ShapeError(`${at}: expected an object`);
    /** @type {Record<string, unknown>} */
    const out = {};
    for (const [name, guard] of Object.entries(spec)) {
      out[name] = guard(Object.hasOwn(v, name) ? v[name] : undefined, `${at}.${name}`);
    }
    // The loop above set every member of `spec` through its guard.
    return /** @type {{ [K in keyof S]: ReturnType<S[K]> }} */ (out);
  };
}

const KINDS = /** @type {const} */ ([
  "request",
  "notification",
  "response",
  "error",
  "invalid",
  "event",
]);
const DIRECTIONS = /** @type {const} */ (["client_to_server", "server_to_client", "proxy"]);
const STATES = /** @type {const} */ (["ok", "error", "denied", "rate_limited", "pending", "none"]);
const ACTIONS = /** @type {const} */ (["allow", "deny", "rate_limited", "filter"]);

/** @type {Guard<RecordKind>} */
export const recordKind = oneOf(KINDS);
/** @type {Guard<Direction>} */
export const direction = oneOf(DIRECTIONS);

/** @type {Guard<DecisionView>} */
const decision = (v, at) => {
  const d = object({ action: oneOf(ACTIONS), rule: nullable(num), reason: str })(v, at);
  if (!isObject(v)) return d;
  /** @type {DecisionView} */
  const out = { ...d };
  if (Object.hasOwn(v, "enforced")) out.enforced = v.enforced;
  if (Object.hasOwn(v, "by")) out.by = v.by;
  if (Object.hasOwn(v, "hidden")) out.hidden = v.hidden;
  if (Object.hasOwn(v, "upstream_sha256")) out.upstream_sha256 = v.upstream_sha256;
  return out;
};

/** @type {Guard<RecordView>} */
export const record = object({
  seq: num,
  id: str,
  ts: str,
  kind: recordKind,
  direction,
  transport: str,
  session: nullable(str),
  jsonrpc_id: rpcId,
  method: nullable(str),
  tool_name: nullable(str),
  params: anything,
  result: anything,
  error: anything,
  redacted: listOf(str),
  duration_ms: nullable(num),
  decision: nullable(decision),
  client_id: str,
  server_id: str,
  client_info: anything,
  wire_sha256: nullable(str),
  prev: str,
  sig: nullable(str),
});

const summarySpec = {
  key: str,
  kind: recordKind,
  state: oneOf(STATES),
  ts: str,
  direction,
  method: nullable(str),
  tool_name: nullable(str),
  session: nullable(str),
  client_id: str,
  server_id: str,
  client_name: nullable(str),
  jsonrpc_id: rpcId,
  duration_ms: nullable(num),
  decision: nullable(decision),
  error_message: nullable(str),
  request_seq: nullable(num),
  answer_seq: nullable(num),
};

/** @type {Guard<ExchangeSummaryView>} */
export const exchangeSummary = object(summarySpec);

/** @type {Guard<ExchangeDetailView>} */
export const exchangeDetail = object({
  ...summarySpec,
  request: nullable(record),
  answer: nullable(record),
});

/** @type {Guard<ExchangesPageView>} */
export const exchangesPage = object({
  items: listOf(exchangeSummary),
  older: nullable(str),
  newer: nullable(str),
});

/** @type {Guard<RecordsPageView>} */
export const recordsPage = object({
  items: listOf(record),
  older: nullable(str),
  newer: nullable(str),
});

/** @type {Guard<Info>} */
export const info = object({
  version: str,
  storage: oneOf(/** @type {const} */ (["jsonl", "sqlite"])),
  log: str,
  auth: bool,
  timezone: str,
  live: bool,
});

/** @type {Guard<Latency>} */
const latency = object({
  count: num,
  p50: nullable(num),
  p95: nullable(num),
  p99: nullable(num),
  max: nullable(num),
});

/** @type {Guard<WindowStats>} */
export const windowStats = object({
  from: str,
  to: str,
  bucket_ms: num,
  calls: num,
  errors: num,
  denied: num,
  rate_limited: num,
  pending: num,
  latency,
  top_tools: listOf(object({ name: str, count: num, errors: num })),
  top_clients: listOf(object({ name: str, count: num })),
  buckets: listOf(object({ start: str, calls: num, errors: num, latency })),
  records_read: num,
  partial: bool,
});

/** @type {Guard<ChainStatus>} */
export const chainStatus = object({
  state: oneOf(/** @type {const} */ (["checking", "intact", "problems", "unavailable"])),
  records: num,
  last_seq: nullable(num),
  problems: num,
  first_problem: nullable(object({ seq: nullable(num), kind: str, detail: str })),
  signatures_checked: bool,
  checked_at: str,
  note: nullable(str),
  command: str,
});

/** @type {Guard<SessionSummary>} */
const sessionSummary = object({
  session: str,
  transport: nullable(oneOf(/** @type {const} */ (["stdio", "http"]))),
  client_id: str,
  server_id: str,
  client_name: nullable(str),
  first_seq: num,
  last_seq: num,
  first_ts: str,
  last_ts: str,
  records: num,
  calls: num,
  errors: num,
});

/** @type {Guard<SessionsPage>} */
export const sessionsPage = object({ items: listOf(sessionSummary), older: nullable(str) });

/** @type {Guard<PinsViewView>} */
export const pinsView = object({
  path: nullable(str),
  pins: listOf(object({ server: str, name: str, digest: str, pinned_at: str })),
  pending: listOf(
    object({
      server: str,
      name: str,
      change: oneOf(/** @type {const} */ (["added", "changed"])),
      pinned: nullable(str),
      seen: str,
      seen_at: str,
    }),
  ),
  error: nullable(str),
});

/** @type {Guard<StreamItem>} */
export const streamItem = object({
  seq: num,
  ts: str,
  kind: recordKind,
  direction,
  method: nullable(str),
  tool_name: nullable(str),
  session: nullable(str),
  jsonrpc_id: rpcId,
  client_id: str,
  is_error: bool,
  action: nullable(oneOf(ACTIONS)),
});

/**
 * Never called: it type-checks only when every shape api.ts answers fits what the page reads.
 * @param {import("../../src/dashboard/api.ts").ExchangeDetail} detail
 * @param {import("../../src/dashboard/api.ts").ExchangesPage} exchanges
 * @param {import("../../src/dashboard/api.ts").RecordsPage} records
 * @param {import("../../src/dashboard/api.ts").PinsView} pins
 * @returns {[ExchangeDetailView, ExchangesPageView, RecordsPageView, PinsViewView]}
 */
export function apiFits(detail, exchanges, records, pins) {
  return [detail, exchanges, records, pins];
}
