/**
 * Counts of what the transports do that no audit record describes: HTTP upstream retries and
 * upstream processes started and ended. Plain numbers, bumped on the transport's path at the cost
 * of an increment and read by the metrics at scrape time.
 *
 * @module
 */

/** How an upstream process ended, as the metrics label it. */
export type UpstreamExit = "clean" | "error" | "signal";

/** Transport counters; one per process, shared by every session. */
export class ProxyStats {
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

  /** Retries so far, by reason. */
  get retries(): ReadonlyMap<string, number> {
    return this.#retries;
  }

  get upstreamStarts(): number {
    return this.#started;
  }

  /** Upstream processes ended so far, by how. */
  get upstreamExits(): ReadonlyMap<UpstreamExit, number> {
    return this.#exits;
  }
}
