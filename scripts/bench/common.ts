/**
 * What the sections of `deno task bench` (`scripts/bench.ts`) share: the repository's paths and
 * the proxy tree under test, the messages they send, the proxy's environment, child processes
 * whose stderr is kept, `main.ts verify` and the tally of what a log says happened to the calls,
 * the V8 CPU profiler over the inspector and the summary of its profiles, statistics and the
 * order of the targets in a round, and the report's number and table formatting.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { parseJson } from "../../src/jsonrpc/json.ts";
import { type SinkCounts, sinkCounts, sinkWait } from "../bench_otlp_sink.ts";

/** The repository's root, as a path ending in a separator. */
export const REPO: string = fileURLToPath(new URL("../../", import.meta.url));
/** The repository's root, as a `file:` URL ending in `/`. */
export const REPO_URL: string = new URL("../../", import.meta.url).href;
/** This repository's entry point (the dashboard section and the default proxy tree). */
export const MAIN: string = fileURLToPath(new URL("../../main.ts", import.meta.url));

/** The path of `name` in `scripts/` (the fixtures that run as processes of their own). */
export function scriptPath(name: string): string {
  return fileURLToPath(new URL(`../${name}`, import.meta.url));
}

/**
 * The mcp-audit tree whose `main.ts` the bench runs as the proxy: this repository by default, or
 * another checkout (`--proxy-root`, `--main`) such as a `git worktree` of an older commit, for a
 * before-and-after in the same driver. Its own `deno.json` is passed to `deno run` so that its
 * own import map and lockfile apply.
 */
export interface ProxyTree {
  /** The tree's root, ending in a separator. */
  root: string;
  main: string;
  /** Its `deno.json`. */
  config: string;
  /** Its commit, when it is a git checkout. */
  commit: string | null;
  /**
   * Whether its configuration knows `audit.sync_interval_ms` (read from its schema, not
   * assumed: older trees do not).
   */
  syncInterval: boolean;
}

/** The tree of `main`, or of `root`'s `main.ts`; this repository's when neither is given. */
export async function proxyTree(opts: { main?: string; root?: string }): Promise<ProxyTree> {
  const abs = (p: string): string => p.startsWith("/") ? p : `${Deno.cwd()}/${p}`;
  const main = opts.main !== undefined
    ? abs(opts.main)
    : opts.root !== undefined
    ? `${abs(opts.root).replace(/\/$/, "")}/main.ts`
    : MAIN;
  const root = main.slice(0, main.lastIndexOf("/") + 1);
  await Deno.stat(main);
  const schema = await Deno.readTextFile(`${root}src/config/schema.ts`).catch(() => "");
  return {
    root,
    main,
    config: `${root}deno.json`,
    commit: await gitCommit(root),
    syncInterval: schema.includes("sync_interval_ms"),
  };
}

/** The commit checked out at `dir` (with `-dirty` when it has changes), or null. */
export async function gitCommit(dir: string): Promise<string | null> {
  const git = async (...args: string[]): Promise<string | null> => {
    try {
      const out = await new Deno.Command("git", {
        args: ["-C", dir, ...args],
        stdin: "null",
        stdout: "piped",
        stderr: "null",
      }).output();
      return out.code === 0 ? new TextDecoder().decode(out.stdout).trim() : null;
    } catch {
      return null;
    }
  };
  const head = await git("rev-parse", "--short=12", "HEAD");
  if (head === null) return null;
  const status = await git("status", "--porcelain", "--untracked-files=no");
  return status === null || status === "" ? head : `${head}-dirty`;
}

/** `deno run` of the tree's `main.ts` with `flags` (permissions, inspector) before it. */
export function proxyCommand(tree: ProxyTree, flags: readonly string[]): string[] {
  return [Deno.execPath(), "run", `--config=${tree.config}`, ...flags, tree.main];
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

/** Where a progress line goes (stderr). */
export type Progress = (text: string) => void;

/**
 * A few hundred bytes of prose in every call (`arguments.context`), as a model passes along what
 * it was asked: text the value detectors and the policy's regular expressions must read through.
 * It holds nothing any detector or custom pattern matches, so it reaches the log unchanged.
 */
export const PROSE = "Users report that the search page stalls when a filter combines several " +
  "labels, and the spinner never clears until the tab is reloaded. The slowdown started after " +
  "the index was rebuilt last week; before that, queries with three or four labels returned in " +
  "well under a second. Please check whether the new ranking step runs once per label instead " +
  "of once per query, and whether the cache key still includes the sort order. Steps to " +
  "reproduce are in the linked thread, and the screenshots show the network panel with the " +
  "request pending for about eight seconds.";

// A realistic `tools/call` of about 750 bytes, in two parts around its id. `token` is one of the
// default key patterns, so every request is redacted on its way into the log.
/** The part of {@link toolCall} before the id. */
export const CALL_HEAD = `{"jsonrpc":"2.0","id":`;
/** The part of {@link toolCall} after the id. */
export const CALL_TAIL = `,"method":"tools/call","params":{"name":"search_issues",` +
  `"arguments":{"repo":"acme/widgets","query":"is:open label:bug sort:updated","limit":20,` +
  `"token":"ghp_8f2Kd93LmQz0aXv7Rt1YbN4cWu6Hs5EjPo2g","context":${JSON.stringify(PROSE)}}}}`;

/** A realistic `tools/call` with id `id` (without a line feed). */
export function toolCall(id: number): string {
  return CALL_HEAD + id + CALL_TAIL;
}

/** The client's `initialize` request, id `"init"` (without a line feed). */
export const INITIALIZE = `{"jsonrpc":"2.0","id":"init","method":"initialize","params":{` +
  `"protocolVersion":"${PROTOCOL_VERSION}","capabilities":{},` +
  `"clientInfo":{"name":"mcp-audit-bench","version":"1"}}}`;
/** The client's `notifications/initialized` (without a line feed). */
export const INITIALIZED = `{"jsonrpc":"2.0","method":"notifications/initialized"}`;
/**
 * The client's `tools/list`, id `"list"` (without a line feed): once, after `initialize`, so that a
 * guarded proxy pins the tools and filters the list.
 */
export const TOOLS_LIST = `{"jsonrpc":"2.0","id":"list","method":"tools/list","params":{}}`;
/** How the answer to {@link TOOLS_LIST} begins, from a server or a proxy. */
export const TOOLS_LIST_ANSWER = `{"jsonrpc":"2.0","id":"list","result":{"tools":[`;

/**
 * The order of the targets in round `round`: forwards, then backwards, and so on, so that
 * a drift in the machine's speed, or the work one target leaves behind for the next, does
 * not always favour the same one.
 */
export function turnOrder<T>(items: readonly T[], round: number): T[] {
  return round % 2 === 0 ? [...items] : [...items].reverse();
}

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
 * storage at `logPath` with `durability`, signing and key redaction on. The guardrails are set by
 * the configuration file the proxy is given (`scripts/bench/guardrails.ts`); variables
 * would override it, so none is set here.
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
    // The dashboard and metrics would need --allow-net, which the stdio proxy's command line does
    // not give.
    MCP_AUDIT_DASHBOARD_ENABLED: "false",
    MCP_AUDIT_METRICS_ENABLED: "false",
  };
}

/**
 * What the telemetry configuration adds to {@link proxyEnv}: the Prometheus listener on a free
 * loopback port, and the OpenTelemetry export to the OTLP sink at `endpoint`
 * (`scripts/bench_otlp_sink.ts`) with a span for every exchange (`otel.methods: all`, so that
 * every call of the bench is exported, not only a share), and, when `logs`, every audit record as
 * a log record. The rest is the proxy's defaults: OTLP/JSON, no compression, a queue of 1024, 64
 * a batch, a flush every second.
 */
export function telemetryEnv(endpoint: string, logs: boolean): Record<string, string> {
  return {
    MCP_AUDIT_METRICS_ENABLED: "true",
    MCP_AUDIT_METRICS_PORT: "0",
    MCP_AUDIT_OTEL_ENABLED: "true",
    MCP_AUDIT_OTEL_ENDPOINT: endpoint,
    MCP_AUDIT_OTEL_METHODS: "all",
    MCP_AUDIT_OTEL_LOGS: String(logs),
  };
}

/**
 * What the telemetry configuration's proxy needs beyond the stdio proxy's permissions: the network
 * on loopback only, for its metrics listener and the OTLP sink; the host's name, for the
 * `host.name` resource attribute of what it exports.
 */
export const TELEMETRY_PERMISSIONS: readonly string[] = [
  "--allow-net=127.0.0.1",
  "--allow-sys=hostname",
];

/** Where a telemetry configuration exports, and whether log records too. */
export interface TelemetrySetup {
  /** The OTLP sink's base URL. */
  sinkUrl: string;
  logs: boolean;
}

/** How long a telemetry proxy that is up gets to say its metrics listen too. */
export const METRICS_WAIT_MS = 10_000;

/** The proxy's stderr line once its metrics listener is up; the first group is its base URL. */
export const METRICS_LISTENING = /"metrics listening".*?"address":"([^"]+)"/;

/** What an audit log says the proxy did with the bench's calls, from {@link tallyLog}. */
export interface LogTally {
  records: number;
  /** `tools/call` requests recorded. */
  calls: number;
  /** Answers to `tools/call` from the server (`kind: response`). */
  answered: number;
  /** `error` records: answers the proxy or the server gave instead of a result. */
  errors: number;
  /**
   * Answers the client went away before (`error` records with `data.delivered: false`): the
   * requests in flight when a load generator's run ended.
   */
  undelivered: number;
  /** Requests the guardrails refused (a decision other than `allow`). */
  refused: number;
  /** The decisions on `tools/call` requests, counted: `none`, `allow rule 49`, `deny default`… */
  decisions: Record<string, number>;
  /** Tools the proxy hid from `tools/list` answers. */
  hidden: string[];
  /** Event records by method (`audit/start`, `audit/tools_pinned`…). */
  events: Record<string, number>;
  /** The first record that shows a refused or failed call, for the error message. */
  firstProblem: string | null;
}

/** `value[key]` when `value` is an object that has it; `undefined` otherwise. */
function member(value: unknown, key: string): unknown {
  if (typeof value !== "object" || value === null || !Object.hasOwn(value, key)) return undefined;
  return Reflect.get(value, key);
}

/** A decision as the tally names it: `none`, `allow rule 49`, `deny default`, `rate_limited`. */
function decisionName(decision: unknown): string {
  if (typeof decision !== "object" || decision === null) return "none";
  const action = String(member(decision, "action"));
  const rule = member(decision, "rule");
  if (typeof rule === "number") return `${action} rule ${rule}`;
  return action === "allow" || action === "deny" ? `${action} default` : action;
}

/**
 * Reads the audit log at `path` and counts what happened to the calls: how many reached the server
 * and were answered by it, how many the guardrails refused or the proxy answered with an error,
 * and what the guardrails decided.
 */
export async function tallyLog(path: string): Promise<LogTally> {
  const t: LogTally = {
    records: 0,
    calls: 0,
    answered: 0,
    errors: 0,
    undelivered: 0,
    refused: 0,
    decisions: {},
    hidden: [],
    events: {},
    firstProblem: null,
  };
  const add = (line: string): void => {
    const r = parseJson(line);
    const kind = member(r, "kind");
    const method = member(r, "method");
    const decision = member(r, "decision");
    t.records++;
    const problem = (): void => {
      t.firstProblem ??= line.slice(0, 1000);
    };
    if (kind === "event") {
      t.events[String(method)] = (t.events[String(method)] ?? 0) + 1;
      return;
    }
    if (kind === "error" && member(member(member(r, "error"), "data"), "delivered") === false) {
      t.undelivered++;
    } else if (kind === "error") {
      t.errors++;
      problem();
    }
    const action = member(decision, "action");
    if (kind === "request") {
      if (action !== undefined && action !== "allow") {
        t.refused++;
        problem();
      }
      if (method === "tools/call") {
        t.calls++;
        const name = decisionName(decision);
        t.decisions[name] = (t.decisions[name] ?? 0) + 1;
      }
    }
    if (kind === "response" && method === "tools/call") t.answered++;
    const hidden = member(decision, "hidden");
    if (action === "filter" && Array.isArray(hidden)) {
      for (const h of hidden) t.hidden.push(String(member(h, "name")));
    }
  };
  using file = await Deno.open(path);
  let rest = "";
  for await (const text of file.readable.pipeThrough(new TextDecoderStream())) {
    const lines = (rest + text).split("\n");
    rest = lines.pop()!;
    for (const line of lines) if (line !== "") add(line);
  }
  if (rest !== "") add(rest);
  return t;
}

/**
 * Checks a {@link tallyLog} result: every call reached the server and got its answer, none was
 * refused or failed, and each was decided as `decision` (`none` with the guardrails off, `allow
 * rule N` with them on). Throws, naming the log, when not.
 */
export function checkTally(label: string, t: LogTally, decision: string): void {
  const problems: string[] = [];
  if (t.refused > 0) problems.push(`${t.refused} requests refused by the guardrails`);
  if (t.errors > 0) problems.push(`${t.errors} error records`);
  const other = Object.entries(t.decisions).filter(([name]) => name !== decision);
  if (other.length > 0) {
    problems.push(
      `calls decided otherwise than ${decision}: ` + other.map(([n, c]) => `${n} ×${c}`).join(", "),
    );
  }
  if (problems.length > 0) {
    throw new Error(
      `${label}: the audit log shows calls that did not reach the server: ${problems.join("; ")}` +
        (t.firstProblem === null ? "" : `; the first:\n${t.firstProblem}`),
    );
  }
}

/** A {@link LogTally} in one line, for the reports. */
export function tallyLine(t: LogTally): string {
  const decisions = Object.entries(t.decisions).map(([n, c]) => `${n} ×${int(c)}`).join(", ");
  const events = Object.entries(t.events).filter(([m]) => m !== "audit/start" && m !== "audit/stop")
    .map(([m, c]) => `${m} ×${c}`).join(", ");
  return `${int(t.calls)} calls, ${int(t.answered)} answered by the server, ${t.refused} ` +
    `refused, ${t.errors} errors` +
    (t.undelivered > 0 ? ` (and ${t.undelivered} in flight when a run ended)` : "") +
    `; decisions: ${decisions || "-"}` +
    (t.hidden.length > 0 ? `; hidden from tools/list: ${t.hidden.join(", ")}` : "") +
    (events !== "" ? `; events: ${events}` : "");
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
  /** Told of every whole line of stderr (see {@link onStderrLine}). */
  #lineListeners: ((line: string) => void)[] = [];
  /** The end of stderr after its last line feed, for the line listeners. */
  #partialLine = "";

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
          const decoded = decoder.decode(chunk, { stream: true });
          const text = this.#stderr + decoded;
          this.#stderr = text.slice(-STDERR_KEEP);
          if (this.#lineListeners.length > 0) this.#lines(decoded);
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

  #lines(decoded: string): void {
    const lines = (this.#partialLine + decoded).split("\n");
    // A line longer than the kept stderr is not one the listeners look for.
    this.#partialLine = lines.pop()!.slice(0, STDERR_KEEP);
    for (const line of lines) for (const listener of this.#lineListeners) listener(line);
  }

  /**
   * Calls `listener` with every whole line the process writes to stderr from now on, however much
   * it writes (the kept {@link stderr} is only its last part).
   */
  onStderrLine(listener: (line: string) => void): void {
    this.#lineListeners.push(listener);
  }

  /** The process id. */
  get pid(): number {
    return this.child.pid;
  }

  /** What the process wrote to stderr (the last part of it). */
  get stderr(): string {
    return this.#stderr;
  }

  /**
   * Resolves with the first match of `pattern` in stderr, waiting for it to be written; throws
   * when stderr ends without it, or when `signal` aborts first.
   */
  async stderrMatch(pattern: RegExp, signal?: AbortSignal): Promise<RegExpMatchArray> {
    while (true) {
      const match = this.#stderr.match(pattern);
      if (match) return match;
      if (this.#stderrEnded || signal?.aborted) {
        throw new Error(
          `${this.label} ${this.#stderrEnded ? "never wrote" : "did not write in time"} ` +
            `${pattern} to stderr; it ends:\n${this.#stderr.slice(-2000)}`,
        );
      }
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          signal?.removeEventListener("abort", wake);
          resolve();
        };
        this.#stderrWaiters.push(wake);
        signal?.addEventListener("abort", wake, { once: true });
      });
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

/** Runs the tree's `main.ts verify` on the audit log at `logPath`, with the bench's secret. */
export async function verifyLog(
  tree: ProxyTree,
  logPath: string,
  cwd: string,
): Promise<VerifyOutput> {
  const [command, ...args] = proxyCommand(tree, ["--allow-read", "--allow-env"]);
  const out = await new Deno.Command(command!, {
    args: [...args, "verify", logPath],
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
  /** µs between samples (the first from `startTime`). */
  timeDeltas?: number[];
  startTime?: number;
  endTime?: number;
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

/**
 * A script's URL relative to the repository (or to the proxy tree's root, for its `src/`), or as
 * `npm:package/…`.
 */
export function shortUrl(url: string): string {
  if (url.startsWith(REPO_URL)) return url.slice(REPO_URL.length);
  const npm = url.replace(/^.*\/(node_modules|registry\.npmjs\.org)\//, "npm:");
  if (npm !== url) return npm;
  // Another checkout of the proxy (`--proxy-root`): its own sources, relative to its root.
  return url.replace(/^file:\/\/.*?\/(src\/|main\.ts$)/, "$1");
}

/** Where one function's share of the profile's samples. */
export interface ProfileEntry {
  function: string;
  percent: number;
}

/** A part of the code whose share of a profile is reported: frames whose name matches. */
export interface ProfileGroup {
  name: string;
  /** Tested against `function url:line`, the url as {@link shortUrl} gives it. */
  pattern: RegExp;
}

/**
 * Work that only happens because an inspector is attached: Deno reports every fetch to it, and tees
 * each response body so that it can read a copy (its reads of that copy pull through the tee's
 * second branch).
 */
export const INSPECTOR_ONLY =
  /inspector_network_bridge|^op_inspector_emit_protocol_event|^pull2Algorithm ext:deno_web\//;

/** The guardrails' code: frames whose name matches. */
export const GUARDRAIL_CODE = / src\/guardrails\/| src\/audit\/detectors\.ts:/;

/** The guardrails' code, for the share of a profile spent in it. */
export const GUARDRAIL_GROUPS: readonly ProfileGroup[] = [
  {
    name: "guardrails in all (src/guardrails/*, src/audit/detectors.ts)",
    pattern: GUARDRAIL_CODE,
  },
  {
    name: "  judging requests (src/guardrails/guard.ts; policy and rate limit included)",
    pattern: / src\/guardrails\/guard\.ts:/,
  },
  {
    name: "  policy (src/guardrails/policy.ts, pattern.ts)",
    pattern: / src\/guardrails\/(policy|pattern)\.ts:/,
  },
  {
    name: "  rate limit (src/guardrails/rate_limiter.ts)",
    pattern: / src\/guardrails\/rate_limiter\.ts:/,
  },
  { name: "  pinning (src/guardrails/pins.ts)", pattern: / src\/guardrails\/pins\.ts:/ },
  { name: "  value detectors (src/audit/detectors.ts)", pattern: / src\/audit\/detectors\.ts:/ },
  { name: "key redaction (src/audit/redact.ts)", pattern: / src\/audit\/redact\.ts:/ },
];

/** The telemetry's code: ours and the OpenTelemetry SDK's. */
export const TELEMETRY_CODE = / src\/telemetry\/|npm:@opentelemetry\//;

/** The telemetry's code, for the share of a profile spent in it. */
export const TELEMETRY_GROUPS: readonly ProfileGroup[] = [
  { name: "telemetry in all (src/telemetry/*, npm:@opentelemetry/*)", pattern: TELEMETRY_CODE },
  { name: "  spans (src/telemetry/spans.ts)", pattern: / src\/telemetry\/spans\.ts:/ },
  {
    name: "  log records (src/telemetry/log_records.ts)",
    pattern: / src\/telemetry\/log_records\.ts:/,
  },
  { name: "  metrics (src/telemetry/metrics.ts)", pattern: / src\/telemetry\/metrics\.ts:/ },
  {
    name: "  export (src/telemetry/export_queue.ts, otlp_transport.ts)",
    pattern: / src\/telemetry\/(export_queue|otlp_transport)\.ts:/,
  },
  {
    name: "  scrapes (src/telemetry/metrics_app.ts, exposition.ts)",
    pattern: / src\/telemetry\/(metrics_app|exposition)\.ts:/,
  },
  { name: "  OpenTelemetry SDK (npm:@opentelemetry/*)", pattern: /npm:@opentelemetry\// },
];

/** The shares of a profile's samples by function, from {@link summarizeProfile}. */
export interface ProfileSummary {
  /** Time spent in the function itself. */
  self: ProfileEntry[];
  /** Time spent in the function and what it called. */
  inclusive: ProfileEntry[];
  /** Time spent in each of the groups asked for, and what it called, in the groups' order. */
  groups: ProfileEntry[];
  /**
   * The functions matching `focus` by their own time, counting as theirs the time of what they
   * call that does not match (built-ins, `String.prototype.indexOf`, the regular expression
   * engine…): the innermost matching frame of each sample.
   */
  focused: ProfileEntry[];
  /** Samples left out because a function on their stack matched `leaveOut`. */
  leftOut: number;
}

/** What {@link summarizeProfile} looks for besides the top functions. */
export interface SummaryOptions {
  /** Samples with a function matching this anywhere on their stack are left out. */
  leaveOut?: RegExp;
  groups?: readonly ProfileGroup[];
  /** Functions to rank by their own time and what they call outside it. */
  focus?: RegExp;
}

/**
 * Self and inclusive sample shares per function, largest first, `top` of each, the inclusive
 * share of each of `groups`, and the `focus` functions' shares. Samples left out are left out of
 * the shares' total too.
 */
export function summarizeProfile(
  profile: CpuProfile,
  top: number,
  { leaveOut, groups = [], focus }: SummaryOptions = {},
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
  const grouped = groups.map(() => 0);
  const focused = new Map<string, number>();
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
    groups.forEach((g, i) => {
      if (stack.some((n) => g.pattern.test(n))) grouped[i]! += count;
    });
    const inner = focus === undefined ? undefined : stack.find((n) => focus.test(n));
    if (inner !== undefined) focused.set(inner, (focused.get(inner) ?? 0) + count);
  }
  const total = profile.samples.length - leftOut;
  const rank = (m: Map<string, number>): ProfileEntry[] =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([fn, count]) => ({
      function: fn,
      percent: (100 * count) / total,
    }));
  return {
    self: rank(self),
    inclusive: rank(inclusive),
    groups: groups.map((g, i) => ({ function: g.name, percent: (100 * grouped[i]!) / total })),
    focused: rank(focused),
    leftOut,
  };
}

/**
 * The report's lines of a profile: the groups' shares and the top 15 focused functions, when there
 * are any, the top 15 by self time and the top 25 by inclusive time.
 */
export function profileLines(
  profile: {
    self: ProfileEntry[];
    inclusive: ProfileEntry[];
    groups?: ProfileEntry[];
    focused?: ProfileEntry[];
  },
  focusTitle = "guardrail functions",
): string[] {
  const entry = (e: ProfileEntry): string =>
    `    ${e.percent.toFixed(1).padStart(5)}%  ${e.function}`;
  const groups = profile.groups ?? [];
  const focused = (profile.focused ?? []).filter((e) => e.percent >= 0.05);
  return [
    ...(groups.length > 0
      ? ["  share of the samples, callees included:", ...groups.map(entry)]
      : []),
    ...(focused.length > 0
      ? [
        `  ${focusTitle}, own time and the built-ins they call:`,
        ...focused.slice(0, 15).map(entry),
      ]
      : []),
    "  self time:",
    ...profile.self.slice(0, 15).map(entry),
    "  inclusive time:",
    ...profile.inclusive.slice(0, 25).map(entry),
  ];
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

/**
 * Issue 12's requirement: with metrics and traces on, the figures stay within 10% of those with
 * them off (issue 10 asked for 5%). The verdicts table judges by the same figures.
 */
export const TELEMETRY_TARGET = {
  /** Throughput with telemetry on, as a share of throughput with it off. */
  minThroughputRatio: 0.9,
  /** p50 round trip with telemetry on, as a multiple of that with it off. */
  maxP50Ratio: 1.1,
} as const;

/**
 * A configuration's figures over a run: of all the rounds together, and of each round (for the
 * ratios paired by round).
 */
export interface Series {
  overall: TelemetryFigures;
  rounds: TelemetryFigures[];
}

/** What telemetry costs, from the three configurations' {@link Series}. */
export function telemetryCostOf(direct: Series, off: Series, on: Series): TelemetryCost {
  return telemetryCost(
    direct.overall,
    off.overall,
    on.overall,
    off.rounds.map((f, i) => ({ off: f, on: on.rounds[i]! })),
  );
}

/** One configuration's figures, as the cost of telemetry is computed from them. */
export interface TelemetryFigures {
  /** Messages or requests per second. */
  throughput: number;
  p50Us: number;
  p99Us: number;
}

/** The ratios of telemetry on to off in one round, or the medians of the rounds'. */
export interface TelemetryRatios {
  /** Throughput on / off: the ratio to direct on / off, direct being the same. */
  throughputRatio: number;
  /** p50 round trip on / off. */
  p50Ratio: number;
}

/** What turning telemetry on costs: the figures off and on, and their ratios. */
export interface TelemetryCost {
  /** The figures of all the rounds (medians, or percentiles of all the samples). */
  off: TelemetryFigures;
  on: TelemetryFigures;
  /** Throughput as a share of direct, off and on. */
  throughputOfDirect: { off: number; on: number };
  /** p50 added to direct's, off and on, in µs. */
  addedP50Us: { off: number; on: number };
  /** The ratios of the figures of all the rounds. */
  overall: TelemetryRatios;
  /** The ratios of each round, off and on measured in the same round. */
  rounds: TelemetryRatios[];
  /** The medians of the rounds' ratios: the "within 10%" figures. */
  paired: TelemetryRatios;
  throughputMet: boolean;
  latencyMet: boolean;
  /** Both. */
  met: boolean;
}

function telemetryRatios(off: TelemetryFigures, on: TelemetryFigures): TelemetryRatios {
  return { throughputRatio: on.throughput / off.throughput, p50Ratio: on.p50Us / off.p50Us };
}

/**
 * The cost of telemetry, from direct's figures and the proxy's with telemetry off and on, overall
 * and in each round; judged on the medians of the rounds' ratios.
 */
export function telemetryCost(
  direct: TelemetryFigures,
  off: TelemetryFigures,
  on: TelemetryFigures,
  rounds: readonly { off: TelemetryFigures; on: TelemetryFigures }[],
): TelemetryCost {
  const each = rounds.map((r) => telemetryRatios(r.off, r.on));
  const paired = {
    throughputRatio: median(each.map((r) => r.throughputRatio)),
    p50Ratio: median(each.map((r) => r.p50Ratio)),
  };
  const throughputMet = paired.throughputRatio >= TELEMETRY_TARGET.minThroughputRatio;
  const latencyMet = paired.p50Ratio <= TELEMETRY_TARGET.maxP50Ratio;
  return {
    off,
    on,
    throughputOfDirect: {
      off: off.throughput / direct.throughput,
      on: on.throughput / direct.throughput,
    },
    addedP50Us: { off: off.p50Us - direct.p50Us, on: on.p50Us - direct.p50Us },
    overall: telemetryRatios(off, on),
    rounds: each,
    paired,
    throughputMet,
    latencyMet,
    met: throughputMet && latencyMet,
  };
}

/** One sample of a Prometheus or OpenMetrics exposition. */
export interface MetricSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of an exposition in text format 0.0.4 or OpenMetrics 1.0.0. */
export function parseExposition(text: string): MetricSample[] {
  const samples: MetricSample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const name = line.match(/^[A-Za-z_:][A-Za-z0-9_:]*/)?.[0];
    if (name === undefined) continue;
    const labels: Record<string, string> = {};
    let at = name.length;
    if (line[at] === "{") {
      at++;
      const pair = /\s*([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?/y;
      while (line[at] !== "}") {
        pair.lastIndex = at;
        const m = pair.exec(line);
        if (m === null) break;
        labels[m[1]!] = m[2]!.replace(/\\(.)/g, (_, c: string) => c === "n" ? "\n" : c);
        at = pair.lastIndex;
      }
      at++;
    }
    const token = line.slice(at).trim().split(/\s+/)[0] ?? "";
    const value = token === "+Inf" ? Infinity : token === "-Inf" ? -Infinity : Number(token);
    if (token !== "") samples.push({ name, labels, value });
  }
  return samples;
}

/** The sum of the samples named `name`, by the value of `label`; null when there is none. */
export function metricBy(
  samples: readonly MetricSample[],
  name: string,
  label: string,
): Record<string, number> | null {
  const found = samples.filter((s) => s.name === name);
  if (found.length === 0) return null;
  const by: Record<string, number> = {};
  for (const s of found) {
    const key = s.labels[label] ?? "";
    by[key] = (by[key] ?? 0) + s.value;
  }
  return by;
}

/** The sum of the samples named `name` whose labels include `where`; null when there is none. */
export function metricSum(
  samples: readonly MetricSample[],
  name: string,
  where: Record<string, string> = {},
): number | null {
  const found = samples.filter((s) =>
    s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v)
  );
  return found.length === 0 ? null : found.reduce((n, s) => n + s.value, 0);
}

/** What Prometheus 2.42 sends when it scrapes: OpenMetrics first, gzip. */
const SCRAPE_HEADERS = {
  "accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;" +
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
  "accept-encoding": "gzip",
};

/** One scrape of the proxy's metrics. */
export interface ScrapeResult {
  /** The HTTP status; 0 when the request failed. */
  status: number;
  contentType: string | null;
  contentEncoding: string | null;
  /** Bytes of the exposition, decompressed. */
  bytes: number;
  /** Samples in it. */
  samples: number;
  /** Why it failed, when it did. */
  error: string | null;
}

/** What the proxy's metrics say of its export at one moment. */
export interface ExportReading {
  /** Records stored by kind (`mcp_audit_records_total`). */
  records: Record<string, number> | null;
  /** Spans dropped, by reason (`mcp_audit_otel_spans_dropped_total`). */
  spansDropped: Record<string, number> | null;
  /** Log records dropped, by reason. */
  logRecordsDropped: Record<string, number> | null;
  /** Trace export requests, by status (`mcp_audit_otel_export_requests_total`). */
  exportRequests: Record<string, number> | null;
  /** Log export requests, by status. */
  logExportRequests: Record<string, number> | null;
}

/** What the telemetry configuration exported, as the sink and the proxy count it. */
export interface TelemetryExport {
  /** Whether audit records were exported as log records too. */
  logs: boolean;
  /** Requests the bench sent that were answered: one span each (`otel.methods: all`). */
  requests: number;
  /** Records in the proxy's audit log: one log record each when `logs`. */
  records: number;
  /** What the sink received, once the proxy had exited; null when it could not be read. */
  received: SinkCounts | null;
  /** The proxy's own count, from its metrics just before it was stopped. */
  beforeStop: ExportReading | null;
  /**
   * Requests the proxy forgot unanswered, so that they got no span (its log's `evicted_total`:
   * more requests in flight than its span pairing keeps).
   */
  forgotten: number;
  /** The scrapes made alongside the measured runs. */
  scrapes: ScrapeResult[];
  /**
   * Waits, after each of its loaded runs, for the export of what the proxy had recorded to reach
   * the sink before the next configuration is measured: how many, and how many gave up.
   */
  drains: { waits: number; unreached: number; skipped: number };
}

/**
 * How long a drain waits for the sink's next export request before the run goes on without it:
 * longer than the proxy's flush interval (one second by default).
 */
const DRAIN_STEP_MS = 5_000;
/** How many export requests a drain waits for at most. */
const MAX_DRAIN_STEPS = 1_000;
/** How long a scrape may take. */
const SCRAPE_TIMEOUT_MS = 15_000;
/** The largest exposition read. */
const MAX_SCRAPE_BYTES = 16 << 20;
/** The scrapes kept for the report. */
const MAX_SCRAPES = 1_000;

/** `n` of a reading, 0 when absent. */
const total = (by: Record<string, number> | null): number =>
  by === null ? 0 : Object.values(by).reduce((a, b) => a + b, 0);

/**
 * The telemetry configuration's view from outside: scrapes of the proxy's metrics listener at
 * `metricsUrl`, and the OTLP sink at `sinkUrl` counting what the proxy exported.
 */
export class TelemetryProbe {
  readonly metricsUrl: string;
  readonly sinkUrl: string;
  readonly logs: boolean;
  readonly #scrapes: ScrapeResult[] = [];
  readonly #drains = { waits: 0, unreached: 0, skipped: 0 };
  #last: ExportReading | null = null;
  #received: SinkCounts | null = null;
  #forgotten = 0;

  /** `proxy` is the proxy's process, whose log says how many requests it forgot. */
  constructor(metricsUrl: string, sinkUrl: string, logs: boolean, proxy: BenchProcess) {
    this.metricsUrl = metricsUrl;
    this.sinkUrl = sinkUrl;
    this.logs = logs;
    proxy.onStderrLine((line) => {
      const evicted = line.match(/"evicted_total":(\d+)/);
      if (evicted !== null) this.#forgotten = Math.max(this.#forgotten, Number(evicted[1]));
    });
  }

  /** One scrape, as Prometheus makes it; never throws. */
  async scrape(): Promise<{ result: ScrapeResult; samples: MetricSample[] }> {
    try {
      const res = await fetch(this.metricsUrl, {
        headers: SCRAPE_HEADERS,
        signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS),
      });
      const bytes = await res.bytes();
      const text = bytes.length > MAX_SCRAPE_BYTES ? "" : new TextDecoder().decode(bytes);
      const samples = res.ok ? parseExposition(text) : [];
      return {
        result: {
          status: res.status,
          contentType: res.headers.get("content-type"),
          contentEncoding: res.headers.get("content-encoding"),
          bytes: bytes.length,
          samples: samples.length,
          error: res.ok ? null : text.slice(0, 200),
        },
        samples,
      };
    } catch (e) {
      return {
        result: {
          status: 0,
          contentType: null,
          contentEncoding: null,
          bytes: 0,
          samples: 0,
          error: e instanceof Error ? e.message : String(e),
        },
        samples: [],
      };
    }
  }

  /** Runs `work` with one scrape alongside it, so that its cost is inside what `work` measures. */
  async alongside<T>(work: () => Promise<T>): Promise<T> {
    const scraping = this.scrape();
    const result = await work();
    const { result: scraped } = await scraping;
    if (this.#scrapes.length < MAX_SCRAPES) this.#scrapes.push(scraped);
    return result;
  }

  /** What the proxy's metrics say of its export now; null when they cannot be read. */
  async reading(): Promise<ExportReading | null> {
    const { result, samples } = await this.scrape();
    if (result.status !== 200) return null;
    this.#last = {
      records: metricBy(samples, "mcp_audit_records_total", "kind"),
      spansDropped: metricBy(samples, "mcp_audit_otel_spans_dropped_total", "reason"),
      logRecordsDropped: metricBy(samples, "mcp_audit_otel_log_records_dropped_total", "reason"),
      exportRequests: metricBy(samples, "mcp_audit_otel_export_requests_total", "status"),
      logExportRequests: metricBy(samples, "mcp_audit_otel_log_export_requests_total", "status"),
    };
    return this.#last;
  }

  /**
   * Waits until the proxy's export queues are empty, as its metrics say, each time waiting for the
   * sink to receive one more export request: so that the export of one configuration's load is
   * not left running while the next one is measured. (An export taken off the queue may still be
   * on its way when this returns: a batch at most for each signal.)
   */
  async drain(): Promise<void> {
    this.#drains.waits++;
    for (let step = 0; step < MAX_DRAIN_STEPS; step++) {
      // The sink's counts before the scrape: an export that leaves after it adds to them.
      const before = await sinkCounts(this.sinkUrl);
      const { result, samples } = await this.scrape();
      if (result.status !== 200) {
        this.#drains.skipped++;
        return;
      }
      const depth = (metricSum(samples, "mcp_audit_otel_queue_depth") ?? 0) +
        (metricSum(samples, "mcp_audit_otel_log_queue_depth") ?? 0);
      if (depth === 0) return;
      const { reached } = await sinkWait(
        this.sinkUrl,
        { requests: before.traceRequests + before.logRequests + 1 },
        DRAIN_STEP_MS,
      );
      if (!reached) break;
    }
    this.#drains.unreached++;
  }

  /**
   * Reads what the sink received, once the proxy has exited (and before anything else exports to
   * the sink).
   */
  async settle(): Promise<void> {
    try {
      this.#received = await sinkCounts(this.sinkUrl);
    } catch {
      // Reported as unread.
    }
  }

  /**
   * The account of the export, from {@link settle}'s reading: `requests` the bench had answered
   * and `records` in the proxy's log.
   */
  result(requests: number, records: number): TelemetryExport {
    return {
      logs: this.logs,
      requests,
      records,
      received: this.#received,
      beforeStop: this.#last,
      forgotten: this.#forgotten,
      scrapes: [...this.#scrapes],
      drains: { ...this.#drains },
    };
  }
}

/** `part` of `whole` as a percentage, or "-" when there is no whole. */
function share(part: number, whole: number): string {
  return whole > 0 ? pct(part / whole) : "-";
}

/** A reading's counts by label as `key n, key n` (a counter never counted is not shown: 0). */
function byLine(by: Record<string, number> | null): string {
  if (by === null) return "0";
  const entries = Object.entries(by).filter(([, n]) => n !== 0);
  return entries.length === 0 ? "0" : entries.map(([k, n]) => `${k} ${int(n)}`).join(", ");
}

/** The report's lines for a {@link TelemetryCost} and what was exported. */
export function telemetryCostLines(
  c: TelemetryCost,
  e: TelemetryExport,
  names: { throughput: string; latency: string },
): string[] {
  const each = (pick: (r: TelemetryRatios) => number): string =>
    c.rounds.map((r) => (pick(r) * 100).toFixed(0)).join(" / ");
  const lines = [
    `  ${names.throughput}: ${int(c.off.throughput)} off, ${int(c.on.throughput)} on ` +
    `(${pct(c.throughputOfDirect.off)} and ${pct(c.throughputOfDirect.on)} of direct): ` +
    `${pct(c.overall.throughputRatio)}; paired by round: ${pct(c.paired.throughputRatio)} ` +
    `(>= ${pct(TELEMETRY_TARGET.minThroughputRatio)})  ${met(c.throughputMet)}`,
    `    each round, on/off %: ${each((r) => r.throughputRatio)}`,
    `  ${names.latency} p50: ${int(c.off.p50Us)} µs off, ${int(c.on.p50Us)} µs on (added to ` +
    `direct's: ${signed(c.addedP50Us.off)} and ${signed(c.addedP50Us.on)} µs): ` +
    `${pct(c.overall.p50Ratio)}; paired by round: ${pct(c.paired.p50Ratio)} ` +
    `(<= ${pct(TELEMETRY_TARGET.maxP50Ratio)})  ${met(c.latencyMet)}`,
    `    each round, on/off %: ${each((r) => r.p50Ratio)}; p99 ${int(c.off.p99Us)} → ` +
    `${int(c.on.p99Us)} µs`,
    `  telemetry within ${pct(1 - TELEMETRY_TARGET.minThroughputRatio)} of off: ${met(c.met)}`,
  ];
  const r = e.received;
  const b = e.beforeStop;
  if (r === null) {
    lines.push("  export: the OTLP sink's counts could not be read");
  } else {
    const spansDropped = total(b?.spansDropped ?? null);
    const logsDropped = total(b?.logRecordsDropped ?? null);
    lines.push(
      `  export: ${int(r.spans)} spans received for ${int(e.requests)} requests answered ` +
        `(${share(r.spans, e.requests)}); dropped by the proxy ${int(spansDropped)}, forgotten ` +
        `unanswered ${int(e.forgotten)}, unaccounted for ` +
        `${int(e.requests - r.spans - spansDropped - e.forgotten)}`,
      e.logs
        ? `    ${int(r.logRecords)} log records received for ${int(e.records)} records in the ` +
          `log (${share(r.logRecords, e.records)}); dropped by the proxy ${int(logsDropped)}, ` +
          `unaccounted for ${int(e.records - r.logRecords - logsDropped)}`
        : "    log records not exported",
      `    ${int(r.traceRequests)} trace and ${int(r.logRequests)} log requests to the sink, ` +
        `${int(r.bytes / 1024)} KiB, ${r.rejected} refused; the sink's CPU time (parsing every ` +
        `body, as a collector would; on the same machine): ${r.cpuSeconds.toFixed(1)} s`,
    );
  }
  if (b !== null) {
    lines.push(
      `  the proxy's metrics before it was stopped: spans dropped ${byLine(b.spansDropped)}; ` +
        `log records dropped ${byLine(b.logRecordsDropped)}; trace export requests ` +
        `${byLine(b.exportRequests)}; log export requests ${byLine(b.logExportRequests)}`,
    );
  }
  const ok = e.scrapes.filter((s) => s.status === 200);
  const failed = e.scrapes.find((s) => s.status !== 200);
  const first = ok[0];
  lines.push(
    `  scrapes alongside the loaded runs: ${ok.length} of ${e.scrapes.length} answered 200` +
      (first === undefined
        ? ""
        : ` (${first.contentType ?? "no content type"}, ${first.contentEncoding ?? "identity"}, ` +
          `up to ${int(Math.max(...ok.map((s) => s.bytes)) / 1024)} KiB, ` +
          `${int(Math.max(...ok.map((s) => s.samples)))} samples)`) +
      (failed === undefined ? "" : `; a failure: HTTP ${failed.status} ${failed.error ?? ""}`) +
      `; waits for the export to drain before the next configuration: ${e.drains.waits}` +
      (e.drains.unreached > 0 ? `, ${e.drains.unreached} gave up` : "") +
      (e.drains.skipped > 0 ? `, ${e.drains.skipped} skipped (no metrics)` : ""),
  );
  return lines;
}
