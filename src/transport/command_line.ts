/**
 * Splits an upstream command string into argv with shell-like quoting, so that it can be started
 * without a shell on every OS.
 *
 * @module
 */

/** Raised for a command string that cannot be split. */
export class CommandLineError extends Error {
  override name = "CommandLineError";
}

/**
 * Splits `line` at unquoted white space. Single quotes keep everything literally; double quotes
 * keep everything but `\"` and `\\`; outside quotes a backslash escapes the next character. On
 * Windows a backslash is literal unless it precedes a quote, so `C:\Temp` survives.
 *
 * @example
 * ```ts
 * splitCommandLine(`npx -y "@scope/pkg" '/tmp/my dir'`); // ["npx", "-y", "@scope/pkg", "/tmp/my dir"]
 * ```
 */
export function splitCommandLine(line: string, windows = false): string[] {
  const out: string[] = [];
  let current = "";
  let inWord = false;
  let quote: "'" | '"' | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote === "'") {
      if (c === "'") quote = null;
      else current += c;
      continue;
    }
    if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === "\\" && (line[i + 1] === '"' || (!windows && line[i + 1] === "\\"))) {
        current += line[++i];
      } else current += c;
      continue;
    }
    if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (
      c === "\\" && i + 1 < line.length && (!windows || line[i + 1] === '"' || line[i + 1] === "'")
    ) {
      current += line[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) out.push(current);
      current = "";
      inWord = false;
    } else {
      current += c;
      inWord = true;
    }
  }
  if (quote !== null) throw new CommandLineError(`unterminated ${quote} quote`);
  if (inWord) out.push(current);
  return out;
}

/**
 * The proxy's secrets among the Go tool's unprefixed variables: the signing secret, and the
 * dashboard's token (read as `dashboard.auth.token`). Other unprefixed names (`PROXY_PORT`, …) are
 * too generic to take from a server that may read them for itself, and hold no secret.
 */
const SECRET_NAMES: ReadonlySet<string> = new Set(["AUDIT_SECRET", "DASHBOARD_AUTH_TOKEN"]);

/** The environment for the upstream: ours, without the proxy's own secrets. */
export function upstreamEnv(env: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (SECRET_NAMES.has(name) || name.startsWith("MCP_AUDIT_")) continue;
    out[name] = value;
  }
  return out;
}
