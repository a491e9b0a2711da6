/**
 * An exclusive advisory lock on a small, stable file next to the one it guards (`<log>.lock`,
 * `<anchor>.lock`), shared by every process that writes that file.
 *
 * The lock is `flock(2)` through `Deno.FsFile.lockSync`: it belongs to the open file, so two
 * `FileLock`s on one path exclude each other even inside one process, and the kernel releases it
 * when a holder dies (`kill -9` leaves no stale lock). The file itself is never written and never
 * deleted by us. Should something else delete or replace it, a process opening the path then
 * locks another file than those that opened it before: so each lock, once taken, checks that the
 * path still names the file locked (device and inode), and if not lets it go and locks the file
 * at the path instead. Every holder thus meets on one file from its next lock on; a batch under
 * way on the old file when it was deleted still overlaps the first batch on the new one.
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

// Times the lock file may be found deleted or replaced, one lock after another, before giving up.
const MAX_REOPEN = 16;

function sameFile(a: Deno.FileInfo, b: Deno.FileInfo): boolean {
  // Without inode numbers (Windows) there is nothing to compare.
  if (a.dev === null || a.ino === null || b.dev === null || b.ino === null) return true;
  return a.dev === b.dev && a.ino === b.ino;
}

/** The lock file could not be made because its directory is gone. */
function directoryGone(e: unknown): boolean {
  return e instanceof StorageError && !(e instanceof RefusedPathError) &&
    e.cause instanceof Deno.errors.NotFound;
}

function closeQuietly(file: Deno.FsFile): void {
  try {
    file.close();
  } catch {
    // Nothing was written to it; closing releases its lock, or the process's end does.
  }
}

/** An exclusive advisory lock on one file. */
export class FileLock implements Disposable {
  /** The lock file's path. */
  readonly path: string;
  readonly #key: "audit.path" | "audit.anchor.path";
  #file: Deno.FsFile | undefined;
  /** The open file's device and inode, as opened (they never change while it is open). */
  #opened: Deno.FileInfo | undefined;
  #held = false;

  /**
   * Opens the lock file, creating it with mode 0600 when it is missing.
   * @param key the configuration key the guarded path comes from, for a refusal
   * @throws {RefusedPathError} when the path names a symlink, a directory or anything but a file
   * @throws {StorageError} when it cannot be opened or created
   */
  constructor(path: string, key: "audit.path" | "audit.anchor.path" = "audit.path") {
    this.path = path;
    this.#key = key;
    [this.#file, this.#opened] = this.#openFile();
  }

  /** Opens (or creates) the file at the path, refusing anything but a regular file. */
  #openFile(): [Deno.FsFile, Deno.FileInfo] {
    const path = this.path;
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
        this.#key,
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
      throw new RefusedPathError(this.#key, `the lock file ${path} is not a regular file`);
    }
    return [file, opened];
  }

  /** Whether this handle holds the lock. */
  get held(): boolean {
    return this.#held;
  }

  /**
   * Waits (blocking the thread) until the lock is this handle's. When the lock file was deleted
   * or replaced since it was opened, the lock taken is on a file others no longer open: it is let
   * go, and the file now at the path opened and locked instead.
   * @throws {StorageError} when the lock cannot be taken (or is closed)
   */
  lock(): void {
    if (this.#held) throw new StorageError(`the lock ${this.path} is already held`);
    this.#take((file) => {
      file.lockSync(true);
      return true;
    });
  }

  /**
   * Takes the lock if nobody holds it (on the file at the path now, as {@link lock}).
   * @returns whether it was taken
   * @throws {StorageError} when the lock cannot be tried (or is closed)
   */
  tryLock(): boolean {
    if (this.#held) return false;
    return this.#take((file) => file.tryLockSync(true));
  }

  /**
   * Locks with `how`, then checks that the path still names the file locked: a lock on a file
   * deleted or replaced (a cleanup, an attacker) excludes nobody who opens the path afresh.
   */
  #take(how: (file: Deno.FsFile) => boolean): boolean {
    for (let attempt = 0;; attempt++) {
      const file = this.#open();
      let locked: boolean;
      try {
        locked = how(file);
      } catch (e) {
        throw new StorageError(`cannot lock ${this.path}: ${message(e)}`, { cause: e });
      }
      if (!locked) return false;
      let current: boolean;
      try {
        current = this.#stillAtPath();
      } catch (e) {
        this.#release(file);
        throw e;
      }
      if (current) {
        this.#held = true;
        return true;
      }
      if (attempt >= MAX_REOPEN) {
        this.close();
        throw new StorageError(
          `cannot lock ${this.path}: the lock file was deleted or replaced ${MAX_REOPEN} times ` +
            "in a row while it was being taken",
        );
      }
      // Let the stale file go (closing releases its lock) and take the one at the path.
      let replacement: [Deno.FsFile, Deno.FileInfo];
      try {
        replacement = this.#openFile();
      } catch (e) {
        if (directoryGone(e)) {
          // Nobody can open a lock file there any more; the old one still excludes everyone who
          // has it open, and what the lock guards (in that directory too) is found gone next.
          this.#held = true;
          return true;
        }
        this.#file = undefined;
        this.#opened = undefined;
        closeQuietly(file);
        throw e;
      }
      [this.#file, this.#opened] = replacement;
      closeQuietly(file);
    }
  }

  /** Whether the path names the open file (same device and inode as when it was opened). */
  #stillAtPath(): boolean {
    let now: Deno.FileInfo;
    try {
      now = Deno.lstatSync(this.path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return false;
      throw new StorageError(`cannot check the lock file ${this.path}: ${message(e)}`, {
        cause: e,
      });
    }
    return now.isFile && this.#opened !== undefined && sameFile(now, this.#opened);
  }

  /** Releases the lock if held. Never throws: closing the file releases it anyway. */
  unlock(): void {
    if (!this.#held) return;
    this.#held = false;
    if (this.#file !== undefined) this.#release(this.#file);
  }

  #release(file: Deno.FsFile): void {
    try {
      file.unlockSync();
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
