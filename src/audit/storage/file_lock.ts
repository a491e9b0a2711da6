/**
 * An exclusive advisory lock on a small, stable file next to the one it guards (`<log>.lock`,
 * `<anchor>.lock`), shared by every process that writes that file.
 *
 * The lock is `flock(2)` through `Deno.FsFile.lockSync`: it belongs to the open file, so two
 * `FileLock`s on one path exclude each other even inside one process, and the kernel releases it
 * when a holder dies (`kill -9` leaves no stale lock). The file itself is never written and never
 * deleted: deleting it while another process waits on it would let two writers in at once.
 *
 * Hold it only in synchronous sections (lock, work, unlock, with no `await` between): a process
 * that waited for the lock asynchronously while its own thread blocked in `lockSync` on another
 * handle would never run the code that unlocks.
 *
 * @example
 * ```ts
 * import { FileLock } from "./file_lock.ts";
 * const dir = Deno.makeTempDirSync();
 * using lock = new FileLock(`${dir}/audit.jsonl.lock`);
 * lock.lock();
 * try {
 *   // append under the lock
 * } finally {
 *   lock.unlock();
 * }
 * ```
 *
 * @module
 */
import { RefusedPathError, StorageError } from "./errors.ts";

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** An exclusive advisory lock on one file. */
export class FileLock implements Disposable {
  /** The lock file's path. */
  readonly path: string;
  #file: Deno.FsFile | undefined;
  #held = false;

  /**
   * Opens the lock file, creating it with mode 0600 when it is missing.
   * @param key the configuration key the guarded path comes from, for a refusal
   * @throws {RefusedPathError} when the path names a symlink, a directory or anything but a file
   * @throws {StorageError} when it cannot be opened or created
   */
  constructor(path: string, key: "audit.path" | "audit.anchor.path" = "audit.path") {
    this.path = path;
    let before: Deno.FileInfo | undefined;
    try {
      before = Deno.lstatSync(path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) {
        throw new StorageError(`cannot open the lock file ${path}: ${message(e)}`, { cause: e });
      }
    }
    if (before !== undefined && !before.isFile) {
      throw new RefusedPathError(
        key,
        `the lock file ${path} is ${
          before.isSymlink ? "a symbolic link" : "not a regular file"
        }; remove it or choose another path`,
      );
    }
    let file: Deno.FsFile;
    try {
      // Opened for writing because some systems grant exclusive locks only then; never written.
      file = Deno.openSync(path, { read: true, write: true, create: true, mode: 0o600 });
    } catch (e) {
      throw new StorageError(`cannot open the lock file ${path}: ${message(e)}`, { cause: e });
    }
    let opened: Deno.FileInfo;
    try {
      opened = file.statSync();
    } catch (e) {
      file.close();
      throw new StorageError(`cannot open the lock file ${path}: ${message(e)}`, { cause: e });
    }
    if (!opened.isFile) {
      file.close();
      throw new RefusedPathError(key, `the lock file ${path} is not a regular file`);
    }
    this.#file = file;
  }

  /** Whether this handle holds the lock. */
  get held(): boolean {
    return this.#held;
  }

  /**
   * Waits (blocking the thread) until the lock is this handle's.
   * @throws {StorageError} when the lock cannot be taken (or is closed)
   */
  lock(): void {
    const file = this.#open();
    if (this.#held) throw new StorageError(`the lock ${this.path} is already held`);
    try {
      file.lockSync(true);
    } catch (e) {
      throw new StorageError(`cannot lock ${this.path}: ${message(e)}`, { cause: e });
    }
    this.#held = true;
  }

  /**
   * Takes the lock if nobody holds it.
   * @returns whether it was taken
   * @throws {StorageError} when the lock cannot be tried (or is closed)
   */
  tryLock(): boolean {
    const file = this.#open();
    if (this.#held) return false;
    try {
      this.#held = file.tryLockSync(true);
    } catch (e) {
      throw new StorageError(`cannot lock ${this.path}: ${message(e)}`, { cause: e });
    }
    return this.#held;
  }

  /** Releases the lock if held. Never throws: closing the file releases it anyway. */
  unlock(): void {
    if (!this.#held) return;
    this.#held = false;
    try {
      this.#file?.unlockSync();
    } catch {
      // flock(2) locks die with the file; close() will release it if this did not.
    }
  }

  /** Releases the lock and the file. Idempotent. */
  close(): void {
    const file = this.#file;
    if (file === undefined) return;
    this.#file = undefined;
    this.#held = false;
    try {
      file.close();
    } catch {
      // Nothing was written to it; a failing close loses nothing.
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #open(): Deno.FsFile {
    if (this.#file === undefined) throw new StorageError(`the lock ${this.path} is closed`);
    return this.#file;
  }
}
