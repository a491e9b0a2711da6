/**
 * The archives of a JSONL log: the files rotation moved the active file to, next to it, named
 * `<active>.<UTC time as 20060102T150405Z>`, with `.1`, `.2`… on a clash and `.gz` once compressed.
 *
 * They are ordered as the chain runs through them: by stamp, then by clash number as a number
 * (the Go tool sorted the names as text, so `.10` came before `.2`).
 *
 * @module
 */
import { basename, dirname } from "node:path";
import { StorageError } from "./errors.ts";

/** One archive file of a log. */
export interface Archive {
  /** The path to open: the active path's directory part followed by `name`. */
  path: string;
  /** The file name, no directory. */
  name: string;
  /** The UTC time in its name, as `20260610T220000Z`. */
  stamp: string;
  /** 0 for none, else the number after the stamp (`.1`, `.2`…). */
  clash: number;
  /** Compressed: the name ends in `.gz`. */
  gzip: boolean;
  /** The stamp as milliseconds since the epoch. */
  time: number;
}

const ARCHIVE_SUFFIX = /^(\d{8}T\d{6}Z)(?:\.(\d+))?(\.gz)?$/;
// Far more clashes than one second of rotations can make; past this something else is wrong.
const MAX_CLASH = 100_000;
const CHUNK = 64 * 1024;
const GZ_CHUNK = 16 * 1024;

function pad(n: number, width: number): string {
  return String(n).padStart(width, "0");
}

/** `2006-01-02T15:04:05Z` → `20060102T150405Z`. */
function stampOf(at: Date): string {
  return pad(at.getUTCFullYear(), 4) + pad(at.getUTCMonth() + 1, 2) + pad(at.getUTCDate(), 2) +
    "T" + pad(at.getUTCHours(), 2) + pad(at.getUTCMinutes(), 2) + pad(at.getUTCSeconds(), 2) + "Z";
}

function timeOf(stamp: string): number {
  const n = (from: number, to: number) => Number(stamp.slice(from, to));
  return Date.UTC(n(0, 4), n(4, 6) - 1, n(6, 8), n(9, 11), n(11, 13), n(13, 15));
}

/** The directory part of `activePath` as written (`""` for a bare name), so paths keep its form. */
function prefixOf(activePath: string): string {
  return activePath.slice(0, activePath.length - basename(activePath).length);
}

/**
 * The name to archive the active file under at `at`: `<active>.<UTC time as 20060102T150405Z>`,
 * then `.1`, `.2`… when `exists` says the name is taken (plain or `.gz`). Given the `newest`
 * archive there is, the name sorts after it in chain order.
 *
 * @example
 * ```ts
 * const taken = new Set(["/var/log/audit.jsonl.20260610T220000Z.gz"]);
 * archiveName("/var/log/audit.jsonl", new Date("2026-06-10T22:00:00Z"), (p) => taken.has(p));
 * // "/var/log/audit.jsonl.20260610T220000Z.1"
 * ```
 * @throws {StorageError} when no free name is found among the first 100,000 clash numbers
 */
export function archiveName(
  activePath: string,
  at: Date,
  exists: (path: string) => boolean,
  newest?: Archive,
): string {
  // A new archive sorts after every archive there is, whatever was deleted before it or however
  // the clock stepped: a name a deleted archive freed, or an earlier stamp, would read it out of
  // chain order. So a stamp at or before the newest archive's takes that stamp and a higher clash.
  const stamp = stampOf(at);
  const after = newest !== undefined && newest.stamp >= stamp ? newest : undefined;
  const base = `${activePath}.${after?.stamp ?? stamp}`;
  for (let clash = after === undefined ? 0 : after.clash + 1; clash <= MAX_CLASH; clash++) {
    const name = clash === 0 ? base : `${base}.${clash}`;
    if (!exists(name) && !exists(`${name}.gz`)) return name;
  }
  throw new StorageError(`no free archive name for ${activePath} at ${base} (.1 to .${MAX_CLASH})`);
}

function isFile(path: string, entry: Deno.DirEntry): boolean {
  if (entry.isFile) return true;
  if (!entry.isSymlink) return false;
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** Chain order: stamp, clash as a number, then the name (`.01` beside `.1`), plain before `.gz`. */
function compareArchives(a: Archive, b: Archive): number {
  if (a.stamp !== b.stamp) return a.stamp < b.stamp ? -1 : 1;
  if (a.clash !== b.clash) return a.clash - b.clash;
  if (a.name !== b.name) return a.name < b.name ? -1 : 1;
  return 0;
}

/**
 * The archives of the log at `activePath` in its directory (names `<base>.` +
 * `/^\d{8}T\d{6}Z(?:\.\d+)?(?:\.gz)?$/`), sorted in chain order: stamp, then clash numerically
 * (`.2` before `.10`). A name both plain and `.gz` (a compression in progress) is listed once, as
 * the plain file. `.tmp` files, directories and other files are not archives. A missing directory
 * has none.
 *
 * @throws {StorageError} when the directory cannot be read
 */
export function listArchives(activePath: string): Archive[] {
  const base = basename(activePath);
  const prefix = prefixOf(activePath);
  const dir = dirname(activePath);
  const byPlainName = new Map<string, Archive>();
  let entries: Iterable<Deno.DirEntry>;
  try {
    entries = Deno.readDirSync(dir);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw new StorageError(`cannot list the archives of ${activePath}: ${(e as Error).message}`);
  }
  try {
    for (const entry of entries) {
      const name = entry.name;
      if (!name.startsWith(`${base}.`)) continue;
      const m = ARCHIVE_SUFFIX.exec(name.slice(base.length + 1));
      if (m === null) continue;
      const path = prefix + name;
      if (!isFile(path, entry)) continue;
      const stamp = m[1]!;
      const gzip = m[3] !== undefined;
      const plainName = gzip ? name.slice(0, -3) : name;
      const seen = byPlainName.get(plainName);
      if (seen !== undefined && !seen.gzip) continue;
      byPlainName.set(plainName, {
        path,
        name,
        stamp,
        clash: m[2] === undefined ? 0 : Number(m[2]),
        gzip,
        time: timeOf(stamp),
      });
    }
  } catch (e) {
    throw new StorageError(`cannot list the archives of ${activePath}: ${(e as Error).message}`);
  }
  return [...byPlainName.values()].sort(compareArchives);
}

/**
 * A file's bytes, read in `chunk`-byte blocks from `open()` (called on the first read), the file
 * closed at the end, on an error or on cancel.
 */
function fileBytes(
  open: () => Promise<Deno.FsFile>,
  chunk = CHUNK,
): ReadableStream<Uint8Array<ArrayBuffer>> {
  let file: Deno.FsFile | undefined;
  let done = false;
  const release = () => {
    done = true;
    file?.close();
    file = undefined;
  };
  return new ReadableStream<Uint8Array<ArrayBuffer>>({
    async pull(controller) {
      if (done) return;
      try {
        file ??= await open();
        const buf = new Uint8Array(chunk);
        const n = await file.read(buf);
        if (n === null) {
          release();
          controller.close();
          return;
        }
        controller.enqueue(buf.subarray(0, n));
      } catch (e) {
        release();
        throw e;
      }
    },
    cancel() {
      release();
    },
  });
}

function gunzip(bytes: ReadableStream<Uint8Array<ArrayBuffer>>): ReadableStream<Uint8Array> {
  return bytes.pipeThrough(new DecompressionStream("gzip"));
}

/** A compressed file's bytes, in small blocks: one deflate block may inflate a thousandfold. */
function compressedBytes(path: string): ReadableStream<Uint8Array<ArrayBuffer>> {
  return fileBytes(() => Deno.open(path, { read: true }), GZ_CHUNK);
}

/** An archive listed plain, read from its `.gz` when compression replaced it since. */
function plainOrCompressed(path: string): ReadableStream<Uint8Array> {
  let inner: ReadableStreamDefaultReader<Uint8Array> | undefined;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (inner === undefined) {
        let plain: Deno.FsFile | undefined;
        try {
          plain = await Deno.open(path, { read: true });
        } catch (e) {
          if (!(e instanceof Deno.errors.NotFound)) throw e;
        }
        const opened = plain;
        inner = (opened !== undefined
          ? fileBytes(() =>
            Promise.resolve(opened)
          )
          : gunzip(compressedBytes(`${path}.gz`))).getReader();
      }
      const r = await inner.read();
      if (r.done) controller.close();
      else controller.enqueue(r.value);
    },
    async cancel(reason) {
      await inner?.cancel(reason);
    },
  });
}

/**
 * The bytes of an archive, gunzipped when it is compressed, or of the file at a path (gunzipped
 * when the path ends in `.gz`, so an archive named by hand reads as one found by
 * {@link listArchives}). An archive listed plain that was compressed since is read from its
 * `.gz`. The file is opened on the first read and closed when the stream ends, fails or is
 * cancelled; an unreadable file or a corrupt `.gz` errors the stream.
 */
export function openArchiveLines(a: Archive | string): ReadableStream<Uint8Array> {
  const path = typeof a === "string" ? a : a.path;
  const gzip = typeof a === "string" ? path.endsWith(".gz") : a.gzip;
  if (typeof a !== "string" && !gzip) return plainOrCompressed(path);
  return gzip ? gunzip(compressedBytes(path)) : fileBytes(() => Deno.open(path, { read: true }));
}
