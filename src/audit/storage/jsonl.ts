/**
 * JSONL storage: one canonical record a line, appended synchronously, file mode 0600.
 *
 * The file is the evidence, so the store is careful about which file it writes:
 * - at open it looks before it touches: a symlink (unless allowed), a directory, a FIFO or a file
 *   that is not an mcp-audit log is refused with nothing changed, and the file opened is checked
 *   to be the one looked at;
 * - before each batch it checks that the path still names the file it holds (one `lstat`), so a
 *   log deleted, moved or replaced mid-run is noticed and the chain goes on in a new file there,
 *   and a log cut short or written into by someone else is noticed and recorded;
 * - after any failed write or fsync it refuses every later one: nothing is appended after a
 *   partial line, and the run ends (fail closed).
 *
 * @module
 */
import { hash } from "node:crypto";
import { dirname, resolve } from "node:path";
import type { AuditRecord } from "../record.ts";
import type { JsonObject } from "../../jsonrpc/json.ts";
import type { Logger } from "../../log.ts";
import type { AnchorFile } from "./anchor_file.ts";
import { RefusedPathError, StorageError } from "./errors.ts";
import type { OpenState, RecordStore, TargetChange, TornLine } from "./store.ts";

export { AnchorMismatchError, RefusedPathError, StorageError } from "./errors.ts";

const LF = 0x0a;
// More non-record lines than this at the end of a file means it is not an audit log.
const MAX_TORN = 16;
// A log's first line is an event (audit/start, audit/recover): far smaller than this.
const FIRST_LINE_LIMIT = 1 << 20;
const MAX_SYMLINK_HOPS = 40;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const posix = Deno.build.os !== "windows";

/** What the store needs besides its path. */
export interface JsonlOptions {
  /** `audit.follow_symlinks`: write to the file a symlink at the path leads to. Default false. */
  followSymlinks?: boolean;
  /** Where warnings go: the log was deleted, moved, replaced, cut short, written into. */
  logger?: Pick<Logger, "warn">;
  /** The anchor to move after each fsync. */
  anchor?: AnchorFile;
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

function readAt(file: Deno.FsFile, offset: number, length: number): Uint8Array {
  const buf = new Uint8Array(length);
  file.seekSync(offset, Deno.SeekMode.Start);
  let at = 0;
  while (at < length) {
    const n = file.readSync(buf.subarray(at));
    if (n === null) break;
    at += n;
  }
  return buf.subarray(0, at);
}

/** Start offset of the line ending just before `end` (exclusive), scanning back in blocks. */
function lineStart(file: Deno.FsFile, end: number): number {
  const block = 65536;
  let pos = end;
  while (pos > 0) {
    const from = Math.max(0, pos - block);
    const chunk = readAt(file, from, pos - from);
    const nl = chunk.lastIndexOf(LF);
    if (nl !== -1) return from + nl + 1;
    pos = from;
  }
  return 0;
}

function looksLikeRecord(text: string): boolean {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === "object" && v !== null && "seq" in v && "prev" in v;
  } catch {
    return false;
  }
}

const HEX64 = /^[0-9a-f]{64}$/;

/** Strictly an audit record: what the first line of a log of ours always is. */
function isRecord(text: string): boolean {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === "object" && v !== null && "v" in v && v.v === 1 && "seq" in v &&
      typeof v.seq === "number" && Number.isSafeInteger(v.seq) && v.seq >= 1 && "prev" in v &&
      typeof v.prev === "string" && HEX64.test(v.prev);
  } catch {
    return false;
  }
}

// Every stored line is RFC 8785 JSON of a record, whose first member in that order is client_id.
const RECORD_START = '{"client_id":"';

function sameFile(a: Deno.FileInfo, b: Deno.FileInfo): boolean {
  // Without inode numbers (Windows) there is nothing to compare.
  if (a.dev === null || a.ino === null || b.dev === null || b.ino === null) return true;
  return a.dev === b.dev && a.ino === b.ino;
}

function describe(stat: Deno.FileInfo): string {
  if (stat.isSymlink) return "a symbolic link";
  if (stat.isDirectory) return "a directory";
  if (stat.isFifo) return "a FIFO";
  if (stat.isSocket) return "a socket";
  if (stat.isBlockDevice || stat.isCharDevice) return "a device";
  if (stat.isFile) return "a file";
  return "not a regular file";
}

function lstatOrNothing(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.lstatSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) {
      return undefined;
    }
    throw e;
  }
}

/**
 * The file the path leads to, without opening anything: the path itself, or with `follow` the end
 * of its symlinks. Refuses anything but a regular file or nothing.
 */
function resolveTarget(
  path: string,
  follow: boolean,
): { path: string; stat: Deno.FileInfo | undefined } {
  let target = path;
  for (let hops = 0;; hops++) {
    let stat: Deno.FileInfo | undefined;
    try {
      stat = lstatOrNothing(target);
    } catch (e) {
      throw new StorageError(`cannot open audit log ${target}: ${message(e)}`, { cause: e });
    }
    if (stat === undefined) return { path: target, stat };
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
      throw new RefusedPathError("audit.path", `${target} is ${describe(stat)}, not a log file`);
    }
    return { path: target, stat };
  }
}

/** Opens (or creates, mode 0600) the file the path leads to, and makes sure it is that file. */
function openTarget(
  path: string,
  follow: boolean,
): { file: Deno.FsFile; path: string; stat: Deno.FileInfo } {
  for (let attempt = 0;; attempt++) {
    const looked = resolveTarget(path, follow);
    let file: Deno.FsFile;
    try {
      file = looked.stat === undefined
        ? Deno.openSync(looked.path, { read: true, append: true, createNew: true, mode: 0o600 })
        : Deno.openSync(looked.path, { read: true, append: true });
    } catch (e) {
      // Something appeared at the path between the look and the open: look again, once.
      if (e instanceof Deno.errors.AlreadyExists && attempt === 0) continue;
      throw new StorageError(`cannot open audit log ${looked.path}: ${message(e)}`, { cause: e });
    }
    const stat = file.statSync();
    // open(2) follows a symlink put there after the look; what it opened must be what was seen.
    if (looked.stat !== undefined && !sameFile(looked.stat, stat)) {
      file.close();
      throw new StorageError(`audit log ${looked.path} changed while it was being opened`);
    }
    return { file, path: looked.path, stat };
  }
}

/** What reading an existing log found; nothing is changed while reading. */
interface Scan {
  last: string | undefined;
  torn: TornLine[];
  /** The file does not end in `\n`: the last line must be closed before anything is appended. */
  unterminated: boolean;
}

/** The first line, read up to {@link FIRST_LINE_LIMIT}, and whether a newline ends it. */
function firstLine(file: Deno.FsFile, size: number): { text: string; terminated: boolean } {
  const head = readAt(file, 0, Math.min(size, FIRST_LINE_LIMIT + 1));
  const nl = head.indexOf(LF);
  if (nl === -1) return { text: decoder.decode(head), terminated: false };
  return { text: decoder.decode(head.subarray(0, nl)), terminated: true };
}

/**
 * Checks that the file is an mcp-audit log and finds its last complete record and any torn lines
 * after it (a crash mid-write leaves a partial line; it is reported, never removed).
 * @throws {RefusedPathError} for a file that is not a log of ours
 */
function scan(file: Deno.FsFile, size: number, path: string): Scan {
  const torn: TornLine[] = [];
  if (size === 0) return { last: undefined, torn, unterminated: false };
  const notLog = (why: string) =>
    new RefusedPathError(
      "audit.path",
      `${path} is not an mcp-audit log (${why}); refusing to append to it`,
    );
  const first = firstLine(file, size);
  if (first.terminated) {
    if (!isRecord(first.text)) throw notLog("its first line is not an audit record");
  } else if (size > FIRST_LINE_LIMIT) {
    throw notLog(`no line break in its first ${FIRST_LINE_LIMIT} bytes`);
  } else if (!first.text.startsWith(RECORD_START) && !RECORD_START.startsWith(first.text)) {
    // One line and no newline: only the first record, torn by a crash, may look like that.
    throw notLog("it holds one unterminated line that is not an audit record");
  }
  let end: number;
  let unterminated = false;
  if (readAt(file, size - 1, 1)[0] !== LF) {
    unterminated = true;
    const start = lineStart(file, size);
    const text = decoder.decode(readAt(file, start, size - start));
    // A whole record that lost only its newline is complete: the chain continues from it.
    if (looksLikeRecord(text)) return { last: text, torn, unterminated };
    torn.push({ offset: start, length: size - start, file: path });
    end = start - 1;
  } else {
    end = size - 1;
  }
  // Walk back over complete lines that are not records (a torn line closed by an earlier
  // recovery that crashed before writing its event).
  while (end > 0) {
    const start = lineStart(file, end);
    const text = decoder.decode(readAt(file, start, end - start));
    if (looksLikeRecord(text)) {
      torn.reverse();
      return { last: text, torn, unterminated };
    }
    torn.push({ offset: start, length: end - start, file: path });
    if (torn.length > MAX_TORN) throw notLog("it does not end in audit records");
    end = start - 1;
  }
  torn.reverse();
  return { last: undefined, torn, unterminated };
}

/** A record as far as the anchor needs it. */
interface Written {
  line: string;
  record: AuditRecord;
}

/** What `checkTarget` saw when the path stopped naming our file. */
interface Lost {
  kind: "deleted" | "moved" | "replaced";
  linked: boolean;
  /** What sits at the path instead, for `replaced`. */
  foreign: Deno.FileInfo | undefined;
}

/** Appends canonical record lines to one file. */
export class JsonlStore implements RecordStore {
  readonly backend = "jsonl" as const;
  readonly opened: OpenState;
  /** The file written: the configured path, or where its symlinks lead when following them. */
  readonly path: string;
  #file: Deno.FsFile | undefined;
  /** Device and inode of the file held, when the platform has them. */
  #id: { dev: number; ino: number } | undefined;
  /** Bytes in the file as far as this store knows: what it found plus what it wrote. */
  #end: number;
  #dirty = false;
  #syncEach: boolean;
  /** A background fsync in flight. */
  #syncing: Promise<void> | undefined;
  /** The first failure to write or sync: every later operation throws it (fail closed). */
  #failure: StorageError | undefined;
  /** Lines appended but not yet written: one write per forwarded batch, not one per record. */
  #buffer: string[] = [];
  #buffered = 0;
  #bufferedLast: Written | undefined;
  /** The last record handed to the operating system. */
  #tail: Written | undefined;
  #lost: Lost | undefined;
  #logger: JsonlOptions["logger"];
  #anchor: AnchorFile | undefined;
  static readonly #BUFFER_LIMIT = 1 << 20;

  /**
   * Opens (creating with mode 0600) the log at `path`.
   * @param syncEach fsync after every record (`audit.durability: entry`)
   * @throws {RefusedPathError} when the path names something that is not a log; nothing changed
   * @throws {AnchorMismatchError} when the anchor names a record the log no longer holds
   * @throws {StorageError} when the log cannot be opened
   */
  constructor(path: string, syncEach: boolean, options: JsonlOptions = {}) {
    this.#syncEach = syncEach;
    this.#logger = options.logger;
    this.#anchor = options.anchor;
    const { file, path: target, stat } = openTarget(path, options.followSymlinks ?? false);
    this.path = target;
    let found: Scan;
    try {
      found = scan(file, stat.size, target);
      options.anchor?.checkLog(found.last);
      // Only now that the file is known to be a log of ours is anything changed in it.
      if (found.unterminated) writeAll(file, new Uint8Array([LF]));
      if (posix && stat.mode !== null && (stat.mode & 0o077) !== 0) {
        // An existing log readable by others is tightened, not trusted as is. chmod(2) takes a
        // path: look once more that the path still names the file held.
        const now = Deno.lstatSync(target);
        if (!now.isFile || !sameFile(now, stat)) {
          throw new StorageError(`audit log ${target} changed while it was being opened`);
        }
        Deno.chmodSync(target, 0o600);
      }
    } catch (e) {
      file.close();
      if (e instanceof StorageError) throw e;
      throw new StorageError(`cannot open audit log ${target}: ${message(e)}`, { cause: e });
    }
    this.#file = file;
    this.#id = stat.dev !== null && stat.ino !== null
      ? { dev: stat.dev, ino: stat.ino }
      : undefined;
    this.#end = stat.size + (found.unterminated ? 1 : 0);
    this.opened = { last: found.last, torn: found.torn };
  }

  append(line: string, record: AuditRecord): void {
    this.#usable();
    this.#buffer.push(line, "\n");
    this.#buffered += line.length;
    this.#bufferedLast = { line, record };
    if (this.#syncEach) this.sync();
    else if (this.#buffered >= JsonlStore.#BUFFER_LIMIT) this.flush();
  }

  flush(): void {
    const file = this.#usable();
    if (this.#buffer.length === 0) return;
    const bytes = encoder.encode(this.#buffer.join(""));
    this.#buffer = [];
    this.#buffered = 0;
    try {
      writeAll(file, bytes);
    } catch (e) {
      // Part of the batch may be in the file: nothing may follow it there.
      throw this.#fail(`cannot append to the audit log ${this.path}: ${message(e)}`, e);
    }
    this.#end += bytes.length;
    this.#tail = this.#bufferedLast;
    this.#dirty = true;
  }

  sync(): void {
    if (!this.#syncNow()) return;
    const anchor = this.#anchor;
    if (anchor === undefined || this.#tail === undefined) return;
    // The run's first anchor (after audit/start) is written before going on, so that an anchor
    // path that cannot be written stops the start, not the first message.
    if (anchor.written) return anchor.writeSoon(this.#head(this.#tail));
    try {
      anchor.writeNow(this.#head(this.#tail));
    } catch (e) {
      if (e instanceof StorageError) this.#failure ??= e;
      throw e;
    }
  }

  /** Flushes and fsyncs; true when there was something to sync. */
  #syncNow(): boolean {
    this.flush();
    const file = this.#file;
    if (!this.#dirty || file === undefined) return false;
    try {
      file.syncDataSync();
    } catch (e) {
      throw this.#fail(`cannot sync the audit log ${this.path}: ${message(e)}`, e);
    }
    this.#dirty = false;
    return true;
  }

  syncSoon(): void {
    this.flush();
    // One fsync at a time; the one in flight starts another when it ends if more was written.
    if (this.#dirty && this.#syncing === undefined) this.#syncInBackground();
  }

  #syncInBackground(): void {
    const file = this.#file;
    if (file === undefined) return;
    const tail = this.#tail;
    this.#dirty = false;
    this.#syncing = file.syncData().then(
      () => {
        this.#syncing = undefined;
        this.#anchorSoon(tail);
        if (this.#dirty && this.#failure === undefined) this.#syncInBackground();
      },
      (e) => {
        this.#syncing = undefined;
        // A file retired or closed after a synchronous fsync covered it: nothing was lost.
        if (file !== this.#file) return;
        this.#fail(`cannot sync the audit log ${this.path}: ${message(e)}`, e);
      },
    );
  }

  /** Resolves when no background fsync or anchor update is left (a failure is kept for later). */
  async settled(): Promise<void> {
    while (this.#syncing !== undefined) await this.#syncing;
    await this.#anchor?.settled();
  }

  checkTarget(): TargetChange | null {
    const file = this.#usable();
    const id = this.#id;
    if (id === undefined) return null;
    let now: Deno.FileInfo | undefined;
    try {
      now = lstatOrNothing(this.path);
    } catch (e) {
      throw this.#fail(`cannot check the audit log ${this.path}: ${message(e)}`, e);
    }
    if (now !== undefined && now.isFile && now.dev === id.dev && now.ino === id.ino) {
      return now.size === this.#end ? null : this.#resized(file, now.size);
    }
    let linked = true;
    try {
      const nlink = file.statSync().nlink;
      linked = nlink === null || nlink > 0;
    } catch (e) {
      throw this.#fail(`cannot check the audit log ${this.path}: ${message(e)}`, e);
    }
    const kind = now !== undefined ? "replaced" : linked ? "moved" : "deleted";
    const reason = kind === "deleted"
      ? `the audit log ${this.path} was deleted while the proxy ran; the chain continues in a new file there`
      : kind === "moved"
      ? `the audit log ${this.path} was moved away while the proxy ran (it lives on under another name); the chain continues in a new file there`
      : `${
        describe(now!)
      } the proxy did not create replaced the audit log ${this.path}; it is moved aside and the chain continues in a new file there`;
    this.#lost = { kind, linked, foreign: now };
    this.#logger?.warn(reason, { path: this.path, change: kind, last_seq: this.#tail?.record.seq });
    return { kind, oldFileLinked: linked, reason };
  }

  /** The file is ours but not the size written: cut short, or written into by someone else. */
  #resized(file: Deno.FsFile, size: number): TargetChange {
    const truncated = size < this.#end;
    const details: JsonObject = { path: this.path, expected_size: this.#end, found_size: size };
    if (!truncated) details.foreign_bytes = { offset: this.#end, length: size - this.#end };
    let end = size;
    try {
      if (size > 0 && readAt(file, size - 1, 1)[0] !== LF) {
        // A partial line: close it so that the next record starts a line of its own.
        const start = lineStart(file, size);
        details.closed_line = { offset: start, length: size - start };
        writeAll(file, new Uint8Array([LF]));
        end += 1;
      }
    } catch (e) {
      throw this.#fail(`cannot append to the audit log ${this.path}: ${message(e)}`, e);
    }
    const reason = truncated
      ? `the audit log ${this.path} was cut from ${this.#end} to ${size} bytes while the proxy ran: records at its end were removed`
      : `${size - this.#end} bytes were written into the audit log ${this.path} by another program`;
    this.#logger?.warn(reason, {
      path: this.path,
      change: truncated ? "truncated" : "extended",
      last_seq: this.#tail?.record.seq,
    });
    this.#end = end;
    return { kind: truncated ? "truncated" : "extended", reason, details };
  }

  startNewFile(): JsonObject {
    const lost = this.#lost;
    if (lost === undefined) throw new StorageError("startNewFile without a lost path");
    // What the old file holds is all there is of those records: durable before it is left.
    this.sync();
    const old = this.#usable();
    const details: JsonObject = {
      path: this.path,
      previous_file: {
        dev: this.#id?.dev ?? null,
        ino: this.#id?.ino ?? null,
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
        type: describe(lost.foreign),
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
    const stat = file.statSync();
    this.#file = file;
    this.#id = stat.dev !== null && stat.ino !== null
      ? { dev: stat.dev, ino: stat.ino }
      : undefined;
    this.#end = 0;
    this.#dirty = false;
    this.#lost = undefined;
    try {
      old.close();
    } catch (e) {
      // Its data was synced above; a failing close loses nothing more.
      this.#logger?.warn("closing the previous audit log file failed", { error: message(e) });
    }
    return details;
  }

  close(): void {
    const file = this.#file;
    if (file === undefined) return;
    // The last anchor is written here, synchronously: not handed to the background writer.
    this.#syncNow();
    if (this.#anchor !== undefined && this.#tail !== undefined) {
      this.#anchor.writeNow(this.#head(this.#tail));
    }
    this.#file = undefined;
    try {
      file.close();
    } catch (e) {
      throw new StorageError(`cannot close the audit log ${this.path}: ${message(e)}`, {
        cause: e,
      });
    }
  }

  #usable(): Deno.FsFile {
    if (this.#failure !== undefined) throw this.#failure;
    try {
      this.#anchor?.check();
    } catch (e) {
      if (e instanceof StorageError) this.#failure = e;
      throw e;
    }
    if (this.#file === undefined) throw new StorageError("audit log is closed");
    return this.#file;
  }

  #fail(text: string, cause: unknown): StorageError {
    this.#failure ??= new StorageError(text, { cause });
    return this.#failure;
  }

  #head(w: Written) {
    return {
      seq: w.record.seq,
      hash: hash("sha256", w.line, "hex"),
      id: w.record.id,
      ts: w.record.ts,
    };
  }

  #anchorSoon(tail: Written | undefined): void {
    if (this.#anchor !== undefined && tail !== undefined) this.#anchor.writeSoon(this.#head(tail));
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
