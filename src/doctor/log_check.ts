/**
 * Check 2, `log`: the audit log can be written where the configuration puts it, found without
 * writing to the log itself.
 *
 * - JSONL: a symlink at `audit.path` is refused unless `audit.follow_symlinks` (as the store does);
 *   the file, when it exists, is a regular file this user may append to (its mode and owner); its
 *   directory exists (the proxy does not create it) and takes a new file (a uniquely named probe
 *   created and removed: rotation, the lock file and archives need it).
 * - SQLite: no symlink at `audit.sqlite_path` (never followed); the database, when it exists, is
 *   writable by this user and opens read-only; its `-wal` and `-shm`, when present, are writable
 *   files; the directory takes a new file (SQLite makes the `-wal` and `-shm` there).
 *
 * Write permission is read from the mode bits for the owner, the primary group and others; a
 * file writable only through a secondary group is "cannot tell" (Deno does not list them), and a
 * warning.
 *
 * @module
 */
import { dirname, join, resolve } from "node:path";
import { fileKind, lstatOrNothing } from "../audit/storage/file_kind.ts";
import { openReadOnly } from "../audit/storage/sqlite_lines.ts";
import type { Config } from "../config/config.ts";
import { type CheckResult, message, result } from "./result.ts";

const MAX_SYMLINK_HOPS = 40;

/** Who we are, for reading mode bits; null where it cannot be known (Windows, no permission). */
export interface Identity {
  uid: number | null;
  gid: number | null;
}

/** This process's user and primary group, or nulls. */
export function ownIdentity(): Identity {
  try {
    return { uid: Deno.uid(), gid: Deno.gid() };
  } catch {
    return { uid: null, gid: null };
  }
}

/** Whether `who` may write the file `info` describes: true, false, or undefined (cannot tell). */
export function mayWrite(info: Deno.FileInfo, who: Identity): boolean | undefined {
  if (info.mode === null || who.uid === null) return undefined;
  if (who.uid === 0) return true;
  if (info.uid === who.uid) return (info.mode & 0o200) !== 0;
  if ((info.mode & 0o002) !== 0) return true;
  if (info.gid === who.gid) return (info.mode & 0o020) !== 0;
  // A secondary group may still grant it.
  return (info.mode & 0o020) !== 0 ? undefined : false;
}

function octal(mode: number | null): string {
  return mode === null ? "?" : `0${(mode & 0o777).toString(8)}`;
}

/** A problem found, as the check's failure. */
class Finding extends Error {
  override name = "Finding";
  constructor(readonly status: "fail" | "warn", detail: string, readonly fix: string) {
    super(detail);
  }
}

/** Creates and removes a uniquely named file in `dir`: true when that works. */
function probeDirectory(dir: string, key: string): void {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(dir);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Finding(
        "fail",
        `the directory ${dir} does not exist (the proxy does not create it)`,
        `mkdir -p ${dir}, or set ${key} to a path in an existing directory`,
      );
    }
    throw new Finding("fail", `cannot look at ${dir}: ${message(e)}`, `check ${dir}`);
  }
  if (!info.isDirectory) {
    throw new Finding("fail", `${dir} is ${fileKind(info)}, not a directory`, `set ${key}`);
  }
  const probe = join(dir, `.mcp-audit-doctor-${crypto.randomUUID()}`);
  try {
    Deno.openSync(probe, { write: true, createNew: true, mode: 0o600 }).close();
  } catch (e) {
    throw new Finding(
      "fail",
      `cannot create a file in ${dir}: ${message(e)}`,
      `give this user write permission on ${dir} (chown or chmod u+w), or set ${key} to a writable directory`,
    );
  }
  Deno.removeSync(probe);
}

/** A file the proxy appends to or opens for writing: a regular file this user may write. */
function checkWritableFile(path: string, info: Deno.FileInfo, who: Identity, key: string): void {
  if (!info.isFile) {
    throw new Finding(
      "fail",
      `${path} is ${fileKind(info)}, not a file`,
      `set ${key} to a file path`,
    );
  }
  const may = mayWrite(info, who);
  const owner = `mode ${octal(info.mode)}, owner uid ${info.uid ?? "?"}`;
  if (may === false) {
    throw new Finding(
      "fail",
      `${path} is not writable by uid ${who.uid} (${owner})`,
      `run the proxy as its owner, or chmod u+w / chown ${path}`,
    );
  }
  if (may === undefined && who.uid !== null) {
    throw new Finding(
      "warn",
      `cannot tell whether uid ${who.uid} may write ${path} (${owner}; group write through a secondary group?)`,
      `run the proxy as the file's owner`,
    );
  }
}

/** Where the JSONL store would write: the path, or with `follow` the end of its symlinks. */
function jsonlTarget(path: string, follow: boolean): { target: string; via: string } {
  let target = path;
  for (let hops = 0;; hops++) {
    const info = lstatOrNothing(target);
    if (info === undefined || !info.isSymlink) {
      return { target, via: target === path ? "" : ` → ${target}` };
    }
    if (!follow) {
      throw new Finding(
        "fail",
        `${path} is a symbolic link; the proxy refuses to write through it`,
        `set audit.follow_symlinks: true to log to the file it leads to, or set audit.path to the file itself`,
      );
    }
    if (hops >= MAX_SYMLINK_HOPS) {
      throw new Finding("fail", `${path}: too many levels of symbolic links`, `fix the links`);
    }
    target = resolve(dirname(target), Deno.readLinkSync(target));
  }
}

function checkJsonl(audit: Config["audit"], who: Identity): string {
  const { target, via } = jsonlTarget(audit.path, audit.follow_symlinks);
  const info = lstatOrNothing(target);
  let state = "not created yet";
  if (info !== undefined) {
    checkWritableFile(target, info, who, "audit.path");
    state = `${info.size} bytes, appendable`;
  }
  const lock = lstatOrNothing(`${target}.lock`);
  if (lock !== undefined) checkWritableFile(`${target}.lock`, lock, who, "audit.path");
  probeDirectory(dirname(resolve(target)), "audit.path");
  return `${audit.path}${via} (jsonl; ${state}; directory writable)`;
}

/**
 * Opens the database read-only and reads its schema, leaving nothing beside it (no `-wal` or
 * `-shm`: {@link openReadOnly}); read again normally when a writer started meanwhile.
 */
function opens(path: string): void {
  for (const immutable of [true, false]) {
    const ro = openReadOnly(path, immutable);
    try {
      ro.db.prepare("SELECT count(*) AS n FROM sqlite_master").get();
      if (!ro.written()) return;
    } finally {
      ro.db.close();
    }
  }
}

function checkSqlite(audit: Config["audit"], who: Identity): string {
  const path = audit.sqlite_path;
  const info = lstatOrNothing(path);
  let state = "not created yet";
  if (info !== undefined) {
    if (info.isSymlink) {
      throw new Finding(
        "fail",
        `${path} is a symbolic link; the proxy refuses to open a database through one`,
        "set audit.sqlite_path to the database file itself",
      );
    }
    checkWritableFile(path, info, who, "audit.sqlite_path");
    for (const suffix of ["-wal", "-shm"]) {
      const side = lstatOrNothing(`${path}${suffix}`);
      if (side !== undefined) checkWritableFile(`${path}${suffix}`, side, who, "audit.sqlite_path");
    }
    try {
      opens(path);
    } catch (e) {
      throw new Finding(
        "fail",
        `${path} does not open as a SQLite database: ${message(e)}`,
        `check that audit.sqlite_path names an mcp-audit database (mcp-audit verify ${path})`,
      );
    }
    state = `${info.size} bytes, writable, opens`;
  }
  probeDirectory(dirname(resolve(path)), "audit.sqlite_path");
  return `${path} (sqlite; ${state}; directory writable)`;
}

/**
 * Checks that the configured log can be written, creating nothing but a probe file it removes.
 *
 * @example
 * ```ts
 * const r = checkLog(config.audit, ownIdentity());
 * if (r.status === "fail") console.log(r.detail, r.fix);
 * ```
 */
export function checkLog(audit: Config["audit"], who: Identity): CheckResult {
  try {
    const detail = audit.storage === "sqlite" ? checkSqlite(audit, who) : checkJsonl(audit, who);
    return result("log", "ok", detail);
  } catch (e) {
    if (e instanceof Finding) return result("log", e.status, e.message, { fix: e.fix });
    const path = audit.storage === "sqlite" ? audit.sqlite_path : audit.path;
    return result("log", "fail", `cannot look at ${path}: ${message(e)}`, {
      fix: `check the permissions along ${path}`,
    });
  }
}
