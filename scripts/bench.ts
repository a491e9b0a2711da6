/**
 * `deno task bench`: what the stdio proxy costs. A client in this process drives
 * `scripts/bench_upstream.ts` directly, and through `main.ts` run as a real process with signing,
 * key redaction and JSONL storage on, and compares:
 *
 * - lockstep: one `tools/call` at a time, p50/p99 round trip;
 * - pipelined: requests written as fast as the pipe takes them while the answers are read, in
 *   messages per second.
 *
 * The proxy runs with the guardrails off and the default durability (`batch`: the log is fsynced
 * before each batch is forwarded), off with durability `none`, for comparison, and with the
 * guardrails on (`scripts/bench_guardrails_config.ts`: a 50-rule policy, every value detector and
 * a custom pattern, pinning, a rate limit too high to refuse) and durability `batch`. All of them
 * are up at once and measured in turns, round after round, so that a change in the machine's load
 * hits each alike. Every call carries a few hundred bytes of prose for the detectors to read.
 *
 * One more configuration, `telemetry`, is the default one (guardrails off, durability `batch`)
 * with the Prometheus listener on and the OpenTelemetry export on: a span for every exchange
 * (`otel.methods: all`) and, with `--otel-logs`, every audit record as a log record, sent
 * over OTLP/HTTP to a receiver on loopback (`scripts/bench_otlp_sink.ts`, a process of its own)
 * that counts what arrives. Its metrics are scraped once a round, alongside its pipelined run, as
 * Prometheus would (OpenMetrics, gzip), so that the scrape's cost is inside the measurement; after
 * each of its pipelined runs the bench waits for the export to reach the receiver before the next
 * configuration runs, so that one configuration's export does not slow the next one's
 * measurement. Issue 10's requirement — the figures within 5% of those without telemetry, in the
 * same run — is reported against `batch`, with the spans and log records received against the
 * calls made and the records logged.
 *
 * Every answer is checked to be the server's result, as it is read; a call the proxy refused or
 * failed ends the run. The logs go to `.bench/` in the repository (on the repository's disk, which
 * a tmpfs `/tmp` may not be) and are checked at the end with `main.ts verify`, and read again to
 * count what the guardrails decided. The targets of issue 2, and the guardrails' (within 10% of the
 * figures without them), are reported, not asserted: the exit code is 0 unless the bench itself
 * could not run or a call did not reach the server.
 *
 * Then the HTTP part, `scripts/bench_http.ts`: requests/s at 32 connections and p50/p99 at one,
 * directly against `scripts/bench_http_upstream.ts` and through `main.ts --transport http` with the
 * guardrails off and on, with the targets of issue 3.
 *
 * Last the detectors part, `scripts/bench_detectors.ts`: the value detectors on adversarial strings
 * at 1 MiB and 2 MiB, the ratio of the two times (about 2 when linear), flagged when super-linear.
 *
 * Then storage, `scripts/bench_storage.ts`: records/s for JSONL and SQLite, sync and async, and
 * reads of a large SQLite log.
 *
 * @module
 */
import {
  BenchProcess,
  checkTally,
  cleanEnv,
  GUARDRAIL_CODE,
  GUARDRAIL_GROUPS,
  INITIALIZE,
  INITIALIZED,
  INSPECT_ARG,
  INSPECTOR_LISTENING,
  INSPECTOR_ONLY,
  int,
  type LogTally,
  MAIN,
  median,
  met,
  METRICS_LISTENING,
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
  tallyLine,
  tallyLog,
  TELEMETRY_CODE,
  TELEMETRY_GROUPS,
  TELEMETRY_PERMISSIONS,
  TELEMETRY_TARGET,
  type TelemetryCost,
  telemetryCost,
  telemetryCostLines,
  telemetryEnv,
  type TelemetryExport,
  TelemetryProbe,
  toolCall,
  TOOLS_LIST,
  TOOLS_LIST_ANSWER,
  turnOrder,
  verifyLog,
} from "./bench_common.ts";
import {
  ALLOWING_RULE,
  describeGuardrails,
  type Figures,
  GUARDRAIL_TARGET,
  type GuardrailCost,
  guardrailCost,
  guardrailCostLines,
  type Guardrails,
  writeGuardrailsConfig,
} from "./bench_guardrails_config.ts";
import { type HttpBenchResult, httpReport, runHttpBench } from "./bench_http.ts";
import { SINK_LISTENING, sinkArgv } from "./bench_otlp_sink.ts";
import { runStorageBench, type StorageBenchResult, storageReport } from "./bench_storage.ts";
import { type DetectorBenchResult, detectorReport, runDetectorBench } from "./bench_detectors.ts";

const USAGE = `usage: deno task bench [--quick] [--json] [--keep] [--profile] [--otel-logs]
  --quick     a short run (about 15 s, 20 s more for HTTP, 10 s for the detectors), for a smoke
              test
  --json      print the results as one JSON object on stdout (progress still goes to stderr)
  --keep      keep the audit logs and configuration files in .bench/ instead of deleting them
  --profile   also run the proxy (durability=batch) with the guardrails off and on, and with
              telemetry on, under the V8 CPU profiler during a pipelined run; saves
              .bench/profile-*.cpuprofile (open it in Chrome DevTools) and prints where the time
              went, and the guardrails' (or the telemetry's) share of it;
              the measured numbers above are from unprofiled runs; the same for the HTTP proxy
              during a 32-connection run
  --otel-logs the telemetry configuration also exports every audit record as an OpenTelemetry
              log record (issue 10's figure is for metrics and spans)`;

/** The targets of issue 2, item 10. */
const TARGET = {
  /** Pipelined throughput through the proxy, as a share of direct. */
  minPipelinedRatio: 0.4,
  /** Lockstep p50 round trip added by the proxy, in µs. */
  maxAddedP50Us: 150,
} as const;

/** How much work each configuration gets. */
interface Plan {
  warmupLockstep: number;
  warmupPipelined: number;
  /** Rounds; each round runs lockstep then pipelined on every configuration in turn. */
  rounds: number;
  /** Lockstep requests in all the rounds together. */
  lockstep: number;
  /**
   * Lockstep stops early after this long (in all the rounds together), so that a slow
   * configuration keeps the run short.
   */
  lockstepBudgetMs: number;
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
  rounds: 6,
  lockstep: 5_000,
  lockstepBudgetMs: 4_000,
  pipelinedSeconds: 2,
  pipelinedMin: 5_000,
  pipelinedMax: 100_000,
  chunkBytes: 64 << 10,
};

const QUICK: Plan = {
  warmupLockstep: 100,
  warmupPipelined: 2_000,
  rounds: 1,
  lockstep: 1_000,
  lockstepBudgetMs: 1_000,
  pipelinedSeconds: 1,
  pipelinedMin: 2_000,
  pipelinedMax: 50_000,
  chunkBytes: 64 << 10,
};

const LF = 0x0a;

const encoder = new TextEncoder();

const UPSTREAM = scriptPath("./bench_upstream.ts");

/**
 * How every answer of the bench's upstream to a `tools/call` ends (`"isError":false}}`), and no
 * answer of the proxy's own does (`-32029`, `-32030`, `-32603`, or a `tool_result` denial, which
 * ends `"isError":true}}`).
 */
const RESULT_END = encoder.encode("se}}");

/** A `tools/call` with id `id` as a line of the stdio transport. */
function toolCallLine(id: number): string {
  return `${toolCall(id)}\n`;
}

const INITIALIZE_LINE = `${INITIALIZE}\n`;
const INITIALIZED_LINE = `${INITIALIZED}\n`;
const TOOLS_LIST_LINE = `${TOOLS_LIST}\n`;
/** How the answer to `initialize` begins: the bench's upstream answers it like any request. */
const INITIALIZE_ANSWER = `{"jsonrpc":"2.0","id":"init","result":`;

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

/**
 * A process spoken to over its stdin and stdout, one JSON-RPC message a line. Every answer to a
 * `tools/call` is checked, as it is counted, to end as the server's results do: a refusal or an
 * error from the proxy throws.
 */
class Peer extends BenchProcess {
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  /** Lines read but not yet claimed by a caller. */
  #unclaimed = 0;
  /** The last bytes read, for an answer whose end spans two reads. */
  #tail = new Uint8Array(0);
  #closing: Promise<Deno.CommandStatus> | undefined;

  constructor(label: string, argv: string[], env: Record<string, string>, cwd: string) {
    super(label, argv, env, cwd, true);
    this.#writer = this.child.stdin.getWriter();
    this.#reader = this.child.stdout.getReader();
  }

  async #read(missing: number): Promise<Uint8Array> {
    const { value, done } = await this.#reader.read();
    if (done) {
      throw new Error(
        `${this.label} closed its stdout with ${missing} answers missing` +
          (this.stderr ? `; its stderr ends:\n${this.stderr.slice(-2000)}` : ""),
      );
    }
    return value;
  }

  #remember(bytes: Uint8Array): void {
    const keep = RESULT_END.length;
    if (bytes.length >= keep) {
      this.#tail = bytes.slice(bytes.length - keep);
    } else {
      const joined = new Uint8Array(this.#tail.length + bytes.length);
      joined.set(this.#tail);
      joined.set(bytes, this.#tail.length);
      this.#tail = joined.slice(-keep);
    }
  }

  /** Whether the line that ends at `bytes[lf]` ends as the server's results do. */
  #endsAsResult(bytes: Uint8Array, lf: number): boolean {
    for (let k = 1; k <= RESULT_END.length; k++) {
      const at = lf - k;
      const byte = at >= 0 ? bytes[at] : this.#tail[this.#tail.length + at];
      if (byte !== RESULT_END[RESULT_END.length - k]) return false;
    }
    return true;
  }

  /** Counts the answers that end in `bytes`, checking each. */
  #answers(bytes: Uint8Array): number {
    let n = 0;
    for (let lf = bytes.indexOf(LF); lf !== -1; lf = bytes.indexOf(LF, lf + 1)) {
      if (!this.#endsAsResult(bytes, lf)) {
        const start = bytes.lastIndexOf(LF, lf - 1) + 1;
        const line = new TextDecoder().decode(bytes.subarray(start, lf));
        throw new Error(
          `${this.label}: a call was answered by something other than the server's result ` +
            `(refused by the proxy?): ${line.slice(0, 1000)}`,
        );
      }
      n++;
    }
    this.#remember(bytes);
    return n;
  }

  /** Resolves when `count` more answers have been read, each the server's result. */
  async #lines(count: number): Promise<void> {
    while (this.#unclaimed < count) {
      this.#unclaimed += this.#answers(await this.#read(count - this.#unclaimed));
    }
    this.#unclaimed -= count;
  }

  /** Sends `line` and resolves with the one line of its answer (before any load is sent). */
  async request(line: string): Promise<string> {
    if (this.#unclaimed !== 0) throw new Error(`${this.label}: answers are still unread`);
    await this.#writer.write(encoder.encode(line));
    const decoder = new TextDecoder();
    let text = "";
    while (true) {
      const bytes = await this.#read(1);
      this.#remember(bytes);
      text += decoder.decode(bytes, { stream: true });
      const lf = text.indexOf("\n");
      if (lf === -1) continue;
      if (lf !== text.length - 1) {
        throw new Error(`${this.label}: more than one line answered one request: ${text}`);
      }
      return text.slice(0, lf);
    }
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

/** `initialize`, `notifications/initialized` and `tools/list`, each answer checked. */
async function handshake(peer: Peer): Promise<void> {
  // Waiting for the answer to initialize is waiting for the process to be ready.
  const init = await peer.request(INITIALIZE_LINE);
  if (!init.startsWith(INITIALIZE_ANSWER)) {
    throw new Error(`${peer.label}: initialize was answered ${init.slice(0, 500)}`);
  }
  await peer.notify(INITIALIZED_LINE);
  const list = await peer.request(TOOLS_LIST_LINE);
  if (!list.startsWith(TOOLS_LIST_ANSWER)) {
    throw new Error(`${peer.label}: tools/list was answered ${list.slice(0, 500)}`);
  }
}

/** The requests of the handshake: `initialize` and `tools/list`. */
const HANDSHAKE_REQUESTS = 2;

type TargetKey = "direct" | "batch" | "none" | "guarded" | "telemetry";

/** One configuration measured. */
interface TargetSpec {
  key: TargetKey;
  label: string;
  argv: string[];
  env: Record<string, string>;
  /** The audit log, for the proxy runs. */
  logPath: string | null;
  /** The proxy's guardrails, for the proxy runs. */
  guardrails: Guardrails | null;
  /** Whether it runs with metrics and the OpenTelemetry export on. */
  telemetry: boolean;
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
  guardrails: Guardrails | null;
  lockstep: LockstepResult;
  /** Each round's lockstep p50 and p99, in µs. */
  lockstepRounds: { p50Us: number; p99Us: number }[];
  pipelined: PipelinedResult;
  /** Requests sent in all, warm-up and handshake included. */
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
  /** What the log says the proxy did with the calls. */
  tally: LogTally;
}

interface ProfileResult {
  key: TargetKey;
  label: string;
  file: string;
  samples: number;
  /** The pipelined rate while profiled (the profiler slows it down). */
  perSecond: number;
  /** Whose code `groups` and `focused` are about: the telemetry's for `telemetry`. */
  focus: "guardrails" | "telemetry";
  /** The guardrails' (or telemetry's) code, callees included. */
  groups: ProfileEntry[];
  /** The guardrails' (or telemetry's) functions, by own time and the built-ins they call. */
  focused: ProfileEntry[];
  /** Time spent in the function itself. */
  self: ProfileEntry[];
  /** Time spent in the function and what it called. */
  inclusive: ProfileEntry[];
}

/** How long a telemetry proxy that has answered `initialize` gets to say its metrics listen. */
const METRICS_WAIT_MS = 10_000;

/** Where the telemetry configuration exports, and whether log records too. */
interface TelemetrySetup {
  /** The OTLP sink's base URL. */
  sinkUrl: string;
  logs: boolean;
}

/** A configuration's process, and what has been measured of it so far. */
class Measured {
  readonly spec: TargetSpec;
  readonly peer: Peer;
  /** The next request id. */
  id = 1;
  /** Requests per pipelined run, set by the warm-up. */
  messages = 0;
  readonly lockstep: Float64Array[] = [];
  readonly runs: number[] = [];
  /** The telemetry configuration's metrics and export, once its metrics listen. */
  probe: TelemetryProbe | null = null;
  readonly #telemetry: TelemetrySetup;

  constructor(spec: TargetSpec, cwd: string, telemetry: TelemetrySetup) {
    this.spec = spec;
    this.peer = new Peer(spec.label, spec.argv, spec.env, cwd);
    this.#telemetry = telemetry;
  }

  async warmUp(plan: Plan): Promise<void> {
    await handshake(this.peer);
    if (this.spec.telemetry) {
      const [, address] = await this.peer.stderrMatch(
        METRICS_LISTENING,
        AbortSignal.timeout(METRICS_WAIT_MS),
      );
      const { sinkUrl, logs } = this.#telemetry;
      this.probe = new TelemetryProbe(
        `${address}/metrics`,
        sinkUrl,
        logs,
        this.peer,
      );
    }
    await this.peer.lockstep(this.id, plan.warmupLockstep, Infinity);
    this.id += plan.warmupLockstep;
    const chunks = pipelinedChunks(this.id, plan.warmupPipelined, plan.chunkBytes);
    const warmMs = await this.peer.pipelined(chunks, plan.warmupPipelined);
    this.id += plan.warmupPipelined;
    this.messages = pipelinedCount(plan, plan.warmupPipelined / (warmMs / 1000));
    await this.probe?.drain();
  }

  async lockstepRound(plan: Plan): Promise<void> {
    const count = Math.ceil(plan.lockstep / plan.rounds);
    const budget = plan.lockstepBudgetMs / plan.rounds;
    const samples = await this.peer.lockstep(this.id, count, performance.now() + budget);
    this.id += samples.length;
    this.lockstep.push(samples);
  }

  async pipelinedRound(plan: Plan): Promise<void> {
    const chunks = pipelinedChunks(this.id, this.messages, plan.chunkBytes);
    const run = (): Promise<number> => this.peer.pipelined(chunks, this.messages);
    // The round's scrape, while the load runs: in the measurement, as in production.
    const ms = this.probe === null ? await run() : await this.probe.alongside(run);
    this.id += this.messages;
    this.runs.push(this.messages / (ms / 1000));
    await this.probe?.drain();
  }

  result(exitCode: number): TargetResult {
    const all = new Float64Array(this.lockstep.reduce((n, s) => n + s.length, 0));
    let at = 0;
    for (const s of this.lockstep) {
      all.set(s, at);
      at += s.length;
    }
    const sorted = all.sort();
    return {
      key: this.spec.key,
      label: this.spec.label,
      guardrails: this.spec.guardrails,
      lockstep: {
        n: sorted.length,
        p50Us: percentile(sorted, 50),
        p99Us: percentile(sorted, 99),
        meanUs: sorted.reduce((a, b) => a + b, 0) / sorted.length,
      },
      lockstepRounds: this.lockstep.map((samples) => {
        const round = samples.slice().sort();
        return { p50Us: percentile(round, 50), p99Us: percentile(round, 99) };
      }),
      pipelined: { messages: this.messages, runs: this.runs, perSecond: median(this.runs) },
      // The tools/call ids used, plus the handshake's requests.
      requests: this.id - 1 + HANDSHAKE_REQUESTS,
      exitCode,
    };
  }
}

function pipelinedCount(plan: Plan, perSecond: number): number {
  const wanted = Math.round(perSecond * plan.pipelinedSeconds / 1000) * 1000;
  return Math.min(plan.pipelinedMax, Math.max(plan.pipelinedMin, wanted));
}

/**
 * Runs every configuration at once, each in its own process: a warm-up each, then rounds of
 * lockstep on each in turn and pipelined on each in turn.
 */
async function measureAll(
  specs: TargetSpec[],
  plan: Plan,
  cwd: string,
  live: Set<Peer>,
  telemetry: TelemetrySetup,
  progress: Progress,
): Promise<{ results: TargetResult[]; probe: TelemetryProbe | null }> {
  const measured: Measured[] = [];
  try {
    for (const spec of specs) {
      const m = new Measured(spec, cwd, telemetry);
      measured.push(m);
      live.add(m.peer);
    }
    for (const m of measured) {
      progress(`${m.spec.label}: warming up`);
      await m.warmUp(plan);
    }
    for (let round = 0; round < plan.rounds; round++) {
      const turn = turnOrder(measured, round);
      const of = `round ${round + 1}/${plan.rounds}`;
      for (const m of turn) {
        progress(`${m.spec.label}: lockstep, ${of}`);
        await m.lockstepRound(plan);
      }
      for (const m of turn) {
        progress(`${m.spec.label}: pipelined (${int(m.messages)}), ${of}`);
        await m.pipelinedRound(plan);
      }
    }
    // The proxy's own account of its export, before it stops.
    for (const m of measured) await m.probe?.reading();
    const results: TargetResult[] = [];
    for (const m of measured) results.push(m.result((await m.peer.close()).code));
    return { results, probe: measured.find((m) => m.probe !== null)?.probe ?? null };
  } finally {
    for (const m of measured) {
      await m.peer.close();
      live.delete(m.peer);
    }
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
    await handshake(peer);
    progress(`${peer.label}: warming up`);
    const warmMs = await peer.pipelined(
      pipelinedChunks(1, plan.warmupPipelined, plan.chunkBytes),
      plan.warmupPipelined,
    );
    const messages = pipelinedCount(plan, plan.warmupPipelined / (warmMs / 1000));
    const chunks = pipelinedChunks(1 + plan.warmupPipelined, messages, plan.chunkBytes);
    const { result: ms, profile, file } = await profileWhile(url!, `profile-${spec.key}`, () => {
      progress(`${peer.label}: pipelined (${int(messages)})`);
      return peer.pipelined(chunks, messages);
    });
    const focus = spec.telemetry ? "telemetry" : "guardrails";
    const { self, inclusive, groups, focused } = summarizeProfile(profile, 25, {
      // What Deno does only for an attached inspector: reporting each of the export's fetches.
      ...(spec.telemetry ? { leaveOut: INSPECTOR_ONLY } : {}),
      groups: spec.telemetry ? TELEMETRY_GROUPS : GUARDRAIL_GROUPS,
      focus: spec.telemetry ? TELEMETRY_CODE : GUARDRAIL_CODE,
    });
    return {
      key: spec.key,
      label: spec.label,
      file,
      samples: profile.samples.length,
      perSecond: messages / (ms / 1000),
      focus,
      groups,
      focused,
      self,
      inclusive,
    };
  } finally {
    await peer.close();
    live.delete(peer);
  }
}

/** Verifies a proxy's log, and checks that every call in it reached the server. */
async function verify(spec: TargetSpec, requests: number, cwd: string): Promise<VerifyResult> {
  const logPath = spec.logPath!;
  const [verified, tally] = await Promise.all([verifyLog(logPath, cwd), tallyLog(logPath)]);
  checkTally(
    spec.label,
    tally,
    spec.guardrails === "on" ? `allow rule ${ALLOWING_RULE}` : "none",
  );
  return { key: spec.key, ...verified, expectedRecords: 2 * requests + 3, tally };
}

function targets(
  dir: string,
  configs: Record<Guardrails, string>,
  telemetry: TelemetrySetup,
): TargetSpec[] {
  const deno = Deno.execPath();
  const upstream = [deno, "run", UPSTREAM];
  const proxy = (guardrails: Guardrails, more: readonly string[] = []): string[] => [
    deno,
    "run",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-run",
    ...more,
    MAIN,
    "--config",
    configs[guardrails],
    "--",
    ...upstream,
  ];
  const spec = (key: TargetKey, durability: string, guardrails: Guardrails): TargetSpec => {
    const logPath = `${dir}/audit-${key}.jsonl`;
    return {
      key,
      label: `proxy, guardrails ${guardrails}, durability=${durability}`,
      argv: proxy(guardrails),
      env: proxyEnv(logPath, durability),
      logPath,
      guardrails,
      telemetry: false,
    };
  };
  const batch = spec("batch", "batch", "off");
  return [
    {
      key: "direct",
      label: "direct",
      argv: upstream,
      env: cleanEnv(),
      logPath: null,
      guardrails: null,
      telemetry: false,
    },
    batch,
    spec("guarded", "batch", "on"),
    spec("none", "none", "off"),
    {
      key: "telemetry",
      label: `${batch.label}, telemetry on`,
      // The metrics listener and the OTLP sink are both on loopback.
      argv: proxy("off", TELEMETRY_PERMISSIONS),
      env: {
        ...proxyEnv(`${dir}/audit-telemetry.jsonl`, "batch"),
        ...telemetryEnv(telemetry.sinkUrl, telemetry.logs),
      },
      logPath: `${dir}/audit-telemetry.jsonl`,
      guardrails: "off",
      telemetry: true,
    },
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

/** A configuration's figures for {@link guardrailCost}. */
function figures(r: TargetResult): Figures {
  return { throughput: r.pipelined.perSecond, p50Us: r.lockstep.p50Us, p99Us: r.lockstep.p99Us };
}

/** A configuration's figures in each round. */
function roundFigures(r: TargetResult): Figures[] {
  return r.pipelined.runs.map((throughput, i) => ({ throughput, ...r.lockstepRounds[i]! }));
}

/** What the guardrails cost: the guarded proxy against the one without, both durability=batch. */
function costOfGuardrails(
  direct: TargetResult,
  off: TargetResult,
  on: TargetResult,
): GuardrailCost {
  const [d, f, n] = [roundFigures(direct), roundFigures(off), roundFigures(on)];
  return guardrailCost(
    figures(direct),
    figures(off),
    figures(on),
    d.map((direct, i) => ({ direct, off: f[i]!, on: n[i]! })),
  );
}

/** What telemetry costs: the telemetry configuration against `batch`, round by round. */
function costOfTelemetry(
  direct: TargetResult,
  off: TargetResult,
  on: TargetResult,
): TelemetryCost {
  const [f, n] = [roundFigures(off), roundFigures(on)];
  return telemetryCost(
    figures(direct),
    figures(off),
    figures(on),
    f.map((off, i) => ({ off, on: n[i]! })),
  );
}

/** The telemetry configuration's cost and what it exported. */
interface TelemetryResult {
  cost: TelemetryCost;
  export: TelemetryExport;
}

interface Results {
  header: string;
  results: TargetResult[];
  comparisons: Comparison[];
  guardrails: GuardrailCost;
  telemetry: TelemetryResult;
  verified: VerifyResult[];
  profiles: ProfileResult[];
}

function report(
  { header, results, comparisons, guardrails, telemetry, verified, profiles }: Results,
): string[] {
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
  lines.push(`guardrails off: ${describeGuardrails("off").replace(/^guardrails off: /, "")}`);
  lines.push(`guardrails on: ${describeGuardrails("on").replace(/^guardrails on: /, "")}`);
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
  lines.push(
    `guardrails on vs off (durability=batch; target: within ` +
      `${pct(1 - GUARDRAIL_TARGET.minThroughputRatio)} of the figures without them):`,
  );
  lines.push(
    ...guardrailCostLines(guardrails, { throughput: "pipelined msg/s", latency: "lockstep" }),
  );
  lines.push("");
  lines.push(
    `telemetry on vs off (guardrails off, durability=batch; metrics scraped once a round during ` +
      `the pipelined run; a span for every exchange` +
      (telemetry.export.logs ? " and every audit record as a log record" : "") +
      ` to an OTLP/HTTP receiver on loopback; issue 10's target: within ` +
      `${pct(1 - TELEMETRY_TARGET.minThroughputRatio)} of the figures without it):`,
  );
  lines.push(
    ...telemetryCostLines(telemetry.cost, telemetry.export, {
      throughput: "pipelined msg/s",
      latency: "lockstep",
    }),
  );
  lines.push("");
  for (const v of verified) {
    lines.push(
      `verify [${v.key}] (exit ${v.exitCode}; at least ${int(v.expectedRecords)} records ` +
        `expected): ${v.summary}`,
    );
    for (const extra of v.output.slice(1, 6)) lines.push(`    ${extra}`);
    lines.push(`    log: ${tallyLine(v.tally)}`);
  }
  for (const p of profiles) {
    lines.push("");
    lines.push(
      `profile of the ${p.label} during one pipelined run at ${int(p.perSecond)} msg/s, ` +
        `${int(p.samples)} samples: ${p.file}`,
    );
    lines.push(...profileLines(p, p.focus === "telemetry" ? "telemetry functions" : undefined));
  }
  return lines;
}

async function main(args: string[]): Promise<number> {
  const flags = parseBenchArgs(args, USAGE, { "otel-logs": { type: "boolean" } });
  if (typeof flags === "number") return flags;
  const plan = flags.quick ? QUICK : FULL;
  const progress = (text: string): void => console.error(`bench: ${text}`);

  const dir = `${REPO}.bench/run-${Date.now()}-${Deno.pid}`;
  await Deno.mkdir(dir, { recursive: true });
  const live = new Set<Peer>();
  let sink: BenchProcess | undefined;
  // Ctrl-C reaches the children as well; end them and let the run fail rather than leave them.
  const onSignal = (): void => {
    progress("interrupted");
    for (const peer of live) peer.kill("SIGTERM");
    sink?.kill("SIGTERM");
  };
  Deno.addSignalListener("SIGINT", onSignal);

  const started = performance.now();
  try {
    const configs: Record<Guardrails, string> = {
      off: await writeGuardrailsConfig(dir, "off"),
      on: await writeGuardrailsConfig(dir, "on"),
    };
    sink = new BenchProcess("otlp sink", sinkArgv(), cleanEnv(), dir, false);
    const [, sinkUrl] = await sink.stderrMatch(SINK_LISTENING);
    const telemetrySetup = { sinkUrl: sinkUrl!, logs: flags["otel-logs"] === true };
    const specs = targets(dir, configs, telemetrySetup);
    const { results, probe } = await measureAll(
      specs,
      plan,
      dir,
      live,
      telemetrySetup,
      progress,
    );
    if (probe === null) throw new Error("the telemetry configuration was not measured");
    // The proxies have exited: what the telemetry one exported has reached the sink, or never
    // will.
    await probe.settle();
    const byKey = (key: TargetKey): TargetResult => results.find((r) => r.key === key)!;
    const direct = byKey("direct");
    const comparisons = results.flatMap((r) => compare(direct, r) ?? []);
    const guardrails = costOfGuardrails(direct, byKey("batch"), byKey("guarded"));
    const telemetryCosts = costOfTelemetry(direct, byKey("batch"), byKey("telemetry"));

    progress("verifying the audit logs");
    const verified = await Promise.all(
      specs.flatMap((spec) =>
        spec.logPath === null ? [] : [verify(spec, byKey(spec.key).requests, dir)]
      ),
    );
    const telemetry: TelemetryResult = {
      cost: telemetryCosts,
      export: probe.result(
        byKey("telemetry").requests,
        verified.find((v) => v.key === "telemetry")!.tally.records,
      ),
    };

    const profiles: ProfileResult[] = [];
    if (flags.profile) {
      for (const key of ["batch", "guarded", "telemetry"] as const) {
        const spec = specs.find((s) => s.key === key)!;
        const env = {
          ...proxyEnv(`${dir}/audit-${key}-profiled.jsonl`, "batch"),
          ...(spec.telemetry ? telemetryEnv(telemetrySetup.sinkUrl, telemetrySetup.logs) : {}),
        };
        profiles.push(await profileProxy({ ...spec, env }, plan, dir, live, progress));
      }
    }
    sink.kill("SIGTERM");
    await sink.waitExit([]);

    const seconds = (performance.now() - started) / 1000;
    const http: HttpBenchResult = await runHttpBench({
      quick: flags.quick === true,
      dir,
      progress,
      profile: flags.profile === true,
      configs,
      otelLogs: flags["otel-logs"] === true,
    });
    const detectors: DetectorBenchResult = await runDetectorBench({
      quick: flags.quick === true,
      progress,
    });
    const storage: StorageBenchResult = await runStorageBench({
      quick: flags.quick === true,
      dir,
      progress,
    });
    const header = `mcp-audit stdio bench: deno ${Deno.version.deno}, ` +
      `${Deno.build.os}/${Deno.build.arch}, ${navigator.hardwareConcurrency} CPUs, ` +
      `${flags.quick ? "quick" : "full"} run in ${seconds.toFixed(1)} s, ${plan.rounds} ` +
      `round(s); proxy with hmac-sha256 signing, key redaction, JSONL under ${REPO}.bench/`;
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
          guardrailTarget: GUARDRAIL_TARGET,
          configurations: { off: describeGuardrails("off"), on: describeGuardrails("on") },
          results,
          comparisons,
          guardrails,
          telemetryTarget: TELEMETRY_TARGET,
          telemetry,
          verify: verified,
          profiles,
          http,
          detectors,
          storage,
        },
        null,
        2,
      ));
    } else {
      console.log(
        [
          ...report({ header, results, comparisons, guardrails, telemetry, verified, profiles }),
          "",
          ...httpReport(http),
          "",
          ...detectorReport(detectors),
          "",
          ...storageReport(storage),
        ].join("\n"),
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
    if (sink !== undefined) {
      sink.kill("SIGTERM");
      await sink.waitExit([]);
    }
    if (flags.keep) progress(`kept the audit logs in ${dir}`);
    else await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
