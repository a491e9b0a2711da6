/**
 * Rotation of a JSONL log: when the active file is due (`audit.rotation.max_size_bytes`,
 * `interval`), which archives retention deletes (`max_age_days`, `max_files`), and compressing a
 * closed archive to `.gz` in the background (`compress: gzip`).
 *
 * The Go tool's semantics, minus its defects: the time boundary follows the first record of the
 * active file (so a restart, or another writer, sees the same one), archives are ordered by number
 * (`.10` after `.2`), and retention also runs at start.
 *
 * Retention never trusts a name: anyone who can write the directory can rename a file, or put one
 * there. It counts and deletes only the archives of this log's chain, found by their records
 * linking back from the active file ({@link chainOfArchives}), judges their age by their last
 * record's `ts`, and counts them in seq order. Files that are not of the chain are left alone and
 * warned about; which gives an intruder a way to stop retention (a copy of an archive), never to
 * make it delete what it should keep.
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

/**
 * A record at one end of an archive, as retention reads it: where it stands in the chain. Read
 * from the file's content, never its name, which anyone who can write the directory can change.
 */
export interface ArchiveRecord {
  seq: number;
  /** Its `prev`: the SHA-256 (hex) of the stored line before it. */
  prev: string;
  /** The SHA-256 (hex) of its own stored line. */
  hash: string;
  /** Its `ts` as stored; null when it is not a valid time. */
  ts: string | null;
  /** `ts` in milliseconds since the epoch; null when it is not a valid time. */
  time: number | null;
}

/** What reading one end of an archive found. */
export type ArchiveRead =
  | { kind: "record"; record: ArchiveRecord }
  /** Its first line is not a complete record of ours: it is not an archive of this log. */
  | { kind: "stranger"; why: string }
  /** It could not be read: an I/O error, a `.gz` corrupt or too large, no last record. */
  | { kind: "unreadable"; why: string };

/** How retention reads an archive's first and last records (the store's own reading). */
export interface ArchiveReader {
  first(archive: Archive): ArchiveRead;
  last(archive: Archive): ArchiveRead;
}

/**
 * The record that follows the newest archive: the active file's first record, or, while the
 * active file holds none, the one due next after the chain head (`head.seq + 1`, `head.hash`).
 */
export interface ChainLink {
  seq: number;
  /** The SHA-256 (hex) of the line before it: the newest archive's last record. */
  prev: string;
}

/** An archive of this log's chain: its last record is the one the next file's first links to. */
export interface ChainArchive {
  archive: Archive;
  first: ArchiveRecord;
  last: ArchiveRecord;
}

/** A file named like an archive that retention leaves alone and does not count, and why. */
export interface LeftArchive {
  archive: Archive;
  why: string;
}

/**
 * The archives of this log's chain, oldest first, found from their content, never their names.
 *
 * Every file named like an archive is read at both ends. Left out (`left`), and so neither
 * counted nor deleted: a file whose first line is no record of ours; one that cannot be read;
 * one holding seqs at or after `next` (the active file's); every file whose seqs overlap
 * another's (a copy, or a file cut from one: which is the original cannot be told, and counting
 * both would let copies push real archives out); and then, walking back from `next`, every file
 * that is not the one the record after it links to (last seq one less, the SHA-256 of its last
 * line equal to that record's `prev`), with everything before it: a gap, a changed last record or
 * a file left out breaks the chain, and nothing links what is before the break to this log.
 */
export function chainOfArchives(
  archives: readonly Archive[],
  next: ChainLink | undefined,
  reader: ArchiveReader,
): { chain: ChainArchive[]; left: LeftArchive[] } {
  const left: LeftArchive[] = [];
  const read: ChainArchive[] = [];
  for (const archive of archives) {
    const first = reader.first(archive);
    if (first.kind !== "record") {
      left.push({ archive, why: first.why });
      continue;
    }
    if (next !== undefined && first.record.seq >= next.seq) {
      left.push({
        archive,
        why: `its first record, seq ${first.record.seq}, is not before seq ${next.seq}, where ` +
          "the records after the archives start",
      });
      continue;
    }
    const last = reader.last(archive);
    if (last.kind !== "record") {
      left.push({ archive, why: last.why });
      continue;
    }
    if (last.record.seq < first.record.seq) {
      left.push({ archive, why: `its last record, seq ${last.record.seq}, is before its first` });
      continue;
    }
    read.push({ archive, first: first.record, last: last.record });
  }
  // By first seq: an archive overlaps another when it starts at or before the end of one before
  // it, or ends at or after the start of the next.
  read.sort((a, b) => a.first.seq - b.first.seq);
  const apart: ChainArchive[] = [];
  let maxLast = 0;
  for (const [i, a] of read.entries()) {
    const after = read[i + 1];
    if (a.first.seq <= maxLast || (after !== undefined && a.last.seq >= after.first.seq)) {
      left.push({
        archive: a.archive,
        why: `its records (seq ${a.first.seq}-${a.last.seq}) overlap another archive's: a copy, ` +
          "or not of this chain",
      });
    } else {
      apart.push(a);
    }
    maxLast = Math.max(maxLast, a.last.seq);
  }
  // Back from the record after the newest archive: no overlaps, so at most one can link.
  const chain: ChainArchive[] = [];
  let want = next;
  // Once the chain breaks, why everything before the break is left.
  let broken: string | undefined;
  for (let i = apart.length - 1; i >= 0; i--) {
    const a = apart[i]!;
    if (
      broken === undefined && want !== undefined && a.last.seq === want.seq - 1 &&
      a.last.hash === want.prev
    ) {
      chain.push(a);
      want = { seq: a.first.seq, prev: a.first.prev };
      continue;
    }
    if (broken !== undefined) {
      left.push({ archive: a.archive, why: broken });
      continue;
    }
    if (want === undefined) {
      broken = "the log holds no record to link it to";
      left.push({ archive: a.archive, why: broken });
      continue;
    }
    left.push({
      archive: a.archive,
      why: a.last.seq === want.seq - 1
        ? `its last record (seq ${a.last.seq}) is not the line seq ${want.seq} links to: it was ` +
          "changed, or is not of this chain"
        : `no archive ends at seq ${want.seq - 1}, before seq ${want.seq}: the chain breaks there`,
    });
    broken = `the chain breaks after it, before seq ${want.seq}: nothing links it to the log`;
  }
  chain.reverse();
  return { chain, left };
}

/** One archive retention deletes, and the rule that deletes it. */
export interface RetentionVictim {
  archive: ChainArchive;
  rule: DeletedArchive["rule"];
}

/**
 * The archives retention deletes, in chain order: those whose last record is older than
 * `max_age_days` (by its `ts`), and of the rest all but the newest `max_files` (by seq). `chain`
 * is {@link chainOfArchives}' (oldest first); the active file is never counted, and neither is
 * anything left out of the chain.
 */
export function retentionPlan(
  chain: readonly ChainArchive[],
  rotation: Rotation,
  now: number,
): RetentionVictim[] {
  const rules = new Map<ChainArchive, DeletedArchive["rule"]>();
  let kept = [...chain];
  if (rotation.max_age_days > 0) {
    const cutoff = now - rotation.max_age_days * DAY;
    kept = kept.filter((a) => {
      // An archive whose age cannot be read is not judged old.
      if (a.last.time === null || a.last.time >= cutoff) return true;
      rules.set(a, "max_age_days");
      return false;
    });
  }
  if (rotation.max_files > 0 && kept.length > rotation.max_files) {
    for (const a of kept.slice(0, kept.length - rotation.max_files)) rules.set(a, "max_files");
  }
  return chain.flatMap((archive) => {
    const rule = rules.get(archive);
    return rule === undefined ? [] : [{ archive, rule }];
  });
}

/** Whether anything is at `path` (true when that cannot be told). */
function present(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch (e) {
    return !(e instanceof Deno.errors.NotFound);
  }
}

/** An archive retention deleted: {@link DeletedArchive} and the `ts` of its last record. */
export interface RetentionDeletion extends DeletedArchive {
  last_ts: string | null;
}

/**
 * Deletes what {@link retentionPlan} selects among the archives of this log's chain
 * ({@link chainOfArchives}: judged by their records, never by their names). Files named like
 * archives that are not of the chain are left alone, not counted, and warned about. Both forms of
 * an archive caught mid-compression (plain and `.gz`, when the `.gz` starts with the same record)
 * go. An archive that cannot be deleted is left, logged and not listed. Run under the log's lock.
 * @param next the record after the newest archive ({@link ChainLink}); undefined when the log
 *   holds none, and then nothing is deleted
 */
export function applyRetention(
  activePath: string,
  rotation: Rotation,
  now: number,
  next: ChainLink | undefined,
  reader: ArchiveReader,
  logger?: Pick<Logger, "warn">,
): RetentionDeletion[] {
  if (rotation.max_age_days <= 0 && rotation.max_files <= 0) return [];
  const { chain, left } = chainOfArchives(listArchives(activePath), next, reader);
  const deleted: RetentionDeletion[] = [];
  for (const { archive: { archive, first, last }, rule } of retentionPlan(chain, rotation, now)) {
    const forms = [archive.path];
    // A plain archive's .gz beside it (a compression stopped before its last step) goes with it
    // when it starts with the same record; anything else under that name is not its copy.
    if (!archive.gzip) {
      const gz = { ...archive, path: `${archive.path}.gz`, name: `${archive.name}.gz`, gzip: true };
      const start = present(gz.path) ? reader.first(gz) : undefined;
      if (start?.kind === "record" && start.record.hash === first.hash) forms.push(gz.path);
      else if (start !== undefined) {
        left.push({ archive: gz, why: "it is not a copy of " + archive.name });
      }
    }
    let removed = false;
    for (const path of forms) {
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
    if (removed) {
      deleted.push({
        name: archive.name,
        rule,
        first_seq: first.seq,
        last_seq: last.seq,
        last_ts: last.ts,
      });
    }
  }
  for (const { archive, why } of left) {
    logger?.warn(
      "a file named like an audit log archive is not one of the log's chain; retention leaves " +
        "it alone and does not count it",
      { path: archive.path, why },
    );
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
