/**
 * The release targets: each `deno compile --target` triple with the Go tool's `<os>_<arch>` names,
 * which its archive names use (`mcp-audit_1.0.0_linux_amd64.tar.gz`), so that download scripts
 * written for the Go tool find ours.
 *
 * @module
 */

/** One release target. */
export interface Target {
  /** The `deno compile --target` triple. */
  triple: string;
  /** The Go name of the OS: linux, darwin, windows. */
  os: "linux" | "darwin" | "windows";
  /** The Go name of the CPU: amd64, arm64. */
  arch: "amd64" | "arm64";
  /** The binary's extension: `.exe` on Windows. */
  exe: "" | ".exe";
  /** The archive's format: zip on Windows, as the Go tool publishes. */
  format: "tar.gz" | "zip";
}

/** Every target a release builds, in a fixed order. */
export const TARGETS: readonly Target[] = [
  { triple: "x86_64-unknown-linux-gnu", os: "linux", arch: "amd64", exe: "", format: "tar.gz" },
  { triple: "aarch64-unknown-linux-gnu", os: "linux", arch: "arm64", exe: "", format: "tar.gz" },
  { triple: "x86_64-apple-darwin", os: "darwin", arch: "amd64", exe: "", format: "tar.gz" },
  { triple: "aarch64-apple-darwin", os: "darwin", arch: "arm64", exe: "", format: "tar.gz" },
  { triple: "x86_64-pc-windows-msvc", os: "windows", arch: "amd64", exe: ".exe", format: "zip" },
];

/** The name `deno compile` writes a target's binary under: `mcp-audit-<triple>[.exe]`. */
export function binaryName(target: Target): string {
  return `mcp-audit-${target.triple}${target.exe}`;
}

/**
 * The archive's file name, as the Go tool's releases name it.
 *
 * @example
 * ```ts
 * import { archiveName, TARGETS } from "./targets.ts";
 * archiveName("1.0.0", TARGETS[0]!); // "mcp-audit_1.0.0_linux_amd64.tar.gz"
 * ```
 */
export function archiveName(version: string, target: Target): string {
  return `mcp-audit_${version}_${target.os}_${target.arch}.${target.format}`;
}

/** The checksum file's name, as the Go tool's releases name it. */
export function checksumsName(version: string): string {
  return `mcp-audit_${version}_checksums.txt`;
}

/** The SBOM's file name. */
export function sbomName(version: string): string {
  return `mcp-audit_${version}_sbom.spdx.json`;
}

/** A release version: semver without the `v` of the tag. */
export const VERSION_PATTERN = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$/;
