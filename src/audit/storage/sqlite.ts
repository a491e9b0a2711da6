/**
 * SQLite storage on the built-in `node:sqlite`: one row a record, holding the record's exact
 * canonical line beside indexed columns (see `sqlite_schema.ts`), in a WAL database any number of
 * proxy processes write at once.
 *
 * Several writers make one chain: each batch is one `BEGIN IMMEDIATE` transaction (it waits up to
 * `busyTimeoutMs` for the others), and the head is read inside it, so the batch is numbered and
 * linked from what is really stored.
 *
 * Durability (`synchronous` in WAL mode):
 * - `entry`: `FULL`: every commit syncs the WAL before it returns: a committed batch survives a
 *   power loss;
 * - `batch`: `NORMAL`: a commit is in the operating system when it returns (it survives the
 *   process being killed), and the WAL is synced in the background, one sync at a time and at most
 *   one started per `syncIntervalMs` ({@link SyncPacer}), after which the anchor moves: a power
 *   loss can lose the batches committed since the last sync, never the database;
 * - `none`: `OFF`: as `batch` without the background sync; synced on `sync` and `close` only. An
 *   operating system crash can lose recent batches, and, as SQLite documents, could damage the
 *   database.
 *
 * Like the JSONL store it looks before it touches: a symlink, a directory, a FIFO, a file that is
 * not SQLite, a database of the Go tool or of a newer version are refused with nothing changed.
 * Before each batch it checks that the path still names the database it holds; a database
 * deleted, moved or replaced mid-run is left behind (a stranger at the path is renamed aside) and
 * the chain goes on in a new database there.
 *
 * @module
 */
import { hash } from "node:crypto";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { type JsonObject, parseJson } from "../../jsonrpc/json.ts";
import type { Logger } from "../../log.ts";
import type { AnchorHead } from "../anchor.ts";
import type { AnchorFile } from "./anchor_file.ts";
import { RefusedPathError, StorageError } from "./errors.ts";
import { fileKind, lstatOrNothing } from "./file_kind.ts";
import {
  FLUSH_TEXT_SQL,
  FTS_BATCH,
  indexedColumns,
  INSERT_SQL,
  INSERT_TEXT_SQL,
  insertParams,
  inspectSchema,
  migrate,
  nextTsMax,
  refuseUnusable,
  searchText,
} from "./sqlite_schema.ts";
import type { BatchStart, ChainedRecord, RecordStore, StoreChange, StoredHead } from "./store.ts";
import { DEFAULT_SYNC_INTERVAL_MS, type PacerTimers, SyncPacer } from "./sync_pacer.ts";

export { AnchorMismatchError, RefusedPathError, StorageError } from "./errors.ts";

/** What the store needs besides its path. */
export interface SqliteOptions {
  /** `audit.durability`. */
  durability: "none" | "batch" | "entry";
  /** `audit.sqlite_busy_timeout_ms`: how long a batch waits for other writers. */
  busyTimeoutMs: number;
  /** Where warnings go: the database was deleted, moved, replaced, cut short. */
  logger?: Pick<Logger, "warn">;
  /** The anchor to move after each durable commit. */
  anchor?: AnchorFile;
  /** `audit.sync_interval_ms`: least time between background syncs' starts. Default 10. */
  syncIntervalMs?: number;
  /** The clock and timer pacing background syncs. Default: `performance.now`, `setTimeout`. */
  syncTimers?: PacerTimers;
}

const SYNCHRONOUS = { none: "OFF", batch: "NORMAL", entry: "FULL" } as const;
const SQLITE_HEADER = "SQLite format 3\0";
const HEX64 = /^[0-9a-f]{64}$/;
// A WAL larger than this is cut back to it after a checkpoint.
const JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024;
const posix = Deno.build.os !== "windows";
const decoder = new TextDecoder();

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** SQLite's message, with what it means here. */
function explain(e: unknown): string {
  const text = message(e);
  if (text.includes("database is locked") || text.includes("database table is locked")) {
    return `${text} (another writer held it longer than audit.sqlite_busy_timeout_ms)`;
  }
  if (
    text.includes("malformed") || text.includes("file is not a database") ||
    text.includes("vtable constructor failed")
  ) {
    return `${text} (the database is damaged or truncated)`;
  }
  if (text.includes("disk is full")) return `${text} (no space left on its file system)`;
  if (text.includes("readonly") || text.includes("read-only")) {
    return `${text} (the file or its directory cannot be written)`;
  }
  return text;
}

function storageError(what: string, e: unknown): StorageError {
  if (e instanceof StorageError) return e;
  return new StorageError(`${what}: ${explain(e)}`, { cause: e });
}

interface FileId {
  dev: number;
  ino: number;
}

function idOf(stat: Deno.FileInfo): FileId | undefined {
  return stat.dev !== null && stat.ino !== null ? { dev: stat.dev, ino: stat.ino } : undefined;
}

function sameId(a: FileId | undefined, stat: Deno.FileInfo): boolean {
  // Without inode numbers (Windows) there is nothing to compare.
  if (a === undefined || stat.dev === null || stat.ino === null) return true;
  return a.dev === stat.dev && a.ino === stat.ino;
}

function readPrefix(file: Deno.FsFile, length: number): Uint8Array {
  const buf = new Uint8Array(length);
  file.seekSync(0, Deno.SeekMode.Start);
  let at = 0;
  while (at < length) {
    const n = file.readSync(buf.subarray(at));
    if (n === null) break;
    at += n;
  }
  return buf.subarray(0, at);
}

function hasSqliteHeader(file: Deno.FsFile): boolean {
  return decoder.decode(readPrefix(file, SQLITE_HEADER.length)) === SQLITE_HEADER;
}

function randomHex(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(4)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

/** A name beside `base` that nothing has yet. */
function freeName(base: string, tag: string): string {
  // 2^32 names: a clash is rare, a hundred in a row is someone making them on purpose.
  for (let attempt = 0; attempt < 100; attempt++) {
    const name = `${base}.${tag}-${randomHex()}`;
    if (lstatOrNothing(name) === undefined) return name;
  }
  throw new StorageError(`cannot find a free name beside ${base}`);
}

/** A database connection held by the store, and what it knows about the files it writes. */
interface Connection {
  db: DatabaseSync;
  /**
   * The database file, held open: its identity (a path may come to name another file), whether
   * it still has a name, and an fsync for `sync`. Closed only after the connection, since closing
   * a descriptor drops the process's POSIX locks on the file.
   */
  file: Deno.FsFile;
  id: FileId | undefined;
  /** The inodes of the `-wal` and `-shm` files when opened: they are told from a stranger's. */
  wal: FileId | undefined;
  shm: FileId | undefined;
  insert: StatementSync;
  insertText: StatementSync;
  pending: StatementSync;
  head: StatementSync;
  rowAt: StatementSync;
}

/** The last row, as `begin` and the anchor need it. */
interface Row {
  seq: number;
  line: string;
  tsMax: number | null;
}

/**
 * The last record a store committed. A row holding the same text is that record (the same bytes,
 * so the same hash): only a row another writer stored is hashed.
 */
interface LastRecord extends AnchorHead {
  line: string;
}

/** What `#checkTarget` saw when the path stopped naming the database held. */
interface Lost {
  kind: "deleted" | "moved" | "replaced";
  linked: boolean;
  /** What sits at the path instead, for `replaced`. */
  foreign: Deno.FileInfo | undefined;
}

/**
 * Writes audit records to an SQLite database, with any number of other writers.
 *
 * @example
 * ```ts
 * import { SqliteStore } from "./sqlite.ts";
 * const dir = Deno.makeTempDirSync();
 * const store = new SqliteStore(`${dir}/audit.db`, { durability: "batch", busyTimeoutMs: 5000 });
 * const start = store.begin(); // write-locked; start.head is null: an empty log
 * store.commit(); // committed, unlocked, the WAL synced in the background
 * store.close();
 * await store.settled();
 * ```
 */
export class SqliteStore implements RecordStore {
  readonly backend = "sqlite" as const;
  readonly path: string;
  #conn: Connection | undefined;
  readonly #durability: SqliteOptions["durability"];
  readonly #busyTimeoutMs: number;
  readonly #logger: SqliteOptions["logger"];
  readonly #anchor: AnchorFile | undefined;
  #inBatch = false;
  /** The last record written in the open batch. */
  #written: ChainedRecord | undefined;
  /** `ts_max` of the last row written (or found at `begin`). */
  #tsMax: number | null = null;
  /** Rows waiting to be moved into the full-text index, as of the last row written. */
  #pending = 0;
  /** The last record this store committed; undefined before the first commit and after a fault. */
  #last: LastRecord | undefined;
  /** The database {@link #last} is in: after a new database is started, not the current one. */
  #lastIn: DatabaseSync | undefined;
  #lost: Lost | undefined;
  /** A failure that ends the store: every later call throws it (fail closed). */
  #failure: StorageError | undefined;
  /** A background fsync of the WAL in flight. */
  #syncing: Promise<void> | undefined;
  /** When background syncs start (`batch`). */
  readonly #pacer: SyncPacer;
  /** Commits not yet covered by a sync. */
  #dirty = false;

  /**
   * Opens (creating with mode 0600) the database at `path`.
   * @throws {RefusedPathError} when the path names something that is not a database of ours;
   *   nothing changed
   * @throws {AnchorMismatchError} when the anchor names a record the database no longer holds
   * @throws {StorageError} when the database cannot be opened, is damaged, or is of a newer
   *   schema
   */
  constructor(path: string, options: SqliteOptions) {
    this.path = path;
    this.#durability = options.durability;
    this.#busyTimeoutMs = Math.max(0, Math.trunc(options.busyTimeoutMs));
    this.#logger = options.logger;
    this.#anchor = options.anchor;
    this.#pacer = new SyncPacer({
      intervalMs: options.syncIntervalMs ?? DEFAULT_SYNC_INTERVAL_MS,
      start: () => this.#syncInBackground(),
      ...(options.syncTimers === undefined ? {} : { timers: options.syncTimers }),
    });
    const conn = this.#open("maybe");
    try {
      const last = this.#readHead(conn);
      this.#anchor?.checkLog(last?.line);
    } catch (e) {
      this.#release(conn);
      throw storageError(`cannot open the audit database ${path}`, e);
    }
    this.#conn = conn;
  }

  /**
   * Opens the database at the path. `create`: `maybe` creates it when nothing is there, `new`
   * only creates (failing with `AlreadyExists`), `never` only opens.
   */
  #open(create: "maybe" | "new" | "never"): Connection {
    const path = this.path;
    const file = this.#openFile(create);
    let db: DatabaseSync | undefined;
    try {
      const stat = file.statSync();
      if (stat.size > 0 && !hasSqliteHeader(file)) {
        throw new RefusedPathError(
          "audit.sqlite_path",
          `${path} is not an SQLite database (audit.storage is sqlite); refusing to use it. ` +
            "It was not changed",
        );
      }
      const id = idOf(stat);
      try {
        db = new DatabaseSync(path);
      } catch (e) {
        throw storageError(`cannot open the audit database ${path}`, e);
      }
      // SQLite opened the path again: it must have found the file looked at.
      if (!sameId(id, Deno.statSync(path))) {
        throw new StorageError(`audit database ${path} changed while it was being opened`);
      }
      try {
        db.exec(`PRAGMA busy_timeout = ${this.#busyTimeoutMs}`);
        // Read before anything is changed: a database that is not ours stays as it was.
        refuseUnusable(inspectSchema(db), path, true);
      } catch (e) {
        throw storageError(`cannot use the audit database ${path}`, e);
      }
      try {
        const mode = db.prepare("PRAGMA journal_mode = WAL").get();
        if (mode?.journal_mode !== "wal") {
          throw new StorageError(
            `cannot put the audit database ${path} in WAL mode (it stays in ${
              String(mode?.journal_mode)
            } mode)`,
          );
        }
        db.exec(`PRAGMA synchronous = ${SYNCHRONOUS[this.#durability]}`);
        db.exec(`PRAGMA journal_size_limit = ${JOURNAL_SIZE_LIMIT}`);
        migrate(db, path);
      } catch (e) {
        throw storageError(`cannot set up the audit database ${path}`, e);
      }
      // Only now that it is known to be ours is its mode changed: a database readable by others
      // is tightened, not trusted as is (with the -wal and -shm SQLite made in its mode).
      this.#tighten(path);
      const wal = this.#tighten(`${path}-wal`);
      const shm = this.#tighten(`${path}-shm`);
      try {
        return {
          db,
          file,
          id,
          wal,
          shm,
          insert: db.prepare(INSERT_SQL),
          insertText: db.prepare(INSERT_TEXT_SQL),
          pending: db.prepare("SELECT count(*) AS n FROM records_fts_pending"),
          head: db.prepare("SELECT seq, line, ts_max FROM records ORDER BY seq DESC LIMIT 1"),
          rowAt: db.prepare("SELECT seq, line FROM records WHERE seq = ?"),
        };
      } catch (e) {
        throw storageError(`cannot use the audit database ${path}`, e);
      }
    } catch (e) {
      try {
        db?.close();
      } finally {
        file.close();
      }
      throw e;
    }
  }

  /** Opens (or creates, mode 0600) the database file, refusing anything but a regular file. */
  #openFile(create: "maybe" | "new" | "never"): Deno.FsFile {
    try {
      return this.#openFileOnce(create);
    } catch (e) {
      // Another writer created it between the look and the open: look again, once.
      if (!(e instanceof Deno.errors.AlreadyExists) || create !== "maybe") throw e;
      return this.#openFileOnce(create);
    }
  }

  #openFileOnce(create: "maybe" | "new" | "never"): Deno.FsFile {
    const path = this.path;
    let looked: Deno.FileInfo | undefined;
    try {
      looked = lstatOrNothing(path);
    } catch (e) {
      throw new StorageError(`cannot open the audit database ${path}: ${message(e)}`, { cause: e });
    }
    if (looked !== undefined && !looked.isFile) {
      throw new RefusedPathError(
        "audit.sqlite_path",
        looked.isSymlink
          ? `${path} is a symbolic link; refusing to write through it (name the database itself)`
          : `${path} is ${fileKind(looked)}, not a database file`,
      );
    }
    for (const suffix of ["-wal", "-shm"]) {
      const side = lstatOrNothing(`${path}${suffix}`);
      if (side !== undefined && !side.isFile) {
        // SQLite would open it by name: a link there would send the log elsewhere.
        throw new RefusedPathError(
          "audit.sqlite_path",
          `${path}${suffix} is ${fileKind(side)}; refusing to open the database beside it`,
        );
      }
      if (looked === undefined && side !== undefined && (suffix === "-shm" || side.size > 0)) {
        // SQLite would take them for the new database's: they are what a deleted database left.
        throw new StorageError(
          `${path} does not exist but ${path}${suffix} does: left by a database that was ` +
            "deleted (or is still held by a process writing it). Move it aside to start a new " +
            "database there",
        );
      }
    }
    if (looked === undefined && create === "never") {
      throw new StorageError(`audit database ${path} does not exist`);
    }
    if (looked !== undefined && create === "new") {
      throw new Deno.errors.AlreadyExists(`${path} exists`);
    }
    let file: Deno.FsFile;
    try {
      file = looked === undefined
        ? Deno.openSync(path, { read: true, write: true, createNew: true, mode: 0o600 })
        : Deno.openSync(path, { read: true, write: true });
    } catch (e) {
      if (e instanceof Deno.errors.AlreadyExists) throw e;
      throw new StorageError(`cannot open the audit database ${path}: ${message(e)}`, {
        cause: e,
      });
    }
    try {
      const stat = file.statSync();
      // open(2) follows a symlink put there after the look; what it opened must be what was seen.
      if (looked !== undefined && !sameId(idOf(looked), stat)) {
        throw new StorageError(`audit database ${path} changed while it was being opened`);
      }
    } catch (e) {
      file.close();
      throw e instanceof StorageError
        ? e
        : new StorageError(`cannot open the audit database ${path}: ${message(e)}`, { cause: e });
    }
    return file;
  }

  /** Makes the file 0600 when it is a regular file, and returns its identity. */
  #tighten(side: string): FileId | undefined {
    try {
      const stat = lstatOrNothing(side);
      if (stat === undefined || !stat.isFile) return undefined;
      if (posix && stat.mode !== null && (stat.mode & 0o077) !== 0) Deno.chmodSync(side, 0o600);
      return idOf(stat);
    } catch (e) {
      throw new StorageError(`cannot restrict ${side} to its owner: ${message(e)}`, { cause: e });
    }
  }

  #readHead(conn: Connection): Row | null {
    const row = conn.head.get();
    if (row === undefined) return null;
    if (typeof row.seq !== "number" || typeof row.line !== "string") {
      throw new StorageError(`the last row of ${this.path} is not a record row`);
    }
    return {
      seq: row.seq,
      line: row.line,
      tsMax: typeof row.ts_max === "number" ? row.ts_max : null,
    };
  }

  begin(): BatchStart {
    let conn = this.#usable();
    if (this.#inBatch) throw new StorageError("begin inside an open batch");
    try {
      conn.db.exec("BEGIN IMMEDIATE");
    } catch (e) {
      throw storageError(`cannot start writing to the audit database ${this.path}`, e);
    }
    try {
      const changes: StoreChange[] = [];
      const lost = this.#checkTarget(conn);
      if (lost === "adopted") {
        conn = this.#usable();
      } else if (lost !== undefined) {
        changes.push(lost);
      }
      const row = this.#readHead(conn);
      const last = this.#last;
      // The same text as this store's last commit is the same bytes: the same hash.
      const own = last !== undefined && row !== null && row.seq === last.seq &&
        row.line === last.line;
      const head: StoredHead | null = row === null
        ? null
        : { seq: row.seq, hash: own ? last.hash : hash("sha256", row.line, "hex") };
      const changed = !own;
      if (changed && last !== undefined && lost === undefined && this.#lastIn === conn.db) {
        const cut = this.#checkOwn(conn, last, head);
        if (cut !== undefined) changes.push(cut);
      }
      if (changed && row !== null) {
        const stranger = this.#checkRow(row);
        if (stranger !== undefined) changes.push(stranger);
      }
      const pending = conn.pending.get()?.n;
      this.#pending = typeof pending === "number" ? pending : 0;
      this.#inBatch = true;
      this.#written = undefined;
      this.#tsMax = row?.tsMax ?? null;
      return { head: changed ? head : undefined, changes };
    } catch (e) {
      this.#rollback(this.#conn);
      throw storageError(`cannot start writing to the audit database ${this.path}`, e);
    }
  }

  /**
   * Whether the path still names the database held. When it names another database of ours (a
   * writer that found this one gone started it), the store moves to it: `adopted`.
   */
  #checkTarget(conn: Connection): StoreChange | "adopted" | undefined {
    if (conn.id === undefined) return undefined;
    let now: Deno.FileInfo | undefined;
    try {
      now = lstatOrNothing(this.path);
    } catch (e) {
      throw new StorageError(`cannot check the audit database ${this.path}: ${message(e)}`, {
        cause: e,
      });
    }
    if (now !== undefined && now.isFile && sameId(conn.id, now)) return undefined;
    if (now !== undefined && this.#isOurs(now)) {
      this.#adopt();
      return "adopted";
    }
    const nlink = conn.file.statSync().nlink;
    const linked = nlink === null || nlink > 0;
    const kind = now !== undefined ? "replaced" : linked ? "moved" : "deleted";
    const reason = kind === "deleted"
      ? `the audit database ${this.path} was deleted while the proxy ran; the chain continues in a new database there`
      : kind === "moved"
      ? `the audit database ${this.path} was moved away while the proxy ran (it lives on under another name); the chain continues in a new database there`
      : `${
        fileKind(now!)
      } the proxy did not create replaced the audit database ${this.path}; it is moved aside and the chain continues in a new database there`;
    this.#lost = { kind, linked, foreign: now };
    this.#logger?.warn(reason, { path: this.path, change: kind, last_seq: this.#last?.seq });
    return { kind, oldFileLinked: linked, reason };
  }

  /**
   * Whether what the path names now is a database another writer of this log started: a
   * database of ours, or a file still empty (being created). Read-only.
   */
  #isOurs(stat: Deno.FileInfo): boolean {
    if (!stat.isFile) return false;
    if (stat.size === 0) return true;
    let db: DatabaseSync | undefined;
    try {
      using file = Deno.openSync(this.path, { read: true });
      if (!hasSqliteHeader(file)) return false;
      db = new DatabaseSync(this.path, { readOnly: true });
      db.exec(`PRAGMA busy_timeout = ${this.#busyTimeoutMs}`);
      const facts = inspectSchema(db);
      refuseUnusable(facts, this.path, true);
      return facts.kind === "ours" || facts.kind === "empty";
    } catch {
      return false;
    } finally {
      db?.close();
    }
  }

  /** Leaves the database held for the one another writer started at the path. */
  #adopt(): void {
    const old = this.#conn;
    this.#conn = undefined;
    this.#rollback(old);
    if (old !== undefined) this.#release(old);
    let conn: Connection;
    try {
      conn = this.#open("never");
    } catch (e) {
      throw this.#fail(`cannot open the audit database another writer started at ${this.path}`, e);
    }
    this.#conn = conn;
    this.#logger?.warn(
      "the audit database was replaced by another writer's new database; writing there",
      { path: this.path, last_seq: this.#last?.seq },
    );
    // Its head is the one to continue from, whatever this store wrote before.
    this.#last = undefined;
    try {
      conn.db.exec("BEGIN IMMEDIATE");
    } catch (e) {
      throw storageError(`cannot start writing to the audit database ${this.path}`, e);
    }
  }

  /**
   * Another writer moves the head on; nobody removes or rewrites records. When the record this
   * store committed last is gone or changed, the log was cut or rewritten behind its back.
   */
  #checkOwn(conn: Connection, last: LastRecord, head: StoredHead | null): StoreChange | undefined {
    const details: JsonObject = {
      path: this.path,
      expected_seq: last.seq,
      found_seq: head?.seq ?? 0,
    };
    if (head === null || head.seq < last.seq) {
      const reason = head === null
        ? `every record of the audit database ${this.path} was removed while the proxy ran (it had stored up to seq ${last.seq})`
        : `records after seq ${head.seq} of the audit database ${this.path} were removed while the proxy ran (it had stored up to seq ${last.seq})`;
      this.#logger?.warn(reason, { path: this.path, change: "truncated", last_seq: last.seq });
      return { kind: "truncated", reason, details };
    }
    const row = conn.rowAt.get(last.seq);
    const line = typeof row?.line === "string" ? row.line : undefined;
    if (line !== undefined && line === last.line) return undefined;
    const reason = line === undefined
      ? `the record at seq ${last.seq} of the audit database ${this.path} was removed while the proxy ran`
      : `the record at seq ${last.seq} of the audit database ${this.path} was rewritten while the proxy ran`;
    this.#logger?.warn(reason, { path: this.path, change: "truncated", last_seq: last.seq });
    details.rewritten = line !== undefined;
    return { kind: "truncated", reason, details };
  }

  /** The head row must be a record the chain wrote; else someone else inserted it. */
  #checkRow(row: Row): StoreChange | undefined {
    try {
      const v = parseJson(row.line);
      if (
        typeof v === "object" && v !== null && "v" in v && v.v === 1 && "seq" in v &&
        v.seq === row.seq && "prev" in v && typeof v.prev === "string" && HEX64.test(v.prev)
      ) {
        return undefined;
      }
    } catch {
      // Not JSON: reported below.
    }
    const reason =
      `the last row of the audit database ${this.path} (seq ${row.seq}) is not a record the proxy wrote; the chain continues after it`;
    this.#logger?.warn(reason, { path: this.path, change: "extended", last_seq: row.seq });
    return { kind: "extended", reason, details: { path: this.path, seq: row.seq } };
  }

  write(entry: ChainedRecord): void {
    const conn = this.#usable();
    if (!this.#inBatch) throw new StorageError("write outside a batch");
    const r = entry.record;
    const columns = indexedColumns(r);
    const tsMax = nextTsMax(this.#tsMax, columns.ts_ms);
    try {
      conn.insert.run(...insertParams(columns, entry.line, tsMax));
      conn.insertText.run(r.seq, searchText(r));
    } catch (e) {
      throw storageError(`cannot store record ${r.seq} in the audit database ${this.path}`, e);
    }
    this.#written = entry;
    this.#tsMax = tsMax;
    this.#pending += 1;
  }

  startNewFile(): JsonObject {
    const lost = this.#lost;
    const old = this.#conn;
    if (lost === undefined || old === undefined || !this.#inBatch) {
      throw new StorageError("startNewFile without a lost database and an open batch");
    }
    const details: JsonObject = {
      path: this.path,
      previous_file: {
        dev: old.id?.dev ?? null,
        ino: old.id?.ino ?? null,
        last_seq: this.#written?.record.seq ?? this.#last?.seq ?? null,
        still_linked: lost.linked,
      },
    };
    // Everything below happens under the old database's write lock: the other writers wait for
    // it, and then find the new database at the path and move to it.
    let aside: string | undefined;
    let oldWal: string | undefined;
    try {
      if (lost.foreign !== undefined) {
        // Never write into a file the proxy did not create, and never destroy one: a rename
        // keeps the stranger whole for whoever investigates.
        aside = freeName(this.path, "foreign");
        Deno.renameSync(this.path, aside);
        details.foreign = {
          moved_to: aside,
          type: fileKind(lost.foreign),
          size: lost.foreign.size,
          dev: lost.foreign.dev,
          ino: lost.foreign.ino,
          mtime: lost.foreign.mtime?.toISOString() ?? null,
        };
        this.#logger?.warn("moved aside what replaced the audit database", {
          path: this.path,
          aside,
        });
      }
      // The old database's -wal and -shm still have the names a new database's would: SQLite
      // would take them for its own. Its connections hold them open, so renaming loses nothing.
      oldWal = this.#clearSidecar("-wal", old.wal, aside);
      this.#clearSidecar("-shm", old.shm, aside);
    } catch (e) {
      throw this.#fail(`cannot start a new audit database at ${this.path}`, e);
    }
    let conn: Connection;
    try {
      conn = this.#open("new");
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) {
        throw this.#fail(`cannot start a new audit database at ${this.path}`, e);
      }
      // Another process started one there meanwhile: the chain goes on in it.
      try {
        conn = this.#open("never");
      } catch (e2) {
        throw this.#fail(
          `cannot open the audit database another process started at ${this.path}`,
          e2,
        );
      }
    }
    try {
      conn.db.exec("BEGIN IMMEDIATE");
    } catch (e) {
      this.#release(conn);
      throw this.#fail(`cannot start writing to the new audit database ${this.path}`, e);
    }
    // What the chain wrote to the old database (its closing checkpoint) is committed and made
    // durable there, then the old database is let go.
    try {
      old.db.exec("COMMIT");
    } catch (e) {
      this.#rollback(conn);
      this.#release(conn);
      throw this.#fail(`cannot commit the closing records to the lost audit database`, e);
    }
    if (this.#written !== undefined) this.#committed(this.#written);
    this.#written = undefined;
    this.#conn = conn;
    this.#lost = undefined;
    try {
      // Empty, unless another process started it first.
      this.#tsMax = this.#readHead(conn)?.tsMax ?? null;
      const pending = conn.pending.get()?.n;
      this.#pending = typeof pending === "number" ? pending : 0;
    } catch (e) {
      throw this.#fail(`cannot read the new audit database ${this.path}`, e);
    }
    try {
      old.db.exec("PRAGMA synchronous = FULL");
      // Copies the WAL into the database file (synced), so a moved database is whole on its own.
      old.db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    } catch (e) {
      this.#logger?.warn("cannot checkpoint the lost audit database", { error: message(e) });
    }
    this.#release(old);
    if (oldWal !== undefined) {
      try {
        if (Deno.statSync(oldWal).size === 0) {
          Deno.removeSync(oldWal);
          oldWal = undefined;
        }
      } catch {
        // Kept: it may hold what the checkpoint could not copy.
      }
    }
    if (oldWal !== undefined) {
      details.previous_wal = oldWal;
      this.#logger?.warn("the lost audit database's WAL is kept beside the new database", {
        path: this.path,
        wal: oldWal,
      });
    }
    return details;
  }

  /**
   * Moves the old database's `-wal` or `-shm` away from the name the new database will use.
   * Its own (by inode): the `-shm` is an index SQLite rebuilds and is removed; the `-wal` is
   * renamed (returned), and removed once empty. A stranger's goes with the stranger, when one was
   * moved aside, or aside on its own.
   */
  #clearSidecar(suffix: string, own: FileId | undefined, strangerAside: string | undefined) {
    const name = `${this.path}${suffix}`;
    const stat = lstatOrNothing(name);
    if (stat === undefined) return undefined;
    const ours = own !== undefined && stat.isFile && sameId(own, stat);
    if (ours && suffix === "-shm") {
      Deno.removeSync(name);
      return undefined;
    }
    const to = ours
      ? freeName(name, "lost")
      : strangerAside !== undefined
      ? `${strangerAside}${suffix}`
      : freeName(name, "foreign");
    Deno.renameSync(name, to);
    return ours ? to : undefined;
  }

  commit(): void {
    const conn = this.#usable();
    if (!this.#inBatch) throw new StorageError("commit without begin");
    this.#inBatch = false;
    const written = this.#written;
    this.#written = undefined;
    try {
      if (this.#pending >= FTS_BATCH) conn.db.exec(FLUSH_TEXT_SQL);
      conn.db.exec("COMMIT");
    } catch (e) {
      this.#rollback(conn);
      // The next begin reads the head afresh.
      this.#last = undefined;
      throw storageError(`cannot commit to the audit database ${this.path}`, e);
    }
    if (written !== undefined) this.#committed(written);
  }

  /** After a commit: the head, and durability as configured. */
  #committed(w: ChainedRecord): void {
    this.#last = {
      seq: w.record.seq,
      hash: w.hash,
      id: w.record.id,
      ts: w.record.ts,
      line: w.line,
    };
    this.#lastIn = this.#conn?.db;
    switch (this.#durability) {
      case "entry":
        this.#anchorAfterSync(this.#last);
        return;
      case "batch":
        // One sync at a time, one started per interval: the next covers every commit until then.
        this.#dirty = true;
        this.#pacer.request();
        return;
      case "none":
        this.#dirty = true;
        return;
      default: {
        const never: never = this.#durability;
        throw new StorageError(`unknown durability ${String(never)}`);
      }
    }
  }

  abort(): void {
    this.#inBatch = false;
    this.#written = undefined;
    this.#rollback(this.#conn);
  }

  #rollback(conn: Connection | undefined): void {
    if (conn === undefined) return;
    try {
      if (conn.db.isOpen && conn.db.isTransaction) conn.db.exec("ROLLBACK");
    } catch {
      // Nothing of the batch is stored; a connection that cannot roll back fails the next call.
    }
  }

  sync(): void {
    const conn = this.#usable();
    // A background sync in flight may not have reached the disk yet: one more, now.
    if (this.#dirty || this.#syncing !== undefined) {
      try {
        // Pages a checkpoint copied without syncing (durability none) go first, then the WAL.
        conn.file.syncDataSync();
        this.#syncWal();
      } catch (e) {
        throw this.#fail(`cannot sync the audit database ${this.path}`, e);
      }
      this.#dirty = false;
      this.#pacer.cancel();
    }
    if (this.#last !== undefined) this.#anchorAfterSync(this.#last);
  }

  #syncWal(): void {
    let wal: Deno.FsFile;
    try {
      wal = Deno.openSync(`${this.path}-wal`, { read: true });
    } catch (e) {
      // No WAL: everything is in the database file, synced by the checkpoint that removed it.
      if (e instanceof Deno.errors.NotFound) return;
      throw e;
    }
    try {
      wal.syncDataSync();
    } finally {
      wal.close();
    }
  }

  /** Starts a background sync of the WAL for the pacer; undefined when there is nothing to sync. */
  #syncInBackground(): Promise<void> | undefined {
    if (!this.#dirty || this.#failure !== undefined || this.#conn === undefined) return undefined;
    const head = this.#last;
    this.#dirty = false;
    const path = `${this.path}-wal`;
    const syncing: Promise<void> = (async () => {
      let wal: Deno.FsFile;
      try {
        wal = await Deno.open(path, { read: true });
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) return;
        throw e;
      }
      try {
        await wal.syncData();
      } finally {
        wal.close();
      }
    })().then(
      () => {
        if (this.#syncing === syncing) this.#syncing = undefined;
        if (head !== undefined) this.#anchor?.writeSoon(anchorHead(head));
      },
      (e) => {
        if (this.#syncing === syncing) this.#syncing = undefined;
        this.#fail(`cannot sync the audit database ${this.path}`, e);
      },
    );
    this.#syncing = syncing;
    return syncing;
  }

  /** The run's first anchor is written before going on; later ones in the background. */
  #anchorAfterSync(head: AnchorHead): void {
    const anchor = this.#anchor;
    if (anchor === undefined) return;
    if (anchor.written) return anchor.writeSoon(anchorHead(head));
    try {
      anchor.writeNow(anchorHead(head));
    } catch (e) {
      if (e instanceof StorageError) this.#failure ??= e;
      throw e;
    }
  }

  /** Resolves when no background sync or anchor update is left; a due sync is started now. */
  async settled(): Promise<void> {
    await this.#pacer.settled();
    while (this.#syncing !== undefined) await this.#syncing;
    await this.#anchor?.settled();
  }

  close(): void {
    const conn = this.#conn;
    if (conn === undefined) return;
    // What a due sync would have covered is synced below.
    this.#pacer.cancel();
    let error: unknown;
    try {
      if (this.#inBatch) this.abort();
      if (this.#failure === undefined) {
        this.sync();
        // The last anchor is written here, synchronously: not handed to the background writer.
        if (this.#anchor !== undefined && this.#last !== undefined) {
          this.#anchor.writeNow(anchorHead(this.#last));
        }
      }
    } catch (e) {
      error = e;
    }
    this.#conn = undefined;
    this.#release(conn);
    if (error !== undefined) {
      throw storageError(`cannot close the audit database ${this.path}`, error);
    }
  }

  /** Closes a connection, then the descriptor that held its file. */
  #release(conn: Connection): void {
    try {
      if (conn.db.isOpen) conn.db.close();
    } catch (e) {
      this.#logger?.warn("closing the audit database failed", { error: message(e) });
    } finally {
      try {
        conn.file.close();
      } catch {
        // Already closed.
      }
    }
  }

  #usable(): Connection {
    if (this.#failure !== undefined) throw this.#failure;
    try {
      this.#anchor?.check();
    } catch (e) {
      if (e instanceof StorageError) this.#failure = e;
      throw e;
    }
    if (this.#conn === undefined) throw new StorageError("audit database is closed");
    return this.#conn;
  }

  #fail(text: string, cause: unknown): StorageError {
    this.#failure ??= cause instanceof StorageError && cause.message.startsWith(text)
      ? cause
      : new StorageError(`${text}: ${explain(cause)}`, { cause });
    return this.#failure;
  }
}

function anchorHead(h: AnchorHead): AnchorHead {
  return { seq: h.seq, hash: h.hash, id: h.id, ts: h.ts };
}
