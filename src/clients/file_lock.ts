/**
 * An exclusive lock on a client's configuration file while `wrap` or `unwrap` edits it, so that
 * two runs at once cannot both read the old text and the second rename drop the first run's edit.
 * The lock is a file `<path>.mcp-audit-lock` created only if absent (the file system decides who
 * has it), holding the holder's pid, host and start time; it is removed when the edit is done.
 *
 * A second run waits a few seconds (a bounded number of attempts, each a little later) and then
 * gives up with the holder named. A lock left by a run that died is broken: when its holder ran
 * on this host and its pid is gone (checked where `/proc` tells), or when it is older than ten
 * minutes (an edit takes milliseconds). A client writing the file meanwhile takes no lock; the
 * last check before the rename catches it (see `replaceFileAtomically`).
 *
 * @example
 * ```ts
 * import { lockFile } from "./file_lock.ts";
 *
 * using lock = await lockFile("/home/me/.cursor/mcp.json");
 * // read, edit, replace; the lock is removed when `lock` goes out of scope
 * ```
 *
 * @module
 */
import { parseJson } from "../jsonrpc/json.ts";

/** Why a lock was not taken: busy (another run holds it), denied (a read-only folder), failed. */
export class LockError extends Error {
  override name = "LockError";
  constructor(
    readonly kind: "busy" | "denied" | "failed",
    readonly path: string,
    readonly reason: string,
  ) {
    super(`${path}: ${reason}`);
  }
}

/** How {@link lockFile} waits and decides a lock is stale. */
export interface LockOptions {
  /** Attempts to take a busy lock before giving up (default 30, about six seconds). */
  attempts?: number;
  /** A lock older than this is stale (default ten minutes). */
  staleMs?: number;
  /** Now, in milliseconds since the epoch. */
  now?: () => number;
  /** Waits before the next attempt (`attempt` counts from 0). */
  wait?: (attempt: number) => Promise<void>;
  /** Whether process `pid` runs on this host: undefined when that cannot be told. */
  pidAlive?: (pid: number) => boolean | undefined;
}

/** The suffix of a lock's name. */
export const LOCK_SUFFIX = ".mcp-audit-lock";

const DEFAULT_ATTEMPTS = 30;
const DEFAULT_STALE_MS = 10 * 60 * 1000;
/** The largest lock file read: it holds one short line. */
const MAX_LOCK_BYTES = 4096;

/** A lock held; {@link FileLock.release} (or leaving a `using` scope) removes it. */
export class FileLock implements Disposable {
  #released = false;
  constructor(readonly path: string, readonly lockPath: string, readonly content: string) {}

  /** Removes the lock file, if it is still this lock's (a stale-lock breaker may have taken it). */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    if (readSmall(this.lockPath) !== this.content) return;
    try {
      Deno.removeSync(this.lockPath);
    } catch {
      // Gone already: nothing to release.
    }
  }

  [Symbol.dispose](): void {
    this.release();
  }
}

/** The holder a lock file names. */
interface Holder {
  pid: number;
  host: string | undefined;
  since: string;
}

function hostName(): string | undefined {
  try {
    return Deno.hostname();
  } catch {
    return undefined;
  }
}

function readSmall(path: string): string | undefined {
  try {
    const bytes = Deno.readFileSync(path);
    if (bytes.length > MAX_LOCK_BYTES) return undefined;
    return new TextDecoder().decode(bytes);
  } catch {
    return undefined;
  }
}

function holderOf(text: string | undefined): Holder | undefined {
  if (text === undefined) return undefined;
  let value: unknown;
  try {
    value = parseJson(text);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  const pid: unknown = Reflect.get(value, "pid");
  const host: unknown = Reflect.get(value, "host");
  const since: unknown = Reflect.get(value, "since");
  if (typeof pid !== "number" || !Number.isSafeInteger(pid) || typeof since !== "string") {
    return undefined;
  }
  return { pid, host: typeof host === "string" ? host : undefined, since };
}

/** Linux tells through /proc whether a pid runs; elsewhere this cannot tell (undefined). */
function procPidAlive(pid: number): boolean | undefined {
  if (Deno.build.os !== "linux") return undefined;
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch (e) {
    return e instanceof Deno.errors.NotFound ? false : undefined;
  }
}

function defaultWait(attempt: number): Promise<void> {
  const ms = Math.min(250, 10 * 2 ** attempt);
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Takes the lock of `path` (whose folder the lock is created in).
 * @throws {LockError} `busy` when another run holds it after every attempt, `denied` when the
 * folder cannot be written, `failed` otherwise
 */
export async function lockFile(path: string, options: LockOptions = {}): Promise<FileLock> {
  const lockPath = path + LOCK_SUFFIX;
  const attempts = options.attempts ?? DEFAULT_ATTEMPTS;
  const staleMs = options.staleMs ?? DEFAULT_STALE_MS;
  const now = options.now ?? Date.now;
  const wait = options.wait ?? defaultWait;
  const pidAlive = options.pidAlive ?? procPidAlive;
  const host = hostName();
  const content = JSON.stringify({
    pid: Deno.pid,
    host,
    since: new Date(now()).toISOString(),
    nonce: crypto.randomUUID(),
  }) + "\n";
  let holder: Holder | undefined;
  for (let attempt = 0; attempt < attempts; attempt++) {
    try {
      Deno.writeTextFileSync(lockPath, content, { createNew: true, mode: 0o600 });
      return new FileLock(path, lockPath, content);
    } catch (e) {
      if (e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.NotCapable) {
        throw new LockError(
          "denied",
          path,
          `cannot create ${lockPath} (the folder is read-only, or not ours): ${
            (e as Error).message
          }`,
        );
      }
      if (!(e instanceof Deno.errors.AlreadyExists)) {
        throw new LockError("failed", path, `cannot create ${lockPath}: ${(e as Error).message}`);
      }
    }
    const text = readSmall(lockPath);
    holder = holderOf(text) ?? holder;
    if (isStale(lockPath, holderOf(text), host, now(), staleMs, pidAlive)) {
      try {
        Deno.removeSync(lockPath);
      } catch {
        // Another run broke it first.
      }
      continue;
    }
    if (attempt + 1 < attempts) await wait(attempt);
  }
  const who = holder === undefined
    ? "another run"
    : `another run (pid ${holder.pid}${
      holder.host === undefined ? "" : ` on ${holder.host}`
    }, since ${holder.since})`;
  throw new LockError(
    "busy",
    path,
    `${who} of mcp-audit wrap or unwrap is editing it; nothing written. Run again when it is ` +
      `done, or remove ${lockPath} if no such run is going on`,
  );
}

/** A lock whose holder died on this host, or that is older than `staleMs`. */
function isStale(
  lockPath: string,
  holder: Holder | undefined,
  host: string | undefined,
  now: number,
  staleMs: number,
  pidAlive: (pid: number) => boolean | undefined,
): boolean {
  if (
    holder !== undefined && host !== undefined && holder.host === host &&
    pidAlive(holder.pid) === false
  ) {
    return true;
  }
  let mtime: number | undefined;
  try {
    mtime = Deno.statSync(lockPath).mtime?.getTime();
  } catch {
    return false;
  }
  return mtime !== undefined && now - mtime > staleMs;
}
