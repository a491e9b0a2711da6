// @ts-check
/// <reference lib="dom" />
/**
 * The window's cards, its two uPlot charts (calls and errors; latency percentiles) and the
 * top-tools bars. Read from `/api/v1/stats` for the chosen window, narrowed by the table's method,
 * tool, client, session and server filters; read again at most every 5 s while records arrive,
 * and every minute otherwise so the window slides.
 *
 * uPlot (vendored, MIT) is the classic script loaded before the modules: `globalThis.uPlot`.
 *
 * @module
 */
import { describeError, isAbort } from "./api.js";
import { el, formatCount, formatMs } from "./dom.js";
import { windowStats } from "./guards.js";
import { statsParams } from "./url_state.js";

/** @typedef {import("./guards.js").WindowStats} WindowStats */
/** @typedef {import("./url_state.js").Filters} Filters */

/**
 * The part of uPlot's API used here.
 * @typedef {object} UPlotChart
 * @property {(size: { width: number, height: number }) => void} setSize
 * @property {(data: (number | null)[][]) => void} setData
 * @property {() => void} destroy
 */
/** @typedef {new (options: object, data: (number | null)[][], target: HTMLElement) => UPlotChart} UPlotCtor */

/** @returns {UPlotCtor | null} */
function uPlotCtor() {
  /** @type {unknown} */
  const u = Reflect.get(globalThis, "uPlot");
  // The vendored library's global (a known constructor), not data from the wire.
  return typeof u === "function" ? /** @type {UPlotCtor} */ (u) : null;
}

export const WINDOWS = /** @type {const} */ ({
  "15m": 15 * 60_000,
  "1h": 60 * 60_000,
  "6h": 6 * 60 * 60_000,
  "24h": 24 * 60 * 60_000,
});
/** @typedef {keyof typeof WINDOWS} WindowName */

const BUCKETS = 60;
const MIN_REFRESH_MS = 5_000;
const IDLE_REFRESH_MS = 60_000;

/**
 * A CSS custom property of the root (the theme's colours).
 * @param {string} name
 * @returns {string}
 */
function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

/**
 * @typedef {object} ChartsOptions
 * @property {import("./api.js").Api} api
 * @property {Record<"calls" | "errors" | "denied" | "rate_limited" | "p50" | "p95" | "p99", HTMLElement>} cards
 *   each card's value element
 * @property {HTMLElement} callsChart
 * @property {HTMLElement} latencyChart
 * @property {HTMLElement} topTools
 * @property {HTMLElement} note "partial" and error notes
 * @property {(tool: string) => void} onTool a top tool was clicked
 */

export class Charts {
  /** @type {ChartsOptions} */
  #o;
  /** @type {Filters} */
  #filters = {};
  /** @type {WindowName} */
  #window = "1h";
  /** @type {WindowStats | null} */
  #last = null;
  /** @type {UPlotChart | null} */
  #calls = null;
  /** @type {UPlotChart | null} */
  #latency = null;
  #lastRefresh = 0;
  /** @type {ReturnType<typeof setTimeout> | null} */
  #timer = null;
  /** @type {ReturnType<typeof setInterval> | null} */
  #idle = null;
  /** @type {AbortController | null} */
  #loading = null;
  /** @type {ResizeObserver} */
  #resize;
  /** @type {MediaQueryList} */
  #dark;
  #onTheme = () => this.#rebuild();

  /** @param {ChartsOptions} options */
  constructor(options) {
    this.#o = options;
    let frame = 0;
    this.#resize = new ResizeObserver(() => {
      cancelAnimationFrame(frame);
      frame = requestAnimationFrame(() => this.#fit());
    });
    this.#resize.observe(options.callsChart);
    this.#resize.observe(options.latencyChart);
    this.#dark = matchMedia("(prefers-color-scheme: dark)");
    this.#dark.addEventListener("change", this.#onTheme);
    this.#idle = setInterval(() => this.poke(), IDLE_REFRESH_MS);
  }

  /** @returns {WindowName} */
  get window() {
    return this.#window;
  }

  /** @param {WindowName} name */
  setWindow(name) {
    this.#window = name;
    return this.refresh();
  }

  /** @param {Filters} filters */
  setFilters(filters) {
    this.#filters = filters;
  }

  /** Records arrived: read the stats again, at most every 5 s. */
  poke() {
    if (this.#timer !== null) return;
    const wait = Math.max(0, this.#lastRefresh + MIN_REFRESH_MS - performance.now());
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.refresh();
    }, wait);
  }

  /**
   * Reads and shows the window's stats now.
   * @returns {Promise<void>}
   */
  async refresh() {
    this.#loading?.abort();
    const loading = new AbortController();
    this.#loading = loading;
    this.#lastRefresh = performance.now();
    const now = Date.now();
    const params = statsParams(this.#filters);
    params.set("from", new Date(now - WINDOWS[this.#window]).toISOString());
    params.set("to", new Date(now).toISOString());
    params.set("buckets", String(BUCKETS));
    try {
      const stats = await this.#o.api.get("/api/v1/stats", params, windowStats, loading.signal);
      if (this.#loading !== loading) return;
      this.#last = stats;
      this.#render(stats);
    } catch (e) {
      if (this.#loading !== loading || isAbort(e)) return;
      this.#o.note.textContent = `Could not load the statistics: ${describeError(e)}`;
      this.#o.note.hidden = false;
    } finally {
      if (this.#loading === loading) this.#loading = null;
    }
  }

  close() {
    this.#loading?.abort();
    if (this.#timer !== null) clearTimeout(this.#timer);
    if (this.#idle !== null) clearInterval(this.#idle);
    this.#resize.disconnect();
    this.#dark.removeEventListener("change", this.#onTheme);
    this.#calls?.destroy();
    this.#latency?.destroy();
  }

  /** @param {WindowStats} s */
  #render(s) {
    const c = this.#o.cards;
    c.calls.textContent = formatCount(s.calls);
    const rate = s.calls > 0 ? ` (${((s.errors / s.calls) * 100).toFixed(1)}%)` : "";
    c.errors.textContent = `${formatCount(s.errors)}${rate}`;
    c.denied.textContent = formatCount(s.denied);
    c.rate_limited.textContent = formatCount(s.rate_limited);
    c.p50.textContent = formatMs(s.latency.p50);
    c.p95.textContent = formatMs(s.latency.p95);
    c.p99.textContent = formatMs(s.latency.p99);

    const notes = [];
    if (s.partial) {
      notes.push(
        `The window holds more records than are read at once: counts are of the newest ${
          formatCount(s.records_read)
        }.`,
      );
    }
    if (s.pending > 0) {
      notes.push(
        s.pending === 1
          ? "1 call has no answer stored yet."
          : `${formatCount(s.pending)} calls have no answer stored yet.`,
      );
    }
    this.#o.note.textContent = notes.join(" ");
    this.#o.note.hidden = notes.length === 0;

    this.#renderTopTools(s);
    this.#renderCharts(s);
  }

  /** @param {WindowStats} s */
  #renderTopTools(s) {
    const list = this.#o.topTools;
    if (s.top_tools.length === 0) {
      list.replaceChildren(el("li", { cls: "muted", text: "No tool calls in this window." }));
      return;
    }
    const max = Math.max(1, ...s.top_tools.map((t) => t.count));
    list.replaceChildren(
      ...s.top_tools.map((t) => {
        const bar = el("span", { cls: "bar" });
        bar.style.width = `${Math.max(2, (t.count / max) * 100)}%`;
        const errorPart = el("span", { cls: "bar-errors" });
        errorPart.style.width = `${t.count === 0 ? 0 : (t.errors / t.count) * 100}%`;
        bar.append(errorPart);
        const button = el(
          "button",
          {
            cls: "tool-button",
            attrs: { type: "button", title: "Show only this tool's calls" },
          },
          el("span", { cls: "tool-name mono", text: t.name }),
          el("span", { cls: "bar-track" }, bar),
          el("span", {
            cls: "tool-count",
            text: t.errors > 0
              ? `${formatCount(t.count)} (${formatCount(t.errors)} error${
                t.errors === 1 ? "" : "s"
              })`
              : formatCount(t.count),
          }),
        );
        button.addEventListener("click", () => this.#o.onTool(t.name));
        return el("li", {}, button);
      }),
    );
  }

  /** @param {WindowStats} s */
  #renderCharts(s) {
    const xs = s.buckets.map((b) => Date.parse(b.start) / 1000);
    const callsData = [xs, s.buckets.map((b) => b.calls), s.buckets.map((b) => b.errors)];
    const latencyData = [
      xs,
      s.buckets.map((b) => b.latency.p50),
      s.buckets.map((b) => b.latency.p95),
      s.buckets.map((b) => b.latency.p99),
    ];
    const minutes = Math.max(1, Math.round(s.bucket_ms / 60_000));
    const per = s.bucket_ms < 60_000 ? `${Math.round(s.bucket_ms / 1000)} s` : `${minutes} min`;
    this.#o.callsChart.setAttribute(
      "aria-label",
      `Calls and errors per ${per}: ${s.calls} calls, ${s.errors} errors in the window`,
    );
    this.#o.latencyChart.setAttribute(
      "aria-label",
      `Latency percentiles per ${per}: p50 ${formatMs(s.latency.p50)}, p95 ${
        formatMs(s.latency.p95)
      }, p99 ${formatMs(s.latency.p99)}`,
    );
    const U = uPlotCtor();
    if (U === null) return;
    if (this.#calls === null) {
      this.#calls = this.#make(
        U,
        this.#o.callsChart,
        [
          { label: "calls", color: "--chart-calls", fill: true },
          { label: "errors", color: "--chart-errors", fill: true },
        ],
        "",
        callsData,
      );
    } else {
      this.#calls.setData(callsData);
    }
    if (this.#latency === null) {
      this.#latency = this.#make(
        U,
        this.#o.latencyChart,
        [
          { label: "p50", color: "--chart-p50", fill: false },
          { label: "p95", color: "--chart-p95", fill: false },
          { label: "p99", color: "--chart-p99", fill: false },
        ],
        "ms",
        latencyData,
      );
    } else {
      this.#latency.setData(latencyData);
    }
  }

  /**
   * @param {UPlotCtor} U
   * @param {HTMLElement} target
   * @param {{ label: string, color: string, fill: boolean }[]} series
   * @param {string} unit
   * @param {(number | null)[][]} data
   * @returns {UPlotChart}
   */
  #make(U, target, series, unit, data) {
    const axis = cssVar("--chart-axis");
    const grid = cssVar("--chart-grid");
    const font = `12px ${cssVar("--font-sans")}`;
    const { width, height } = this.#size(target);
    const opts = {
      width,
      height,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      axes: [
        { stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, font },
        {
          stroke: axis,
          grid: { stroke: grid, width: 1 },
          ticks: { stroke: grid },
          font,
          size: 70,
          values: (/** @type {unknown} */ _u, /** @type {number[]} */ ticks) =>
            ticks.map((v) => unit === "ms" ? formatMs(v) : formatCount(v)),
        },
      ],
      series: [
        {},
        ...series.map((s) => {
          const stroke = cssVar(s.color);
          return {
            label: s.label,
            stroke,
            width: 2,
            spanGaps: false,
            points: { show: false },
            ...(s.fill ? { fill: `${stroke}33` } : {}),
          };
        }),
      ],
    };
    target.replaceChildren();
    const chart = new U(opts, data, target);
    const legend = el("ul", { cls: "chart-legend", attrs: { "aria-hidden": "true" } });
    for (const s of series) {
      const swatch = el("span", { cls: "swatch" });
      swatch.style.backgroundColor = cssVar(s.color);
      legend.append(el("li", {}, swatch, s.label));
    }
    target.append(legend);
    return chart;
  }

  /**
   * @param {HTMLElement} target
   * @returns {{ width: number, height: number }}
   */
  #size(target) {
    const width = Math.max(200, Math.floor(target.clientWidth));
    return { width, height: width < 420 ? 130 : 140 };
  }

  #fit() {
    for (
      const [chart, target] of /** @type {[UPlotChart | null, HTMLElement][]} */ ([
        [this.#calls, this.#o.callsChart],
        [this.#latency, this.#o.latencyChart],
      ])
    ) {
      chart?.setSize(this.#size(target));
    }
  }

  /** The theme changed: colours are read when a chart is made, so make them again. */
  #rebuild() {
    this.#calls?.destroy();
    this.#latency?.destroy();
    this.#calls = null;
    this.#latency = null;
    if (this.#last !== null) this.#renderCharts(this.#last);
  }
}
