/**
 * Test helpers for the storage's syncs: a clock and timers that move only when told, and a count
 * of the file calls the stores make (writes and fsyncs), taken by wrapping `Deno.FsFile`'s methods
 * for the length of a test.
 *
 * @module
 */
import type { PacerTimers } from "../sync_pacer.ts";

/** A clock that moves only when told, and timers that fire only when it passes them. */
export class ManualTimers implements PacerTimers {
  time = 1000;
  #next = 1;
  readonly #due = new Map<number, { at: number; run: () => void }>();

  now(): number {
    return this.time;
  }

  schedule(run: () => void, ms: number): () => void {
    const id = this.#next++;
    this.#due.set(id, { at: this.time + ms, run });
    return () => this.#due.delete(id);
  }

  /** Timers set and not yet fired or cancelled. */
  get pending(): number {
    return this.#due.size;
  }

  /** Moves the clock by `ms`, running the timers it passes in order. */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      const first = [...this.#due].sort((a, b) => a[1].at - b[1].at)[0];
      if (first === undefined || first[1].at > end) break;
      this.#due.delete(first[0]);
      this.time = first[1].at;
      first[1].run();
    }
    this.time = end;
  }
}

/** How many times each file call was made since the counter was set up. */
export interface FileCallCounts {
  writeSync: number;
  syncData: number;
  syncDataSync: number;
}

/**
 * Counts `Deno.FsFile` writes and fsyncs, every file of the process, until disposed.
 *
 * @example
 * ```ts
 * import { FileCalls } from "./sync_probes.ts";
 * using calls = new FileCalls();
 * // … commit …
 * calls.counts.writeSync; // writes made since
 * ```
 */
export class FileCalls implements Disposable {
  readonly counts: FileCallCounts = { writeSync: 0, syncData: 0, syncDataSync: 0 };
  readonly #restore: (() => void)[] = [];

  constructor() {
    const proto = Deno.FsFile.prototype;
    const counts = this.counts;
    const { writeSync, syncData, syncDataSync } = proto;
    proto.writeSync = function (this: Deno.FsFile, p: Uint8Array): number {
      counts.writeSync++;
      return writeSync.call(this, p);
    };
    proto.syncData = function (this: Deno.FsFile): Promise<void> {
      counts.syncData++;
      return syncData.call(this);
    };
    proto.syncDataSync = function (this: Deno.FsFile): void {
      counts.syncDataSync++;
      return syncDataSync.call(this);
    };
    this.#restore.push(() => {
      proto.writeSync = writeSync;
      proto.syncData = syncData;
      proto.syncDataSync = syncDataSync;
    });
  }

  /** Counts since the last reset, then starts again from zero. */
  take(): FileCallCounts {
    const taken = { ...this.counts };
    this.counts.writeSync = 0;
    this.counts.syncData = 0;
    this.counts.syncDataSync = 0;
    return taken;
  }

  [Symbol.dispose](): void {
    for (const restore of this.#restore) restore();
  }
}
