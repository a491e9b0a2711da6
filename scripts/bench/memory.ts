/**
 * The memory section of `deno task bench`: the resident set of the HTTP proxy (the tree's
 * `main.ts --transport http`, default configuration: durability `batch`, guardrails off, signing,
 * key redaction, JSONL) in front of `scripts/bench_http_upstream.ts`: idle (after one session's
 * handshake and call), then with 1,000 MCP sessions open (each `initialize`d and
 * `notifications/initialized`, never deleted), read from `/proc/<pid>/status` (`VmRSS`, and
 * `VmHWM`, its peak). The pid is the proxy's own: `deno run` is the process.
 *
 * @module
 */
import {
  BenchProcess,
  cleanEnv,
  INITIALIZE,
  INITIALIZED,
  int,
  type Progress,
  proxyEnv,
  type ProxyTree,
  toolCall,
} from "./common.ts";
import { HTTP_UPSTREAM, httpProxyArgv, postHeaders, PROXY_LISTENING } from "./http.ts";

/** What the memory section found, in MiB. */
export interface MemoryBenchResult {
  sessions: number;
  idleRssMiB: number;
  rssMiB: number;
  peakRssMiB: number;
  /** MiB per session above idle. */
  perSessionKiB: number;
  seconds: number;
}

/** Requests in flight while the sessions are opened. */
const CONCURRENCY = 8;

/** `VmRSS` and `VmHWM` of `pid`, in MiB. */
async function rss(pid: number): Promise<{ rss: number; peak: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kib = (name: string): number => {
    const m = status.match(new RegExp(`^${name}:\\s+(\\d+) kB`, "m"));
    if (m === null) throw new Error(`/proc/${pid}/status has no ${name}`);
    return Number(m[1]) / 1024;
  };
  return { rss: kib("VmRSS"), peak: kib("VmHWM") };
}

/** Opens one session: `initialize`, then `notifications/initialized`; throws on a refusal. */
async function openSession(url: string): Promise<string> {
  const init = await fetch(url, { method: "POST", headers: postHeaders(null), body: INITIALIZE });
  const text = await init.text();
  const session = init.headers.get("mcp-session-id");
  if (init.status !== 200 || session === null) {
    throw new Error(`memory: initialize got HTTP ${init.status}: ${text.slice(0, 300)}`);
  }
  const done = await fetch(url, {
    method: "POST",
    headers: postHeaders(session),
    body: INITIALIZED,
  });
  await done.body?.cancel();
  if (done.status !== 202) throw new Error(`memory: initialized got HTTP ${done.status}`);
  return session;
}

/** Runs the memory section with `sessions` sessions. */
export async function runMemoryBench(o: {
  tree: ProxyTree;
  dir: string;
  config: string;
  sessions: number;
  progress: Progress;
  live: Set<BenchProcess>;
}): Promise<MemoryBenchResult> {
  const started = performance.now();
  const spawn = (label: string, argv: string[], env: Record<string, string>): BenchProcess => {
    const p = new BenchProcess(label, argv, env, o.dir, false);
    o.live.add(p);
    return p;
  };
  const upstream = spawn("memory upstream", [
    Deno.execPath(),
    "run",
    "--allow-net",
    HTTP_UPSTREAM,
  ], cleanEnv());
  let proxy: BenchProcess | undefined;
  try {
    const [, upstreamUrl] = await upstream.stderrMatch(/listening on (http:\/\/\S+)/);
    proxy = spawn(
      "memory proxy",
      httpProxyArgv(o.tree, upstreamUrl!, o.config, false, false),
      proxyEnv(`${o.dir}/audit-memory.jsonl`, "batch"),
    );
    const [, address] = await proxy.stderrMatch(PROXY_LISTENING);
    const url = `${address}/mcp`;
    const pid = proxy.pid;
    const first = await openSession(url);
    const call = await fetch(url, {
      method: "POST",
      headers: postHeaders(first),
      body: toolCall(1),
    });
    await call.body?.cancel();
    const idle = await rss(pid);
    o.progress(`memory: idle ${idle.rss.toFixed(1)} MiB; opening ${int(o.sessions)} sessions`);
    let next = 1;
    const worker = async (): Promise<void> => {
      while (next < o.sessions) {
        next++;
        await openSession(url);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const loaded = await rss(pid);
    return {
      sessions: o.sessions,
      idleRssMiB: idle.rss,
      rssMiB: loaded.rss,
      peakRssMiB: loaded.peak,
      perSessionKiB: ((loaded.rss - idle.rss) * 1024) / (o.sessions - 1),
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    for (const p of [proxy, upstream]) {
      if (p === undefined) continue;
      p.kill("SIGTERM");
      await p.waitExit([]);
      o.live.delete(p);
    }
  }
}

/** The memory section as report lines. */
export function memoryReport(r: MemoryBenchResult): string[] {
  return [
    `memory: HTTP proxy (default configuration) RSS idle ${r.idleRssMiB.toFixed(1)} MiB; with ` +
    `${int(r.sessions)} open sessions ${r.rssMiB.toFixed(1)} MiB (peak ${r.peakRssMiB.toFixed(1)}` +
    ` MiB), about ${r.perSessionKiB.toFixed(1)} KiB a session`,
  ];
}
