/**
 * `mcp-audit dashboard [--config FILE] [--log PATH] [--bind ADDR] [--port N] [--token-env NAME]
 * [--public-key FILE] [--key-file FILE]... [--key-id ID]`: serves the console for a log,
 * read-only, without proxying anything — a log copied off a machine, or one a proxy elsewhere
 * writes to a shared disk (new records are found by polling).
 *
 * - The log: `--log PATH`, else the configuration's audit path (`audit.path`, or
 *   `audit.sqlite_path` with `audit.storage: sqlite`). JSONL (with its archives) or SQLite, told
 *   apart by content.
 * - The listener: `dashboard.bind_address` and `dashboard.port` (`--bind`, `--port`; `--port 0`
 *   takes any free port, and the `dashboard listening` log line names it).
 * - The token: `dashboard.auth.token` (the file, or `MCP_AUDIT_DASHBOARD_AUTH_TOKEN`), or the
 *   variable `--token-env` names — never a flag's value, which any user of the machine can read
 *   in the process list.
 * - The chain status checks signatures with the keys `mcp-audit verify` takes: `--key-file`,
 *   `--public-key` (Ed25519), or the HMAC secret in `AUDIT_SECRET` (`MCP_AUDIT_SIGNING_SECRET`);
 *   with none of those, the key the configuration signs with (`audit.signing.public_key_file`, the
 *   public half of `audit.signing.private_key_file`, or `audit.secret`); with none, the structure
 *   alone.
 *
 * Runs until SIGINT or SIGTERM. Exit codes: 0 stopped by a signal; 1 the log cannot be read or the
 * address cannot be bound; 2 bad arguments, configuration, keys, or the page's files cannot be
 * read (what to allow is said).
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { KeyRing } from "../audit/key_file.ts";
import { StorageError } from "../audit/storage/errors.ts";
import { storePath } from "../audit/storage/open.ts";
import { isSqliteFile } from "../audit/storage/sqlite_lines.ts";
import type { Config } from "../config/config.ts";
import { ConfigError, loadConfig } from "../config/load.ts";
import { errorCode, readRegularFile } from "../config/read_file.ts";
import type { DashboardServices } from "../dashboard/api.ts";
import { createDashboardServices } from "../dashboard/services.ts";
import { StaticFilesError } from "../dashboard/static_files.ts";
import { defaultPinsPath } from "../guardrails/pins.ts";
import { type Logger, stderrLogger } from "../log.ts";
import { type Listener, ListenError } from "../transport/http/serve.ts";
import { serveDashboard } from "./dashboard_serve.ts";
import { UsageError } from "./errors.ts";
import { configKeys, KEY_FLAG_OPTIONS, type KeyFlags, keysFor } from "./key_flags.ts";

/** Everything the command touches outside itself. */
export interface DashboardIo {
  env: Readonly<Record<string, string>>;
  /** `--help`. */
  out: (line: string) => void;
  /** Why it cannot run, one line. */
  err: (line: string) => void;
  /** Structured log lines (stderr); by default at info level. */
  logger?: Logger;
  /**
   * Ends the command (exit 0). By default SIGINT and SIGTERM do (SIGINT and SIGBREAK on
   * Windows), listened for while it runs.
   */
  signal?: AbortSignal;
  /** Reads a file's text; `Deno.readTextFileSync` by default. */
  readTextFile?: (path: string) => string;
}

const USAGE = "usage: mcp-audit dashboard [--config FILE] [--log PATH] [--bind ADDR] [--port N] " +
  "[--token-env NAME] [--public-key FILE] [--key-file FILE]... [--key-id ID]";

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** What the command line asks for. */
interface Request {
  configPath: string | undefined;
  log: string | undefined;
  bind: string | undefined;
  port: number | undefined;
  tokenEnv: string | undefined;
  /** The key flags, as `mcp-audit verify` takes them. */
  keys: KeyFlags;
}

function parse(args: string[]): Request | "help" {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        config: { type: "string" },
        log: { type: "string" },
        bind: { type: "string" },
        port: { type: "string" },
        "token-env": { type: "string" },
        ...KEY_FLAG_OPTIONS,
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: false,
      strict: true,
    });
  } catch (e) {
    throw new UsageError(`dashboard: ${(e as Error).message}; ${USAGE}`);
  }
  const v = parsed.values;
  if (v.help) return "help";
  const nonEmpty = (flag: string, value: string | undefined): string | undefined => {
    if (value !== undefined && value.trim() === "") {
      throw new UsageError(`dashboard: ${flag}: must not be empty`);
    }
    return value;
  };
  let port: number | undefined;
  if (v.port !== undefined) {
    // Any free port is asked for with 0: the configuration key itself starts at 1.
    if (!/^\d{1,5}$/.test(v.port) || Number(v.port) > 65535) {
      throw new UsageError(
        `dashboard: --port: expected 0 (any free port) to 65535, got ${JSON.stringify(v.port)}`,
      );
    }
    port = Number(v.port);
  }
  const tokenEnv = nonEmpty("--token-env", v["token-env"]);
  if (tokenEnv !== undefined && !NAME.test(tokenEnv)) {
    throw new UsageError(
      "dashboard: --token-env: expected the name of an environment variable holding the token " +
        "(the token itself is never given on the command line)",
    );
  }
  const keys: KeyFlags = {
    "key-file": v["key-file"],
    "public-key": v["public-key"],
    "key-id": v["key-id"],
  };
  return {
    configPath: nonEmpty("--config", v.config),
    log: nonEmpty("--log", v.log),
    bind: nonEmpty("--bind", v.bind),
    port,
    tokenEnv,
    keys,
  };
}

/** The configuration file: `--config`, else `./config.yaml` when there is one. */
function configFile(
  path: string | undefined,
  read: (path: string) => string,
): { path: string; text: string } | undefined {
  const chosen = path ?? "config.yaml";
  try {
    return { path: chosen, text: read(chosen) };
  } catch (e) {
    // Deno's errors, or node:fs's (the bounded regular-file reader), which carry a code instead.
    const missing = e instanceof Deno.errors.NotFound ||
      errorCode(e) === "ENOENT";
    if (path === undefined && (missing || e instanceof Deno.errors.NotCapable)) return undefined;
    throw new ConfigError(`--config ${chosen}`, `cannot read: ${(e as Error).message}`);
  }
}

/**
 * `given`, or a signal SIGINT and SIGTERM (SIGINT and SIGBREAK on Windows) abort, listened for
 * until disposed.
 */
function stopSignal(given: AbortSignal | undefined): { signal: AbortSignal } & Disposable {
  if (given !== undefined) return { signal: given, [Symbol.dispose]() {} };
  const stop = new AbortController();
  const signals: Deno.Signal[] = Deno.build.os === "windows"
    ? ["SIGINT", "SIGBREAK"]
    : ["SIGINT", "SIGTERM"];
  const onSignal = (): void => stop.abort();
  for (const s of signals) Deno.addSignalListener(s, onSignal);
  return {
    signal: stop.signal,
    [Symbol.dispose]() {
      for (const s of signals) Deno.removeSignalListener(s, onSignal);
    },
  };
}

/**
 * Runs the command; returns the exit code.
 * @throws {UsageError} on bad arguments (exit 2)
 * @throws {ConfigError} on a bad configuration (exit 2)
 */
export async function dashboardCommand(args: string[], io: DashboardIo): Promise<number> {
  const request = parse(args);
  if (request === "help") {
    io.out(USAGE);
    return 0;
  }
  const logger = io.logger ?? stderrLogger("info");
  const loaded = loadConfig({
    file: configFile(request.configPath, io.readTextFile ?? readRegularFile),
    env: io.env,
    flags: new Map(),
    upstreamArgv: [],
  });
  for (const w of loaded.warnings) logger.warn(w);
  let token = loaded.config.dashboard.auth.token.trim();
  if (request.tokenEnv !== undefined) {
    token = (io.env[request.tokenEnv] ?? "").trim();
    if (token === "" || /\s/.test(token)) {
      io.err(
        `mcp-audit dashboard: --token-env ${request.tokenEnv}: the variable is ${
          token === "" ? "not set or empty" : "a token with whitespace in it"
        }`,
      );
      return 2;
    }
  }
  const config: Config = {
    ...loaded.config,
    dashboard: {
      ...loaded.config.dashboard,
      bind_address: request.bind ?? loaded.config.dashboard.bind_address,
      port: request.port ?? loaded.config.dashboard.port,
      auth: { token },
    },
  };
  const path = request.log ?? storePath(config.audit);
  let keys: KeyRing | null;
  try {
    // The keys given, else the one the configuration signs with (a proxy's own --config).
    keys = keysFor(request.keys, io.env) ?? configKeys(config.audit);
  } catch (e) {
    io.err(`mcp-audit dashboard: ${(e as Error).message}`);
    return 2;
  }
  try {
    const info = await Deno.stat(path);
    if (!info.isFile) throw new Error("not a regular file");
  } catch (e) {
    io.err(`mcp-audit dashboard: cannot read the audit log ${path}: ${(e as Error).message}`);
    return 1;
  }
  const pinning = config.pinning;
  const pinsPath = !pinning.enabled
    ? null
    : pinning.path !== ""
    ? pinning.path
    : defaultPinsPath(path);
  let services: DashboardServices;
  try {
    services = createDashboardServices({
      path,
      storage: isSqliteFile(path) ? "sqlite" : "jsonl",
      live: false,
      authEnabled: token !== "",
      timeZone: config.dashboard.timezone,
      pinsPath,
      keys,
      logger,
    });
  } catch (e) {
    if (!(e instanceof StorageError)) throw e;
    io.err(`mcp-audit dashboard: cannot read the audit log ${path}: ${e.message}`);
    return 1;
  }
  using stop = stopSignal(io.signal);
  let listener: Listener;
  try {
    listener = await serveDashboard(config, services, logger, stop.signal);
  } catch (e) {
    services.close();
    if (e instanceof ListenError) {
      io.err(`mcp-audit ${e.message}`);
      return 1;
    }
    if (e instanceof StaticFilesError) {
      io.err(`mcp-audit dashboard: ${e.message}`);
      return 2;
    }
    throw e;
  }
  logger.info("serving the audit log read-only", { path, signatures: keys !== null });
  await listener.finished;
  services.close();
  logger.info("stopped", { reason: "shutdown signal" });
  return 0;
}
