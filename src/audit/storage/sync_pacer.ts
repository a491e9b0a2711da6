/**
 * Paces the background fsyncs of `audit.durability: batch`: at most one in flight, and at most
 * one started per `audit.sync_interval_ms`.
 *
 * A commit asks for a sync ({@link SyncPacer.request}). With none in flight and the interval since
 * the last one's start passed, it starts at once; otherwise it is due when the one in flight ends
 * and the interval has passed, and then one fsync covers every commit made meanwhile. An fsync
 * costs a few hundred microseconds of wall time and a good part of that in CPU, so under load this
 * turns one fsync a commit into at most `1000 / interval` a second; the power-loss window grows to
 * at most the interval plus one fsync. Interval 0 starts the next fsync as soon as the last ends.
 *
 * The timer of a due sync is kept referenced: the process does not end with records it has not
 * synced unless the store is closed, and `close` syncs synchronously and cancels it.
 *
 * @example
 * ```ts
 * import { SyncPacer } from "./sync_pacer.ts";
 * let syncs = 0;
 * const pacer = new SyncPacer({ intervalMs: 10, start: () => (syncs++, Promise.resolve()) });
 * pacer.request(); // starts now
 * pacer.request(); // due once that one ends and 10 ms have passed since it started
 * await pacer.settled(); // starts what is due now, and waits for it
 * ```
 *
 * @module
 */

/** The default `audit.sync_interval_ms`. */
export const DEFAULT_SYNC_INTERVAL_MS = 10;

/** The clock and the timer a pacer uses (tests pass their own). */
export interface PacerTimers {
  /** Milliseconds on a monotonic clock. */
  now(): number;
  /** Runs `run` once after `ms` milliseconds; returns what cancels it. */
  schedule(run: () => void, ms: number): () => void;
}

const SYSTEM_TIMERS: PacerTimers = {
  now: () => performance.now(),
  schedule: (run, ms) => {
    // Never early: a timer that fired before the interval ended would only be set again.
    const id = setTimeout(run, Math.ceil(ms));
    return () => clearTimeout(id);
  },
};

/** What a pacer needs. */
export interface SyncPacerOptions {
  /** Least time between the starts of two syncs, in milliseconds; 0: none. */
  intervalMs: number;
  /**
   * Starts one background sync covering everything written so far, or returns undefined when
   * there is nothing to sync (or the store failed or closed). The promise must not reject: the
   * store keeps a failure itself.
   */
  start: () => Promise<void> | undefined;
  timers?: PacerTimers;
}

/** Coalesces background syncs: one in flight, one started per interval. */
export class SyncPacer {
  readonly #intervalMs: number;
  readonly #start: () => Promise<void> | undefined;
  readonly #timers: PacerTimers;
  /** A commit since the last sync started asked for one. */
  #wanted = false;
  #inFlight: Promise<void> | undefined;
  /** Cancels the timer of a sync due once the interval has passed. */
  #timer: (() => void) | undefined;
  #lastStart = Number.NEGATIVE_INFINITY;

  constructor(options: SyncPacerOptions) {
    this.#intervalMs = Math.max(0, options.intervalMs);
    this.#start = options.start;
    this.#timers = options.timers ?? SYSTEM_TIMERS;
  }

  /** Whether a sync is in flight or due. */
  get busy(): boolean {
    return this.#inFlight !== undefined || this.#timer !== undefined;
  }

  /** Something was written: a sync will cover it, now or when the interval allows. */
  request(): void {
    this.#wanted = true;
    this.#next();
  }

  /**
   * Starts a due sync now, without waiting for the interval, and resolves when no sync is in
   * flight or due.
   */
  async settled(): Promise<void> {
    for (;;) {
      if (this.#timer !== undefined) {
        this.#clearTimer();
        this.#run();
      }
      const inFlight = this.#inFlight;
      if (inFlight === undefined) return;
      await inFlight;
    }
  }

  /**
   * Drops a due sync: a synchronous sync covered everything (or the store is closing and syncs
   * itself). A sync in flight ends on its own.
   */
  cancel(): void {
    this.#wanted = false;
    this.#clearTimer();
  }

  #next(): void {
    if (!this.#wanted || this.#inFlight !== undefined || this.#timer !== undefined) return;
    const wait = this.#lastStart + this.#intervalMs - this.#timers.now();
    if (wait <= 0) return this.#run();
    this.#timer = this.#timers.schedule(() => {
      this.#timer = undefined;
      this.#next();
    }, wait);
  }

  #run(): void {
    this.#wanted = false;
    const started = this.#start();
    if (started === undefined) return;
    this.#lastStart = this.#timers.now();
    const after = (): void => {
      if (this.#inFlight === done) this.#inFlight = undefined;
      this.#next();
    };
    // Both ways: a promise broken against the contract must not leave the pacer stuck.
    const done: Promise<void> = started.then(after, after);
    this.#inFlight = done;
  }

  #clearTimer(): void {
    if (this.#timer === undefined) return;
    const cancel = this.#timer;
    this.#timer = undefined;
    cancel();
  }
}
