/**
 * The interface every audit storage backend implements.
 *
 * @module
 */
import type { AuditRecord } from "../record.ts";

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
  /** Syncs and releases the store. Idempotent. */
  close(): void;
}
