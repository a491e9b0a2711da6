/**
 * `deno task bench`: the one benchmark driver. Each section measures, in the same run, direct
 * against a bare relay and the proxy in each configuration, the targets in turns round after round
 * so that the machine's load hits each alike:
 *
 * - `stdio` (`scripts/bench/stdio.ts`): lockstep p50/p99 and pipelined msgs/s: direct, a bare Deno
 *   relay, the proxy with durability `batch`, `none`, `entry`, guardrails on, metrics on; all in
 *   front of a Node upstream (`scripts/bench_node_upstream.mjs`, as the issue measured;
 *   `--upstream` chooses another, and the Deno one stands in when there is no `node`);
 * - `http` (`scripts/bench/http.ts`): req/s at 32 connections and p50 at 1: direct, a bare Hono +
 *   `fetch` relay, the proxy `batch`, `none`, guardrails on, metrics on;
 * - `memory`: the HTTP proxy's RSS idle and with 1,000 open sessions;
 * - `startup`: spawn to the first forwarded stdio message;
 * - `durability`: fdatasync on the logs' disk, and each mode's power-loss window;
 * - `storage`, `detectors`: the audit log's records/s; the detectors' linearity;
 * - `dashboard` (only when `--only` names it: it builds a 1M-record log).
 *
 * Then issue 12's targets, PASS or MISS with the spread of the rounds: reported, not asserted
 * (the exit code is 1 only when the bench could not run or a call did not reach the server).
 * `--json` prints one JSON document with every figure on stdout; progress goes to stderr.
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  BenchProcess,
  cleanEnv,
  gitCommit,
  type ProxyTree,
  proxyTree,
  REPO,
  type TelemetrySetup,
} from "./bench/common.ts";
import { type Guardrails, writeGuardrailsConfig } from "./bench/guardrails.ts";
import { SINK_LISTENING, sinkArgv } from "./bench_otlp_sink.ts";
import {
  DEFAULT_SYNC_INTERVAL_MS,
  runStdioBench,
  STDIO_FULL,
  STDIO_QUICK,
  type StdioBenchResult,
  stdioReport,
} from "./bench/stdio.ts";
import {
  HTTP_FULL,
  HTTP_QUICK,
  type HttpBenchResult,
  httpReport,
  runHttpBench,
} from "./bench/http.ts";
import { type MemoryBenchResult, memoryReport, runMemoryBench } from "./bench/memory.ts";
import { runStartupBench, type StartupBenchResult, startupReport } from "./bench/startup.ts";
import {
  type DurabilityBenchResult,
  durabilityReport,
  runDurabilityBench,
} from "./bench/durability.ts";
import { runStorageBench, type StorageBenchResult, storageReport } from "./bench/storage.ts";
import { type DetectorBenchResult, detectorReport, runDetectorBench } from "./bench/detectors.ts";
import {
  type DashboardBenchResult,
  dashboardLogPath,
  dashboardReport,
  runDashboardBench,
} from "./bench/dashboard.ts";
import { TARGETS, verdictLines, verdicts } from "./bench/verdicts.ts";
import { stdioUpstream, UPSTREAM_KINDS, type UpstreamKind } from "./bench/upstreams.ts";

const SECTIONS = [
  "stdio",
  "http",
  "memory",
  "startup",
  "durability",
  "storage",
  "detectors",
  "dashboard",
] as const;
type Section = typeof SECTIONS[number];
/** What runs without `--only`: all but the dashboard, which builds a 1M-record log. */
const DEFAULT_SECTIONS: readonly Section[] = SECTIONS.filter((s) => s !== "dashboard");

const USAGE = `usage: deno task bench [--quick] [--json] [--only SECTIONS] [--rounds N] [--profile]
                       [--main PATH | --proxy-root DIR] [--keep] [--otel-logs] [--upstream KIND]
                       [--generator auto|wrk|fetch] [--no-nginx] [--dashboard-rebuild]
  --quick       a short run (1 round, smaller loads), for a smoke test
  --json        print every figure as one JSON document on stdout (progress goes to stderr)
  --only        comma-separated sections: ${SECTIONS.join(",")}
                (default: all but dashboard)
  --rounds N    rounds of the stdio and HTTP sections (default 6, --quick 1)
  --profile     CPU-profile the stdio proxy (batch, guardrails on, telemetry on) during a
                pipelined run and print the batch proxy's time by stage per message; and the
                HTTP proxies during a 32-connection run; saves .bench/profile-*.cpuprofile
  --main PATH   the proxy's main.ts (another checkout, e.g. a git worktree of an older commit)
  --proxy-root DIR   the same, as DIR/main.ts; its deno.json is used for it
                (storage, detectors and dashboard run this repository's code in-process)
  --keep        keep the logs and configuration files in .bench/
  --otel-logs   the telemetry configurations also export every record as a log record
  --upstream    the stdio server behind direct, the relay and the proxies: node-sdk (the default:
                scripts/bench_node_upstream.mjs --like-sdk, each line parsed and one write an
                answer, as a server on the MCP TypeScript SDK does; the Deno one when there is no
                node), node (the same, one write a read), or deno (scripts/bench_upstream.ts); the
                startup section always starts the Deno one
  --generator   the HTTP load generator: wrk when installed (auto, the default), or fetch
  --no-nginx    do not measure nginx even when it is installed
  --dashboard-rebuild   write the dashboard section's log again`;

interface Flags {
  quick: boolean;
  json: boolean;
  keep: boolean;
  profile: boolean;
  otelLogs: boolean;
  sections: Section[];
  rounds: number | null;
  main: string | undefined;
  root: string | undefined;
  generator: "auto" | "wrk" | "fetch";
  upstream: UpstreamKind;
  nginx: boolean;
  dashboardRebuild: boolean;
}

function isSection(s: string): s is Section {
  return (SECTIONS as readonly string[]).includes(s);
}

function isGenerator(s: string): s is Flags["generator"] {
  return s === "auto" || s === "wrk" || s === "fetch";
}

function isUpstream(s: string): s is UpstreamKind {
  return (UPSTREAM_KINDS as readonly string[]).includes(s);
}

/** The flags, or the exit code when the command is to stop there. */
function parseFlags(args: string[]): Flags | number {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        quick: { type: "boolean" },
        json: { type: "boolean" },
        keep: { type: "boolean" },
        profile: { type: "boolean" },
        "otel-logs": { type: "boolean" },
        only: { type: "string" },
        rounds: { type: "string" },
        main: { type: "string" },
        "proxy-root": { type: "string" },
        generator: { type: "string" },
        upstream: { type: "string" },
        "no-nginx": { type: "boolean" },
        "dashboard-rebuild": { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    console.error(`${e instanceof Error ? e.message : String(e)}\n${USAGE}`);
    return 2;
  }
  if (values.help === true) {
    console.log(USAGE);
    return 0;
  }
  const only = values.only?.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const unknown = only?.filter((s) => !isSection(s)) ?? [];
  const rounds = values.rounds === undefined ? null : Number(values.rounds);
  const generator = values.generator ?? "auto";
  const upstream = values.upstream ?? "node-sdk";
  if (
    unknown.length > 0 || (rounds !== null && (!Number.isInteger(rounds) || rounds < 1)) ||
    !isGenerator(generator) || !isUpstream(upstream) ||
    (values.main !== undefined && values["proxy-root"] !== undefined)
  ) {
    console.error(
      (unknown.length > 0 ? `unknown sections: ${unknown.join(", ")}\n` : "") +
        `--rounds takes an integer ≥ 1, --generator auto|wrk|fetch, --upstream ${
          UPSTREAM_KINDS.join("|")
        }, ` +
        `and --main and --proxy-root do not go together\n${USAGE}`,
    );
    return 2;
  }
  return {
    quick: values.quick === true,
    json: values.json === true,
    keep: values.keep === true,
    profile: values.profile === true,
    otelLogs: values["otel-logs"] === true,
    sections: only === undefined ? [...DEFAULT_SECTIONS] : SECTIONS.filter((s) => only.includes(s)),
    rounds,
    main: values.main,
    root: values["proxy-root"],
    generator,
    upstream,
    nginx: values["no-nginx"] !== true,
    dashboardRebuild: values["dashboard-rebuild"] === true,
  };
}

/** Everything the run found; sections that did not run are absent. */
interface BenchResult {
  machine: {
    os: string;
    arch: string;
    cpus: number;
    deno: string;
    v8: string;
    /** Load averages at the start and the end: the machine is shared. */
    loadavg: { start: number[]; end: number[] };
  };
  /** This repository's commit (the driver's and the in-process sections' code). */
  commit: string | null;
  /** The tree whose main.ts was the proxy. */
  proxy: { main: string; commit: string | null; syncInterval: boolean };
  quick: boolean;
  sections: Section[];
  seconds: number;
  targets: typeof TARGETS;
  verdicts: ReturnType<typeof verdicts>;
  stdio?: StdioBenchResult;
  http?: HttpBenchResult;
  memory?: MemoryBenchResult;
  startup?: StartupBenchResult;
  durability?: DurabilityBenchResult;
  storage?: StorageBenchResult;
  detectors?: DetectorBenchResult;
  dashboard?: DashboardBenchResult;
}

/** Starts the OTLP sink for the stdio section's telemetry configuration. */
async function startSink(
  dir: string,
  logs: boolean,
  live: Set<BenchProcess>,
): Promise<{ sink: BenchProcess; setup: TelemetrySetup }> {
  const sink = new BenchProcess("otlp sink", sinkArgv(), cleanEnv(), dir, false);
  live.add(sink);
  const [, sinkUrl] = await sink.stderrMatch(SINK_LISTENING);
  return { sink, setup: { sinkUrl: sinkUrl!, logs } };
}

async function stop(p: BenchProcess, live: Set<BenchProcess>): Promise<void> {
  p.kill("SIGTERM");
  await p.waitExit([]);
  live.delete(p);
}

async function run(flags: Flags, tree: ProxyTree, dir: string, live: Set<BenchProcess>) {
  const progress = (text: string): void => console.error(`bench: ${text}`);
  const has = (s: Section): boolean => flags.sections.includes(s);
  const loadStart = Deno.loadavg();
  const started = performance.now();
  const configs: Record<Guardrails, string> = {
    off: await writeGuardrailsConfig(dir, "off"),
    on: await writeGuardrailsConfig(dir, "on"),
  };
  const syncIntervalMs = tree.syncInterval ? DEFAULT_SYNC_INTERVAL_MS : null;
  const r: Partial<BenchResult> = {};
  if (has("stdio")) {
    const base = flags.quick ? STDIO_QUICK : STDIO_FULL;
    const plan = flags.rounds === null ? base : {
      ...base,
      rounds: flags.rounds,
      // The same requests and time per round as the plan's rounds get.
      lockstep: Math.ceil(base.lockstep / base.rounds) * flags.rounds,
      lockstepBudgetMs: (base.lockstepBudgetMs / base.rounds) * flags.rounds,
    };
    const upstream = await stdioUpstream(flags.upstream);
    if (upstream.fallback !== null) progress(`stdio: ${upstream.fallback}`);
    const { sink, setup } = await startSink(dir, flags.otelLogs, live);
    try {
      r.stdio = await runStdioBench({
        tree,
        plan,
        dir,
        configs,
        telemetry: setup,
        upstream,
        profile: flags.profile,
        progress,
        live,
      });
    } finally {
      await stop(sink, live);
    }
  }
  if (has("http")) {
    const base = flags.quick ? HTTP_QUICK : HTTP_FULL;
    r.http = await runHttpBench({
      tree,
      plan: flags.rounds === null ? base : { ...base, rounds: flags.rounds },
      syncIntervalMs,
      dir,
      progress,
      generator: flags.generator,
      nginx: flags.nginx,
      profile: flags.profile,
      otelLogs: flags.otelLogs,
      configs,
    });
  }
  if (has("memory")) {
    r.memory = await runMemoryBench({
      tree,
      dir,
      config: configs.off,
      sessions: 1000,
      progress,
      live,
    });
  }
  if (has("startup")) {
    r.startup = await runStartupBench({
      tree,
      dir,
      config: configs.off,
      runs: flags.quick ? 3 : 11,
      progress,
      live,
    });
  }
  if (has("durability")) {
    r.durability = await runDurabilityBench({
      dir,
      flushes: flags.quick ? 100 : 500,
      syncIntervalMs,
      progress,
    });
  }
  if (has("storage")) r.storage = await runStorageBench({ quick: flags.quick, dir, progress });
  if (has("detectors")) r.detectors = await runDetectorBench({ quick: flags.quick, progress });
  if (has("dashboard")) {
    const records = flags.quick ? 100_000 : 1_000_000;
    r.dashboard = await runDashboardBench({
      path: dashboardLogPath(records),
      records,
      runs: flags.quick ? 3 : 7,
      rebuild: flags.dashboardRebuild,
      progress,
    });
  }
  const result: BenchResult = {
    machine: {
      os: Deno.build.os,
      arch: Deno.build.arch,
      cpus: navigator.hardwareConcurrency,
      deno: Deno.version.deno,
      v8: Deno.version.v8,
      loadavg: { start: loadStart, end: Deno.loadavg() },
    },
    commit: await gitCommit(REPO),
    proxy: { main: tree.main, commit: tree.commit, syncInterval: tree.syncInterval },
    quick: flags.quick,
    sections: flags.sections,
    seconds: (performance.now() - started) / 1000,
    targets: TARGETS,
    verdicts: verdicts(r),
    ...r,
  };
  return result;
}

function report(r: BenchResult): string[] {
  const m = r.machine;
  const lines = [
    `mcp-audit bench: deno ${m.deno}, ${m.os}/${m.arch}, ${m.cpus} CPUs (load ` +
    `${m.loadavg.start.map((x) => x.toFixed(1)).join(" ")} → ` +
    `${m.loadavg.end.map((x) => x.toFixed(1)).join(" ")}), ${r.quick ? "quick" : "full"} run ` +
    `in ${r.seconds.toFixed(0)} s; bench ${r.commit ?? "?"}; proxy ${r.proxy.main} ` +
    `(${r.proxy.commit ?? "?"})`,
  ];
  const add = (part: string[] | undefined): void => {
    if (part !== undefined) lines.push("", ...part);
  };
  add(r.stdio && stdioReport(r.stdio));
  add(r.http && httpReport(r.http));
  add(r.memory && memoryReport(r.memory));
  add(r.startup && startupReport(r.startup));
  add(r.durability && durabilityReport(r.durability));
  add(r.storage && storageReport(r.storage));
  add(r.detectors && detectorReport(r.detectors));
  add(r.dashboard && dashboardReport(r.dashboard));
  if (r.verdicts.length > 0) add(verdictLines(r.verdicts));
  return lines;
}

async function main(args: string[]): Promise<number> {
  const flags = parseFlags(args);
  if (typeof flags === "number") return flags;
  const progress = (text: string): void => console.error(`bench: ${text}`);
  let tree: ProxyTree;
  try {
    tree = await proxyTree({
      ...(flags.main === undefined ? {} : { main: flags.main }),
      ...(flags.root === undefined ? {} : { root: flags.root }),
    });
  } catch (e) {
    console.error(`no main.ts there: ${e instanceof Error ? e.message : String(e)}`);
    return 2;
  }
  const dir = `${REPO}.bench/run-${Date.now()}-${Deno.pid}`;
  await Deno.mkdir(dir, { recursive: true });
  const live = new Set<BenchProcess>();
  // Ctrl-C reaches the children as well; end them and let the run fail rather than leave them.
  const onSignal = (): void => {
    progress("interrupted");
    for (const p of live) p.kill("SIGTERM");
  };
  Deno.addSignalListener("SIGINT", onSignal);
  try {
    const result = await run(flags, tree, dir, live);
    console.log(flags.json ? JSON.stringify(result, null, 2) : report(result).join("\n"));
    return 0;
  } catch (e) {
    progress(`failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
    return 1;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    await Promise.all([...live].map(async (p) => {
      p.kill("SIGTERM");
      await p.waitExit([]);
    }));
    if (flags.keep) progress(`kept the logs in ${dir}`);
    else await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
