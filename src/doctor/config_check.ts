/**
 * Check 1, `config`: the configuration loads exactly as the proxy would load it (the same file
 * rule, environment and flags), its warnings shown, and the sources in force named.
 *
 * @module
 */
import { ConfigError, loadConfig, type Loaded, loadYamlParser } from "../config/load.ts";
import { readConfigFile } from "../config/read_file.ts";
import { Logger } from "../log.ts";
import { type CheckResult, message, result } from "./result.ts";

/** What the proxy's command line gave: as `parseCommand` returns it for the proxy. */
export interface ProxyCommandLine {
  flags: ReadonlyMap<string, { flag: string; value: unknown }>;
  configPath: string | undefined;
  upstreamArgv: string[];
}

/** The check's outcome, with the configuration when it loaded. */
export interface ConfigCheck {
  result: CheckResult;
  loaded: Loaded | undefined;
}

/**
 * The environment variables that set something: `MCP_AUDIT_*` and the signing secret's variables,
 * by name only (never a value), plus those of `extra` that are set (the Go tool's unprefixed names
 * the loader applied). An empty variable sets nothing (the loader's rule) and is not listed.
 */
export function envSources(
  env: Readonly<Record<string, string>>,
  extra: readonly string[] = [],
): string[] {
  const set = (n: string) => env[n] !== undefined && env[n] !== "";
  const names = Object.keys(env).filter((n) => n.startsWith("MCP_AUDIT_") && set(n)).sort();
  if (set("AUDIT_SECRET") && !set("MCP_AUDIT_SIGNING_SECRET")) names.push("AUDIT_SECRET");
  for (const n of extra) if (set(n)) names.push(n);
  return names;
}

/**
 * Loads the configuration as the proxy does.
 *
 * @example
 * ```ts
 * const { result } = await checkConfig(
 *   { flags: new Map(), configPath: "config.yaml", upstreamArgv: [] },
 *   Deno.env.toObject(),
 * );
 * console.log(result.status, result.detail);
 * ```
 */
export async function checkConfig(
  line: ProxyCommandLine,
  env: Readonly<Record<string, string>>,
): Promise<ConfigCheck> {
  // readConfigFile only logs at debug; nothing of it is worth the doctor's output.
  const quiet = new Logger("error", () => {});
  let file;
  try {
    file = readConfigFile(line.configPath, quiet);
    if (file !== undefined) await loadYamlParser();
  } catch (e) {
    return {
      loaded: undefined,
      result: result("config", "fail", message(e), {
        fix: `check that ${line.configPath ?? "config.yaml"} exists and is readable by this user`,
      }),
    };
  }
  let loaded: Loaded;
  try {
    loaded = loadConfig({ file, env, flags: line.flags, upstreamArgv: line.upstreamArgv });
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    const where = file === undefined
      ? ""
      : ` (in ${file.path}, or the variable or flag setting it)`;
    return {
      loaded: undefined,
      result: result("config", "fail", e.message, {
        fix: `correct ${e.key}${where}; the proxy refuses to start with it (exit 2)`,
      }),
    };
  }
  const sources = [
    file === undefined ? "defaults" : "file",
    ...envSources(env, loaded.goEnv),
    ...[...line.flags.values()].map((f) => f.flag),
  ];
  if (line.upstreamArgv.length > 0) sources.push("-- upstream");
  const what = `${file?.path ?? "no configuration file"} (${sources.join(" + ")})`;
  const warnings = loaded.warnings;
  const ignored = loaded.emptyEnv.length === 0
    ? []
    : [`empty, so not set: ${loaded.emptyEnv.join(", ")}`];
  return {
    loaded,
    result: warnings.length === 0 ? result("config", "ok", what, { notes: ignored }) : result(
      "config",
      "warn",
      `${what}: ${warnings.length} warning${warnings.length === 1 ? "" : "s"}`,
      {
        fix: "see each warning below; the proxy starts, but logs each one",
        notes: [...warnings, ...ignored],
      },
    ),
  };
}
