/**
 * The main thread's side of the telemetry worker: it hands each stored batch and store attempt to
 * the worker and asks it for scrapes. What it costs the thread that forwards messages is one
 * message per batch; the metrics and the OpenTelemetry export run in the worker
 * (`telemetry_worker.ts`). Nothing here ever waits for the worker on a message's path: when the
 * worker falls behind by more than a bound, batches are left out of telemetry (the audit log has
 * them all) and a warning says how many.
 *
 * @module
 */
import type { WriteReport } from "../audit/chain.ts";
import type { StoredRecord } from "../audit/storage/store.ts";
import type { Logger } from "../log.ts";
import type { ProxyStats } from "./proxy_stats.ts";
import type { FromWorker, LogSnapshot, TelemetryStart, ToWorker } from "./worker_protocol.ts";

/** The worker could not start what was asked: `key` names the configuration key at fault. */
export class TelemetryStartError extends Error {
  override name = "TelemetryStartError";
  constructor(readonly key: string | null, readonly problem: string) {
    super(key === null ? problem : `${key}: ${problem}`);
  }
}

/** Records sent to the worker and not yet taken in, at most; more are left out of telemetry. */
const MAX_IN_FLIGHT_RECORDS = 100_000;
/** The same bound in UTF-16 code units of their lines (about 128 MiB). */
const MAX_IN_FLIGHT_CHARS = 64 * 1024 * 1024;
/**
 * Lines are handed to the worker at most this often (or when {@link POST_LINES} wait): one
 * message for many batches. Waking a Deno worker costs tens to hundreds of microseconds of CPU
 * (measured: about 200 µs a message at 100 messages a second), more than the telemetry of a call,
 * so a proxy answering one call at a time must not wake it for each. Metrics lag the log by at
 * most this much; a scrape first sends what waits.
 */
const POST_EVERY_MS = 50;
const POST_LINES = 2048;
/** A scrape the worker does not answer in this time fails. */
const SCRAPE_TIMEOUT_MS = 10_000;
/** Shutdown waits this much longer than the export's own deadline before ending the worker. */
const SHUTDOWN_MARGIN_MS = 2_000;

const WORKER = new URL("./telemetry_worker.ts", import.meta.url);

/**
 * Why the worker's module cannot be loaded, when it is a file `--allow-read` does not cover (the
 * proxy run from a checkout with a read permission for its log folder only), else null.
 */
function unreadableWorker(worker: URL): string | null {
  if (worker.protocol !== "file:") return null;
  const path = decodeURIComponent(worker.pathname);
  if (Deno.permissions.querySync({ name: "read", path }).state === "granted") return null;
  return `metrics and OpenTelemetry run in a worker loaded from ${path}, which --allow-read ` +
    `does not cover: allow it (the folder holding main.ts), or turn them off (--no-metrics)`;
}

/** What the main thread tells the worker at each scrape. */
export interface TelemetrySources {
  log: () => LogSnapshot;
  stats: ProxyStats;
}

/** The running telemetry worker. */
export class Telemetry {
  /** Created at start with OpenTelemetry; with metrics alone, when first needed (see start). */
  #worker: Worker | undefined;
  #workerUrl: URL;
  /** The start message, until the worker is created. */
  #startMessage: ToWorker | undefined;
  #sources: TelemetrySources;
  #logger: Logger;
  #shutdownMs: number;
  /** What the worker has taken in (see `ToWorker` "start"), and what was sent, modulo 2^32. */
  #progress = new Int32Array(new SharedArrayBuffer(8));
  #sentRecords = 0;
  #sentChars = 0;
  /** Lines waiting to be posted, and the timer that posts them. */
  #waiting: string[] = [];
  #waitingReports: WriteReport[] = [];
  #postTimer: ReturnType<typeof setTimeout> | undefined;
  #skipped = 0;
  #lastSkipWarning = -Infinity;
  #scrapes = new Map<number, PromiseWithResolvers<{ body: string; contentType: string }>>();
  #nextScrape = 1;
  #started = Promise.withResolvers<void>();
  /** Whether {@link start} waits for the worker's start (with OpenTelemetry), or returns first. */
  #startAwaited: boolean;
  #stopped = Promise.withResolvers<void>();
  #failed: string | undefined;
  #closed = false;

  private constructor(
    start: TelemetryStart,
    sources: TelemetrySources,
    logger: Logger,
    worker: URL,
  ) {
    this.#sources = sources;
    this.#logger = logger;
    this.#shutdownMs = (start.otel?.config.shutdown_timeout_ms ?? 0) + SHUTDOWN_MARGIN_MS;
    this.#startAwaited = start.otel !== null;
    // Rejected by a failure at any time, awaited only by a start with OpenTelemetry.
    this.#started.promise.catch(() => {});
    this.#workerUrl = worker;
    this.#startMessage = { kind: "start", start, progress: this.#progress.buffer };
    if (this.#startAwaited) this.#launch();
  }

  /** Creates the worker (about 20 ms of this thread's time) and sends it the start. */
  #launch(): Worker | undefined {
    const start = this.#startMessage;
    if (start === undefined) return this.#worker;
    this.#startMessage = undefined;
    try {
      const worker = new Worker(this.#workerUrl.href, { type: "module" });
      worker.onmessage = (event: MessageEvent<FromWorker>) => this.#received(event.data);
      worker.onerror = (event: ErrorEvent) => {
        // The worker's failure is telemetry's, never the proxy's: it must not end the process.
        event.preventDefault();
        this.#fail(event.message);
      };
      this.#worker = worker;
    } catch (e) {
      this.#fail(e instanceof Error ? e.message : String(e));
      return undefined;
    }
    this.#post(start);
    return this.#worker;
  }

  /**
   * Starts the worker and what `start` asks of it.
   *
   * With OpenTelemetry on, creates the worker and waits for it to check its settings and start the
   * export. With metrics alone (`otel` null), returns at once: the worker is created when there is
   * first something to send it (the first lines, 50 ms after the first record is stored, or a
   * scrape), so neither its creation (about 20 ms of this thread) nor its loading (60 ms and more
   * of another) comes before the proxy's first message. What is sent while it loads waits in its
   * queue; a worker that then fails to start is handled as one that fails while running: logged,
   * metrics and export off, scrapes refused. A run that ends before then never creates it.
   *
   * @param worker the worker's module (tests give their own)
   * @throws {TelemetryStartError} when it cannot start (a worker module `--allow-read` does not
   * cover; with OpenTelemetry, a bad `otel.*` setting or a TLS file)
   */
  static async start(
    start: TelemetryStart,
    sources: TelemetrySources,
    logger: Logger,
    worker: URL = WORKER,
  ): Promise<Telemetry> {
    const unreadable = unreadableWorker(worker);
    if (unreadable !== null) throw new TelemetryStartError(null, unreadable);
    const t = new Telemetry(start, sources, logger, worker);
    if (!t.#startAwaited) return t;
    try {
      await t.#started.promise;
    } catch (e) {
      t.#worker?.terminate();
      throw e;
    }
    return t;
  }

  /** Given to `log.observe`: the batch's lines go to the worker, unless it is too far behind. */
  records(batch: readonly StoredRecord[]): void {
    if (this.#closed || this.#failed !== undefined || batch.length === 0) return;
    let chars = 0;
    for (let i = 0; i < batch.length; i++) chars += batch[i]!.line.length;
    // Differences of counters that wrap at 2^32 stay right while in flight stays below 2^31.
    const records = (this.#sentRecords - Atomics.load(this.#progress, 0)) | 0;
    const inFlightChars = (this.#sentChars - Atomics.load(this.#progress, 1)) | 0;
    if (
      records + batch.length > MAX_IN_FLIGHT_RECORDS || inFlightChars + chars > MAX_IN_FLIGHT_CHARS
    ) {
      this.#skip(batch.length);
      return;
    }
    this.#sentRecords = (this.#sentRecords + batch.length) | 0;
    this.#sentChars = (this.#sentChars + chars) | 0;
    for (const stored of batch) this.#waiting.push(stored.line);
    this.#schedulePost();
  }

  #schedulePost(): void {
    if (this.#waiting.length + this.#waitingReports.length >= POST_LINES) this.#postWaiting();
    else if (this.#postTimer === undefined) {
      this.#postTimer = setTimeout(() => this.#postWaiting(), POST_EVERY_MS);
      Deno.unrefTimer(Number(this.#postTimer));
    }
  }

  /** Hands the waiting lines to the worker. */
  #postWaiting(): void {
    clearTimeout(this.#postTimer);
    this.#postTimer = undefined;
    if (this.#waiting.length === 0 && this.#waitingReports.length === 0) return;
    const lines = this.#waiting;
    const reports = this.#waitingReports;
    this.#waiting = [];
    this.#waitingReports = [];
    this.#post({ kind: "records", lines, reports });
  }

  /** Given to `log.observeWrites`. */
  writes(reports: readonly WriteReport[]): void {
    if (this.#closed || this.#failed !== undefined) return;
    for (const r of reports) this.#waitingReports.push(r);
    this.#schedulePost();
  }

  /** Renders the metrics for an `Accept` header, in the worker. */
  scrape(accept: string | null): Promise<{ body: string; contentType: string }> {
    if (this.#closed) return Promise.reject(new Error("telemetry has stopped"));
    if (this.#failed !== undefined) {
      return Promise.reject(new Error(`telemetry worker failed: ${this.#failed}`));
    }
    // What the log stored so far counts in this scrape.
    this.#postWaiting();
    const id = this.#nextScrape++;
    const waiting = Promise.withResolvers<{ body: string; contentType: string }>();
    this.#scrapes.set(id, waiting);
    const timer = setTimeout(() => {
      if (this.#scrapes.delete(id)) waiting.reject(new Error("the metrics took too long"));
    }, SCRAPE_TIMEOUT_MS);
    this.#post({
      kind: "scrape",
      id,
      accept,
      log: this.#sources.log(),
      counts: this.#sources.stats.snapshot(),
    });
    return waiting.promise.finally(() => clearTimeout(timer));
  }

  /**
   * Lets the worker export what is queued (bounded by `otel.shutdown_timeout_ms`), then ends it.
   * Never throws.
   */
  async shutdown(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#skipped > 0) this.#warnSkipped(true);
    if (this.#worker === undefined) {
      // Never created: nothing was scraped, and what the log stored is in the log.
      this.#startMessage = undefined;
      clearTimeout(this.#postTimer);
      this.#postTimer = undefined;
      this.#waiting = [];
      this.#waitingReports = [];
    } else if (this.#failed === undefined) {
      this.#postWaiting();
      this.#post({ kind: "shutdown" });
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          this.#logger.warn("the telemetry worker did not stop in time; ending it");
          resolve();
        }, this.#shutdownMs);
      });
      await Promise.race([this.#stopped.promise, late]);
      clearTimeout(timer);
    }
    this.#worker?.terminate();
    for (const waiting of this.#scrapes.values()) {
      waiting.reject(new Error("telemetry has stopped"));
    }
    this.#scrapes.clear();
  }

  #post(message: ToWorker): void {
    const worker = this.#launch();
    if (worker === undefined) return; // it could not be created: #fail said so
    try {
      worker.postMessage(message);
    } catch (e) {
      this.#fail(e instanceof Error ? e.message : String(e));
    }
  }

  #received(m: FromWorker): void {
    switch (m.kind) {
      case "started":
        this.#started.resolve();
        return;
      case "start_failed": {
        const e = new TelemetryStartError(m.key, m.problem);
        if (this.#startAwaited) this.#started.reject(e);
        else this.#fail(e.message);
        return;
      }
      case "scraped":
        this.#scrapes.get(m.id)?.resolve({ body: m.body, contentType: m.contentType });
        this.#scrapes.delete(m.id);
        return;
      case "scrape_failed":
        this.#scrapes.get(m.id)?.reject(new Error(m.error));
        this.#scrapes.delete(m.id);
        return;
      case "stopped":
        this.#stopped.resolve();
        return;
      default: {
        const never: never = m;
        this.#fail(`unknown message ${JSON.stringify(never)}`);
      }
    }
  }

  #skip(records: number): void {
    this.#skipped += records;
    if (performance.now() - this.#lastSkipWarning >= 10_000) this.#warnSkipped(false);
  }

  #warnSkipped(final: boolean): void {
    this.#logger.warn(
      "telemetry is behind: records left out of metrics and export (the audit log has them)",
      { skipped_total: this.#skipped, final },
    );
    this.#lastSkipWarning = performance.now();
  }

  #fail(message: string): void {
    if (this.#failed !== undefined) return;
    this.#failed = message;
    this.#logger.error("the telemetry worker failed; metrics and export are off from now on", {
      error: message,
    });
    this.#started.reject(new TelemetryStartError(null, message));
    this.#stopped.resolve();
    for (const waiting of this.#scrapes.values()) waiting.reject(new Error(message));
    this.#scrapes.clear();
  }
}
