/**
 * The bounded batching queue between the audit log's observer and the OTLP export, used as the
 * span processor and as the log record processor.
 *
 * The SDK's batch processors are not used: they read `OTEL_BSP_*` / `OTEL_BLRD_*` variables,
 * report drops only through `diag`, and their shutdown waits as long as the export does. This one
 * never blocks whoever pushes (a full queue drops the new item and says so), keeps one export in
 * flight per signal, and on shutdown drains until a deadline, then gives up on the rest and
 * returns: a collector that hangs never keeps the proxy from exiting.
 *
 * @example
 * ```ts
 * import { ExportQueue } from "./export_queue.ts";
 * import { NO_EXPORT_HEALTH } from "./export_health.ts";
 * import { Logger } from "../log.ts";
 *
 * const queue = new ExportQueue<string>({
 *   signal: "logs",
 *   capacity: 1024,
 *   batchSize: 64,
 *   flushIntervalMs: 1000,
 *   shutdownTimeoutMs: 10_000,
 *   health: NO_EXPORT_HEALTH,
 *   logger: new Logger("info", (line) => console.error(line.trimEnd())),
 *   stop: new AbortController(),
 *   send: (batch) => {
 *     console.log(batch);
 *     return Promise.resolve({ kind: "sent" });
 *   },
 * });
 * queue.push("one");
 * await queue.shutdown();
 * ```
 *
 * @module
 */
import type { Context } from "@opentelemetry/api";
import type { ReadableSpan, Span, SpanProcessor } from "@opentelemetry/sdk-trace";
import type {
  LogRecordProcessor,
  ReadableLogRecord,
  ReadWriteLogRecord,
} from "@opentelemetry/sdk-logs";
import type { DropReason, ExportHealth, ExportSignal } from "./export_health.ts";
import type { Logger } from "../log.ts";

/** What became of one batch. */
export type SendOutcome = { kind: "sent" } | { kind: "failed"; reason: DropReason };

/** Settings of one queue. */
export interface ExportQueueOptions<T> {
  signal: ExportSignal;
  /** At most this many items wait (`otel.queue_size`). */
  capacity: number;
  /** At most this many items go in one request (`otel.batch_size`). */
  batchSize: number;
  /** A partial batch waits at most this long (`otel.flush_interval_ms`). */
  flushIntervalMs: number;
  /** How long `shutdown` drains (`otel.shutdown_timeout_ms`). */
  shutdownTimeoutMs: number;
  /** Exports one batch; resolves when the export has ended. Must end soon once `stop` aborts. */
  send: (batch: T[]) => Promise<SendOutcome>;
  /** Aborted when shutdown's deadline passes, so that the export in flight ends. */
  stop: AbortController;
  health: ExportHealth;
  logger: Logger;
  /** The size of an item in bytes, when items can be large (log records carry whole lines). */
  weigh?: (item: T) => number;
  /** At most this many bytes wait (by `weigh`); one item alone is always accepted. */
  maxBytes?: number;
  /** At most this many bytes go in one request (by `weigh`); one item alone always goes. */
  maxBatchBytes?: number;
}

/**
 * A bounded FIFO of items to export, sent in batches of at most `batchSize`, one batch at a time:
 * as soon as a full batch is waiting, or `flushIntervalMs` after the first item of a partial one.
 * Pushing never blocks and never throws.
 */
export class ExportQueue<T> {
  #o: ExportQueueOptions<T>;
  #items: T[] = [];
  #weights: number[] = [];
  #bytes = 0;
  #inFlight: Promise<void> | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  #stopped = false;
  #shutdown: Promise<void> | undefined;
  /** Items dropped for a full queue since the last one accepted. */
  #fullDrops = 0;

  constructor(options: ExportQueueOptions<T>) {
    this.#o = options;
    options.health.queue(options.signal, () => ({
      depth: this.#items.length,
      capacity: options.capacity,
    }));
  }

  /** Items waiting (not counting the batch in flight). */
  get depth(): number {
    return this.#items.length;
  }

  /** Queues `item`; false when it was dropped (queue full, or shut down). */
  push(item: T): boolean {
    const o = this.#o;
    if (this.#closed) {
      o.health.dropped(o.signal, "shutdown", 1);
      return false;
    }
    const weight = o.weigh?.(item) ?? 0;
    const overBytes = o.maxBytes !== undefined && this.#items.length > 0 &&
      this.#bytes + weight > o.maxBytes;
    if (this.#items.length >= o.capacity || overBytes) {
      o.health.dropped(o.signal, "queue_full", 1);
      if (this.#fullDrops++ === 0) {
        o.logger.warn("otel queue full: dropping new items until it drains", {
          signal: o.signal,
          capacity: o.capacity,
          queued_bytes: o.maxBytes === undefined ? undefined : this.#bytes,
        });
      }
      return false;
    }
    if (this.#fullDrops > 0) {
      o.logger.warn("otel queue accepting again", {
        signal: o.signal,
        dropped: this.#fullDrops,
      });
      this.#fullDrops = 0;
    }
    this.#items.push(item);
    this.#weights.push(weight);
    this.#bytes += weight;
    this.#schedule();
    return true;
  }

  /** Exports everything queued now, batch after batch, and resolves when the queue is empty. */
  async flush(): Promise<void> {
    while (!this.#stopped) {
      if (this.#inFlight !== null) await this.#inFlight;
      else if (this.#items.length > 0) this.#start();
      else return;
    }
  }

  /**
   * Stops taking items and drains: exports what is queued, batch after batch, until
   * `shutdownTimeoutMs` has passed. Then the export in flight is aborted, whatever is still queued
   * is dropped (`shutdown`), and it returns without waiting further. Never rejects; a second call
   * returns the first's promise.
   */
  shutdown(): Promise<void> {
    this.#shutdown ??= this.#drain();
    return this.#shutdown;
  }

  /** Resolves when no export is in flight (for tests and orderly teardown). */
  async idle(): Promise<void> {
    while (this.#inFlight !== null) await this.#inFlight;
  }

  async #drain(): Promise<void> {
    const o = this.#o;
    this.#closed = true;
    this.#clearTimer();
    let expired = false;
    let wake: () => void = () => {};
    const deadline = new Promise<void>((resolve) => wake = resolve);
    const timer = setTimeout(() => {
      expired = true;
      wake();
    }, o.shutdownTimeoutMs);
    try {
      while (!expired) {
        if (this.#inFlight !== null) await Promise.race([this.#inFlight, deadline]);
        else if (this.#items.length > 0) this.#start();
        else return;
      }
      this.#stopped = true;
      o.stop.abort(new Error("otel.shutdown_timeout_ms passed"));
      const left = this.#items.length;
      this.#take(left);
      if (left > 0) {
        o.health.dropped(o.signal, "shutdown", left);
        o.logger.warn("otel shutdown deadline passed: queued items dropped", {
          signal: o.signal,
          dropped: left,
          shutdown_timeout_ms: o.shutdownTimeoutMs,
        });
      }
    } finally {
      clearTimeout(timer);
    }
  }

  #schedule(): void {
    if (this.#inFlight !== null || this.#stopped || this.#items.length === 0) return;
    if (this.#closed || this.#batchReady()) {
      this.#start();
      return;
    }
    if (this.#timer === undefined) {
      const timer = setTimeout(() => {
        this.#timer = undefined;
        this.#start();
      }, this.#o.flushIntervalMs);
      // A partial batch must not keep the process alive; shutdown exports it.
      Deno.unrefTimer(Number(timer));
      this.#timer = timer;
    }
  }

  #batchReady(): boolean {
    const o = this.#o;
    if (this.#items.length >= o.batchSize) return true;
    return o.maxBatchBytes !== undefined && this.#bytes >= o.maxBatchBytes;
  }

  #clearTimer(): void {
    if (this.#timer === undefined) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Sends the next batch; one at a time. */
  #start(): void {
    this.#clearTimer();
    if (this.#inFlight !== null || this.#stopped) return;
    const batch = this.#take(this.#batchLength());
    if (batch.length === 0) return;
    this.#inFlight = this.#send(batch).finally(() => {
      this.#inFlight = null;
      this.#schedule();
    });
  }

  #batchLength(): number {
    const o = this.#o;
    const most = Math.min(o.batchSize, this.#items.length);
    if (o.maxBatchBytes === undefined) return most;
    let n = 0;
    let bytes = 0;
    while (n < most) {
      const w = this.#weights[n] ?? 0;
      if (n > 0 && bytes + w > o.maxBatchBytes) break;
      bytes += w;
      n++;
    }
    return n;
  }

  #take(n: number): T[] {
    const batch = this.#items.splice(0, n);
    for (const w of this.#weights.splice(0, n)) this.#bytes -= w;
    return batch;
  }

  async #send(batch: T[]): Promise<void> {
    const o = this.#o;
    let outcome: SendOutcome;
    try {
      outcome = await o.send(batch);
    } catch (e) {
      o.logger.warn("otel export threw", {
        signal: o.signal,
        error: e instanceof Error ? e.message : String(e),
      });
      outcome = { kind: "failed", reason: "error" };
    }
    if (outcome.kind === "failed") o.health.dropped(o.signal, outcome.reason, batch.length);
  }
}

/** The span processor: every ended span goes into the queue. */
export class QueueSpanProcessor implements SpanProcessor {
  readonly queue: ExportQueue<ReadableSpan>;
  constructor(queue: ExportQueue<ReadableSpan>) {
    this.queue = queue;
  }
  onStart(_span: Span, _parentContext: Context): void {}
  onEnd(span: ReadableSpan): void {
    this.queue.push(span);
  }
  forceFlush(): Promise<void> {
    return this.queue.flush();
  }
  shutdown(): Promise<void> {
    return this.queue.shutdown();
  }
}

/** The log record processor: every emitted record goes into the queue. */
export class QueueLogRecordProcessor implements LogRecordProcessor {
  readonly queue: ExportQueue<ReadableLogRecord>;
  constructor(queue: ExportQueue<ReadableLogRecord>) {
    this.queue = queue;
  }
  onEmit(record: ReadWriteLogRecord, _context?: Context): void {
    this.queue.push(record);
  }
  forceFlush(): Promise<void> {
    return this.queue.flush();
  }
  shutdown(): Promise<void> {
    return this.queue.shutdown();
  }
}
