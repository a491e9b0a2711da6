/**
 * The stdio section of `deno task bench`: what the stdio proxy costs. A client in this process
 * drives the upstream (`scripts/bench/upstreams.ts`: a Node server by default, as the issue's
 * measurements used; `--upstream` chooses another) directly, through a
 * bare Deno relay (`scripts/bench_relay.ts`: two `pipeTo`s, the floor of a process in the middle),
 * and through `main.ts` run as a real process with signing, key redaction and JSONL storage on,
 * every one of them in front of the same upstream, in each configuration:
 *
 * - `batch`: the default durability, guardrails off; `none` and `entry`: the other durabilities;
 * - `guarded`: `batch` with the guardrails on (`scripts/bench/guardrails.ts`: a 50-rule policy,
 *   every value detector and a custom pattern, pinning, a rate limit too high to refuse);
 * - `telemetry`: `batch` with the Prometheus listener and the OpenTelemetry export on (a span for
 *   every exchange and, with `--otel-logs`, every record as a log record) to an OTLP/HTTP receiver
 *   on loopback (`scripts/bench_otlp_sink.ts`), its metrics scraped once a round alongside its
 *   pipelined run, and its export waited for before the next configuration runs.
 *
 * Each is measured lockstep (one `tools/call` at a time, p50/p99 round trip) and pipelined
 * (requests written as fast as the pipe takes them while the answers are read, messages per
 * second). All are up at once and measured in turns, round after round, the order reversed every
 * other round, so that a change in the machine's load hits each alike. Every call carries a few
 * hundred bytes of prose for the detectors to read; every answer is checked to be the server's
 * result as it is read; a call the proxy refused or failed ends the run. The logs are checked at
 * the end with the tree's `main.ts verify`, and read again to count what the guardrails decided.
 *
 * With `--profile`, the `batch` proxy (and the guarded and telemetry ones) run once more under the
 * V8 CPU profiler during a pipelined run; the `batch` profile is broken down by stage of the
 * per-message work (`scripts/bench/stages.ts`), in µs per message forwarded.
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
  median,
  METRICS_LISTENING,
  METRICS_WAIT_MS,
  pct,
  percentile,
  type ProfileEntry,
  profileLines,
  profileWhile,
  type Progress,
  proxyCommand,
  proxyEnv,
  type ProxyTree,
  scriptPath,
  type Series,
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
  telemetryCostLines,
  telemetryCostOf,
  telemetryEnv,
  type TelemetryExport,
  TelemetryProbe,
  type TelemetrySetup,
  toolCall,
  TOOLS_LIST,
  TOOLS_LIST_ANSWER,
  turnOrder,
  verifyLog,
} from "./common.ts";
import {
  ALLOWING_RULE,
  describeGuardrails,
  GUARDRAIL_TARGET,
  type GuardrailCost,
  guardrailCostLines,
  guardrailCostOf,
  type Guardrails,
} from "./guardrails.ts";
import { stageLines, type StageTable, stageTable } from "./stages.ts";
import type { StdioUpstream } from "./upstreams.ts";

/** How much work each configuration gets. */
export interface StdioPlan {
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

export const STDIO_FULL: StdioPlan = {
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

export const STDIO_QUICK: StdioPlan = {
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

export const INITIALIZE_LINE = `${INITIALIZE}\n`;
const INITIALIZED_LINE = `${INITIALIZED}\n`;
const TOOLS_LIST_LINE = `${TOOLS_LIST}\n`;
/** How the answer to `initialize` begins: the bench's upstream answers it like any request. */
export const INITIALIZE_ANSWER = `{"jsonrpc":"2.0","id":"init","result":`;

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
export class Peer extends BenchProcess {
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
export async function handshake(peer: Peer): Promise<void> {
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

/** The configurations of the stdio section, in the order they are measured. */
export const STDIO_KEYS = [
  "direct",
  "relay",
  "batch",
  "none",
  "entry",
  "guarded",
  "telemetry",
] as const;
export type StdioKey = typeof STDIO_KEYS[number];

/** One configuration measured. */
interface TargetSpec {
  key: StdioKey;
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

export interface StdioTargetResult {
  key: StdioKey;
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

export interface StdioVerifyResult {
  key: StdioKey;
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

export interface StdioProfileResult {
  key: StdioKey;
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
  /** The main thread's busy time by stage, per message forwarded. */
  stages: StageTable;
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

  async warmUp(plan: StdioPlan): Promise<void> {
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

  async lockstepRound(plan: StdioPlan): Promise<void> {
    const count = Math.ceil(plan.lockstep / plan.rounds);
    const budget = plan.lockstepBudgetMs / plan.rounds;
    const samples = await this.peer.lockstep(this.id, count, performance.now() + budget);
    this.id += samples.length;
    this.lockstep.push(samples);
  }

  async pipelinedRound(plan: StdioPlan): Promise<void> {
    const chunks = pipelinedChunks(this.id, this.messages, plan.chunkBytes);
    const run = (): Promise<number> => this.peer.pipelined(chunks, this.messages);
    // The round's scrape, while the load runs: in the measurement, as in production.
    const ms = this.probe === null ? await run() : await this.probe.alongside(run);
    this.id += this.messages;
    this.runs.push(this.messages / (ms / 1000));
    await this.probe?.drain();
  }

  result(exitCode: number): StdioTargetResult {
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

function pipelinedCount(plan: StdioPlan, perSecond: number): number {
  const wanted = Math.round(perSecond * plan.pipelinedSeconds / 1000) * 1000;
  return Math.min(plan.pipelinedMax, Math.max(plan.pipelinedMin, wanted));
}

/**
 * Runs every configuration at once, each in its own process: a warm-up each, then rounds of
 * lockstep on each in turn and pipelined on each in turn.
 */
async function measureAll(
  specs: TargetSpec[],
  plan: StdioPlan,
  cwd: string,
  live: Set<BenchProcess>,
  telemetry: TelemetrySetup,
  progress: Progress,
): Promise<{ results: StdioTargetResult[]; probe: TelemetryProbe | null }> {
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
    const results: StdioTargetResult[] = [];
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
  plan: StdioPlan,
  cwd: string,
  live: Set<BenchProcess>,
  progress: Progress,
): Promise<StdioProfileResult> {
  // `deno run --config … --inspect=127.0.0.1:0 …`: any free port, read back from the banner.
  const argv = [...spec.argv.slice(0, 3), INSPECT_ARG, ...spec.argv.slice(3)];
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
      // Each call is two messages forwarded: the request and its answer.
      stages: stageTable(profile, 2 * messages),
    };
  } finally {
    await peer.close();
    live.delete(peer);
  }
}

/** Verifies a proxy's log, and checks that every call in it reached the server. */
async function verify(
  tree: ProxyTree,
  spec: TargetSpec,
  requests: number,
  cwd: string,
): Promise<StdioVerifyResult> {
  const logPath = spec.logPath!;
  const [verified, tally] = await Promise.all([verifyLog(tree, logPath, cwd), tallyLog(logPath)]);
  checkTally(
    spec.label,
    tally,
    spec.guardrails === "on" ? `allow rule ${ALLOWING_RULE}` : "none",
  );
  return { key: spec.key, ...verified, expectedRecords: 2 * requests + 3, tally };
}

const RELAY = scriptPath("./bench_relay.ts");

/** The configurations, in {@link STDIO_KEYS}' order; only those in `keys`. */
function targets(
  tree: ProxyTree,
  dir: string,
  configs: Record<Guardrails, string>,
  telemetry: TelemetrySetup,
  syncIntervalMs: number | null,
  upstream: readonly string[],
): TargetSpec[] {
  const proxy = (guardrails: Guardrails, more: readonly string[] = []): string[] => [
    ...proxyCommand(tree, [
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-run",
      ...more,
    ]),
    "--config",
    configs[guardrails],
    "--",
    ...upstream,
  ];
  const env = (key: StdioKey, durability: string): Record<string, string> => ({
    ...proxyEnv(`${dir}/audit-${key}.jsonl`, durability),
    ...(syncIntervalMs === null
      ? {}
      : { MCP_AUDIT_AUDIT_SYNC_INTERVAL_MS: String(syncIntervalMs) }),
  });
  const spec = (key: StdioKey, durability: string, guardrails: Guardrails): TargetSpec => ({
    key,
    label: `proxy, guardrails ${guardrails}, durability=${durability}`,
    argv: proxy(guardrails),
    env: env(key, durability),
    logPath: `${dir}/audit-${key}.jsonl`,
    guardrails,
    telemetry: false,
  });
  const none = { logPath: null, guardrails: null, telemetry: false };
  return [
    { key: "direct", label: "direct", argv: [...upstream], env: cleanEnv(), ...none },
    {
      key: "relay",
      label: "bare Deno relay (pipeTo)",
      argv: [Deno.execPath(), "run", "--allow-run", RELAY, "--", ...upstream],
      env: cleanEnv(),
      ...none,
    },
    spec("batch", "batch", "off"),
    spec("none", "none", "off"),
    spec("entry", "entry", "off"),
    spec("guarded", "batch", "on"),
    {
      key: "telemetry",
      label: "proxy, guardrails off, durability=batch, telemetry on",
      // The metrics listener and the OTLP sink are both on loopback.
      argv: proxy("off", TELEMETRY_PERMISSIONS),
      env: { ...env("telemetry", "batch"), ...telemetryEnv(telemetry.sinkUrl, telemetry.logs) },
      logPath: `${dir}/audit-telemetry.jsonl`,
      guardrails: "off",
      telemetry: true,
    },
  ];
}

/** A configuration against direct. */
export interface StdioComparison {
  key: Exclude<StdioKey, "direct">;
  addedP50Us: number;
  addedP99Us: number;
  pipelinedRatio: number;
  /** Each round's ratios against direct's in the same round. */
  rounds: { addedP50Us: number; pipelinedRatio: number }[];
}

function compare(direct: StdioTargetResult, other: StdioTargetResult): StdioComparison | undefined {
  if (other.key === "direct") return undefined;
  return {
    key: other.key,
    addedP50Us: other.lockstep.p50Us - direct.lockstep.p50Us,
    addedP99Us: other.lockstep.p99Us - direct.lockstep.p99Us,
    pipelinedRatio: other.pipelined.perSecond / direct.pipelined.perSecond,
    rounds: other.pipelined.runs.map((run, i) => ({
      addedP50Us: other.lockstepRounds[i]!.p50Us - direct.lockstepRounds[i]!.p50Us,
      pipelinedRatio: run / direct.pipelined.runs[i]!,
    })),
  };
}

/** A configuration's figures, overall and by round. */
function series(r: StdioTargetResult): Series {
  return {
    overall: {
      throughput: r.pipelined.perSecond,
      p50Us: r.lockstep.p50Us,
      p99Us: r.lockstep.p99Us,
    },
    rounds: r.pipelined.runs.map((throughput, i) => ({ throughput, ...r.lockstepRounds[i]! })),
  };
}

/** What the stdio section found. */
export interface StdioBenchResult {
  plan: StdioPlan;
  /** The server behind direct, the relay and every proxy. */
  upstream: StdioUpstream;
  /** `audit.sync_interval_ms` given to the proxies, or null when the tree does not know it. */
  syncIntervalMs: number | null;
  configurations: { off: string; on: string };
  results: StdioTargetResult[];
  comparisons: StdioComparison[];
  guardrailTarget: typeof GUARDRAIL_TARGET;
  /** The guarded proxy against `batch`. */
  guardrails: GuardrailCost;
  telemetryTarget: typeof TELEMETRY_TARGET;
  /** The telemetry proxy against `batch`, and what it exported. */
  telemetry: { cost: TelemetryCost; export: TelemetryExport };
  verify: StdioVerifyResult[];
  profiles: StdioProfileResult[];
}

export interface StdioBenchOptions {
  tree: ProxyTree;
  plan: StdioPlan;
  /** Where the logs go (it exists). */
  dir: string;
  configs: Record<Guardrails, string>;
  telemetry: TelemetrySetup;
  upstream: StdioUpstream;
  profile: boolean;
  progress: Progress;
  /** Processes to end on Ctrl-C. */
  live: Set<BenchProcess>;
}

/** Runs the stdio section; throws when it cannot run or a call did not reach the server. */
export async function runStdioBench(o: StdioBenchOptions): Promise<StdioBenchResult> {
  const { tree, plan, dir, progress } = o;
  const syncIntervalMs = tree.syncInterval ? DEFAULT_SYNC_INTERVAL_MS : null;
  const specs = targets(tree, dir, o.configs, o.telemetry, syncIntervalMs, o.upstream.argv);
  const { results, probe } = await measureAll(specs, plan, dir, o.live, o.telemetry, progress);
  if (probe === null) throw new Error("the telemetry configuration was not measured");
  // The proxies have exited: what the telemetry one exported has reached the sink, or never will.
  await probe.settle();
  const byKey = (key: StdioKey): StdioTargetResult => results.find((r) => r.key === key)!;
  const direct = byKey("direct");
  progress("stdio: verifying the audit logs");
  const verified = await Promise.all(
    specs.flatMap((spec) =>
      spec.logPath === null ? [] : [verify(tree, spec, byKey(spec.key).requests, dir)]
    ),
  );
  const profiles: StdioProfileResult[] = [];
  if (o.profile) {
    for (const key of ["batch", "guarded", "telemetry"] as const) {
      const spec = specs.find((s) => s.key === key)!;
      const env = {
        ...spec.env,
        ...proxyEnv(`${dir}/audit-${key}-profiled.jsonl`, "batch"),
        ...(spec.telemetry ? telemetryEnv(o.telemetry.sinkUrl, o.telemetry.logs) : {}),
      };
      profiles.push(await profileProxy({ ...spec, env }, plan, dir, o.live, progress));
    }
  }
  return {
    plan,
    upstream: o.upstream,
    syncIntervalMs,
    configurations: { off: describeGuardrails("off"), on: describeGuardrails("on") },
    results,
    comparisons: results.flatMap((r) => compare(direct, r) ?? []),
    guardrailTarget: GUARDRAIL_TARGET,
    guardrails: guardrailCostOf(series(direct), series(byKey("batch")), series(byKey("guarded"))),
    telemetryTarget: TELEMETRY_TARGET,
    telemetry: {
      cost: telemetryCostOf(series(direct), series(byKey("batch")), series(byKey("telemetry"))),
      export: probe.result(
        byKey("telemetry").requests,
        verified.find((v) => v.key === "telemetry")!.tally.records,
      ),
    },
    verify: verified,
    profiles,
  };
}

/** `audit.sync_interval_ms` given to a tree that knows it: its default. */
export const DEFAULT_SYNC_INTERVAL_MS = 10;

/** The upstream as the report names it. */
export function upstreamLine(u: StdioUpstream): string {
  const script = u.kind === "node"
    ? "scripts/bench_node_upstream.mjs (one write a read)"
    : u.kind === "node-sdk"
    ? "scripts/bench_node_upstream.mjs --like-sdk (each line parsed, one write an answer)"
    : "scripts/bench_upstream.ts";
  return `${script} on ${u.runtime}` +
    (u.fallback === null ? "" : `, not ${u.requested}: ${u.fallback}`);
}

/** The stdio section as report lines. */
export function stdioReport(r: StdioBenchResult): string[] {
  const rows = [[
    "",
    "lockstep n",
    "p50",
    "p99",
    "added p50",
    "added p50 by round",
    "pipelined msg/s",
    "of direct",
    "by round",
  ]];
  const range = (xs: number[], f: (x: number) => string): string =>
    xs.length === 0 ? "" : `${f(Math.min(...xs))}…${f(Math.max(...xs))}`;
  for (const t of r.results) {
    const c = r.comparisons.find((x) => x.key === t.key);
    rows.push([
      t.label,
      int(t.lockstep.n),
      `${int(t.lockstep.p50Us)} µs`,
      `${int(t.lockstep.p99Us)} µs`,
      c ? `${signed(c.addedP50Us)} µs` : "",
      c ? range(c.rounds.map((x) => x.addedP50Us), signed) : "",
      int(t.pipelined.perSecond),
      c ? pct(c.pipelinedRatio) : "100%",
      c ? range(c.rounds.map((x) => x.pipelinedRatio), pct) : "",
    ]);
  }
  const lines = [
    `stdio: ${r.plan.rounds} round(s); upstream ${upstreamLine(r.upstream)}; proxy with ` +
    `hmac-sha256 signing, key redaction, JSONL` +
    (r.syncIntervalMs === null
      ? "; this tree has no audit.sync_interval_ms"
      : `; audit.sync_interval_ms ${r.syncIntervalMs}`),
    "",
    ...table(rows),
    "",
  ];
  lines.push(
    "pipelined: median of the runs; msg/s of each run (requests per run): " +
      r.results.map((t) =>
        `${t.key} ${t.pipelined.runs.map(int).join(" / ")} (${int(t.pipelined.messages)})`
      ).join("; "),
  );
  lines.push(`guardrails off: ${r.configurations.off.replace(/^guardrails off: /, "")}`);
  lines.push(`guardrails on: ${r.configurations.on.replace(/^guardrails on: /, "")}`);
  lines.push("");
  lines.push(
    `guardrails on vs off (durability=batch; target: within ` +
      `${pct(1 - GUARDRAIL_TARGET.minThroughputRatio)} of the figures without them):`,
  );
  lines.push(
    ...guardrailCostLines(r.guardrails, { throughput: "pipelined msg/s", latency: "lockstep" }),
  );
  lines.push("");
  lines.push(
    `telemetry on vs off (guardrails off, durability=batch; metrics scraped once a round during ` +
      `the pipelined run; a span for every exchange` +
      (r.telemetry.export.logs ? " and every audit record as a log record" : "") +
      ` to an OTLP/HTTP receiver on loopback; target: within ` +
      `${pct(1 - TELEMETRY_TARGET.minThroughputRatio)} of the figures without it):`,
  );
  lines.push(
    ...telemetryCostLines(r.telemetry.cost, r.telemetry.export, {
      throughput: "pipelined msg/s",
      latency: "lockstep",
    }),
  );
  lines.push("");
  for (const v of r.verify) {
    lines.push(
      `verify [${v.key}] (exit ${v.exitCode}; at least ${int(v.expectedRecords)} records ` +
        `expected): ${v.summary}`,
    );
    for (const extra of v.output.slice(1, 6)) lines.push(`    ${extra}`);
    lines.push(`    log: ${tallyLine(v.tally)}`);
  }
  for (const t of r.results) {
    if (t.exitCode !== 0) lines.push(`warning: ${t.label} exited with code ${t.exitCode}`);
  }
  for (const p of r.profiles) {
    lines.push("");
    lines.push(
      `profile of the ${p.label} during one pipelined run at ${int(p.perSecond)} msg/s, ` +
        `${int(p.samples)} samples: ${p.file}`,
    );
    lines.push("  main thread's busy time by stage, per message forwarded:");
    lines.push(...stageLines(p.stages));
    lines.push(...profileLines(p, p.focus === "telemetry" ? "telemetry functions" : undefined));
  }
  return lines;
}
