/**
 * Keeps the anchor file (see `../anchor.ts`) up to date: replaced whole, never edited in place
 * (temp file, fsync, rename, fsync of the directory), so that a crash leaves the old anchor or the
 * new one, never half of one.
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
import type { Signer } from "../signing.ts";
import { AnchorMismatchError, RefusedPathError, StorageError } from "./errors.ts";

const encoder = new TextEncoder();
const posix = Deno.build.os !== "windows";

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The anchor of one log. */
export class AnchorFile {
  /** Absolute path of the anchor. */
  readonly path: string;
  readonly #dir: string;
  readonly #log: string;
  readonly #signer: Signer | null;
  /** Seq of the anchor now in place; an older head never replaces it. */
  #placed = 0;
  /** The newest head waiting for the background writer. */
  #wanted: AnchorHead | undefined;
  /** The background writer, while it runs. */
  #running: Promise<void> | undefined;
  #failure: StorageError | undefined;
  #temps = 0;
  #written = false;

  /**
   * @param path the anchor's path (`audit.anchor.path`)
   * @param logPath the log it anchors; written into the anchor as an absolute path
   * @throws {RefusedPathError} when the path names something other than a file
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
    this.#removeStaleTemps();
  }

  /** Whether an anchor was written in this run: until then, writes are made synchronously. */
  get written(): boolean {
    return this.#written;
  }

  /**
   * A run that exited while a background write was in flight leaves its temp file behind (the
   * final anchor was written synchronously, so nothing is lost). An anchor belongs to one log and
   * one proxy, so the temps next to it are ours to remove.
   */
  #removeStaleTemps(): void {
    const prefix = `.${basename(this.path)}.`;
    try {
      for (const entry of Deno.readDirSync(this.#dir)) {
        if (entry.isFile && entry.name.startsWith(prefix) && entry.name.endsWith(".tmp")) {
          Deno.removeSync(`${this.#dir}/${entry.name}`);
        }
      }
    } catch {
      // Leftovers are untidy, not dangerous: the anchor itself is only ever renamed into place.
    }
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
      const parsed: unknown = JSON.parse(last);
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
    this.#placed = anchor.seq;
  }

  /** Raises a failure of the background writer. */
  check(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }

  /** Moves the anchor to `head` in the background; heads that arrive meanwhile are coalesced. */
  writeSoon(head: AnchorHead): void {
    if (head.seq <= this.#placed || this.#failure !== undefined) return;
    this.#wanted = head;
    this.#running ??= this.#drain();
  }

  /** Resolves when the background writer has nothing left to do (its failure is kept). */
  async settled(): Promise<void> {
    await this.#running;
  }

  /** Moves the anchor to `head` before returning (the last one of a run). */
  writeNow(head: AnchorHead): void {
    this.check();
    try {
      if (head.seq > this.#placed) {
        const temp = this.#tempName();
        const file = Deno.openSync(temp, { write: true, createNew: true, mode: 0o600 });
        try {
          const bytes = encoder.encode(anchorText(this.#log, head, this.#signer));
          let at = 0;
          while (at < bytes.length) at += file.writeSync(bytes.subarray(at));
          file.syncDataSync();
        } catch (e) {
          file.close();
          try {
            Deno.removeSync(temp);
          } catch {
            // The write's failure is the one to report.
          }
          throw e;
        }
        file.close();
        Deno.renameSync(temp, this.path);
        this.#placed = head.seq;
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
    const temp = this.#tempName();
    const file = await Deno.open(temp, { write: true, createNew: true, mode: 0o600 });
    try {
      const bytes = encoder.encode(anchorText(this.#log, head, this.#signer));
      let at = 0;
      while (at < bytes.length) at += await file.write(bytes.subarray(at));
      await file.syncData();
    } catch (e) {
      file.close();
      await Deno.remove(temp).catch(() => {});
      throw e;
    }
    file.close();
    // `writeNow` may have placed a newer head meanwhile. The check and the rename are synchronous,
    // so nothing runs between them and the anchor never goes back.
    if (head.seq <= this.#placed) {
      await Deno.remove(temp);
      return;
    }
    Deno.renameSync(temp, this.path);
    this.#placed = head.seq;
    this.#written = true;
    if (posix) {
      using dir = await Deno.open(this.#dir, { read: true });
      await dir.sync();
    }
  }

  #tempName(): string {
    return `${this.#dir}/.${basename(this.path)}.${Deno.pid}.${++this.#temps}.tmp`;
  }
}
