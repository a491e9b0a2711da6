/**
 * Reading and safely replacing an MCP client's configuration file: the client may be writing it at
 * the same moment, and a half-written or lost configuration must never be the result.
 *
 * A replacement writes a backup first, then the new text to a temporary file beside the original
 * (same mode, same owner), checks once more that nobody changed the original meanwhile, and renames
 * the temporary file over it: a reader sees the old file or the new one, never a mix. On Windows,
 * `Deno.rename` replaces the file as well (it fails if another program holds the file open without
 * sharing it, and the error says so).
 *
 * @module
 */
import { basename, dirname } from "node:path";
import {
  errorCode,
  MAX_CONFIG_BYTES,
  NotReadableFileError,
  readRegularBytes,
} from "../config/read_file.ts";

/** Largest configuration file read (the configuration reader's bound): a client's file is kilobytes. */
export { MAX_CONFIG_BYTES };

/** A configuration file that could not be read as text. */
export class ConfigReadError extends Error {
  override name = "ConfigReadError";
  constructor(readonly path: string, readonly reason: string) {
    super(`${path}: ${reason}`);
  }
}

/** A configuration file that was not replaced; the reason says why and that nothing was written. */
export class ConfigWriteError extends Error {
  override name = "ConfigWriteError";
  constructor(readonly path: string, readonly reason: string) {
    super(`${path}: ${reason}`);
  }
}

/** The reason given when the file changed between reading and replacing it. */
export const CHANGED_REASON =
  "changed while we edited it (the client wrote it?); nothing written, run again";

/** How {@link replaceFileAtomically} replaces. */
export interface ReplaceOptions {
  /** The backup's name is the file's path plus this (default `.mcp-audit-backup-<UTC yyyymmddThhmmssZ>`). */
  backupSuffix?: string;
  /** Write a backup first (default true). */
  backup?: boolean;
  /** The clock for the backup's name. */
  now?: () => Date;
  /**
   * Runs when the new text is on disk beside the file, just before the last check that the file is
   * unchanged: where a client writing the file at the same moment is caught (tests play one here).
   */
  beforeRename?: () => Promise<void>;
}

/**
 * Reads a configuration file's text exactly: a byte order mark is kept (the parser notes it and the
 * edit writes it back), and bytes that are not UTF-8 are refused rather than replaced, since writing
 * the text back would change them.
 *
 * @throws {ConfigReadError} when the file is missing, unreadable, not a file, too large or not UTF-8
 */
export async function readConfigText(path: string, maxBytes = MAX_CONFIG_BYTES): Promise<string> {
  try {
    return decode(path, await readBounded(path, maxBytes));
  } catch (e) {
    if (e instanceof ConfigReadError) throw e;
    throw new ConfigReadError(path, describe(e, "cannot be read"));
  }
}

/**
 * Replaces the file at `path` (a symbolic link is followed: its target is replaced, see below) with
 * `next`, if its text is still `expected` (what was read before editing, as
 * {@link readConfigText} gave it). Writes nothing and returns no backup when `next` is `expected`.
 *
 * A symbolic link stays a link: replacing the link itself would turn it into a plain file and
 * silently detach the configuration from where it lives (a dotfiles repository, say). The backup
 * is written beside the target, the file whose bytes it holds.
 *
 * @example
 * ```ts
 * const text = await readConfigText(path);
 * const { backupPath } = await replaceFileAtomically(path, text, edited);
 * ```
 * @throws {ConfigWriteError} when the file changed meanwhile, is read-only, its directory is
 * read-only, or any step fails; the original is then untouched and no temporary file is left
 */
export async function replaceFileAtomically(
  path: string,
  expected: string,
  next: string,
  options: ReplaceOptions = {},
): Promise<{ backupPath: string | undefined }> {
  const fail = (reason: string): ConfigWriteError => new ConfigWriteError(path, reason);
  let target: string;
  let info: Deno.FileInfo;
  let current: Uint8Array;
  try {
    target = await Deno.realPath(path);
    info = await Deno.stat(target);
    if (!info.isFile) throw fail("is not a regular file; nothing written");
    current = await readBounded(target, MAX_CONFIG_BYTES);
  } catch (e) {
    if (e instanceof ConfigWriteError) throw e;
    throw fail(describe(e, "cannot be read") + "; nothing written");
  }
  if (!sameText(path, current, expected)) throw fail(CHANGED_REASON);
  if (next === expected) return { backupPath: undefined };

  const dir = dirname(target);
  const mode = info.mode === null ? undefined : info.mode & 0o777;
  if (mode !== undefined && (mode & 0o222) === 0) {
    throw fail(
      `is read-only (mode ${octal(mode)}); nothing written. ` +
        "Make it writable (chmod u+w) if mcp-audit should edit it",
    );
  }
  await checkDirectory(dir, fail);
  try {
    // The permission bits may not tell (an ACL, a read-only mount): opening for writing does.
    (await Deno.open(target, { write: true })).close();
  } catch (e) {
    throw fail(describe(e, "cannot be written") + "; nothing written");
  }

  let backupPath: string | undefined;
  let temp: string | undefined;
  try {
    if (options.backup !== false) {
      const suffix = options.backupSuffix ?? `.mcp-audit-backup-${stamp((options.now ?? now)())}`;
      backupPath = await writeNew(`${target}${suffix}`, current, info);
    }
    temp = await writeNew(
      `${dir}/.${basename(target)}.mcp-audit-${crypto.randomUUID().slice(0, 8)}.tmp`,
      new TextEncoder().encode(next),
      info,
    );
    await options.beforeRename?.();
    if (!sameText(path, await readBounded(target, MAX_CONFIG_BYTES), expected)) {
      throw fail(CHANGED_REASON);
    }
    await Deno.rename(temp, target);
    temp = undefined;
  } catch (e) {
    if (temp !== undefined) await removeQuietly(temp);
    if (backupPath !== undefined) await removeQuietly(backupPath);
    if (e instanceof ConfigWriteError) throw e;
    throw fail(describe(e, `cannot be replaced (in ${dir})`) + "; nothing written");
  }
  await syncDirectory(dir);
  return { backupPath };
}

/** Whether the file's bytes are the text `expected` (bytes that are not UTF-8 never are). */
function sameText(path: string, bytes: Uint8Array, expected: string): boolean {
  try {
    return decode(path, bytes) === expected;
  } catch {
    return false;
  }
}

function decode(path: string, bytes: Uint8Array): string {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new ConfigReadError(
      path,
      "is not UTF-8 text; it cannot be edited without changing bytes in it",
    );
  }
}

/** The file's bytes, refusing a file larger than `maxBytes` without reading past it. */
/**
 * The file's bytes, when it is a regular file of at most `maxBytes` (a FIFO is refused before it
 * is opened, so it is never waited on), as the configuration reader reads its own file.
 */
function readBounded(path: string, maxBytes: number): Promise<Uint8Array> {
  try {
    return Promise.resolve(readRegularBytes(path, maxBytes));
  } catch (e) {
    if (e instanceof NotReadableFileError) {
      return Promise.reject(new ConfigReadError(path, e.message.replace(`${path} `, "")));
    }
    return Promise.reject(e);
  }
}

/** Refuses a directory that cannot take a temporary file beside the original. */
async function checkDirectory(
  dir: string,
  fail: (reason: string) => ConfigWriteError,
): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(dir);
  } catch (e) {
    throw fail(describe(e, `its directory ${dir} cannot be read`) + "; nothing written");
  }
  if (info.mode !== null && (info.mode & 0o222) === 0) {
    throw fail(
      `its directory ${dir} is read-only (mode ${octal(info.mode & 0o777)}), so the new file ` +
        "cannot be written beside it and renamed over it; nothing written",
    );
  }
}

/**
 * Writes `bytes` to a new file at `path` (or, for a backup taken, `path-2`, `path-3`, …) with the
 * original's mode and owner, flushed to disk. Returns the path written.
 */
async function writeNew(path: string, bytes: Uint8Array, original: Deno.FileInfo): Promise<string> {
  for (let attempt = 1; attempt <= 100; attempt++) {
    const candidate = attempt === 1 ? path : `${path}-${attempt}`;
    let file: Deno.FsFile;
    try {
      file = await Deno.open(candidate, { write: true, createNew: true, mode: 0o600 });
    } catch (e) {
      if (e instanceof Deno.errors.AlreadyExists) continue;
      throw e;
    }
    try {
      // Mode and owner before the content, so the bytes are never readable more widely than the
      // original's.
      if (original.mode !== null) await Deno.chmod(candidate, original.mode & 0o777);
      await matchOwner(candidate, file, original);
      let at = 0;
      while (at < bytes.length) at += await file.write(bytes.subarray(at));
      await file.sync();
    } catch (e) {
      file.close();
      await removeQuietly(candidate);
      throw e;
    }
    file.close();
    return candidate;
  }
  throw new Error(`${path} and 99 numbered names after it are taken`);
}

/** Gives the new file the original's owner, as a replacement should; refuses if that fails. */
async function matchOwner(path: string, file: Deno.FsFile, original: Deno.FileInfo): Promise<void> {
  if (original.uid === null || original.gid === null) return;
  const made = await file.stat();
  if (made.uid === original.uid && made.gid === original.gid) return;
  try {
    await Deno.chown(path, original.uid, original.gid);
  } catch (e) {
    throw new Error(
      `the file belongs to user ${original.uid}, group ${original.gid}, and a file written in its ` +
        `place cannot be given that owner (${messageOf(e)}); run as its owner`,
    );
  }
}

/** Flushes the directory's entry for the renamed file, where the platform allows (not Windows). */
async function syncDirectory(dir: string): Promise<void> {
  try {
    using handle = await Deno.open(dir, { read: true });
    await handle.sync();
  } catch {
    // Best effort: the rename is done; a directory that cannot be opened or flushed loses nothing.
  }
}

async function removeQuietly(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch {
    // Already gone, or never made: nothing to clean.
  }
}

function now(): Date {
  return new Date();
}

/** `yyyymmddThhmmssZ`, in UTC. */
function stamp(date: Date): string {
  return date.toISOString().replace(/\.\d+Z$/, "Z").replace(/[-:]/g, "");
}

function octal(mode: number): string {
  return "0" + mode.toString(8).padStart(3, "0");
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A reason for a failed step: the common causes in words, else the system's message. */
function describe(e: unknown, what: string): string {
  if (e instanceof ConfigReadError) return e.reason;
  // Deno's errors, or node:fs's (the bounded reader), which carry the system's code instead.
  const code = errorCode(e);
  if (e instanceof Deno.errors.NotFound || code === "ENOENT") return "does not exist";
  if (e instanceof Deno.errors.PermissionDenied || code === "EACCES" || code === "EPERM") {
    return `${what}: permission denied`;
  }
  if (e instanceof Deno.errors.NotCapable) {
    return `${what}: outside the paths this process may use (${messageOf(e)})`;
  }
  return `${what}: ${messageOf(e)}`;
}
