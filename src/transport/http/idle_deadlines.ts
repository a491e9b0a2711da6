/**
 * Idle deadlines of equal length on one timer: each upstream request of the proxy is cut when the
 * upstream stays quiet for `ms` (waiting for headers, or between body chunks). A timer and its
 * clearing per request and per chunk cost more than the request's own work here; with one length
 * for all, the deadlines expire in the order they were last armed, so an insertion-ordered set
 * holds them in deadline order and one timer, set for the earliest, serves them all.
 *
 * @module
 */

/** Something with an idle deadline; told once when it passes. */
export interface Expiring {
  /** When it expires, on the `performance.now()` clock; set by {@link IdleDeadlines.arm}. */
  expiresAt: number;
  /** Called when the deadline passes unrenewed. */
  expire(): void;
}

/**
 * Deadlines of `ms` after each {@link arm}, on one timer.
 *
 * @example
 * ```ts
 * const deadlines = new IdleDeadlines(30_000);
 * const request = { expiresAt: 0, expire: () => controller.abort() };
 * deadlines.arm(request); // again on every chunk
 * deadlines.disarm(request); // done
 * ```
 */
export class IdleDeadlines {
  #ms: number;
  #now: () => number;
  /** In deadline order: re-arming moves an entry to the end. */
  #armed = new Set<Expiring>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** While expired entries are told: an entry armed then must not set a timer of its own. */
  #firing = false;

  /**
   * @param ms the idle time allowed
   * @param now the clock (injected for tests)
   */
  constructor(ms: number, now: () => number = () => performance.now()) {
    this.#ms = ms;
    this.#now = now;
  }

  /** Entries armed now. */
  get size(): number {
    return this.#armed.size;
  }

  /** Starts, or restarts, `entry`'s deadline: `ms` from now. */
  arm(entry: Expiring): void {
    entry.expiresAt = this.#now() + this.#ms;
    this.#armed.delete(entry);
    this.#armed.add(entry);
    if (this.#timer === undefined && !this.#firing) this.#schedule(entry.expiresAt);
  }

  /** Stops `entry`'s deadline. The timer goes with the last one: it holds nothing open idle. */
  disarm(entry: Expiring): void {
    this.#armed.delete(entry);
    if (this.#armed.size === 0 && this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  #schedule(at: number): void {
    this.#timer = setTimeout(this.#fire, Math.max(0, Math.ceil(at - this.#now())));
  }

  #fire = (): void => {
    this.#timer = undefined;
    this.#firing = true;
    try {
      const now = this.#now();
      for (const entry of this.#armed) {
        if (entry.expiresAt > now) break;
        this.#armed.delete(entry);
        entry.expire();
      }
    } finally {
      this.#firing = false;
    }
    const first = this.#armed.values().next();
    if (!first.done && this.#timer === undefined) this.#schedule(first.value.expiresAt);
  };
}
