/**
 * `mcp-audit doctor [--json] [--timeout MS] [--client NAME]... [--file PATH]... [proxy flags]
 * [-- UPSTREAM...]`: checks a configuration
 * end to end and prints one line per check, each failure with its fix.
 *
 * The proxy's own flags (`--config`, `--upstream`, `--transport`, `--storage`, `--port`,
 * `--no-dashboard`, …) and the upstream after `--` are read by the proxy's parser, so the doctor
 * checks the very configuration the proxy would run with. The checks, in order (one a later one
 * needs that fails makes it `skip`):
 *
 * 1. `config`   it loads (file, environment, flags), its warnings, the sources in force;
 * 2. `log`      the audit log can be written (nothing is written to it);
 * 3. `chain`    the log verifies, with the configured key;
 * 4. `signing`  the key is there and fit;
 * 5. `ports`    the listeners it turns on can bind;
 * 6. `upstream` the upstream answers `initialize` (nothing else is sent to it);
 * 7. `clients`  with `--client NAME` / `--file PATH`: the entries mcp-audit wraps there point at
 *               programs and files that exist.
 *
 * Exit codes: 0 every check passed (warnings allowed), 1 a check failed, 2 bad usage.
 *
 * @module
 */
import { parseCommand } from "./args.ts";
import { UsageError } from "./errors.ts";
import { checkChain } from "../doctor/chain_check.ts";
import { checkClients } from "../doctor/clients_check.ts";
import { checkConfig } from "../doctor/config_check.ts";
import { checkLog, ownIdentity } from "../doctor/log_check.ts";
import { checkPorts } from "../doctor/ports_check.ts";
import { type CheckResult, result } from "../doctor/result.ts";
import { oneLine, renderJson, renderText } from "../doctor/render.ts";
import { checkSigning, secretSource } from "../doctor/signing_check.ts";
import { checkUpstream } from "../doctor/upstream_check.ts";

/** Everything the command touches outside itself. */
export interface DoctorIo {
  env: Readonly<Record<string, string>>;
  out: (line: string) => void;
  err: (line: string) => void;
  /** Colour the status words (stdout is a terminal). */
  color: boolean;
  /** Ends the wait for the upstream early (Ctrl-C). */
  signal?: AbortSignal;
  /** Where relative paths in client files are resolved; the process's unless given. */
  cwd?: string;
  /** A monotonic clock in milliseconds; `performance.now` unless given. */
  mono?: () => number;
}

const USAGE =
  "usage: mcp-audit doctor [--json] [--timeout MS] [--client NAME]... [--file PATH]... " +
  "[--config PATH] [proxy flags] [-- UPSTREAM_CMD ARGS...]";
/** How long the upstream gets to answer `initialize`, unless `--timeout` says otherwise. */
const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_TIMEOUT_MS = 600_000;

/** The doctor's own flags, and the rest for the proxy's parser. */
interface DoctorArgs {
  json: boolean;
  clients: string[];
  files: string[];
  help: boolean;
  timeoutMs: number;
  proxyArgs: string[];
}

/**
 * Takes `--json`, `--timeout MS`, `--client NAME`, `--file PATH` and `--help` out of `args` (as
 * `-name` too, as Go spells flags).
 */
export function parseDoctorArgs(args: readonly string[]): DoctorArgs {
  const out: DoctorArgs = {
    json: false,
    clients: [],
    files: [],
    help: false,
    timeoutMs: DEFAULT_TIMEOUT_MS,
    proxyArgs: [],
  };
  const dashdash = args.indexOf("--");
  const own = dashdash === -1 ? args : args.slice(0, dashdash);
  for (let i = 0; i < own.length; i++) {
    const token = own[i]!;
    const m = /^--?(json|timeout|client|file|help|h)(?:=([\s\S]*))?$/.exec(token);
    if (m === null) {
      out.proxyArgs.push(token);
      // A proxy flag's value is its next word, which may look like one of ours: keep it with it.
      if (/^--?[^=]+$/.test(token) && !isBooleanProxyFlag(token) && i + 1 < own.length) {
        out.proxyArgs.push(own[++i]!);
      }
      continue;
    }
    const name = m[1]!;
    if (name === "timeout") {
      const text = m[2] ?? own[++i];
      if (
        text === undefined || !/^\d+$/.test(text) || Number(text) < 1 ||
        Number(text) > MAX_TIMEOUT_MS
      ) {
        throw new UsageError(
          `doctor: --timeout: must be milliseconds from 1 to ${MAX_TIMEOUT_MS}, got ${
            JSON.stringify(text ?? "")
          }`,
        );
      }
      out.timeoutMs = Number(text);
    } else if (name === "client" || name === "file") {
      const value = m[2] ?? own[++i];
      if (value === undefined || value === "") {
        throw new UsageError(`doctor: --${name} needs a value`);
      }
      (name === "client" ? out.clients : out.files).push(value);
    } else if (m[2] !== undefined) {
      throw new UsageError(`doctor: --${name} takes no value`);
    } else if (name === "json") out.json = true;
    else out.help = true;
  }
  if (dashdash !== -1) out.proxyArgs.push(...args.slice(dashdash));
  return out;
}

/** The proxy's flags that take no value (so the word after them is not theirs). */
function isBooleanProxyFlag(token: string): boolean {
  return /^--?(no-dashboard|no-metrics|version|v)$/.test(token);
}

/** A check that cannot run because `on` failed. */
function skipped(name: string, on: string): CheckResult {
  return result(name, "skip", `needs ${on}, which failed`);
}

/** Runs the command; returns the exit code. */
export async function doctorCommand(args: string[], io: DoctorIo): Promise<number> {
  let parsed: DoctorArgs;
  let command;
  try {
    parsed = parseDoctorArgs(args);
    if (parsed.help) {
      io.out(USAGE);
      return 0;
    }
    command = parseCommand(parsed.proxyArgs);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.err(`mcp-audit doctor: ${oneLine(e.message.replace(/^doctor: /, ""))} (${USAGE})`);
    return 2;
  }
  if (command.kind === "help") {
    io.out(USAGE);
    return 0;
  }
  if (command.kind !== "proxy") {
    io.err(`mcp-audit doctor: expected the proxy's flags, not ${command.kind} (${USAGE})`);
    return 2;
  }
  const mono = io.mono ?? (() => performance.now());
  const results: CheckResult[] = [];
  const config = await checkConfig(command, io.env);
  results.push(config.result);
  const loaded = config.loaded;
  if (loaded === undefined) {
    for (const name of ["log", "chain", "signing", "ports", "upstream"]) {
      results.push(skipped(name, "config"));
    }
  } else {
    const c = loaded.config;
    results.push(checkLog(c.audit, ownIdentity()));
    // Checked before the chain, whose verification needs to know the key is usable; shown after.
    const signing = checkSigning(c.audit, secretSource(loaded.setBy));
    results.push(await checkChain(c.audit, { mono, keyUsable: signing.status !== "fail" }));
    results.push(signing);
    results.push(checkPorts(c));
    results.push(
      await checkUpstream(c, {
        env: io.env,
        timeoutMs: parsed.timeoutMs,
        signal: io.signal,
        mono,
      }),
    );
  }
  if (parsed.clients.length > 0 || parsed.files.length > 0) {
    results.push(
      checkClients({ clients: parsed.clients, files: parsed.files }, {
        os: Deno.build.os,
        env: io.env,
        cwd: io.cwd ?? Deno.cwd(),
      }),
    );
  }
  for (const line of parsed.json ? renderJson(results) : renderText(results, io.color)) {
    io.out(line);
  }
  return results.some((r) => r.status === "fail") ? 1 : 0;
}
