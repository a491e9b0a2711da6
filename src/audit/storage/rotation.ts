/**
 * Rotation of a JSONL log: when the active file is due (`audit.rotation.max_size_bytes`,
 * `interval`), which archives retention deletes (`max_age_days`, `max_files`), and compressing a
 * closed archive to `.gz` in the background (`compress: gzip`).
 *
 * The Go tool's semantics, minus its defects: the time boundary follows the first record of the
 * active file (so a restart, or another writer, sees the same one), archives are ordered by number
 * (`.10` after `.2`), and retention also runs at start.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { basename, dirname } from "node:path";
import type { Config } from "../../config/config.ts";
import type { Logger } from "../../log.ts";
import { type Archive, listArchives } from "./archives.ts";
import type { DeletedArchive } from "./store.ts";

/** `audit.rotation`. */
export type Rotation = Config["audit"]["rotation"];

/** Why the active file is archived. */
export type RotationCause = "size" | "interval";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const CHUNK = 64 * 1024;
const posix = Deno.build.os !== "windows";

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * The first UTC hour or midnight strictly after `ts` (milliseconds since the epoch).
 *
 * @example
 * ```ts
 * import { nextBoundary } from "./rotation.ts";
 * const at = nextBoundary(Date.parse("2026-06-10T21:59:59.999Z"), "hourly");
 * console.assert(new Date(at).toISOString() === "2026-06-10T22:00:00.000Z");
 * ```
 */
export function nextBoundary(ts: number, interval: "hourly" | "daily"): number {
  const step = interval === "hourly" ? HOUR : DAY;
  // Epoch milliseconds count no leap seconds, so UTC hours and days are exact multiples.
  return Math.floor(ts / step) * step + step;
}

/** What rotation needs to know of the active file. */
export interface ActiveFile {
  /** Its size in bytes. */
  size: number;
  /** The `ts` of its first record (milliseconds), when it has one. */
  firstTs: number | undefined;
}

/**
 * Whether the active file is due for rotation now, and why. An empty file never is. Size and
 * time due together make one archive, reported as `size`.
 */
export function rotationCause(
  active: ActiveFile,
  rotation: Rotation,
  now: number,
): RotationCause | null {
  if (active.size === 0) return null;
  if (rotation.max_size_bytes > 0 && active.size >= rotation.max_size_bytes) return "size";
  if (
    rotation.interval !== "" && active.firstTs !== undefined &&
    now >= nextBoundary(active.firstTs, rotation.interval)
  ) {
    return "interval";
  }
  return null;
}

/** Whether any rotation key asks for rotation or retention. */
export function rotates(rotation: Rotation | undefined): rotation is Rotation {
  return rotation !== undefined &&
    (rotation.max_size_bytes > 0 || rotation.interval !== "" || rotation.max_files > 0 ||
      rotation.max_age_days > 0 || rotation.compress !== "");
}

/** One archive retention deletes, and the rule that deletes it. */
export interface RetentionVictim {
  archive: Archive;
  rule: DeletedArchive["rule"];
}

/**
 * The archives retention deletes, oldest first: those whose name's stamp is older than
 * `max_age_days`, then all but the newest `max_files` of the rest (in chain order, as
 * {@link listArchives} sorts them). The active file is never counted.
 */
export function retentionPlan(
  archives: readonly Archive[],
  rotation: Rotation,
  now: number,
): RetentionVictim[] {
  const victims: RetentionVictim[] = [];
  let kept = [...archives];
  if (rotation.max_age_days > 0) {
    const cutoff = now - rotation.max_age_days * DAY;
    kept = kept.filter((archive) => {
      if (archive.time >= cutoff) return true;
      victims.push({ archive, rule: "max_age_days" });
      return false;
    });
  }
  if (rotation.max_files > 0 && kept.length > rotation.max_files) {
    for (const archive of kept.slice(0, kept.length - rotation.max_files)) {
      victims.push({ archive, rule: "max_files" });
    }
  }
  return victims;
}

/** The first and last seq of an archive, as read from it (null where it cannot be read). */
export type SeqReader = (archive: Archive) => { first_seq: number | null; last_seq: number | null };

/**
 * Deletes what {@link retentionPlan} selects, reading each archive's first and last seq before.
 * Both forms of an archive caught mid-compression (plain and `.gz`) go. An archive that cannot
 * be deleted is left, logged and not listed. Run under the log's lock.
 */
export function applyRetention(
  activePath: string,
  rotation: Rotation,
  now: number,
  seqs: SeqReader,
  logger?: Pick<Logger, "warn">,
): DeletedArchive[] {
  if (rotation.max_age_days <= 0 && rotation.max_files <= 0) return [];
  const deleted: DeletedArchive[] = [];
  for (const { archive, rule } of retentionPlan(listArchives(activePath), rotation, now)) {
    const range = seqs(archive);
    const plain = archive.gzip ? archive.path.slice(0, -3) : archive.path;
    let removed = false;
    for (const path of [plain, `${plain}.gz`]) {
      try {
        Deno.removeSync(path);
        removed = true;
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) continue;
        logger?.warn("retention could not delete an audit log archive", {
          path,
          rule,
          error: message(e),
        });
      }
    }
    if (removed) deleted.push({ name: archive.name, rule, ...range });
  }
  return deleted;
}

const TEMP_SUFFIX = /^\d{8}T\d{6}Z(?:\.\d+)?\.gz\.tmp$/;

/**
 * Removes the `<archive>.gz.tmp` files of compressions that died with their process (a
 * compression in progress holds a lock on its temp file, so it is left alone). Run under the log's
 * lock, at start.
 * @returns the paths removed
 */
export function removeStaleCompressions(activePath: string): string[] {
  const base = basename(activePath);
  const prefix = activePath.slice(0, activePath.length - base.length);
  const removed: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dirname(activePath))];
  } catch {
    // Leftovers are untidy, not dangerous: listArchives never takes a .tmp for an archive.
    return removed;
  }
  for (const entry of entries) {
    if (!entry.isFile || !entry.name.startsWith(`${base}.`)) continue;
    if (!TEMP_SUFFIX.test(entry.name.slice(base.length + 1))) continue;
    const path = prefix + entry.name;
    try {
      using file = Deno.openSync(path, { read: true, write: true });
      if (!file.tryLockSync(true)) continue;
      Deno.removeSync(path);
      removed.push(path);
    } catch {
      // Gone meanwhile, or not ours to open: leave it.
    }
  }
  return removed;
}

/** What a compression needs from the store. */
export interface CompressorOptions {
  logger?: Pick<Logger, "warn">;
  /**
   * Runs a synchronous step while holding the log's lock, so that retention and other writers'
   * compressions never see an archive half renamed.
   */
  underLock<T>(fn: () => T): T;
  /** Stops a compression at its next step; what it wrote is removed, the plain file stays. */
  signal?: AbortSignal;
}

/** The temp file a compression holds while it writes, for whoever must remove it at once. */
export interface CompressionJob {
  temp: string | undefined;
}

/** How one archive's compression ended. */
export type CompressionOutcome =
  /** `<archive>.gz` is in place, checked, and the plain file is gone. */
  | "compressed"
  /** A `.gz` already there (a compression interrupted before deleting the plain file) was
   * checked against the plain file, which is gone now. */
  | "completed"
  /** Nothing to do: the plain file is gone, or another process is compressing it. */
  | "skipped"
  /** The `.gz` does not hold the plain file's bytes: both are left. */
  | "mismatch"
  /** Stopped by the signal (the store closed): the plain file stays, compressed at a later start. */
  | "cancelled";

/** A file's bytes as a stream, read in chunks from an open file the caller closes. */
function bytesOf(
  file: Deno.FsFile,
  counted?: { bytes: number },
): ReadableStream<Uint8Array<ArrayBuffer>> {
  return new ReadableStream<Uint8Array<ArrayBuffer>>({
    async pull(controller) {
      const buf = new Uint8Array(CHUNK);
      const n = await file.read(buf);
      if (n === null) return controller.close();
      if (counted !== undefined) counted.bytes += n;
      controller.enqueue(buf.subarray(0, n));
    },
  });
}

/** SHA-256 (hex) of everything a stream yields. */
async function digest(stream: ReadableStream<Uint8Array>): Promise<string> {
  const sha = createHash("sha256");
  for await (const chunk of stream) sha.update(chunk);
  return sha.digest("hex");
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.length) {
    const n = await file.write(bytes.subarray(at));
    if (n <= 0) throw new Error("write accepted no bytes");
    at += n;
  }
}

function sameFile(a: Deno.FileInfo, b: Deno.FileInfo): boolean {
  if (a.dev === null || a.ino === null || b.dev === null || b.ino === null) return true;
  return a.dev === b.dev && a.ino === b.ino;
}

/** The plain archive is still the file read, and holds exactly the bytes read (no more since). */
function unchanged(path: string, stat: Deno.FileInfo, bytes: number): boolean {
  const now = lstatOrNothing(path);
  return now !== undefined && sameFile(now, stat) && now.size === bytes;
}

function lstatOrNothing(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.lstatSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

async function syncDir(path: string): Promise<void> {
  if (!posix) return;
  using dir = await Deno.open(dirname(path), { read: true });
  await dir.sync();
}

/** What the first locked step found. */
type Claim =
  | { kind: "skip" }
  | { kind: "verify"; plain: Deno.FsFile; stat: Deno.FileInfo; gz: Deno.FsFile }
  | {
    kind: "compress";
    plain: Deno.FsFile;
    stat: Deno.FileInfo;
    temp: Deno.FsFile;
    tempStat: Deno.FileInfo;
  };

/** Opens `<plain>.gz.tmp` new and locked; a stale one nobody holds is replaced. */
function claimTemp(temp: string): Deno.FsFile | undefined {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const file = Deno.openSync(temp, { read: true, write: true, createNew: true, mode: 0o600 });
      file.lockSync(true);
      return file;
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    }
    using stale = Deno.openSync(temp, { read: true, write: true });
    // Another process compresses this archive right now.
    if (!stale.tryLockSync(true)) return undefined;
    Deno.removeSync(temp);
  }
  return undefined;
}

/**
 * Compresses the closed archive `plainPath` to `<plainPath>.gz`: written to `.gz.tmp`, synced,
 * read back and compared with the plain file's bytes, renamed into place, and only then the plain
 * file deleted. When a `.gz` is already there (a compression stopped before its last step), it is
 * checked the same way before the plain file goes. Never touches a file another process is
 * compressing, or one retention deleted meanwhile.
 */
export async function compressArchive(
  plainPath: string,
  options: CompressorOptions,
  job: CompressionJob = { temp: undefined },
): Promise<CompressionOutcome> {
  const gzPath = `${plainPath}.gz`;
  const tempPath = `${gzPath}.tmp`;
  const stopped = () => options.signal?.aborted === true;
  if (stopped()) return "cancelled";
  const claim = options.underLock((): Claim => {
    const stat = lstatOrNothing(plainPath);
    if (stat === undefined || !stat.isFile) return { kind: "skip" };
    const gzStat = lstatOrNothing(gzPath);
    if (gzStat !== undefined) {
      if (!gzStat.isFile) return { kind: "skip" };
      const plain = Deno.openSync(plainPath, { read: true });
      try {
        return { kind: "verify", plain, stat, gz: Deno.openSync(gzPath, { read: true }) };
      } catch (e) {
        plain.close();
        throw e;
      }
    }
    const temp = claimTemp(tempPath);
    if (temp === undefined) return { kind: "skip" };
    job.temp = tempPath;
    try {
      const tempStat = temp.statSync();
      return {
        kind: "compress",
        plain: Deno.openSync(plainPath, { read: true }),
        stat,
        temp,
        tempStat,
      };
    } catch (e) {
      temp.close();
      Deno.removeSync(tempPath);
      throw e;
    }
  });
  switch (claim.kind) {
    case "skip":
      return "skipped";
    case "verify": {
      const read = { bytes: 0 };
      try {
        const [want, got] = await Promise.all([
          digest(bytesOf(claim.plain, read)),
          digest(bytesOf(claim.gz).pipeThrough(new DecompressionStream("gzip"))),
        ]);
        if (want !== got) return "mismatch";
      } finally {
        claim.plain.close();
        claim.gz.close();
      }
      if (stopped()) return "cancelled";
      return await removePlain(plainPath, claim.stat, read.bytes, options)
        ? "completed"
        : "skipped";
    }
    case "compress": {
      const { plain, stat, temp, tempStat } = claim;
      const read = { bytes: 0 };
      let placed = false;
      try {
        const sha = createHash("sha256");
        const hashed = bytesOf(plain, read).pipeThrough(
          new TransformStream<Uint8Array<ArrayBuffer>, BufferSource>({
            transform(chunk, controller) {
              sha.update(chunk);
              controller.enqueue(chunk);
            },
          }),
        );
        for await (const chunk of hashed.pipeThrough(new CompressionStream("gzip"))) {
          if (stopped()) return "cancelled";
          await writeAll(temp, chunk);
        }
        await temp.syncData();
        await temp.seek(0, Deno.SeekMode.Start);
        const back = await digest(bytesOf(temp).pipeThrough(new DecompressionStream("gzip")));
        if (back !== sha.digest("hex")) return "mismatch";
        if (stopped()) return "cancelled";
        placed = options.underLock(() => {
          // Retention may have deleted the archive, another process finished it, or a writer
          // added to it (a closing record) meanwhile.
          if (!unchanged(plainPath, stat, read.bytes) || lstatOrNothing(gzPath) !== undefined) {
            return false;
          }
          Deno.renameSync(tempPath, gzPath);
          return true;
        });
      } finally {
        plain.close();
        temp.close();
        job.temp = undefined;
        // Unless placed, or removed already by a close (the name may be another's since).
        const left = placed ? undefined : lstatOrNothing(tempPath);
        if (left !== undefined && sameFile(left, tempStat)) {
          try {
            Deno.removeSync(tempPath);
          } catch {
            // Already gone; a leftover would be removed at the next start.
          }
        }
      }
      if (!placed) return "skipped";
      // The .gz must be durable under its name before the plain file's name goes.
      await syncDir(gzPath);
      // Stopped here, both stay: the next start checks the .gz and removes the plain file.
      if (stopped()) return "cancelled";
      await removePlain(plainPath, stat, read.bytes, options);
      return "compressed";
    }
    default: {
      const never: never = claim;
      throw new Error(`unknown claim ${JSON.stringify(never)}`);
    }
  }
}

/**
 * Deletes the plain archive if it is still the file compressed, holding no more than was read:
 * a record written to it after the read (a writer closing a file it held) keeps it.
 */
async function removePlain(
  plainPath: string,
  stat: Deno.FileInfo,
  bytes: number,
  options: CompressorOptions,
): Promise<boolean> {
  const removed = options.underLock(() => {
    if (!unchanged(plainPath, stat, bytes)) return false;
    Deno.removeSync(plainPath);
    return true;
  });
  if (removed) await syncDir(plainPath);
  return removed;
}

/**
 * Compresses archives one at a time, in the background: a rotation hands over the archive it
 * made and goes on. Failures are logged; the plain archive then stays, which loses nothing.
 */
export class ArchiveCompressor {
  readonly #options: CompressorOptions;
  readonly #abort = new AbortController();
  readonly #job: CompressionJob = { temp: undefined };
  readonly #queue: string[] = [];
  readonly #queued = new Set<string>();
  #running: Promise<void> | undefined;
  /** How each archive's compression ended, in order (for tests and logs). */
  readonly outcomes: { path: string; outcome: CompressionOutcome | "failed" }[] = [];

  constructor(options: CompressorOptions) {
    const signal = options.signal === undefined
      ? this.#abort.signal
      : AbortSignal.any([options.signal, this.#abort.signal]);
    this.#options = { ...options, signal };
  }

  /** Queues the plain archive at `path` (once, however often it is asked). */
  schedule(path: string): void {
    if (this.#abort.signal.aborted || this.#queued.has(path)) return;
    this.#queued.add(path);
    this.#queue.push(path);
    // Started from a later turn, so that the batch that rotated has committed and unlocked.
    this.#running ??= Promise.resolve().then(() => this.#drain());
  }

  /** Resolves when every queued archive has been handled. */
  async settled(): Promise<void> {
    while (this.#running !== undefined) await this.#running;
  }

  /**
   * Stops: nothing queued is started, and the compression under way is dropped at once (its temp
   * file removed now, so that a process exiting right after leaves none behind). The archives
   * stay plain until a later start compresses them. Idempotent.
   */
  close(): void {
    this.#abort.abort();
    for (const path of this.#queue) this.outcomes.push({ path, outcome: "cancelled" });
    this.#queue.length = 0;
    this.#queued.clear();
    const temp = this.#job.temp;
    if (temp === undefined) return;
    try {
      Deno.removeSync(temp);
    } catch {
      // Gone already; a leftover would be removed at the next start.
    }
  }

  async #drain(): Promise<void> {
    try {
      for (let path = this.#queue.shift(); path !== undefined; path = this.#queue.shift()) {
        this.#queued.delete(path);
        let outcome: CompressionOutcome | "failed";
        try {
          outcome = await compressArchive(path, this.#options, this.#job);
        } catch (e) {
          outcome = "failed";
          this.#options.logger?.warn("compressing an audit log archive failed; it stays plain", {
            path,
            error: message(e),
          });
        }
        if (outcome === "mismatch") {
          this.#options.logger?.warn(
            "a compressed audit log archive does not hold the plain archive's bytes; both are kept",
            { path },
          );
        }
        if (this.outcomes.length >= 1000) this.outcomes.shift();
        this.outcomes.push({ path, outcome });
      }
    } finally {
      this.#running = undefined;
    }
  }
}
