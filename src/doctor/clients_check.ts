/**
 * Check 7, `clients`: the client configurations named (`--client NAME`: its user-level file;
 * `--file PATH`) have every entry that mcp-audit wraps pointing at things that exist: the
 * launcher (the mcp-audit binary, or deno and an existing `main.ts`), the wrapped server's own
 * command (found on the entry's `PATH`, else ours, as no shell is used), and the `--config` file.
 * Entries are read with the same reader `wrap` uses (src/clients/), so an entry is "ours" exactly
 * when `unwrap` would take it back.
 *
 * @module
 */
import { clientFiles, type ClientName, isClientName, type Platform } from "../clients/catalog.ts";
import { parseJsonc, toPlain } from "../clients/jsonc.ts";
import { serverMaps } from "../clients/wrap.ts";
import { classifyArgv } from "../clients/wrapped_argv.ts";
import { NotReadableFileError, readRegularFile } from "../config/read_file.ts";
import { type CheckResult, message, result } from "./result.ts";

/** Client files larger than this are not read (the same bound as the JSONC reader's default). */
const MAX_FILE_BYTES = 16 * 1024 * 1024;

/** What the check reads. */
export interface ClientsToCheck {
  clients: readonly string[];
  files: readonly string[];
}

/** A missing file, as Deno or node:fs reports one. */
function isMissing(e: unknown): boolean {
  return e instanceof Deno.errors.NotFound ||
    (typeof e === "object" && e !== null && "code" in e && e.code === "ENOENT");
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isStringList(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === "string");
}

/** Whether `path` is a file this user may run (the mode's execute bits; any file on Windows). */
function runnable(path: string, os: Platform["os"]): boolean {
  try {
    const info = Deno.statSync(path);
    if (!info.isFile) return false;
    return os === "windows" || info.mode === null || (info.mode & 0o111) !== 0;
  } catch {
    return false;
  }
}

/**
 * Where `command` would be found when started without a shell: itself when it names a path, else
 * the first runnable match along `pathVar` (with Windows' executable suffixes there).
 */
export function findCommand(
  command: string,
  pathVar: string | undefined,
  platform: Platform,
): string | undefined {
  const os = platform.os;
  const sep = os === "windows" ? "\\" : "/";
  if (/[\\/]/.test(command)) {
    const path = /^([A-Za-z]:)?[\\/]/.test(command) ? command : `${platform.cwd}${sep}${command}`;
    return runnable(path, os) ? path : undefined;
  }
  const suffixes = os === "windows" ? ["", ".exe", ".cmd", ".bat", ".com"] : [""];
  for (const dir of (pathVar ?? "").split(os === "windows" ? ";" : ":")) {
    if (dir === "") continue;
    for (const suffix of suffixes) {
      const path = `${dir}${/[\\/]$/.test(dir) ? "" : sep}${command}${suffix}`;
      if (runnable(path, os)) return path;
    }
  }
  return undefined;
}

/** The problems of one wrapped entry, as lines; none when all it names exists. */
function entryProblems(
  name: string,
  entry: Record<string, unknown>,
  platform: Platform,
): { wrapped: boolean; problems: string[] } {
  const command = entry["command"];
  const args = entry["args"];
  if (typeof command !== "string" || !isStringList(args)) return { wrapped: false, problems: [] };
  // Ours only when the command is mcp-audit's launcher: a look-alike argv is someone else's.
  const kind = classifyArgv(command, args);
  if (kind.kind === "edited") {
    return { wrapped: true, problems: [`${name}: edited since wrapped (${kind.reason})`] };
  }
  if (kind.kind !== "wrapped") return { wrapped: false, problems: [] };
  const wrapped = kind.wrapped;
  const env = isRecord(entry["env"]) ? entry["env"] : {};
  const entryPath = typeof env["PATH"] === "string" ? env["PATH"] : platform.env["PATH"];
  const problems: string[] = [];
  if (findCommand(command, platform.env["PATH"], platform) === undefined) {
    problems.push(`${name}: the launcher ${JSON.stringify(command)} is not a program here`);
  }
  const main = wrapped.launcherArgs.at(-1);
  if (main !== undefined && !runnableOrReadable(main)) {
    problems.push(`${name}: ${main} (the mcp-audit source it runs) does not exist`);
  }
  if (!runnableOrReadable(wrapped.config)) {
    problems.push(`${name}: its --config ${wrapped.config} does not exist`);
  }
  if (wrapped.upstream.kind === "stdio") {
    const original = wrapped.upstream.argv[0]!;
    if (findCommand(original, entryPath, platform) === undefined) {
      problems.push(
        `${name}: the server's command ${JSON.stringify(original)} is not found ${
          /[\\/]/.test(original) ? "" : "on PATH "
        }(no shell is used; clients often start servers with a shorter PATH than a terminal's)`,
      );
    }
  }
  return { wrapped: true, problems };
}

function runnableOrReadable(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** The files to read: each client's user-level files, then each `--file`. */
function filesToRead(
  what: ClientsToCheck,
  platform: Platform,
): { files: { path: string; client: ClientName | undefined }[]; errors: string[] } {
  const files: { path: string; client: ClientName | undefined }[] = [];
  const errors: string[] = [];
  for (const client of what.clients) {
    if (!isClientName(client)) {
      errors.push(`unknown client ${JSON.stringify(client)}`);
      continue;
    }
    try {
      for (const path of clientFiles(client, platform)) files.push({ path, client });
    } catch (e) {
      errors.push(`${client}: ${message(e)}`);
    }
  }
  for (const path of what.files) files.push({ path, client: undefined });
  return { files, errors };
}

/**
 * Checks the wrapped entries of the client files named.
 *
 * @example
 * ```ts
 * const r = checkClients(
 *   { clients: ["cursor"], files: [] },
 *   { os: Deno.build.os, env: Deno.env.toObject(), cwd: Deno.cwd() },
 * );
 * console.log(r.status, r.detail);
 * ```
 */
export function checkClients(what: ClientsToCheck, platform: Platform): CheckResult {
  const { files, errors } = filesToRead(what, platform);
  const problems = [...errors];
  const missing: string[] = [];
  let wrapped = 0;
  let others = 0;
  let read = 0;
  for (const { path, client } of files) {
    let text: string;
    try {
      // A regular file only, and bounded: a FIFO named here would block the doctor for good.
      text = readRegularFile(path, MAX_FILE_BYTES);
    } catch (e) {
      if (isMissing(e)) {
        missing.push(
          client === undefined
            ? `${path} does not exist`
            : `${client}: not installed here (no ${path})`,
        );
      } else if (e instanceof NotReadableFileError) problems.push(e.message);
      else problems.push(`${path}: cannot read: ${message(e)}`);
      continue;
    }
    read++;
    try {
      const doc = parseJsonc(text, { maxBytes: MAX_FILE_BYTES });
      for (const map of serverMaps(doc)) {
        for (const member of map.node.members) {
          const entry = toPlain(member.value);
          if (!isRecord(entry)) continue;
          const found = entryProblems(member.key, entry, platform);
          if (found.wrapped) wrapped++;
          else others++;
          problems.push(...found.problems.map((p) => `${path}: ${p}`));
        }
      }
    } catch (e) {
      problems.push(`${path}: ${message(e)}`);
    }
  }
  const counted = `${wrapped} wrapped server${wrapped === 1 ? "" : "s"} in ${read} file${
    read === 1 ? "" : "s"
  }${others > 0 ? ` (${others} not wrapped)` : ""}`;
  if (problems.length > 0) {
    return result(
      "clients",
      "fail",
      `${counted}: ${problems.length} problem${problems.length === 1 ? "" : "s"}`,
      {
        fix:
          "install what is missing, or wrap the file again (mcp-audit wrap) from where mcp-audit now lives",
        notes: [...problems, ...missing],
      },
    );
  }
  if (read === 0) {
    return result("clients", "warn", "no client configuration found", {
      fix: "name an installed client (--client) or the file (--file)",
      notes: missing,
    });
  }
  if (wrapped === 0) {
    return result("clients", "warn", `${counted}: nothing goes through mcp-audit`, {
      fix: "mcp-audit wrap --client NAME (or --file PATH)",
      notes: missing,
    });
  }
  return result(
    "clients",
    missing.length > 0 ? "warn" : "ok",
    `${counted} point at existing programs`,
    {
      ...(missing.length > 0 ? { fix: "leave out clients not installed here" } : {}),
      notes: missing,
    },
  );
}
