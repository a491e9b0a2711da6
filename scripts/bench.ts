/**
 * `deno task bench`: what the stdio proxy costs. A client in this process drives
 * `scripts/bench_upstream.ts` directly, then through `main.ts` run as a real process with signing,
 * redaction and JSONL storage on, and compares:
 *
 * - lockstep: one `tools/call` at a time, p50/p99 round trip;
 * - pipelined: requests written as fast as the pipe takes them while the answers are read, in
 *   messages per second.
 *
 * The proxy runs with the default durability (`batch`: the log is fsynced before each batch is
 * forwarded) and again with `none`, for comparison. Its logs go to `.bench/` in the repository (on
 * the repository's disk, which a tmpfs `/tmp` may not be) and are checked with `main.ts verify` at
 * the end. The targets of issue 2 are reported, not asserted: the exit code is 0 unless the bench
 * itself could not run.
 *
 * Then the HTTP part, `scripts/bench_http.ts`: requests/s at 32 connections and p50/p99 at one,
 * directly against `scripts/bench_http_upstream.ts` and through `main.ts --transport http`, with
 * the targets of issue 3.
 *
 * @module
 */
import {
  BenchProcess,
  cleanEnv,
  INITIALIZE,
  INITIALIZED,
  INSPECT_ARG,
  INSPECTOR_LISTENING,
  int,
  MAIN,
  median,
  met,
  parseBenchArgs,
  pct,
  percentile,
  type ProfileEntry,
  profileLines,
  profileWhile,
  type Progress,
  proxyEnv,
  REPO,
  scriptPath,
  signed,
  summarizeProfile,
  table,
  toolCall,
  verifyLog,
} from "./bench_common.ts";
import { type HttpBenchResult, httpReport, runHttpBench } from "./bench_http.ts";

const USAGE = `usage: deno task bench [--quick] [--json] [--keep] [--profile]
  --quick     a short run (about 10 s, and 10 s more for HTTP), for a smoke test
  --json      print the results as one JSON object on stdout (progress still goes to stderr)
  --keep      keep the audit logs in .bench/ instead of deleting them after verification
  --profile   also run one more proxy (durability=batch) under the V8 CPU profiler during a
              pipelined run; saves .bench/profile-*.cpuprofile (open it in Chrome DevTools) and
              prints where the time went; the measured numbers above are from unprofiled runs;
              the same for the HTTP proxy during a 32-connection run`;

/** The targets of issue 2, item 10. */
const TARGET = {
  /** Pipelined throughput through the proxy, as a share of direct. */
  minPipelinedRatio: 0.4,
  /** Lockstep p50 round trip added by the proxy, in µs. */
  maxAddedP50Us: 150,
} as const;

/** How much work one configuration gets. */
interface Plan {
  warmupLockstep: number;
  warmupPipelined: number;
  lockstep: number;
  /** Lockstep stops early after this long, so that a slow configuration keeps the run short. */
  lockstepBudgetMs: number;
  pipelinedRepeats: number;
  /**
   * Each pipelined run sends about this many seconds' worth of requests, at the rate the warm-up
   * showed, within the bounds below: a fast configuration gets enough messages to be timed, a slow
   * one does not stretch the run (nor the log that `verify` reads afterwards).
   */
  pipelinedSeconds: number;
  pipelinedMin: number;
  pipelinedMax: number;
  /** Bytes of requests per write in the pipelined phase. */
  chunkBytes: number;
}

const FULL: Plan = {
  warmupLockstep: 300,
  warmupPipelined: 5_000,
  lockstep: 5_000,
  lockstepBudgetMs: 4_000,
  pipelinedRepeats: 5,
  pipelinedSeconds: 2,
  pipelinedMin: 5_000,
  pipelinedMax: 100_000,
  chunkBytes: 64 << 10,
};

const QUICK: Plan = {
  warmupLockstep: 100,
  warmupPipelined: 2_000,
  lockstep: 1_000,
  lockstepBudgetMs: 1_000,
  pipelinedRepeats: 1,
  pipelinedSeconds: 1,
  pipelinedMin: 2_000,
  pipelinedMax: 50_000,
  chunkBytes: 64 << 10,
};

const LF = 0x0a;

const encoder = new TextEncoder();

const UPSTREAM = scriptPath("./bench_upstream.ts");

/** A `tools/call` with id `id` as a line of the stdio transport. */
function toolCallLine(id: number): string {
  return `${toolCall(id)}\n`;
}

const INITIALIZE_LINE = `${INITIALIZE}\n`;
const INITIALIZED_LINE = `${INITIALIZED}\n`;

/** Requests `first`…`first + count - 1`, joined into writes of about `chunkBytes`. */
function pipelinedChunks(first: number, count: number, chunkBytes: number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let lines: string[] = [];
  let size = 0;
  for (let id = first; id < first + count; id++) {
    const line = toolCallLine(id);
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

/** A process spoken to over its stdin and stdout, one JSON-RPC message a line. */
class Peer extends BenchProcess {
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  /** Lines read but not yet claimed by a caller. */
  #unclaimed = 0;
  #closing: Promise<Deno.CommandStatus> | undefined;

  constructor(label: string, argv: string[], env: Record<string, string>, cwd: string) {
    super(label, argv, env, cwd, true);
    this.#writer = this.child.stdin.getWriter();
    this.#reader = this.child.stdout.getReader();
  }

  /** Resolves when `count` more lines have been read. */
  async #lines(count: number): Promise<void> {
    while (this.#unclaimed < count) {
      const { value, done } = await this.#reader.read();
      if (done) {
        throw new Error(
          `${this.label} closed its stdout with ${count - this.#unclaimed} answers missing` +
            (this.stderr ? `; its stderr ends:\n${this.stderr.slice(-2000)}` : ""),
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
    while (n < count) {
      const bytes = encoder.encode(toolCallLine(first + n));
      const t0 = performance.now();
      await this.#writer.write(bytes);
      await this.#lines(1);
      const t1 = performance.now();
      samples[n++] = (t1 - t0) * 1000;
      if (t1 > deadline) break;
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

  /** Closes stdin and waits for the exit, signalling the process if it does not go. */
  close(): Promise<Deno.CommandStatus> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<Deno.CommandStatus> {
    await this.#writer.close().catch(() => {});
    const drained = (async () => {
      while (!(await this.#reader.read()).done) {
        // Whatever else it writes is not ours to count.
      }
    })().catch(() => {});
    const status = await this.waitExit(["SIGTERM"]);
    await drained;
    return status;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

type TargetKey = "direct" | "batch" | "none";

/** One configuration measured. */
interface TargetSpec {
  key: TargetKey;
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
  /** Requests per run. */
  messages: number;
  /** Messages per second of each run. */
  runs: number[];
  /** The median of the runs. */
  perSecond: number;
}

interface TargetResult {
  key: TargetKey;
  label: string;
  lockstep: LockstepResult;
  pipelined: PipelinedResult;
  /** Requests sent in all, warm-up and initialize included. */
  requests: number;
  exitCode: number;
}

interface VerifyResult {
  key: TargetKey;
  exitCode: number;
  /** The first line `verify` printed: its summary. */
  summary: string;
  /** Every line it printed. */
  output: string[];
  /**
   * Records the log holds at least: each request and its answer, the `initialized` notification,
   * `audit/start` and `audit/stop`.
   */
  expectedRecords: number;
}

interface ProfileResult {
  file: string;
  samples: number;
  /** The pipelined rate while profiled (the profiler slows it down). */
  perSecond: number;
  /** Time spent in the function itself. */
  self: ProfileEntry[];
  /** Time spent in the function and what it called. */
  inclusive: ProfileEntry[];
}

/** The phases every configuration goes through: warm-up, lockstep, pipelined. */
async function drive(
  peer: Peer,
  plan: Plan,
  progress: Progress,
): Promise<Omit<TargetResult, "key" | "label" | "exitCode">> {
  // Waiting for the answer to initialize is waiting for the process to be ready.
  await peer.call(INITIALIZE_LINE);
  await peer.notify(INITIALIZED_LINE);
  let id = 1;
  progress(`${peer.label}: warming up`);
  await peer.lockstep(id, plan.warmupLockstep, Infinity);
  id += plan.warmupLockstep;
  const warmMs = await peer.pipelined(
    pipelinedChunks(id, plan.warmupPipelined, plan.chunkBytes),
    plan.warmupPipelined,
  );
  id += plan.warmupPipelined;

  progress(`${peer.label}: lockstep`);
  const samples = await peer.lockstep(id, plan.lockstep, performance.now() + plan.lockstepBudgetMs);
  id += samples.length;
  const sorted = samples.slice().sort();
  const lockstep: LockstepResult = {
    n: sorted.length,
    p50Us: percentile(sorted, 50),
    p99Us: percentile(sorted, 99),
    meanUs: sorted.reduce((a, b) => a + b, 0) / sorted.length,
  };

  const messages = pipelinedCount(plan, plan.warmupPipelined / (warmMs / 1000));
  const runs: number[] = [];
  for (let r = 0; r < plan.pipelinedRepeats; r++) {
    progress(`${peer.label}: pipelined ${r + 1}/${plan.pipelinedRepeats} (${int(messages)})`);
    const chunks = pipelinedChunks(id, messages, plan.chunkBytes);
    const ms = await peer.pipelined(chunks, messages);
    id += messages;
    runs.push(messages / (ms / 1000));
  }
  return {
    lockstep,
    pipelined: { messages, runs, perSecond: median(runs) },
    // The ids used, plus initialize.
    requests: id,
  };
}

function pipelinedCount(plan: Plan, perSecond: number): number {
  const wanted = Math.round(perSecond * plan.pipelinedSeconds / 1000) * 1000;
  return Math.min(plan.pipelinedMax, Math.max(plan.pipelinedMin, wanted));
}

/** Runs one configuration in a fresh process. */
async function measure(
  spec: TargetSpec,
  plan: Plan,
  cwd: string,
  live: Set<Peer>,
  progress: Progress,
): Promise<TargetResult> {
  const peer = new Peer(spec.label, spec.argv, spec.env, cwd);
  live.add(peer);
  try {
    const result = await drive(peer, plan, progress);
    const status = await peer.close();
    return { key: spec.key, label: spec.label, ...result, exitCode: status.code };
  } finally {
    await peer.close();
    live.delete(peer);
  }
}

/** Runs the proxy under the V8 CPU profiler for one pipelined run, after a warm-up. */
async function profileProxy(
  spec: TargetSpec,
  plan: Plan,
  cwd: string,
  live: Set<Peer>,
  progress: Progress,
): Promise<ProfileResult> {
  // `deno run --inspect=127.0.0.1:0 …`: any free port, read back from the banner on stderr.
  const argv = [spec.argv[0]!, spec.argv[1]!, INSPECT_ARG, ...spec.argv.slice(2)];
  const peer = new Peer(`${spec.label} (profiled)`, argv, spec.env, cwd);
  live.add(peer);
  try {
    const [, url] = await peer.stderrMatch(INSPECTOR_LISTENING);
    await peer.call(INITIALIZE_LINE);
    await peer.notify(INITIALIZED_LINE);
    progress(`${peer.label}: warming up`);
    const warmMs = await peer.pipelined(
      pipelinedChunks(1, plan.warmupPipelined, plan.chunkBytes),
      plan.warmupPipelined,
    );
    const messages = pipelinedCount(plan, plan.warmupPipelined / (warmMs / 1000));
    const chunks = pipelinedChunks(1 + plan.warmupPipelined, messages, plan.chunkBytes);
    const { result: ms, profile, file } = await profileWhile(url!, "profile", () => {
      progress(`${peer.label}: pipelined (${int(messages)})`);
      return peer.pipelined(chunks, messages);
    });
    const { self, inclusive } = summarizeProfile(profile, 25);
    return {
      file,
      samples: profile.samples.length,
      perSecond: messages / (ms / 1000),
      self,
      inclusive,
    };
  } finally {
    await peer.close();
    live.delete(peer);
  }
}

async function verify(
  key: TargetKey,
  logPath: string,
  requests: number,
  cwd: string,
): Promise<VerifyResult> {
  return { key, ...await verifyLog(logPath, cwd), expectedRecords: 2 * requests + 3 };
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
  return [
    { key: "direct", label: "direct", argv: upstream, env: cleanEnv(), logPath: null },
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

interface Comparison {
  key: Exclude<TargetKey, "direct">;
  addedP50Us: number;
  addedP99Us: number;
  pipelinedRatio: number;
  pipelinedMet: boolean;
  lockstepMet: boolean;
}

function compare(direct: TargetResult, proxy: TargetResult): Comparison | undefined {
  if (proxy.key === "direct") return undefined;
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

interface Results {
  header: string;
  results: TargetResult[];
  comparisons: Comparison[];
  verified: VerifyResult[];
  profile: ProfileResult | undefined;
}

function report({ header, results, comparisons, verified, profile }: Results): string[] {
  const rows = [[
    "",
    "lockstep n",
    "p50",
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
      int(r.lockstep.n),
      `${int(r.lockstep.p50Us)} µs`,
      `${int(r.lockstep.p99Us)} µs`,
      c ? `${signed(c.addedP50Us)} µs` : "",
      c ? `${signed(c.addedP99Us)} µs` : "",
      int(r.pipelined.perSecond),
      c ? pct(c.pipelinedRatio) : "100%",
    ]);
  }
  const lines = [header, "", ...table(rows), ""];
  lines.push(
    "pipelined: median of the runs; msg/s of each run (requests per run): " +
      results.map((r) =>
        `${r.key} ${r.pipelined.runs.map(int).join(" / ")} (${int(r.pipelined.messages)})`
      ).join("; "),
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
        `${signed(c.addedP50Us)} µs  ${met(c.lockstepMet)}`,
    );
  }
  lines.push("  (the Go tool, same kind of load: about 17% of direct and +190 µs)");
  lines.push("");
  for (const v of verified) {
    lines.push(
      `verify [${v.key}] (exit ${v.exitCode}; at least ${int(v.expectedRecords)} records ` +
        `expected): ${v.summary}`,
    );
    for (const extra of v.output.slice(1, 6)) lines.push(`    ${extra}`);
  }
  if (profile) {
    lines.push("");
    lines.push(
      `profile of the proxy (batch) during one pipelined run at ${int(profile.perSecond)} msg/s, ${
        int(profile.samples)
      } samples: ${profile.file}`,
    );
    lines.push(...profileLines(profile));
  }
  return lines;
}

async function main(args: string[]): Promise<number> {
  const flags = parseBenchArgs(args, USAGE, {});
  if (typeof flags === "number") return flags;
  const plan = flags.quick ? QUICK : FULL;
  const progress = (text: string): void => console.error(`bench: ${text}`);

  const dir = `${REPO}.bench/run-${Date.now()}-${Deno.pid}`;
  await Deno.mkdir(dir, { recursive: true });
  const live = new Set<Peer>();
  // Ctrl-C reaches the children as well; end them and let the run fail rather than leave them.
  const onSignal = (): void => {
    progress("interrupted");
    for (const peer of live) peer.kill("SIGTERM");
  };
  Deno.addSignalListener("SIGINT", onSignal);

  const started = performance.now();
  try {
    const specs = targets(dir);
    const results: TargetResult[] = [];
    for (const spec of specs) results.push(await measure(spec, plan, dir, live, progress));
    const direct = results[0]!;
    const comparisons = results.flatMap((r) => compare(direct, r) ?? []);

    progress("verifying the audit logs");
    const verified = await Promise.all(specs.flatMap((spec) => {
      const requests = results.find((r) => r.key === spec.key)?.requests ?? 0;
      return spec.logPath === null ? [] : [verify(spec.key, spec.logPath, requests, dir)];
    }));

    let profile: ProfileResult | undefined;
    if (flags.profile) {
      const spec = specs.find((s) => s.key === "batch")!;
      profile = await profileProxy(
        { ...spec, env: proxyEnv(`${dir}/audit-profiled.jsonl`, "batch") },
        plan,
        dir,
        live,
        progress,
      );
    }

    const seconds = (performance.now() - started) / 1000;
    const http: HttpBenchResult = await runHttpBench({
      quick: flags.quick === true,
      dir,
      progress,
      profile: flags.profile === true,
    });
    const header = `mcp-audit stdio bench: deno ${Deno.version.deno}, ` +
      `${Deno.build.os}/${Deno.build.arch}, ${navigator.hardwareConcurrency} CPUs, ` +
      `${flags.quick ? "quick" : "full"} run in ${seconds.toFixed(1)} s; ` +
      `proxy with hmac-sha256 signing, redaction, JSONL under ${REPO}.bench/`;
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
          profile: profile ?? null,
          http,
        },
        null,
        2,
      ));
    } else {
      console.log(
        [...report({ header, results, comparisons, verified, profile }), "", ...httpReport(http)]
          .join("\n"),
      );
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
    await Promise.all([...live].map((peer) => peer.close()));
    if (flags.keep) progress(`kept the audit logs in ${dir}`);
    else await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
