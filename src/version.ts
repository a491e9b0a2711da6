import { BUILD_COMMIT, BUILD_DATE } from "./build_info.ts";

/** The program's version, printed by `--version` and recorded in `audit/start`. */
export const VERSION = "0.1.0";
/** The audit record schema version (SPEC §3). */
export const SCHEMA_VERSION = 1;

/**
 * What `--version` prints, in the Go tool's words (declared stable there):
 * `mcp-audit <version> (commit <sha>, built <date>)`.
 *
 * @example
 * ```ts
 * import { versionLine } from "./version.ts";
 *
 * console.log(versionLine()); // mcp-audit 0.1.0 (commit unknown, built unknown)
 * ```
 */
export function versionLine(): string {
  return `mcp-audit ${VERSION} (commit ${BUILD_COMMIT}, built ${BUILD_DATE})`;
}
