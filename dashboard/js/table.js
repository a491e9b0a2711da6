// @ts-check
/// <reference lib="dom" />
/**
 * The live table of exchanges.
 *
 * - Rows are kept in chunks, one per page read, each with the page's cursors, newest chunk first.
 *   At most {@link MAX_ROWS} rows stay in the DOM: scrolling down past that drops the newest
 *   chunks (loaded again through `after=` when scrolling back up), new rows past it drop the
 *   oldest (loaded again through `before=`).
 * - New exchanges: each stream event schedules one read of `after=<newest cursor>` (coalesced to
 *   one read per 250 ms, one in flight). An answer event whose session and JSON-RPC id match a
 *   `pending` row refreshes that row from `/exchanges/{key}`.
 * - Paused while the user reads — scrolled away from the top, a row selected, or the pointer over
 *   the table: new rows are held (at most {@link MAX_HELD}; beyond, the table reloads when shown)
 *   and the "n new" button shows them.
 *
 * @module
 */
import { describeError, HttpError, isAbort } from "./api.js";
import { cut, el, formatDirection, formatMs, formatRowTime, formatTime } from "./dom.js";
import { exchangeDetail, exchangesPage } from "./guards.js";
import { filterParams } from "./url_state.js";

/** @typedef {import("./guards.js").ExchangeSummaryView} ExchangeSummaryView */
/** @typedef {import("./guards.js").ExchangesPageView} ExchangesPageView */
/** @typedef {import("./guards.js").StreamItem} StreamItem */
/** @typedef {import("./url_state.js").Filters} Filters */
/** @typedef {{ keys: string[], older: string | null, newer: string | null }} Chunk */
/** @typedef {{ summary: ExchangeSummaryView, tr: HTMLTableRowElement }} Row */

/** Rows kept in the DOM. */
export const MAX_ROWS = 2000;
/** New rows held while paused. */
export const MAX_HELD = 1000;
const PAGE = 100;
const COALESCE_MS = 250;
/** Catch-up reads per wake: beyond this many pages behind, the table reloads instead. */
const MAX_CATCH_UP_PAGES = 10;
const MAX_RECENT_ANSWERS = 2000;
const MAX_REFRESH_IN_FLIGHT = 4;

const STATE_TEXT = {
  ok: "ok",
  error: "error",
  denied: "denied",
  rate_limited: "rate limited",
  pending: "pending",
  none: "—",
};

/**
 * The pairing key of a request and its answer.
 * @param {string | null} session
 * @param {unknown} id
 * @returns {string}
 */
export function correlation(session, id) {
  return `${session ?? ""}\u0001${typeof id}:${String(id)}`;
}

/**
 * The status cell's second line: why it ended as it did.
 * @param {ExchangeSummaryView} s
 * @returns {string}
 */
function statusNote(s) {
  if (s.error_message !== null) return s.error_message;
  const d = s.decision;
  if (d === null) return s.state === "none" ? s.kind : "";
  if (d.enforced === false) return `monitor: would ${d.action.replace("_", " ")} (${d.reason})`;
  if (s.state === "denied" || s.state === "rate_limited") return d.reason;
  if (d.action === "filter") return d.reason;
  return "";
}

/**
 * @typedef {object} TableOptions
 * @property {import("./api.js").Api} api
 * @property {HTMLElement} wrap the scroll container
 * @property {HTMLTableSectionElement} tbody
 * @property {HTMLButtonElement} newMarker
 * @property {HTMLElement} topSentinel
 * @property {HTMLElement} bottomSentinel
 * @property {HTMLElement} historyEnd
 * @property {HTMLElement} message where load errors and "nothing matches" are said
 * @property {(key: string) => void} onSelect a row was selected
 * @property {(paused: boolean) => void} onPause
 */

export class ExchangeTable {
  /** @type {TableOptions} */
  #o;
  /** @type {Filters} */
  #filters = {};
  /** Bumped by every reload: answers to an older generation are dropped. */
  #gen = 0;
  /** @type {Chunk[]} */
  #chunks = [];
  /** @type {Map<string, Row>} */
  #rows = new Map();
  /** New rows read while paused, newest first. */
  /** @type {ExchangeSummaryView[]} */
  #held = [];
  /** @type {{ older: string | null, newer: string | null }} */
  #heldCursors = { older: null, newer: null };
  /** More arrived while paused than are held, or while the newest rows were dropped. */
  #stale = false;
  /** The newest rows were dropped from the DOM (scrolled far down). */
  #detached = false;
  /** The cursor new rows are read after (the newest row's). */
  /** @type {string | null} */
  #newest = null;
  #loadingOlder = false;
  #loadingNewer = false;
  /** @type {ReturnType<typeof setTimeout> | null} */
  #catchUpTimer = null;
  #catchUpRunning = false;
  #catchUpAgain = false;
  #lastCatchUp = 0;
  /** Pending rows by the correlation of the answer they wait for. */
  /** @type {Map<string, string>} */
  #pending = new Map();
  /** Answers seen on the stream lately (an answer may arrive before its request's row). */
  /** @type {Set<string>} */
  #recentAnswers = new Set();
  /** @type {string[]} */
  #refreshQueue = [];
  #refreshing = 0;
  /** @type {string | null} */
  #selected = null;
  #pointerInside = false;
  #paused = false;
  /** @type {AbortController} */
  #abort = new AbortController();
  /** @type {IntersectionObserver} */
  #observer;

  /** @param {TableOptions} options */
  constructor(options) {
    this.#o = options;
    const { wrap, newMarker } = options;
    wrap.addEventListener("pointerenter", () => {
      this.#pointerInside = true;
      this.#updatePause();
    });
    wrap.addEventListener("pointerleave", () => {
      this.#pointerInside = false;
      this.#updatePause();
    });
    wrap.addEventListener("scroll", () => {
      if (wrap.scrollTop <= 2 && !this.#detached && this.#held.length > 0) this.showNew();
      this.#updatePause();
    }, { passive: true });
    newMarker.addEventListener("click", () => this.showNew());
    options.tbody.addEventListener("click", (e) => {
      const tr = e.target instanceof Element ? e.target.closest("tr[data-key]") : null;
      if (tr instanceof HTMLTableRowElement && tr.dataset.key !== undefined) {
        this.select(tr.dataset.key, false);
      }
    });
    options.tbody.addEventListener("keydown", (e) => {
      if (e.key !== "Enter" && e.key !== " ") return;
      const tr = e.target instanceof Element ? e.target.closest("tr[data-key]") : null;
      if (tr instanceof HTMLTableRowElement && tr.dataset.key !== undefined) {
        e.preventDefault();
        this.select(tr.dataset.key, false);
      }
    });
    this.#observer = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        if (!entry.isIntersecting) continue;
        if (entry.target === options.bottomSentinel) void this.#loadOlder();
        if (entry.target === options.topSentinel) void this.#loadNewer();
      }
    }, { root: wrap, rootMargin: "300px 0px" });
    this.#observer.observe(options.bottomSentinel);
    this.#observer.observe(options.topSentinel);
  }

  /**
   * The table was hidden or shown (another view): a hidden table gets no `pointerleave`.
   * @param {boolean} visible
   */
  setVisible(visible) {
    if (!visible) this.#pointerInside = false;
    this.#updatePause();
  }

  /**
   * The key of the shown exchange holding the record at `seq`, if any.
   * @param {number} seq
   * @returns {string | null}
   */
  keyForSeq(seq) {
    for (const [key, row] of this.#rows) {
      if (row.summary.request_seq === seq || row.summary.answer_seq === seq) return key;
    }
    return null;
  }

  /** @returns {boolean} */
  get paused() {
    return this.#paused;
  }

  /** @returns {number} */
  get rowCount() {
    return this.#rows.size;
  }

  /**
   * Shows the first page for these filters, from the newest exchange.
   * @param {Filters} filters
   * @returns {Promise<void>} settles once the page is rendered (or its error shown)
   */
  async reload(filters) {
    this.#filters = filters;
    const gen = ++this.#gen;
    this.#abort.abort();
    this.#abort = new AbortController();
    this.#clearRows();
    this.#say(null);
    this.#o.historyEnd.hidden = true;
    try {
      const page = await this.#read(new URLSearchParams({ limit: String(PAGE) }));
      if (gen !== this.#gen) return;
      this.#newest = page.newer;
      this.#appendChunk(page);
      if (page.items.length === 0) this.#say(this.#emptyText());
      this.#afterAppend();
      this.scheduleCatchUp();
    } catch (e) {
      if (gen === this.#gen && !isAbort(e)) {
        this.#say(`Could not load exchanges: ${describeError(e)}`);
      }
    }
  }

  /** Stops background reads. */
  close() {
    this.#abort.abort();
    this.#observer.disconnect();
    if (this.#catchUpTimer !== null) clearTimeout(this.#catchUpTimer);
  }

  /**
   * A record arrived on the stream.
   * @param {StreamItem} item
   */
  onStreamItem(item) {
    if (item.kind === "response" || item.kind === "error") {
      const corr = correlation(item.session, item.jsonrpc_id);
      this.#recentAnswers.add(corr);
      if (this.#recentAnswers.size > MAX_RECENT_ANSWERS) {
        const oldest = this.#recentAnswers.values().next();
        if (oldest.done !== true) this.#recentAnswers.delete(oldest.value);
      }
      const key = this.#pending.get(corr);
      if (key !== undefined) this.#queueRefresh(key);
    }
    this.scheduleCatchUp();
  }

  /** The stream reconnected without resuming: read what may have been missed. */
  resync() {
    for (const key of [...this.#pending.values()].slice(-50)) this.#queueRefresh(key);
    this.scheduleCatchUp();
  }

  /** Reads new exchanges soon: at most one read per 250 ms and one at a time. */
  scheduleCatchUp() {
    if (this.#catchUpRunning) {
      this.#catchUpAgain = true;
      return;
    }
    if (this.#catchUpTimer !== null) return;
    const wait = Math.max(0, this.#lastCatchUp + COALESCE_MS - performance.now());
    this.#catchUpTimer = setTimeout(() => {
      this.#catchUpTimer = null;
      void this.#catchUp();
    }, wait);
  }

  async #catchUp() {
    if (this.#detached) {
      // The newest rows are not in the DOM: say that newer ones exist; the marker reloads.
      this.#stale = true;
      this.#renderMarker();
      return;
    }
    const gen = this.#gen;
    this.#catchUpRunning = true;
    this.#lastCatchUp = performance.now();
    try {
      for (let i = 0; i < MAX_CATCH_UP_PAGES; i++) {
        const params = new URLSearchParams({ limit: String(PAGE) });
        if (this.#newest !== null) params.set("after", this.#newest);
        const page = await this.#read(params);
        if (gen !== this.#gen) return;
        const fresh = page.items.filter((s) => !this.#rows.has(s.key) && !this.#isHeld(s.key));
        if (page.newer !== null) this.#newest = page.newer;
        if (fresh.length > 0) this.#arrived({ items: fresh, older: page.older, newer: page.newer });
        // Without a cursor the read was the newest page: nothing newer to read.
        if (page.items.length < PAGE || this.#newest === null) return;
      }
      // Far behind: the rows in between are not read one page at a time.
      this.#stale = true;
      this.#renderMarker();
      if (!this.#paused) void this.reload(this.#filters);
    } catch (e) {
      if (gen === this.#gen && !isAbort(e)) {
        this.#say(`Could not load new exchanges: ${describeError(e)}`);
      }
    } finally {
      this.#catchUpRunning = false;
      if (this.#catchUpAgain) {
        this.#catchUpAgain = false;
        this.scheduleCatchUp();
      }
    }
  }

  /**
   * New exchanges read: shown now, or held while the user reads.
   * @param {ExchangesPageView} page
   */
  #arrived(page) {
    this.#say(null);
    if (this.#paused) {
      if (this.#held.length === 0) this.#heldCursors.older = page.older;
      this.#heldCursors.newer = page.newer;
      this.#held = [...page.items, ...this.#held];
      if (this.#held.length > MAX_HELD) {
        this.#held = [];
        this.#stale = true;
      }
      this.#renderMarker();
      return;
    }
    this.#prependChunk(page);
  }

  /** @param {string} key */
  #isHeld(key) {
    return this.#held.some((s) => s.key === key);
  }

  /** Shows the held rows (the "n new" button, or scrolling to the top). */
  showNew() {
    if (this.#stale || this.#detached) {
      this.#stale = false;
      this.#held = [];
      void this.reload(this.#filters).then(() => {
        this.#o.wrap.scrollTop = 0;
      });
      return;
    }
    if (this.#held.length === 0) return;
    const items = this.#held;
    const { older, newer } = this.#heldCursors;
    this.#held = [];
    this.#prependChunk({ items, older, newer });
    this.#o.wrap.scrollTop = 0;
    this.#renderMarker();
  }

  /**
   * @param {ExchangesPageView} page
   * @param {boolean} [keepView] keep what is in view even at the top (rows read by scrolling up)
   */
  #prependChunk(page, keepView = false) {
    if (page.items.length === 0) return;
    // Rows into an empty table: the new chunk's cursor is the one to read older rows from.
    const wasEmpty = this.#rows.size === 0;
    if (wasEmpty) this.#chunks = [];
    const wrap = this.#o.wrap;
    const atTop = wrap.scrollTop <= 2;
    const before = wrap.scrollHeight;
    const fragment = document.createDocumentFragment();
    for (const s of page.items) fragment.append(this.#addRow(s));
    this.#o.tbody.prepend(fragment);
    this.#chunks.unshift({
      keys: page.items.map((s) => s.key),
      older: page.older,
      newer: page.newer,
    });
    // Rows added above what the user looks at must not move it (overflow-anchor is off).
    if (keepView || !atTop) wrap.scrollTop += wrap.scrollHeight - before;
    if (wasEmpty) this.#showEnd(page.older);
    this.#trimOldest();
  }

  /**
   * Shows the end marker when nothing older is left to read.
   * @param {string | null} older the last chunk's cursor
   */
  #showEnd(older) {
    this.#o.historyEnd.hidden = older !== null;
    this.#o.historyEnd.textContent = this.#rows.size === 0
      ? "Nothing to show."
      : "Start of the log: nothing older matches.";
  }

  /** @param {ExchangesPageView} page */
  #appendChunk(page) {
    const fragment = document.createDocumentFragment();
    for (const s of page.items) {
      if (!this.#rows.has(s.key)) fragment.append(this.#addRow(s));
    }
    this.#o.tbody.append(fragment);
    const last = this.#chunks.at(-1);
    if (page.items.length === 0 && last !== undefined) {
      // Nothing matched in what the server read this time: go on from where it stopped.
      last.older = page.older;
    } else {
      this.#chunks.push({
        keys: page.items.map((s) => s.key),
        older: page.older,
        newer: page.newer,
      });
    }
    this.#showEnd(page.older);
    this.#trimNewest();
  }

  /** After rows were added at the bottom: keep reading while the sentinel is in view. */
  #afterAppend() {
    queueMicrotask(() => {
      if (this.#near(this.#o.bottomSentinel)) void this.#loadOlder();
    });
  }

  /**
   * @param {HTMLElement} sentinel
   * @returns {boolean}
   */
  #near(sentinel) {
    const box = this.#o.wrap.getBoundingClientRect();
    const at = sentinel.getBoundingClientRect();
    return at.top < box.bottom + 300 && at.bottom > box.top - 300 && box.height > 0;
  }

  async #loadOlder() {
    if (this.#loadingOlder) return;
    const last = this.#chunks.at(-1);
    if (last === undefined || last.older === null) return;
    const gen = this.#gen;
    this.#loadingOlder = true;
    try {
      const page = await this.#read(
        new URLSearchParams({ limit: String(PAGE), before: last.older }),
      );
      if (gen !== this.#gen) return;
      this.#appendChunk(page);
    } catch (e) {
      if (gen === this.#gen && !isAbort(e)) {
        this.#say(`Could not load older exchanges: ${describeError(e)}`);
      }
      return;
    } finally {
      this.#loadingOlder = false;
    }
    this.#afterAppend();
  }

  async #loadNewer() {
    if (this.#loadingNewer || !this.#detached) return;
    const first = this.#chunks[0];
    if (first === undefined || first.newer === null) return;
    const gen = this.#gen;
    this.#loadingNewer = true;
    try {
      const page = await this.#read(
        new URLSearchParams({ limit: String(PAGE), after: first.newer }),
      );
      if (gen !== this.#gen) return;
      const fresh = page.items.filter((s) => !this.#rows.has(s.key));
      this.#prependChunk({ items: fresh, older: page.older, newer: page.newer }, true);
      if (page.items.length < PAGE) {
        this.#detached = false;
        this.#o.topSentinel.hidden = true;
        this.#newest = page.newer ?? first.newer;
        this.#renderMarker();
        this.#updatePause();
        this.scheduleCatchUp();
      } else {
        queueMicrotask(() => {
          if (this.#near(this.#o.topSentinel)) void this.#loadNewer();
        });
      }
    } catch (e) {
      if (gen === this.#gen && !isAbort(e)) {
        this.#say(`Could not load newer exchanges: ${describeError(e)}`);
      }
    } finally {
      this.#loadingNewer = false;
    }
  }

  /** Too many rows after adding new ones: drop the oldest chunks (scrolling loads them again). */
  #trimOldest() {
    while (this.#rows.size > MAX_ROWS && this.#chunks.length > 1) {
      const keep = this.#chunks.at(-2);
      if (keep === undefined || keep.older === null) return;
      const gone = this.#chunks.pop();
      for (const key of gone?.keys ?? []) this.#dropRow(key);
      this.#o.historyEnd.hidden = true;
    }
  }

  /** Too many rows after reading older ones: drop the newest chunks. */
  #trimNewest() {
    const wrap = this.#o.wrap;
    while (this.#rows.size > MAX_ROWS && this.#chunks.length > 1) {
      const keep = this.#chunks[1];
      if (keep === undefined || keep.newer === null) return;
      const before = wrap.scrollHeight;
      const gone = this.#chunks.shift();
      for (const key of gone?.keys ?? []) this.#dropRow(key);
      wrap.scrollTop -= before - wrap.scrollHeight;
      this.#detached = true;
      this.#o.topSentinel.hidden = false;
    }
    this.#updatePause();
  }

  /**
   * @param {ExchangeSummaryView} s
   * @returns {HTMLTableRowElement}
   */
  #addRow(s) {
    const tr = el("tr", {
      testid: "exchange-row",
      data: { key: s.key, state: s.state },
      attrs: { tabindex: "-1" },
    });
    this.#fillRow(tr, s);
    if (s.key === this.#selected) this.#markSelected(tr, true);
    this.#rows.set(s.key, { summary: s, tr });
    this.#trackPending(s);
    if (this.#rows.size === 1 && this.#selected === null) tr.tabIndex = 0;
    return tr;
  }

  /** @param {string} key */
  #dropRow(key) {
    const row = this.#rows.get(key);
    if (row === undefined) return;
    row.tr.remove();
    this.#rows.delete(key);
    const s = row.summary;
    const corr = correlation(s.session, s.jsonrpc_id);
    if (this.#pending.get(corr) === key) this.#pending.delete(corr);
  }

  /** @param {ExchangeSummaryView} s */
  #trackPending(s) {
    const corr = correlation(s.session, s.jsonrpc_id);
    if (s.state === "pending" && s.kind === "request") {
      this.#pending.set(corr, s.key);
      // Its answer may have come on the stream before this row was read.
      if (this.#recentAnswers.has(corr)) this.#queueRefresh(s.key);
    } else if (this.#pending.get(corr) === s.key) {
      this.#pending.delete(corr);
    }
  }

  /**
   * @param {HTMLTableRowElement} tr
   * @param {ExchangeSummaryView} s
   */
  #fillRow(tr, s) {
    const cell = (/** @type {string} */ col, /** @type {(Node | string)[]} */ ...content) =>
      el("td", { data: { col } }, ...content);
    const note = statusNote(s);
    tr.replaceChildren(
      cell(
        "time",
        el("time", {
          text: formatRowTime(s.ts),
          attrs: { datetime: s.ts, title: formatTime(s.ts) },
        }),
      ),
      cell("direction", formatDirection(s.direction)),
      cell("method", el("span", { cls: "mono", text: s.method ?? `(${s.kind})` })),
      cell("tool", el("span", { cls: "mono", text: s.tool_name ?? "" })),
      cell("client", el("span", { text: cut(s.client_name ?? s.client_id, 80) })),
      cell("duration", formatMs(s.duration_ms)),
      cell(
        "status",
        el("span", { cls: `state state-${s.state}`, text: STATE_TEXT[s.state] }),
        note === "" ? "" : el("span", { cls: "state-note", text: cut(note, 120) }),
      ),
    );
    tr.dataset.state = s.state;
  }

  /** @param {string} key */
  #queueRefresh(key) {
    if (!this.#refreshQueue.includes(key)) this.#refreshQueue.push(key);
    this.#pumpRefresh();
  }

  #pumpRefresh() {
    while (this.#refreshing < MAX_REFRESH_IN_FLIGHT && this.#refreshQueue.length > 0) {
      const key = this.#refreshQueue.shift();
      if (key === undefined) return;
      this.#refreshing++;
      void this.#refresh(key).finally(() => {
        this.#refreshing--;
        this.#pumpRefresh();
      });
    }
  }

  /**
   * Reads one exchange again (its answer arrived) and updates its row, shown or held.
   * @param {string} key
   */
  async #refresh(key) {
    const gen = this.#gen;
    try {
      const detail = await this.#o.api.get(
        `/api/v1/exchanges/${encodeURIComponent(key)}`,
        null,
        exchangeDetail,
        this.#abort.signal,
      );
      if (gen !== this.#gen) return;
      const row = this.#rows.get(key);
      if (row !== undefined) {
        row.summary = detail;
        this.#fillRow(row.tr, detail);
        this.#trackPending(detail);
        return;
      }
      const i = this.#held.findIndex((s) => s.key === key);
      if (i !== -1) this.#held[i] = detail;
    } catch (e) {
      if (e instanceof HttpError && e.status === 404) return;
      if (!isAbort(e)) console.warn("could not refresh an exchange:", describeError(e));
    }
  }

  /**
   * @param {URLSearchParams} extra
   * @returns {Promise<ExchangesPageView>}
   */
  #read(extra) {
    const params = filterParams(this.#filters);
    for (const [k, v] of extra) params.set(k, v);
    return this.#o.api.get("/api/v1/exchanges", params, exchangesPage, this.#abort.signal);
  }

  #clearRows() {
    this.#o.tbody.replaceChildren();
    this.#rows.clear();
    this.#chunks = [];
    this.#pending.clear();
    this.#held = [];
    this.#heldCursors = { older: null, newer: null };
    this.#refreshQueue = [];
    this.#stale = false;
    this.#detached = false;
    this.#newest = null;
    this.#o.topSentinel.hidden = true;
    this.#o.wrap.scrollTop = 0;
    this.#renderMarker();
    this.#updatePause();
  }

  /** @returns {string} */
  #emptyText() {
    return Object.keys(this.#filters).length > 0
      ? "No exchange matches these filters."
      : "No exchanges yet: they appear here as the proxy records them.";
  }

  /** @param {string | null} text */
  #say(text) {
    this.#o.message.textContent = text ?? "";
    this.#o.message.hidden = text === null;
  }

  #renderMarker() {
    const marker = this.#o.newMarker;
    const n = this.#held.length;
    if (this.#stale) {
      marker.textContent = "Newer exchanges — show the newest";
      marker.hidden = false;
    } else if (n > 0) {
      marker.textContent = `${n} new`;
      marker.hidden = false;
    } else {
      marker.textContent = "";
      marker.hidden = true;
    }
  }

  #updatePause() {
    const paused = this.#o.wrap.scrollTop > 2 || this.#selected !== null || this.#pointerInside ||
      this.#detached;
    if (paused === this.#paused) return;
    this.#paused = paused;
    this.#o.onPause(paused);
    if (!paused && (this.#held.length > 0 || this.#stale)) this.showNew();
  }

  /**
   * Selects a row and tells the page (which opens the detail pane).
   * @param {string} key
   * @param {boolean} focus move the keyboard focus to the row
   */
  select(key, focus) {
    this.highlight(key, focus);
    this.#o.onSelect(key);
  }

  /**
   * Marks a row selected without telling the page (the pane was opened elsewhere).
   * @param {string} key
   * @param {boolean} focus
   */
  highlight(key, focus) {
    if (this.#selected !== null && this.#selected !== key) {
      const old = this.#rows.get(this.#selected);
      if (old !== undefined) this.#markSelected(old.tr, false);
    }
    this.#selected = key;
    const row = this.#rows.get(key);
    if (row !== undefined) {
      this.#markSelected(row.tr, true);
      row.tr.scrollIntoView({ block: "nearest" });
      if (focus) row.tr.focus({ preventScroll: true });
    }
    this.#updatePause();
  }

  /** Clears the selection without telling the page (the pane was closed). */
  unselect() {
    if (this.#selected === null) return;
    const row = this.#rows.get(this.#selected);
    if (row !== undefined) this.#markSelected(row.tr, false);
    this.#selected = null;
    this.#updatePause();
  }

  /**
   * @param {HTMLTableRowElement} tr
   * @param {boolean} on
   */
  #markSelected(tr, on) {
    tr.classList.toggle("is-selected", on);
    if (on) {
      tr.setAttribute("aria-current", "true");
      for (const other of this.#o.tbody.querySelectorAll("tr[tabindex='0']")) {
        if (other instanceof HTMLElement) other.tabIndex = -1;
      }
      tr.tabIndex = 0;
    } else {
      tr.removeAttribute("aria-current");
    }
  }

  /**
   * `j`/`k`: the next or previous row.
   * @param {1 | -1} step
   */
  move(step) {
    const rows = [...this.#o.tbody.rows];
    if (rows.length === 0) return;
    const at = this.#selected === null
      ? -1
      : rows.findIndex((r) => r.dataset.key === this.#selected);
    const next = at === -1 ? (step === 1 ? 0 : rows.length - 1) : at + step;
    const tr = rows[Math.max(0, Math.min(rows.length - 1, next))];
    if (tr?.dataset.key !== undefined) this.select(tr.dataset.key, true);
  }
}
