/**
 * One log commit per event-loop turn for every HTTP request of that turn. Requests arriving
 * together append their records, then wait here; one `commit` (the log's `beforeForward`: one
 * store write, one syscall) runs at the end of the turn for all of them, and only then may any of
 * them send bytes on. Scheduled with `setImmediate`, which runs once the turn's I/O callbacks are
 * done: `setTimeout(0)` costs about 2 ms in Deno.
 *
 * @module
 */
import { setImmediate } from "node:timers";

/**
 * Groups the record commits of one event-loop turn into one.
 *
 * @example
 * ```ts
 * const turns = new TurnCommit(() => log.beforeForward());
 * exchange.pass("client", body, via); // appends records
 * await turns.wait(); // they are stored (or this throws the store's error)
 * ```
 */
export class TurnCommit {
  #commit: () => void;
  /** The turn's waiters share one promise, settled together by one commit. */
  #turn: PromiseWithResolvers<void> | undefined;

  /** @param commit stores every record appended so far; throws when it cannot */
  constructor(commit: () => void) {
    this.#commit = commit;
  }

  /**
   * Resolves once a commit that started after this call has stored the records appended before
   * it; rejects with that commit's error, and nothing of the turn is sent on (fail closed). A
   * later turn tries again: the log decides what is final (a failed write fails it for good; a
   * store that was busy, e.g. another writer holding SQLite's lock past the timeout, is not).
   */
  wait(): Promise<void> {
    if (this.#turn === undefined) {
      this.#turn = Promise.withResolvers<void>();
      // Each waiter sees the failure through its own `await`; none is left to end the process.
      this.#turn.promise.catch(() => {});
      setImmediate(this.#run);
    }
    return this.#turn.promise;
  }

  #run = (): void => {
    const turn = this.#turn;
    // Cleared first: a wait made while the commit runs belongs to the next turn.
    this.#turn = undefined;
    if (turn === undefined) return;
    try {
      this.#commit();
    } catch (e) {
      turn.reject(e);
      return;
    }
    turn.resolve();
  };
}
