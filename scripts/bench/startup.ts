/**
 * The startup section of `deno task bench`: from the spawn of a process (`deno run …`, the
 * client's clock just before `Deno.Command.spawn`) to the first stdio message forwarded, the
 * client having written `initialize` at once. Measured for the upstream alone (direct), the bare
 * relay, and the proxy (the tree's `main.ts`) twice: `proxy` as the other sections run it
 * (durability `batch`, guardrails off, signing, key redaction, JSONL, from a configuration file,
 * dashboard and metrics off), and `defaults` with no configuration file at all, as a client's
 * wrapped server starts (dashboard and metrics on, on free ports; signing by `AUDIT_SECRET`);
 * N times each in turns, medians:
 *
 * - `forwarded`: until the upstream (`scripts/bench_upstream.ts --mark`) reads its first input,
 *   by the wall clock of both processes: the moment the message was forwarded to it. For direct
 *   it is the upstream's own start.
 * - `answered`: until the answer to `initialize` reaches the client (the upstream's start and the
 *   way back included).
 *
 * The upstream is the Deno one (`scripts/bench_upstream.ts`) whatever the stdio section uses: it
 * starts in ~20 ms where the Node one takes ~120 ms here, and every figure includes its start.
 *
 * A cold module cache is not measured: every run after the first finds Deno's caches warm, as a
 * client that starts its servers at every launch does.
 *
 * @module
 */
import {
  BenchProcess,
  cleanEnv,
  median,
  type Progress,
  proxyEnv,
  type ProxyTree,
} from "./common.ts";
import { INITIALIZE_ANSWER, INITIALIZE_LINE, Peer } from "./stdio.ts";
import { proxyCommand } from "./common.ts";
import { scriptPath } from "./common.ts";
import { DENO_UPSTREAM } from "./upstreams.ts";

export type StartupKey = "direct" | "relay" | "proxy" | "defaults";

/** One process kind's startup, in ms. */
export interface StartupFigure {
  key: StartupKey;
  /** Spawn to the upstream's first read, each run. */
  forwardedMs: number[];
  /** Spawn to the answer of `initialize`, each run. */
  answeredMs: number[];
  forwardedMedianMs: number;
  answeredMedianMs: number;
}

export interface StartupBenchResult {
  runs: number;
  /** The upstream started behind each: always the Deno one, the cheaper to spawn. */
  upstream: "deno";
  figures: StartupFigure[];
}

const MARK = /first read at ([\d.]+)/;

async function once(
  label: string,
  argv: string[],
  env: Record<string, string>,
  cwd: string,
  live: Set<BenchProcess>,
): Promise<{ forwardedMs: number; answeredMs: number }> {
  const t0 = performance.timeOrigin + performance.now();
  const peer = new Peer(label, argv, env, cwd);
  live.add(peer);
  try {
    const answer = await peer.request(INITIALIZE_LINE);
    const t1 = performance.timeOrigin + performance.now();
    if (!answer.startsWith(INITIALIZE_ANSWER)) {
      throw new Error(`${label}: initialize was answered ${answer.slice(0, 300)}`);
    }
    const [, at] = await peer.stderrMatch(MARK, AbortSignal.timeout(10_000));
    return { forwardedMs: Number(at) - t0, answeredMs: t1 - t0 };
  } finally {
    await peer.close();
    live.delete(peer);
  }
}

/** Runs the startup section: `runs` starts of each, in turns. */
export async function runStartupBench(o: {
  tree: ProxyTree;
  dir: string;
  config: string;
  runs: number;
  progress: Progress;
  live: Set<BenchProcess>;
}): Promise<StartupBenchResult> {
  const upstream = [...DENO_UPSTREAM, "--mark"];
  const kinds: { key: StartupKey; argv: string[]; env: Record<string, string> }[] = [
    { key: "direct", argv: upstream, env: cleanEnv() },
    {
      key: "relay",
      argv: [
        Deno.execPath(),
        "run",
        "--allow-run",
        scriptPath("./bench_relay.ts"),
        "--",
        ...upstream,
      ],
      env: cleanEnv(),
    },
    {
      key: "proxy",
      argv: [
        ...proxyCommand(o.tree, ["--allow-read", "--allow-write", "--allow-env", "--allow-run"]),
        "--config",
        o.config,
        "--",
        ...upstream,
      ],
      env: proxyEnv(`${o.dir}/audit-startup.jsonl`, "batch"),
    },
    {
      key: "defaults",
      argv: [
        ...proxyCommand(o.tree, [
          "--allow-read",
          "--allow-write",
          "--allow-env",
          "--allow-run",
          "--allow-net=127.0.0.1",
        ]),
        "--",
        ...upstream,
      ],
      env: {
        ...cleanEnv(),
        AUDIT_SECRET: "bench-startup-secret-0123456789abcdef",
        MCP_AUDIT_AUDIT_PATH: `${o.dir}/audit-startup-defaults.jsonl`,
        MCP_AUDIT_DASHBOARD_PORT: "0",
        MCP_AUDIT_METRICS_PORT: "0",
      },
    },
  ];
  const figures = new Map(
    kinds.map((k) => [k.key, { forwarded: [] as number[], answered: [] as number[] }]),
  );
  // One start of each first, not counted: Deno's caches and the page cache warm.
  for (const k of kinds) await once(`startup ${k.key}`, k.argv, k.env, o.dir, o.live);
  for (let i = 0; i < o.runs; i++) {
    o.progress(`startup: run ${i + 1}/${o.runs}`);
    for (const k of i % 2 === 0 ? kinds : [...kinds].reverse()) {
      const r = await once(`startup ${k.key}`, k.argv, k.env, o.dir, o.live);
      figures.get(k.key)!.forwarded.push(r.forwardedMs);
      figures.get(k.key)!.answered.push(r.answeredMs);
    }
  }
  return {
    runs: o.runs,
    upstream: "deno",
    figures: kinds.map(({ key }) => {
      const f = figures.get(key)!;
      return {
        key,
        forwardedMs: f.forwarded,
        answeredMs: f.answered,
        forwardedMedianMs: median(f.forwarded),
        answeredMedianMs: median(f.answered),
      };
    }),
  };
}

/** The startup section as report lines. */
export function startupReport(r: StartupBenchResult): string[] {
  const span = (xs: number[]): string =>
    `${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)}`;
  return [
    `startup (spawn of deno run … to the first stdio message forwarded to the upstream / to the ` +
    `answer of initialize; median of ${r.runs}, min–max; caches warm; upstream ` +
    `scripts/bench_upstream.ts on Deno, the cheaper to spawn, whatever the stdio section used):`,
    ...r.figures.map((f) =>
      `  ${f.key.padEnd(8)} forwarded ${f.forwardedMedianMs.toFixed(0).padStart(4)} ms ` +
      `(${span(f.forwardedMs)})   answered ${f.answeredMedianMs.toFixed(0).padStart(4)} ms ` +
      `(${span(f.answeredMs)})`
    ),
  ];
}
