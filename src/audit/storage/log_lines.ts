/**
 * The lines of a JSONL log and its archives, read without changing anything, while writers append
 * and rotate.
 *
 * A reader takes a snapshot of the log's files ({@link LogFiles}): it opens the active file first
 * and keeps it open, then lists the archives, leaving out the one that is the file it holds (a
 * rotation in between renamed it). So a rotation during the read neither hides records (the file
 * held keeps them) nor shows them twice. An archive compressed after the listing is read from its
 * `.gz`; one deleted after the listing (retention) is passed over, and the chain's own numbering
 * shows the gap to whoever checks it.
 *
 * Memory is bounded by the longest line allowed (`maxLine`) and a 64 KiB block.
 *
 * @module
 */
import { type Archive, listArchives } from "./archives.ts";
import { StorageError } from "./errors.ts";
import { LineSplitter } from "../../streams/line_splitter.ts";

/** One line of a log file. */
export interface LogLine {
  /** The path of the file it was read from. */
  file: string;
  /** 1-based in its file; 0 when the file was read from the middle or backwards. */
  lineNo: number;
  /** Byte offset of the line's start in its file (in the gunzipped bytes for a `.gz`). */
  offset: number;
  /** The line's content, without its `\n` or `\r\n`. */
  text: string;
  /** False for a last line with no `\n` after it (a writer's line not yet complete, or torn). */
  terminated: boolean;
}

/** How to read. */
export interface ReadLinesOptions {
  /** Stops the read: the iteration throws the signal's reason. */
  signal?: AbortSignal;
  /** The longest line content, in bytes; a longer one is a {@link LineTooLongError}. */
  maxLine?: number;
  /** Called with the number of bytes of every read from disk (for tests and metrics). */
  onRead?: (bytes: number) => void;
}

/** A line longer than `maxLine`: not a line of an audit log. Nothing of it was kept. */
export class LineTooLongError extends StorageError {
  override name = "LineTooLongError";
  constructor(
    readonly file: string,
    /** 1-based, or 0 when not known (read backwards). */
    readonly lineNo: number,
    readonly offset: number,
    readonly max: number,
  ) {
    super(
      `${
        lineNo > 0 ? `line ${lineNo}` : `the line at byte ${offset}`
      } of ${file} is over ${max} bytes, longer than any audit record: not read further`,
    );
  }
}

/** Neither the log nor any archive of it exists. */
export class LogNotFoundError extends StorageError {
  override name = "LogNotFoundError";
}

/**
 * The longest line read: 64 MiB. A stored line is one record, holding one message of up to
 * `proxy.max_message_bytes` (16 MiB by default) as canonical JSON, escaped, next to the record's
 * other fields: a few times less than this. A longer line is no record of ours (a file crafted to
 * make a reader hold it, such as a small `.gz` of one huge line), and is refused as soon as the
 * read passes this, holding no more than it. (A log written with `max_message_bytes` raised
 * toward this may hold lines it refuses.)
 */
export const DEFAULT_MAX_LINE = 64 << 20;
const BLOCK = 64 * 1024;
const GZ_BLOCK = 16 * 1024;
const LF = 0x0a;
const CR = 0x0d;

/** One file of a log, in a {@link LogFiles} snapshot. */
export type LogFile =
  | { kind: "archive"; path: string; archive: Archive }
  | {
    kind: "active";
    path: string;
    /** Held open by the snapshot. */
    file: FileReader;
  };

/**
 * Reads of one open file at given offsets. Reads are serialized, as they share the file's
 * position: several readers of one snapshot's active file (and a stream's read-ahead still under
 * way after its reader stopped) never interleave a seek and a read.
 */
export class FileReader {
  readonly #file: Deno.FsFile;
  readonly #path: string;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  constructor(file: Deno.FsFile, path: string) {
    this.#file = file;
    this.#path = path;
  }

  /** Up to `buf.length` bytes at `pos`; 0 at the end of the file. */
  readAt(pos: number, buf: Uint8Array): Promise<number> {
    const run = async () => {
      this.#checkOpen();
      try {
        await this.#file.seek(pos, Deno.SeekMode.Start);
        return (await this.#file.read(buf)) ?? 0;
      } catch (e) {
        this.#checkOpen();
        throw new StorageError(`reading ${this.#path} failed: ${(e as Error).message}`);
      }
    };
    const result = this.#queue.then(run, run);
    this.#queue = result.catch(() => undefined);
    return result;
  }

  /** The file's size now. */
  async size(): Promise<number> {
    this.#checkOpen();
    try {
      return (await this.#file.stat()).size;
    } catch (e) {
      this.#checkOpen();
      throw new StorageError(`reading ${this.#path} failed: ${(e as Error).message}`);
    }
  }

  #checkOpen(): void {
    if (this.#closed) throw new StorageError(`${this.#path} was closed`);
  }

  /** Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#file.close();
  }
}

const SNAPSHOT_ATTEMPTS = 5;

function sameFile(a: Deno.FileInfo | null, b: Deno.FileInfo): boolean {
  return a !== null && a.ino !== null && a.dev === b.dev && a.ino === b.ino;
}

/** The file's details, or null when it is gone or unreadable (passed over like a deleted one). */
function statOrNull(path: string): Deno.FileInfo | null {
  try {
    return Deno.statSync(path);
  } catch {
    return null;
  }
}

/**
 * The files of a log at one moment, in chain order: its archives, then the active file (held
 * open until the snapshot is disposed).
 *
 * @example
 * ```ts
 * using files = LogFiles.open("audit.jsonl");
 * console.log(files.files.map((f) => f.path));
 * ```
 */
export class LogFiles implements Disposable {
  #active: FileReader | null;
  readonly #activeInfo: Deno.FileInfo | null;
  readonly files: readonly LogFile[];

  private constructor(
    active: FileReader | null,
    files: LogFile[],
    activeInfo: Deno.FileInfo | null,
  ) {
    this.#active = active;
    this.#activeInfo = activeInfo;
    this.files = files;
  }

  /**
   * Takes the snapshot. A missing active file is no error while archives exist (between a
   * rotation's rename and the new file).
   * @throws {LogNotFoundError} when there is neither the file nor an archive of it
   * @throws {StorageError} when the path is not a regular file or cannot be read
   */
  static open(activePath: string): LogFiles {
    // A rotation between opening the active file and listing the archives is seen when the path
    // names another file afterwards: the archive it made may already be compressed (another
    // inode), so the snapshot is taken again rather than read twice.
    for (let attempt = 1;; attempt++) {
      const snapshot = LogFiles.#take(activePath);
      if (attempt >= SNAPSHOT_ATTEMPTS || snapshot.#stillActive(activePath)) return snapshot;
      snapshot.close();
    }
  }

  static #take(activePath: string): LogFiles {
    let active: Deno.FsFile | null = null;
    try {
      active = Deno.openSync(activePath, { read: true });
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) {
        throw new StorageError(`cannot read ${activePath}: ${(e as Error).message}`);
      }
    }
    try {
      const activeInfo = active?.statSync();
      if (activeInfo !== undefined && !activeInfo.isFile) {
        throw new StorageError(`${activePath} is not a regular file`);
      }
      const files: LogFile[] = [];
      for (const archive of listArchives(activePath)) {
        // The file held, renamed to an archive since it was opened, is read once: as the last.
        if (activeInfo !== undefined && sameFile(statOrNull(archive.path), activeInfo)) continue;
        files.push({ kind: "archive", path: archive.path, archive });
      }
      if (files.length === 0 && active === null) {
        throw new LogNotFoundError(`no log at ${activePath}`);
      }
      const reader = active === null ? null : new FileReader(active, activePath);
      if (reader !== null) files.push({ kind: "active", path: activePath, file: reader });
      return new LogFiles(reader, files, activeInfo ?? null);
    } catch (e) {
      active?.close();
      throw e;
    }
  }

  /** Whether the path still names the file held (or still none). */
  #stillActive(activePath: string): boolean {
    const now = statOrNull(activePath);
    if (this.#activeInfo === null) return now === null;
    // No inode numbers on this system: nothing to compare.
    if (this.#activeInfo.ino === null) return true;
    return sameFile(now, this.#activeInfo);
  }

  /** Closes the active file. Idempotent. */
  close(): void {
    this.#active?.close();
    this.#active = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

function concat(parts: Uint8Array[], length: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * One file of a snapshot, opened for reading: forwards as a stream of lines, and for a plain file
 * backwards from any offset and at random (a `.gz` only forwards, from its start).
 */
export class OpenedLogFile implements Disposable {
  readonly #file: FileReader;
  readonly #owned: boolean;
  readonly #signal: AbortSignal | undefined;
  readonly #maxLine: number;
  readonly #onRead: ((bytes: number) => void) | undefined;
  #closed = false;
  readonly #decoder = new TextDecoder();

  private constructor(
    file: FileReader,
    owned: boolean,
    /** The path read: an archive's `.gz` when it was compressed since the listing. */
    readonly path: string,
    readonly gzip: boolean,
    /** Bytes on disk when opened (compressed bytes for a `.gz`). */
    readonly size: number,
    options: ReadLinesOptions,
  ) {
    this.#file = file;
    this.#owned = owned;
    this.#signal = options.signal;
    this.#maxLine = options.maxLine ?? DEFAULT_MAX_LINE;
    this.#onRead = options.onRead;
  }

  /**
   * Opens one file of a snapshot; `null` when it is an archive deleted since the listing.
   * @throws {StorageError} when it cannot be opened
   */
  static async open(f: LogFile, options: ReadLinesOptions = {}): Promise<OpenedLogFile | null> {
    if (f.kind === "active") {
      const size = await f.file.size();
      return new OpenedLogFile(f.file, false, f.path, false, size, options);
    }
    const tries = f.archive.gzip ? [f.path] : [f.path, `${f.path}.gz`];
    for (const path of tries) {
      let file: Deno.FsFile;
      try {
        file = await Deno.open(path, { read: true });
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) continue;
        throw new StorageError(`cannot read ${path}: ${(e as Error).message}`);
      }
      const reader = new FileReader(file, path);
      try {
        const size = await reader.size();
        return new OpenedLogFile(reader, true, path, path.endsWith(".gz"), size, options);
      } catch (e) {
        reader.close();
        throw new StorageError(`cannot read ${path}: ${(e as Error).message}`);
      }
    }
    return null;
  }

  /** Reads up to `buf.length` bytes at `pos` (0 at the end of the file). */
  async readAt(pos: number, buf: Uint8Array): Promise<number> {
    this.#signal?.throwIfAborted();
    if (this.#closed) throw new StorageError(`${this.path} was closed`);
    const n = await this.#file.readAt(pos, buf);
    if (n > 0) this.#onRead?.(n);
    return n;
  }

  /** The raw bytes from `from` to the end of the file as it grows. */
  #bytes(from: number, blockSize: number): ReadableStream<Uint8Array<ArrayBuffer>> {
    let pos = from;
    return new ReadableStream<Uint8Array<ArrayBuffer>>({
      pull: async (controller) => {
        const buf = new Uint8Array(blockSize);
        const n = await this.readAt(pos, buf);
        if (n === 0) {
          controller.close();
          return;
        }
        pos += n;
        controller.enqueue(buf.subarray(0, n));
      },
    });
  }

  /**
   * The lines from byte `from` (a line start; gunzipped bytes are read from their start only) to
   * the end of the file as it is when the read gets there. `blockSize`: the bytes each read asks
   * for (less than 64 KiB to look at a line or two).
   * @throws {LineTooLongError} at a line over `maxLine`
   */
  async *lines(from = 0, blockSize = BLOCK): AsyncGenerator<LogLine> {
    if (this.gzip && from !== 0) throw new RangeError("a .gz file is read from its start only");
    // Compressed bytes are read in small blocks: one deflate block may inflate a thousandfold.
    const raw = this.#bytes(from, this.gzip ? Math.min(blockSize, GZ_BLOCK) : blockSize);
    const bytes = this.gzip ? raw.pipeThrough(new DecompressionStream("gzip")) : raw;
    let lineNo = 0;
    let offset = from;
    // A line over the cap is an error: it is not read to its end (a `.gz` may inflate to gigabytes).
    const splitter = new LineSplitter(this.#maxLine, undefined, { stopAtOversized: true });
    for await (const frames of bytes.pipeThrough(splitter)) {
      for (const frame of frames) {
        this.#signal?.throwIfAborted();
        if (from === 0) lineNo++;
        if (frame.kind === "oversized") {
          throw new LineTooLongError(this.path, lineNo, offset, this.#maxLine);
        }
        yield {
          file: this.path,
          lineNo,
          offset,
          text: this.#decoder.decode(frame.bytes.subarray(0, frame.contentLength)),
          terminated: frame.terminated,
        };
        offset += frame.bytes.length;
      }
    }
  }

  /**
   * The lines ending at or before byte `end` (a line start, or the end of the file), last first,
   * read in blocks from the end: the newest records of a large file cost only their own bytes.
   * `lineNo` is 0. Plain files only. `blockSize` as for {@link lines}.
   * @throws {LineTooLongError} at a line over `maxLine`
   */
  async *linesBackward(end = this.size, blockSize = BLOCK): AsyncGenerator<LogLine> {
    if (this.gzip) throw new RangeError("a .gz file cannot be read backwards");
    const max = this.#maxLine + 2; // content, `\r`, `\n`
    // The line being gathered: its bytes from the leftmost seen so far to its end, in order.
    let carry: Uint8Array[] = [];
    let carryLength = 0;
    // The first piece found ends at `end`: the file's last line, with no newline after it.
    let first = true;
    const line = (bytes: Uint8Array, offset: number): LogLine | null => {
      const terminated = !first;
      first = false;
      let length = terminated ? bytes.length - 1 : bytes.length;
      if (terminated && length > 0 && bytes[length - 1] === CR) length -= 1;
      if (!terminated && length === 0) return null;
      return {
        file: this.path,
        lineNo: 0,
        offset,
        text: this.#decoder.decode(bytes.subarray(0, length)),
        terminated,
      };
    };
    let pos = end;
    while (pos > 0) {
      const start = Math.max(0, pos - blockSize);
      const block = await this.#readFully(start, pos - start);
      pos = start;
      // A line starts after each newline; the newline ends the line before it, so the search
      // for where that line starts begins left of it.
      let right = block.length;
      let nl = block.lastIndexOf(LF, right - 1);
      while (nl !== -1) {
        const piece = block.subarray(nl + 1, right);
        const length = piece.length + carryLength;
        if (length > max) throw new LineTooLongError(this.path, 0, start + nl + 1, this.#maxLine);
        const l = line(concat([piece, ...carry], length), start + nl + 1);
        carry = [];
        carryLength = 0;
        if (l !== null) {
          yield l;
          this.#signal?.throwIfAborted();
        }
        right = nl + 1;
        nl = right >= 2 ? block.lastIndexOf(LF, right - 2) : -1;
      }
      carry.unshift(block.subarray(0, right));
      carryLength += right;
      if (carryLength > max) throw new LineTooLongError(this.path, 0, pos, this.#maxLine);
    }
    if (carryLength > 0) {
      const l = line(concat(carry, carryLength), 0);
      if (l !== null) yield l;
    }
  }

  /** Exactly `length` bytes at `pos`. */
  async #readFully(pos: number, length: number): Promise<Uint8Array> {
    const block = new Uint8Array(length);
    let got = 0;
    while (got < length) {
      const n = await this.readAt(pos + got, block.subarray(got));
      if (n === 0) throw new StorageError(`${this.path} became shorter while it was read`);
      got += n;
    }
    return block;
  }

  /** Closes the file unless the snapshot holds it. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#owned) this.#file.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Every line of the log at `activePath`: each archive in chain order, then the active file, line
 * by line in bounded memory. Changes nothing; writers may append and rotate meanwhile.
 *
 * @example
 * ```ts
 * for await (const l of readLogLines("audit.jsonl")) console.log(l.file, l.lineNo, l.text);
 * ```
 * @throws {LogNotFoundError} when there is neither the log nor an archive of it
 * @throws {LineTooLongError} at a line over `maxLine` (default {@link DEFAULT_MAX_LINE}, 64 MiB)
 */
export async function* readLogLines(
  activePath: string,
  options: ReadLinesOptions = {},
): AsyncGenerator<LogLine> {
  using files = LogFiles.open(activePath);
  for (const f of files.files) {
    using opened = await OpenedLogFile.open(f, options);
    if (opened === null) continue;
    yield* opened.lines();
  }
}
