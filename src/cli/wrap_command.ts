/**
 * `mcp-audit wrap` and `mcp-audit unwrap`: put every MCP server of a client behind mcp-audit, and
 * take them out again. Exit 0 done (or nothing to do), 1 a file was refused or could not be
 * written, 2 bad usage or a shared configuration that does not load.
 *
 * Each wrapped server runs `mcp-audit --server-id NAME --client-id CLIENT --config SHARED
 * --no-dashboard --no-metrics -- ORIGINAL ARGV` (or `--upstream URL` for a remote one), so that
 * every server of every client writes the one log the shared configuration names. Run from
 * source, the launcher is `deno run` with the narrowest permissions that configuration needs:
 * reading it and its key files, writing the log's folder (and the pins' and anchor's), the
 * environment, starting the one upstream command (and `kill`, for its process group), and
 * reaching the one remote host.
 *
 * @example
 * ```ts
 * import { wrapCommand } from "./wrap_command.ts";
 *
 * const code = await wrapCommand("wrap", ["--client", "cursor", "--dry-run"], {
 *   env: Deno.env.toObject(),
 *   os: Deno.build.os,
 *   cwd: Deno.cwd(),
 *   launcher: { execPath: Deno.execPath(), mainPath: "/opt/mcp-audit/main.ts" },
 *   out: console.log,
 *   err: console.error,
 * });
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { generateEd25519 } from "../audit/signing.ts";
import { auditStorePath, type Config } from "../config/config.ts";
import { ConfigError, loadConfig, loadYamlParser } from "../config/load.ts";
import { pinsPath } from "../pipeline/settings.ts";
import {
  absolutePath,
  CatalogError,
  clientFiles,
  clientOfPath,
  homeDir,
  isAbsolutePath,
  isClientName,
  joinPath,
  type Platform,
  xdgConfigHome,
} from "../clients/catalog.ts";
import { type JsoncDocument, JsoncError, parseJsonc } from "../clients/jsonc.ts";
import { applyEdits } from "../clients/edit.ts";
import { unifiedDiff } from "../clients/diff.ts";
import { ConfigWriteError, replaceFileAtomically } from "../clients/atomic_write.ts";
import { type FileLock, LockError, lockFile } from "../clients/file_lock.ts";
import {
  hasServerUrlEntries,
  type Launch,
  type LaunchTarget,
  type Outcome,
  type Rewrite,
  serverMaps,
  ShapeError,
  unwrapDocument,
  wrapDocument,
} from "../clients/wrap.ts";
import { UsageError } from "./errors.ts";

/** Everything the command touches outside the files it edits. */
export interface WrapIo {
  /** The environment the locations come from (`HOME`, `APPDATA`, `XDG_CONFIG_HOME`, ...). */
  env: Readonly<Record<string, string>>;
  os: typeof Deno.build.os;
  cwd: string;
  /** How mcp-audit runs: `Deno.execPath()`, and the absolute path of `main.ts` (from source). */
  launcher: { execPath: string; mainPath: string };
  out: (line: string) => void;
  err: (line: string) => void;
}

const USAGE = `usage: mcp-audit wrap (--client NAME [--project DIR] | --file PATH) [--config PATH]
                        [--only SERVER]... [--dry-run]
       mcp-audit unwrap (--client NAME [--project DIR] | --file PATH) [--only SERVER]... [--dry-run]
clients: claude-desktop, claude-code, cursor, vscode, windsurf`;

/** A client configuration larger than this is not one. */
const MAX_FILE_BYTES = 16 * 1024 * 1024;

interface Parsed {
  files: { path: string; clientId: string | undefined; fromClient: boolean }[];
  config: string | undefined;
  only: Set<string>;
  dryRun: boolean;
}

function parse(kind: "wrap" | "unwrap", args: string[], platform: Platform): Parsed | "help" {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        client: { type: "string" },
        project: { type: "string" },
        file: { type: "string" },
        config: { type: "string" },
        only: { type: "string", multiple: true },
        "dry-run": { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: false,
      strict: true,
    });
  } catch (e) {
    throw new UsageError(`${kind}: ${(e as Error).message}\n${USAGE}`);
  }
  const v = parsed.values;
  if (v.help) return "help";
  if ((v.client === undefined) === (v.file === undefined)) {
    throw new UsageError(`${kind}: give either --client NAME or --file PATH\n${USAGE}`);
  }
  if (v.project !== undefined && v.client === undefined) {
    throw new UsageError(`${kind}: --project goes with --client`);
  }
  if (kind === "unwrap" && v.config !== undefined) {
    throw new UsageError("unwrap: --config is not needed: each entry names its own");
  }
  let files: Parsed["files"];
  if (v.client !== undefined) {
    const client = v.client;
    if (!isClientName(client)) {
      throw new UsageError(
        `${kind}: unknown client ${
          JSON.stringify(client)
        }; one of claude-desktop, claude-code, cursor, vscode, windsurf`,
      );
    }
    try {
      files = clientFiles(client, platform, v.project).map((path) => ({
        path,
        clientId: client,
        fromClient: true,
      }));
    } catch (e) {
      if (e instanceof CatalogError) throw new UsageError(`${kind}: ${e.message}`);
      throw e;
    }
  } else {
    const path = absolutePath(platform, v.file!);
    files = [{ path, clientId: clientOfPath(path), fromClient: false }];
  }
  return {
    files,
    config: v.config === undefined ? undefined : absolutePath(platform, v.config),
    only: new Set(v.only ?? []),
    dryRun: v["dry-run"] === true,
  };
}

/** The default shared configuration: `$XDG_CONFIG_HOME/mcp-audit/config.yaml`, or `%APPDATA%`. */
function defaultSharedConfig(platform: Platform): string {
  const base = platform.os === "windows"
    ? nonEmpty(platform.env.APPDATA) ??
      joinPath(platform.os, homeDir(platform), "AppData", "Roaming")
    : xdgConfigHome(platform);
  return joinPath(platform.os, base, "mcp-audit", "config.yaml");
}

/** A variable's value, unless it is unset or empty (an empty variable is not set). */
function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === "" ? undefined : value;
}

/** Where a created configuration puts the log: `$XDG_DATA_HOME/mcp-audit`, or `%LOCALAPPDATA%`. */
function defaultDataDir(platform: Platform): string {
  const env = platform.env;
  if (platform.os === "windows") {
    const local = nonEmpty(env.LOCALAPPDATA) ??
      joinPath(platform.os, homeDir(platform), "AppData", "Local");
    return joinPath(platform.os, local, "mcp-audit");
  }
  const data = env.XDG_DATA_HOME !== undefined && env.XDG_DATA_HOME !== ""
    ? env.XDG_DATA_HOME
    : joinPath(platform.os, homeDir(platform), ".local", "share");
  return joinPath(platform.os, data, "mcp-audit");
}

function dirname(path: string): string {
  const i = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  if (i < 0) return ".";
  if (i === 0) return path.slice(0, 1);
  // "C:\" stays a root.
  if (i === 2 && /^[A-Za-z]:/.test(path)) return path.slice(0, 3);
  return path.slice(0, i);
}

/** The shared configuration's text, and what was (or would be) created to make it. */
interface SharedConfig {
  path: string;
  text: string;
  created: string[];
}

function configText(logPath: string, keyPath: string, configPath: string): string {
  return `# The shared configuration of the MCP servers \`mcp-audit wrap\` put behind mcp-audit.
# Every wrapped server writes the one log below. Watch it with:
#   mcp-audit dashboard --config ${configPath}
audit:
  path: ${JSON.stringify(logPath)}
  signing:
    private_key_file: ${JSON.stringify(keyPath)}
`;
}

/** Reads the shared configuration, or creates it (with its key and log folder) when missing. */
function sharedConfig(path: string, platform: Platform, dryRun: boolean): SharedConfig {
  try {
    return { path, text: Deno.readTextFileSync(path), created: [] };
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw new ConfigError(`--config ${path}`, `cannot read: ${(e as Error).message}`);
    }
  }
  const dir = dirname(path);
  const keyPath = joinPath(platform.os, dir, "signing.key");
  const pubPath = joinPath(platform.os, dir, "signing.pub");
  const dataDir = defaultDataDir(platform);
  const logPath = joinPath(platform.os, dataDir, "audit.jsonl");
  const text = configText(logPath, keyPath, path);
  const created: string[] = [];
  if (dryRun) {
    return {
      path,
      text,
      created: [`would create ${path} (log ${logPath}, signing key ${keyPath})`],
    };
  }
  try {
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    Deno.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    let keyExists = true;
    try {
      Deno.statSync(keyPath);
    } catch {
      keyExists = false;
    }
    if (keyExists) {
      created.push(`using the signing key already at ${keyPath}`);
    } else {
      const pair = generateEd25519();
      Deno.writeTextFileSync(keyPath, pair.privatePem, { createNew: true, mode: 0o600 });
      Deno.writeTextFileSync(pubPath, pair.publicPem, { createNew: true, mode: 0o644 });
      created.push(
        `created signing key ${keyPath} (private, key id ${pair.keyId}) and ${pubPath}`,
      );
    }
    Deno.writeTextFileSync(path, text, { createNew: true, mode: 0o600 });
  } catch (e) {
    throw new ConfigError(`--config ${path}`, `cannot create: ${(e as Error).message}`);
  }
  created.unshift(`created ${path} (log ${logPath})`);
  return { path, text, created };
}

/** What the proxy touches when run with the shared configuration: the source of its flags. */
interface Touches {
  /** The log's folder, which must exist for the proxy to start. */
  logDir: string;
  read: string[];
  write: string[];
  net: string[];
}

function hostPort(url: URL): string {
  const port = url.port !== "" ? url.port : url.protocol === "https:" ? "443" : "80";
  return `${url.hostname}:${port}`;
}

/**
 * The files and hosts a proxy with `config` reads, writes and reaches, every path checked to
 * be absolute (a client starts its servers in a folder of its own choosing).
 * @throws {ConfigError} naming a relative path
 */
function touches(config: Config, configPath: string, platform: Platform): Touches {
  const absolute = (key: string, path: string): string => {
    if (!isAbsolutePath(platform.os, path)) {
      throw new ConfigError(
        key,
        `is relative (${JSON.stringify(path)}) in ${configPath}: clients start servers in ` +
          "folders of their own, so give an absolute path",
      );
    }
    return path;
  };
  const a = config.audit;
  const logKey = a.storage === "sqlite" ? "audit.sqlite_path" : "audit.path";
  const logDir = dirname(absolute(logKey, auditStorePath(a)));
  const read = [configPath, logDir];
  const write = [logDir];
  if (config.pinning.enabled) {
    const pinsDir = dirname(absolute("pinning.path", pinsPath(config)));
    read.push(pinsDir);
    write.push(pinsDir);
  }
  if (a.anchor.path !== "") {
    const anchorDir = dirname(absolute("audit.anchor.path", a.anchor.path));
    read.push(anchorDir);
    write.push(anchorDir);
  }
  if (a.signing.private_key_file !== "") {
    read.push(absolute("audit.signing.private_key_file", a.signing.private_key_file));
  }
  const tls = config.proxy.tls;
  for (
    const [key, path] of [
      ["proxy.tls.ca_file", tls.ca_file],
      ["proxy.tls.client_cert_file", tls.client_cert_file],
      ["proxy.tls.client_key_file", tls.client_key_file],
    ] as const
  ) {
    if (path !== "") read.push(absolute(key, path));
  }
  const net: string[] = [];
  if (config.otel.enabled) {
    if (config.otel.tls.ca_file !== "") {
      read.push(absolute("otel.tls.ca_file", config.otel.tls.ca_file));
    }
    try {
      net.push(hostPort(new URL(config.otel.endpoint)));
    } catch {
      throw new ConfigError("otel.endpoint", "is not a URL");
    }
  }
  return { logDir, read: unique(read), write: unique(write), net };
}

function unique(list: string[]): string[] {
  return [...new Set(list)];
}

/** Deno's permission lists are comma separated: a name holding a comma cannot be in one. */
function flagList(flag: string, items: string[]): string {
  for (const item of items) {
    if (item.includes(",")) {
      throw new ConfigError(flag, `cannot name ${JSON.stringify(item)}: it holds a comma`);
    }
  }
  return `${flag}=${items.join(",")}`;
}

/** True when mcp-audit runs from source (`deno run main.ts`) rather than as a compiled binary. */
function fromSource(execPath: string): boolean {
  const name = execPath.split(/[\\/]/).at(-1)?.toLowerCase();
  return name === "deno" || name === "deno.exe";
}

/**
 * Variables Deno lets no child have unless `--allow-run` is unrestricted (they change how a
 * program loads its libraries).
 */
function loaderVariable(name: string): boolean {
  return /^(LD_|DYLD_)/i.test(name);
}

/** The launcher for one upstream: the binary, or `deno run` with the narrowest flags. */
function launcherFor(
  io: WrapIo,
  t: Touches,
): (upstream: LaunchTarget) => Launch | { skip: string } {
  return (upstream) => {
    if (!fromSource(io.launcher.execPath)) return { command: io.launcher.execPath, args: [] };
    const loader = upstream.kind === "stdio" ? upstream.envNames.filter(loaderVariable) : [];
    if (loader.length > 0) {
      return {
        skip: `its env sets ${loader.join(", ")}: run from source, mcp-audit could start it ` +
          "only with --allow-run unrestricted (Deno's rule for LD_* and DYLD_* variables); " +
          "the mcp-audit binary has no such limit",
      };
    }
    const args = [
      "run",
      flagList("--allow-read", t.read),
      flagList("--allow-write", t.write),
      // The upstream gets the environment, less our own variables: the proxy reads it all.
      "--allow-env",
    ];
    if (upstream.kind === "stdio") {
      // kill (taskkill on Windows): to end the upstream's whole process group (tree).
      const killer = io.os === "windows" ? "taskkill" : "kill";
      args.push(flagList("--allow-run", [upstream.command, killer]));
      if (t.net.length > 0) args.push(flagList("--allow-net", t.net));
    } else {
      args.push(flagList("--allow-net", unique([hostPort(upstream.url), ...t.net])));
    }
    args.push(io.launcher.mainPath);
    return { command: io.launcher.execPath, args };
  };
}

/** A file as read: its raw text (BOM included) and the parsed document. */
interface ReadFile {
  raw: string;
  doc: JsoncDocument;
}

class FileRefused extends Error {
  override name = "FileRefused";
}

/**
 * Checks that `path` is a regular file of a client configuration's size, before anything is
 * created beside it; returns the path of the file itself (a link's target), where the lock goes.
 */
function checkClientFile(path: string, fromClient: string | undefined): string {
  try {
    const info = Deno.statSync(path);
    if (!info.isFile) throw new FileRefused(`${path}: not a file`);
    if (info.size > MAX_FILE_BYTES) {
      throw new FileRefused(`${path}: ${info.size} bytes, more than a client configuration holds`);
    }
    return Deno.realPathSync(path);
  } catch (e) {
    if (e instanceof FileRefused) throw e;
    if (e instanceof Deno.errors.NotFound) {
      throw new FileRefused(
        fromClient !== undefined
          ? `${fromClient}: not installed here (no ${path})`
          : `${path}: no such file`,
      );
    }
    throw new FileRefused(`${path}: cannot read: ${(e as Error).message}`);
  }
}

/**
 * Takes the edit lock of the file (at its real path); undefined when its folder cannot be
 * written, since then no edit can be written either (the replacement says why).
 */
async function lockClientFile(path: string, realPath: string): Promise<FileLock | undefined> {
  try {
    return await lockFile(realPath);
  } catch (e) {
    if (!(e instanceof LockError)) throw e;
    if (e.kind === "denied") return undefined;
    throw new FileRefused(`${path}: ${e.reason}`);
  }
}

function readClientFile(path: string): ReadFile {
  let bytes: Uint8Array;
  try {
    bytes = Deno.readFileSync(path);
  } catch (e) {
    throw new FileRefused(`${path}: cannot read: ${(e as Error).message}`);
  }
  if (bytes.length > MAX_FILE_BYTES) throw new FileRefused(`${path}: too large`);
  let raw: string;
  try {
    raw = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new FileRefused(`${path}: not UTF-8 text; nothing changed`);
  }
  try {
    const doc = parseJsonc(raw);
    serverMaps(doc);
    return { raw, doc };
  } catch (e) {
    if (e instanceof JsoncError || e instanceof ShapeError) {
      throw new FileRefused(`${path}:${e.line}:${e.column}: ${e.reason}; nothing changed`);
    }
    throw e;
  }
}

/** The client id of a `--file`: from its name, else from its content. */
function detectClient(doc: JsoncDocument): string {
  if (doc.root.kind !== "object") return "mcp-client";
  const keys = doc.root.members.map((m) => m.key);
  if (keys.includes("servers")) return "vscode";
  if (keys.includes("projects")) return "claude-code";
  if (hasServerUrlEntries(doc)) return "windsurf";
  return "mcp-client";
}

function describe(o: Outcome): string {
  const place = o.where === "mcpServers" || o.where === "servers" ? "" : ` (${o.where})`;
  switch (o.result) {
    case "skipped":
      return `skipped ${o.server}${place}: ${o.reason ?? ""}`;
    case "unwrapped":
      return `unwrapped ${o.server}${place}${o.reason === undefined ? "" : `: ${o.reason}`}`;
    case "edited":
      return `skipped ${o.server}${place}: edited since wrapped, left alone: ${o.reason ?? ""}`;
    default:
      return `${o.result} ${o.server}${place}`;
  }
}

/** Runs `wrap` or `unwrap` with `args` (after the subcommand); returns the exit code. */
export async function wrapCommand(
  kind: "wrap" | "unwrap",
  args: string[],
  io: WrapIo,
): Promise<number> {
  const platform: Platform = { os: io.os, env: io.env, cwd: io.cwd };
  let parsed: Parsed | "help";
  try {
    parsed = parse(kind, args, platform);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.err(`mcp-audit ${e.message}`);
    return 2;
  }
  if (parsed === "help") {
    io.out(USAGE);
    return 0;
  }
  // Each file is locked from before it is read until it is replaced (two runs at once would
  // otherwise both edit the old text, and one edit would be lost); the locks go in `finally`.
  const locks: FileLock[] = [];
  try {
    return await run(kind, parsed, io, platform, locks);
  } finally {
    for (const lock of locks) lock.release();
  }
}

async function run(
  kind: "wrap" | "unwrap",
  parsed: Parsed,
  io: WrapIo,
  platform: Platform,
  locks: FileLock[],
): Promise<number> {
  // Every file is read and checked first: a client that is not installed, or a file that is
  // refused, creates nothing (not even the shared configuration).
  let failed = false;
  const files: (ReadFile & { path: string; clientId: string | undefined })[] = [];
  for (const file of parsed.files) {
    try {
      const realPath = checkClientFile(file.path, file.fromClient ? file.clientId : undefined);
      const lock = parsed.dryRun ? undefined : await lockClientFile(file.path, realPath);
      if (lock !== undefined) locks.push(lock);
      files.push({ ...readClientFile(file.path), path: file.path, clientId: file.clientId });
    } catch (e) {
      if (!(e instanceof FileRefused)) throw e;
      io.err(e.message);
      failed = true;
    }
  }
  if (files.length === 0) return 1;
  let launcher: ReturnType<typeof launcherFor> | undefined;
  let configPath = "";
  if (kind === "wrap") {
    try {
      configPath = parsed.config ?? defaultSharedConfig(platform);
      if (fromSource(io.launcher.execPath)) {
        // Refused before anything is created: these paths go into the permission flags.
        for (const path of [configPath, defaultDataDir(platform)]) flagList("--allow-read", [path]);
      }
      const shared = sharedConfig(configPath, platform, parsed.dryRun);
      await loadYamlParser();
      const loaded = loadConfig({
        file: { path: shared.path, text: shared.text },
        env: {},
        flags: new Map(),
        upstreamArgv: [],
      });
      const t = touches(loaded.config, shared.path, platform);
      launcher = launcherFor(io, t);
      for (const line of shared.created) io.out(line);
      const made = ensureLogDir(t.logDir, parsed.dryRun);
      if (made !== undefined) io.out(made);
    } catch (e) {
      if (e instanceof ConfigError || e instanceof CatalogError) {
        io.err(`mcp-audit ${kind}: shared config: ${e.message}`);
        return 2;
      }
      throw e;
    }
  }
  const self = io.launcher.execPath;
  for (const file of files) {
    try {
      const { raw, doc } = file;
      let rewrite: Rewrite;
      try {
        rewrite = launcher === undefined
          ? unwrapDocument(doc, { only: parsed.only, self })
          : wrapDocument(doc, {
            clientId: file.clientId ?? detectClient(doc),
            sharedConfig: configPath,
            only: parsed.only,
            launcher,
            self,
          });
      } catch (e) {
        if (e instanceof ShapeError) {
          throw new FileRefused(`${file.path}:${e.line}:${e.column}: ${e.reason}; nothing changed`);
        }
        if (e instanceof ConfigError) throw new FileRefused(`${file.path}: ${e.message}`);
        throw e;
      }
      for (const name of parsed.only) {
        if (!rewrite.outcomes.some((o) => o.server === name)) {
          io.err(`${file.path}: no server named ${JSON.stringify(name)}`);
          failed = true;
        }
      }
      // An entry of ours edited since it was wrapped stays behind mcp-audit: unwrap says so
      // and fails, so that the user looks at it.
      if (kind === "unwrap" && rewrite.outcomes.some((o) => o.result === "edited")) failed = true;
      const next = (doc.bom ? "\uFEFF" : "") + applyEdits(doc.text, rewrite.edits);
      if (parsed.dryRun) {
        const diff = unifiedDiff(raw, next, file.path, file.path);
        if (diff !== "") io.out(diff);
        for (const o of rewrite.outcomes) io.out(`${describe(o)} (dry run)`);
        continue;
      }
      if (next === raw) {
        for (const o of rewrite.outcomes) io.out(describe(o));
        io.out(`${file.path}: nothing to change`);
        continue;
      }
      const { backupPath } = await replaceFileAtomically(file.path, raw, next);
      for (const o of rewrite.outcomes) io.out(describe(o));
      io.out(`${file.path}: written${backupPath === undefined ? "" : `; backup ${backupPath}`}`);
    } catch (e) {
      if (e instanceof FileRefused) {
        io.err(e.message);
        failed = true;
        continue;
      }
      if (e instanceof ConfigWriteError) {
        io.err(`${e.path}: ${e.reason}`);
        failed = true;
        continue;
      }
      throw e;
    }
  }
  if (kind === "wrap" && !failed && !parsed.dryRun) {
    io.out(`the log: mcp-audit dashboard --config ${configPath}`);
  }
  return failed ? 1 : 0;
}

/**
 * Creates the log's folder (0700) when the shared configuration names one that is missing: the
 * proxy does not create it, and every wrapped server would fail at start. Returns what it did.
 * @throws {ConfigError} when it cannot be created
 */
function ensureLogDir(dir: string, dryRun: boolean): string | undefined {
  try {
    Deno.statSync(dir);
    return undefined;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) return undefined;
  }
  if (dryRun) return `would create the log's folder ${dir}`;
  try {
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new ConfigError(
      "audit.path",
      `its folder ${dir} cannot be created: ${(e as Error).message}`,
    );
  }
  return `created the log's folder ${dir} (mode 0700)`;
}
