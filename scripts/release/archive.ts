/**
 * Packs the compiled binaries into the release archives the Go tool publishes, and their checksum
 * file:
 *
 * ```sh
 * deno run --allow-read --allow-write --allow-run=tar,zip scripts/release/archive.ts \
 *   --version 1.2.3 --bin-dir dist/bin --out-dir dist --extra README.md --extra CHANGELOG.md
 * ```
 *
 * `--bin-dir` holds one binary per target, named as `deno compile` wrote it
 * (`mcp-audit-<triple>[.exe]`, see targets.ts); every target must be there and nothing else.
 * Each archive (`mcp-audit_<version>_<os>_<arch>.tar.gz`, `.zip` for Windows) holds the binary as
 * `mcp-audit` or `mcp-audit.exe` (mode 0755) and the `--extra` files (0644) at its top level, as
 * the Go tool's do; `mcp-audit_<version>_checksums.txt` lists the SHA-256 of each archive in
 * `sha256sum` format. Entries have one time (`--mtime`, default the Unix epoch) and owner 0, so the
 * same binaries give the same archives. Needs GNU tar (`--owner`, `--mtime`), gzip and Info-ZIP's
 * zip.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { parseOptions, REFUSED, refused, usage, writeTextAtomic } from "./common.ts";
import {
  archiveName,
  binaryName,
  checksumsName,
  type Target,
  TARGETS,
  VERSION_PATTERN,
} from "./targets.ts";

/** An archive that cannot be made; the message names the file and what to do. */
export class ArchiveError extends Error {
  override name = "ArchiveError";
}

/** What to pack. */
export interface ArchiveOptions {
  version: string;
  binDir: string;
  outDir: string;
  /** Files placed beside the binary in every archive, by their base name. */
  extras: readonly string[];
  /** The time of every entry. */
  mtime: Date;
}

function baseName(path: string): string {
  return path.replace(/[\\/]+$/, "").split(/[\\/]/).pop() ?? path;
}

async function run(cmd: string, args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command(cmd, {
    args,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  if (!out.success) {
    const text = new TextDecoder().decode(out.stderr).slice(-2000);
    throw new ArchiveError(`${cmd} ${args.join(" ")} failed (exit ${out.code}): ${text}`);
  }
}

/**
 * The SHA-256 of a file, hex, read in chunks (a binary is ~100 MB).
 *
 * @example
 * ```ts ignore
 * await sha256File("dist/mcp-audit_1.0.0_linux_amd64.tar.gz");
 * ```
 */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path, { read: true });
  const buffer = new Uint8Array(1 << 20);
  for (;;) {
    const n = await file.read(buffer);
    if (n === null) break;
    hash.update(buffer.subarray(0, n));
  }
  return hash.digest("hex");
}

/** Checks that `binDir` holds exactly one binary per target; returns their paths by target. */
async function findBinaries(binDir: string): Promise<Map<Target, string>> {
  const names = new Set<string>();
  try {
    for await (const entry of Deno.readDir(binDir)) names.add(entry.name);
  } catch (e) {
    throw new ArchiveError(`--bin-dir ${binDir}: cannot read: ${(e as Error).message}`);
  }
  const found = new Map<Target, string>();
  const missing: string[] = [];
  for (const target of TARGETS) {
    const name = binaryName(target);
    if (names.delete(name)) found.set(target, `${binDir}/${name}`);
    else missing.push(name);
  }
  if (missing.length > 0) {
    throw new ArchiveError(
      `--bin-dir ${binDir}: missing ${missing.join(", ")}: compile every target first`,
    );
  }
  if (names.size > 0) {
    throw new ArchiveError(
      `--bin-dir ${binDir}: unexpected ${
        [...names].sort().join(", ")
      }: it must hold only the binaries ` +
        TARGETS.map(binaryName).join(", "),
    );
  }
  return found;
}

/** Packs one target's archive into `outDir` (through a temporary file and a rename). */
async function packOne(
  options: ArchiveOptions,
  target: Target,
  binary: string,
  stage: string,
): Promise<string> {
  const dir = `${stage}/${target.os}_${target.arch}`;
  await Deno.mkdir(dir);
  const binName = `mcp-audit${target.exe}`;
  const entries = [binName];
  await Deno.copyFile(binary, `${dir}/${binName}`);
  await Deno.chmod(`${dir}/${binName}`, 0o755);
  for (const extra of options.extras) {
    const name = baseName(extra);
    await Deno.copyFile(extra, `${dir}/${name}`);
    await Deno.chmod(`${dir}/${name}`, 0o644);
    entries.push(name);
  }
  for (const name of entries) await Deno.utime(`${dir}/${name}`, options.mtime, options.mtime);
  const name = archiveName(options.version, target);
  // Absolute: the tools run in the stage folder.
  const temp = `${await Deno.realPath(options.outDir)}/.${name}.tmp`;
  // zip adds to an archive that exists: start from none.
  await Deno.remove(temp).catch(() => {});
  try {
    if (target.format === "zip") {
      // -X: no uid/gid or extra time fields, so equal inputs give equal bytes; the Unix mode stays.
      await run("zip", ["-X", "-q", "-D", temp, ...entries], dir);
    } else {
      await run("tar", [
        "--create",
        "--file",
        temp,
        "--use-compress-program=gzip -n -9",
        "--format=gnu",
        "--owner=0",
        "--group=0",
        "--numeric-owner",
        `--mtime=@${Math.floor(options.mtime.getTime() / 1000)}`,
        ...entries,
      ], dir);
    }
    await Deno.rename(temp, `${options.outDir}/${name}`);
  } catch (e) {
    await Deno.remove(temp).catch(() => {});
    throw e;
  }
  return name;
}

/**
 * Makes every archive and the checksum file; returns the archive names in target order.
 *
 * @throws {ArchiveError} on a missing or unexpected binary, a bad version, or a failed tool
 */
export async function makeArchives(options: ArchiveOptions): Promise<string[]> {
  if (!VERSION_PATTERN.test(options.version)) {
    throw new ArchiveError(
      `--version: expected a release version like 1.2.3 (no leading v), got ${
        JSON.stringify(options.version)
      }`,
    );
  }
  for (const extra of options.extras) {
    const info = await Deno.stat(extra).catch(() => null);
    if (info === null || !info.isFile) throw new ArchiveError(`--extra ${extra}: not a file`);
  }
  const extraNames = options.extras.map(baseName);
  if (
    new Set(extraNames).size !== extraNames.length ||
    extraNames.some((n) => n.startsWith("mcp-audit"))
  ) {
    throw new ArchiveError(
      `--extra: names must differ from each other and from the binary: ${extraNames.join(", ")}`,
    );
  }
  const binaries = await findBinaries(options.binDir);
  await Deno.mkdir(options.outDir, { recursive: true });
  const stage = await Deno.makeTempDir({ dir: options.outDir, prefix: ".stage-" });
  try {
    const names: string[] = [];
    for (const [target, binary] of binaries) {
      names.push(await packOne(options, target, binary, stage));
    }
    const lines: string[] = [];
    for (const name of [...names].sort()) {
      lines.push(`${await sha256File(`${options.outDir}/${name}`)}  ${name}\n`);
    }
    const sums = `${options.outDir}/${checksumsName(options.version)}`;
    await writeTextAtomic(sums, lines.join(""));
    return names;
  } finally {
    await Deno.remove(stage, { recursive: true });
  }
}

/** Runs the command line; returns the exit code (0 made, 2 refused). */
export async function main(args: string[]): Promise<number> {
  const values = parseOptions("archive", args, {
    version: { type: "string" },
    "bin-dir": { type: "string" },
    "out-dir": { type: "string" },
    extra: { type: "string", multiple: true, default: [] },
    mtime: { type: "string" },
  });
  if (values === null) return REFUSED;
  const { version, "bin-dir": binDir, "out-dir": outDir } = values;
  if (version === undefined || binDir === undefined || outDir === undefined) {
    return usage(
      "archive.ts --version 1.2.3 --bin-dir DIR --out-dir DIR [--extra FILE]... [--mtime ISO]",
    );
  }
  const mtime = new Date(values.mtime ?? 0);
  if (Number.isNaN(mtime.getTime())) {
    console.error(`archive: --mtime: not a date: ${JSON.stringify(values.mtime)}`);
    return REFUSED;
  }
  try {
    const names = await makeArchives({ version, binDir, outDir, extras: values.extra, mtime });
    for (const name of names) console.log(`archive: ${outDir}/${name}`);
    console.log(`archive: ${outDir}/${checksumsName(version)}`);
    return 0;
  } catch (e) {
    return refused("archive", e, [ArchiveError]);
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
