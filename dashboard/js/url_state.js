// @ts-check
/// <reference lib="dom" />
/**
 * The view in the URL: the API's filter parameters under their API names, plus `view` (live,
 * sessions, guardrails) and `ex` (the open exchange's key). A URL copied from the address bar
 * opens the same view.
 *
 * @module
 */

/** The filter parameters the page keeps, in the order they are written. */
export const FILTER_NAMES = /** @type {const} */ ([
  "method",
  "tool",
  "client",
  "session",
  "server",
  "kind",
  "direction",
  "decision",
  "errors",
  "from",
  "to",
  "q",
  "from_seq",
  "to_seq",
]);

/** @typedef {(typeof FILTER_NAMES)[number]} FilterName */
/** @typedef {Partial<Record<FilterName, string>>} Filters */
/** @typedef {"live" | "sessions" | "guardrails"} ViewName */
/** @typedef {{ filters: Filters, view: ViewName, ex: string | null }} ViewState */

const VIEWS = /** @type {const} */ (["live", "sessions", "guardrails"]);
/** A parameter longer than this is ignored: the API refuses `q` beyond 1024 characters. */
const MAX_VALUE = 1024;

/**
 * @param {string} search `location.search`
 * @returns {ViewState}
 */
export function readState(search) {
  const params = new URLSearchParams(search);
  /** @type {Filters} */
  const filters = {};
  for (const name of FILTER_NAMES) {
    const value = params.get(name);
    if (value !== null && value !== "" && value.length <= MAX_VALUE) filters[name] = value;
  }
  const view = VIEWS.find((v) => v === params.get("view")) ?? "live";
  const ex = params.get("ex");
  return { filters, view, ex: ex === null || ex === "" || ex.length > 64 ? null : ex };
}

/**
 * The query string of a view (without `?`); the default view is left out.
 * @param {ViewState} state
 * @returns {string}
 */
export function stateQuery(state) {
  const params = filterParams(state.filters);
  if (state.view !== "live") params.set("view", state.view);
  if (state.ex !== null) params.set("ex", state.ex);
  return params.toString();
}

/**
 * Puts the view in the address bar without adding a history entry.
 * @param {ViewState} state
 */
export function writeState(state) {
  const query = stateQuery(state);
  const url = `${location.pathname}${query === "" ? "" : `?${query}`}`;
  if (url !== `${location.pathname}${location.search}`) history.replaceState(null, "", url);
}

/**
 * The filters as API query parameters.
 * @param {Filters} filters
 * @returns {URLSearchParams}
 */
export function filterParams(filters) {
  const params = new URLSearchParams();
  for (const name of FILTER_NAMES) {
    const value = filters[name];
    if (value !== undefined && value !== "") params.set(name, value);
  }
  return params;
}

/** The filters window stats take (the window itself replaces `from`/`to`). */
const STATS_FILTERS = /** @type {const} */ (["method", "tool", "client", "session", "server"]);

/**
 * @param {Filters} filters
 * @returns {URLSearchParams}
 */
export function statsParams(filters) {
  const params = new URLSearchParams();
  for (const name of STATS_FILTERS) {
    const value = filters[name];
    if (value !== undefined && value !== "") params.set(name, value);
  }
  return params;
}

/**
 * An RFC 3339 time as a `datetime-local` value (local time, to the second); "" when unreadable.
 * @param {string} rfc3339
 * @returns {string}
 */
export function toLocalInput(rfc3339) {
  const d = new Date(rfc3339);
  if (Number.isNaN(d.getTime())) return "";
  const pad = (/** @type {number} */ n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/**
 * A `datetime-local` value (local time) as RFC 3339 in UTC; null when empty or unreadable.
 * @param {string} local
 * @returns {string | null}
 */
export function fromLocalInput(local) {
  if (local === "") return null;
  // A date-time without an offset is local time (ECMA-262 Date Time String Format).
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}
