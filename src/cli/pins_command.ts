/**
 * `mcp-audit pins list|approve`: shows the pinned tool definitions and the changes seen since, and
 * accepts changes. Exit 0 done, 1 nothing approved (nothing pending, or a name with nothing
 * pending, or the file could not be written), 2 the pins file could not be read.
 *
 * The pins file and server come from the configuration (`pinning.path`, else beside
 * `audit.path`; `proxy.server_id`), as the proxy sees them; `--file` and `--server` override it.
 *
 * @example
 * ```ts
 * import { pinsCommand } from "./pins_command.ts";
 *
 * const code = pinsCommand(["approve", "--all"], {
 *   out: console.log,
 *   env: {},
 *   readConfig: () => ({ pinsPath: "./audit.pins.json", serverId: "filesystem" }),
 * });
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { NotPendingError, type PendingEntry, PinError, PinStore } from "../guardrails/pins.ts";
import { UsageError } from "./errors.ts";

/** Everything the command touches outside itself. */
export interface PinsIo {
  out: (line: string) => void;
  /** The process environment; the configuration's own variables reach it through `readConfig`. */
  env: Readonly<Record<string, string>>;
  /** The pins file and server id of the configuration at `path` (`--config`), or the default. */
  readConfig: (path: string | undefined) => { pinsPath: string; serverId: string };
  /** The clock for `pinned_at` (default: the system clock). */
  now?: (() => Date) | undefined;
}

const USAGE = `usage: mcp-audit pins list [--file PINS] [--config FILE] [--server ID]
       mcp-audit pins approve [--file PINS] [--config FILE] [--server ID] (--all | TOOL...)
list shows every server in the file unless --server is given; approve acts on --server, else on
the configured proxy.server_id`;

const SHORT = 12;

function short(digest: string | null): string {
  return digest === null ? "(none)".padEnd(SHORT) : digest.slice(0, SHORT);
}

// Names come from the upstream server: nothing it sends may move the operator's cursor, change
// colours or reorder text on the terminal.
// deno-lint-ignore no-control-regex
const UNSAFE = /[\x00-\x20\x7f-\x9f"\\\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

/** A name as it can be shown: as is when harmless, else quoted with escapes. */
export function displayName(name: string): string {
  if (name !== "" && !UNSAFE.test(name)) return name;
  return `"${
    [...name].map((ch) => {
      if (ch === '"' || ch === "\\") return `\\${ch}`;
      if (ch !== " " && UNSAFE.test(ch)) {
        return `\\u${(ch.codePointAt(0) ?? 0).toString(16).padStart(4, "0")}`;
      }
      return ch;
    }).join("")
  }"`;
}

function table(rows: string[][]): string[] {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => widths[i] = Math.max(widths[i] ?? 0, cell.length));
  }
  return rows.map((row) =>
    "  " +
    row.map((cell, i) => i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)).join("  ")
  );
}

function pendingRows(entries: readonly PendingEntry[]): string[] {
  return table(entries.map((p) => [
    displayName(p.server),
    displayName(p.name),
    p.change,
    `${short(p.pinned)} -> ${short(p.seen)}`,
    `seen ${p.seen_at}`,
  ]));
}

function list(store: PinStore, serverId: string | undefined, out: (line: string) => void): number {
  const pins = store.pins(serverId);
  const pending = store.pending(serverId);
  const servers = [...new Set([...pins, ...pending].map((e) => e.server))].sort();
  const scope = serverId === undefined ? "" : ` for server ${displayName(serverId)}`;
  if (servers.length === 0) out(`nothing pinned${scope}`);
  for (const server of servers) {
    const mine = pins.filter((p) => p.server === server);
    out(`server ${displayName(server)}: ${mine.length} tool${mine.length === 1 ? "" : "s"} pinned`);
    for (
      const line of table(
        mine.map((p) => [displayName(p.name), short(p.digest), `pinned ${p.pinned_at}`]),
      )
    ) out(line);
  }
  if (pending.length === 0) {
    out(`no pending changes${scope}`);
    return 0;
  }
  out(`pending changes (server, tool, change, pinned -> seen digest, when):`);
  for (const line of pendingRows(pending)) out(line);
  out("approve with: mcp-audit pins approve [--server ID] (--all | TOOL...)");
  return 0;
}

function elsewhere(store: PinStore, serverId: string): string | null {
  const others = [...new Set(store.pending().map((p) => p.server))].filter((s) => s !== serverId);
  return others.length === 0
    ? null
    : `changes are pending on server ${others.map(displayName).join(", ")} (use --server)`;
}

function approve(
  store: PinStore,
  serverId: string,
  names: readonly string[] | "all",
  out: (line: string) => void,
): number {
  const before = new Map(store.pending(serverId).map((p) => [p.name, p]));
  let approved: string[];
  try {
    approved = store.approve(serverId, names);
  } catch (e) {
    if (e instanceof NotPendingError) {
      out(
        `mcp-audit pins: nothing pending on server ${displayName(serverId)} for ${
          e.unknown.map(displayName).join(", ")
        }; nothing approved`,
      );
      if (!store.exists) out(`(${store.path} does not exist)`);
      if (e.pendingNames.length > 0) {
        out(`pending on server ${displayName(serverId)}:`);
        for (const line of pendingRows([...before.values()])) out(line);
      }
      const hint = elsewhere(store, serverId);
      if (hint !== null) out(hint);
      return 1;
    }
    if (e instanceof PinError) {
      out(`mcp-audit pins: ${e.message}`);
      return 1;
    }
    throw e;
  }
  if (approved.length === 0) {
    out(`nothing to approve: no pending changes on server ${displayName(serverId)}`);
    if (!store.exists) out(`(${store.path} does not exist)`);
    const hint = elsewhere(store, serverId);
    if (hint !== null) out(hint);
    return 1;
  }
  for (const name of approved) {
    const p = before.get(name);
    const was = p === undefined || p.pinned === null ? "a new tool" : `was ${short(p.pinned)}`;
    out(`approved ${displayName(name)}: pinned ${short(p?.seen ?? null)} (${was})`);
  }
  out(
    `wrote ${store.path}; a running proxy picks the approval up on the next call to ${
      approved.length === 1 ? "that tool" : "each tool"
    }`,
  );
  return 0;
}

/**
 * Runs `mcp-audit pins ARGS`; returns the exit code.
 * @throws {UsageError} on a bad action, flag or argument
 */
export function pinsCommand(args: string[], io: PinsIo): number {
  const action = args[0];
  if (action === "--help" || action === "-h" || action === "help") {
    io.out(USAGE);
    return 0;
  }
  if (action !== "list" && action !== "approve") {
    throw new UsageError(
      action === undefined
        ? "pins: expected list or approve (mcp-audit pins --help)"
        : `pins: unknown action ${JSON.stringify(action)}: expected list or approve`,
    );
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: args.slice(1),
      options: {
        file: { type: "string" },
        config: { type: "string" },
        server: { type: "string" },
        all: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    throw new UsageError(`pins ${action}: ${(e as Error).message}`);
  }
  const v = parsed.values;
  const all = v.all === true;
  const tools = parsed.positionals;
  if (v.help) {
    io.out(USAGE);
    return 0;
  }
  if (action === "list" && (all || tools.length > 0)) {
    throw new UsageError("pins list: takes no tool names and no --all");
  }
  if (action === "approve" && all === (tools.length > 0)) {
    throw new UsageError(`pins approve: give --all or tool names, not ${all ? "both" : "neither"}`);
  }
  let config: { pinsPath: string; serverId: string } | undefined;
  const fromConfig = () => config ??= io.readConfig(v.config);
  const path = v.file ?? fromConfig().pinsPath;
  let store: PinStore;
  try {
    store = PinStore.open(path, io.now ?? (() => new Date()));
  } catch (e) {
    if (e instanceof PinError) {
      io.out(`mcp-audit pins: ${e.message}`);
      return 2;
    }
    throw e;
  }
  if (action === "list") {
    io.out(`pins file ${store.path}${store.exists ? "" : " (does not exist yet)"}`);
    return list(store, v.server, io.out);
  }
  return approve(store, v.server ?? fromConfig().serverId, all ? "all" : tools, io.out);
}
