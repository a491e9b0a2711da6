/**
 * Counts of what the transports do that no audit record describes: HTTP upstream retries and
 * upstream processes started and ended. Plain numbers, bumped on the transport's path at the cost
 * of an increment and read by the metrics at scrape time.
 *
 * @module
 */

/** How an upstream process ended, as the metrics label it. */
export type UpstreamExit = "clean" | "error" | "signal";

/** What the metrics read of the transports' counters. */
export interface ProxyCounts {
  /** Retries so far, by reason. */
  readonly retries: ReadonlyMap<string, number>;
  readonly upstreamStarts: number;
  /** Upstream processes ended so far, by how. */
  readonly upstreamExits: ReadonlyMap<UpstreamExit, number>;
  /** Open HTTP sessions now. */
  sessionsOpen(): number;
}

/** The counters as plain data, to send to another thread. */
export interface ProxyCountsSnapshot {
  retries: [string, number][];
  upstreamStarts: number;
  upstreamExits: [UpstreamExit, number][];
  sessionsOpen: number;
}

/** Transport counters; one per process, shared by every session. */
export class ProxyStats implements ProxyCounts {
  #retries = new Map<string, number>();
  #exits = new Map<UpstreamExit, number>();
  #started = 0;
  /** Open HTTP sessions, as the transport in use counts them; 0 on stdio. */
  sessionsOpen: () => number = () => 0;

  /** An HTTP upstream request is sent again: `network`, or the status code that caused it. */
  retried(reason: string): void {
    this.#retries.set(reason, (this.#retries.get(reason) ?? 0) + 1);
  }

  /** An upstream process was started. */
  upstreamStarted(): void {
    this.#started++;
  }

  /** An upstream process ended: exit code 0, another code, or a signal. */
  upstreamEnded(code: number | null, signal: string | null): void {
    const how: UpstreamExit = signal !== null ? "signal" : code === 0 ? "clean" : "error";
    this.#exits.set(how, (this.#exits.get(how) ?? 0) + 1);
  }

  get retries(): ReadonlyMap<string, number> {
    return this.#retries;
  }

  get upstreamStarts(): number {
    return this.#started;
  }

  get upstreamExits(): ReadonlyMap<UpstreamExit, number> {
    return this.#exits;
  }

  /** Everything counted so far, as plain data. */
  snapshot(): ProxyCountsSnapshot {
    return {
      retries: [...this.#retries],
      upstreamStarts: this.#started,
      upstreamExits: [...this.#exits],
      sessionsOpen: this.sessionsOpen(),
    };
  }
}

/** Counters read back from a {@linkcode ProxyStats.snapshot}. */
export function countsFrom(s: ProxyCountsSnapshot): ProxyCounts {
  const retries = new Map(s.retries);
  const exits = new Map(s.upstreamExits);
  return {
    retries,
    upstreamStarts: s.upstreamStarts,
    upstreamExits: exits,
    sessionsOpen: () => s.sessionsOpen,
  };
}
