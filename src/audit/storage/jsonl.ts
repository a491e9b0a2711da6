/**
 * JSONL storage: one canonical record a line, appended synchronously, file mode 0600.
 *
 * @module
 */
import type { AuditRecord } from "../record.ts";
import type { OpenState, RecordStore, TornLine } from "./store.ts";

/** Raised when the log file cannot be opened or written. */
export class StorageError extends Error {
  override name = "StorageError";
}

const LF = 0x0a;
// More non-record lines than this at the end of a file means it is not an audit log.
const MAX_TORN = 16;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function writeAll(file: Deno.FsFile, bytes: Uint8Array): void {
  let at = 0;
  while (at < bytes.length) at += file.writeSync(bytes.subarray(at));
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

/**
 * Finds the last complete record and any torn lines after it. A file that does not end in `\n`
 * was cut mid-write: the partial line is closed with `\n` so that what follows starts clean, and
 * it is reported, never removed.
 */
function recover(file: Deno.FsFile, path: string): OpenState {
  const size = file.statSync().size;
  const torn: TornLine[] = [];
  if (size === 0) return { last: undefined, torn };
  let end = size;
  const lastByte = readAt(file, size - 1, 1)[0];
  if (lastByte !== LF) {
    const start = lineStart(file, size);
    file.seekSync(0, Deno.SeekMode.End);
    writeAll(file, new Uint8Array([LF]));
    const text = decoder.decode(readAt(file, start, size - start));
    // A whole record that lost only its newline is complete: the chain continues from it.
    if (looksLikeRecord(text)) return { last: text, torn };
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
      return { last: text, torn };
    }
    torn.push({ offset: start, length: end - start, file: path });
    if (torn.length > MAX_TORN) {
      throw new StorageError(`${path} does not end in audit records; refusing to append to it`);
    }
    end = start - 1;
  }
  torn.reverse();
  return { last: undefined, torn };
}

/** Appends canonical record lines to one file. */
export class JsonlStore implements RecordStore {
  readonly backend = "jsonl" as const;
  readonly opened: OpenState;
  #file: Deno.FsFile | undefined;
  #dirty = false;
  #syncEach: boolean;
  /** A background fsync in flight, and whether more was written since it started. */
  #syncing: Promise<void> | undefined;
  #syncAgain = false;
  #syncFailure: StorageError | undefined;
  /** Lines appended but not yet written: one write per forwarded batch, not one per record. */
  #buffer: string[] = [];
  #buffered = 0;
  static readonly #BUFFER_LIMIT = 1 << 20;

  /**
   * Opens (creating with mode 0600) the log at `path`.
   * @param syncEach fsync after every record (`audit.durability: entry`)
   */
  constructor(path: string, syncEach: boolean) {
    this.#syncEach = syncEach;
    try {
      this.#file = Deno.openSync(path, { read: true, append: true, create: true, mode: 0o600 });
    } catch (e) {
      throw new StorageError(`cannot open audit log ${path}: ${(e as Error).message}`);
    }
    const stat = this.#file.statSync();
    if (
      Deno.build.os !== "windows" && stat.isFile && stat.mode !== null && (stat.mode & 0o077) !== 0
    ) {
      // An existing log readable by others is tightened, not trusted as is.
      Deno.chmodSync(path, 0o600);
    }
    this.opened = recover(this.#file, path);
    this.#file.seekSync(0, Deno.SeekMode.End);
  }

  append(line: string, _record: AuditRecord): void {
    this.#open();
    this.#buffer.push(line, "\n");
    this.#buffered += line.length;
    if (this.#syncEach) this.sync();
    else if (this.#buffered >= JsonlStore.#BUFFER_LIMIT) this.flush();
  }

  flush(): void {
    if (this.#syncFailure !== undefined) throw this.#syncFailure;
    if (this.#buffer.length === 0) return;
    const text = this.#buffer.join("");
    this.#buffer = [];
    this.#buffered = 0;
    try {
      writeAll(this.#open(), encoder.encode(text));
    } catch (e) {
      throw new StorageError(`cannot append to the audit log: ${(e as Error).message}`, {
        cause: e,
      });
    }
    this.#dirty = true;
  }

  sync(): void {
    this.flush();
    if (!this.#dirty || this.#file === undefined) return;
    try {
      this.#file.syncDataSync();
    } catch (e) {
      throw new StorageError(`cannot sync the audit log: ${(e as Error).message}`, { cause: e });
    }
    this.#dirty = false;
  }

  syncSoon(): void {
    this.flush();
    if (!this.#dirty || this.#file === undefined) return;
    if (this.#syncing !== undefined) {
      this.#syncAgain = true;
      return;
    }
    const file = this.#file;
    this.#dirty = false;
    this.#syncing = file.syncData().then(
      () => {
        this.#syncing = undefined;
        if (this.#syncAgain) {
          this.#syncAgain = false;
          this.#dirty = true;
          if (this.#file !== undefined) this.syncSoon();
        }
      },
      (e) => {
        this.#syncing = undefined;
        this.#syncFailure = new StorageError(`cannot sync the audit log: ${(e as Error).message}`, {
          cause: e,
        });
      },
    );
  }

  close(): void {
    if (this.#file === undefined) return;
    this.sync();
    this.#file.close();
    this.#file = undefined;
  }

  #open(): Deno.FsFile {
    if (this.#file === undefined) throw new StorageError("audit log is closed");
    return this.#file;
  }
}
