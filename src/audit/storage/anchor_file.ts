/**
 * Keeps the anchor file (see `../anchor.ts`) up to date: replaced whole, never edited in place
 * (temp file, fsync, rename, fsync of the directory), so that a crash leaves the old anchor or the
 * new one, never half of one.
 *
 * Several proxies writing one log share its anchor. Each names its own records, and their heads
 * reach the anchor out of order, so the anchor is only ever replaced by a later head: the compare
 * with what is on disk and the rename happen under `<anchor>.lock`, never across an `await`. A
 * writer whose head another has already passed has nothing to do, and that is no failure.
 *
 * @module
 */
import { hash } from "node:crypto";
import { basename, dirname, resolve } from "node:path";
import {
  AnchorFormatError,
  type AnchorHead,
  anchorText,
  parseAnchor,
  signedBy,
} from "../anchor.ts";
import { parseJson } from "../../jsonrpc/json.ts";
import type { Signer } from "../signing.ts";
import { AnchorMismatchError, RefusedPathError, StorageError } from "./errors.ts";
import { FileLock } from "./file_lock.ts";

const encoder = new TextEncoder();
const posix = Deno.build.os !== "windows";

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A temp file being written, flock-ed so that no other writer's clean-up removes it. */
interface Temp {
  path: string;
  file: Deno.FsFile;
}

/** The anchor of one log. */
export class AnchorFile {
  /** Absolute path of the anchor. */
  readonly path: string;
  readonly #dir: string;
  readonly #log: string;
  readonly #signer: Signer | null;
  /** Guards the compare-and-rename and the temp files, across processes. */
  readonly #lock: FileLock;
  /** Seq of the newest anchor this process knows to be in place; an older head never replaces it. */
  #placed = 0;
  /** The newest head waiting for the background writer. */
  #wanted: AnchorHead | undefined;
  /** The background writer, while it runs. */
  #running: Promise<void> | undefined;
  #failure: StorageError | undefined;
  #temps = 0;
  #written = false;
  #closed = false;

  /**
   * @param path the anchor's path (`audit.anchor.path`)
   * @param logPath the log it anchors; written into the anchor as an absolute path
   * @throws {RefusedPathError} when the path (or `<path>.lock`) names something other than a file
   */
  constructor(path: string, logPath: string, signer: Signer | null) {
    this.path = resolve(path);
    this.#dir = dirname(this.path);
    this.#log = resolve(logPath);
    this.#signer = signer;
    if (this.path === this.#log) {
      throw new RefusedPathError("audit.anchor.path", "is the log itself; keep the anchor apart");
    }
    let stat: Deno.FileInfo | undefined;
    try {
      stat = Deno.lstatSync(this.path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) {
        throw new StorageError(`cannot read the anchor ${this.path}: ${message(e)}`, { cause: e });
      }
    }
    if (stat !== undefined && !stat.isFile) {
      throw new RefusedPathError(
        "audit.anchor.path",
        `${this.path} is ${stat.isSymlink ? "a symbolic link" : "not a regular file"}`,
      );
    }
    let dir: Deno.FileInfo | undefined;
    try {
      dir = Deno.statSync(this.#dir);
    } catch {
      dir = undefined;
    }
    if (dir === undefined || !dir.isDirectory) {
      throw new RefusedPathError("audit.anchor.path", `its directory ${this.#dir} does not exist`);
    }
    this.#lock = new FileLock(`${this.path}.lock`, "audit.anchor.path");
    this.#removeStaleTemps();
  }

  /** Whether an anchor was written in this run: until then, writes are made synchronously. */
  get written(): boolean {
    return this.#written;
  }

  /**
   * A run that exited while a background write was in flight leaves its temp file behind (the
   * final anchor was written synchronously, so nothing is lost). A temp still locked is another
   * live writer's, half written: it stays.
   */
  #removeStaleTemps(): void {
    const prefix = `.${basename(this.path)}.`;
    this.#locked(() => {
      let entries: Deno.DirEntry[];
      try {
        entries = [...Deno.readDirSync(this.#dir)];
      } catch {
        // Leftovers are untidy, not dangerous: the anchor itself is only ever renamed into place.
        return;
      }
      for (const entry of entries) {
        if (!entry.isFile || !entry.name.startsWith(prefix) || !entry.name.endsWith(".tmp")) {
          continue;
        }
        const temp = `${this.#dir}/${entry.name}`;
        try {
          using file = Deno.openSync(temp, { read: true, write: true });
          if (file.tryLockSync(true)) Deno.removeSync(temp);
        } catch {
          // Gone meanwhile, or not ours to open: leave it.
        }
      }
    });
  }

  /**
   * At start, before anything is written: the log must still hold the record the anchor names.
   * Read-only. `last` is the stored text of the log's last complete record.
   * @throws {AnchorMismatchError} when records were removed since the anchor was written
   */
  checkLog(last: string | undefined): void {
    let text: string;
    try {
      text = Deno.readTextFileSync(this.path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return;
      throw new StorageError(`cannot read the anchor ${this.path}: ${message(e)}`, { cause: e });
    }
    let anchor;
    try {
      anchor = parseAnchor(text);
    } catch (e) {
      if (!(e instanceof AnchorFormatError)) throw e;
      throw new RefusedPathError(
        "audit.anchor.path",
        `${this.path} is not an mcp-audit anchor (${e.message}); move it aside or name another path`,
      );
    }
    if (anchor.log !== this.#log) {
      throw new RefusedPathError(
        "audit.anchor.path",
        `${this.path} anchors ${anchor.log}, not ${this.#log}; give each log its own anchor`,
      );
    }
    if (!signedBy(anchor, this.#signer)) {
      throw new AnchorMismatchError(
        `the anchor ${this.path} was not signed with the current key (its key id: ${anchor.keyId}); ` +
          "it was edited, or the key changed. Keep it as evidence and move it aside to start",
      );
    }
    let lastSeq = 0;
    let lastHash = "";
    if (last !== undefined) {
      const parsed = parseJson(last);
      if (typeof parsed === "object" && parsed !== null && "seq" in parsed) {
        lastSeq = typeof parsed.seq === "number" ? parsed.seq : 0;
      }
      lastHash = hash("sha256", last, "hex");
    }
    const evidence = "Keep the log and the anchor as evidence; to start a new log, move both aside";
    if (anchor.seq > lastSeq) {
      throw new AnchorMismatchError(
        `${this.#log} ${lastSeq === 0 ? "holds no records" : `ends at seq ${lastSeq}`}, but its ` +
          `anchor ${this.path} names seq ${anchor.seq} (${anchor.ts}): records were removed from ` +
          `the end of the log. ${evidence}`,
      );
    }
    if (anchor.seq === lastSeq && anchor.hash !== lastHash) {
      throw new AnchorMismatchError(
        `the last record of ${this.#log} (seq ${lastSeq}) is not the one its anchor ${this.path} ` +
          `names: the end of the log was rewritten. ${evidence}`,
      );
    }
    this.#placed = Math.max(this.#placed, anchor.seq);
  }

  /** Raises a failure of the background writer. */
  check(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }

  /** Moves the anchor to `head` in the background; heads that arrive meanwhile are coalesced. */
  writeSoon(head: AnchorHead): void {
    if (head.seq <= this.#placed || this.#failure !== undefined || this.#closed) return;
    if (this.#wanted === undefined || head.seq > this.#wanted.seq) this.#wanted = head;
    this.#running ??= this.#drain();
  }

  /** Resolves when the background writer has nothing left to do (its failure is kept). */
  async settled(): Promise<void> {
    await this.#running;
  }

  /**
   * Moves the anchor to `head` before returning (the last one of a run). When another writer has
   * already moved it past `head`, there is nothing to do.
   */
  writeNow(head: AnchorHead): void {
    this.check();
    try {
      if (head.seq > this.#placed) {
        const temp = this.#claim();
        try {
          const bytes = encoder.encode(anchorText(this.#log, head, this.#signer));
          let at = 0;
          while (at < bytes.length) at += temp.file.writeSync(bytes.subarray(at));
          temp.file.syncDataSync();
        } catch (e) {
          this.#abandon(temp);
          throw e;
        }
        this.#place(temp, head);
      }
      this.#written = true;
      // Also when an earlier background write placed it: its directory sync may still be pending.
      if (posix) {
        using dir = Deno.openSync(this.#dir, { read: true });
        dir.syncSync();
      }
    } catch (e) {
      throw new StorageError(`cannot update the anchor ${this.path}: ${message(e)}`, { cause: e });
    }
  }

  /**
   * Releases the lock file; a background write still in flight is dropped (write the last head
   * with {@link writeNow} first). The anchor in place stays. Idempotent.
   */
  close(): void {
    this.#closed = true;
    this.#wanted = undefined;
    this.#lock.close();
  }

  async #drain(): Promise<void> {
    try {
      while (this.#wanted !== undefined) {
        const head = this.#wanted;
        this.#wanted = undefined;
        if (head.seq > this.#placed) await this.#write(head);
      }
    } catch (e) {
      this.#failure = new StorageError(`cannot update the anchor ${this.path}: ${message(e)}`, {
        cause: e,
      });
    } finally {
      this.#running = undefined;
    }
  }

  async #write(head: AnchorHead): Promise<void> {
    const temp = this.#claim();
    try {
      const bytes = encoder.encode(anchorText(this.#log, head, this.#signer));
      let at = 0;
      while (at < bytes.length) at += await temp.file.write(bytes.subarray(at));
      await temp.file.syncData();
    } catch (e) {
      this.#abandon(temp);
      throw e;
    }
    if (this.#closed) {
      this.#abandon(temp);
      return;
    }
    // `writeNow`, or another process, may have placed a newer head meanwhile: #place compares
    // and renames synchronously under the lock, so the anchor never goes back.
    if (!this.#place(temp, head)) return;
    this.#written = true;
    if (posix) {
      using dir = await Deno.open(this.#dir, { read: true });
      await dir.sync();
    }
  }

  /** Runs `fn` holding the anchor's lock. `fn` must be synchronous. */
  #locked<T>(fn: () => T): T {
    this.#lock.lock();
    try {
      return fn();
    } finally {
      this.#lock.unlock();
    }
  }

  /** A new temp file, locked before any clean-up (which holds the same lock) can see it. */
  #claim(): Temp {
    return this.#locked(() => {
      for (let attempt = 0;; attempt++) {
        const path = this.#tempName();
        let file: Deno.FsFile;
        try {
          file = Deno.openSync(path, { write: true, createNew: true, mode: 0o600 });
        } catch (e) {
          // A temp of an earlier process with this pid, still locked: take the next number.
          if (e instanceof Deno.errors.AlreadyExists && attempt < 100) continue;
          throw e;
        }
        try {
          file.lockSync(true);
        } catch (e) {
          file.close();
          Deno.removeSync(path);
          throw e;
        }
        return { path, file };
      }
    });
  }

  /**
   * Renames the temp over the anchor unless the anchor in place is already at `head` or later.
   * @returns whether it was placed
   */
  #place(temp: Temp, head: AnchorHead): boolean {
    try {
      return this.#locked(() => {
        const current = Math.max(this.#placed, this.#onDisk());
        if (head.seq <= current) {
          this.#placed = current;
          Deno.removeSync(temp.path);
          return false;
        }
        Deno.renameSync(temp.path, this.path);
        this.#placed = head.seq;
        return true;
      });
    } finally {
      temp.file.close();
    }
  }

  #abandon(temp: Temp): void {
    temp.file.close();
    try {
      Deno.removeSync(temp.path);
    } catch {
      // The write's failure is the one to report.
    }
  }

  /** The seq of the anchor in place now (0 when there is none, or it cannot be read as one). */
  #onDisk(): number {
    try {
      return parseAnchor(Deno.readTextFileSync(this.path)).seq;
    } catch {
      // Missing or unreadable: any head of ours is newer. A bad anchor was refused at start.
      return 0;
    }
  }

  #tempName(): string {
    return `${this.#dir}/.${basename(this.path)}.${Deno.pid}.${++this.#temps}.tmp`;
  }
}
