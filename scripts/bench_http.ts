/**
 * The HTTP part of `deno task bench`: what the Streamable HTTP proxy costs. A load generator drives
 * `scripts/bench_http_upstream.ts` directly, then through `main.ts --transport http` run as a real
 * process with signing, redaction and JSONL storage on (durability `batch`, the default), and, when
 * `nginx` is installed, through nginx as a plain reverse proxy for reference. All of them are up at
 * once and measured in turns, so that a change in the machine's load hits each alike:
 *
 * - throughput: requests per second at 32 concurrent keep-alive connections;
 * - latency: p50/p99 round trip at 1 connection.
 *
 * The load generator is `wrk` (Debian package `wrk`) when it is installed, with a Lua script that
 * POSTs a ~200-byte `tools/call` with its own id per request; otherwise a `fetch` loop in this
 * process, which is slower than wrk and may then be what limits the direct numbers. The report says
 * which one ran. The proxy's log is checked with `main.ts verify` at the end. The targets of issue 3
 * are reported, not asserted.
 *
 * Runs on its own (`deno run --allow-all scripts/bench_http.ts [--quick] [--json] …`) or from
 * `scripts/bench.ts`, which calls {@link runHttpBench} after the stdio part.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";

const USAGE =
  `usage: deno run --allow-all scripts/bench_http.ts [--quick] [--json] [--keep] [--profile]
                          [--generator auto|wrk|fetch] [--no-nginx]
  --quick        a short run (about 10 s), for a smoke test
  --json         print the results as one JSON object on stdout (progress still goes to stderr)
  --keep         keep the audit log in .bench/ instead of deleting it after verification
  --profile      also run one more proxy under the V8 CPU profiler during a 32-connection run;
                 saves .bench/profile-http-*.cpuprofile and prints where the time went (leaving
                 out what Deno does only for an attached inspector: reporting each fetch)
  --generator    the load generator: wrk when installed (auto, the default), or fetch
  --no-nginx     do not measure nginx even when it is installed`;

/** The targets of issue 3, item 8. */
export const HTTP_TARGET = {
  /** Requests per second at 32 connections through the proxy, as a share of direct. */
  minThroughputRatio: 0.5,
  /** p50 round trip at 1 connection added by the proxy, in µs. */
  maxAddedP50Us: 250,
} as const;

/** What the issue measured for other proxies on this machine, for the report. */
const REFERENCE = "the Go tool: about 26% of direct and +430 µs; nginx: about 100% and +50 µs";

/** How much work each target gets. */
export interface HttpPlan {
  /** Concurrent connections of the throughput runs. */
  connections: number;
  /** Seconds of load at `connections` before anything is measured. */
  warmupSeconds: number;
  /** Rounds; each round runs throughput then latency on every target in turn. */
  rounds: number;
  throughputSeconds: number;
  latencySeconds: number;
}

const FULL: HttpPlan = {
  connections: 32,
  warmupSeconds: 1,
  rounds: 3,
  throughputSeconds: 2,
  latencySeconds: 1,
};

const QUICK: HttpPlan = {
  connections: 32,
  warmupSeconds: 1,
  rounds: 1,
  throughputSeconds: 1,
  latencySeconds: 1,
};

// 32+ bytes, so the proxy does not warn about a short secret.
const SECRET = "bench-secret-0123456789abcdef0123456789abcdef";
const STDERR_KEEP = 16 << 10;
/** How long a process gets to exit after SIGTERM before it is killed. */
const EXIT_GRACE_MS = 10_000;
/** V8's CPU profiler interval under `--profile`, in µs. */
const PROFILE_INTERVAL_US = 100;
const PROTOCOL_VERSION = "2025-06-18";

const decoder = new TextDecoder();

function path(relative: string): string {
  return fileURLToPath(new URL(relative, import.meta.url));
}

const REPO = path("../");
const REPO_URL = new URL("../", import.meta.url).href;
const MAIN = path("../main.ts");
const UPSTREAM = path("./bench_http_upstream.ts");

// A realistic `tools/call` of about 200 bytes, as in the stdio bench. `token` is one of the default
// redaction patterns, so every request is redacted on its way into the log.
const CALL_HEAD = `{"jsonrpc":"2.0","id":`;
const CALL_TAIL = `,"method":"tools/call","params":{"name":"search_issues",` +
  `"arguments":{"repo":"acme/widgets","query":"is:open label:bug sort:updated","limit":20,` +
  `"token":"ghp_8f2Kd93LmQz0aXv7Rt1YbN4cWu6Hs5EjPo2g"}}}`;

function toolCall(id: number): string {
  return CALL_HEAD + id + CALL_TAIL;
}

const INITIALIZE = `{"jsonrpc":"2.0","id":"init","method":"initialize","params":{` +
  `"protocolVersion":"${PROTOCOL_VERSION}","capabilities":{},` +
  `"clientInfo":{"name":"mcp-audit-bench","version":"1"}}}`;
const INITIALIZED = `{"jsonrpc":"2.0","method":"notifications/initialized"}`;

/** The headers of every POST; `session` once the server named one. */
function postHeaders(session: string | null): Record<string, string> {
  return {
    "content-type": "application/json",
    "accept": "application/json, text/event-stream",
    "mcp-protocol-version": PROTOCOL_VERSION,
    ...(session === null ? {} : { "mcp-session-id": session }),
  };
}

/**
 * The wrk script: every request a `tools/call` with its own id (the proxy correlates by id within
 * a session), and one `BENCH_JSON` line with the totals and latency percentiles at the end.
 */
function wrkScript(session: string | null): string {
  const lua = (s: string): string => JSON.stringify(s);
  return `-- Generated by scripts/bench_http.ts.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = ${lua(PROTOCOL_VERSION)}
${session === null ? "" : `wrk.headers["Mcp-Session-Id"] = ${lua(session)}\n`}
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id_base", threads * 1000000000)
end

local base = 0
local counter = 0
function init(args)
  base = id_base or 0
end

local head = ${lua(CALL_HEAD)}
local tail = ${lua(CALL_TAIL)}
function request()
  counter = counter + 1
  return wrk.format(nil, nil, nil, head .. string.format("%d", base + counter) .. tail)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"durationUs":%d,"errors":%d,"status":%d,' ..
      '"p50Us":%d,"p99Us":%d,"meanUs":%.1f}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
`;
}

/** Nearest-rank percentile of sorted samples. */
function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

function median(values: number[]): number {
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

/** A child process whose stderr is kept (the last part of it) and can be waited on for a line. */
class Child {
  readonly label: string;
  #child: Deno.ChildProcess;
  #stderr = "";
  #stderrDone: Promise<void>;
  #stderrWaiters: (() => void)[] = [];
  #stopping: Promise<Deno.CommandStatus> | undefined;

  constructor(label: string, argv: string[], env: Record<string, string>, cwd: string) {
    this.label = label;
    const [command, ...args] = argv;
    if (command === undefined) throw new Error(`${label}: empty command`);
    this.#child = new Deno.Command(command, {
      args,
      env,
      clearEnv: true,
      cwd,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.#stderrDone = this.#child.stderr.pipeTo(
      new WritableStream({
        write: (chunk) => {
          const text = this.#stderr + decoder.decode(chunk, { stream: true });
          this.#stderr = text.slice(-STDERR_KEEP);
          for (const wake of this.#stderrWaiters.splice(0)) wake();
        },
      }),
    ).catch(() => {}).finally(() => {
      for (const wake of this.#stderrWaiters.splice(0)) wake();
    });
  }

  get stderr(): string {
    return this.#stderr;
  }

  /** Resolves with the first match of `pattern` in stderr, waiting for it to be written. */
  async stderrMatch(pattern: RegExp): Promise<RegExpMatchArray> {
    let ended = false;
    void this.#stderrDone.then(() => ended = true);
    while (true) {
      const match = this.#stderr.match(pattern);
      if (match) return match;
      if (ended) {
        throw new Error(
          `${this.label} never wrote ${pattern} to stderr; it ends:\n${this.#stderr.slice(-2000)}`,
        );
      }
      await new Promise<void>((resolve) => this.#stderrWaiters.push(resolve));
    }
  }

  /** Sends `signal` and waits for the exit, killing the process if it does not go. */
  stop(signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
    this.#stopping ??= this.#stop(signal);
    return this.#stopping;
  }

  async #stop(signal: Deno.Signal): Promise<Deno.CommandStatus> {
    this.kill(signal);
    let status = await within(this.#child.status, EXIT_GRACE_MS);
    if (status === undefined) {
      this.kill("SIGKILL");
      status = await this.#child.status;
    }
    await this.#stderrDone;
    return status;
  }

  kill(signal: Deno.Signal): void {
    try {
      this.#child.kill(signal);
    } catch {
      // It has exited already.
    }
  }
}

/** Children to end on the way out, or on Ctrl-C. */
class Children {
  #live = new Set<Child>();
  /** Processes that end by themselves (wrk), killed only on Ctrl-C. */
  #transient = new Set<Deno.ChildProcess>();
  /** Set by {@link killAll}: the run is to stop. */
  interrupted = false;

  spawn(label: string, argv: string[], env: Record<string, string>, cwd: string): Child {
    const child = new Child(label, argv, env, cwd);
    this.#live.add(child);
    return child;
  }

  async stop(child: Child, signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
    try {
      return await child.stop(signal);
    } finally {
      this.#live.delete(child);
    }
  }

  /** Runs `child` (which ends by itself) to its end, killing it on Ctrl-C. */
  async output(child: Deno.ChildProcess): Promise<Deno.CommandOutput> {
    this.#transient.add(child);
    try {
      return await child.output();
    } finally {
      this.#transient.delete(child);
    }
  }

  killAll(): void {
    this.interrupted = true;
    for (const child of this.#live) child.kill("SIGTERM");
    for (const child of this.#transient) {
      try {
        child.kill("SIGTERM");
      } catch {
        // It has exited already.
      }
    }
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.#live].map((c) => this.stop(c)));
  }
}

/** Our environment without mcp-audit's settings or secrets. */
function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(Deno.env.toObject())) {
    if (name.startsWith("MCP_AUDIT_") || name === "AUDIT_SECRET") continue;
    env[name] = value;
  }
  return env;
}

/** The environment of the proxy: ours, minus any mcp-audit settings, plus the bench's. */
function proxyEnv(logPath: string): Record<string, string> {
  return {
    ...cleanEnv(),
    AUDIT_SECRET: SECRET,
    MCP_AUDIT_AUDIT_STORAGE: "jsonl",
    MCP_AUDIT_AUDIT_PATH: logPath,
    MCP_AUDIT_AUDIT_DURABILITY: Deno.env.get("BENCH_DURABILITY") ?? "batch",
    MCP_AUDIT_AUDIT_SIGN: "true",
    MCP_AUDIT_MIDDLEWARE_REDACT_ENABLED: "true",
    // The bench measures the audit path; a 60-a-minute limit would answer most calls itself.
    MCP_AUDIT_MIDDLEWARE_RATE_LIMIT_ENABLED: "false",
    MCP_AUDIT_DASHBOARD_ENABLED: "false",
    MCP_AUDIT_METRICS_ENABLED: "false",
  };
}

function proxyArgv(upstream: string, inspect: boolean): string[] {
  return [
    Deno.execPath(),
    "run",
    ...(inspect ? ["--inspect=127.0.0.1:0"] : []),
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-run",
    "--allow-net",
    MAIN,
    "--transport",
    "http",
    "--upstream",
    upstream,
    "--port",
    "0",
  ];
}

/** Starts the proxy and resolves with its MCP endpoint once it listens. */
async function startProxy(
  children: Children,
  label: string,
  upstream: string,
  logPath: string,
  cwd: string,
  inspect: boolean,
): Promise<{ child: Child; url: string; inspector: string | null }> {
  const child = children.spawn(label, proxyArgv(upstream, inspect), proxyEnv(logPath), cwd);
  const inspector = inspect
    ? (await child.stderrMatch(/Debugger listening on (ws:\/\/\S+)/))[1]!
    : null;
  const [, address] = await child.stderrMatch(/"proxy listening".*?"address":"([^"]+)"/);
  return { child, url: `${address}/mcp`, inspector };
}

async function tryOutput(
  command: string,
  args: string[],
): Promise<{ code: number; text: string } | null> {
  try {
    const out = await new Deno.Command(command, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    return { code: out.code, text: decoder.decode(out.stdout) + decoder.decode(out.stderr) };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.PermissionDenied) {
      return null;
    }
    throw e;
  }
}

/** wrk's version line, or null when it is not installed. */
async function findWrk(): Promise<string | null> {
  // `wrk --version` prints its banner and usage, and exits 1.
  const out = await tryOutput("wrk", ["--version"]);
  if (out === null) return null;
  const line = out.text.split("\n").find((l) => l.startsWith("wrk "));
  return line === undefined ? null : line.replace(/\s+Copyright.*$/, "").trim();
}

/** nginx's path and version, or null when it is not installed. */
async function findNginx(): Promise<{ command: string; version: string } | null> {
  for (const command of ["nginx", "/usr/sbin/nginx", "/usr/local/sbin/nginx"]) {
    const out = await tryOutput(command, ["-v"]);
    const version = out?.text.match(/nginx\/\S+/)?.[0];
    if (out !== null && out.code === 0 && version !== undefined) return { command, version };
  }
  return null;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/**
 * nginx as a plain reverse proxy with upstream keep-alive: a worker per CPU (its default setup),
 * no access log.
 */
function nginxConfig(dir: string, port: number, upstream: URL): string {
  return `# Generated by scripts/bench_http.ts.
daemon off;
master_process on;
worker_processes auto;
pid ${dir}/nginx.pid;
error_log stderr notice;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/nginx-body;
  proxy_temp_path ${dir}/nginx-proxy;
  upstream mcp {
    server ${upstream.host};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://mcp;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
`;
}

/** One run of the load generator. */
interface LoadRun {
  /** Requests answered. */
  requests: number;
  seconds: number;
  perSecond: number;
  /** Connection, read, write and timeout errors, and non-2xx answers. */
  errors: number;
  p50Us: number;
  p99Us: number;
  meanUs: number;
}

/** Where the load goes. */
interface Target {
  key: HttpTargetKey;
  label: string;
  url: string;
  /** The session its `initialize` answer named. */
  session: string | null;
  /** The wrk script for it. */
  script: string;
}

type Generator = (target: Target, connections: number, seconds: number) => Promise<LoadRun>;

function wrkGenerator(children: Children): Generator {
  return (target, connections, seconds) => runWrk(children, target, connections, seconds);
}

async function runWrk(
  children: Children,
  target: Target,
  connections: number,
  seconds: number,
): Promise<LoadRun> {
  const args = [
    "-t1",
    `-c${connections}`,
    `-d${seconds}s`,
    "--timeout",
    "10s",
    "-s",
    target.script,
    target.url,
  ];
  const child = new Deno.Command("wrk", {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out = await children.output(child);
  if (children.interrupted) throw new Error("interrupted");
  const text = decoder.decode(out.stdout);
  const line = text.split("\n").find((l) => l.startsWith("BENCH_JSON "));
  if (out.code !== 0 || line === undefined) {
    throw new Error(
      `wrk ${args.join(" ")} failed (exit ${out.code}):\n${text}${decoder.decode(out.stderr)}`,
    );
  }
  const r = JSON.parse(line.slice("BENCH_JSON ".length)) as {
    requests: number;
    durationUs: number;
    errors: number;
    status: number;
    p50Us: number;
    p99Us: number;
    meanUs: number;
  };
  const secs = r.durationUs / 1e6;
  return {
    requests: r.requests,
    seconds: secs,
    perSecond: r.requests / secs,
    errors: r.errors + r.status,
    p50Us: r.p50Us,
    p99Us: r.p99Us,
    meanUs: r.meanUs,
  };
}

/** The fallback: `connections` fetch loops in this process, each waiting for its answer. */
function fetchGenerator(): Generator {
  let nextId = 1;
  return async (target, connections, seconds) => {
    const { url } = target;
    const headers = postHeaders(target.session);
    const samples: number[] = [];
    let errors = 0;
    const t0 = performance.now();
    const end = t0 + seconds * 1000;
    const loop = async (): Promise<void> => {
      while (performance.now() < end) {
        const started = performance.now();
        try {
          const res = await fetch(url, { method: "POST", headers, body: toolCall(nextId++) });
          await res.arrayBuffer();
          if (!res.ok) errors++;
          samples.push((performance.now() - started) * 1000);
        } catch {
          errors++;
        }
      }
    };
    await Promise.all(Array.from({ length: connections }, loop));
    const secs = (performance.now() - t0) / 1000;
    const sorted = Float64Array.from(samples).sort();
    return {
      requests: samples.length,
      seconds: secs,
      perSecond: samples.length / secs,
      errors,
      p50Us: percentile(sorted, 50),
      p99Us: percentile(sorted, 99),
      meanUs: samples.reduce((a, b) => a + b, 0) / samples.length,
    };
  };
}

/**
 * `initialize`, `notifications/initialized` and one `tools/call` through `url`, each answer
 * checked; returns the session the server named.
 */
async function handshake(label: string, url: string): Promise<string | null> {
  const post = async (body: string, session: string | null): Promise<Response> => {
    const res = await fetch(url, { method: "POST", headers: postHeaders(session), body });
    return res;
  };
  const init = await post(INITIALIZE, null);
  const initText = await init.text();
  if (init.status !== 200 || !initText.includes(`"id":"init"`)) {
    throw new Error(`${label}: initialize got HTTP ${init.status}: ${initText.slice(0, 500)}`);
  }
  const session = init.headers.get("mcp-session-id");
  const notified = await post(INITIALIZED, session);
  await notified.body?.cancel();
  if (notified.status !== 202) {
    throw new Error(`${label}: notifications/initialized got HTTP ${notified.status}, not 202`);
  }
  const call = await post(toolCall(7), session);
  const callText = await call.text();
  if (call.status !== 200 || !callText.startsWith(`{"jsonrpc":"2.0","id":7,"result":`)) {
    throw new Error(`${label}: tools/call got HTTP ${call.status}: ${callText.slice(0, 500)}`);
  }
  return session;
}

/** The handshake with an endpoint, and its wrk script. */
async function prepare(
  endpoint: { key: HttpTargetKey; label: string; url: string },
  dir: string,
  name: string = endpoint.key,
): Promise<Target> {
  const session = await handshake(endpoint.label, endpoint.url);
  const script = `${dir}/wrk-${name}.lua`;
  await Deno.writeTextFile(script, wrkScript(session));
  return { ...endpoint, session, script };
}

export type HttpTargetKey = "direct" | "proxy" | "nginx";

export interface HttpTargetResult {
  key: HttpTargetKey;
  label: string;
  url: string;
  /** Requests per second at `plan.connections`: each round, and their median. */
  throughput: { runs: LoadRun[]; perSecond: number };
  /** One connection: each round, and the medians of their p50 and p99. */
  latency: { runs: LoadRun[]; p50Us: number; p99Us: number };
  /** Requests answered in all, warm-up and handshake included. */
  requests: number;
  /** Errors and non-2xx answers in all the runs. */
  errors: number;
}

export interface HttpComparison {
  key: Exclude<HttpTargetKey, "direct">;
  throughputRatio: number;
  addedP50Us: number;
  addedP99Us: number;
  throughputMet: boolean;
  latencyMet: boolean;
}

export interface HttpVerifyResult {
  exitCode: number;
  /** The first line `verify` printed: its summary. */
  summary: string;
  output: string[];
  /** Records the summary counts, when it says. */
  records: number | null;
  /**
   * Records the log holds at least: each answered request and its answer, the `initialized`
   * notification, `audit/start` and `audit/stop` (requests cut off when a run ended add more).
   */
  expectedRecords: number;
}

/** Where one function's share of the profile's samples. */
export interface HttpProfileEntry {
  function: string;
  percent: number;
}

export interface HttpProfileResult {
  file: string;
  samples: number;
  /** The rate while profiled (the profiler slows it down). */
  perSecond: number;
  /**
   * Samples left out: with an inspector attached, Deno reports every `fetch` to it and reads a copy
   * of each response body, which the proxy does not do otherwise. The shares below are of the
   * other samples.
   */
  inspectorSamples: number;
  self: HttpProfileEntry[];
  inclusive: HttpProfileEntry[];
}

export interface HttpBenchResult {
  /** `wrk` or `fetch`, and wrk's version line. */
  generator: { kind: "wrk" | "fetch"; detail: string };
  /** nginx's version when it was measured, or why not. */
  nginx: { measured: boolean; detail: string };
  quick: boolean;
  seconds: number;
  plan: HttpPlan;
  targets: typeof HTTP_TARGET;
  results: HttpTargetResult[];
  comparisons: HttpComparison[];
  verify: HttpVerifyResult;
  profile: HttpProfileResult | null;
  /** Set when the proxy exited with another code than 0. */
  proxyExitCode: number;
}

export interface HttpBenchOptions {
  quick: boolean;
  /** Where the logs, the wrk scripts and nginx's files go (it must exist). */
  dir: string;
  progress: (text: string) => void;
  /** Default `auto`: wrk when installed. */
  generator?: "auto" | "wrk" | "fetch";
  /** Default true: measure nginx when it is installed. */
  nginx?: boolean;
  profile?: boolean;
}

/** Runs the HTTP bench; throws only when it could not run. */
export async function runHttpBench(opts: HttpBenchOptions): Promise<HttpBenchResult> {
  const plan = opts.quick ? QUICK : FULL;
  const { dir, progress } = opts;
  const started = performance.now();
  const children = new Children();
  const onSignal = (): void => {
    progress("interrupted");
    children.killAll();
  };
  Deno.addSignalListener("SIGINT", onSignal);
  try {
    const wrk = opts.generator === "fetch" ? null : await findWrk();
    if (wrk === null && opts.generator === "wrk") throw new Error("wrk is not installed");
    const nginx = opts.nginx === false ? null : await findNginx();

    const upstream = children.spawn(
      "upstream",
      [Deno.execPath(), "run", "--allow-net", UPSTREAM],
      cleanEnv(),
      dir,
    );
    const [, upstreamUrl] = await upstream.stderrMatch(/listening on (http:\/\/\S+)/);
    const logPath = `${dir}/audit-http.jsonl`;
    const proxy = await startProxy(children, "proxy", upstreamUrl!, logPath, dir, false);

    const endpoints: { key: HttpTargetKey; label: string; url: string }[] = [
      { key: "direct", label: "direct", url: upstreamUrl! },
      { key: "proxy", label: "proxy (full audit)", url: proxy.url },
    ];
    let nginxChild: Child | undefined;
    if (nginx !== null) {
      const port = freePort();
      const conf = `${dir}/nginx.conf`;
      await Deno.writeTextFile(conf, nginxConfig(dir, port, new URL(upstreamUrl!)));
      nginxChild = children.spawn(
        "nginx",
        [nginx.command, "-p", dir, "-e", "stderr", "-c", conf],
        cleanEnv(),
        dir,
      );
      await nginxChild.stderrMatch(/start worker process/);
      endpoints.push({
        key: "nginx",
        label: "nginx (reference)",
        url: `http://127.0.0.1:${port}/mcp`,
      });
    }

    const targets: Target[] = [];
    for (const e of endpoints) targets.push(await prepare(e, dir));
    const generate = wrk !== null ? wrkGenerator(children) : fetchGenerator();
    const generator = wrk ??
      (opts.generator === "fetch" ? "fetch" : "fetch (wrk is not installed)");
    progress(`http: load generator ${generator}; targets ${targets.map((t) => t.key).join(", ")}`);

    const answered = new Map<HttpTargetKey, number>(targets.map((t) => [t.key, 3]));
    const errors = new Map<HttpTargetKey, number>(targets.map((t) => [t.key, 0]));
    const throughput = new Map<HttpTargetKey, LoadRun[]>(targets.map((t) => [t.key, []]));
    const latency = new Map<HttpTargetKey, LoadRun[]>(targets.map((t) => [t.key, []]));
    const load = async (
      t: Target,
      connections: number,
      seconds: number,
    ): Promise<LoadRun> => {
      if (children.interrupted) throw new Error("interrupted");
      const run = await generate(t, connections, seconds);
      if (children.interrupted) throw new Error("interrupted");
      answered.set(t.key, answered.get(t.key)! + run.requests);
      errors.set(t.key, errors.get(t.key)! + run.errors);
      return run;
    };

    for (const t of targets) {
      progress(`http: ${t.label}: warming up`);
      await load(t, plan.connections, plan.warmupSeconds);
    }
    for (let round = 1; round <= plan.rounds; round++) {
      for (const t of targets) {
        progress(
          `http: ${t.label}: ${plan.connections} connections, round ${round}/${plan.rounds}`,
        );
        throughput.get(t.key)!.push(await load(t, plan.connections, plan.throughputSeconds));
      }
      for (const t of targets) {
        progress(`http: ${t.label}: 1 connection, round ${round}/${plan.rounds}`);
        latency.get(t.key)!.push(await load(t, 1, plan.latencySeconds));
      }
    }

    const results: HttpTargetResult[] = targets.map((t) => {
      const tp = throughput.get(t.key)!;
      const lat = latency.get(t.key)!;
      return {
        key: t.key,
        label: t.label,
        url: t.url,
        throughput: { runs: tp, perSecond: median(tp.map((r) => r.perSecond)) },
        latency: {
          runs: lat,
          p50Us: median(lat.map((r) => r.p50Us)),
          p99Us: median(lat.map((r) => r.p99Us)),
        },
        requests: answered.get(t.key)!,
        errors: errors.get(t.key)!,
      };
    });
    const direct = results[0]!;
    const comparisons = results.flatMap((r) => compare(direct, r) ?? []);

    if (nginxChild !== undefined) await children.stop(nginxChild, "SIGQUIT");
    const proxyStatus = await children.stop(proxy.child);

    let profile: HttpProfileResult | null = null;
    if (opts.profile) {
      profile = await profileProxy(
        children,
        upstreamUrl!,
        `${dir}/audit-http-profiled.jsonl`,
        dir,
        plan,
        generate,
        progress,
      );
    }
    await children.stop(upstream);

    progress("http: verifying the proxy's audit log");
    const proxyRequests = results.find((r) => r.key === "proxy")!.requests;
    const verified = await verify(logPath, proxyRequests, dir);

    return {
      generator: wrk !== null
        ? { kind: "wrk", detail: `${wrk}, 1 thread` }
        : { kind: "fetch", detail: `fetch loops in deno ${Deno.version.deno}` },
      nginx: nginx !== null
        ? {
          measured: true,
          detail: `${nginx.version}, ${navigator.hardwareConcurrency} workers, upstream keep-alive`,
        }
        : { measured: false, detail: opts.nginx === false ? "skipped" : "not installed" },
      quick: opts.quick,
      seconds: (performance.now() - started) / 1000,
      plan,
      targets: HTTP_TARGET,
      results,
      comparisons,
      verify: verified,
      profile,
      proxyExitCode: proxyStatus.code,
    };
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    await children.stopAll();
  }
}

function compare(direct: HttpTargetResult, other: HttpTargetResult): HttpComparison | undefined {
  if (other.key === "direct") return undefined;
  const throughputRatio = other.throughput.perSecond / direct.throughput.perSecond;
  const addedP50Us = other.latency.p50Us - direct.latency.p50Us;
  return {
    key: other.key,
    throughputRatio,
    addedP50Us,
    addedP99Us: other.latency.p99Us - direct.latency.p99Us,
    throughputMet: throughputRatio >= HTTP_TARGET.minThroughputRatio,
    latencyMet: addedP50Us <= HTTP_TARGET.maxAddedP50Us,
  };
}

async function verify(logPath: string, requests: number, cwd: string): Promise<HttpVerifyResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-env", MAIN, "verify", logPath],
    env: { ...cleanEnv(), AUDIT_SECRET: SECRET },
    clearEnv: true,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const output = decoder.decode(out.stdout).split("\n").filter((l) => l !== "");
  const errors = decoder.decode(out.stderr).trim();
  const summary = output[0] ?? errors.split("\n")[0] ?? "(no output)";
  const records = summary.match(/(\d+) records/)?.[1];
  return {
    exitCode: out.code,
    summary,
    output,
    records: records === undefined ? null : Number(records),
    // Each answered request and its answer, minus the notification's missing answer, plus
    // audit/start and audit/stop.
    expectedRecords: 2 * requests - 1 + 2,
  };
}

/** The parts of a V8 CPU profile (`Profiler.stop`) that the summary reads. */
interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    children?: number[];
  }[];
  samples: number[];
}

function isCpuProfile(value: unknown): value is CpuProfile {
  return typeof value === "object" && value !== null && "nodes" in value &&
    Array.isArray(value.nodes) && "samples" in value && Array.isArray(value.samples);
}

/** A minimal Chrome DevTools Protocol client over the inspector's WebSocket. */
class Inspector {
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

/** A script's URL relative to the repository, or as `npm:package/…`. */
function shortUrl(url: string): string {
  if (url.startsWith(REPO_URL)) return url.slice(REPO_URL.length);
  return url.replace(/^.*\/(node_modules|registry\.npmjs\.org)\//, "npm:");
}

/**
 * Work that only happens because an inspector is attached: Deno reports every fetch to it, and tees
 * each response body so that it can read a copy (its reads of that copy pull through the tee's
 * second branch).
 */
const INSPECTOR_ONLY =
  /inspector_network_bridge|^op_inspector_emit_protocol_event|^pull2Algorithm ext:deno_web\//;

/** Self and inclusive sample shares per function, largest first. */
function summarize(
  profile: CpuProfile,
  top: number,
): Pick<HttpProfileResult, "self" | "inclusive" | "inspectorSamples"> {
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
  let inspectorSamples = 0;
  for (const [id, count] of hits) {
    const stack: string[] = [];
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      stack.push(name(at));
    }
    if (stack.some((n) => INSPECTOR_ONLY.test(n))) {
      inspectorSamples += count;
      continue;
    }
    self.set(stack[0]!, (self.get(stack[0]!) ?? 0) + count);
    // A recursive function counts once per sample.
    for (const n of new Set(stack)) {
      if (n !== "(root)") inclusive.set(n, (inclusive.get(n) ?? 0) + count);
    }
  }
  const total = profile.samples.length - inspectorSamples;
  const rank = (m: Map<string, number>): HttpProfileEntry[] =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([fn, count]) => ({
      function: fn,
      percent: (100 * count) / total,
    }));
  return { self: rank(self), inclusive: rank(inclusive), inspectorSamples };
}

/** Runs one more proxy under the V8 CPU profiler for one throughput run, after a warm-up. */
async function profileProxy(
  children: Children,
  upstream: string,
  logPath: string,
  dir: string,
  plan: HttpPlan,
  generate: Generator,
  progress: (text: string) => void,
): Promise<HttpProfileResult> {
  const proxy = await startProxy(children, "proxy (profiled)", upstream, logPath, dir, true);
  try {
    const target = await prepare(
      { key: "proxy", label: proxy.child.label, url: proxy.url },
      dir,
      "profiled",
    );
    progress("http: proxy (profiled): warming up");
    await generate(target, plan.connections, plan.warmupSeconds);
    const inspector = await Inspector.connect(proxy.inspector!);
    try {
      await inspector.send("Profiler.enable");
      await inspector.send("Profiler.setSamplingInterval", { interval: PROFILE_INTERVAL_US });
      await inspector.send("Profiler.start");
      progress(`http: proxy (profiled): ${plan.connections} connections`);
      const run = await generate(target, plan.connections, plan.throughputSeconds);
      const stopped = await inspector.send("Profiler.stop");
      const profile = typeof stopped === "object" && stopped !== null && "profile" in stopped
        ? stopped.profile
        : undefined;
      if (!isCpuProfile(profile)) throw new Error("the inspector returned no CPU profile");
      const file = `${REPO}.bench/profile-http-${Date.now()}.cpuprofile`;
      await Deno.writeTextFile(file, JSON.stringify(profile));
      return {
        file,
        samples: profile.samples.length,
        perSecond: run.perSecond,
        ...summarize(profile, 25),
      };
    } finally {
      inspector.close();
    }
  } finally {
    await children.stop(proxy.child);
  }
}

const int = (n: number): string => Math.round(n).toLocaleString("en-US");
const pct = (r: number): string => `${(r * 100).toFixed(1)}%`;
const met = (ok: boolean): string => ok ? "met" : "NOT MET";
const signed = (n: number): string => `${n < 0 ? "-" : "+"}${int(Math.abs(n))}`;

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)).join("  ")
      .trimEnd();
  const lines = rows.map(line);
  lines.splice(1, 0, widths.map((w) => "-".repeat(w)).join("  "));
  return lines;
}

/** The text report of an HTTP run. */
export function httpReport(r: HttpBenchResult): string[] {
  const c = r.plan.connections;
  const rows = [[
    "",
    `req/s (${c} conn)`,
    "of direct",
    "p50 (1 conn)",
    "p99",
    "added p50",
    "added p99",
    "errors",
  ]];
  for (const t of r.results) {
    const cmp = r.comparisons.find((x) => x.key === t.key);
    rows.push([
      t.label,
      int(t.throughput.perSecond),
      cmp ? pct(cmp.throughputRatio) : "100%",
      `${int(t.latency.p50Us)} µs`,
      `${int(t.latency.p99Us)} µs`,
      cmp ? `${signed(cmp.addedP50Us)} µs` : "",
      cmp ? `${signed(cmp.addedP99Us)} µs` : "",
      int(t.errors),
    ]);
  }
  const header =
    `mcp-audit http bench: deno ${Deno.version.deno}, ${Deno.build.os}/${Deno.build.arch}, ` +
    `${navigator.hardwareConcurrency} CPUs, ${r.quick ? "quick" : "full"} run in ` +
    `${r.seconds.toFixed(1)} s; load generator: ${r.generator.detail}; nginx: ${r.nginx.detail}; ` +
    `proxy with hmac-sha256 signing, redaction, JSONL (durability batch)`;
  const lines = [header, "", ...table(rows), ""];
  lines.push(
    `req/s: median of ${r.plan.rounds} run(s) of ${r.plan.throughputSeconds} s; each run: ` +
      r.results.map((t) => `${t.key} ${t.throughput.runs.map((x) => int(x.perSecond)).join(" / ")}`)
        .join("; "),
  );
  lines.push(
    `p50/p99: medians of ${r.plan.rounds} run(s) of ${r.plan.latencySeconds} s; p50 of each run: ` +
      r.results.map((t) => `${t.key} ${t.latency.runs.map((x) => int(x.p50Us)).join(" / ")} µs`)
        .join("; "),
  );
  if (r.generator.kind === "fetch") {
    lines.push(
      "  (fetch generator: slower than wrk, so the direct numbers may be its own limit; " +
        "install wrk for the real ratio)",
    );
  }
  lines.push("");
  lines.push("targets (issue 3):");
  for (const cmp of r.comparisons) {
    const tag = cmp.key === "proxy" ? "" : ` (reference, not a target)`;
    lines.push(
      `  [${cmp.key}] req/s at ${c} connections >= ${pct(HTTP_TARGET.minThroughputRatio)} of ` +
        `direct: ${pct(cmp.throughputRatio)}  ${cmp.key === "proxy" ? met(cmp.throughputMet) : ""}`
          .trimEnd() +
        tag,
    );
    lines.push(
      `  [${cmp.key}] p50 at 1 connection added <= ${HTTP_TARGET.maxAddedP50Us} µs: ` +
        `${signed(cmp.addedP50Us)} µs  ${cmp.key === "proxy" ? met(cmp.latencyMet) : ""}`
          .trimEnd() +
        tag,
    );
  }
  lines.push(`  (measured on this machine for the issue: ${REFERENCE})`);
  lines.push("");
  const v = r.verify;
  lines.push(
    `verify [http proxy] (exit ${v.exitCode}; at least ${int(v.expectedRecords)} records ` +
      `expected): ${v.summary}`,
  );
  for (const extra of v.output.slice(1, 6)) lines.push(`    ${extra}`);
  if (r.proxyExitCode !== 0) lines.push(`warning: the proxy exited with code ${r.proxyExitCode}`);
  const p = r.profile;
  if (p) {
    lines.push("");
    lines.push(
      `profile of the http proxy during one ${c}-connection run at ${int(p.perSecond)} req/s, ` +
        `${int(p.samples)} samples: ${p.file}`,
    );
    lines.push(
      `  (${int(p.inspectorSamples)} samples left out: Deno reporting each fetch, and a copy of ` +
        `its response body, to the attached inspector, which an unprofiled proxy does not do)`,
    );
    lines.push("  self time:");
    for (const e of p.self.slice(0, 15)) {
      lines.push(`    ${e.percent.toFixed(1).padStart(5)}%  ${e.function}`);
    }
    lines.push("  inclusive time:");
    for (const e of p.inclusive.slice(0, 25)) {
      lines.push(`    ${e.percent.toFixed(1).padStart(5)}%  ${e.function}`);
    }
  }
  return lines;
}

async function main(args: string[]): Promise<number> {
  let flags;
  try {
    flags = parseArgs({
      args,
      options: {
        quick: { type: "boolean" },
        json: { type: "boolean" },
        keep: { type: "boolean" },
        profile: { type: "boolean" },
        generator: { type: "string" },
        "no-nginx": { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    console.error(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (flags.help) {
    console.log(USAGE);
    return 0;
  }
  const generator = flags.generator ?? "auto";
  if (generator !== "auto" && generator !== "wrk" && generator !== "fetch") {
    console.error(`--generator: auto, wrk or fetch, not ${generator}\n${USAGE}`);
    return 2;
  }
  const progress = (text: string): void => console.error(`bench: ${text}`);
  const dir = `${REPO}.bench/http-${Date.now()}-${Deno.pid}`;
  await Deno.mkdir(dir, { recursive: true });
  try {
    const result = await runHttpBench({
      quick: flags.quick === true,
      dir,
      progress,
      generator,
      nginx: flags["no-nginx"] !== true,
      profile: flags.profile === true,
    });
    if (flags.json) console.log(JSON.stringify(result, null, 2));
    else console.log(httpReport(result).join("\n"));
    return 0;
  } catch (e) {
    progress(`failed: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  } finally {
    if (flags.keep) progress(`kept the audit log in ${dir}`);
    else await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
