/**
 * The storage errors. Every one ends the run: the proxy forwards nothing it could not record.
 *
 * @module
 */

/** The log cannot be opened, written or made durable: a runtime failure (exit 1). */
export class StorageError extends Error {
  override name = "StorageError";
}

/**
 * What the configured path names cannot be used as the log (a symlink not allowed, a directory,
 * a FIFO, a file that is not an mcp-audit log). Nothing was changed on the way to this refusal.
 * The configuration is at fault, so the run ends with exit 2 naming `key`.
 */
export class RefusedPathError extends StorageError {
  override name = "RefusedPathError";
  constructor(
    readonly key: "audit.path" | "audit.sqlite_path" | "audit.anchor.path",
    message: string,
  ) {
    super(message);
  }
}

/**
 * The log and its anchor disagree at start: the log ends before the record the anchor names, or
 * holds another record there. Records were removed while the proxy was stopped; the proxy will not
 * write over that evidence.
 */
export class AnchorMismatchError extends StorageError {
  override name = "AnchorMismatchError";
}
