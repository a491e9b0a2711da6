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
  /**
   * An upper bound of the bytes an item takes in a request (see {@linkcode spanWeight},
   * {@linkcode logRecordWeight}); without it only items are counted.
   */
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

/** What an ASCII character adds to its byte in JSON: 5 for a control, 1 for `"` and backslash. */
const ASCII_EXTRA = (() => {
  const extra = new Uint8Array(128);
  extra.fill(5, 0, 0x20);
  extra[0x22] = 1;
  extra[0x5c] = 1;
  return extra;
})();

/**
 * An upper bound of the bytes `text` takes in an OTLP request, JSON or protobuf: its UTF-8 length
 * with JSON's escapes counted — `"` and backslash 2 bytes, other control characters 6 (`\u001b`), a
 * surrogate 6 (a lone one is written `\udxxx`; a pair is 4 bytes of UTF-8). Control characters
 * with a short escape (`\n`) take 2; 6 is their bound.
 *
 * @example
 * ```ts
 * import { textWeight } from "./export_queue.ts";
 * textWeight("é\"x"); // 5
 * ```
 */
export function textWeight(text: string): number {
  const length = text.length;
  let n = length;
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += ASCII_EXTRA[c]!;
    else if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c <= 0xdfff) n += 5;
    else n += 2;
  }
  return n;
}

/** Counted for each attribute beyond its key and value: JSON's `{"key":,"value":{"…Value":}}`. */
const ATTRIBUTE_OVERHEAD = 64;
/** Counted for each span or log record beyond its texts: ids, times, kind, flags, field names. */
const ITEM_OVERHEAD = 512;
/** What a value nested more than 8 levels deep is counted as, unread (ours never are). */
const DEEP_VALUE = 1 << 20;

/** An upper bound of the bytes an attribute value or log body takes in a request. */
export function valueWeight(value: unknown, depth = 0): number {
  if (value === null || value === undefined) return 16;
  if (typeof value === "string") return 24 + textWeight(value);
  if (typeof value !== "object") return 48;
  // Our records carry strings and numbers only; anything nested is counted, boundedly.
  if (depth > 8) return DEEP_VALUE;
  if (value instanceof Uint8Array) return 24 + Math.ceil(value.length / 3) * 4;
  let n = 32;
  if (Array.isArray(value)) {
    for (const v of value) n += valueWeight(v, depth + 1);
    return n;
  }
  for (const [k, v] of Object.entries(value)) {
    n += ATTRIBUTE_OVERHEAD + textWeight(k) + valueWeight(v, depth + 1);
  }
  return n;
}

/** An upper bound of the bytes a set of attributes takes in a request. */
export function attributesWeight(attributes: Readonly<Record<string, unknown>>): number {
  let n = 0;
  for (const key in attributes) {
    n += ATTRIBUTE_OVERHEAD + textWeight(key) + valueWeight(attributes[key]);
  }
  return n;
}

/** An upper bound of the bytes a span takes in an OTLP request (the resource's apart). */
export function spanWeight(span: ReadableSpan): number {
  let n = ITEM_OVERHEAD + textWeight(span.name) + attributesWeight(span.attributes);
  if (span.status.message !== undefined) n += textWeight(span.status.message);
  const state = span.parentSpanContext?.traceState?.serialize();
  if (state !== undefined) n += textWeight(state);
  for (const e of span.events) {
    n += ITEM_OVERHEAD + textWeight(e.name) + attributesWeight(e.attributes ?? {});
  }
  for (const l of span.links) n += ITEM_OVERHEAD + attributesWeight(l.attributes ?? {});
  return n;
}

/** An upper bound of the bytes a log record takes in an OTLP request (the resource's apart). */
export function logRecordWeight(record: ReadableLogRecord): number {
  return ITEM_OVERHEAD + valueWeight(record.body) + attributesWeight(record.attributes) +
    textWeight(record.eventName ?? "") + textWeight(record.severityText ?? "");
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
