/**
 * The argv `mcp-audit wrap` writes into a client entry, and how to tell it from argv that only
 * looks like it. A wrapped entry describes itself, so unwrap needs nothing but the file:
 *
 * ```
 * stdio:  command: LAUNCHER, args: [...LAUNCHER_ARGS, --server-id NAME, --client-id CLIENT,
 *                                   --config SHARED, --no-dashboard, --no-metrics, --, CMD, ...ARGS]
 * remote: command: LAUNCHER, args: [...same..., --upstream URL]
 * ```
 *
 * LAUNCHER is the mcp-audit binary (no LAUNCHER_ARGS), or `deno` with `run PERMISSIONS...
 * /abs/main.ts`. An entry whose `args` was the empty list `[]` (rather than absent) is written
 * with `--no-metrics=true` in place of `--no-metrics` (the same flag to the proxy), so unwrap can
 * give the `[]` back.
 *
 * An entry is ours only when its command is our launcher: a file named `mcp-audit` (or
 * `mcp-audit.exe`, or the very command this run writes) with no launcher arguments, or `deno`
 * with `run`, permission flags only (never `-A` or `--allow-all`) and a path ending in `main.ts`.
 * Any other program given our flags is someone else's.
 *
 * @example
 * ```ts
 * import { parseWrapped, wrappedArgs } from "./wrapped_argv.ts";
 *
 * const args = wrappedArgs([], "fs", "cursor", "/cfg.yaml", { kind: "stdio", argv: ["npx", "x"] });
 * parseWrapped(args, "/usr/local/bin/mcp-audit")?.upstream; // { kind: "stdio", argv: ["npx", "x"] }
 * parseWrapped(args, "/tmp/evil"); // undefined
 * ```
 *
 * @module
 */

/** What a wrapped entry starts: a command (argv), or a remote server through the bridge. */
export type Upstream =
  | { kind: "stdio"; argv: string[] }
  | { kind: "remote"; url: string };

/** A wrapped entry, read back from its argv. */
export interface WrappedArgv {
  launcherArgs: string[];
  serverId: string;
  clientId: string;
  config: string;
  upstream: Upstream;
  /** The original entry's `args` was the empty list (not absent). */
  emptyArgs: boolean;
}

/** What stands in for `--no-metrics` when the original `args` was `[]`: the same flag, Go-style. */
export const EMPTY_ARGS_MARK = "--no-metrics=true";

/** The argv of a wrapped entry (after its command). */
export function wrappedArgs(
  launcherArgs: readonly string[],
  serverId: string,
  clientId: string,
  config: string,
  upstream: Upstream,
  emptyArgs = false,
): string[] {
  const tail = upstream.kind === "stdio" ? ["--", ...upstream.argv] : ["--upstream", upstream.url];
  return [
    ...launcherArgs,
    "--server-id",
    serverId,
    "--client-id",
    clientId,
    "--config",
    config,
    "--no-dashboard",
    emptyArgs ? EMPTY_ARGS_MARK : "--no-metrics",
    ...tail,
  ];
}

/** The last part of a path, either separator. */
function baseName(path: string): string {
  return (path.split(/[\\/]/).at(-1) ?? "").toLowerCase();
}

function isDenoName(command: string): boolean {
  const name = baseName(command);
  return name === "deno" || name === "deno.exe";
}

/** A Deno permission flag, other than the one that grants everything. */
function isPermissionFlag(arg: string): boolean {
  return /^--(allow|deny)-[a-z]+(-[a-z]+)*(=[\s\S]*)?$/.test(arg) &&
    !/^--allow-all(=|$)/.test(arg);
}

function isMainTs(arg: string): boolean {
  return /(^|[\\/])main\.ts$/.test(arg);
}

/** `run PERMISSIONS... .../main.ts`, or nothing. */
function validLauncherArgs(args: readonly string[]): boolean {
  if (args.length === 0) return true;
  return args[0] === "run" && args.length >= 2 && isMainTs(args.at(-1)!) &&
    args.slice(1, -1).every(isPermissionFlag);
}

/**
 * True when `command` with `launcherArgs` starts mcp-audit: the binary (by its name, or being
 * `self`, the command this run writes) with no launcher arguments, or `deno run` of a `main.ts`
 * with permission flags only.
 */
export function isOurLauncher(
  command: string,
  launcherArgs: readonly string[],
  self?: string,
): boolean {
  if (!validLauncherArgs(launcherArgs)) return false;
  if (launcherArgs.length > 0) return isDenoName(command);
  return isBinary(command, self);
}

/** The mcp-audit binary: by its name, or the command this run writes (a binary renamed). */
function isBinary(command: string, self: string | undefined): boolean {
  const name = baseName(command);
  return name === "mcp-audit" || name === "mcp-audit.exe" ||
    (self !== undefined && command === self && !isDenoName(self));
}

/**
 * Reads a wrapped entry's argv back; undefined when it is not exactly the form
 * {@link wrappedArgs} writes. With `command` (the entry's), the command must be our launcher too
 * (see {@link isOurLauncher}); without it only the argv is checked.
 */
export function parseWrapped(
  args: readonly string[],
  command?: string,
  self?: string,
): WrappedArgv | undefined {
  const i = args.indexOf("--server-id");
  if (i < 0 || args.length < i + 10) return undefined;
  const launcherArgs = args.slice(0, i);
  if (!validLauncherArgs(launcherArgs)) return undefined;
  if (command !== undefined && !isOurLauncher(command, launcherArgs, self)) return undefined;
  const metrics = args[i + 7];
  if (
    args[i + 2] !== "--client-id" || args[i + 4] !== "--config" ||
    args[i + 6] !== "--no-dashboard" || (metrics !== "--no-metrics" && metrics !== EMPTY_ARGS_MARK)
  ) {
    return undefined;
  }
  const base = {
    launcherArgs,
    serverId: args[i + 1]!,
    clientId: args[i + 3]!,
    config: args[i + 5]!,
    emptyArgs: metrics === EMPTY_ARGS_MARK,
  };
  const rest = args.slice(i + 8);
  if (rest[0] === "--" && rest.length >= 2) {
    return { ...base, upstream: { kind: "stdio", argv: rest.slice(1) } };
  }
  if (rest[0] === "--upstream" && rest.length === 2 && !base.emptyArgs) {
    return { ...base, upstream: { kind: "remote", url: rest[1]! } };
  }
  return undefined;
}

/** What an entry's `command` and `args` are, as far as wrap and unwrap are concerned. */
export type EntryArgv =
  /** Written by wrap, exactly. */
  | { kind: "wrapped"; wrapped: WrappedArgv }
  /** Our launcher with `--server-id ... --` (or `--upstream`), edited since: left alone. */
  | { kind: "edited"; reason: string }
  /** The mcp-audit binary, set up by hand (no `--server-id`): already behind mcp-audit. */
  | { kind: "by hand" }
  /** Someone else's program (whatever its arguments look like). */
  | { kind: "other" };

/** The length of an argv's launcher part, when `command` is our launcher; else undefined. */
function launcherLength(
  command: string,
  args: readonly string[],
  self: string | undefined,
): number | undefined {
  if (isDenoName(command)) {
    if (args[0] !== "run") return undefined;
    let j = 1;
    while (j < args.length && isPermissionFlag(args[j]!)) j++;
    return j < args.length && isMainTs(args[j]!) ? j + 1 : undefined;
  }
  return isBinary(command, self) ? 0 : undefined;
}

/**
 * Classifies an entry's argv (`args` undefined when the entry has none). `self` is the command
 * this run writes (`Deno.execPath()`).
 */
export function classifyArgv(
  command: string,
  args: readonly string[] | undefined,
  self?: string,
): EntryArgv {
  const list = args ?? [];
  const wrapped = parseWrapped(list, command, self);
  if (wrapped !== undefined) return { kind: "wrapped", wrapped };
  const n = launcherLength(command, list, self);
  if (n === undefined) return { kind: "other" };
  const rest = list.slice(n);
  const id = rest.findIndex((a) => a === "--server-id" || a.startsWith("--server-id="));
  const after = id < 0 ? -1 : id + (rest[id] === "--server-id" ? 2 : 1);
  const tail = id < 0
    ? -1
    : rest.findIndex((a, k) =>
      k >= after && (a === "--" || a === "--upstream" || a.startsWith("--upstream="))
    );
  if (tail >= 0) {
    return {
      kind: "edited",
      reason: "its mcp-audit arguments are not in the form wrap writes (--server-id NAME " +
        "--client-id CLIENT --config PATH --no-dashboard --no-metrics, then -- COMMAND or " +
        "--upstream URL); restore the entry by hand or from the backup wrap wrote",
    };
  }
  return isDenoName(command) ? { kind: "other" } : { kind: "by hand" };
}
