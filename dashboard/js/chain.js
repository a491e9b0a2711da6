// @ts-check
/// <reference lib="dom" />
/**
 * The chain badge: the hash chain's state from `/api/v1/verify`, read every 10 s and after new
 * records (at most every 5 s). "Chain problems" is a button: it narrows the table to the records
 * around the first problem and says what was found.
 *
 * @module
 */
import { describeError } from "./api.js";
import { formatCount } from "./dom.js";
import { chainStatus } from "./guards.js";

/** @typedef {import("./guards.js").ChainStatus} ChainStatus */

const POLL_MS = 10_000;
/** While the first check of the whole log runs, its progress is read this often. */
const CHECKING_MS = 1_000;
const MIN_MS = 5_000;

/**
 * The badge's text for a status.
 * @param {ChainStatus} s
 * @returns {string}
 */
export function badgeText(s) {
  const unsigned = s.signatures_checked ? "" : " · signatures not checked";
  switch (s.state) {
    case "checking":
      return `Checking… ${formatCount(s.records)} records${unsigned}`;
    case "intact":
      return `Chain intact · ${formatCount(s.records)} records${unsigned}`;
    case "problems": {
      const p = s.first_problem;
      const where = p === null
        ? ""
        : p.seq === null
        ? ` (${p.kind})`
        : ` — first at seq ${p.seq} (${p.kind})`;
      return `Chain problems${where}${unsigned}`;
    }
    case "unavailable":
      return "Chain status unavailable";
    default: {
      /** @type {never} */
      const unknownState = s.state;
      return `Chain: ${String(unknownState)}`;
    }
  }
}

/**
 * @typedef {object} ChainOptions
 * @property {import("./api.js").Api} api
 * @property {HTMLButtonElement} badge
 * @property {HTMLElement} panel where the problem's details are said
 * @property {HTMLElement} panelText
 * @property {(seq: number, fromSeq: number, toSeq: number) => Promise<void>} showAround narrows
 *   the table to the seqs around `seq`
 */

export class ChainBadge {
  /** @type {ChainOptions} */
  #o;
  /** @type {ChainStatus | null} */
  #status = null;
  /** @type {ReturnType<typeof setTimeout> | null} */
  #timer = null;
  #last = 0;
  #inFlight = false;
  #closed = false;

  /** @param {ChainOptions} options */
  constructor(options) {
    this.#o = options;
    options.badge.dataset.state = "checking";
    options.badge.addEventListener("click", () => this.#explain());
  }

  /** Reads the status now and then every 10 s (every second while the first check runs). */
  start() {
    void this.#poll();
  }

  /** New records: read the status soon (at most every 5 s). */
  poke() {
    const due = this.#last + MIN_MS - performance.now();
    if (this.#inFlight) return;
    if (due <= 0) {
      void this.#poll();
      return;
    }
    this.#schedule(due);
  }

  close() {
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
  }

  /** @param {number} ms */
  #schedule(ms) {
    if (this.#closed) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.#poll();
    }, ms);
  }

  async #poll() {
    if (this.#inFlight || this.#closed) return;
    this.#inFlight = true;
    this.#last = performance.now();
    try {
      const s = await this.#o.api.get("/api/v1/verify", null, chainStatus);
      this.#status = s;
      this.#render(s);
    } catch (e) {
      const badge = this.#o.badge;
      badge.dataset.state = "unavailable";
      badge.textContent = "Chain status unavailable";
      badge.title = describeError(e);
    } finally {
      this.#inFlight = false;
      this.#schedule(this.#status?.state === "checking" ? CHECKING_MS : POLL_MS);
    }
  }

  /** @param {ChainStatus} s */
  #render(s) {
    const badge = this.#o.badge;
    badge.dataset.state = s.state;
    badge.textContent = badgeText(s);
    badge.title = s.state === "problems"
      ? "Show the records around the first problem"
      : `Checked ${formatCount(s.records)} records${
        s.last_seq === null ? "" : ` up to seq ${s.last_seq}`
      } · ${s.checked_at}${s.note === null ? "" : ` · ${s.note}`}`;
    if (s.state !== "problems") this.#o.panel.hidden = true;
    else if (!this.#o.panel.hidden) this.#fillPanel(s);
  }

  #explain() {
    const s = this.#status;
    if (s === null) return;
    if (s.state !== "problems" && s.state !== "unavailable") {
      this.#fillPanel(s);
      this.#o.panel.hidden = !this.#o.panel.hidden;
      return;
    }
    this.#fillPanel(s);
    this.#o.panel.hidden = false;
    const seq = s.first_problem?.seq ?? null;
    if (seq !== null) void this.#o.showAround(seq, Math.max(1, seq - 20), seq + 20);
  }

  /** @param {ChainStatus} s */
  #fillPanel(s) {
    const lines = [];
    const p = s.first_problem;
    if (p !== null) {
      lines.push(
        `First problem${p.seq === null ? "" : ` at seq ${p.seq}`} (${p.kind}): ${p.detail}`,
      );
      if (s.problems > 1) lines.push(`${formatCount(s.problems)} problems in all.`);
    } else {
      lines.push(badgeText(s));
    }
    if (s.note !== null) lines.push(s.note);
    if (!s.signatures_checked) {
      lines.push(
        "Signatures are not checked: the dashboard was given no key, so only the chain's structure is.",
      );
    }
    lines.push(`Check the whole log from a shell: ${s.command}`);
    this.#o.panelText.textContent = lines.join("\n");
  }
}
