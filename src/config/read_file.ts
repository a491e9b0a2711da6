/**
 * Reading the configuration file: the one named by `--config`, else `./config.yaml` when present.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import { ConfigError } from "./load.ts";

/** A configuration file's path and text. */
export interface ConfigFile {
  path: string;
  text: string;
}

/**
 * Reads `path`, or `./config.yaml` when no path is given (a missing or unreadable default file is
 * no file at all).
 * @throws {ConfigError} when a named file cannot be read
 */
export function readConfigFile(path: string | undefined, logger: Logger): ConfigFile | undefined {
  const chosen = path ?? "config.yaml";
  try {
    return { path: chosen, text: Deno.readTextFileSync(chosen) };
  } catch (e) {
    if (path === undefined && e instanceof Deno.errors.NotFound) return undefined;
    if (path === undefined && e instanceof Deno.errors.NotCapable) {
      // Run with --allow-read limited to other paths: the default file is simply not ours to read.
      logger.debug("./config.yaml is outside the read permission; not reading it");
      return undefined;
    }
    throw new ConfigError(`--config ${chosen}`, `cannot read: ${(e as Error).message}`);
  }
}
