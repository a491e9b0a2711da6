/**
 * One exchange per MCP session, so that requests and answers correlate within a session whatever
 * HTTP request carries them. Bounded: idle sessions beyond the cap are forgotten, oldest first.
 *
 * @module
 */
import type { Exchange } from "../../pipeline/exchange.ts";

/** Finds or creates the exchange of an HTTP request. */
export class SessionRegistry {
  #make: (session: string | null) => Exchange;
  #byId = new Map<string, Exchange>();
  /** Exchanges of requests without a session, kept while they wait for answers (bounded). */
  #loose = new Set<Exchange>();
  #max: number;
  #onEvict: (exchange: Exchange) => void;

  /**
   * @param make creates the exchange of a new session (or of a request without one)
   * @param max most sessions kept
   * @param onEvict told of each session forgotten to make room
   */
  constructor(
    make: (session: string | null) => Exchange,
    max: number,
    onEvict: (exchange: Exchange) => void,
  ) {
    this.#make = make;
    this.#max = max;
    this.#onEvict = onEvict;
  }

  /**
   * The exchange for `session`; a request without a session (the stateless revision, or an
   * `initialize`) gets one of its own.
   */
  forRequest(session: string | null): Exchange {
    if (session === null) {
      // Pruned only when full: a sweep per request would cost O(n) each time.
      if (this.#loose.size >= this.#max) this.#prune();
      const exchange = this.#make(null);
      this.#loose.add(exchange);
      return exchange;
    }
    let exchange = this.#byId.get(session);
    if (exchange === undefined) {
      exchange = this.#make(session);
      this.#add(session, exchange);
    } else {
      // Most recently used last, so that eviction takes the least recently used.
      this.#byId.delete(session);
      this.#byId.set(session, exchange);
    }
    return exchange;
  }

  /** Sessions known now: named ones, and requests without one still waiting for answers. */
  get open(): number {
    return this.#byId.size + this.#loose.size;
  }

  /** The server named the session of `exchange` (an `initialize` answer). */
  adopt(exchange: Exchange, session: string): void {
    // Kept by its session from now on: a sessionless exchange left in `#loose` after its session
    // ended would be held until the set next filled up, ten thousand of them.
    this.#loose.delete(exchange);
    exchange.session = session;
    exchange.vouch();
    const known = this.#byId.get(session);
    if (known === exchange) return;
    this.#add(session, exchange);
  }

  /**
   * An HTTP request of `exchange` is over: a sessionless exchange with nothing left to answer is
   * forgotten at once (in the stateless revision every request has one).
   */
  settle(exchange: Exchange): void {
    if (exchange.session === null && !exchange.hasPending()) this.#loose.delete(exchange);
  }

  /** The session ended (DELETE). */
  end(session: string): void {
    this.#byId.delete(session);
  }

  /** Every live session's exchange, and those of sessionless requests still waiting. */
  all(): Exchange[] {
    this.#prune();
    return [...this.#byId.values(), ...this.#loose];
  }

  #prune(): void {
    for (const e of this.#loose) {
      if (!e.hasPending() || e.session !== null) this.#loose.delete(e);
    }
    while (this.#loose.size > this.#max) {
      const oldest = this.#loose.values().next().value;
      if (oldest === undefined) break;
      this.#loose.delete(oldest);
    }
  }

  #add(session: string, exchange: Exchange): void {
    this.#byId.set(session, exchange);
    while (this.#byId.size > this.#max) {
      const oldest = this.#byId.entries().next().value;
      if (oldest === undefined) break;
      this.#byId.delete(oldest[0]);
      this.#onEvict(oldest[1]);
    }
  }
}
