/**
 * The interface every audit storage backend implements for writing.
 *
 * Several proxy processes may write one log. Each batch of records is written inside
 * `begin()`…`commit()`, which holds the store's cross-process lock (JSONL: an advisory lock on
 * `<log>.lock`; SQLite: `BEGIN IMMEDIATE`). `begin()` reads the chain head again when another
 * writer wrote since, so the chain numbers and links the batch from what is really stored.
 *
 * @module
 */
import type { AuditRecord } from "../record.ts";
import type { JsonObject } from "../../jsonrpc/json.ts";

/** The last stored record: its `seq` and the SHA-256 (hex) of its stored line. */
export interface StoredHead {
  seq: number;
  hash: string;
}

/**
 * What a store found at the start of a batch that the chain must record before the batch's
 * records, as an `audit/recover` event (or `audit/rotate` for `rotated`).
 *
 * - `torn`: lines at the end of the log that are not complete records (a writer killed mid-write,
 *   a crash) were closed with a newline and kept where they are; `details.torn` lists them;
 * - `truncated` / `extended`: the log is shorter than what was written, or holds bytes no writer
 *   of ours wrote (a partial line was closed);
 * - `deleted` / `moved` / `replaced`: the path no longer names the log. The chain writes an
 *   `audit/checkpoint` into the old file when `oldFileLinked`, then calls
 *   {@link RecordStore.startNewFile} and writes `audit/recover` as the new file's first record;
 * - `rotated`: the store archived the active file (size or time) and opened a new one; the chain
 *   writes `audit/rotate` as its first record (`details`: `archive` name, `cause` `size` or
 *   `interval`, `deleted_archives` as {@link DeletedArchive}s);
 * - `retention`: archives deleted by retention outside a rotation (at start); the chain writes
 *   `audit/retention` (`details.deleted_archives`).
 */
export type StoreChange =
  | {
    kind: "deleted" | "moved" | "replaced";
    /** True when the old file still has a name, so a closing record written to it is kept. */
    oldFileLinked: boolean;
    /** One sentence for the log and the event. */
    reason: string;
  }
  | {
    kind: "torn" | "truncated" | "extended" | "rotated" | "retention";
    reason: string;
    /** Facts for the event: sizes, lines closed, the archive's name. */
    details: JsonObject;
  };

/** One archive deleted by retention, as the `audit/rotate` and `audit/retention` events list it. */
export interface DeletedArchive {
  /** The archive's file name (no directory). */
  name: string;
  /** `max_files` or `max_age_days`. */
  rule: "max_files" | "max_age_days";
  /** The seq of its first and last records, as read before deleting it (null when unreadable). */
  first_seq: number | null;
  last_seq: number | null;
}

/** What `begin` found. */
export interface BatchStart {
  /**
   * The chain head as stored now, when it may differ from what this store last wrote (the first
   * batch, or another writer wrote since); `null` when the log holds no record; `undefined` when
   * nothing changed since this store's own last commit.
   */
  head: StoredHead | null | undefined;
  /** What to record, in this order, before the batch's records. */
  changes: StoreChange[];
}

/** One record of a batch: its canonical stored line (no newline) and the record itself. */
export interface StoredRecord {
  line: string;
  record: AuditRecord;
}

/**
 * A record as the chain hands it to a store: with `hash`, the hex SHA-256 of `line`'s UTF-8
 * bytes (the next record's `prev`), computed once by the chain. Stores use it for their head and
 * anchor instead of hashing the line again. Observers get these too, typed as
 * {@link StoredRecord}: a reader that rebuilds records from lines need not hash them.
 */
export interface ChainedRecord extends StoredRecord {
  hash: string;
}

/** Durable, append-only, multi-writer storage of canonical record lines. */
export interface RecordStore {
  /** The backend's name, as metrics label it. */
  readonly backend: "jsonl" | "sqlite";
  /** The file written (after following allowed symlinks), for messages. */
  readonly path: string;
  /**
   * Starts a batch: takes the cross-process write lock (waiting for other writers), checks that
   * the store still writes where it should, and reads the head. Every `begin` is followed by
   * exactly one `commit` or `abort`.
   * @throws {StorageError} when the log cannot be used; no lock is held then
   */
  begin(): BatchStart;
  /** Adds one record to the open batch, in order. `entry.hash` must be the SHA-256 of its line. */
  write(entry: ChainedRecord): void;
  /**
   * Inside a batch, after `begin` reported `deleted`/`moved`/`replaced` (and the chain wrote its
   * closing checkpoint): makes what was written to the old file durable, moves a stranger at the
   * path aside, and opens a new file there. Returns facts for the `audit/recover` event that must
   * be the new file's first record.
   */
  startNewFile(): JsonObject;
  /**
   * Ends the batch: its records are stored (JSONL: handed to the operating system in one write,
   * in 1 MiB parts when larger; SQLite: committed) and the lock released. Durability follows
   * `audit.durability`: `entry` makes them durable before returning, `batch` has a background
   * fsync cover them, started at most once per `audit.sync_interval_ms` and one at a time (a
   * failure is thrown by a later call), `none` leaves it to the operating system.
   * @throws {StorageError} when they could not be stored; the lock is released, and the next
   *   `begin` looks at the log afresh (a partial write is then found as `torn`)
   */
  commit(): void;
  /** Ends a batch that failed before `commit` (nothing of it is stored on purpose). Never throws. */
  abort(): void;
  /** Makes everything committed so far durable before returning. */
  sync(): void;
  /** Resolves when no background fsync or anchor update is left (a failure is kept for later). */
  settled(): Promise<void>;
  /** Syncs and releases the store. Idempotent. */
  close(): void;
}
