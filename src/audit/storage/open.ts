/**
 * Builds the configured store, so that the composition root makes one call: the JSONL log at
 * `audit.path` (through a symlink only with `audit.follow_symlinks`), with its anchor at
 * `audit.anchor.path` when one is set.
 *
 * @module
 */
import type { Config } from "../../config/config.ts";
import { ConfigError } from "../../config/load.ts";
import type { Logger } from "../../log.ts";
import type { Signer } from "../signing.ts";
import { AnchorFile } from "./anchor_file.ts";
import { RefusedPathError } from "./errors.ts";
import { JsonlStore } from "./jsonl.ts";

/** What the store needs from the rest of the program. */
export interface StoreDeps {
  /** The log's signer: the anchor is signed with it too. */
  signer: Signer | null;
  logger: Pick<Logger, "warn">;
}

/**
 * Opens the JSONL log the configuration names.
 * @throws {ConfigError} when `audit.path` or `audit.anchor.path` names something unusable
 *   (exit 2); nothing was changed on the way
 * @throws {StorageError} when the log cannot be opened, or disagrees with its anchor (exit 1)
 */
export function openJsonlStore(audit: Config["audit"], deps: StoreDeps): JsonlStore {
  try {
    const anchor = audit.anchor.path === ""
      ? undefined
      : new AnchorFile(audit.anchor.path, audit.path, deps.signer);
    return new JsonlStore(audit.path, audit.durability === "entry", {
      followSymlinks: audit.follow_symlinks,
      logger: deps.logger,
      ...(anchor === undefined ? {} : { anchor }),
    });
  } catch (e) {
    if (e instanceof RefusedPathError) throw new ConfigError(e.key, e.message);
    throw e;
  }
}
