/**
 * What the stdio bench (`scripts/bench.ts`) and the HTTP bench (`scripts/bench_http.ts`) share:
 * the repository's paths, the messages they send, the proxy's environment, child processes whose
 * stderr is kept, `main.ts verify`, the V8 CPU profiler over the inspector and the summary of its
 * profiles, statistics, the report's number and table formatting, and the command line's common
 * flags.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { parseArgs, type ParseArgsConfig } from "node:util";

/** The repository's root, as a path ending in a separator. */
export const REPO: string = fileURLToPath(new URL("../", import.meta.url));
/** The repository's root, as a `file:` URL ending in `/`. */
export const REPO_URL: string = new URL("../", import.meta.url).href;
/** The proxy's entry point. */
export const MAIN: string = fileURLToPath(new URL("../main.ts", import.meta.url));

/** The path of `name` in `scripts/`. */
export function scriptPath(name: string): string {
  return fileURLToPath(new URL(name, import.meta.url));
}

/** The audit secret of the proxies (32+ bytes, so the proxy does not warn about a short one). */
export const SECRET = "bench-secret-0123456789abcdef0123456789abcdef";
/** How long a process gets to exit, and again after each signal, before it is killed. */
export const EXIT_GRACE_MS = 10_000;
/** V8's CPU profiler interval under `--profile`, in µs. */
export const PROFILE_INTERVAL_US = 100;
/** The MCP protocol version the benches' clients speak. */
export const PROTOCOL_VERSION = "2025-06-18";
/** How much of a child's stderr is kept, from its end. */
const STDERR_KEEP = 16 << 10;

/** Where a progress line goes (stderr, in both benches). */
export type Progress = (text: string) => void;

// A realistic `tools/call` of about 200 bytes, in two parts around its id. `token` is one of the
// default redaction patterns, so every request is redacted on its way into the log.
/** The part of {@link toolCall} before the id. */
export const CALL_HEAD = `{"jsonrpc":"2.0","id":`;
/** The part of {@link toolCall} after the id. */
export const CALL_TAIL = `,"method":"tools/call","params":{"name":"search_issues",` +
  `"arguments":{"repo":"acme/widgets","query":"is:open label:bug sort:updated","limit":20,` +
  `"token":"ghp_8f2Kd93LmQz0aXv7Rt1YbN4cWu6Hs5EjPo2g"}}}`;

/** A realistic `tools/call` of about 200 bytes with id `id` (without a line feed). */
export function toolCall(id: number): string {
  return CALL_HEAD + id + CALL_TAIL;
}

/** The client's `initialize` request, id `"init"` (without a line feed). */
export const INITIALIZE = `{"jsonrpc":"2.0","id":"init","method":"initialize","params":{` +
  `"protocolVersion":"${PROTOCOL_VERSION}","capabilities":{},` +
  `"clientInfo":{"name":"mcp-audit-bench","version":"1"}}}`;
/** The client's `notifications/initialized` (without a line feed). */
export const INITIALIZED = `{"jsonrpc":"2.0","method":"notifications/initialized"}`;

/** Nearest-rank percentile of sorted samples. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/** The median of `values`; NaN when there are none. */
export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Resolves with `promise`'s value, or with `undefined` after `ms`. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  const timeout = AbortSignal.timeout(ms);
  const expired = new Promise<undefined>((resolve) => {
    timeout.addEventListener("abort", () => resolve(undefined), { once: true });
  });
  return await Promise.race([promise, expired]);
}

/** Our environment without mcp-audit's settings or secrets. */
export function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(Deno.env.toObject())) {
    if (name.startsWith("MCP_AUDIT_") || name === "AUDIT_SECRET") continue;
    env[name] = value;
  }
  return env;
}

/**
 * The environment of a proxy run: ours, minus any mcp-audit settings, plus the bench's: JSONL
 * storage at `logPath` with `durability`, signing and redaction on.
 */
export function proxyEnv(logPath: string, durability: string): Record<string, string> {
  return {
    ...cleanEnv(),
    AUDIT_SECRET: SECRET,
    MCP_AUDIT_AUDIT_STORAGE: "jsonl",
    MCP_AUDIT_AUDIT_PATH: logPath,
    MCP_AUDIT_AUDIT_DURABILITY: durability,
    MCP_AUDIT_AUDIT_SIGN: "true",
    MCP_AUDIT_MIDDLEWARE_REDACT_ENABLED: "true",
    // The bench measures the audit path; a 60-a-minute limit would answer most calls itself, and
    // the dashboard and metrics would need --allow-net, which the stdio proxy's command line does
    // not give.
    MCP_AUDIT_MIDDLEWARE_RATE_LIMIT_ENABLED: "false",
    MCP_AUDIT_DASHBOARD_ENABLED: "false",
    MCP_AUDIT_METRICS_ENABLED: "false",
  };
}

/**
 * A child process of the bench, with a clean environment of its own, whose stderr is kept (the
 * last part of it) and can be waited on for a line. Its stdin and stdout are piped for
 * {@link BenchProcess.child}'s users when `pipes` is set, and null otherwise.
 */
export class BenchProcess {
  readonly label: string;
  protected readonly child: Deno.ChildProcess;
  #stderr = "";
  #stderrEnded = false;
  #stderrDone: Promise<void>;
  #stderrWaiters: (() => void)[] = [];

  constructor(
    label: string,
    argv: string[],
    env: Record<string, string>,
    cwd: string,
    pipes: boolean,
  ) {
    this.label = label;
    const [command, ...args] = argv;
    if (command === undefined) throw new Error(`${label}: empty command`);
    this.child = new Deno.Command(command, {
      args,
      env,
      clearEnv: true,
      cwd,
      stdin: pipes ? "piped" : "null",
      stdout: pipes ? "piped" : "null",
      stderr: "piped",
    }).spawn();
    const decoder = new TextDecoder();
    this.#stderrDone = this.child.stderr.pipeTo(
      new WritableStream({
        write: (chunk) => {
          const text = this.#stderr + decoder.decode(chunk, { stream: true });
          this.#stderr = text.slice(-STDERR_KEEP);
          this.#wake();
        },
      }),
    ).catch(() => {}).finally(() => {
      this.#stderrEnded = true;
      this.#wake();
    });
  }

  #wake(): void {
    for (const wake of this.#stderrWaiters.splice(0)) wake();
  }

  /** What the process wrote to stderr (the last part of it). */
  get stderr(): string {
    return this.#stderr;
  }

  /** Resolves with the first match of `pattern` in stderr, waiting for it to be written. */
  async stderrMatch(pattern: RegExp): Promise<RegExpMatchArray> {
    while (true) {
      const match = this.#stderr.match(pattern);
      if (match) return match;
      if (this.#stderrEnded) {
        throw new Error(
          `${this.label} never wrote ${pattern} to stderr; it ends:\n${this.#stderr.slice(-2000)}`,
        );
      }
      await new Promise<void>((resolve) => this.#stderrWaiters.push(resolve));
    }
  }

  /**
   * Waits for the exit: {@link EXIT_GRACE_MS}, then as long again after each of `signals` in turn,
   * then SIGKILL; and then for the end of stderr.
   */
  async waitExit(signals: readonly Deno.Signal[]): Promise<Deno.CommandStatus> {
    let status = await within(this.child.status, EXIT_GRACE_MS);
    for (const signal of signals) {
      if (status !== undefined) break;
      this.kill(signal);
      status = await within(this.child.status, EXIT_GRACE_MS);
    }
    if (status === undefined) {
      this.kill("SIGKILL");
      status = await this.child.status;
    }
    await this.#stderrDone;
    return status;
  }

  /** Sends `signal` to the process, if it is still running. */
  kill(signal: Deno.Signal): void {
    try {
      this.child.kill(signal);
    } catch {
      // It has exited already.
    }
  }
}

/** What `main.ts verify` said of a log. */
export interface VerifyOutput {
  exitCode: number;
  /** The first line `verify` printed: its summary (or of its errors, when it printed nothing). */
  summary: string;
  /** Every line it printed. */
  output: string[];
}

/** Runs `main.ts verify` on the audit log at `logPath`, with the bench's secret. */
export async function verifyLog(logPath: string, cwd: string): Promise<VerifyOutput> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-env", MAIN, "verify", logPath],
    env: { ...cleanEnv(), AUDIT_SECRET: SECRET },
    clearEnv: true,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  const output = decoder.decode(out.stdout).split("\n").filter((l) => l !== "");
  const errors = decoder.decode(out.stderr).trim();
  return {
    exitCode: out.code,
    summary: output[0] ?? errors.split("\n")[0] ?? "(no output)",
    output,
  };
}

/** The `deno run` flag that opens the inspector on any free port. */
export const INSPECT_ARG = "--inspect=127.0.0.1:0";
/** Deno's stderr banner once the inspector listens; the first group is its WebSocket URL. */
export const INSPECTOR_LISTENING = /Debugger listening on (ws:\/\/\S+)/;

/** The parts of a V8 CPU profile (`Profiler.stop`) that the summary reads. */
export interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    children?: number[];
  }[];
  samples: number[];
}

/** Whether `value` has the parts of a {@link CpuProfile}. */
export function isCpuProfile(value: unknown): value is CpuProfile {
  return typeof value === "object" && value !== null && "nodes" in value &&
    Array.isArray(value.nodes) && "samples" in value && Array.isArray(value.samples);
}

/** A minimal Chrome DevTools Protocol client over the inspector's WebSocket. */
export class Inspector {
  #socket: WebSocket;
  #next = 1;
  #waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.addEventListener("message", (event) => {
      const message: unknown = JSON.parse(String(event.data));
      if (typeof message !== "object" || message === null || !("id" in message)) return;
      const waiter = this.#waiting.get(Number(message.id));
      if (waiter === undefined) return;
      this.#waiting.delete(Number(message.id));
      if ("error" in message) waiter.reject(new Error(JSON.stringify(message.error)));
      else waiter.resolve("result" in message ? message.result : undefined);
    });
    socket.addEventListener("close", () => {
      for (const w of this.#waiting.values()) w.reject(new Error("inspector connection closed"));
      this.#waiting.clear();
    });
  }

  /** Opens the inspector's WebSocket at `url`. */
  static async connect(url: string): Promise<Inspector> {
    const socket = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      socket.addEventListener("open", () => resolve(), { once: true });
      socket.addEventListener("error", () => reject(new Error(`cannot connect to ${url}`)), {
        once: true,
      });
    });
    return new Inspector(socket);
  }

  /** Calls `method` and resolves with its result. */
  send(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
      this.#socket.send(JSON.stringify({ id, method, params }));
    });
  }

  close(): void {
    this.#socket.close();
  }
}

/** A profile taken by {@link profileWhile}. */
export interface Profiled<T> {
  /** What the profiled work resolved with. */
  result: T;
  profile: CpuProfile;
  /** Where the profile was saved. */
  file: string;
}

/**
 * Runs `work` under the V8 CPU profiler of the process whose inspector listens at `inspectorUrl`,
 * and saves the profile as `.bench/<name>-<time>.cpuprofile` in the repository (for Chrome
 * DevTools).
 */
export async function profileWhile<T>(
  inspectorUrl: string,
  name: string,
  work: () => Promise<T>,
): Promise<Profiled<T>> {
  const inspector = await Inspector.connect(inspectorUrl);
  try {
    await inspector.send("Profiler.enable");
    await inspector.send("Profiler.setSamplingInterval", { interval: PROFILE_INTERVAL_US });
    await inspector.send("Profiler.start");
    const result = await work();
    const stopped = await inspector.send("Profiler.stop");
    const profile = typeof stopped === "object" && stopped !== null && "profile" in stopped
      ? stopped.profile
      : undefined;
    if (!isCpuProfile(profile)) throw new Error("the inspector returned no CPU profile");
    const file = `${REPO}.bench/${name}-${Date.now()}.cpuprofile`;
    await Deno.writeTextFile(file, JSON.stringify(profile));
    return { result, profile, file };
  } finally {
    inspector.close();
  }
}

/** A script's URL relative to the repository, or as `npm:package/…`. */
export function shortUrl(url: string): string {
  if (url.startsWith(REPO_URL)) return url.slice(REPO_URL.length);
  return url.replace(/^.*\/(node_modules|registry\.npmjs\.org)\//, "npm:");
}

/** Where one function's share of the profile's samples. */
export interface ProfileEntry {
  function: string;
  percent: number;
}

/** The shares of a profile's samples by function, from {@link summarizeProfile}. */
export interface ProfileSummary {
  /** Time spent in the function itself. */
  self: ProfileEntry[];
  /** Time spent in the function and what it called. */
  inclusive: ProfileEntry[];
  /** Samples left out because a function on their stack matched `leaveOut`. */
  leftOut: number;
}

/**
 * Self and inclusive sample shares per function, largest first, `top` of each. Samples with a
 * function matching `leaveOut` anywhere on their stack are left out, of the shares' total too.
 */
export function summarizeProfile(
  profile: CpuProfile,
  top: number,
  leaveOut?: RegExp,
): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const name = (id: number): string => {
    const f = byId.get(id)!.callFrame;
    const where = f.url === "" ? "" : ` ${shortUrl(f.url)}:${f.lineNumber + 1}`;
    return `${f.functionName || "(anonymous)"}${where}`;
  };
  const hits = new Map<number, number>();
  for (const s of profile.samples) hits.set(s, (hits.get(s) ?? 0) + 1);
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let leftOut = 0;
  for (const [id, count] of hits) {
    const stack: string[] = [];
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      stack.push(name(at));
    }
    if (leaveOut !== undefined && stack.some((n) => leaveOut.test(n))) {
      leftOut += count;
      continue;
    }
    self.set(stack[0]!, (self.get(stack[0]!) ?? 0) + count);
    // A recursive function counts once per sample.
    for (const n of new Set(stack)) {
      if (n !== "(root)") inclusive.set(n, (inclusive.get(n) ?? 0) + count);
    }
  }
  const total = profile.samples.length - leftOut;
  const rank = (m: Map<string, number>): ProfileEntry[] =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([fn, count]) => ({
      function: fn,
      percent: (100 * count) / total,
    }));
  return { self: rank(self), inclusive: rank(inclusive), leftOut };
}

/** The report's lines of a profile: the top 15 by self time and the top 25 by inclusive time. */
export function profileLines(
  profile: { self: ProfileEntry[]; inclusive: ProfileEntry[] },
): string[] {
  const entry = (e: ProfileEntry): string =>
    `    ${e.percent.toFixed(1).padStart(5)}%  ${e.function}`;
  return [
    "  self time:",
    ...profile.self.slice(0, 15).map(entry),
    "  inclusive time:",
    ...profile.inclusive.slice(0, 25).map(entry),
  ];
}

/** The flags every bench takes. */
const BENCH_OPTIONS = {
  quick: { type: "boolean" },
  json: { type: "boolean" },
  keep: { type: "boolean" },
  profile: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

type Options = NonNullable<ParseArgsConfig["options"]>;
/** The flags {@link parseBenchArgs} found: the common ones and `more`. */
type BenchFlags<T extends Options> = ReturnType<
  typeof parseArgs<{
    args: string[];
    options: typeof BENCH_OPTIONS & T;
    strict: true;
    allowPositionals: false;
  }>
>["values"];

/**
 * Parses a bench's command line: `--quick`, `--json`, `--keep`, `--profile`, `--help` and the
 * options `more`, no positionals. Returns the flags, or the exit code when the command is to stop
 * there: 2 after printing the error and `usage` to stderr, 0 after printing `usage` for `--help`.
 */
export function parseBenchArgs<const T extends Options>(
  args: string[],
  usage: string,
  more: T,
): BenchFlags<T> | number {
  let flags: BenchFlags<T>;
  try {
    flags = parseArgs({
      args,
      options: { ...BENCH_OPTIONS, ...more },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    console.error(`${(e as Error).message}\n${usage}`);
    return 2;
  }
  if ("help" in flags && flags.help === true) {
    console.log(usage);
    return 0;
  }
  return flags;
}

/** `n` rounded, with thousands separators. */
export const int = (n: number): string => Math.round(n).toLocaleString("en-US");
/** A ratio as a percentage with one decimal. */
export const pct = (r: number): string => `${(r * 100).toFixed(1)}%`;
/** Whether a target was met, as the report says it. */
export const met = (ok: boolean): string => ok ? "met" : "NOT MET";
/** `n` rounded, with thousands separators and its sign. */
export const signed = (n: number): string => `${n < 0 ? "-" : "+"}${int(Math.abs(n))}`;

/**
 * `rows` as a text table: the first row is the header, underlined; the first column is aligned
 * left, the others right.
 */
export function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)).join("  ")
      .trimEnd();
  const lines = rows.map(line);
  lines.splice(1, 0, widths.map((w) => "-".repeat(w)).join("  "));
  return lines;
}
