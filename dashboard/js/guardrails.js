// @ts-check
/// <reference lib="dom" />
/**
 * The guardrails view: the proxy's refusals (policy denials, rate limits, pinning), the tool-pin
 * changes it recorded (`audit/tools_changed` events) and the pins file with its pending changes.
 * Each refusal and change opens its exchange in the detail pane.
 *
 * @module
 */
import { describeError, isAbort } from "./api.js";
import { cut, el, formatRowTime, formatTime } from "./dom.js";
import { exchangesPage, isObject, pinsView, recordsPage } from "./guards.js";

/** @typedef {import("./guards.js").ExchangeSummaryView} ExchangeSummaryView */
/** @typedef {import("./guards.js").RecordView} RecordView */

const LIMIT = 50;

/**
 * The tool changes an `audit/tools_changed` event lists: `name (change)`.
 * @param {unknown} params
 * @returns {{ server: string, mode: string, changes: string[] }}
 */
export function describeToolsChanged(params) {
  if (!isObject(params)) return { server: "", mode: "", changes: [] };
  const server = typeof params.server_id === "string" ? params.server_id : "";
  const mode = typeof params.mode === "string" ? params.mode : "";
  const list = Array.isArray(params.changes) ? params.changes : [];
  const changes = list.slice(0, 50).map((c) => {
    if (!isObject(c)) return "?";
    const name = typeof c.name === "string" ? c.name : "?";
    return typeof c.change === "string" ? `${name} (${c.change})` : name;
  });
  if (list.length > 50) changes.push(`… ${list.length - 50} more`);
  return { server, mode, changes };
}

/**
 * @typedef {object} GuardrailsOptions
 * @property {import("./api.js").Api} api
 * @property {HTMLTableSectionElement} refusals
 * @property {HTMLTableSectionElement} changes
 * @property {HTMLTableSectionElement} pins
 * @property {HTMLTableSectionElement} pending
 * @property {HTMLElement} pinsNote the pins file's path or why it cannot be read
 * @property {HTMLElement} message
 * @property {(key: string) => void} onOpen opens an exchange
 */

export class GuardrailsView {
  /** @type {GuardrailsOptions} */
  #o;
  /** @type {AbortController} */
  #abort = new AbortController();

  /** @param {GuardrailsOptions} options */
  constructor(options) {
    this.#o = options;
  }

  close() {
    this.#abort.abort();
  }

  /** Shows the view: reads everything again. */
  async show() {
    this.#abort.abort();
    this.#abort = new AbortController();
    const signal = this.#abort.signal;
    const { api, message } = this.#o;
    message.hidden = true;
    /** @param {string} decision */
    const refusals = (decision) =>
      api.get(
        "/api/v1/exchanges",
        new URLSearchParams({ decision, limit: String(LIMIT) }),
        exchangesPage,
        signal,
      );
    const results = await Promise.allSettled([
      Promise.all([refusals("deny"), refusals("rate_limited")]).then(([a, b]) =>
        this.#renderRefusals([...a.items, ...b.items])
      ),
      api.get(
        "/api/v1/records",
        new URLSearchParams({ method: "audit/tools_changed", limit: String(LIMIT) }),
        recordsPage,
        signal,
      ).then((page) => this.#renderChanges(page.items)),
      api.get("/api/v1/pins", null, pinsView, signal).then((view) => this.#renderPins(view)),
    ]);
    const failed = results.flatMap((r) =>
      r.status === "rejected" && !isAbort(r.reason) ? [describeError(r.reason)] : []
    );
    if (failed.length > 0) {
      message.textContent = `Could not load everything: ${failed.join("; ")}`;
      message.hidden = false;
    }
  }

  /** @param {ExchangeSummaryView[]} items */
  #renderRefusals(items) {
    const sorted = items.sort((a, b) => b.ts.localeCompare(a.ts)).slice(0, LIMIT);
    const tbody = this.#o.refusals;
    if (sorted.length === 0) {
      tbody.replaceChildren(emptyRow(5, "No refusals recorded."));
      return;
    }
    tbody.replaceChildren(...sorted.map((s) => {
      const d = s.decision;
      const what = d === null
        ? s.state
        : d.enforced === false
        ? `monitor: would ${d.action.replace("_", " ")}`
        : d.by === "pinning"
        ? "denied by pinning"
        : d.action === "rate_limited"
        ? "rate limited"
        : "denied";
      const rule = d === null ? "" : d.rule === null ? "" : ` (rule ${d.rule})`;
      return this.#openRow("refusal-row", s.key, [
        el("time", {
          text: formatRowTime(s.ts),
          attrs: { datetime: s.ts, title: formatTime(s.ts) },
        }),
        what,
        el("span", {
          cls: "mono",
          text: s.tool_name === null ? (s.method ?? "") : `${s.method ?? ""} · ${s.tool_name}`,
        }),
        cut(s.client_name ?? s.client_id, 60),
        `${cut(d?.reason ?? s.error_message ?? "", 160)}${rule}`,
      ]);
    }));
  }

  /** @param {RecordView[]} records */
  #renderChanges(records) {
    const tbody = this.#o.changes;
    if (records.length === 0) {
      tbody.replaceChildren(emptyRow(4, "No tool definition changed since it was pinned."));
      return;
    }
    tbody.replaceChildren(...records.map((r) => {
      const c = describeToolsChanged(r.params);
      const tr = this.#openRow("pin-change-row", null, [
        el("time", {
          text: formatRowTime(r.ts),
          attrs: { datetime: r.ts, title: formatTime(r.ts) },
        }),
        el("span", { cls: "mono", text: c.server || r.server_id }),
        c.mode,
        el("span", { cls: "mono", text: c.changes.join(", ") }),
      ], () => this.#openRecord(r.seq));
      tr.dataset.seq = String(r.seq);
      return tr;
    }));
  }

  /**
   * Opens the exchange holding the record at `seq` (an event is an exchange of its own).
   * @param {number} seq
   */
  async #openRecord(seq) {
    try {
      const page = await this.#o.api.get(
        "/api/v1/exchanges",
        new URLSearchParams({
          from_seq: String(seq),
          to_seq: String(seq),
          kind: "event",
          limit: "1",
        }),
        exchangesPage,
        this.#abort.signal,
      );
      const first = page.items[0];
      if (first !== undefined) this.#o.onOpen(first.key);
    } catch (e) {
      if (isAbort(e)) return;
      this.#o.message.textContent = `Could not open record ${seq}: ${describeError(e)}`;
      this.#o.message.hidden = false;
    }
  }

  /** @param {import("./guards.js").PinsViewView} view */
  #renderPins(view) {
    const { pins, pending, pinsNote } = this.#o;
    pinsNote.textContent = view.error !== null
      ? `The pins file cannot be read: ${view.error}`
      : view.path === null
      ? "Tool pinning is off, or no pins file is known."
      : `Pins file: ${view.path}`;
    pins.replaceChildren(
      ...(view.pins.length === 0 ? [emptyRow(4, "No tools pinned.")] : view.pins.map((p) =>
        el(
          "tr",
          {},
          el("td", {}, el("span", { cls: "mono", text: p.server })),
          el("td", {}, el("span", { cls: "mono", text: p.name })),
          el(
            "td",
            {},
            el("span", { cls: "mono", text: p.digest.slice(0, 16), attrs: { title: p.digest } }),
          ),
          el("td", { text: formatTime(p.pinned_at) }),
        )
      )),
    );
    pending.replaceChildren(
      ...(view.pending.length === 0
        ? [emptyRow(4, "No changes waiting for approval.")]
        : view.pending.map((p) =>
          el(
            "tr",
            {},
            el("td", {}, el("span", { cls: "mono", text: p.server })),
            el("td", {}, el("span", { cls: "mono", text: p.name })),
            el("td", { text: p.change }),
            el("td", { text: formatTime(p.seen_at) }),
          )
        )),
    );
  }

  /**
   * A row that opens an exchange when clicked or on Enter.
   * @param {string} testid
   * @param {string | null} key
   * @param {(Node | string)[]} cells
   * @param {() => void} [open]
   * @returns {HTMLTableRowElement}
   */
  #openRow(testid, key, cells, open) {
    const [first, ...rest] = cells;
    const action = open ?? (() => {
      if (key !== null) this.#o.onOpen(key);
    });
    const button = el("button", { cls: "link-button", attrs: { type: "button" } });
    if (first !== undefined) button.append(first);
    button.addEventListener("click", action);
    const tr = el(
      "tr",
      { testid, cls: "clickable" },
      el("td", {}, button),
      ...rest.map((c) => el("td", {}, c)),
    );
    if (key !== null) tr.dataset.key = key;
    tr.addEventListener("click", (e) => {
      if (e.target instanceof Element && e.target.closest("button") === null) action();
    });
    return tr;
  }
}

/**
 * @param {number} columns
 * @param {string} text
 * @returns {HTMLTableRowElement}
 */
function emptyRow(columns, text) {
  return el("tr", {}, el("td", { cls: "muted", text, attrs: { colspan: String(columns) } }));
}
