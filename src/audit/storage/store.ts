/**
 * The interface every audit storage backend implements.
 *
 * @module
 */
import type { AuditRecord } from "../record.ts";
import type { JsonObject } from "../../jsonrpc/json.ts";

/** A line that was cut short by a crash and kept where it was. */
export interface TornLine {
  /** Byte offset of the line's first byte in its file. */
  offset: number;
  /** Its length in bytes. */
  length: number;
  /** The file it is in. */
  file: string;
}

/** What a store found when it opened. */
export interface OpenState {
  /** The stored text of the last complete record, when there is one. */
  last: string | undefined;
  /** Lines after the last complete record that were torn and have been closed. */
  torn: TornLine[];
}

/**
 * What a store found when it checked, before a batch, that it still writes where it should.
 *
 * - `deleted`: the path names nothing and the file written so far has no name left;
 * - `moved`: the path names nothing, the file lives on under another name;
 * - `replaced`: something the store did not create sits at the path (a file, a symlink…);
 * - `truncated` / `extended`: the file is still ours, but shorter or longer than what was written.
 *
 * The first three leave the store waiting for {@link RecordStore.startNewFile}; the last two are
 * already dealt with (a partial line closed) and only need recording.
 */
export type TargetChange =
  | {
    kind: "deleted" | "moved" | "replaced";
    /** True when the old file still has a name, so a closing record written to it is kept. */
    oldFileLinked: boolean;
    /** One sentence for the log and the `audit/recover` event. */
    reason: string;
  }
  | {
    kind: "truncated" | "extended";
    reason: string;
    /** Facts for the `audit/recover` event: sizes, the line closed. */
    details: JsonObject;
  };

/** Durable, append-only storage of canonical record lines. */
export interface RecordStore {
  /** The backend's name, as metrics label it. */
  readonly backend: "jsonl" | "sqlite";
  /** What the store found at open. */
  readonly opened: OpenState;
  /**
   * Appends one record; `line` is its canonical text (no newline). In order; it may wait in a
   * bounded buffer until the next `flush`, which the transport calls before forwarding anything.
   */
  append(line: string, record: AuditRecord): void;
  /** Hands everything appended so far to the operating system. */
  flush(): void;
  /** Flushes, then makes everything appended so far durable before returning. */
  sync(): void;
  /**
   * Flushes, then starts making it durable in the background (one fsync at a time; a failure
   * is thrown by the next `flush`).
   */
  syncSoon(): void;
  /**
   * Called by the chain before the first record of each batch: is the store still writing to
   * the file its path names? `null` when it is. Throws when it cannot go on.
   */
  checkTarget(): TargetChange | null;
  /**
   * After `checkTarget` reported the path taken (`deleted`, `moved`, `replaced`): makes the old
   * file durable, moves any stranger at the path aside, and creates a new file there for the next
   * records. Returns facts for the `audit/recover` event that must be the new file's first record.
   */
  startNewFile(): JsonObject;
  /** Syncs and releases the store. Idempotent. */
  close(): void;
}
