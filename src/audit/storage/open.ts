/**
 * The storage factory: the one place that turns `config.audit` into a store for writing, and a
 * path into a query for reading, so that the composition root and the commands make one call.
 *
 * - `storage: jsonl` writes `audit.path` (through a symlink only with `audit.follow_symlinks`),
 *   rotated per `audit.rotation`; `storage: sqlite` writes `audit.sqlite_path`.
 * - `audit.durability` is the store's: `entry` makes each batch durable before the bytes it
 *   describes are forwarded, `batch` syncs in the background (at most one sync started per
 *   `audit.sync_interval_ms`), `none` leaves it to the system.
 * - `audit.anchor.path`, when set, is moved forward after each sync, for either backend.
 *
 * @module
 */
import { auditStorePath, type Config } from "../../config/config.ts";
import { ConfigError } from "../../config/load.ts";
import type { Logger } from "../../log.ts";
import type { AsyncOptions, CheckpointOptions } from "../chain.ts";
import type { Signer } from "../signing.ts";
import { AnchorFile } from "./anchor_file.ts";
import { RefusedPathError } from "./errors.ts";
import { JsonlQuery } from "./jsonl_query.ts";
import { JsonlStore } from "./jsonl.ts";
import type { RecordQuery } from "./query.ts";
import { isSqliteFile } from "./sqlite_lines.ts";
import { SqliteQuery } from "./sqlite_query.ts";
import { SqliteStore } from "./sqlite.ts";
import type { RecordStore } from "./store.ts";

/** What the store needs from the rest of the program. */
export interface StoreDeps {
  /** The log's signer: the anchor is signed with it too. */
  signer: Signer | null;
  logger: Pick<Logger, "warn">;
}

/** The path the configured backend writes. */
export const storePath = auditStorePath;

/**
 * Opens the store the configuration names.
 * @throws {ConfigError} when the configured path names something unusable (exit 2); nothing
 *   was changed on the way
 * @throws {StorageError} when the log cannot be opened, or disagrees with its anchor (exit 1)
 */
export function openStore(audit: Config["audit"], deps: StoreDeps): RecordStore {
  const path = storePath(audit);
  try {
    const anchor = audit.anchor.path === ""
      ? undefined
      : new AnchorFile(audit.anchor.path, path, deps.signer);
    const common = {
      durability: audit.durability,
      syncIntervalMs: audit.sync_interval_ms,
      logger: deps.logger,
      ...(anchor === undefined ? {} : { anchor }),
    };
    if (audit.storage === "sqlite") {
      return new SqliteStore(path, { ...common, busyTimeoutMs: audit.sqlite_busy_timeout_ms });
    }
    return new JsonlStore(path, {
      ...common,
      followSymlinks: audit.follow_symlinks,
      rotation: audit.rotation,
    });
  } catch (e) {
    if (e instanceof RefusedPathError) throw new ConfigError(e.key, e.message);
    throw e;
  }
}

/** `audit.async.*` as the chain takes it; undefined when writing is synchronous. */
export function asyncOptions(audit: Config["audit"]): AsyncOptions | undefined {
  const a = audit.async;
  if (!a.enabled) return undefined;
  const batchSize = Math.max(1, a.batch_size);
  return {
    batchSize,
    // A queue smaller than a batch would never let a batch form: it is raised to one batch.
    queueSize: Math.max(batchSize, a.queue_size),
    flushIntervalMs: Math.max(1, a.flush_interval_ms),
  };
}

/** `audit.checkpoint.*` as the chain takes it. */
export function checkpointOptions(audit: Config["audit"]): CheckpointOptions {
  return {
    everyRecords: audit.checkpoint.every_records,
    everySeconds: audit.checkpoint.every_seconds,
  };
}

/**
 * Opens a log for reading, whichever backend wrote it: a SQLite database (recognised by its
 * content), else a JSONL log with its archives. Never changes a record. A long-lived reader of a
 * SQLite database that was closed cleanly (no `-wal` beside it) makes SQLite create the `-wal`
 * and `-shm` files, as any connection to a WAL database does; `verify` and `doctor`, which read
 * once, open such a database immutable instead and leave nothing behind.
 */
export function openQuery(path: string): RecordQuery {
  return isSqliteFile(path) ? new SqliteQuery(path) : new JsonlQuery(path);
}
