/**
 * The dashboard's live feed: new records as they are stored, read through the query API (so it
 * works alike for JSONL and SQLite, for records this process writes and for those of other
 * processes sharing the log), handed to listeners (the chain status) and to Server-Sent Events
 * streams.
 *
 * - **Reading.** The feed keeps the seq of the last record it read and asks the query for the
 *   records after it, oldest first, in pages of at most 500. {@link RecordFeed.wake} (called by
 *   the log's observer after each stored batch) and a poll timer (for other writers, and for
 *   `mcp-audit dashboard`, which writes nothing) start a read; reads are coalesced, one at a time.
 *   A failed read is logged (once until reads work again, and at most once a minute) and retried
 *   at the next poll.
 * - **Streams.** Each stream first catches up from the seq it is given (a reconnecting client's
 *   `Last-Event-ID`) by reading pages itself, as fast as its client takes them, then joins the
 *   feed's fan-out at the exact seq it reached: no record is missed or sent twice, whatever is
 *   stored meanwhile. The switch is made with no `await` between comparing its position with the
 *   feed's and joining.
 * - **Bounded.** A stream holds at most 1,000 events or 8 MiB that its client has not read; a
 *   client that falls further behind has its stream ended (it reconnects with `Last-Event-ID` and
 *   catches up from the log). At most `maxSubscribers` streams at once.
 *
 * @example
 * ```ts
 * import { openQuery } from "../audit/storage/open.ts";
 * import { RecordFeed } from "./feed.ts";
 *
 * const feed = new RecordFeed(openQuery("audit.jsonl"), { logger: console });
 * const body = feed.stream(null, false, AbortSignal.timeout(60_000));
 * // new Response(body, { headers: { "content-type": "text/event-stream" } })
 * feed.close();
 * ```
 *
 * @module
 */
import type { ReadRecord, RecordQuery } from "../audit/storage/query.ts";
import type { Logger } from "../log.ts";
import { encodeRecord, PING, RETRY } from "./sse.ts";

/** How the feed reads and streams. */
export interface FeedOptions {
  /** How often to look for records other processes stored (milliseconds; default 1000). */
  pollMs?: number;
  /**
   * Least time between the end of one read and the start of the next (default 50 ms): a proxy
   * under load wakes the feed at every stored batch, and the reads stay a few a second.
   */
  minGapMs?: number;
  logger: Pick<Logger, "warn">;
  /** Most streams at once (default 32). */
  maxSubscribers?: number;
  /** How often a stream sends a `: ping` comment (milliseconds; default 15 000). */
  heartbeatMs?: number;
  /** Most events a stream holds for a client that does not read (default 1,000). */
  maxQueuedEvents?: number;
  /** Most bytes a stream holds for a client that does not read (default 8 MiB). */
  maxQueuedBytes?: number;
}

/** Thrown by {@link RecordFeed.stream} when `maxSubscribers` streams are open (answer 503). */
export class TooManyStreamsError extends Error {
  override name = "TooManyStreamsError";
}

/** Records asked for in one read. */
const READ_LIMIT = 500;
const WARN_EVERY_MS = 60_000;

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Logs a failure that repeats: once until {@link Warning.ok}, and at most once a minute. */
class Warning {
  readonly #logger: Pick<Logger, "warn">;
  #at: number | null = null;

  constructor(logger: Pick<Logger, "warn">) {
    this.#logger = logger;
  }

  failed(what: string, e: unknown): void {
    const now = Date.now();
    if (this.#at !== null && now - this.#at < WARN_EVERY_MS) return;
    this.#at = now;
    this.#logger.warn(`dashboard: ${what}; retrying`, { error: message(e) });
  }

  ok(): void {
    this.#at = null;
  }
}

/** What a stream needs of its feed. */
interface Source {
  readonly query: RecordQuery;
  /** The last seq the feed read and handed out; null until it knows the log's end. */
  head(): number | null;
  readonly warning: Warning;
  /** Tracks background work, for {@link RecordFeed[Symbol.asyncDispose]}. */
  track(work: Promise<void>): void;
  remove(s: Subscriber): void;
}

interface Limits {
  heartbeatMs: number;
  maxEvents: number;
  maxBytes: number;
}

/** The seq of the last stored record, 0 when there is none. */
async function endSeq(query: RecordQuery): Promise<number> {
  const page = await query.page({ filter: {}, order: "newest", limit: 1 });
  return page.records[0]?.record.seq ?? 0;
}

/** One open stream. */
class Subscriber {
  readonly readable: ReadableStream<Uint8Array>;
  readonly #source: Source;
  readonly #full: boolean;
  readonly #limits: Limits;
  readonly #signal: AbortSignal;
  readonly #onAbort = () => this.end();
  #controller: ReadableStreamDefaultController<Uint8Array> | null = null;
  /** Events not yet taken by the client. */
  #queue: Uint8Array[] = [RETRY];
  #bytes = RETRY.length;
  /** The cursor as asked; null: the log's end when the stream starts. */
  readonly #after: number | null;
  /** The last seq queued (or passed over); null until the stream knows where it starts. */
  #cursor: number | null = null;
  #live = false;
  /** Catching up found nothing to read yet: wait for the feed before reading again. */
  #stalled = false;
  #ended = false;
  #wake: (() => void) | null = null;
  readonly #heartbeat: ReturnType<typeof setInterval>;
  /** What the feed had read when the stream was asked for (null: it did not know yet). */
  readonly #headAtStart: number | null;
  /** The log's end, looked up when the stream was asked for. */
  #end: Promise<number> | null = null;

  constructor(
    source: Source,
    after: number | null,
    full: boolean,
    signal: AbortSignal,
    limits: Limits,
  ) {
    this.#source = source;
    this.#after = after;
    this.#full = full;
    this.#limits = limits;
    this.#signal = signal;
    // From now on is after what the feed has read: known at once, without a read that could
    // see records stored after this call. Otherwise the log's end is looked up now.
    this.#headAtStart = source.head();
    if (after === null) this.#cursor = this.#headAtStart;
    if (this.#cursor === null) {
      const end = endSeq(source.query);
      // Awaited by the first read of the stream; a failure is handled there.
      source.track(end.then(() => undefined));
      this.#end = end;
    }
    this.#heartbeat = setInterval(() => {
      // A stream that could not read is retried at each heartbeat.
      this.#stalled = false;
      this.#push(PING);
    }, limits.heartbeatMs);
    Deno.unrefTimer(Number(this.#heartbeat));
    signal.addEventListener("abort", this.#onAbort, { once: true });
    this.readable = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
      },
      pull: (controller) => {
        const work = this.#pull(controller);
        this.#source.track(work);
        return work;
      },
      cancel: () => this.end(),
    }, { highWaterMark: 0 });
  }

  /** Hands the client one chunk when it asks, reading the log while it catches up. */
  async #pull(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    for (;;) {
      if (this.#ended) return;
      const chunk = this.#queue.shift();
      if (chunk !== undefined) {
        this.#bytes -= chunk.length;
        controller.enqueue(chunk);
        return;
      }
      if (!this.#live && !this.#stalled) {
        await this.#catchUp();
        continue;
      }
      const { promise, resolve } = Promise.withResolvers<void>();
      this.#wake = resolve;
      await promise;
    }
  }

  /** One step of catching up: finds where to start, or reads one page after the cursor. */
  async #catchUp(): Promise<void> {
    const source = this.#source;
    try {
      if (this.#cursor === null) {
        const asked = this.#end;
        this.#end = null;
        const end = await (asked ?? endSeq(source.query));
        if (this.#ended) return;
        // A cursor past the log's end (another log, or one cut back) starts at the end as the
        // feed knew it when the stream was asked for.
        const after = this.#after;
        this.#cursor = after === null ? end : after <= end ? after : this.#headAtStart ?? end;
      } else {
        const page = await source.query.page({
          filter: {},
          order: "oldest",
          after: this.#cursor,
          limit: READ_LIMIT,
        });
        if (this.#ended) return;
        for (const r of page.records) {
          if (r.record.seq <= this.#cursor) continue;
          this.#cursor = r.record.seq;
          this.#enqueue(encodeRecord(r, this.#full));
        }
        if (page.records.length === 0) this.#stalled = true;
      }
      source.warning.ok();
    } catch (e) {
      if (this.#ended) return;
      source.warning.failed("reading records for a stream failed", e);
      this.#stalled = true;
      return;
    }
    // No await from here: the feed hands out nothing between this look and joining it.
    const head = source.head();
    if (head !== null && this.#cursor >= head) {
      this.#live = true;
      this.#stalled = false;
    }
  }

  /** The feed read `records` (seq order, after every record it handed out before). */
  deliver(records: readonly ReadRecord[]): void {
    if (this.#ended) return;
    if (this.#live) {
      for (const r of records) {
        if (this.#cursor !== null && r.record.seq <= this.#cursor) continue;
        this.#cursor = r.record.seq;
        if (!this.#push(encodeRecord(r, this.#full))) return;
      }
    }
    // A stream catching up reads these itself; it may now be able to join.
    this.#stalled = false;
    this.#kick();
  }

  /** Queues an event for the client; ends the stream instead when the client is too far behind. */
  #push(chunk: Uint8Array): boolean {
    if (this.#ended) return false;
    const { maxEvents, maxBytes } = this.#limits;
    // One event larger than the byte cap still passes when nothing waits before it.
    if (
      this.#queue.length > 0 &&
      (this.#queue.length + 1 > maxEvents || this.#bytes + chunk.length > maxBytes)
    ) {
      this.end();
      return false;
    }
    this.#enqueue(chunk);
    this.#kick();
    return true;
  }

  #enqueue(chunk: Uint8Array): void {
    this.#queue.push(chunk);
    this.#bytes += chunk.length;
  }

  #kick(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  /** Ends the stream (client gone, too slow, aborted, feed closed). Idempotent. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    clearInterval(this.#heartbeat);
    this.#signal.removeEventListener("abort", this.#onAbort);
    this.#queue = [];
    this.#bytes = 0;
    this.#source.remove(this);
    try {
      this.#controller?.close();
    } catch {
      // Cancelled by its reader: already closed.
    }
    this.#kick();
  }
}

/**
 * New records of one log, for listeners and Server-Sent Events streams. See the module doc.
 */
export class RecordFeed implements AsyncDisposable {
  readonly #query: RecordQuery;
  readonly #warning: Warning;
  readonly #maxSubscribers: number;
  readonly #limits: Limits;
  readonly #timer: ReturnType<typeof setInterval>;
  #head: number | null = null;
  #again = false;
  #reading: Promise<void> | null = null;
  readonly #minGapMs: number;
  #gap: ReturnType<typeof setTimeout> | null = null;
  #closed = false;
  readonly #listeners = new Set<(records: readonly ReadRecord[]) => void>();
  readonly #subscribers = new Set<Subscriber>();
  readonly #work = new Set<Promise<void>>();
  readonly #source: Source;

  constructor(query: RecordQuery, options: FeedOptions) {
    this.#query = query;
    this.#warning = new Warning(options.logger);
    this.#maxSubscribers = options.maxSubscribers ?? 32;
    this.#limits = {
      heartbeatMs: options.heartbeatMs ?? 15_000,
      maxEvents: options.maxQueuedEvents ?? 1000,
      maxBytes: options.maxQueuedBytes ?? 8 << 20,
    };
    this.#source = {
      query,
      head: () => this.#head,
      warning: this.#warning,
      track: (work) => this.#track(work),
      remove: (s) => this.#subscribers.delete(s),
    };
    this.#minGapMs = options.minGapMs ?? 50;
    this.#timer = setInterval(() => this.wake(), options.pollMs ?? 1000);
    Deno.unrefTimer(Number(this.#timer));
    this.wake();
  }

  /** Streams open now. */
  get subscribers(): number {
    return this.#subscribers.size;
  }

  /** New records may be stored: read them soon (coalesced; at most one read in flight). */
  wake(): void {
    if (this.#closed) return;
    this.#again = true;
    if (this.#reading !== null || this.#gap !== null) return;
    const reading = this.#drain();
    this.#reading = reading;
    this.#track(reading.then(() => {
      this.#reading = null;
      if (this.#closed) return;
      // Woken while reading: read again after a pause, not at once.
      this.#gap = setTimeout(() => {
        this.#gap = null;
        if (this.#again) this.wake();
      }, this.#minGapMs);
      Deno.unrefTimer(Number(this.#gap));
    }));
  }

  async #drain(): Promise<void> {
    // One pass (every page there is); a wake during it is served after the gap.
    if (this.#again && !this.#closed) {
      this.#again = false;
      try {
        await this.#readNew();
        this.#warning.ok();
      } catch (e) {
        if (this.#closed) return;
        this.#warning.failed("reading new audit records failed", e);
        // Retried at the next poll, not at once.
        this.#again = false;
        return;
      }
    }
  }

  async #readNew(): Promise<void> {
    if (this.#head === null) {
      const end = await endSeq(this.#query);
      if (this.#closed) return;
      this.#head = end;
      // Streams waiting for the feed to know the log's end may join it now.
      this.#deliver([]);
    }
    for (;;) {
      const head: number = this.#head;
      const page = await this.#query.page({
        filter: {},
        order: "oldest",
        after: head,
        limit: READ_LIMIT,
      });
      if (this.#closed) return;
      const records = page.records.filter((r) => r.record.seq > head);
      if (records.length === 0) return;
      this.#head = records[records.length - 1]!.record.seq;
      this.#deliver(records);
      if (page.next === null) return;
    }
  }

  #deliver(records: readonly ReadRecord[]): void {
    if (records.length > 0) {
      for (const listener of this.#listeners) {
        try {
          listener(records);
        } catch (e) {
          this.#warning.failed("a listener of new records failed", e);
        }
      }
    }
    for (const s of [...this.#subscribers]) s.deliver(records);
  }

  /**
   * The SSE body: records after `after` (null: only those stored from now on), then live,
   * without gaps or duplicates; ends when `signal` aborts, the client falls too far behind, or
   * the feed closes. A seq past the log's end starts at the end; a negative one at the start;
   * NaN as null.
   * @throws {TooManyStreamsError} when `maxSubscribers` streams are open
   */
  stream(after: number | null, full: boolean, signal: AbortSignal): ReadableStream<Uint8Array> {
    if (this.#subscribers.size >= this.#maxSubscribers) {
      throw new TooManyStreamsError(
        `${this.#maxSubscribers} event streams are open, the most allowed at once`,
      );
    }
    const from = after === null || Number.isNaN(after) ? null : Math.max(0, Math.floor(after));
    const s = new Subscriber(this.#source, from, full, signal, this.#limits);
    if (this.#closed || signal.aborted) s.end();
    else this.#subscribers.add(s);
    return s.readable;
  }

  /** Calls `listener` with each batch of new records the feed reads, in seq order. */
  onRecords(listener: (records: readonly ReadRecord[]) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #track(work: Promise<void>): void {
    const settled = work.catch(() => undefined);
    this.#work.add(settled);
    void settled.then(() => this.#work.delete(settled));
  }

  /** Ends every stream and stops reading. Idempotent. The query is the caller's to close. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    if (this.#gap !== null) clearTimeout(this.#gap);
    this.#gap = null;
    for (const s of [...this.#subscribers]) s.end();
    this.#listeners.clear();
  }

  /** Closes, then waits for reads under way to settle. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    while (this.#work.size > 0) await Promise.all(this.#work);
  }
}
