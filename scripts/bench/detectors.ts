/**
 * The detectors part of `deno task bench`: how the time of the value detectors, and of the policy's
 * regex engine, grows with the length of adversarial strings. The tests check what the detectors
 * find in these strings (`src/audit/detectors_test.ts`) and what the patterns match
 * (`src/guardrails/pattern_test.ts`); whether they take linear time is a timing claim, so it is
 * measured here, on the same inputs (`src/audit/testdata/adversarial_inputs.ts`), where a busy
 * machine makes a number noisy rather than a test fail.
 *
 * Each family is redacted at 1 MiB and at 2 MiB (`--quick`: 256 KiB and 512 KiB; a custom pattern
 * that the backtracking engine would take quadratically, searched in windows, at an eighth): the
 * time per call is the fastest of several batches, each of enough calls to last a few
 * milliseconds, the two sizes taken in turns so that a change in the machine's load hits both. The
 * time is this process's CPU time, which other processes on a busy machine do not inflate. The
 * report gives the ratio of the time at twice the size to the time at the size: about 2 is linear,
 * about 4 quadratic; a ratio above {@link SUPER_LINEAR_RATIO} is measured again, and flagged if it
 * stays there, unless the time is that of a scan of memory ({@link MEMORY_BOUND_NS_PER_CHAR}).
 * With every detector on, then (unless `--quick`) each detector alone on the strings aimed at it,
 * then custom patterns, the last one on V8's linear-time engine
 * (`--enable-experimental-regexp-engine`) in a child process: `(a+)+$`, which the backtracking
 * engine would not finish; then the policy's regex engine on patterns that would take a
 * backtracking engine hours.
 *
 * Flags are reported, not asserted: the exit code is 0 unless the bench could not run.
 *
 * `scripts/bench.ts` calls {@link runDetectorBench} (`--only detectors`). Run as a script, this
 * file is only the linear-engine child process (`--linear-engine-case [--quick]`).
 *
 * @module
 */
import { DETECTOR_NAMES, ValueRedactor } from "../../src/audit/detectors.ts";
import { compileLinearRegex } from "../../src/guardrails/pattern.ts";
import process from "node:process";
import {
  ADVERSARIAL_CUSTOM,
  ADVERSARIAL_INPUTS,
  flat,
} from "../../src/audit/testdata/adversarial_inputs.ts";
import { type Progress, table } from "./common.ts";

const KiB = 1024;
const MiB = 1024 * KiB;

/** Time at twice the size over time at the size above which a family is flagged. */
export const SUPER_LINEAR_RATIO = 2.6;
/**
 * Nanoseconds per character at twice the size under which a family is not flagged whatever its
 * ratio: that is the speed of a scan for a character that is not there, which at 2 MiB leaves the
 * processor's cache and slows for that alone; super-linear work on megabytes takes far longer.
 */
export const MEMORY_BOUND_NS_PER_CHAR = 0.5;
/**
 * Measurements of a family at most: one over the ratio is measured again, and the lowest ratio
 * counts. A busy machine can slow one size in every batch of one measurement, rarely in three;
 * a super-linear detector is over the ratio every time.
 */
export const ATTEMPTS = 3;

/** How much measuring each family gets. */
interface DetectorPlan {
  /** Batches at each size; the fastest counts. */
  batches: number;
  /** Each batch repeats the call until it has taken at least this long. */
  batchMs: number;
  /** Whether each detector alone is measured too. */
  alone: boolean;
  /** The smaller size of the built-in families, in characters; a windowed pattern gets 1/8. */
  size: number;
}

const FULL: DetectorPlan = { batches: 5, batchMs: 20, alone: true, size: MiB };
const QUICK: DetectorPlan = { batches: 5, batchMs: 10, alone: false, size: 256 * KiB };

/** One family measured. */
export interface DetectorTiming {
  /** `all`, a detector's name, `custom`, or `policy` (the policy's regex engine). */
  group: string;
  label: string;
  /** The smaller size, in characters; the larger is twice as long. */
  size: number;
  /** Milliseconds per call at `size` and at twice it. */
  ms: number;
  ms2x: number;
  /** `ms2x / ms`: about 2 when linear. */
  ratio: number;
  superLinear: boolean;
  /** Under {@link MEMORY_BOUND_NS_PER_CHAR}: never flagged. */
  memoryBound: boolean;
  /** Measurements taken: a family over the ratio is measured again, up to {@link ATTEMPTS}. */
  attempts: number;
}

export interface DetectorBenchResult {
  quick: boolean;
  seconds: number;
  plan: DetectorPlan;
  superLinearRatio: number;
  timings: DetectorTiming[];
  /** Labels of the families flagged, with their group. */
  flagged: string[];
  /** Why the linear-engine case was not measured, when it was not. */
  linearEngine: string;
}

export interface DetectorBenchOptions {
  quick: boolean;
  progress: Progress;
}

/**
 * This process's CPU time in milliseconds. CPU time rather than the clock: on a busy machine the
 * clock also counts the time other processes had the core, which would make one size look slower
 * than the other by chance.
 */
function cpuMs(): number {
  const used = process.cpuUsage();
  return (used.user + used.system) / 1000;
}

/** CPU milliseconds per call of `run`, over one batch of `calls` calls. */
function batch(run: () => void, calls: number): number {
  const t0 = cpuMs();
  for (let i = 0; i < calls; i++) run();
  return (cpuMs() - t0) / calls;
}

/** How many calls of about `ms` each fill `batchMs`. */
const callsFor = (ms: number, batchMs: number): number =>
  Math.max(1, Math.ceil(batchMs / Math.max(ms, 1e-3)));

/**
 * Times `redact` on `make(size)` and `make(2 * size)`: after a warm-up call of each, batches at
 * the two sizes in turns, the fastest of each counting; again while over the ratio, up to
 * {@link ATTEMPTS} times, the lowest ratio counting.
 */
export function measure(
  group: string,
  label: string,
  redact: (text: string) => unknown,
  make: (n: number) => string,
  size: number,
  plan: DetectorPlan,
): DetectorTiming {
  let best: DetectorTiming | undefined;
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    const t = measureOnce(group, label, redact, make, size, plan);
    if (best === undefined || t.ratio < best.ratio) best = t;
    best.attempts = attempt;
    if (!best.superLinear) break;
  }
  return best!;
}

function measureOnce(
  group: string,
  label: string,
  redact: (text: string) => unknown,
  make: (n: number) => string,
  size: number,
  plan: DetectorPlan,
): DetectorTiming {
  const small = flat(make(size));
  const big = flat(make(2 * size));
  const once = (text: string): number => batch(() => redact(text), 1);
  // The warm-up also sizes the batches.
  const callsSmall = callsFor(once(small), plan.batchMs);
  const callsBig = callsFor(once(big), plan.batchMs);
  let ms = Infinity;
  let ms2x = Infinity;
  for (let i = 0; i < plan.batches; i++) {
    ms = Math.min(ms, batch(() => redact(small), callsSmall));
    ms2x = Math.min(ms2x, batch(() => redact(big), callsBig));
  }
  const ratio = ms2x / ms;
  const memoryBound = (ms2x * 1e6) / (2 * size) < MEMORY_BOUND_NS_PER_CHAR;
  return {
    group,
    label,
    size,
    ms,
    ms2x,
    ratio,
    superLinear: ratio > SUPER_LINEAR_RATIO && !memoryBound,
    memoryBound,
    attempts: 1,
  };
}

/** What the linear-engine child process prints. */
interface LinearEngineOutput {
  linear: boolean;
  timing?: DetectorTiming;
}

function isLinearEngineOutput(value: unknown): value is LinearEngineOutput {
  return typeof value === "object" && value !== null && "linear" in value &&
    typeof value.linear === "boolean";
}

/**
 * Patterns a backtracking engine takes hours on for 1 MiB of `a`, with whether they match it: the
 * cases of `src/guardrails/pattern_test.ts`, whose time is measured here.
 */
const POLICY_REGEX_CASES: readonly [string, boolean][] = [
  [".*a.*b.*c", false],
  ["(a+)+$", true],
  ["(a|a)*b", false],
  ["(a|aa)+c", false],
  ["^(a?){30}a{30}$", false],
];

const CATASTROPHIC = { label: "custom (a+)+$ on the linear engine: a run of a, then !" } as const;

/** The catastrophic pattern, measured in this process (started with the linear engine on). */
function linearEngineCase(plan: DetectorPlan): LinearEngineOutput {
  const r = new ValueRedactor({ detectors: [], custom: [{ name: "evil", pattern: "(a+)+$" }] });
  // On the backtracking engine the pattern would not finish: measure only on the linear one.
  if (!r.customLinear) return { linear: false };
  const make = (n: number): string => "a".repeat(n - 1) + "!";
  return {
    linear: true,
    timing: measure("custom", CATASTROPHIC.label, (t) => r.redactString(t), make, plan.size, plan),
  };
}

/** Runs {@link linearEngineCase} in a child process with V8's linear-time engine enabled. */
async function runLinearEngineCase(
  quick: boolean,
): Promise<{ timing?: DetectorTiming; why: string }> {
  const args = [
    "run",
    "--allow-all",
    "--v8-flags=--enable-experimental-regexp-engine",
    new URL(import.meta.url).pathname,
    "--linear-engine-case",
    ...(quick ? ["--quick"] : []),
  ];
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (out.code !== 0) {
    return { why: `the child process failed: ${new TextDecoder().decode(out.stderr).trim()}` };
  }
  const parsed: unknown = JSON.parse(text);
  if (!isLinearEngineOutput(parsed)) return { why: `unexpected output: ${text.slice(0, 200)}` };
  if (!parsed.linear || parsed.timing === undefined) {
    return { why: "the pattern is not on the linear engine even with the flag" };
  }
  return { timing: parsed.timing, why: "" };
}

/** Runs the detectors bench; throws only when it could not run. */
export async function runDetectorBench(opts: DetectorBenchOptions): Promise<DetectorBenchResult> {
  const plan = opts.quick ? QUICK : FULL;
  const started = performance.now();
  const timings: DetectorTiming[] = [];
  const all = new ValueRedactor();
  opts.progress(`detectors: ${ADVERSARIAL_INPUTS.length} adversarial families, all detectors on`);
  for (const { label, make } of ADVERSARIAL_INPUTS) {
    timings.push(measure("all", label, (t) => all.redactString(t), make, plan.size, plan));
  }
  if (plan.alone) {
    opts.progress("detectors: each detector alone on the families aimed at it");
    for (const name of DETECTOR_NAMES) {
      const r = new ValueRedactor({ detectors: [name] });
      for (const { label, make } of ADVERSARIAL_INPUTS.filter((i) => i.aimedAt.includes(name))) {
        timings.push(measure(name, label, (t) => r.redactString(t), make, plan.size, plan));
      }
    }
  }
  opts.progress("detectors: custom patterns");
  for (const c of ADVERSARIAL_CUSTOM) {
    const r = new ValueRedactor({
      ...(c.builtIns ? {} : { detectors: [] }),
      custom: [{ name: "custom", pattern: c.pattern }],
    });
    const size = c.sizes === "full" ? plan.size : plan.size / 8;
    timings.push(measure("custom", c.label, (t) => r.redactString(t), c.make, size, plan));
  }
  const engine = await runLinearEngineCase(opts.quick);
  if (engine.timing !== undefined) timings.push(engine.timing);
  opts.progress("detectors: the policy's regex engine");
  for (const [pattern, expected] of POLICY_REGEX_CASES) {
    const test = compileLinearRegex(pattern);
    const make = (n: number): string => "a".repeat(n);
    const label = `policy regex /${pattern}/ on a run of a`;
    if (test(make(64)) !== expected) throw new Error(`${label}: expected ${expected}`);
    timings.push(measure("policy", label, test, make, plan.size, plan));
  }
  return {
    quick: opts.quick,
    seconds: (performance.now() - started) / 1000,
    plan,
    superLinearRatio: SUPER_LINEAR_RATIO,
    timings,
    flagged: timings.filter((t) => t.superLinear).map((t) => `[${t.group}] ${t.label}`),
    linearEngine: engine.why,
  };
}

const showSize = (n: number): string => n >= MiB ? `${n / MiB} MiB` : `${n / KiB} KiB`;
const showMs = (n: number): string => n >= 10 ? n.toFixed(0) : n >= 1 ? n.toFixed(1) : n.toFixed(2);

/** The detectors bench as report lines. */
export function detectorReport(r: DetectorBenchResult): string[] {
  const header = `mcp-audit detectors bench: deno ${Deno.version.deno}, ` +
    `${Deno.build.os}/${Deno.build.arch}, ${r.quick ? "quick" : "full"} run in ` +
    `${r.seconds.toFixed(1)} s; CPU time per call on one adversarial string, fastest of ` +
    `${r.plan.batches} batches of at least ${r.plan.batchMs} ms`;
  const row = (t: DetectorTiming, label: string): string[] => [
    label,
    t.group,
    showSize(t.size),
    showMs(t.ms),
    showMs(t.ms2x),
    t.ratio.toFixed(2),
    t.superLinear
      ? "SUPER-LINEAR"
      : t.memoryBound && t.ratio > SUPER_LINEAR_RATIO
      ? "memory-bound"
      : t.attempts > 1
      ? `${t.attempts} attempts`
      : "",
  ];
  const rows = [["", "detectors", "size", "ms", "ms at 2x", "2x / 1x", "flag"]];
  const alone = (t: DetectorTiming): boolean => !["all", "custom", "policy"].includes(t.group);
  for (const t of r.timings) if (!alone(t)) rows.push(row(t, t.label));
  const lines = [header, "", ...table(rows), ""];
  // Each detector alone: its family with the highest ratio stands for it (all are in --json).
  const worst = new Map<string, DetectorTiming>();
  for (const t of r.timings) {
    if (!alone(t)) continue;
    const w = worst.get(t.group);
    if (w === undefined || t.ratio > w.ratio) worst.set(t.group, t);
  }
  if (worst.size > 0) {
    const aloneRows = [[
      "each detector alone: its highest ratio",
      "detector",
      "size",
      "ms",
      "ms at 2x",
      "2x / 1x",
      "flag",
    ]];
    for (const t of worst.values()) aloneRows.push(row(t, t.label));
    lines.push(...table(aloneRows), "");
  }
  const ratios = r.timings.map((t) => t.ratio);
  lines.push(
    `2x / 1x: about 2 is linear, about 4 quadratic; flagged above ${r.superLinearRatio} ` +
      `unless under ${MEMORY_BOUND_NS_PER_CHAR} ns a character at 2x (memory-bound); ` +
      `from ${Math.min(...ratios).toFixed(2)} to ${Math.max(...ratios).toFixed(2)} here`,
  );
  if (r.linearEngine !== "") lines.push(`linear-engine case not measured: ${r.linearEngine}`);
  lines.push(
    r.flagged.length === 0
      ? "linear time (issue 4): met on every family"
      : `linear time (issue 4): NOT MET, or noise (run again) — ${r.flagged.join("; ")}`,
  );
  return lines;
}

if (import.meta.main) {
  // Only the child process of runLinearEngineCase runs this file.
  if (!Deno.args.includes("--linear-engine-case")) {
    console.error("usage: deno task bench --only detectors");
    Deno.exit(2);
  }
  console.log(JSON.stringify(linearEngineCase(Deno.args.includes("--quick") ? QUICK : FULL)));
}
