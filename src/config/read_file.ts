/**
 * Reading the configuration file: the one named by `--config`, else `./config.yaml` when present.
 * Only a regular file is read, and at most {@link MAX_CONFIG_BYTES} of it: a FIFO would block the
 * whole process until a writer came (at a reload, a running proxy), and `/dev/zero` never ends.
 *
 * @module
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats, statSync } from "node:fs";
import type { Logger } from "../log.ts";
import { ConfigError } from "./load.ts";

/** A configuration file's path and text. */
export interface ConfigFile {
  path: string;
  text: string;
}

/** The largest configuration file read: far above any real one, far below harm. */
export const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

/** A path that names no regular file, or one too large to be what it should be. */
export class NotReadableFileError extends Error {
  override name = "NotReadableFileError";
}

/** What a file that is not a regular file is, for a message. */
function kindOf(info: Stats): string {
  if (info.isDirectory()) return "a directory";
  if (info.isFIFO()) return "a named pipe (FIFO)";
  if (info.isCharacterDevice()) return "a character device";
  if (info.isBlockDevice()) return "a block device";
  if (info.isSocket()) return "a socket";
  return "not a regular file";
}

/**
 * The text of the regular file at `path` (a link is followed), read whole when it is at most
 * `maxBytes`. A path that names anything else (a FIFO, a device, a directory) is refused without
 * being opened; the file is opened without blocking and checked again once open.
 * @throws {NotReadableFileError} naming what the path is, or the file's size
 * @throws the system's error (`code` `ENOENT`, `EACCES`, …; Deno's `NotCapable`) when it cannot
 *   be opened
 */
export function readRegularFile(path: string, maxBytes = MAX_CONFIG_BYTES): string {
  return new TextDecoder().decode(readRegularBytes(path, maxBytes));
}

/**
 * The bytes of the regular file at `path`, as {@link readRegularFile} reads them (nothing but a
 * regular file, at most `maxBytes`), for readers that must see every byte (a byte order mark).
 * @throws {NotReadableFileError} naming what the path is, or the file's size
 * @throws the system's error when it cannot be opened
 */
export function readRegularBytes(path: string, maxBytes = MAX_CONFIG_BYTES): Uint8Array {
  // Looked at before opening: opening a FIFO, even without blocking, lets a writer waiting on it
  // go on, into nothing. Then opened without blocking (O_NONBLOCK is 0 where the platform has
  // none: Windows, which has no FIFOs to open this way) and checked again on the open file, so a
  // FIFO swapped in between is refused too, and never waited on.
  const before = statSync(path);
  if (!before.isFile()) throw new NotReadableFileError(`${path} is ${kindOf(before)}, not a file`);
  const fd = openSync(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  try {
    const info = fstatSync(fd);
    if (!info.isFile()) throw new NotReadableFileError(`${path} is ${kindOf(info)}, not a file`);
    const tooLarge = (size: string) =>
      new NotReadableFileError(
        `${path} is ${size} bytes; a configuration file is at most ${maxBytes} bytes`,
      );
    if (info.size > maxBytes) throw tooLarge(String(info.size));
    // Read to the end, not to the size fstat gave: the file may be growing. Never past the bound.
    const parts: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const chunk = new Uint8Array(64 * 1024);
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      size += n;
      if (size > maxBytes) throw tooLarge(`over ${maxBytes}`);
      parts.push(chunk.subarray(0, n));
    }
    const bytes = new Uint8Array(size);
    let at = 0;
    for (const part of parts) {
      bytes.set(part, at);
      at += part.length;
    }
    return bytes;
  } finally {
    closeSync(fd);
  }
}

/** The system error's code (`ENOENT`, …), if it has one. */
export function errorCode(e: unknown): unknown {
  return typeof e === "object" && e !== null && "code" in e ? e.code : undefined;
}

/**
 * Reads `path`, or `./config.yaml` when no path is given (a missing or unreadable default file is
 * no file at all; one that is there but no regular file, or too large, is an error).
 * @throws {ConfigError} when a named file cannot be read, or either is not a regular file
 */
export function readConfigFile(path: string | undefined, logger: Logger): ConfigFile | undefined {
  const chosen = path ?? "config.yaml";
  try {
    return { path: chosen, text: readRegularFile(chosen) };
  } catch (e) {
    const missing = e instanceof Deno.errors.NotFound || errorCode(e) === "ENOENT";
    if (path === undefined && missing) return undefined;
    if (path === undefined && e instanceof Deno.errors.NotCapable) {
      // Run with --allow-read limited to other paths: the default file is simply not ours to read.
      logger.debug("./config.yaml is outside the read permission; not reading it");
      return undefined;
    }
    const flag = path === undefined ? "./config.yaml" : `--config ${chosen}`;
    throw new ConfigError(flag, `cannot read: ${e instanceof Error ? e.message : String(e)}`);
  }
}
