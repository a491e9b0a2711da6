/**
 * What a path names, for the stores' refusals and doctor's findings ("… is a FIFO, not a log
 * file"), and a look at a path that may not be there, without following a symlink at it.
 *
 * @module
 */

/**
 * What `stat` (from `lstat`) describes, as words after "is": "a symbolic link", "a directory",
 * "a FIFO", "a socket", "a device", "a file", or "not a regular file".
 *
 * @example
 * ```ts
 * import { fileKind } from "./file_kind.ts";
 * fileKind(Deno.lstatSync(".")); // "a directory"
 * ```
 */
export function fileKind(stat: Deno.FileInfo): string {
  if (stat.isSymlink) return "a symbolic link";
  if (stat.isDirectory) return "a directory";
  if (stat.isFifo) return "a FIFO";
  if (stat.isSocket) return "a socket";
  if (stat.isBlockDevice || stat.isCharDevice) return "a device";
  if (stat.isFile) return "a file";
  return "not a regular file";
}

/**
 * `Deno.lstatSync(path)`, or undefined when nothing is there: the path is missing, or one of its
 * folders is a file. Any other error (no permission, …) is thrown.
 */
export function lstatOrNothing(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.lstatSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) {
      return undefined;
    }
    throw e;
  }
}
