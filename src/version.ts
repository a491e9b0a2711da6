/** The program's version, printed by `--version` and recorded in `audit/start`. */
export const VERSION = "0.1.0";
/** The audit record schema version (SPEC §3). */
export const SCHEMA_VERSION = 1;
