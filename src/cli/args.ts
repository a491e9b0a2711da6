/**
 * The command line (SPEC §1): a subcommand, or the proxy's flags and an optional upstream argv
 * after `--`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { Level } from "../log.ts";
import { UsageError } from "./errors.ts";

/** A flag's value for a config key, with the flag's name for messages. */
export interface FlagValue {
  flag: string;
  value: unknown;
}

/** What the command line asks for. */
export type Command =
  | { kind: "help" }
  | { kind: "version" }
  | { kind: "verify"; args: string[] }
  | { kind: "export"; args: string[] }
  | { kind: "keygen"; args: string[] }
  | { kind: "pins"; args: string[] }
  | { kind: "dashboard"; args: string[] }
  | {
    kind: "proxy";
    /** Config values set by flags, by key. */
    flags: Map<string, FlagValue>;
    /** `--config`, when given. */
    configPath: string | undefined;
    logLevel: Level;
    /** The upstream command after `--`. */
    upstreamArgv: string[];
  };

const LEVELS: readonly Level[] = ["debug", "info", "warn", "error"];

/** Digits become a number; anything else stays text for the config check to reject by name. */
function int(text: string): number | string {
  return /^\d+$/.test(text) ? Number(text) : text;
}

/**
 * Parses `argv` (without the program name).
 * @throws {UsageError} on unknown flags or bad values
 */
export function parseCommand(argv: string[]): Command {
  const first = argv[0];
  if (
    first === "verify" || first === "export" || first === "keygen" || first === "pins" ||
    first === "dashboard"
  ) {
    return { kind: first, args: argv.slice(1) };
  }
  const dashdash = argv.indexOf("--");
  const own = dashdash === -1 ? argv : argv.slice(0, dashdash);
  const upstreamArgv = dashdash === -1 ? [] : argv.slice(dashdash + 1);
  let parsed;
  try {
    parsed = parseArgs({
      args: own,
      options: {
        transport: { type: "string" },
        upstream: { type: "string" },
        port: { type: "string" },
        "upstream-timeout": { type: "string" },
        config: { type: "string" },
        storage: { type: "string" },
        "no-dashboard": { type: "boolean" },
        "no-metrics": { type: "boolean" },
        "log-level": { type: "string" },
        version: { type: "boolean", short: "v" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: false,
      strict: true,
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const v = parsed.values;
  if (v.help) return { kind: "help" };
  if (v.version) return { kind: "version" };
  const flags = new Map<string, FlagValue>();
  if (v.transport !== undefined) {
    flags.set("proxy.transport", { flag: "--transport", value: v.transport });
  }
  if (v.upstream !== undefined) {
    flags.set("proxy.upstream", { flag: "--upstream", value: v.upstream });
  }
  if (v.port !== undefined) flags.set("proxy.port", { flag: "--port", value: int(v.port) });
  if (v["upstream-timeout"] !== undefined) {
    flags.set("proxy.upstream_timeout_ms", {
      flag: "--upstream-timeout",
      value: int(v["upstream-timeout"]),
    });
  }
  if (v.storage !== undefined) flags.set("audit.storage", { flag: "--storage", value: v.storage });
  if (v["no-dashboard"]) flags.set("dashboard.enabled", { flag: "--no-dashboard", value: false });
  if (v["no-metrics"]) flags.set("metrics.enabled", { flag: "--no-metrics", value: false });
  const level = v["log-level"] ?? "info";
  const logLevel = LEVELS.find((l) => l === level);
  if (logLevel === undefined) {
    throw new UsageError(
      `--log-level: must be one of ${LEVELS.join(", ")}, got ${JSON.stringify(level)}`,
    );
  }
  if (v.upstream !== undefined && upstreamArgv.length > 0) {
    throw new UsageError("give the upstream either with --upstream or after --, not both");
  }
  if (dashdash !== -1 && upstreamArgv.length === 0) {
    throw new UsageError("nothing after --: expected the upstream command");
  }
  return { kind: "proxy", flags, configPath: v.config, logLevel, upstreamArgv };
}

/** The `--help` text. */
export const HELP = `mcp-audit: a security and audit proxy for MCP servers

usage:
  mcp-audit [flags] [-- UPSTREAM_CMD ARGS...]   run the proxy (default)
  mcp-audit verify [--public-key FILE] [--key-file FILE]... [--anchor FILE] [--no-signatures] PATH
                                                 check an audit log (JSONL with its archives, or
                                                 SQLite): exit 0 intact and signed, 1 problems,
                                                 2 unreadable or no key, 3 chain intact but
                                                 --no-signatures (content not vouched for)
  mcp-audit export [--format jsonl|csv|ocsf|cef] [--from T] [--to T] [--kind K]... [--method M]
                   [--tool NAME] [--session S] [--client ID] [--output FILE [--force]] PATH
                                                 stream records out for a SIEM, in seq order
  mcp-audit keygen [--out PREFIX]                create an Ed25519 signing key pair
  mcp-audit dashboard [--config FILE] [--log PATH] [--bind ADDR] [--port N] [--token-env NAME]
                      [--public-key FILE] [--key-file FILE]... [--key-id ID]
                                                 serve the console for a log, read-only, without
                                                 proxying (token: dashboard.auth.token, or the
                                                 variable --token-env names; keys as verify)
  mcp-audit pins list|approve [--all | TOOL...]  show pinned tool definitions and changes; approve changes
  mcp-audit --version | --help

proxy flags:
  --transport stdio|http     how the client reaches the proxy (default stdio)
  --upstream CMD_OR_URL      the upstream MCP server: a command (quoted as one string) or a URL
  --port N                   HTTP listen port (default 4422)
  --upstream-timeout MS      HTTP upstream timeout in milliseconds (default 30000)
  --config PATH              configuration file (default ./config.yaml when present)
  --storage jsonl|sqlite     audit storage backend (default jsonl)
  --no-dashboard             do not serve the dashboard
  --no-metrics               do not serve Prometheus metrics
  --log-level LEVEL          debug, info, warn or error (default info); logs go to stderr
  --version                  print the version and exit
  --help                     print this help and exit

environment:
  AUDIT_SECRET               HMAC signing secret (also MCP_AUDIT_SIGNING_SECRET); never passed to the upstream
  MCP_AUDIT_<KEY>            any config key, e.g. MCP_AUDIT_AUDIT_PATH=/var/log/mcp/audit.jsonl

exit codes: 0 normal end, 1 runtime failure (including the upstream exiting non-zero), 2 bad usage or configuration
`;
