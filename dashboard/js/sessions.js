// @ts-check
/// <reference lib="dom" />
/**
 * The sessions view: the sessions most recently active first; one session's exchanges oldest
 * first on a vertical timeline, each duration drawn as a bar.
 *
 * @module
 */
import { describeError, isAbort } from "./api.js";
import { cut, el, formatCount, formatMs, formatRowTime, formatTime } from "./dom.js";
import { exchangesPage, sessionsPage } from "./guards.js";

/** @typedef {import("./guards.js").SessionSummary} SessionSummary */
/** @typedef {import("./guards.js").ExchangeSummaryView} ExchangeSummaryView */

const SESSIONS_PAGE = 50;
const TIMELINE_PAGE = 200;
/** Sessions listed at most (older ones are not offered beyond). */
const MAX_SESSIONS = 1000;
/** Timeline items kept (older ones load on demand up to this). */
const MAX_TIMELINE = 2000;

/**
 * @typedef {object} SessionsOptions
 * @property {import("./api.js").Api} api
 * @property {HTMLTableSectionElement} tbody the sessions list
 * @property {HTMLButtonElement} more loads older sessions
 * @property {HTMLElement} message
 * @property {HTMLElement} heading the timeline's heading
 * @property {HTMLOListElement} timeline
 * @property {HTMLButtonElement} earlier loads earlier exchanges of the session
 * @property {(key: string) => void} onOpen opens an exchange
 */

export class SessionsView {
  /** @type {SessionsOptions} */
  #o;
  /** @type {string | null} */
  #older = null;
  /** @type {string | null} */
  #session = null;
  /** @type {string | null} */
  #timelineOlder = null;
  /** @type {ExchangeSummaryView[]} oldest first */
  #items = [];
  /** @type {AbortController} */
  #abort = new AbortController();

  /** @param {SessionsOptions} options */
  constructor(options) {
    this.#o = options;
    options.more.addEventListener("click", () => void this.#loadSessions(false));
    options.earlier.addEventListener("click", () => void this.#loadTimeline(false));
  }

  /** Shows the view: reads the sessions again. */
  show() {
    return this.#loadSessions(true);
  }

  close() {
    this.#abort.abort();
  }

  /** @param {boolean} fresh */
  async #loadSessions(fresh) {
    const params = new URLSearchParams({ limit: String(SESSIONS_PAGE) });
    if (!fresh) {
      if (this.#older === null) return;
      params.set("before", this.#older);
    }
    const { tbody, more, message } = this.#o;
    try {
      const page = await this.#o.api.get(
        "/api/v1/sessions",
        params,
        sessionsPage,
        this.#abort.signal,
      );
      if (fresh) tbody.replaceChildren();
      for (const s of page.items) tbody.append(this.#row(s));
      const full = tbody.rows.length >= MAX_SESSIONS;
      this.#older = full ? null : page.older;
      more.hidden = this.#older === null;
      message.hidden = tbody.rows.length > 0;
      message.textContent = tbody.rows.length > 0
        ? ""
        : this.#older === null
        ? "No sessions in the log yet."
        : "No sessions in the newest records read: use Older sessions to read further back.";
    } catch (e) {
      if (isAbort(e)) return;
      message.hidden = false;
      message.textContent = `Could not load sessions: ${describeError(e)}`;
    }
  }

  /**
   * @param {SessionSummary} s
   * @returns {HTMLTableRowElement}
   */
  #row(s) {
    const open = el("button", {
      cls: "link-button mono",
      text: cut(s.session, 40),
      attrs: { type: "button", title: s.session },
    });
    open.addEventListener("click", () => void this.select(s.session));
    const tr = el(
      "tr",
      { testid: "session-row", data: { session: s.session } },
      el("td", {}, open),
      el("td", { text: cut(s.client_name ?? s.client_id, 60) }),
      el("td", { text: s.transport ?? "—" }),
      el(
        "td",
        {},
        el("time", { text: formatRowTime(s.first_ts), attrs: { datetime: s.first_ts } }),
      ),
      el("td", {}, el("time", { text: formatRowTime(s.last_ts), attrs: { datetime: s.last_ts } })),
      el("td", { cls: "num", text: formatCount(s.calls) }),
      el("td", { cls: "num", text: formatCount(s.errors) }),
    );
    if (s.session === this.#session) tr.classList.add("is-selected");
    return tr;
  }

  /**
   * Shows one session's timeline.
   * @param {string} session
   */
  async select(session) {
    this.#session = session;
    for (const tr of this.#o.tbody.rows) {
      const on = tr.dataset.session === session;
      tr.classList.toggle("is-selected", on);
      if (on) tr.setAttribute("aria-current", "true");
      else tr.removeAttribute("aria-current");
    }
    this.#items = [];
    this.#timelineOlder = null;
    this.#o.heading.textContent = `Session ${cut(session, 60)}`;
    this.#o.timeline.replaceChildren(el("li", { cls: "muted", text: "Loading…" }));
    await this.#loadTimeline(true);
  }

  /** @param {boolean} fresh */
  async #loadTimeline(fresh) {
    const session = this.#session;
    if (session === null) return;
    const params = new URLSearchParams({ session, limit: String(TIMELINE_PAGE) });
    if (!fresh) {
      if (this.#timelineOlder === null) return;
      params.set("before", this.#timelineOlder);
    }
    try {
      const page = await this.#o.api.get(
        "/api/v1/exchanges",
        params,
        exchangesPage,
        this.#abort.signal,
      );
      if (session !== this.#session) return;
      const older = [...page.items].reverse();
      this.#items = [...older, ...this.#items].slice(-MAX_TIMELINE);
      this.#timelineOlder = this.#items.length >= MAX_TIMELINE ? null : page.older;
      this.#o.earlier.hidden = this.#timelineOlder === null;
      this.#renderTimeline();
    } catch (e) {
      if (isAbort(e)) return;
      this.#o.timeline.replaceChildren(
        el("li", { cls: "error-text", text: `Could not load the session: ${describeError(e)}` }),
      );
    }
  }

  #renderTimeline() {
    const timeline = this.#o.timeline;
    if (this.#items.length === 0) {
      timeline.replaceChildren(el("li", { cls: "muted", text: "No exchanges in this session." }));
      return;
    }
    const longest = Math.max(1, ...this.#items.map((s) => s.duration_ms ?? 0));
    timeline.replaceChildren(...this.#items.map((s) => {
      const bar = el("span", { cls: `duration-bar state-bg-${s.state}` });
      bar.style.width = s.duration_ms === null
        ? "0"
        : `${Math.max(1, (s.duration_ms / longest) * 100)}%`;
      const button = el(
        "button",
        { cls: "timeline-button", attrs: { type: "button" } },
        el("time", {
          cls: "timeline-time",
          text: formatRowTime(s.ts),
          attrs: { datetime: s.ts, title: formatTime(s.ts) },
        }),
        el("span", {
          cls: "timeline-what mono",
          text: s.tool_name === null
            ? (s.method ?? s.kind)
            : `${s.method ?? s.kind} · ${s.tool_name}`,
        }),
        el("span", { cls: `state state-${s.state}`, text: s.state.replace("_", " ") }),
        el("span", { cls: "bar-track" }, bar),
        el("span", { cls: "timeline-duration", text: formatMs(s.duration_ms) }),
      );
      button.addEventListener("click", () => this.#o.onOpen(s.key));
      return el("li", { testid: "timeline-item", data: { key: s.key, state: s.state } }, button);
    }));
  }
}
