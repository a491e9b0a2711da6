/**
 * The release smoke test: runs a built mcp-audit the way a user would, on the runner of its own
 * OS. The command to test is given after `--`, so the same checks run against a compiled binary
 * and against the source:
 *
 * ```sh
 * deno run -A scripts/release/smoke.ts --expect-version 1.2.3 -- ./mcp-audit
 * deno run -A scripts/release/smoke.ts -- deno run -A main.ts
 * ```
 *
 * It checks, in order, and stops at the first failure with exit 1:
 * 1. `--version` prints `mcp-audit <version> (commit <sha>, built <date>)`;
 * 2. a stdio round trip through a tiny upstream (smoke_upstream.ts, run by this Deno):
 *    initialize, tools/list and a tools/call whose answer arrives byte for byte;
 * 3. while it runs, with SQLite storage, the dashboard serves its page (embedded files) and its
 *    API reads the records from SQLite, and the metrics endpoint answers (the telemetry worker,
 *    an embedded module);
 * 4. the proxy ends with 0 when its client closes stdin, and `verify` finds the SQLite log intact
 *    and signed.
 *
 * @module
 */
import { isAbsolute, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { isRecord, parseOptions, REFUSED, usage } from "./common.ts";

/** A check that failed; the message says what was expected and what came. */
export class SmokeError extends Error {
  override name = "SmokeError";
}

/** The longest line read from the proxy; a longer one fails the check. */
const MAX_LINE = 1 << 20;
/** The most any one step may take; a step that takes longer fails. */
const STEP_MS = 60_000;

/** The `--version` line: `mcp-audit <version> (commit <sha>, built <date>)`. */
export const VERSION_LINE =
  /^mcp-audit (\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?) \(commit ([0-9a-f]{7,64}|unknown), built (\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z|unknown)\)$/;

/** Lines from a byte stream, each at most MAX_LINE long. */
class Lines {
  #reader: ReadableStreamDefaultReader<string>;
  #pending = "";
  #what: string;
  constructor(stream: ReadableStream<Uint8Array<ArrayBuffer>>, what: string) {
    this.#reader = stream.pipeThrough(new TextDecoderStream()).getReader();
    this.#what = what;
  }
  /** The next line, or null at the end. */
  async next(): Promise<string | null> {
    for (;;) {
      const end = this.#pending.indexOf("\n");
      if (end !== -1) {
        const line = this.#pending.slice(0, end).replace(/\r$/, "");
        this.#pending = this.#pending.slice(end + 1);
        return line;
      }
      if (this.#pending.length > MAX_LINE) {
        throw new SmokeError(`${this.#what}: a line longer than ${MAX_LINE} characters`);
      }
      const { done, value } = await this.#reader.read();
      if (done) return null;
      this.#pending += value;
    }
  }
  async cancel(): Promise<void> {
    await this.#reader.cancel().catch(() => {});
  }
}

/** Rejects with a SmokeError naming `what` when `promise` takes longer than STEP_MS. */
async function step<T>(what: string, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new SmokeError(`${what}: no result within ${STEP_MS / 1000} s`)),
      STEP_MS,
    );
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

function say(line: string): void {
  console.log(`smoke: ${line}`);
}

async function runOnce(argv: readonly string[], env: Record<string, string>, cwd: string) {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new SmokeError("no command given after --");
  const out = await new Deno.Command(cmd, {
    args,
    env,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

/** What a run expects of the version line. */
export interface Expect {
  version?: string | undefined;
  commit?: string | undefined;
}

/** Step 1: the version line. */
async function checkVersion(
  command: readonly string[],
  expect: Expect,
  cwd: string,
): Promise<void> {
  const { code, stdout, stderr } = await step(
    "--version",
    runOnce([...command, "--version"], {}, cwd),
  );
  const line = stdout.trim();
  const match = VERSION_LINE.exec(line);
  if (code !== 0 || match === null) {
    throw new SmokeError(
      `--version: expected exit 0 and "mcp-audit <version> (commit <sha>, built <date>)", got exit ${code}: ${
        JSON.stringify(line)
      } ${stderr.slice(-500)}`,
    );
  }
  if (expect.version !== undefined && match[1] !== expect.version) {
    throw new SmokeError(`--version: expected version ${expect.version}, got ${match[1]}`);
  }
  if (expect.commit !== undefined && match[2] !== expect.commit) {
    throw new SmokeError(`--version: expected commit ${expect.commit}, got ${match[2]}`);
  }
  say(`--version: ${line}`);
}

async function getText(
  url: string,
  what: string,
): Promise<{ status: number; type: string; body: string }> {
  const res = await step(what, fetch(url, { signal: AbortSignal.timeout(STEP_MS) }));
  const body = await step(what, res.text());
  return { status: res.status, type: res.headers.get("content-type") ?? "", body };
}

/** Steps 2 to 4. */
async function checkProxy(command: readonly string[], dir: string): Promise<void> {
  const [cmd, ...args] = command;
  if (cmd === undefined) throw new SmokeError("no command given after --");
  const secret = [...crypto.getRandomValues(new Uint8Array(32))].map((b) =>
    b.toString(16).padStart(2, "0")
  )
    .join("");
  const db = `${dir}/audit.db`;
  const env = {
    AUDIT_SECRET: secret,
    MCP_AUDIT_AUDIT_STORAGE: "sqlite",
    MCP_AUDIT_AUDIT_SQLITE_PATH: db,
    MCP_AUDIT_DASHBOARD_PORT: "0",
    MCP_AUDIT_METRICS_PORT: "0",
  };
  const upstream = [
    Deno.execPath(),
    "run",
    "--no-config",
    "--no-prompt",
    fileURLToPath(new URL("./smoke_upstream.ts", import.meta.url)),
  ];
  const child = new Deno.Command(cmd, {
    args: [...args, "--", ...upstream],
    env,
    cwd: dir,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdout = new Lines(child.stdout, "the proxy's stdout");
  const stderrLines: string[] = [];
  let containment: { kind: string; reason: string } | undefined;
  const addresses = new Map<string, string>();
  const listening = new Map<string, PromiseWithResolvers<string>>([
    ["dashboard", Promise.withResolvers<string>()],
    ["metrics", Promise.withResolvers<string>()],
  ]);
  const stderrDone = (async () => {
    const lines = new Lines(child.stderr, "the proxy's stderr");
    for (let line = await lines.next(); line !== null; line = await lines.next()) {
      if (stderrLines.length < 200) stderrLines.push(line);
      let fields: unknown;
      try {
        fields = JSON.parse(line);
      } catch {
        continue;
      }
      if (isRecord(fields) && typeof fields.containment === "string") {
        const reason = typeof fields.reason === "string" ? fields.reason : "";
        containment = { kind: fields.containment, reason };
      }
      if (
        !isRecord(fields) || typeof fields.msg !== "string" || typeof fields.address !== "string"
      ) continue;
      const name = fields.msg.replace(/ listening$/, "");
      if (fields.msg.endsWith(" listening") && !addresses.has(name)) {
        addresses.set(name, fields.address);
        listening.get(name)?.resolve(fields.address);
      }
    }
    for (const waiting of listening.values()) {
      waiting.reject(new SmokeError("the proxy ended before it listened"));
    }
  })();
  for (const waiting of listening.values()) waiting.promise.catch(() => {});
  const writer = child.stdin.getWriter();
  const send = (message: unknown) =>
    writer.write(new TextEncoder().encode(JSON.stringify(message) + "\n"));
  const next = async (what: string): Promise<string> => {
    const line = await step(what, stdout.next());
    if (line === null) throw new SmokeError(`${what}: the proxy closed its stdout`);
    return line;
  };
  let ended = false;
  try {
    await send({
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: {
        protocolVersion: "2025-06-18",
        capabilities: {},
        clientInfo: { name: "smoke", version: "1" },
      },
    });
    const init: unknown = JSON.parse(await next("initialize"));
    if (
      !isRecord(init) || !isRecord(init.result) || !isRecord(init.result.serverInfo) ||
      init.result.serverInfo.name !== "smoke-upstream"
    ) {
      throw new SmokeError(
        `initialize: expected the upstream's serverInfo, got ${JSON.stringify(init)}`,
      );
    }
    await send({ jsonrpc: "2.0", method: "notifications/initialized" });
    await send({ jsonrpc: "2.0", id: 2, method: "tools/list" });
    const list = await next("tools/list");
    if (!list.includes('"name":"echo"')) {
      throw new SmokeError(`tools/list: expected the echo tool, got ${list}`);
    }
    await send({
      jsonrpc: "2.0",
      id: 3,
      method: "tools/call",
      params: { name: "echo", arguments: { text: "smoke ✓" } },
    });
    const call = await next("tools/call");
    const expected =
      '{"jsonrpc":"2.0", "id":3, "result":{"content":[{"type":"text","text":"smoke ✓"}], "note":"caf\\u00e9"}}';
    if (call !== expected) {
      throw new SmokeError(`tools/call: expected the upstream's bytes ${expected}, got ${call}`);
    }
    say("stdio round trip: initialize, tools/list, tools/call answered byte for byte");
    // The binary is built with every permission so that, on Linux, the upstream's descendants end
    // with it (a cgroup, or /proc); narrower flags show as "group" for want of permissions.
    if (Deno.build.os === "linux" && containment?.reason.includes("permissions")) {
      throw new SmokeError(
        `containment: ${containment.kind}: ${containment.reason}: was the binary compiled without --allow-all?`,
      );
    }
    say(`containment: ${containment?.kind ?? "not logged"}`);

    const dashboard = await step(
      "the dashboard listening line",
      listening.get("dashboard")?.promise ?? Promise.reject(),
    );
    const page = await getText(`${dashboard}/`, "the dashboard page");
    if (
      page.status !== 200 || !page.type.startsWith("text/html") ||
      !page.body.includes("<title>mcp-audit dashboard</title>")
    ) {
      throw new SmokeError(
        `dashboard: expected its page (200, text/html), got ${page.status} ${page.type}: ${
          page.body.slice(0, 200)
        }`,
      );
    }
    const info = await getText(`${dashboard}/api/v1/info`, "the dashboard API");
    const infoJson: unknown = info.status === 200 ? JSON.parse(info.body) : null;
    if (!isRecord(infoJson) || infoJson.storage !== "sqlite") {
      throw new SmokeError(
        `dashboard: expected /api/v1/info to say storage sqlite, got ${info.status}: ${
          info.body.slice(0, 300)
        }`,
      );
    }
    const records = await getText(
      `${dashboard}/api/v1/records?method=tools/call&limit=10`,
      "the dashboard API",
    );
    if (records.status !== 200 || !records.body.includes('"tools/call"')) {
      throw new SmokeError(
        `dashboard: expected the tools/call records from SQLite, got ${records.status}: ${
          records.body.slice(0, 300)
        }`,
      );
    }
    say(`dashboard: page and API at ${dashboard}, records read from SQLite`);

    const metrics = await step(
      "the metrics listening line",
      listening.get("metrics")?.promise ?? Promise.reject(),
    );
    const scrape = await getText(`${metrics}/metrics`, "the metrics endpoint");
    if (scrape.status !== 200 || !scrape.body.includes("mcp_audit_")) {
      throw new SmokeError(
        `metrics: expected 200 with mcp_audit_ series, got ${scrape.status}: ${
          scrape.body.slice(0, 300)
        }`,
      );
    }
    say(`metrics: ${metrics}/metrics answered`);

    await writer.close();
    const status = await step("the proxy's end after stdin closed", child.status);
    ended = true;
    if (status.code !== 0) {
      throw new SmokeError(`the proxy ended with ${status.code} after stdin closed, expected 0`);
    }
    say("the proxy ended with 0 when its client closed stdin");
  } catch (e) {
    if (e instanceof SmokeError) {
      e.message += `\nproxy stderr (last lines):\n${stderrLines.slice(-20).join("\n")}`;
    }
    throw e;
  } finally {
    if (!ended) {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      await child.status;
    }
    await stdout.cancel();
    await stderrDone.catch(() => {});
  }

  const verify = await step(
    "verify",
    runOnce([...command, "verify", db], { AUDIT_SECRET: secret }, dir),
  );
  if (verify.code !== 0) {
    throw new SmokeError(
      `verify ${db}: expected exit 0 (intact and signed), got ${verify.code}:\n${verify.stdout}${verify.stderr}`,
    );
  }
  say(`verify: ${verify.stdout.trim().split("\n").pop() ?? ""}`);
}

/**
 * Runs every check against `command`; throws a SmokeError at the first that fails.
 *
 * @example
 * ```ts ignore
 * await smoke(["./mcp-audit"], { version: "1.2.3" });
 * ```
 */
export async function smoke(command: readonly string[], expect: Expect = {}): Promise<void> {
  // The checks run in a folder of their own (so no ./config.yaml is read): a command given as a
  // relative path (try/mcp-audit) is found from here first.
  const [first, ...rest] = command;
  const program = first !== undefined && /[\\/]/.test(first) && !isAbsolute(first)
    ? resolve(first)
    : first;
  const absolute = program === undefined ? [] : [program, ...rest];
  const dir = await Deno.makeTempDir({ prefix: "mcp-audit-smoke-" });
  try {
    await checkVersion(absolute, expect, dir);
    await checkProxy(absolute, dir);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Runs the command line; returns the exit code (0 passed, 1 failed, 2 bad usage). */
export async function main(argv: string[]): Promise<number> {
  const dashdash = argv.indexOf("--");
  const command = dashdash === -1 ? [] : argv.slice(dashdash + 1);
  const values = parseOptions("smoke", dashdash === -1 ? argv : argv.slice(0, dashdash), {
    "expect-version": { type: "string" },
    "expect-commit": { type: "string" },
  });
  if (values === null) return REFUSED;
  if (command.length === 0) {
    return usage("smoke.ts [--expect-version V] [--expect-commit SHA] -- MCP_AUDIT_COMMAND...");
  }
  try {
    await smoke(command, { version: values["expect-version"], commit: values["expect-commit"] });
  } catch (e) {
    if (e instanceof SmokeError) {
      console.error(`smoke: FAILED: ${e.message}`);
      return 1;
    }
    throw e;
  }
  say("all checks passed");
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
