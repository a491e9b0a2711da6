// @ts-check
/// <reference lib="dom" />
/**
 * The console's composition: reads the URL's view, asks for the token when the API wants one,
 * opens the live stream, then shows the first page and the window's statistics
 * (`body[data-ready="1"]` once both are rendered). Every part is wired here and nowhere else.
 *
 * @module
 */
import { Api, describeError } from "./api.js";
import { tokenDialog } from "./auth.js";
import { ChainBadge } from "./chain.js";
import { Charts, WINDOWS } from "./charts.js";
import { DetailPane } from "./detail.js";
import { byId, isTyping } from "./dom.js";
import { FilterForm } from "./filters.js";
import { info as infoGuard } from "./guards.js";
import { GuardrailsView } from "./guardrails.js";
import { SessionsView } from "./sessions.js";
import { LiveStream } from "./stream.js";
import { ExchangeTable } from "./table.js";
import { readState, writeState } from "./url_state.js";

/** @typedef {import("./url_state.js").Filters} Filters */
/** @typedef {import("./url_state.js").ViewName} ViewName */
/** @typedef {import("./stream.js").StreamState} StreamState */

/** How long the first page waits for the stream to open (so nothing stored between is missed). */
const STREAM_WAIT_MS = 3_000;

const api = new Api();
api.setAsk(tokenDialog(api));

let state = readState(location.search);
let logName = "audit.jsonl";

const liveStatus = byId("live-status", HTMLSpanElement);
/** @type {StreamState} */
let streamState = "connecting";
/** @type {string | null} */
let streamNote = null;

function renderLiveStatus() {
  if (streamState === "connecting" || streamState === "reconnecting" || streamState === "stopped") {
    liveStatus.dataset.state = "reconnecting";
    liveStatus.textContent = streamState === "connecting" ? "Connecting…" : "Reconnecting…";
    liveStatus.title = streamNote ?? "";
    return;
  }
  liveStatus.title = "";
  if (table.paused) {
    liveStatus.dataset.state = "paused";
    liveStatus.textContent = "Paused while you read";
  } else {
    liveStatus.dataset.state = "live";
    liveStatus.textContent = "Live";
  }
}

const detail = new DetailPane({
  api,
  pane: byId("detail-pane", HTMLElement),
  body: byId("detail-body", HTMLDivElement),
  title: byId("detail-title", HTMLHeadingElement),
  close: byId("detail-close", HTMLButtonElement),
  logName: () => logName,
  onClose: () => closeDetail(),
});

const table = new ExchangeTable({
  api,
  wrap: byId("table-wrap", HTMLDivElement),
  tbody: byId("exchange-rows", HTMLTableSectionElement),
  newMarker: byId("new-marker", HTMLButtonElement),
  topSentinel: byId("top-sentinel", HTMLDivElement),
  bottomSentinel: byId("bottom-sentinel", HTMLDivElement),
  historyEnd: byId("history-end", HTMLParagraphElement),
  message: byId("table-message", HTMLParagraphElement),
  onSelect: (key) => openDetail(key),
  onPause: () => renderLiveStatus(),
});

const charts = new Charts({
  api,
  cards: {
    calls: byId("card-calls", HTMLSpanElement),
    errors: byId("card-errors", HTMLSpanElement),
    denied: byId("card-denied", HTMLSpanElement),
    rate_limited: byId("card-rate-limited", HTMLSpanElement),
    p50: byId("card-p50", HTMLSpanElement),
    p95: byId("card-p95", HTMLSpanElement),
    p99: byId("card-p99", HTMLSpanElement),
  },
  callsChart: byId("chart-calls", HTMLDivElement),
  latencyChart: byId("chart-latency", HTMLDivElement),
  topTools: byId("top-tools", HTMLOListElement),
  note: byId("stats-note", HTMLParagraphElement),
  onTool: (tool) => {
    const filters = { ...state.filters, tool };
    filterForm.write(filters);
    void applyFilters(filters);
  },
});

const chainPanel = byId("chain-panel", HTMLElement);
const chain = new ChainBadge({
  api,
  badge: byId("chain-badge", HTMLButtonElement),
  panel: chainPanel,
  panelText: byId("chain-panel-text", HTMLParagraphElement),
  showAround: async (seq, fromSeq, toSeq) => {
    /** @type {Filters} */
    const filters = { from_seq: String(fromSeq), to_seq: String(toSeq) };
    filterForm.write(filters);
    showView("live");
    await applyFilters(filters);
    // Open the exchange that holds the record found wrong, when it is on the page.
    const key = table.keyForSeq(seq);
    if (key !== null) openDetail(key);
  },
});
byId("chain-panel-close", HTMLButtonElement).addEventListener("click", () => {
  chainPanel.hidden = true;
});

const sessions = new SessionsView({
  api,
  tbody: byId("sessions-rows", HTMLTableSectionElement),
  more: byId("sessions-more", HTMLButtonElement),
  message: byId("sessions-message", HTMLParagraphElement),
  heading: byId("timeline-title", HTMLHeadingElement),
  timeline: byId("session-timeline", HTMLOListElement),
  earlier: byId("timeline-earlier", HTMLButtonElement),
  onOpen: (key) => openDetail(key),
});

const guardrails = new GuardrailsView({
  api,
  refusals: byId("refusal-rows", HTMLTableSectionElement),
  changes: byId("change-rows", HTMLTableSectionElement),
  pins: byId("pins-rows", HTMLTableSectionElement),
  pending: byId("pending-rows", HTMLTableSectionElement),
  pinsNote: byId("pins-note", HTMLParagraphElement),
  message: byId("guardrails-message", HTMLParagraphElement),
  onOpen: (key) => openDetail(key),
});

const filterForm = new FilterForm((filters) => void applyFilters(filters));

const stream = new LiveStream(api, {
  onItem: (item) => {
    table.onStreamItem(item);
    charts.poke();
    chain.poke();
  },
  onState: (s, note) => {
    streamState = s;
    streamNote = note;
    renderLiveStatus();
  },
  onOpen: (resumed) => {
    if (!resumed && ready) table.resync();
  },
});

let ready = false;

/**
 * Shows the table and stats for these filters, and puts them in the URL.
 * @param {Filters} filters
 * @returns {Promise<void>} settles once the table's first page is shown
 */
function applyFilters(filters) {
  state = { ...state, filters };
  writeState(state);
  charts.setFilters(filters);
  void charts.refresh();
  return table.reload(filters);
}

/** @param {string} key */
function openDetail(key) {
  table.highlight(key, false);
  state = { ...state, ex: key };
  writeState(state);
  void detail.open(key);
}

function closeDetail() {
  if (detail.isOpen) detail.close();
  table.unselect();
  state = { ...state, ex: null };
  writeState(state);
}

/** @param {ViewName} view */
function showView(view) {
  state = { ...state, view };
  writeState(state);
  for (const name of /** @type {const} */ (["live", "sessions", "guardrails"])) {
    byId(`view-${name}`, HTMLElement).hidden = name !== view;
  }
  for (const link of document.querySelectorAll("nav a[data-view]")) {
    if (!(link instanceof HTMLAnchorElement)) continue;
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  table.setVisible(view === "live");
  if (view === "sessions") void sessions.show();
  if (view === "guardrails") void guardrails.show();
}

for (const link of document.querySelectorAll("nav a[data-view]")) {
  if (!(link instanceof HTMLAnchorElement)) continue;
  link.addEventListener("click", (e) => {
    e.preventDefault();
    const view = link.dataset.view;
    if (view === "live" || view === "sessions" || view === "guardrails") showView(view);
  });
}

const windowSelect = byId("window-select", HTMLSelectElement);
windowSelect.addEventListener("change", () => {
  const value = windowSelect.value;
  if (value === "15m" || value === "1h" || value === "6h" || value === "24h") {
    void charts.setWindow(value);
  }
});
if (!(windowSelect.value in WINDOWS)) windowSelect.value = "1h";

const helpDialog = byId("help-dialog", HTMLDialogElement);
byId("help-button", HTMLButtonElement).addEventListener("click", () => helpDialog.showModal());
byId("help-close", HTMLButtonElement).addEventListener("click", () => helpDialog.close());

document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (document.querySelector("dialog[open]") !== null) return;
  if (isTyping(e.target)) {
    if (e.key === "Escape" && e.target instanceof HTMLElement) e.target.blur();
    return;
  }
  switch (e.key) {
    case "j":
    case "k":
      if (state.view !== "live") showView("live");
      table.move(e.key === "j" ? 1 : -1);
      e.preventDefault();
      break;
    case "/":
      if (state.view !== "live") showView("live");
      filterForm.focusSearch();
      e.preventDefault();
      break;
    case "Escape":
      if (detail.isOpen) closeDetail();
      else if (!chainPanel.hidden) chainPanel.hidden = true;
      break;
    case "?":
      helpDialog.showModal();
      e.preventDefault();
      break;
    default:
      break;
  }
});

// The filter form folds away on a phone, and is open on a wider screen.
if (matchMedia("(min-width: 900px)").matches) {
  byId("filters-details", HTMLDetailsElement).open = true;
}

async function boot() {
  const info = await api.get("/api/v1/info", null, infoGuard);
  if (info.auth && !api.hasToken) await api.needToken({ kind: "missing" });
  logName = info.log;
  byId("info-text", HTMLSpanElement).textContent =
    `${info.version} · ${info.log} · ${info.storage}${info.live ? "" : " · read-only"}`;
  filterForm.write(state.filters);
  charts.setFilters(state.filters);
  stream.start();
  // Open the stream first: what is stored while the first page loads then comes on it.
  await Promise.race([
    stream.firstAttempt,
    new Promise((resolve) => setTimeout(resolve, STREAM_WAIT_MS)),
  ]);
  showView(state.view);
  if (state.ex !== null) openDetail(state.ex);
  await Promise.all([table.reload(state.filters), charts.refresh()]);
  ready = true;
  chain.start();
  document.body.dataset.ready = "1";
}

boot().catch((e) => {
  const message = byId("table-message", HTMLParagraphElement);
  message.textContent = `The dashboard could not start: ${describeError(e)}`;
  message.hidden = false;
});

// A page restored from the back/forward cache has its stream stopped: start afresh.
addEventListener("pageshow", (e) => {
  if (e.persisted) location.reload();
});

addEventListener("pagehide", () => {
  stream.stop();
  table.close();
  charts.close();
  chain.close();
  sessions.close();
  guardrails.close();
});
