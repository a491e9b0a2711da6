/** Stamped by scripts/release/stamp.ts when a release is built; "unknown" in a source checkout. */
export const BUILD_COMMIT = "unknown";
export const BUILD_DATE = "unknown";
