// @ts-check
/// <reference lib="dom" />
/**
 * The API client: every request carries the token (when one is kept), every answer is narrowed
 * by a guard, and a 401 or 429 asks the user for the token once for all the requests that met it,
 * then retries them.
 *
 * The token lives in `sessionStorage` (this tab only, gone when it closes) and travels only in the
 * `Authorization` header — never in a URL.
 *
 * @module
 */
import { isObject, ShapeError } from "./guards.js";
import { parseJson } from "./json.js";

const TOKEN_KEY = "mcp-audit.dashboard.token";

/** An answer other than 2xx (and other than the auth answers, which are handled here). */
export class HttpError extends Error {
  /**
   * @param {number} status
   * @param {string} message
   * @param {number | null} retryAfter seconds, from `Retry-After`
   */
  constructor(status, message, retryAfter = null) {
    super(message);
    this.name = "HttpError";
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

/**
 * Why the token is asked for.
 * @typedef {{ kind: "missing" } | { kind: "wrong" } | { kind: "throttled", retryAfter: number }} AuthReason
 */

/**
 * Shows the token dialog and resolves once a token that works is kept.
 * @typedef {(reason: AuthReason) => Promise<void>} AskToken
 */

/**
 * Resolves after `ms`, or rejects with the signal's reason when it aborts first.
 * @param {number} ms
 * @param {AbortSignal} [signal]
 * @returns {Promise<void>}
 */
function delay(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Seconds from a `Retry-After` header (delta-seconds or an HTTP date); null when absent.
 * @param {Headers} headers
 * @returns {number | null}
 */
export function retryAfterSeconds(headers) {
  const value = headers.get("Retry-After");
  if (value === null) return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

/**
 * The error text of a failed answer: `{"error": "..."}` or the body's first line.
 * @param {Response} res
 * @returns {Promise<string>}
 */
async function errorText(res) {
  const text = await res.text().catch(() => "");
  try {
    /** @type {unknown} */
    const body = parseJson(text);
    if (isObject(body) && typeof body.error === "string") return body.error;
  } catch {
    // not JSON
  }
  const line = text.split("\n", 1)[0] ?? "";
  return line === "" ? `HTTP ${res.status}` : line.slice(0, 300);
}

export class Api {
  /** @type {string | null} */
  #token = null;
  /** @type {AskToken | null} */
  #ask = null;
  /** @type {Promise<void> | null} */
  #asking = null;
  /** @type {(() => void)[]} */
  #tokenListeners = [];

  constructor() {
    try {
      this.#token = sessionStorage.getItem(TOKEN_KEY);
    } catch {
      this.#token = null;
    }
  }

  /**
   * Sets how the token is asked for (the dialog).
   * @param {AskToken} ask
   */
  setAsk(ask) {
    this.#ask = ask;
  }

  /** @returns {boolean} */
  get hasToken() {
    return this.#token !== null;
  }

  /**
   * Keeps a token (after the dialog checked it).
   * @param {string | null} token
   */
  setToken(token) {
    this.#token = token;
    try {
      if (token === null) sessionStorage.removeItem(TOKEN_KEY);
      else sessionStorage.setItem(TOKEN_KEY, token);
    } catch {
      // storage refused (private mode): the token lives as long as the page
    }
    if (token !== null) { for (const listener of this.#tokenListeners) listener(); }
  }

  /**
   * Called each time a new token is kept (the stream reconnects with it).
   * @param {() => void} listener
   */
  onToken(listener) {
    this.#tokenListeners.push(listener);
  }

  /**
   * Headers for a request, with the token when one is kept.
   * @param {Record<string, string>} [extra]
   * @returns {Headers}
   */
  headers(extra = {}) {
    const h = new Headers(extra);
    if (this.#token !== null) h.set("Authorization", `Bearer ${this.#token}`);
    return h;
  }

  /**
   * One request with a given token (null: none), no asking: how the dialog checks a token.
   * @param {string | null} token
   * @returns {Promise<Response>}
   */
  probe(token) {
    const headers = new Headers({ Accept: "application/json" });
    if (token !== null) headers.set("Authorization", `Bearer ${token}`);
    return fetch("/api/v1/info", { headers, cache: "no-store", referrerPolicy: "no-referrer" });
  }

  /**
   * Asks for the token (once for every request waiting on it).
   * @param {AuthReason} reason
   * @returns {Promise<void>}
   */
  needToken(reason) {
    this.setToken(null);
    if (this.#asking === null) {
      const ask = this.#ask;
      if (ask === null) return Promise.reject(new Error("no way to ask for the token"));
      this.#asking = ask(reason).finally(() => {
        this.#asking = null;
      });
    }
    return this.#asking;
  }

  /**
   * A GET answered with JSON, narrowed by `guard`. A 401/429 asks for the token and retries.
   * @template T
   * @param {string} path e.g. `/api/v1/exchanges`
   * @param {URLSearchParams | null} params
   * @param {(value: unknown, at: string) => T} guard
   * @param {AbortSignal} [signal]
   * @returns {Promise<T>}
   */
  async get(path, params, guard, signal) {
    const url = params === null || params.size === 0 ? path : `${path}?${params}`;
    for (let attempt = 0;; attempt++) {
      const res = await fetch(url, {
        headers: this.headers({ Accept: "application/json" }),
        cache: "no-store",
        referrerPolicy: "no-referrer",
        ...(signal === undefined ? {} : { signal }),
      });
      if ((res.status === 401 || res.status === 429) && attempt < 5) {
        await res.body?.cancel();
        await this.needToken(
          res.status === 429
            ? { kind: "throttled", retryAfter: retryAfterSeconds(res.headers) ?? 60 }
            : { kind: this.#token === null ? "missing" : "wrong" },
        );
        continue;
      }
      // Too many reads under way (many tabs or scripts): wait as told, a few times.
      if (res.status === 503 && attempt < 3) {
        const seconds = Math.min(10, retryAfterSeconds(res.headers) ?? 1);
        await res.body?.cancel();
        await delay(seconds * 1000, signal);
        continue;
      }
      if (!res.ok) {
        throw new HttpError(res.status, await errorText(res), retryAfterSeconds(res.headers));
      }
      /** @type {unknown} */
      let body;
      try {
        // Member names as sent (see json.js), not as V8's JSON.parse may misread them.
        body = parseJson(await res.text());
      } catch {
        throw new ShapeError(`${path}: the answer is not JSON`);
      }
      return guard(body, path);
    }
  }

  /**
   * Opens the event stream (the caller reads and parses it).
   * @param {string | null} lastEventId
   * @param {AbortSignal} signal
   * @returns {Promise<Response>}
   */
  openStream(lastEventId, signal) {
    /** @type {Record<string, string>} */
    const extra = { Accept: "text/event-stream" };
    if (lastEventId !== null) extra["Last-Event-ID"] = lastEventId;
    return fetch("/api/v1/stream", {
      headers: this.headers(extra),
      cache: "no-store",
      referrerPolicy: "no-referrer",
      signal,
    });
  }
}

/**
 * A short message for an error met while loading something.
 * @param {unknown} e
 * @returns {string}
 */
export function describeError(e) {
  if (e instanceof HttpError) return `${e.message} (HTTP ${e.status})`;
  if (e instanceof ShapeError) return `unexpected answer: ${e.message}`;
  if (e instanceof Error) return e.message;
  return String(e);
}

/**
 * Whether an error is an abort (the caller moved on), which is not shown.
 * @param {unknown} e
 * @returns {boolean}
 */
export function isAbort(e) {
  return e instanceof DOMException && e.name === "AbortError";
}
