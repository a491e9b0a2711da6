// @ts-check
/// <reference lib="dom" />
/**
 * The detail pane of one exchange: request and answer side by side as JSON trees with their
 * redacted paths marked, the guardrail decision, seqs, wire digests, signatures, and the shell
 * commands that check and export the exchange's records.
 *
 * @module
 */
import { describeError, HttpError, isAbort } from "./api.js";
import { exportCommand, verifyCommand } from "./commands.js";
import { copyText, el, formatDirection, formatId, formatMs, formatTime } from "./dom.js";
import { exchangeDetail } from "./guards.js";
import { jsonTree } from "./json_tree.js";

/** @typedef {import("./guards.js").ExchangeDetailView} ExchangeDetailView */
/** @typedef {import("./guards.js").RecordView} RecordView */
/** @typedef {import("./guards.js").DecisionView} DecisionView */

const STATE_TEXT = {
  ok: "answered",
  error: "answered with an error",
  denied: "refused by the proxy",
  rate_limited: "refused: rate limited",
  pending: "no answer stored yet",
  none: "nothing answers it",
};

/**
 * @typedef {object} DetailOptions
 * @property {import("./api.js").Api} api
 * @property {HTMLElement} pane
 * @property {HTMLElement} body where the content goes
 * @property {HTMLElement} title
 * @property {HTMLButtonElement} close
 * @property {() => string} logName the log's file name (`info.log`)
 * @property {() => void} onClose the user closed the pane
 */

export class DetailPane {
  /** @type {DetailOptions} */
  #o;
  /** @type {string | null} */
  #key = null;
  /** @type {AbortController | null} */
  #loading = null;

  /** @param {DetailOptions} options */
  constructor(options) {
    this.#o = options;
    options.close.addEventListener("click", () => {
      this.close();
      options.onClose();
    });
  }

  /** @returns {string | null} the open exchange's key */
  get key() {
    return this.#key;
  }

  /** @returns {boolean} */
  get isOpen() {
    return !this.#o.pane.hidden;
  }

  /**
   * Opens the pane on an exchange and reads it.
   * @param {string} key
   */
  async open(key) {
    this.#loading?.abort();
    const loading = new AbortController();
    this.#loading = loading;
    this.#key = key;
    const { pane, body, title } = this.#o;
    pane.hidden = false;
    document.body.classList.add("detail-open");
    title.textContent = "Exchange";
    body.replaceChildren(el("p", { cls: "muted", text: "Loading…" }));
    try {
      const detail = await this.#o.api.get(
        `/api/v1/exchanges/${encodeURIComponent(key)}`,
        null,
        exchangeDetail,
        loading.signal,
      );
      if (this.#loading !== loading) return;
      this.#render(detail);
    } catch (e) {
      if (this.#loading !== loading || isAbort(e)) return;
      const text = e instanceof HttpError && e.status === 404
        ? `Exchange ${key} is not in the log.`
        : `Could not load exchange ${key}: ${describeError(e)}`;
      body.replaceChildren(el("p", { cls: "error-text", text }));
    } finally {
      if (this.#loading === loading) this.#loading = null;
    }
  }

  close() {
    this.#loading?.abort();
    this.#loading = null;
    this.#key = null;
    this.#o.pane.hidden = true;
    document.body.classList.remove("detail-open");
    this.#o.body.replaceChildren();
  }

  /** @param {ExchangeDetailView} d */
  #render(d) {
    const { body, title } = this.#o;
    title.textContent = d.tool_name === null
      ? (d.method ?? d.kind)
      : `${d.method ?? d.kind} · ${d.tool_name}`;
    const records = [d.request, d.answer].filter((r) => r !== null);
    const first = records[0];
    const last = records.at(-1);
    const log = this.#o.logName();

    const commands = el("div", { cls: "commands", testid: "detail-command" });
    commands.append(commandLine("Check the whole log", verifyCommand(log)));
    if (first !== undefined && last !== undefined) {
      commands.append(
        commandLine(
          "Export this exchange's records",
          exportCommand(log, {
            firstTs: first.ts,
            lastTs: last.ts,
            method: first.method,
            session: first.session,
          }),
        ),
      );
    }

    body.replaceChildren(
      el(
        "p",
        { cls: "detail-state" },
        el("span", { cls: `state state-${d.state}`, text: d.state.replace("_", " ") }),
        ` ${STATE_TEXT[d.state]}`,
      ),
      facts(d),
      decisionBlock(d) ?? "",
      el(
        "div",
        { cls: "detail-columns" },
        recordColumn("Request", "detail-request", d.request, requestMissing(d)),
        recordColumn("Answer", "detail-answer", d.answer, answerMissing(d)),
      ),
      redactedBlock(d),
      evidence(d),
      commands,
    );
  }
}

/**
 * @param {ExchangeDetailView} d
 * @returns {string}
 */
function requestMissing(d) {
  return d.answer !== null
    ? "The request is not in the log (an archive deleted by retention, or never recorded)."
    : "No request record.";
}

/**
 * @param {ExchangeDetailView} d
 * @returns {string}
 */
function answerMissing(d) {
  if (d.state === "pending") return "No answer is stored yet.";
  if (d.kind === "notification") return "Nothing answers a notification.";
  if (d.kind === "event") return "A proxy event: nothing answers it.";
  if (d.kind === "invalid") return "Not a JSON-RPC message: nothing answers it.";
  return "No answer record.";
}

/**
 * A `<dl>` of label/value pairs (values as text).
 * @param {[string, string | Node][]} pairs
 * @param {string} [cls]
 * @returns {HTMLDListElement}
 */
function list(pairs, cls = "facts") {
  const dl = el("dl", { cls });
  for (const [label, value] of pairs) {
    dl.append(el("dt", { text: label }), el("dd", {}, value));
  }
  return dl;
}

/**
 * @param {string} text
 * @returns {HTMLElement}
 */
function mono(text) {
  return el("span", { cls: "mono wrap-anywhere", text });
}

/**
 * @param {ExchangeDetailView} d
 * @returns {HTMLElement}
 */
function facts(d) {
  /** @type {[string, string | Node][]} */
  const pairs = [
    ["Time", formatTime(d.request?.ts ?? d.ts)],
  ];
  if (d.answer !== null) pairs.push(["Answered", formatTime(d.answer.ts)]);
  pairs.push(
    ["Duration", formatMs(d.duration_ms)],
    ["Direction", formatDirection(d.direction)],
    ["Method", mono(d.method ?? "—")],
  );
  if (d.tool_name !== null) pairs.push(["Tool", mono(d.tool_name)]);
  pairs.push(
    ["JSON-RPC id", mono(formatId(d.jsonrpc_id))],
    ["Session", mono(d.session ?? "—")],
    ["Client", d.client_name === null ? mono(d.client_id) : `${d.client_name} (${d.client_id})`],
    ["Server", mono(d.server_id)],
  );
  const transport = d.request?.transport ?? d.answer?.transport;
  if (transport !== undefined) pairs.push(["Transport", transport]);
  return list(pairs, "facts compact");
}

/**
 * @param {DecisionView} dec
 * @returns {string}
 */
function describeDecision(dec) {
  const parts = [dec.action.replace("_", " ")];
  if (dec.by === "pinning") parts.push("by tool pinning");
  parts.push(dec.rule === null ? "default action / no rule" : `rule ${dec.rule}`);
  if (dec.enforced === false) parts.push("monitor mode: not enforced");
  return parts.join(" · ");
}

/**
 * @param {ExchangeDetailView} d
 * @returns {HTMLElement | null}
 */
function decisionBlock(d) {
  /** @type {{ which: string, dec: DecisionView }[]} */
  const decisions = [];
  const onRequest = d.request?.decision ?? d.decision;
  if (onRequest !== null) decisions.push({ which: "Request", dec: onRequest });
  const onAnswer = d.answer?.decision ?? null;
  if (onAnswer !== null) decisions.push({ which: "Answer", dec: onAnswer });
  if (decisions.length === 0) return null;
  const section = el(
    "section",
    { cls: "detail-section" },
    el("h3", { text: "Guardrail decision" }),
  );
  for (const { which, dec } of decisions) {
    /** @type {[string, string | Node][]} */
    const pairs = [
      [which, describeDecision(dec)],
      ["Reason", dec.reason],
    ];
    if (Array.isArray(dec.hidden) && dec.hidden.length > 0) {
      const names = dec.hidden.map((h) =>
        typeof h === "object" && h !== null && "name" in h ? String(h.name) : String(h)
      );
      pairs.push(["Hidden tools", mono(names.join(", "))]);
    }
    section.append(list(pairs));
  }
  return section;
}

/**
 * Seqs, wire digests and signatures of both records.
 * @param {ExchangeDetailView} d
 * @returns {HTMLElement}
 */
function evidence(d) {
  const seq = el("p", { testid: "detail-seq", cls: "mono" });
  const wire = el("div", { testid: "detail-wire" });
  const sig = el("div", { testid: "detail-sig" });
  /** @type {string[]} */
  const seqs = [];
  for (
    const [which, r] of /** @type {[string, RecordView | null][]} */ ([
      ["request", d.request],
      ["answer", d.answer],
    ])
  ) {
    if (r === null) continue;
    seqs.push(`${which} seq ${r.seq}`);
    wire.append(
      list(
        [[`${which} wire_sha256`, mono(r.wire_sha256 ?? "— (not from the wire)")]],
        "facts evidence",
      ),
    );
    sig.append(list([[`${which} sig`, mono(r.sig ?? "— (unsigned)")]], "facts evidence"));
  }
  seq.textContent = seqs.length === 0 ? "—" : seqs.join(" · ");
  return el(
    "section",
    { cls: "detail-section" },
    el("h3", { text: "Evidence" }),
    seq,
    wire,
    sig,
  );
}

/**
 * @param {ExchangeDetailView} d
 * @returns {HTMLElement}
 */
function redactedBlock(d) {
  const paths = [...(d.request?.redacted ?? []), ...(d.answer?.redacted ?? [])];
  const section = el("section", { cls: "detail-section", testid: "detail-redacted" });
  section.append(el("h3", { text: "Redacted paths" }));
  if (paths.length === 0) {
    section.append(el("p", { cls: "muted", text: "Nothing was redacted." }));
  } else {
    const ul = el("ul", { cls: "redacted-list" });
    for (const p of paths) ul.append(el("li", {}, mono(p)));
    section.append(ul);
  }
  return section;
}

/**
 * A command with a copy button; the text is also selectable.
 * @param {string} label
 * @param {string} command
 * @returns {HTMLElement}
 */
function commandLine(label, command) {
  const code = el("code", { cls: "command-text", text: command });
  const button = el("button", {
    cls: "button small",
    text: "Copy",
    attrs: { type: "button", "aria-label": `Copy: ${label}` },
  });
  const said = el("span", { cls: "muted copy-note", attrs: { "aria-live": "polite" } });
  button.addEventListener("click", async () => {
    const copied = await copyText(command, code);
    said.textContent = copied ? "copied" : "selected: press Ctrl+C";
  });
  return el(
    "div",
    { cls: "command" },
    el("span", { cls: "command-label", text: label }),
    code,
    button,
    said,
  );
}

/**
 * @param {string} heading
 * @param {string} testid
 * @param {RecordView | null} record
 * @param {string} missing
 * @returns {HTMLElement}
 */
function recordColumn(heading, testid, record, missing) {
  const column = el("section", { cls: "detail-record", testid }, el("h3", { text: heading }));
  if (record === null) {
    column.append(el("p", { cls: "muted", text: missing }));
    return column;
  }
  column.append(
    el("p", {
      cls: "muted",
      text: `${record.kind} · seq ${record.seq} · ${formatTime(record.ts)}`,
    }),
    jsonTree(record, { redacted: new Set(record.redacted), openDepth: 4 }),
  );
  return column;
}
