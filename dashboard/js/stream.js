// @ts-check
/// <reference lib="dom" />
/**
 * The live feed: `GET /api/v1/stream` read with `fetch` (so the token goes in a header, which
 * `EventSource` cannot send) and parsed as Server-Sent Events here. Reconnects with a backoff of
 * 1 s doubling to 10 s and `Last-Event-ID`, so the server resumes after the last record seen.
 *
 * @module
 */
import { describeError, retryAfterSeconds } from "./api.js";
import { streamItem } from "./guards.js";
import { parseJson } from "./json.js";

/** @typedef {import("./guards.js").StreamItem} StreamItem */
/** @typedef {{ id: string | null, event: string, data: string }} SseEvent */

/** A line longer than this ends the connection (the server never sends one). */
const MAX_LINE = 1 << 20;

/**
 * An incremental SSE parser (the WHATWG event-stream format): feed it text as it arrives.
 * Lines end in CRLF, LF or CR; `:` lines are comments; an empty line dispatches the event.
 */
export class SseParser {
  #pending = "";
  /** @type {string[]} */
  #data = [];
  #event = "";
  /** @type {string | null} */
  #id = null;
  /** The last `id` seen, kept across events as the spec says. */
  /** @type {string | null} */
  lastEventId = null;
  /** The server's `retry` in ms, when it sent one. */
  /** @type {number | null} */
  retry = null;
  /** A CR ended the last chunk: a LF starting the next one belongs to it. */
  #afterCr = false;
  /** @type {(event: SseEvent) => void} */
  #onEvent;

  /** @param {(event: SseEvent) => void} onEvent */
  constructor(onEvent) {
    this.#onEvent = onEvent;
  }

  /**
   * @param {string} chunk
   * @throws {RangeError} when a line grows beyond 1 MiB
   */
  push(chunk) {
    let text = chunk;
    if (this.#afterCr && text.startsWith("\n")) text = text.slice(1);
    this.#afterCr = false;
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.#line(this.#pending + text.slice(start, i));
      this.#pending = "";
      if (c === 13) {
        if (i + 1 < text.length) {
          if (text.charCodeAt(i + 1) === 10) i++;
        } else {
          this.#afterCr = true;
        }
      }
      start = i + 1;
    }
    this.#pending += text.slice(start);
    if (this.#pending.length > MAX_LINE) throw new RangeError("an event-stream line over 1 MiB");
  }

  /** @param {string} line */
  #line(line) {
    if (line === "") {
      this.#dispatch();
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "data":
        this.#data.push(value);
        break;
      case "event":
        this.#event = value;
        break;
      case "id":
        if (!value.includes("\0")) this.#id = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.retry = Number(value);
        break;
      default:
        break;
    }
  }

  #dispatch() {
    if (this.#id !== null) this.lastEventId = this.#id;
    const data = this.#data.join("\n");
    const hadData = this.#data.length > 0;
    const event = this.#event === "" ? "message" : this.#event;
    this.#data = [];
    this.#event = "";
    this.#id = null;
    if (hadData) this.#onEvent({ id: this.lastEventId, event, data });
  }
}

/**
 * @typedef {"connecting" | "live" | "reconnecting" | "stopped"} StreamState
 */

/**
 * @typedef {object} StreamHandlers
 * @property {(item: StreamItem) => void} onItem each record event
 * @property {(state: StreamState, note: string | null) => void} onState
 * @property {(resumed: boolean) => void} onOpen each connection; `resumed`: with Last-Event-ID
 */

/** No byte for this long (the server pings every 15 s) means the connection is dead. */
const IDLE_MS = 45_000;
const BACKOFF_MIN_MS = 1_000;
const BACKOFF_MAX_MS = 10_000;

export class LiveStream {
  /** @type {import("./api.js").Api} */
  #api;
  /** @type {StreamHandlers} */
  #on;
  #stopped = false;
  /** @type {AbortController | null} */
  #conn = null;
  /** @type {string | null} */
  #lastId = null;
  #backoff = BACKOFF_MIN_MS;
  /** @type {(() => void) | null} */
  #wakeWait = null;
  /** @type {Promise<void>} */
  firstAttempt;
  /** @type {() => void} */
  #firstDone = () => {};

  /**
   * @param {import("./api.js").Api} api
   * @param {StreamHandlers} handlers
   */
  constructor(api, handlers) {
    this.#api = api;
    this.#on = handlers;
    this.firstAttempt = new Promise((resolve) => {
      this.#firstDone = resolve;
    });
    // A new token: try at once rather than at the end of the backoff.
    api.onToken(() => this.#wakeWait?.());
  }

  start() {
    void this.#run();
  }

  stop() {
    this.#stopped = true;
    this.#conn?.abort();
    this.#wakeWait?.();
    this.#on.onState("stopped", null);
  }

  async #run() {
    let first = true;
    while (!this.#stopped) {
      const note = await this.#connectOnce(first);
      first = false;
      this.#firstDone();
      if (this.#stopped) return;
      this.#on.onState("reconnecting", note);
      await this.#wait(this.#backoffDelay());
    }
  }

  #backoffDelay() {
    const delay = this.#backoff;
    this.#backoff = Math.min(BACKOFF_MAX_MS, this.#backoff * 2);
    return delay;
  }

  /**
   * @param {number} ms
   * @returns {Promise<void>}
   */
  #wait(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wakeWait = () => {
        this.#wakeWait = null;
        done();
      };
    });
  }

  /**
   * One connection, read until it ends.
   * @param {boolean} first
   * @returns {Promise<string | null>} why it ended
   */
  async #connectOnce(first) {
    const conn = new AbortController();
    this.#conn = conn;
    this.#on.onState(first ? "connecting" : "reconnecting", null);
    /** @type {ReturnType<typeof setTimeout> | null} */
    let idle = null;
    const touch = () => {
      if (idle !== null) clearTimeout(idle);
      idle = setTimeout(() => conn.abort(new DOMException("no data", "TimeoutError")), IDLE_MS);
    };
    try {
      const res = await this.#api.openStream(this.#lastId, conn.signal);
      if (res.status === 401 || res.status === 429) {
        await res.body?.cancel();
        this.#firstDone();
        await this.#api.needToken(
          res.status === 429
            ? { kind: "throttled", retryAfter: retryAfterSeconds(res.headers) ?? 60 }
            : { kind: this.#api.hasToken ? "wrong" : "missing" },
        );
        this.#backoff = BACKOFF_MIN_MS;
        return "signing in";
      }
      if (!res.ok || res.body === null) {
        await res.body?.cancel();
        const wait = retryAfterSeconds(res.headers);
        if (wait !== null) this.#backoff = Math.min(BACKOFF_MAX_MS * 6, Math.max(1, wait) * 1000);
        return `the stream answered HTTP ${res.status}`;
      }
      this.#backoff = BACKOFF_MIN_MS;
      this.#on.onState("live", null);
      this.#on.onOpen(this.#lastId !== null);
      this.#firstDone();
      const parser = new SseParser((event) => {
        if (event.id !== null) this.#lastId = event.id;
        if (event.event !== "record") return;
        /** @type {unknown} */
        let data;
        try {
          data = parseJson(event.data);
        } catch {
          return;
        }
        try {
          this.#on.onItem(streamItem(data, "stream"));
        } catch (e) {
          // One odd event is skipped, not a reason to reconnect (it would come again).
          console.warn("skipped a stream event:", describeError(e));
        }
      });
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      try {
        touch();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return "the stream ended";
          touch();
          parser.push(value);
        }
      } finally {
        reader.releaseLock();
      }
    } catch (e) {
      if (this.#stopped) return null;
      return describeError(e);
    } finally {
      if (idle !== null) clearTimeout(idle);
      conn.abort();
      if (this.#conn === conn) this.#conn = null;
    }
  }
}
