/**
 * Coalescing writes: bytes pushed while a write is in flight go out together in the next one.
 * Deno's stdout is slow per write; under load this turns many small writes into few large ones.
 *
 * @module
 */

/** Raised by `push` and `flush` once the sink has failed; carries the sink's error. */
export class SinkClosedError extends Error {
  override name = "SinkClosedError";
}

/** Options of a {@link BatchWriter}. */
export interface BatchWriterOptions {
  /** Called before each write, e.g. to make audit records durable first. */
  beforeWrite?: () => void;
  /** Queued bytes above which `push` asks the caller to wait. */
  highWaterMark?: number;
}

/**
 * Writes byte chunks to a `WritableStream` in order, batching what queues up.
 *
 * @example
 * ```ts
 * const w = new BatchWriter(Deno.stdout.writable);
 * w.push(new TextEncoder().encode("a\n"));
 * w.push(new TextEncoder().encode("b\n"));
 * await w.flush(); // one write of "a\nb\n"
 * ```
 */
export class BatchWriter {
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #queue: Uint8Array[] = [];
  #queued = 0;
  #running: Promise<void> | undefined;
  #failure: unknown;
  #beforeWrite: () => void;
  #highWaterMark: number;

  constructor(sink: WritableStream<Uint8Array>, options: BatchWriterOptions = {}) {
    this.#writer = sink.getWriter();
    this.#beforeWrite = options.beforeWrite ?? (() => {});
    this.#highWaterMark = options.highWaterMark ?? 4 << 20;
  }

  /** The sink's error, once a write has failed. */
  get failure(): unknown {
    return this.#failure;
  }

  /**
   * Queues bytes and starts writing at the end of the current task. Returns a promise to await
   * when the queue is over the high-water mark, `undefined` otherwise.
   */
  push(bytes: Uint8Array): Promise<void> | undefined {
    if (this.#failure !== undefined) {
      throw new SinkClosedError("the sink has failed", { cause: this.#failure });
    }
    this.#queue.push(bytes);
    this.#queued += bytes.length;
    this.#running ??= this.#drain();
    return this.#queued > this.#highWaterMark ? this.flush() : undefined;
  }

  /** Resolves when everything pushed so far has been written; rejects if the sink failed. */
  async flush(): Promise<void> {
    while (this.#running !== undefined) await this.#running;
    if (this.#failure !== undefined) {
      throw new SinkClosedError("the sink has failed", { cause: this.#failure });
    }
  }

  /**
   * Flushes, then closes the sink; a sink whose write failed (or a failure of `beforeWrite`) is
   * closed all the same, so that the other side sees the end. Never throws.
   */
  async close(): Promise<void> {
    try {
      await this.flush();
    } catch {
      // What was queued cannot be written; the sink is still closed below.
    }
    try {
      await this.#writer.close();
    } catch {
      // The sink is gone already; nothing more can reach it.
    }
  }

  async #drain(): Promise<void> {
    // Let the rest of the current task queue up more bytes first.
    await Promise.resolve();
    try {
      while (this.#queue.length > 0) {
        const parts = this.#queue;
        const size = this.#queued;
        this.#queue = [];
        this.#queued = 0;
        this.#beforeWrite();
        await this.#writer.write(parts.length === 1 ? parts[0]! : join(parts, size));
      }
    } catch (e) {
      this.#failure = e ?? new Error("write failed");
      this.#queue = [];
      this.#queued = 0;
    } finally {
      this.#running = undefined;
    }
  }
}

function join(parts: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
