/**
 * Issue 12's targets, as same-run ratios: each judged on the run's figures and reported with the
 * spread of its rounds (min–max), never asserted. A target whose section did not run is left out.
 *
 * @module
 */
import { int, pct, signed, table, TELEMETRY_TARGET } from "./common.ts";
import { GUARDRAIL_TARGET } from "./guardrails.ts";
import type { HttpBenchResult } from "./http.ts";
import type { MemoryBenchResult } from "./memory.ts";
import type { StartupBenchResult } from "./startup.ts";
import type { StdioBenchResult } from "./stdio.ts";

/** The targets. */
export const TARGETS = {
  stdioPipelinedOfDirect: 0.30,
  stdioAddedP50Us: 150,
  httpOfRelay: 0.6,
  httpAddedP50Us: 250,
  rssMB: 150,
  startupMs: 150,
  /**
   * Guardrails on, metrics on: within 10% of off, the figures the sections' own lines judge by
   * (throughput at least 0.9 of off, the p50 added (guardrails) or the p50 (metrics) at most 1.1
   * times off's), so that a section's "met" and its verdict here never disagree.
   */
  guardrails: GUARDRAIL_TARGET,
  metrics: TELEMETRY_TARGET,
} as const;

export interface Verdict {
  target: string;
  value: string;
  /** min–max across rounds (or runs), when there are several. */
  spread: string;
  pass: boolean;
}

const range = (xs: number[], f: (x: number) => string): string =>
  xs.length < 2 ? "" : `${f(Math.min(...xs))} – ${f(Math.max(...xs))}`;
const ratio = (r: number): string => r.toFixed(2);

/** The verdicts on what ran. */
export function verdicts(r: {
  stdio?: StdioBenchResult;
  http?: HttpBenchResult;
  memory?: MemoryBenchResult;
  startup?: StartupBenchResult;
}): Verdict[] {
  const out: Verdict[] = [];
  const T = TARGETS;
  const G = T.guardrails;
  const M = T.metrics;
  if (r.stdio !== undefined) {
    const c = r.stdio.comparisons.find((x) => x.key === "batch")!;
    out.push({
      target: `stdio pipelined, batch, ≥ ${T.stdioPipelinedOfDirect} of direct`,
      value: ratio(c.pipelinedRatio),
      spread: range(c.rounds.map((x) => x.pipelinedRatio), ratio),
      pass: c.pipelinedRatio >= T.stdioPipelinedOfDirect,
    });
    out.push({
      target: `stdio lockstep p50 added, batch, ≤ ${T.stdioAddedP50Us} µs`,
      value: `${signed(c.addedP50Us)} µs`,
      spread: range(c.rounds.map((x) => x.addedP50Us), signed),
      pass: c.addedP50Us <= T.stdioAddedP50Us,
    });
    const g = r.stdio.guardrails;
    out.push({
      target: `stdio guardrails on: pipelined ≥ ${pct(G.minThroughputRatio)} of off (paired)`,
      value: pct(g.paired.throughputRatio),
      spread: range(g.rounds.map((x) => x.throughputRatio), pct),
      pass: g.throughputMet,
    });
    out.push({
      target: `stdio guardrails on: added p50 ≤ ${pct(G.maxAddedP50Ratio)} of off (paired)`,
      value: pct(g.paired.addedP50Ratio),
      spread: range(g.rounds.map((x) => x.addedP50Ratio), pct),
      pass: g.latencyMet,
    });
    const m = r.stdio.telemetry.cost;
    out.push({
      target: `stdio metrics on: pipelined ≥ ${pct(M.minThroughputRatio)} of off (paired)`,
      value: pct(m.paired.throughputRatio),
      spread: range(m.rounds.map((x) => x.throughputRatio), pct),
      pass: m.throughputMet,
    });
    out.push({
      target: `stdio metrics on: p50 ≤ ${pct(M.maxP50Ratio)} of off (paired)`,
      value: pct(m.paired.p50Ratio),
      spread: range(m.rounds.map((x) => x.p50Ratio), pct),
      pass: m.latencyMet,
    });
  }
  if (r.http !== undefined) {
    const h = r.http;
    const byKey = (k: string) => h.results.find((x) => x.key === k)!;
    const relay = byKey("relay");
    const batch = byKey("batch");
    const rounds = batch.throughput.runs.map((run, i) =>
      run.perSecond / relay.throughput.runs[i]!.perSecond
    );
    const ofRelay = batch.throughput.perSecond / relay.throughput.perSecond;
    out.push({
      target: `HTTP req/s at ${h.plan.connections} conns, batch, ≥ ${T.httpOfRelay} of the relay`,
      value: ratio(ofRelay),
      spread: range(rounds, ratio),
      pass: ofRelay >= T.httpOfRelay,
    });
    const c = h.comparisons.find((x) => x.key === "batch")!;
    out.push({
      target: `HTTP p50 added at 1 conn, batch, ≤ ${T.httpAddedP50Us} µs`,
      value: `${signed(c.addedP50Us)} µs`,
      spread: range(c.rounds.map((x) => x.addedP50Us), signed),
      pass: c.addedP50Us <= T.httpAddedP50Us,
    });
    const g = h.guardrails;
    out.push({
      target: `HTTP guardrails on: req/s ≥ ${pct(G.minThroughputRatio)} of off (paired)`,
      value: pct(g.paired.throughputRatio),
      spread: range(g.rounds.map((x) => x.throughputRatio), pct),
      pass: g.throughputMet,
    });
    out.push({
      target: `HTTP guardrails on: added p50 ≤ ${pct(G.maxAddedP50Ratio)} of off (paired)`,
      value: pct(g.paired.addedP50Ratio),
      spread: range(g.rounds.map((x) => x.addedP50Ratio), pct),
      pass: g.latencyMet,
    });
    const m = h.telemetry.cost;
    out.push({
      target: `HTTP metrics on: req/s ≥ ${pct(M.minThroughputRatio)} of off (paired)`,
      value: pct(m.paired.throughputRatio),
      spread: range(m.rounds.map((x) => x.throughputRatio), pct),
      pass: m.throughputMet,
    });
    out.push({
      target: `HTTP metrics on: p50 ≤ ${pct(M.maxP50Ratio)} of off (paired)`,
      value: pct(m.paired.p50Ratio),
      spread: range(m.rounds.map((x) => x.p50Ratio), pct),
      pass: m.latencyMet,
    });
  }
  if (r.memory !== undefined) {
    const mb = (r.memory.rssMiB * 1024 * 1024) / 1e6;
    out.push({
      target: `RSS with ${int(r.memory.sessions)} HTTP sessions ≤ ${T.rssMB} MB`,
      value: `${mb.toFixed(0)} MB`,
      spread: "",
      pass: mb <= T.rssMB,
    });
  }
  if (r.startup !== undefined) {
    for (const p of r.startup.figures) {
      if (p.key !== "proxy" && p.key !== "defaults") continue;
      const how = p.key === "defaults" ? "no config file" : "bench config";
      out.push({
        target: `start → first forwarded stdio message ≤ ${T.startupMs} ms (${how})`,
        value: `${p.forwardedMedianMs.toFixed(0)} ms`,
        spread: range(p.forwardedMs, (x) => `${x.toFixed(0)} ms`),
        pass: p.forwardedMedianMs <= T.startupMs,
      });
    }
  }
  return out;
}

/** The verdicts as a table. */
export function verdictLines(v: readonly Verdict[]): string[] {
  return table([
    ["target (issue 12)", "this run", "spread (rounds)", "verdict"],
    ...v.map((x) => [x.target, x.value, x.spread, x.pass ? "PASS" : "MISS"]),
  ]);
}
