/**
 * JSONL storage: one canonical record a line, file mode 0600, any number of writers.
 *
 * Several proxy processes may append to one log. Each batch is written under an exclusive
 * advisory lock on `<log>.lock` ({@link FileLock}), and `begin` looks at the file again before
 * every batch, so the chain numbers and links each batch from what is really stored:
 * - the file grew by complete records: another writer wrote; its last record is the new head;
 * - the file ends in a partial record (a writer killed mid-batch): the line is closed with a
 *   newline, kept, and reported `torn`; bytes that are no record of ours are `extended`; a file
 *   shorter than this store left it is `truncated`;
 * - the path names another log of ours (another writer rotated it, or started it after the log
 *   was taken away): this store follows it silently;
 * - the path names nothing or a stranger: `deleted`, `moved` or `replaced`, and the chain goes on
 *   in a new file there (a stranger is moved aside whole, never written into);
 * - the active file is due for rotation: it is archived and a new one begun, under the same lock,
 *   so that `audit/rotate` is the new file's first record ({@link ./rotation.ts}).
 *
 * The file is the evidence, so the store looks before it touches: opening only looks (a symlink
 * unless allowed, a directory, a FIFO, a file that is not an mcp-audit log are refused with
 * nothing changed, and the anchor is checked); nothing is written outside a batch.
 *
 * Hold a batch only in synchronous code (`begin`, `write`s, `commit` with no `await` between):
 * the lock is taken with a blocking call, and a second handle in the same process waiting for it
 * would never let the first one finish.
 *
 * @module
 */
import { hash } from "node:crypto";
import { constants as zlibConstants, gunzipSync } from "node:zlib";
import { dirname, resolve } from "node:path";
import { type JsonObject, parseJson } from "../../jsonrpc/json.ts";
import type { Logger } from "../../log.ts";
import type { AnchorFile } from "./anchor_file.ts";
import { type Archive, archiveName, listArchives } from "./archives.ts";
import { RefusedPathError, StorageError } from "./errors.ts";
import { fileKind, lstatOrNothing } from "./file_kind.ts";
import { FileLock } from "./file_lock.ts";
import { DEFAULT_MAX_LINE } from "./log_lines.ts";
import {
  applyRetention,
  ArchiveCompressor,
  type ArchiveRead,
  type ArchiveReader,
  type ArchiveRecord,
  type ChainLink,
  removeStaleCompressions,
  type RetentionDeletion,
  rotates,
  type Rotation,
  rotationCause,
} from "./rotation.ts";
import type { BatchStart, ChainedRecord, RecordStore, StoreChange, StoredHead } from "./store.ts";
import { DEFAULT_SYNC_INTERVAL_MS, type PacerTimers, SyncPacer } from "./sync_pacer.ts";

export { AnchorMismatchError, RefusedPathError, StorageError } from "./errors.ts";

const LF = 0x0a;
// More non-record lines than this at the end of a file means it is not an audit log.
const MAX_TORN = 16;
// A log's first line is an event (audit/start, audit/recover): far smaller than this.
const FIRST_LINE_LIMIT = 1 << 20;
const MAX_SYMLINK_HOPS = 40;
// Lines longer than this (as `verify` reads them) are not read whole: they are no record of ours.
const MAX_LINE = DEFAULT_MAX_LINE;
// A batch larger than this is written in parts while it is built (bounded memory).
const BUFFER_LIMIT = 1 << 20;
// A compressed archive is read whole to find its last record only up to these sizes.
const GZ_READ_LIMIT = 64 << 20;
const GZ_OUTPUT_LIMIT = 256 << 20;
// Its first line is looked for in what this much of its start inflates to, up to the limit.
const GZ_PREFIX = 1 << 20;
const GZ_PREFIX_SMALL = 32 << 10;
const GZ_PREFIX_OUTPUT = 64 << 20;
// Archives whose ends retention remembers (per store), before it forgets them all.
const ARCHIVE_CACHE_LIMIT = 4096;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const posix = Deno.build.os !== "windows";

/** What the store needs besides its path. */
export interface JsonlOptions {
  /**
   * `audit.durability`: `entry` fsyncs before `commit` returns; `batch` fsyncs in the background
   * after batches (one at a time, at most one started per `syncIntervalMs`, each covering every
   * batch before it); `none` leaves it to the operating system until `sync` or `close`.
   */
  durability: "none" | "batch" | "entry";
  /** `audit.sync_interval_ms`: least time between background fsyncs' starts. Default 10. */
  syncIntervalMs?: number;
  /** The clock and timer pacing background fsyncs. Default: `performance.now`, `setTimeout`. */
  syncTimers?: PacerTimers;
  /** `audit.follow_symlinks`: write to the file a symlink at the path leads to. Default false. */
  followSymlinks?: boolean;
  /** Where warnings go: the log was deleted, moved, replaced, cut short, written into. */
  logger?: Pick<Logger, "warn">;
  /** The anchor to move after each fsync. The store closes it. */
  anchor?: AnchorFile;
  /** `audit.rotation`; rotation, retention and compression are off without it. */
  rotation?: Rotation;
  /** The clock for rotation and retention (milliseconds). Default `Date.now`. */
  now?: () => number;
}

/** A line closed or found that is not a complete record (byte offsets). */
interface LineAt {
  offset: number;
  length: number;
  text: string;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function writeAll(file: Deno.FsFile, bytes: Uint8Array): void {
  let at = 0;
  while (at < bytes.length) {
    const n = file.writeSync(bytes.subarray(at));
    // A write that takes nothing would loop forever; it is a failure like any other.
    if (n <= 0) throw new Error("write accepted no bytes");
    at += n;
  }
}

/** Random access to bytes: an open file, or a buffer (a gunzipped archive). */
interface ByteSource {
  size: number;
  read(offset: number, length: number): Uint8Array;
}

function fileSource(file: Deno.FsFile, size: number): ByteSource {
  return {
    size,
    read(offset, length) {
      const buf = new Uint8Array(length);
      file.seekSync(offset, Deno.SeekMode.Start);
      let at = 0;
      while (at < length) {
        const n = file.readSync(buf.subarray(at));
        if (n === null) break;
        at += n;
      }
      return buf.subarray(0, at);
    },
  };
}

function bufferSource(bytes: Uint8Array): ByteSource {
  return { size: bytes.length, read: (offset, length) => bytes.subarray(offset, offset + length) };
}

/** Start offset of the line ending just before `end` (exclusive), not before `floor`. */
function lineStart(src: ByteSource, end: number, floor: number): number {
  const block = 65536;
  let pos = end;
  while (pos > floor) {
    const from = Math.max(floor, pos - block);
    const chunk = src.read(from, pos - from);
    const nl = chunk.lastIndexOf(LF);
    if (nl !== -1) return from + nl + 1;
    pos = from;
  }
  return floor;
}

// Every stored line is RFC 8785 JSON of a record, whose first member in that order is client_id.
const RECORD_START = '{"client_id":"';
const HEX64 = /^[0-9a-f]{64}$/;

/** The seq, prev and ts of a stored record line; undefined when it is not a complete record. */
function recordFacts(
  text: string,
): { seq: number; prev: string; ts: string | null } | undefined {
  if (!text.startsWith(RECORD_START)) return undefined;
  let v: unknown;
  try {
    v = parseJson(text);
  } catch {
    // Not JSON: not a record.
    return undefined;
  }
  if (
    typeof v === "object" && v !== null && "v" in v && v.v === 1 && "seq" in v &&
    typeof v.seq === "number" && Number.isSafeInteger(v.seq) && v.seq >= 1 && "prev" in v &&
    typeof v.prev === "string" && HEX64.test(v.prev)
  ) {
    return { seq: v.seq, prev: v.prev, ts: "ts" in v && typeof v.ts === "string" ? v.ts : null };
  }
  return undefined;
}

/** The seq of a stored record line, or undefined when the line is not a complete record. */
function recordSeq(text: string): number | undefined {
  return recordFacts(text)?.seq;
}

/** The `ts` of a stored record line, in milliseconds, when it has a valid one. */
function recordTs(text: string): number | undefined {
  try {
    const v = parseJson(text);
    if (typeof v === "object" && v !== null && "ts" in v && typeof v.ts === "string") {
      const t = Date.parse(v.ts);
      return Number.isNaN(t) ? undefined : t;
    }
  } catch {
    // Not JSON: no time.
  }
  return undefined;
}

/** A line that is the start of a record cut short, as a writer killed mid-write leaves it. */
function looksTorn(text: string): boolean {
  return text.length > 0 && (text.startsWith(RECORD_START) || RECORD_START.startsWith(text));
}

/** The first line, read up to {@link FIRST_LINE_LIMIT}, and whether a newline ends it. */
function firstLine(src: ByteSource): { text: string; terminated: boolean } {
  const head = src.read(0, Math.min(src.size, FIRST_LINE_LIMIT + 1));
  const nl = head.indexOf(LF);
  if (nl === -1) return { text: decoder.decode(head), terminated: false };
  return { text: decoder.decode(head.subarray(0, nl)), terminated: true };
}

/** The line at [start, end): its bytes, unless it is too long to be a record (then its start). */
function lineAt(
  src: ByteSource,
  start: number,
  end: number,
): { bytes: Uint8Array; whole: boolean } {
  if (end - start > MAX_LINE) return { bytes: src.read(start, RECORD_START.length), whole: false };
  return { bytes: src.read(start, end - start), whole: true };
}

/** What the end of a file holds after some offset; nothing is changed while reading. */
interface Tail {
  /** The last complete record after the floor: its stored bytes. */
  last: Uint8Array | undefined;
  /** Lines after it that are not complete records, in file order. */
  trailing: LineAt[];
  /** The file does not end in `\n`: the last line must be closed before anything is appended. */
  unterminated: boolean;
  /** More than {@link MAX_TORN} such lines: the walk stopped there. */
  tooMany: boolean;
}

/**
 * Walks back from the end of `src` to its last complete record, no further than `floor` (the
 * start of a line), collecting the lines after it that are not records.
 */
function tail(src: ByteSource, floor: number): Tail {
  const trailing: LineAt[] = [];
  const found = (last: Uint8Array | undefined, unterminated: boolean, tooMany = false): Tail => {
    trailing.reverse();
    return { last, trailing, unterminated, tooMany };
  };
  const size = src.size;
  if (size <= floor) return found(undefined, false);
  let end: number;
  let unterminated = false;
  if (src.read(size - 1, 1)[0] !== LF) {
    unterminated = true;
    const start = lineStart(src, size, floor);
    const { bytes, whole } = lineAt(src, start, size);
    const text = decoder.decode(bytes);
    // A whole record that lost only its newline is complete: the chain continues from it.
    if (whole && recordSeq(text) !== undefined) return found(bytes, true);
    trailing.push({ offset: start, length: size - start, text });
    end = start - 1;
  } else {
    end = size - 1;
  }
  while (end >= floor) {
    const start = lineStart(src, end, floor);
    const { bytes, whole } = lineAt(src, start, end);
    const text = decoder.decode(bytes);
    if (whole && recordSeq(text) !== undefined) return found(bytes, unterminated);
    trailing.push({ offset: start, length: end - start, text });
    if (trailing.length > MAX_TORN) return found(undefined, unterminated, true);
    end = start - 1;
  }
  return found(undefined, unterminated);
}

function headOf(line: Uint8Array): StoredHead {
  return { seq: recordSeq(decoder.decode(line))!, hash: hash("sha256", line, "hex") };
}

/** The record due after `head`: what it links to. */
function chainLinkAfter(head: StoredHead): ChainLink {
  return { seq: head.seq + 1, prev: head.hash };
}

/**
 * The whole content of a compressed archive; undefined when it is too large to hold
 * ({@link GZ_READ_LIMIT} compressed, {@link GZ_OUTPUT_LIMIT} inflated).
 * @throws when it cannot be read or is corrupt
 */
function gunzipped(path: string): Uint8Array | undefined {
  using file = Deno.openSync(path, { read: true });
  const size = file.statSync().size;
  if (size > GZ_READ_LIMIT) return undefined;
  try {
    return gunzipSync(fileSource(file, size).read(0, size), { maxOutputLength: GZ_OUTPUT_LIMIT });
  } catch (e) {
    if (e instanceof RangeError) return undefined;
    throw e;
  }
}

/** Where retention stands an archive's record: its seq, its links and its time. */
function archiveRecord(line: Uint8Array): ArchiveRecord | undefined {
  const facts = recordFacts(decoder.decode(line));
  if (facts === undefined) return undefined;
  const time = facts.ts === null ? Number.NaN : Date.parse(facts.ts);
  return {
    seq: facts.seq,
    prev: facts.prev,
    hash: hash("sha256", line, "hex"),
    ts: Number.isNaN(time) ? null : facts.ts,
    time: Number.isNaN(time) ? null : time,
  };
}

/**
 * The start of a compressed archive's content: what its first {@link GZ_PREFIX} bytes inflate
 * to (less when that would pass {@link GZ_PREFIX_OUTPUT}), and whether that is all of it.
 */
function gunzippedStart(path: string): { bytes: Uint8Array; whole: boolean } {
  using file = Deno.openSync(path, { read: true });
  const size = file.statSync().size;
  const src = fileSource(file, size);
  for (const prefix of [GZ_PREFIX, GZ_PREFIX_SMALL]) {
    const n = Math.min(size, prefix);
    try {
      const bytes = gunzipSync(src.read(0, n), {
        finishFlush: zlibConstants.Z_SYNC_FLUSH,
        maxOutputLength: GZ_PREFIX_OUTPUT,
      });
      return { bytes, whole: n === size };
    } catch (e) {
      // Inflating that far would hold too much: a smaller start still holds a first line.
      if (!(e instanceof RangeError)) throw e;
    }
  }
  throw new Error(`its start inflates to more than ${GZ_PREFIX_OUTPUT} bytes`);
}

/**
 * The first {@link FIRST_LINE_LIMIT} + 1 bytes of an archive's content (gunzipped), and whether
 * they are all there is to look at (false when only a compressed start could be inflated).
 */
function archiveStart(a: Archive): { head: Uint8Array; whole: boolean } {
  if (a.gzip) {
    const { bytes, whole } = gunzippedStart(a.path);
    return { head: bytes.subarray(0, FIRST_LINE_LIMIT + 1), whole };
  }
  using file = Deno.openSync(a.path, { read: true });
  const src = fileSource(file, file.statSync().size);
  return { head: src.read(0, Math.min(src.size, FIRST_LINE_LIMIT + 1)), whole: true };
}

/** An archive's first record: where it starts in the chain; a stranger when it is no record. */
function readArchiveFirst(a: Archive): ArchiveRead {
  let start: { head: Uint8Array; whole: boolean };
  try {
    start = archiveStart(a);
  } catch (e) {
    return { kind: "unreadable", why: `it cannot be read: ${message(e)}` };
  }
  const { head, whole } = start;
  if (head.length === 0) return { kind: "stranger", why: "it is empty" };
  const nl = head.indexOf(LF);
  if (nl === -1 && !whole && head.length <= FIRST_LINE_LIMIT) {
    return { kind: "unreadable", why: "its first line could not be found in its start" };
  }
  const record = nl === -1 ? undefined : archiveRecord(head.subarray(0, nl));
  if (record === undefined) {
    return { kind: "stranger", why: "its first line is not a complete audit record" };
  }
  return { kind: "record", record };
}

/**
 * The stored line of an archive's last complete record; `undefined` when there is none, or when
 * it is compressed and too large to read whole ({@link GZ_READ_LIMIT}, {@link GZ_OUTPUT_LIMIT}).
 * @throws when it cannot be read
 */
function archiveLastLine(a: Archive): Uint8Array | undefined {
  if (a.gzip) {
    const bytes = gunzipped(a.path);
    return bytes === undefined ? undefined : tail(bufferSource(bytes), 0).last;
  }
  using file = Deno.openSync(a.path, { read: true });
  return tail(fileSource(file, file.statSync().size), 0).last;
}

/** An archive's last record, read whole (a `.gz` only up to {@link GZ_READ_LIMIT}). */
function readArchiveLast(a: Archive): ArchiveRead {
  let last: Uint8Array | undefined;
  try {
    last = archiveLastLine(a);
  } catch (e) {
    return { kind: "unreadable", why: `it cannot be read: ${message(e)}` };
  }
  const record = last === undefined ? undefined : archiveRecord(last);
  if (record !== undefined) return { kind: "record", record };
  return {
    kind: "unreadable",
    why: a.gzip
      ? "no complete audit record is found at its end (a compressed archive is read only up " +
        `to ${GZ_READ_LIMIT} bytes, ${GZ_OUTPUT_LIMIT} inflated)`
      : "no complete audit record is found at its end",
  };
}

/** What an archive's ends were read as, for a file as it was then. */
interface ArchiveEnds {
  /** dev, inode, size, mtime and ctime: any change to the file changes it. */
  key: string;
  first?: ArchiveRead;
  last?: ArchiveRead;
}

/**
 * Reads archives' first and last records for retention, remembering what it read of each file
 * while the file stays the same (archives do not change once closed), so that retention after
 * every rotation costs only the new archive. A failure to read is not remembered.
 */
class ArchiveEndsReader implements ArchiveReader {
  readonly #read = new Map<string, ArchiveEnds>();

  first(a: Archive): ArchiveRead {
    return this.#get(a, "first");
  }

  last(a: Archive): ArchiveRead {
    return this.#get(a, "last");
  }

  #get(a: Archive, end: "first" | "last"): ArchiveRead {
    let stat: Deno.FileInfo;
    try {
      stat = Deno.statSync(a.path);
    } catch (e) {
      return { kind: "unreadable", why: `it cannot be read: ${message(e)}` };
    }
    const key = [stat.dev, stat.ino, stat.size, stat.mtime?.getTime(), stat.ctime?.getTime()]
      .join(":");
    let ends = this.#read.get(a.path);
    if (ends === undefined || ends.key !== key) {
      if (this.#read.size >= ARCHIVE_CACHE_LIMIT) this.#read.clear();
      ends = { key };
      this.#read.set(a.path, ends);
    }
    const known = ends[end];
    if (known !== undefined) return known;
    const read = end === "first" ? readArchiveFirst(a) : readArchiveLast(a);
    if (read.kind !== "unreadable") ends[end] = read;
    return read;
  }
}

function sameFile(a: Deno.FileInfo, b: Deno.FileInfo): boolean {
  // Without inode numbers (Windows) there is nothing to compare.
  if (a.dev === null || a.ino === null || b.dev === null || b.ino === null) return true;
  return a.dev === b.dev && a.ino === b.ino;
}

/**
 * The file the path leads to, without opening anything: the path itself, or with `follow` the end
 * of its symlinks. Refuses anything but a regular file or nothing.
 */
function resolveTarget(path: string, follow: boolean): string {
  let target = path;
  for (let hops = 0;; hops++) {
    let stat: Deno.FileInfo | undefined;
    try {
      stat = lstatOrNothing(target);
    } catch (e) {
      throw new StorageError(`cannot open audit log ${target}: ${message(e)}`, { cause: e });
    }
    if (stat === undefined) return target;
    if (stat.isSymlink) {
      if (!follow) {
        throw new RefusedPathError(
          "audit.path",
          `${path} is a symbolic link; refusing to write through it (set audit.follow_symlinks: true to log to the file it leads to)`,
        );
      }
      if (hops >= MAX_SYMLINK_HOPS) {
        throw new RefusedPathError("audit.path", `${path}: too many levels of symbolic links`);
      }
      target = resolve(dirname(target), Deno.readLinkSync(target));
      continue;
    }
    if (!stat.isFile) {
      throw new RefusedPathError("audit.path", `${target} is ${fileKind(stat)}, not a log file`);
    }
    return target;
  }
}

/** Why a file is not a log of ours, or undefined when it may be one (read-only). */
function notLogReason(src: ByteSource): string | undefined {
  if (src.size === 0) return undefined;
  const first = firstLine(src);
  if (first.terminated) {
    if (recordSeq(first.text) === undefined) return "its first line is not an audit record";
  } else if (src.size > FIRST_LINE_LIMIT) {
    return `no line break in its first ${FIRST_LINE_LIMIT} bytes`;
  } else if (!looksTorn(first.text)) {
    // One line and no newline: only the first record, torn by a crash, may look like that.
    return "it holds one unterminated line that is not an audit record";
  }
  if (tail(src, 0).tooMany) return "it does not end in audit records";
  return undefined;
}

function notLog(path: string, why: string): RefusedPathError {
  return new RefusedPathError(
    "audit.path",
    `${path} is not an mcp-audit log (${why}); refusing to append to it`,
  );
}

/** What a check found when the path stopped naming the file held. */
interface Lost {
  kind: "deleted" | "moved" | "replaced";
  linked: boolean;
  /** What sits at the path instead, for `replaced`: moved aside by `startNewFile`. */
  foreign: Deno.FileInfo | undefined;
  /**
   * The file held is already the new one (empty): at start, when the active file is missing or
   * empty while archives hold the chain, or when a batch that started a new file was abandoned.
   * `startNewFile` then only returns these facts.
   */
  keep: JsonObject | undefined;
}

/** A file this store began (rotation or `startNewFile`) whose first record is still owed. */
interface Fresh {
  file: Deno.FsFile;
  /** The change to report again while the file stays empty. */
  change: StoreChange;
  /** For a new file: what `startNewFile` said, said again. */
  details: JsonObject | undefined;
}

function isLost(c: StoreChange): c is Extract<StoreChange, { oldFileLinked: boolean }> {
  return c.kind === "deleted" || c.kind === "moved" || c.kind === "replaced";
}

function deletedJson(deleted: RetentionDeletion[]): JsonObject[] {
  return deleted.map((d) => ({
    name: d.name,
    rule: d.rule,
    first_seq: d.first_seq,
    last_seq: d.last_seq,
    last_ts: d.last_ts,
  }));
}

/**
 * Appends canonical record lines to one JSONL file shared by any number of writers.
 *
 * @example
 * ```ts
 * import { JsonlStore } from "./jsonl.ts";
 * const dir = Deno.makeTempDirSync();
 * const store = new JsonlStore(`${dir}/audit.jsonl`, { durability: "batch" });
 * const start = store.begin(); // locked; start.head is null: an empty log
 * // … number records from start.head, store.write({ line, record, hash }) each …
 * store.commit(); // written, unlocked, fsync under way
 * await store.settled();
 * store.close();
 * ```
 */
export class JsonlStore implements RecordStore {
  readonly backend = "jsonl" as const;
  /** The file written: the configured path, or where its symlinks lead when following them. */
  readonly path: string;
  readonly #lockPath: string;
  readonly #lock: FileLock;
  readonly #durability: JsonlOptions["durability"];
  readonly #logger: JsonlOptions["logger"];
  readonly #anchor: AnchorFile | undefined;
  readonly #rotation: Rotation | undefined;
  readonly #now: () => number;
  readonly #compressor: ArchiveCompressor | undefined;
  readonly #archiveReader = new ArchiveEndsReader();
  #file: Deno.FsFile | undefined;
  #stat: Deno.FileInfo | undefined;
  /** Bytes in the file as far as this store knows: what it found plus what it wrote. */
  #end = 0;
  /** False after a failed write: the file's end is unknown until the next `begin` looks. */
  #known = true;
  #started = false;
  #closed = false;
  /** A batch is open: the lock is held. */
  #batch = false;
  /** The changes the open batch reported; kept for the next batch if this one is abandoned. */
  #reported: StoreChange[] = [];
  /** Changes of an abandoned batch, reported again by the next `begin`. */
  #owed: StoreChange[] = [];
  /** The head the open batch reported, and one an abandoned batch reported (said again). */
  #reportedHead: StoredHead | null | undefined;
  #owedHead: StoredHead | null | undefined;
  #fresh: Fresh | undefined;
  #lost: Lost | undefined;
  /** The `ts` of the active file's first record, by file. */
  #firstTs: { stat: Deno.FileInfo; ts: number } | undefined;
  /** The highest seq this store has seen stored (its own or another writer's). */
  #seenSeq = 0;
  /** Lines of the open batch not yet written. */
  #buffer: string[] = [];
  #buffered = 0;
  #bufferedLast: ChainedRecord | undefined;
  /** The last record this store handed to the operating system (for the anchor). */
  #tail: ChainedRecord | undefined;
  /** Written since the last fsync. */
  #dirty = false;
  /** A background fsync in flight. */
  #syncing: Promise<void> | undefined;
  /** When background fsyncs start (`batch`). */
  readonly #pacer: SyncPacer;
  /** A failed fsync (or a log that can no longer be made): every later operation throws it. */
  #failure: StorageError | undefined;

  /**
   * Looks at the log at `path` under its lock, changing nothing.
   * @throws {RefusedPathError} when the path names something that is not a log; nothing changed
   * @throws {AnchorMismatchError} when the anchor names a record the log no longer holds
   * @throws {StorageError} when the log's directory or lock file cannot be used
   */
  constructor(path: string, options: JsonlOptions) {
    this.#durability = options.durability;
    this.#logger = options.logger;
    this.#anchor = options.anchor;
    this.#rotation = rotates(options.rotation) ? options.rotation : undefined;
    this.#now = options.now ?? Date.now;
    this.#pacer = new SyncPacer({
      intervalMs: options.syncIntervalMs ?? DEFAULT_SYNC_INTERVAL_MS,
      start: () => this.#syncInBackground(),
      ...(options.syncTimers === undefined ? {} : { timers: options.syncTimers }),
    });
    this.path = resolveTarget(path, options.followSymlinks ?? false);
    const dir = dirname(this.path);
    let dirStat: Deno.FileInfo | undefined;
    try {
      dirStat = Deno.statSync(dir);
    } catch {
      dirStat = undefined;
    }
    if (dirStat === undefined || !dirStat.isDirectory) {
      throw new StorageError(`cannot open audit log ${this.path}: its directory ${dir} is missing`);
    }
    this.#lockPath = `${this.path}.lock`;
    this.#lock = new FileLock(this.#lockPath);
    try {
      this.#lock.lock();
      try {
        this.#inspect();
      } finally {
        this.#lock.unlock();
      }
    } catch (e) {
      this.#lock.close();
      throw e;
    }
    this.#compressor = this.#rotation?.compress === "gzip"
      ? new ArchiveCompressor({
        ...(this.#logger === undefined ? {} : { logger: this.#logger }),
        underLock: (fn) => this.#underLock(fn),
      })
      : undefined;
  }

  /** The open's look: refusals and the anchor, read-only. */
  #inspect(): void {
    let stat: Deno.FileInfo | undefined;
    try {
      stat = lstatOrNothing(this.path);
    } catch (e) {
      throw new StorageError(`cannot open audit log ${this.path}: ${message(e)}`, { cause: e });
    }
    let last: Uint8Array | undefined;
    if (stat !== undefined) {
      if (!stat.isFile) {
        throw new RefusedPathError(
          "audit.path",
          `${this.path} is ${fileKind(stat)}, not a log file`,
        );
      }
      let file: Deno.FsFile;
      try {
        file = Deno.openSync(this.path, { read: true });
      } catch (e) {
        throw new StorageError(`cannot open audit log ${this.path}: ${message(e)}`, { cause: e });
      }
      try {
        const now = file.statSync();
        // open(2) follows a symlink put there after the look; what it opened must be what was seen.
        if (!sameFile(now, stat)) {
          throw new StorageError(`audit log ${this.path} changed while it was being opened`);
        }
        const src = fileSource(file, now.size);
        const why = notLogReason(src);
        if (why !== undefined) throw notLog(this.path, why);
        last = tail(src, 0).last;
      } finally {
        file.close();
      }
    }
    if (this.#anchor === undefined) return;
    if (last === undefined) last = this.#archivedHead()?.line;
    this.#anchor.checkLog(last === undefined ? undefined : decoder.decode(last));
  }

  /** The last record of the newest archive, when there are archives. */
  #archivedHead(): { line: Uint8Array; archive: Archive } | undefined {
    const newest = listArchives(this.path).at(-1);
    if (newest === undefined) return undefined;
    let last: Uint8Array | undefined;
    try {
      last = archiveLastLine(newest);
    } catch (e) {
      throw new StorageError(
        `cannot read the newest archive ${newest.path} to find where the chain ends: ${message(e)}`,
        { cause: e },
      );
    }
    if (last === undefined) {
      throw new StorageError(
        `cannot find the last record of the newest archive ${newest.path}, where the chain ends`,
      );
    }
    return { line: last, archive: newest };
  }

  begin(): BatchStart {
    this.#usable();
    if (this.#batch) throw new StorageError("a batch is already open on the audit log");
    this.#lock.lock();
    this.#batch = true;
    try {
      const start = this.#look();
      // A head reported to a batch that was abandoned may not have been taken: say it again.
      if (start.head === undefined && this.#owedHead !== undefined) start.head = this.#owedHead;
      this.#owedHead = undefined;
      this.#reported = start.changes;
      this.#reportedHead = start.head;
      return start;
    } catch (e) {
      this.#endBatch();
      if (e instanceof StorageError) throw e;
      throw new StorageError(`cannot check the audit log ${this.path}: ${message(e)}`, {
        cause: e,
      });
    }
  }

  write(entry: ChainedRecord): void {
    if (!this.#batch) throw new StorageError("write outside a batch");
    this.#buffer.push(entry.line, "\n");
    this.#buffered += entry.line.length + 1;
    this.#bufferedLast = entry;
    if (this.#buffered >= BUFFER_LIMIT) this.#flush();
  }

  commit(): void {
    if (!this.#batch) throw new StorageError("commit outside a batch");
    try {
      this.#flush();
    } catch (e) {
      this.#abandon();
      throw e;
    }
    this.#reported = [];
    this.#owed = [];
    this.#reportedHead = undefined;
    // The lock guards the file's end, not its durability: other writers go on while this fsync
    // runs (it covers their bytes too), and `commit` still returns only once it is done.
    this.#endBatch();
    switch (this.#durability) {
      case "entry":
        this.#syncNow();
        return;
      case "batch":
        // One fsync at a time, one started per interval: the next covers every batch until then.
        if (this.#dirty) this.#pacer.request();
        return;
      case "none":
        return;
      default: {
        const never: never = this.#durability;
        throw new StorageError(`unknown durability ${String(never)}`);
      }
    }
  }

  abort(): void {
    if (!this.#batch) return;
    this.#abandon();
  }

  sync(): void {
    this.#usable();
    this.#syncNow();
  }

  /**
   * Resolves when no background fsync, anchor update or compression is left; an fsync waiting for
   * its interval is started now.
   */
  async settled(): Promise<void> {
    await this.#pacer.settled();
    while (this.#syncing !== undefined) await this.#syncing;
    await this.#anchor?.settled();
    await this.#compressor?.settled();
  }

  /** How each archive compression of this store ended, oldest first (at most 1,000). */
  get compressions(): readonly { path: string; outcome: string }[] {
    return this.#compressor?.outcomes ?? [];
  }

  startNewFile(): JsonObject {
    if (!this.#batch) throw new StorageError("startNewFile outside a batch");
    const lost = this.#lost;
    if (lost === undefined) throw new StorageError("startNewFile without a lost path");
    this.#lost = undefined;
    if (lost.keep !== undefined) return lost.keep;
    const old = this.#file!;
    const oldStat = this.#stat!;
    // What the old file holds (the chain's closing checkpoint included) is all there is of those
    // records: written and durable before it is left.
    this.#flush();
    this.#syncNow();
    const details: JsonObject = {
      path: this.path,
      previous_file: {
        dev: oldStat.dev,
        ino: oldStat.ino,
        size: this.#end,
        still_linked: lost.linked,
      },
    };
    if (lost.foreign !== undefined) {
      // Never write into a file the proxy did not create, and never destroy one: a rename keeps
      // the stranger whole (content, mode, mtime) for whoever investigates.
      const aside = this.#asideName();
      try {
        Deno.renameSync(this.path, aside);
      } catch (e) {
        throw this.#fail(
          `cannot move aside what replaced the audit log ${this.path}: ${message(e)}`,
          e,
        );
      }
      details.foreign = {
        moved_to: aside,
        type: fileKind(lost.foreign),
        size: lost.foreign.size,
        dev: lost.foreign.dev,
        ino: lost.foreign.ino,
        mtime: lost.foreign.mtime?.toISOString() ?? null,
      };
      this.#logger?.warn("moved aside what replaced the audit log", { path: this.path, aside });
    }
    let file: Deno.FsFile;
    try {
      // O_EXCL: if anything appeared at the path meanwhile, this fails instead of writing into it.
      file = Deno.openSync(this.path, { read: true, append: true, createNew: true, mode: 0o600 });
    } catch (e) {
      const hint = e instanceof Deno.errors.NotFound ? " (its directory is gone)" : "";
      throw this.#fail(`cannot start a new audit log at ${this.path}${hint}: ${message(e)}`, e);
    }
    this.#take(file);
    this.#retire(old);
    const change: StoreChange = {
      kind: lost.kind,
      oldFileLinked: false,
      reason: `a new audit log file was started at ${this.path} (${lost.kind}), but its first ` +
        "record was not stored; it is recorded again",
    };
    this.#fresh = { file, change, details };
    // Should this batch be abandoned, the new file is owed its first record.
    this.#reported = this.#reported.map((c) => isLost(c) ? change : c);
    return details;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // What a due fsync would have covered is synced below.
    this.#pacer.cancel();
    if (this.#batch) this.#abandon();
    let error: unknown;
    if (this.#failure === undefined && this.#file !== undefined) {
      try {
        // The last anchor is written here, synchronously: not handed to the background writer.
        this.#syncFile();
        if (this.#anchor !== undefined && this.#tail !== undefined) {
          this.#anchor.writeNow(this.#anchorHead(this.#tail));
        }
      } catch (e) {
        error = e;
      }
    }
    const file = this.#file;
    this.#file = undefined;
    try {
      file?.close();
    } catch (e) {
      error ??= new StorageError(`cannot close the audit log ${this.path}: ${message(e)}`, {
        cause: e,
      });
    }
    this.#lock.close();
    this.#anchor?.close();
    // A compression under way is dropped (await `settled()` first to let it finish).
    this.#compressor?.close();
    if (this.#failure !== undefined) throw this.#failure;
    if (error !== undefined) throw error;
  }

  // ---- looking at the log, under the lock ----

  /** What `begin` reports: the head as stored, and the changes to record first. */
  #look(): BatchStart {
    const changes: StoreChange[] = [];
    let head: StoredHead | null | undefined;
    const first = !this.#started;
    if (first) {
      head = this.#startup(changes);
      this.#started = true;
    } else {
      head = this.#check(changes);
    }
    changes.unshift(...this.#stillOwed());
    if (changes.length === 0 && this.#lost === undefined && this.#rotation !== undefined) {
      const rotated = this.#rotateIfDue();
      if (rotated !== undefined) changes.push(rotated);
    }
    if (first && this.#rotation !== undefined) {
      if (!changes.some((c) => c.kind === "rotated")) {
        const deleted = this.#retention(this.#activeLink(head));
        if (deleted.length > 0) {
          changes.push({
            kind: "retention",
            reason: `retention deleted ${deleted.length} archive(s) of the audit log ${this.path}`,
            details: { deleted_archives: deletedJson(deleted) },
          });
        }
      }
      this.#tidyCompressions();
    }
    return { head, changes };
  }

  /** The first batch of the run: opens what is at the path (or creates it) and reads its end. */
  #startup(changes: StoreChange[]): StoredHead | null {
    // A first batch that failed half way is begun again from the start.
    this.#file?.close();
    this.#file = undefined;
    const stat = lstatOrNothing(this.path);
    let file: Deno.FsFile;
    let created = false;
    if (stat === undefined) {
      try {
        file = Deno.openSync(this.path, {
          read: true,
          append: true,
          createNew: true,
          mode: 0o600,
        });
      } catch (e) {
        throw new StorageError(`cannot create the audit log ${this.path}: ${message(e)}`, {
          cause: e,
        });
      }
      created = true;
    } else {
      if (!stat.isFile) {
        throw new RefusedPathError(
          "audit.path",
          `${this.path} is ${fileKind(stat)}, not a log file`,
        );
      }
      file = Deno.openSync(this.path, { read: true, append: true });
    }
    try {
      const now = file.statSync();
      if (stat !== undefined && !sameFile(now, stat)) {
        throw new StorageError(`audit log ${this.path} changed while it was being opened`);
      }
      const src = fileSource(file, now.size);
      const why = notLogReason(src);
      if (why !== undefined) throw notLog(this.path, why);
      const found = tail(src, 0);
      // Only now that the file is known to be a log of ours is anything changed in it.
      if (!created && posix && now.mode !== null && (now.mode & 0o077) !== 0) {
        // An existing log readable by others is tightened, not trusted as is. chmod(2) takes a
        // path: look once more that the path still names the file held.
        const again = Deno.lstatSync(this.path);
        if (!again.isFile || !sameFile(again, now)) {
          throw new StorageError(`audit log ${this.path} changed while it was being opened`);
        }
        Deno.chmodSync(this.path, 0o600);
      }
      this.#take(file);
      this.#end = now.size;
      this.#closeLine(found);
      this.#report(found, undefined, changes);
      let head: StoredHead | null = found.last === undefined ? null : headOf(found.last);
      if (head === null) {
        const archived = this.#archivedHead();
        if (archived !== undefined) {
          head = headOf(archived.line);
          if (this.#end === 0) {
            // Missing or empty while archives hold the chain: a rotation stopped before its first
            // record, or the active file was taken away while no proxy ran.
            const reason = `the audit log ${this.path} is ${
              created ? "missing" : "empty"
            } while its archives end at seq ${head.seq} (${archived.archive.name}); the chain continues in it as a new file`;
            this.#logger?.warn(reason, { path: this.path, change: "deleted", last_seq: head.seq });
            this.#lost = {
              kind: "deleted",
              linked: false,
              foreign: undefined,
              keep: {
                path: this.path,
                previous_file: null,
                continues_from_archive: archived.archive.name,
              },
            };
            const change: StoreChange = { kind: "deleted", oldFileLinked: false, reason };
            changes.push(change);
            // Owed again, should this batch be abandoned.
            this.#fresh = { file, change, details: this.#lost.keep };
          }
        }
      }
      this.#seenSeq = head?.seq ?? 0;
      return head;
    } catch (e) {
      if (this.#file !== file) file.close();
      throw e;
    }
  }

  /** A later batch: is the path still our file, at the size we left it? */
  #check(changes: StoreChange[]): StoredHead | undefined {
    const file = this.#file!;
    const held = this.#stat!;
    const now = lstatOrNothing(this.path);
    if (now !== undefined && now.isFile && sameFile(now, held)) {
      if (now.size === this.#end && this.#known) return undefined;
      return this.#resized(file, now.size, changes);
    }
    if (now !== undefined && now.isFile) {
      const adopted = this.#adopt(now, changes);
      if (adopted !== undefined) return adopted;
    }
    // The path no longer names our file. Other writers may have written to it since we last
    // looked: the chain continues from its real end.
    const info = file.statSync();
    const head = info.size !== this.#end || !this.#known
      ? this.#resized(file, info.size, changes)
      : undefined;
    const linked = info.nlink === null || info.nlink > 0;
    const kind = now !== undefined ? "replaced" : linked ? "moved" : "deleted";
    const reason = kind === "deleted"
      ? `the audit log ${this.path} was deleted while the proxy ran; the chain continues in a new file there`
      : kind === "moved"
      ? `the audit log ${this.path} was moved away while the proxy ran (it lives on under another name); the chain continues in a new file there`
      : `${
        fileKind(now!)
      } the proxy did not create replaced the audit log ${this.path}; it is moved aside and the chain continues in a new file there`;
    this.#lost = { kind, linked, foreign: now, keep: undefined };
    this.#logger?.warn(reason, { path: this.path, change: kind, last_seq: this.#seenSeq });
    changes.push({ kind, oldFileLinked: linked, reason });
    return head;
  }

  /**
   * Another log of ours at the path (another writer rotated it, or began it when the log was
   * taken away): this store follows it. A file that does not continue the chain this store has
   * seen (an older copy put back) is not followed.
   */
  #adopt(stat: Deno.FileInfo, changes: StoreChange[]): StoredHead | undefined {
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(this.path, { read: true, append: true });
    } catch {
      return undefined;
    }
    let keep = false;
    try {
      const info = file.statSync();
      if (!sameFile(info, stat)) return undefined;
      const src = fileSource(file, info.size);
      const first = firstLine(src);
      if (!first.terminated || recordSeq(first.text) === undefined) return undefined;
      const found = tail(src, 0);
      if (found.last === undefined && !found.tooMany) return undefined;
      const head = found.last === undefined ? undefined : headOf(found.last);
      if (head !== undefined && head.seq < this.#seenSeq) return undefined;
      const old = this.#file!;
      this.#take(file);
      keep = true;
      this.#retire(old);
      this.#end = info.size;
      this.#closeLine(found);
      this.#report(found, undefined, changes);
      if (head !== undefined) this.#seenSeq = Math.max(this.#seenSeq, head.seq);
      return head;
    } finally {
      if (!keep) file.close();
    }
  }

  /** Our file is not the size we left it: cut short, or written by others since. */
  #resized(file: Deno.FsFile, size: number, changes: StoreChange[]): StoredHead | undefined {
    if (size < this.#end) {
      const details: JsonObject = { path: this.path, expected_size: this.#end, found_size: size };
      const src = fileSource(file, size);
      if (size > 0 && src.read(size - 1, 1)[0] !== LF) {
        // A partial line: close it so that the next record starts a line of its own.
        const start = lineStart(src, size, 0);
        details.closed_line = { offset: start, length: size - start };
        this.#appendNewline(file);
      }
      const reason =
        `the audit log ${this.path} was cut from ${this.#end} to ${size} bytes while the proxy ran: records at its end were removed`;
      this.#logger?.warn(reason, {
        path: this.path,
        change: "truncated",
        last_seq: this.#seenSeq,
      });
      this.#end = size + (details.closed_line === undefined ? 0 : 1);
      this.#known = true;
      changes.push({ kind: "truncated", reason, details });
      return undefined;
    }
    const floor = this.#end;
    const found = tail(fileSource(file, size), floor);
    this.#end = size;
    this.#known = true;
    this.#closeLine(found);
    this.#report(found, floor, changes);
    if (found.last === undefined) return undefined;
    const head = headOf(found.last);
    this.#seenSeq = Math.max(this.#seenSeq, head.seq);
    return head;
  }

  /** A file that does not end in a newline is closed with one before anything is appended. */
  #closeLine(found: Tail): void {
    if (!found.unterminated) return;
    this.#appendNewline(this.#file!);
    this.#end += 1;
  }

  #appendNewline(file: Deno.FsFile): void {
    try {
      writeAll(file, new Uint8Array([LF]));
    } catch (e) {
      this.#known = false;
      throw new StorageError(`cannot append to the audit log ${this.path}: ${message(e)}`, {
        cause: e,
      });
    }
  }

  /**
   * Reports the lines after the last record: `torn` when each is a record cut short (a writer
   * stopped mid-write), `extended` when any is something else.
   * @param floor where this store had left the file, when it had
   */
  #report(found: Tail, floor: number | undefined, changes: StoreChange[]): void {
    if (found.trailing.length === 0 && !found.tooMany) return;
    const lines = found.trailing.map((l) => ({
      file: this.path,
      offset: l.offset,
      length: l.length,
    }));
    const foreign = found.tooMany || found.trailing.some((l) => !looksTorn(l.text));
    if (!foreign) {
      const reason =
        `${lines.length} line(s) at the end of the audit log ${this.path} are records ` +
        "cut short (a writer stopped mid-write); they are kept and closed with a newline";
      this.#logger?.warn(reason, { path: this.path, change: "torn", last_seq: this.#seenSeq });
      changes.push({ kind: "torn", reason, details: { path: this.path, torn: lines } });
      return;
    }
    const from = found.tooMany ? floor ?? 0 : found.trailing[0]!.offset;
    const size = this.#end - (found.unterminated ? 1 : 0);
    const details: JsonObject = {
      path: this.path,
      found_size: size,
      foreign_bytes: { offset: from, length: size - from },
      lines: found.tooMany ? null : lines,
    };
    if (floor !== undefined) details.expected_size = floor;
    const reason = `${
      size - from
    } bytes at the end of the audit log ${this.path} are not records of ours: written into it by another program`;
    this.#logger?.warn(reason, { path: this.path, change: "extended", last_seq: this.#seenSeq });
    changes.push({ kind: "extended", reason, details });
  }

  /** Changes of an abandoned batch that still hold. */
  #stillOwed(): StoreChange[] {
    const owed = this.#owed;
    this.#owed = [];
    const fresh = this.#fresh;
    // A file begun for a change is owed its first record only while it is ours and empty.
    const freshStill = fresh !== undefined && fresh.file === this.#file && this.#end === 0 &&
      this.#lost === undefined;
    const again: StoreChange[] = [];
    for (const c of owed) {
      if (isLost(c) || c.kind === "rotated") {
        if (!freshStill || c !== fresh.change) continue;
        if (isLost(c)) {
          this.#lost = { kind: c.kind, linked: false, foreign: undefined, keep: fresh.details };
        }
        again.unshift(c);
      } else {
        again.push(c);
      }
    }
    return again;
  }

  // ---- rotation, retention, compression ----

  /** Archives the active file when it is due, and begins a new one. */
  #rotateIfDue(): StoreChange | undefined {
    const rotation = this.#rotation!;
    const now = this.#now();
    const cause = rotationCause(
      { size: this.#end, firstTs: rotation.interval === "" ? undefined : this.#activeFirstTs() },
      rotation,
      now,
    );
    if (cause === null) return undefined;
    const old = this.#file!;
    // The archive's last record, for retention to find the chain back from.
    const last = tail(fileSource(old, this.#end), 0).last;
    const archivedEnd = last === undefined ? undefined : chainLinkAfter(headOf(last));
    const archive = archiveName(
      this.path,
      new Date(now),
      (p) => lstatOrNothing(p) !== undefined,
      listArchives(this.path).at(-1),
    );
    try {
      Deno.renameSync(this.path, archive);
    } catch (e) {
      this.#logger?.warn("audit log rotation failed; writing on in the active file", {
        path: this.path,
        archive,
        error: message(e),
      });
      return undefined;
    }
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(this.path, { read: true, append: true, createNew: true, mode: 0o600 });
    } catch (e) {
      if (e instanceof Deno.errors.AlreadyExists) {
        // Something not ours appeared at the path in the instant it was free: the next batch
        // finds it, moves it aside and records that; this one goes to the archived file.
        this.#logger?.warn("a file appeared at the audit log's path during rotation", {
          path: this.path,
          archive,
        });
        return undefined;
      }
      try {
        Deno.renameSync(archive, this.path);
      } catch {
        throw this.#fail(
          `the audit log was archived as ${archive} but no new file can be made at ${this.path}: ${
            message(e)
          }`,
          e,
        );
      }
      this.#logger?.warn("audit log rotation failed; writing on in the active file", {
        path: this.path,
        error: message(e),
      });
      return undefined;
    }
    this.#take(file);
    this.#retire(old);
    if (posix && this.#durability !== "none") {
      try {
        using dir = Deno.openSync(dirname(this.path), { read: true });
        dir.syncSync();
      } catch (e) {
        throw this.#fail(`cannot sync the directory of ${this.path}: ${message(e)}`, e);
      }
    }
    const name = archive.slice(dirname(archive).length + 1);
    const deleted = this.#retention(archivedEnd);
    this.#compressor?.schedule(archive);
    const change: StoreChange = {
      kind: "rotated",
      reason: cause === "size"
        ? `the audit log reached audit.rotation.max_size_bytes (${rotation.max_size_bytes}); archived as ${name}`
        : `the ${rotation.interval} rotation time passed; the audit log was archived as ${name}`,
      details: { archive: name, cause, deleted_archives: deletedJson(deleted) },
    };
    this.#fresh = { file, change, details: undefined };
    return change;
  }

  /**
   * Applies retention to the archives of this log's chain, found by linking back from `next`
   * (the record after the newest archive).
   */
  #retention(next: ChainLink | undefined): RetentionDeletion[] {
    const deleted = applyRetention(
      this.path,
      this.#rotation!,
      this.#now(),
      next,
      this.#archiveReader,
      this.#logger,
    );
    for (const d of deleted) {
      this.#logger?.warn("retention deleted an audit log archive", {
        archive: d.name,
        rule: d.rule,
        first_seq: d.first_seq,
        last_seq: d.last_seq,
        last_ts: d.last_ts,
      });
    }
    return deleted;
  }

  /**
   * The record after the newest archive, at start: the active file's first record, or while it
   * holds none, the one due after the head.
   */
  #activeLink(head: StoredHead | null | undefined): ChainLink | undefined {
    const first = firstLine(fileSource(this.#file!, this.#end));
    const facts = first.terminated ? recordFacts(first.text) : undefined;
    if (facts !== undefined) return { seq: facts.seq, prev: facts.prev };
    if (this.#end === 0 && head !== null && head !== undefined) return chainLinkAfter(head);
    return undefined;
  }

  /** At start: compressions that died are cleaned up, and closed archives queued. */
  #tidyCompressions(): void {
    for (const path of removeStaleCompressions(this.path)) {
      this.#logger?.warn("removed an unfinished archive compression", { path });
    }
    if (this.#compressor === undefined) return;
    for (const archive of listArchives(this.path)) {
      if (!archive.gzip) this.#compressor.schedule(archive.path);
    }
  }

  /** The `ts` of the active file's first record (read once per file). */
  #activeFirstTs(): number | undefined {
    const stat = this.#stat!;
    if (this.#firstTs !== undefined && sameFile(this.#firstTs.stat, stat)) {
      return this.#firstTs.ts;
    }
    const first = firstLine(fileSource(this.#file!, this.#end));
    if (!first.terminated || recordSeq(first.text) === undefined) return undefined;
    const ts = recordTs(first.text);
    if (ts !== undefined) this.#firstTs = { stat, ts };
    return ts;
  }

  /** Runs a synchronous step under the log's lock, for the compressor. */
  #underLock<T>(fn: () => T): T {
    // Inside this store's own batch the lock is already held (by this handle).
    if (this.#batch) return fn();
    using other = this.#closed ? new FileLock(this.#lockPath) : undefined;
    const lock = other ?? this.#lock;
    lock.lock();
    try {
      return fn();
    } finally {
      lock.unlock();
    }
  }

  // ---- writing ----

  /** Writes the batch's buffered lines. On failure the file's end is unknown. */
  #flush(): void {
    if (this.#buffer.length === 0) return;
    const file = this.#file!;
    const bytes = encoder.encode(this.#buffer.join(""));
    const last = this.#bufferedLast;
    this.#buffer = [];
    this.#buffered = 0;
    try {
      writeAll(file, bytes);
    } catch (e) {
      // Part of the batch may be in the file: the next `begin` looks at what is there.
      this.#known = false;
      throw new StorageError(`cannot append to the audit log ${this.path}: ${message(e)}`, {
        cause: e,
      });
    }
    this.#end += bytes.length;
    this.#dirty = true;
    this.#fresh = undefined;
    if (last !== undefined) {
      this.#tail = last;
      this.#seenSeq = Math.max(this.#seenSeq, last.record.seq);
    }
  }

  /** Drops the open batch, keeps what it reported for the next one, and unlocks. */
  #abandon(): void {
    // A lost path not yet acted on is found again by the next look; a file begun for a change
    // is owed that change while it stays empty.
    this.#owed = this.#reported.filter((c) =>
      (!isLost(c) && c.kind !== "rotated") || c === this.#fresh?.change
    );
    this.#reported = [];
    this.#owedHead = this.#reportedHead;
    this.#reportedHead = undefined;
    this.#lost = undefined;
    this.#endBatch();
  }

  #endBatch(): void {
    this.#buffer = [];
    this.#buffered = 0;
    this.#bufferedLast = undefined;
    this.#batch = false;
    this.#lock.unlock();
  }

  /** fsyncs what was written, then moves the anchor. */
  #syncNow(): void {
    if (!this.#syncFile()) return;
    const anchor = this.#anchor;
    if (anchor === undefined || this.#tail === undefined) return;
    // The run's first anchor (after audit/start) is written before going on, so that an anchor
    // path that cannot be written stops the start, not the first message.
    if (anchor.written) return anchor.writeSoon(this.#anchorHead(this.#tail));
    try {
      anchor.writeNow(this.#anchorHead(this.#tail));
    } catch (e) {
      if (e instanceof StorageError) this.#failure ??= e;
      throw e;
    }
  }

  /** fsyncs the file held if anything was written; true when it did. */
  #syncFile(): boolean {
    const file = this.#file;
    // A background fsync in flight may not have covered everything yet: one more, now.
    if ((!this.#dirty && this.#syncing === undefined) || file === undefined) return false;
    try {
      file.syncDataSync();
    } catch (e) {
      // After a failed fsync the kernel may have dropped the pages: nothing is trusted after it.
      throw this.#fail(`cannot sync the audit log ${this.path}: ${message(e)}`, e);
    }
    this.#dirty = false;
    this.#pacer.cancel();
    return true;
  }

  /** Starts a background fsync for the pacer; undefined when there is nothing to sync. */
  #syncInBackground(): Promise<void> | undefined {
    const file = this.#file;
    if (!this.#dirty || file === undefined || this.#failure !== undefined || this.#closed) {
      return undefined;
    }
    const tail = this.#tail;
    this.#dirty = false;
    const syncing: Promise<void> = file.syncData().then(
      () => {
        if (this.#syncing === syncing) this.#syncing = undefined;
        if (this.#anchor !== undefined && tail !== undefined && !this.#closed) {
          this.#anchor.writeSoon(this.#anchorHead(tail));
        }
      },
      (e) => {
        if (this.#syncing === syncing) this.#syncing = undefined;
        // A file retired or closed after a synchronous fsync covered it: nothing was lost.
        if (file !== this.#file) return;
        this.#fail(`cannot sync the audit log ${this.path}: ${message(e)}`, e);
      },
    );
    this.#syncing = syncing;
    return syncing;
  }

  /** Makes `file` the one written. */
  #take(file: Deno.FsFile): void {
    const stat = file.statSync();
    this.#file = file;
    this.#stat = stat;
    this.#end = stat.size;
    this.#known = true;
  }

  /** Leaves a file: what this store wrote to it is made durable first. */
  #retire(old: Deno.FsFile): void {
    if (this.#dirty || this.#syncing !== undefined) {
      try {
        old.syncDataSync();
      } catch (e) {
        throw this.#fail(`cannot sync the audit log ${this.path}: ${message(e)}`, e);
      }
      this.#dirty = false;
      this.#pacer.cancel();
    }
    try {
      old.close();
    } catch (e) {
      // Its data was synced above; a failing close loses nothing more.
      this.#logger?.warn("closing the previous audit log file failed", { error: message(e) });
    }
  }

  #usable(): void {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#closed) throw new StorageError("audit log is closed");
    try {
      this.#anchor?.check();
    } catch (e) {
      if (e instanceof StorageError) this.#failure = e;
      throw e;
    }
  }

  #fail(text: string, cause: unknown): StorageError {
    this.#failure ??= new StorageError(text, { cause });
    return this.#failure;
  }

  #anchorHead(w: ChainedRecord) {
    return { seq: w.record.seq, hash: w.hash, id: w.record.id, ts: w.record.ts };
  }

  #asideName(): string {
    for (;;) {
      const suffix = crypto.getRandomValues(new Uint8Array(4));
      const hex = Array.from(suffix, (b) => b.toString(16).padStart(2, "0")).join("");
      const aside = `${this.path}.foreign-${hex}`;
      if (lstatOrNothing(aside) === undefined) return aside;
    }
  }
}
