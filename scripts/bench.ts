/**
 * `deno task bench`: what the stdio proxy costs. A client in this process drives
 * `scripts/bench_upstream.ts` directly, then through `main.ts` run as a real process with signing,
 * redaction and JSONL storage on, and compares:
 *
 * - lockstep: one `tools/call` at a time, p50/p99 round trip;
 * - pipelined: many requests written as fast as the pipe takes them while the answers are read,
 *   in messages per second.
 *
 * The proxy runs with the default durability (`batch`: the log is fsynced before each batch is
 * forwarded) and again with `none`, for comparison. Its log goes to `.bench/` in the repository (on
 * the repository's disk, which a tmpfs `/tmp` may not be) and is checked with `main.ts verify` at
 * the end. The targets of issue 2 are reported, not asserted: the exit code is 0 unless the bench
 * itself could not run.
 *
 * Usage: `deno task bench [--quick] [--json] [--keep]`
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";

const USAGE = `usage: deno task bench [--quick] [--json] [--keep]
  --quick   a short run (a few seconds), for a smoke test
  --json    print the results as one JSON object on stdout (progress still goes to stderr)
  --keep    keep the audit logs in .bench/ instead of deleting them after verification`;

/** The targets of issue 2, item 10. */
const TARGET = {
  /** Pipelined throughput through the proxy, as a share of direct. */
  minPipelinedRatio: 0.4,
  /** Lockstep p50 round trip added by the proxy, in µs. */
  maxAddedP50Us: 150,
} as const;

/** How much work one run does. */
interface Plan {
  warmupLockstep: number;
  warmupPipelined: number;
  lockstep: number;
  /** Lockstep stops early after this long, so that a slow configuration keeps the run short. */
  lockstepBudgetMs: number;
  pipelined: number;
  pipelinedRepeats: number;
  /** Bytes of requests per write in the pipelined phase. */
  chunkBytes: number;
}

const FULL: Plan = {
  warmupLockstep: 500,
  warmupPipelined: 20_000,
  lockstep: 5_000,
  lockstepBudgetMs: 6_000,
  pipelined: 50_000,
  pipelinedRepeats: 3,
  chunkBytes: 64 << 10,
};

const QUICK: Plan = {
  warmupLockstep: 200,
  warmupPipelined: 5_000,
  lockstep: 1_000,
  lockstepBudgetMs: 1_500,
  pipelined: 10_000,
  pipelinedRepeats: 1,
  chunkBytes: 64 << 10,
};

// 32+ bytes, so the proxy does not warn about a short secret.
const SECRET = "bench-secret-0123456789abcdef0123456789abcdef";
const LF = 0x0a;
const STDERR_KEEP = 16 << 10;
/** How long a peer gets to exit after its stdin closes, and again after SIGTERM. */
const EXIT_GRACE_MS = 10_000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function path(relative: string): string {
  return fileURLToPath(new URL(relative, import.meta.url));
}

const REPO = path("../");
const MAIN = path("../main.ts");
const UPSTREAM = path("./bench_upstream.ts");

/**
 * A realistic `tools/call` of about 200 bytes. `token` is one of the default redaction patterns,
 * so every request is redacted on its way into the log.
 */
function toolCall(id: number): string {
  return `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"search_issues",` +
    `"arguments":{"repo":"acme/widgets","query":"is:open label:bug sort:updated","limit":20,` +
    `"token":"ghp_8f2Kd93LmQz0aXv7Rt1YbN4cWu6Hs5EjPo2g"}}}\n`;
}

const INITIALIZE = `{"jsonrpc":"2.0","id":"init","method":"initialize","params":{` +
  `"protocolVersion":"2025-06-18","capabilities":{},` +
  `"clientInfo":{"name":"mcp-audit-bench","version":"1"}}}\n`;
const INITIALIZED = `{"jsonrpc":"2.0","method":"notifications/initialized"}\n`;

/** Requests `first`…`first + count - 1`, joined into writes of about `chunkBytes`. */
function pipelinedChunks(first: number, count: number, chunkBytes: number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let lines: string[] = [];
  let size = 0;
  for (let id = first; id < first + count; id++) {
    const line = toolCall(id);
    lines.push(line);
    size += line.length;
    if (size >= chunkBytes) {
      chunks.push(encoder.encode(lines.join("")));
      lines = [];
      size = 0;
    }
  }
  if (lines.length > 0) chunks.push(encoder.encode(lines.join("")));
  return chunks;
}

function countLf(bytes: Uint8Array): number {
  let n = 0;
  let at = bytes.indexOf(LF);
  while (at !== -1) {
    n++;
    at = bytes.indexOf(LF, at + 1);
  }
  return n;
}

/** Nearest-rank percentile of sorted samples. */
function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** A process spoken to over its stdin and stdout, one JSON-RPC message a line. */
class Peer {
  readonly label: string;
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  /** Lines read but not yet claimed by a caller. */
  #unclaimed = 0;
  #stderr = "";
  #stderrDone: Promise<void>;
  #status: Deno.CommandStatus | undefined;

  constructor(label: string, argv: string[], env: Record<string, string>, cwd: string) {
    this.label = label;
    const [command, ...args] = argv;
    this.#child = new Deno.Command(command!, {
      args,
      env,
      clearEnv: true,
      cwd,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    this.#reader = this.#child.stdout.getReader();
    this.#stderrDone = this.#child.stderr.pipeTo(
      new WritableStream({
        write: (chunk) => {
          this.#stderr = (this.#stderr + decoder.decode(chunk, { stream: true })).slice(
            -STDERR_KEEP,
          );
        },
      }),
    ).catch(() => {});
  }

  /** What the process wrote to stderr (the last part of it). */
  get stderr(): string {
    return this.#stderr;
  }

  /** How the process ended, once it has. */
  get status(): Deno.CommandStatus | undefined {
    return this.#status;
  }

  /** Resolves when `count` more lines have been read. */
  async #lines(count: number): Promise<void> {
    while (this.#unclaimed < count) {
      const { value, done } = await this.#reader.read();
      if (done) {
        throw new Error(
          `${this.label} closed its stdout with ${count - this.#unclaimed} answers missing` +
            (this.#stderr ? `; its stderr ends:\n${this.#stderr.slice(-2000)}` : ""),
        );
      }
      this.#unclaimed += countLf(value);
    }
    this.#unclaimed -= count;
  }

  /** Sends `line` and waits for one line back. */
  async call(line: string): Promise<void> {
    await this.#writer.write(encoder.encode(line));
    await this.#lines(1);
  }

  /** Sends `line`, which gets no answer. */
  async notify(line: string): Promise<void> {
    await this.#writer.write(encoder.encode(line));
  }

  /**
   * Round trips of `count` requests one at a time, in µs, stopping early at `deadline`
   * (a `performance.now()` value).
   */
  async lockstep(first: number, count: number, deadline: number): Promise<Float64Array> {
    const samples = new Float64Array(count);
    let n = 0;
    for (; n < count; n++) {
      const bytes = encoder.encode(toolCall(first + n));
      const t0 = performance.now();
      await this.#writer.write(bytes);
      await this.#lines(1);
      const t1 = performance.now();
      samples[n] = (t1 - t0) * 1000;
      if (t1 > deadline) {
        n++;
        break;
      }
    }
    return samples.subarray(0, n);
  }

  /**
   * Writes `chunks` (holding `count` requests) as fast as the pipe takes them while reading the
   * answers; returns the milliseconds from the first write to the last answer.
   */
  async pipelined(chunks: Uint8Array[], count: number): Promise<number> {
    const t0 = performance.now();
    const writing = (async () => {
      for (const chunk of chunks) await this.#writer.write(chunk);
    })();
    let t1 = 0;
    await Promise.all([
      writing,
      this.#lines(count).then(() => {
        t1 = performance.now();
      }),
    ]);
    return t1 - t0;
  }

  /** Closes stdin and waits for the exit; signals the process if it does not go. */
  async close(): Promise<Deno.CommandStatus> {
    if (this.#status) return this.#status;
    await this.#writer.close().catch(() => {});
    const drained = (async () => {
      while (!(await this.#reader.read()).done) {
        // Whatever else it writes is not ours to count.
      }
    })().catch(() => {});
    let status = await this.#exit(EXIT_GRACE_MS);
    if (status === undefined) {
      this.kill("SIGTERM");
      status = await this.#exit(EXIT_GRACE_MS);
    }
    if (status === undefined) {
      this.kill("SIGKILL");
      status = await this.#child.status;
    }
    await drained;
    await this.#stderrDone;
    this.#status = status;
    return status;
  }

  /** Sends `signal` to the process, if it is still running. */
  kill(signal: Deno.Signal): void {
    try {
      this.#child.kill(signal);
    } catch {
      // It has exited already.
    }
  }

  async #exit(ms: number): Promise<Deno.CommandStatus | undefined> {
    const timeout = AbortSignal.timeout(ms);
    const expired = new Promise<undefined>((resolve) => {
      timeout.addEventListener("abort", () => resolve(undefined), { once: true });
    });
    return await Promise.race([this.#child.status, expired]);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** One configuration measured. */
interface TargetSpec {
  key: "direct" | "batch" | "none";
  label: string;
  argv: string[];
  env: Record<string, string>;
  /** The audit log, for the proxy runs. */
  logPath: string | null;
}

interface LockstepResult {
  n: number;
  p50Us: number;
  p99Us: number;
  meanUs: number;
}

interface PipelinedResult {
  messages: number;
  /** Messages per second of each repeat. */
  runs: number[];
  /** The median of the runs. */
  perSecond: number;
}

interface TargetResult {
  key: TargetSpec["key"];
  label: string;
  lockstep: LockstepResult;
  pipelined: PipelinedResult;
  /** Requests sent in all, warm-up included. */
  requests: number;
  exitCode: number;
}

interface VerifyResult {
  key: TargetSpec["key"];
  exitCode: number;
  /** The first line `verify` printed: its summary. */
  summary: string;
  /** Every line it printed. */
  output: string[];
  /** Records the log should hold at least: each request and its answer, plus start and stop. */
  expectedRecords: number;
}

/** Runs one configuration through warm-up, lockstep and pipelined phases. */
async function measure(
  spec: TargetSpec,
  plan: Plan,
  cwd: string,
  live: Set<Peer>,
  progress: (text: string) => void,
): Promise<TargetResult> {
  const peer = new Peer(spec.label, spec.argv, spec.env, cwd);
  live.add(peer);
  try {
    // Waiting for the answer to initialize is waiting for the process to be ready.
    await peer.call(INITIALIZE);
    await peer.notify(INITIALIZED);
    let id = 1;
    progress(`${spec.label}: warming up`);
    await peer.lockstep(id, plan.warmupLockstep, Infinity);
    id += plan.warmupLockstep;
    await peer.pipelined(
      pipelinedChunks(id, plan.warmupPipelined, plan.chunkBytes),
      plan.warmupPipelined,
    );
    id += plan.warmupPipelined;

    progress(`${spec.label}: lockstep`);
    const samples = await peer.lockstep(
      id,
      plan.lockstep,
      performance.now() + plan.lockstepBudgetMs,
    );
    id += samples.length;
    const sorted = samples.slice().sort();
    const lockstep: LockstepResult = {
      n: sorted.length,
      p50Us: percentile(sorted, 50),
      p99Us: percentile(sorted, 99),
      meanUs: sorted.reduce((a, b) => a + b, 0) / sorted.length,
    };

    const runs: number[] = [];
    for (let r = 0; r < plan.pipelinedRepeats; r++) {
      progress(`${spec.label}: pipelined ${r + 1}/${plan.pipelinedRepeats}`);
      const chunks = pipelinedChunks(id, plan.pipelined, plan.chunkBytes);
      const ms = await peer.pipelined(chunks, plan.pipelined);
      id += plan.pipelined;
      runs.push(plan.pipelined / (ms / 1000));
    }
    const status = await peer.close();
    return {
      key: spec.key,
      label: spec.label,
      lockstep,
      pipelined: { messages: plan.pipelined, runs, perSecond: median(runs) },
      // The ids used, plus initialize.
      requests: id,
      exitCode: status.code,
    };
  } finally {
    await peer.close();
    live.delete(peer);
  }
}

async function verify(
  key: TargetSpec["key"],
  logPath: string,
  requests: number,
  cwd: string,
): Promise<VerifyResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-env", MAIN, "verify", logPath],
    env: { AUDIT_SECRET: SECRET },
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const output = decoder.decode(out.stdout).split("\n").filter((l) => l !== "");
  const errors = decoder.decode(out.stderr).trim();
  return {
    key,
    exitCode: out.code,
    summary: output[0] ?? errors.split("\n")[0] ?? "(no output)",
    output,
    expectedRecords: 2 * requests + 2,
  };
}

/** The environment of a proxy run: ours, minus any mcp-audit settings, plus the bench's. */
function proxyEnv(logPath: string, durability: "batch" | "none"): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(Deno.env.toObject())) {
    if (name.startsWith("MCP_AUDIT_") || name === "AUDIT_SECRET") continue;
    env[name] = value;
  }
  return {
    ...env,
    AUDIT_SECRET: SECRET,
    MCP_AUDIT_AUDIT_STORAGE: "jsonl",
    MCP_AUDIT_AUDIT_PATH: logPath,
    MCP_AUDIT_AUDIT_DURABILITY: durability,
    MCP_AUDIT_AUDIT_SIGN: "true",
    MCP_AUDIT_MIDDLEWARE_REDACT_ENABLED: "true",
    // The bench measures the audit path; a 60-a-minute limit would answer most calls itself, and
    // the dashboard and metrics would need --allow-net, which this command line does not give.
    MCP_AUDIT_MIDDLEWARE_RATE_LIMIT_ENABLED: "false",
    MCP_AUDIT_DASHBOARD_ENABLED: "false",
    MCP_AUDIT_METRICS_ENABLED: "false",
  };
}

function targets(dir: string): TargetSpec[] {
  const deno = Deno.execPath();
  const upstream = [deno, "run", UPSTREAM];
  const proxy = [
    deno,
    "run",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-run",
    MAIN,
    "--",
    ...upstream,
  ];
  const plainEnv = Deno.env.toObject();
  return [
    { key: "direct", label: "direct", argv: upstream, env: plainEnv, logPath: null },
    ...(["batch", "none"] as const).map((durability): TargetSpec => {
      const logPath = `${dir}/audit-${durability}.jsonl`;
      return {
        key: durability,
        label: `proxy, durability=${durability}`,
        argv: proxy,
        env: proxyEnv(logPath, durability),
        logPath,
      };
    }),
  ];
}

const int = (n: number): string => Math.round(n).toLocaleString("en-US");
const pct = (r: number): string => `${(r * 100).toFixed(1)}%`;
const met = (ok: boolean): string => ok ? "met" : "NOT MET";

interface Comparison {
  key: "batch" | "none";
  addedP50Us: number;
  addedP99Us: number;
  pipelinedRatio: number;
  pipelinedMet: boolean;
  lockstepMet: boolean;
}

function compare(
  direct: TargetResult,
  proxy: TargetResult & { key: "batch" | "none" },
): Comparison {
  const addedP50Us = proxy.lockstep.p50Us - direct.lockstep.p50Us;
  const pipelinedRatio = proxy.pipelined.perSecond / direct.pipelined.perSecond;
  return {
    key: proxy.key,
    addedP50Us,
    addedP99Us: proxy.lockstep.p99Us - direct.lockstep.p99Us,
    pipelinedRatio,
    pipelinedMet: pipelinedRatio >= TARGET.minPipelinedRatio,
    lockstepMet: addedP50Us <= TARGET.maxAddedP50Us,
  };
}

function pad(cells: string[], widths: number[]): string {
  return cells.map((c, i) => i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)).join("  ");
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) => pad(r, widths));
  lines.splice(1, 0, widths.map((w) => "-".repeat(w)).join("  "));
  return lines;
}

function report(
  header: string,
  results: TargetResult[],
  comparisons: Comparison[],
  verified: VerifyResult[],
): string[] {
  const direct = results[0]!;
  const rows = [[
    "",
    "lockstep p50",
    "p99",
    "added p50",
    "added p99",
    "pipelined msg/s",
    "of direct",
  ]];
  for (const r of results) {
    const c = comparisons.find((x) => x.key === r.key);
    rows.push([
      r.label,
      `${int(r.lockstep.p50Us)} µs`,
      `${int(r.lockstep.p99Us)} µs`,
      c ? `+${int(c.addedP50Us)} µs` : "",
      c ? `+${int(c.addedP99Us)} µs` : "",
      int(r.pipelined.perSecond),
      c ? pct(c.pipelinedRatio) : "100%",
    ]);
  }
  const lines = [header, "", ...table(rows), ""];
  lines.push(
    `lockstep: ${int(direct.lockstep.n)} round trips each (fewer if a run hit its time budget: ` +
      results.filter((r) => r.lockstep.n < direct.lockstep.n).map((r) =>
        `${r.label} ${int(r.lockstep.n)}`
      ).join(", ") + (results.every((r) => r.lockstep.n === direct.lockstep.n) ? "none)" : ")"),
  );
  lines.push(
    `pipelined: median of ${direct.pipelined.runs.length} run(s) of ${
      int(direct.pipelined.messages)
    } requests; runs (msg/s): ` +
      results.map((r) => `${r.key} ${r.pipelined.runs.map(int).join("/")}`).join("; "),
  );
  lines.push("");
  lines.push("targets (issue 2; the default durability, batch, is the one that counts):");
  for (const c of comparisons) {
    lines.push(
      `  [${c.key}] pipelined through the proxy >= ${pct(TARGET.minPipelinedRatio)} of direct: ` +
        `${pct(c.pipelinedRatio)}  ${met(c.pipelinedMet)}`,
    );
    lines.push(
      `  [${c.key}] lockstep p50 added <= ${TARGET.maxAddedP50Us} µs: ` +
        `+${int(c.addedP50Us)} µs  ${met(c.lockstepMet)}`,
    );
  }
  lines.push("  (the Go tool, same load: about 17% of direct and +190 µs)");
  lines.push("");
  for (const v of verified) {
    lines.push(
      `verify [${v.key}] (exit ${v.exitCode}, expected at least ${
        int(v.expectedRecords)
      } records): ${v.summary}`,
    );
    for (const extra of v.output.slice(1, 6)) lines.push(`    ${extra}`);
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
  const plan = flags.quick ? QUICK : FULL;
  const progress = (text: string): void => console.error(`bench: ${text}`);

  const dir = `${REPO}.bench/run-${Date.now()}-${Deno.pid}`;
  await Deno.mkdir(dir, { recursive: true });
  const live = new Set<Peer>();
  // Ctrl-C reaches the children too; wait for them to finish rather than leave them behind.
  const onSignal = (): void => {
    for (const peer of live) peer.kill("SIGTERM");
  };
  Deno.addSignalListener("SIGINT", onSignal);

  const started = performance.now();
  try {
    const results: TargetResult[] = [];
    for (const spec of targets(dir)) {
      results.push(await measure(spec, plan, dir, live, progress));
    }
    const direct = results[0]!;
    const comparisons = results.flatMap((r) =>
      r.key === "direct" ? [] : [compare(direct, { ...r, key: r.key })]
    );
    progress("verifying the audit logs");
    const verified: VerifyResult[] = [];
    for (const spec of targets(dir)) {
      const result = results.find((r) => r.key === spec.key)!;
      if (spec.logPath === null || spec.key === "direct") continue;
      verified.push(await verify(spec.key, spec.logPath, result.requests, dir));
    }
    const seconds = (performance.now() - started) / 1000;
    const header =
      `mcp-audit stdio bench: deno ${Deno.version.deno}, ${Deno.build.os}/${Deno.build.arch}, ` +
      `${navigator.hardwareConcurrency} CPUs, ${flags.quick ? "quick" : "full"} run, ` +
      `${seconds.toFixed(1)} s; signing hmac-sha256, redaction on, JSONL in ${dir}`;
    if (flags.json) {
      console.log(JSON.stringify(
        {
          deno: Deno.version.deno,
          os: Deno.build.os,
          arch: Deno.build.arch,
          cpus: navigator.hardwareConcurrency,
          quick: flags.quick === true,
          seconds,
          plan,
          targets: TARGET,
          results,
          comparisons,
          verify: verified,
        },
        null,
        2,
      ));
    } else {
      console.log(report(header, results, comparisons, verified).join("\n"));
    }
    for (const r of results) {
      if (r.exitCode !== 0) progress(`warning: ${r.label} exited with code ${r.exitCode}`);
    }
    return 0;
  } catch (e) {
    progress(`failed: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    for (const peer of live) await peer.close();
    if (!flags.keep) await Deno.remove(dir, { recursive: true }).catch(() => {});
    else progress(`kept the audit logs in ${dir}`);
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
