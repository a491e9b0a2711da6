/**
 * The command line (SPEC §1): a subcommand, or the proxy's flags and an optional upstream argv
 * after `--`.
 *
 * The proxy's flags are read as Go's `flag` package reads them, so a client entry written for the
 * Go tool runs unchanged: `-name value`, `-name=value`, `--name value`, `--name=value`, and a
 * boolean as `-name` or `-name=true|false`.
 *
 * @module
 */
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
  | { kind: "wrap"; args: string[] }
  | { kind: "unwrap"; args: string[] }
  | { kind: "doctor"; args: string[] }
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

/** Subcommands whose arguments their own parser reads. */
const SUBCOMMANDS = [
  "verify",
  "export",
  "keygen",
  "pins",
  "dashboard",
  "wrap",
  "unwrap",
  "doctor",
] as const;
type Subcommand = typeof SUBCOMMANDS[number];

function isSubcommand(word: string | undefined): word is Subcommand {
  return SUBCOMMANDS.some((s) => s === word);
}

const LEVELS: readonly Level[] = ["debug", "info", "warn", "error"];

/** How a flag's value is read and where it goes. */
type FlagSpec =
  | { type: "string"; key?: string }
  | { type: "int"; key: string }
  | { type: "bool"; key?: string; value?: boolean };

/**
 * The proxy's flags: the Go tool's ten (`transport, upstream, port, upstream-timeout, config,
 * storage, no-dashboard, no-metrics, version, log-level`), `help`, and the ids `wrap` writes.
 */
const FLAGS: ReadonlyMap<string, FlagSpec> = new Map<string, FlagSpec>([
  ["transport", { type: "string", key: "proxy.transport" }],
  ["upstream", { type: "string", key: "proxy.upstream" }],
  ["port", { type: "int", key: "proxy.port" }],
  ["upstream-timeout", { type: "int", key: "proxy.upstream_timeout_ms" }],
  ["config", { type: "string" }],
  ["storage", { type: "string", key: "audit.storage" }],
  ["server-id", { type: "string", key: "proxy.server_id" }],
  ["client-id", { type: "string", key: "proxy.client_id" }],
  ["no-dashboard", { type: "bool", key: "dashboard.enabled", value: false }],
  ["no-metrics", { type: "bool", key: "metrics.enabled", value: false }],
  ["log-level", { type: "string" }],
  ["version", { type: "bool" }],
  ["help", { type: "bool" }],
]);

/** Our short spellings; Go's `flag` has none of its own besides `-h`. */
const SHORT: ReadonlyMap<string, string> = new Map([["h", "help"], ["v", "version"]]);

/** Digits become a number; anything else stays text for the config check to reject by name. */
function int(text: string): number | string {
  return /^\d+$/.test(text) ? Number(text) : text;
}

/** Go's `strconv.ParseBool`, which its `flag` package uses for `-name=value`. */
function goBool(flag: string, text: string): boolean {
  if (["1", "t", "T", "TRUE", "true", "True"].includes(text)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(text)) return false;
  throw new UsageError(`${flag}: must be true or false, got ${JSON.stringify(text)}`);
}

/** One flag token: its name as written, its name, and a value after `=` if any. */
function splitFlag(token: string): { written: string; name: string; inline?: string } {
  const m = /^(--?)([^-=][^=]*)(?:=([\s\S]*))?$/.exec(token);
  if (m === null) throw new UsageError(`bad flag syntax: ${token}`);
  const dashes = m[1] ?? "-";
  const raw = m[2] ?? "";
  const name = dashes === "-" ? SHORT.get(raw) ?? raw : raw;
  const written = `${dashes}${raw}`;
  return m[3] === undefined ? { written, name } : { written, name, inline: m[3] };
}

/**
 * Where the upstream argv starts: the first `--` in a flag's place. As in Go's `flag`, the word
 * after a flag that takes a value is that value, whatever it is, so `--server-id --` names a
 * server `--`. -1 when there is none.
 */
function separatorIndex(argv: readonly string[]): number {
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i]!;
    if (token === "--") return i;
    const m = /^--?([^-=][^=]*)$/.exec(token);
    if (m === null) continue;
    const spec = FLAGS.get(SHORT.get(m[1]!) ?? m[1]!);
    if (spec !== undefined && spec.type !== "bool") i++;
  }
  return -1;
}

/**
 * Parses `argv` (without the program name).
 * @throws {UsageError} on unknown flags or bad values
 */
export function parseCommand(argv: string[]): Command {
  const first = argv[0];
  if (isSubcommand(first)) return { kind: first, args: argv.slice(1) };
  // `mcp-audit version`, as many tools spell it; the Go tool would have ignored the word.
  if (first === "version" && argv.length === 1) return { kind: "version" };
  const dashdash = separatorIndex(argv);
  const own = dashdash === -1 ? argv : argv.slice(0, dashdash);
  const upstreamArgv = dashdash === -1 ? [] : argv.slice(dashdash + 1);

  const flags = new Map<string, FlagValue>();
  const text = new Map<string, string>();
  const seen = new Set<string>();
  for (let i = 0; i < own.length; i++) {
    const token = own[i] ?? "";
    if (!token.startsWith("-") || token === "-") {
      throw new UsageError(
        `unexpected argument ${
          JSON.stringify(token)
        }: give the upstream with --upstream "CMD ARGS" or after --`,
      );
    }
    const { written, name, inline } = splitFlag(token);
    const spec = FLAGS.get(name);
    if (spec === undefined) throw new UsageError(`unknown flag ${written}`);
    seen.add(name);
    if (spec.type === "bool") {
      const on = inline === undefined ? true : goBool(written, inline);
      if (name === "help" || name === "version") {
        if (!on) seen.delete(name);
        continue;
      }
      // Go sets the key only when the flag is true: `-no-dashboard=false` leaves the config be.
      if (spec.key !== undefined) {
        if (on) flags.set(spec.key, { flag: written, value: spec.value ?? true });
        else flags.delete(spec.key);
      }
      continue;
    }
    let value = inline;
    if (value === undefined) {
      // As Go's flag: the next word is the value, whatever it looks like.
      value = own[i + 1];
      if (value === undefined) throw new UsageError(`flag needs a value: ${written}`);
      i++;
    }
    if (spec.key === undefined) text.set(name, value);
    else flags.set(spec.key, { flag: written, value: spec.type === "int" ? int(value) : value });
  }
  if (seen.has("help")) return { kind: "help" };
  if (seen.has("version")) return { kind: "version" };
  const level = text.get("log-level") ?? "info";
  const logLevel = LEVELS.find((l) => l === level);
  if (logLevel === undefined) {
    throw new UsageError(
      `--log-level: must be one of ${LEVELS.join(", ")}, got ${JSON.stringify(level)}`,
    );
  }
  if (flags.has("proxy.upstream") && upstreamArgv.length > 0) {
    throw new UsageError("give the upstream either with --upstream or after --, not both");
  }
  if (dashdash !== -1 && upstreamArgv.length === 0) {
    throw new UsageError("nothing after --: expected the upstream command");
  }
  return { kind: "proxy", flags, configPath: text.get("config"), logLevel, upstreamArgv };
}

/** The `--help` text. */
export const HELP = `mcp-audit: a security and audit proxy for MCP servers

usage:
  mcp-audit [flags] [-- UPSTREAM_CMD ARGS...]   run the proxy (default)
  mcp-audit verify [--public-key FILE] [--key-file FILE]... [--anchor FILE] [--no-signatures] PATH
                                                 check an audit log (JSONL with its archives, or
                                                 SQLite): exit 0 intact and signed, 1 problems,
                                                 2 unreadable or no key, 3 chain intact but
                                                 --no-signatures (content not vouched for),
                                                 4 intact and signed up to its last checkpoint
                                                 only (no audit/stop after it)
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
  mcp-audit wrap (--client NAME [--project DIR] | --file PATH) [--config PATH] [--only SERVER]... [--dry-run]
                                                 put a client's MCP servers behind mcp-audit
                                                 (a backup is written first; --dry-run prints the diff)
  mcp-audit unwrap (--client NAME [--project DIR] | --file PATH) [--only SERVER]... [--dry-run]
                                                 restore the entries wrap rewrote, exactly
  mcp-audit doctor [--json] [--timeout MS] [--client NAME]... [--file PATH]... [proxy flags]
                  [-- UPSTREAM...]               check a setup end to end (config, log, chain,
                                                 key, ports, upstream, client files), one line
                                                 per check with a fix for each failure
  mcp-audit --version | --help

proxy flags (also spelled as the Go tool's: -flag value, -flag=value, -no-dashboard=false):
  --transport stdio|http     how the client reaches the proxy (default stdio)
  --upstream CMD_OR_URL      the upstream MCP server: a command (quoted as one string) or a URL
  --port N                   HTTP listen port (default 4422)
  --upstream-timeout MS      HTTP upstream timeout in milliseconds (default 30000)
  --config PATH              configuration file, YAML or JSON by its extension
                             (default ./config.yaml when present)
  --storage jsonl|sqlite     audit storage backend (default jsonl)
  --server-id ID             proxy.server_id: names the upstream in every record
  --client-id ID             proxy.client_id: names the client in every record
  --no-dashboard             do not serve the dashboard
  --no-metrics               do not serve Prometheus metrics
  --log-level LEVEL          debug, info, warn or error (default info); logs go to stderr
  --version, -v              print the version and exit
  --help, -h                 print this help and exit

environment (flags win over both, both win over the file):
  AUDIT_SECRET               HMAC signing secret (also MCP_AUDIT_SIGNING_SECRET); never passed to the upstream
  MCP_AUDIT_<KEY>            any config key, e.g. MCP_AUDIT_AUDIT_PATH=/var/log/mcp/audit.jsonl
  AUDIT_PATH, PROXY_PORT, DASHBOARD_AUTH_TOKEN, ...
                             the Go tool's names for its keys ('.' -> '_', upper case), below
                             MCP_AUDIT_<KEY>; the names applied are logged at start

exit codes: 0 normal end, 1 runtime failure (including the upstream exiting non-zero), 2 bad usage or configuration
`;
