import assert from "node:assert/strict";
import { MeterProvider } from "@opentelemetry/sdk-metrics";
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus";
import { Logger } from "../log.ts";
import { PROCESS_METRIC_NAMES } from "./testdata/process_metric_names.ts";
import {
  parseBootTime,
  parseLimits,
  parseNetstat,
  parseStat,
  ProcessSampler,
  type ProcessSource,
  ProcParseError,
  registerProcessMetrics,
  THIS_PROCESS,
} from "./process_metrics.ts";

const STAT =
  "4242 (deno (weird) name) S 1 4242 4242 0 -1 4194560 12345 0 3 0 250 75 0 0 20 0 9 0 123456 18744586240 13872 18446744073709551615 1 1 0 0 0 0 0 16781312 1024 0 0 0 17 3 0 0 0 0 0";

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            20000                1048576              files
Max address space         unlimited            unlimited            bytes
`;

const NETSTAT = `TcpExt: SyncookiesSent SyncookiesRecv
TcpExt: 0 0
IpExt: InNoRoutes InTruncatedPkts InMcastPkts OutMcastPkts InBcastPkts OutBcastPkts InOctets OutOctets
IpExt: 0 0 0 0 0 0 18981591881 18383424256
`;

Deno.test("stat: fields counted after the last ), whatever the command name holds", () => {
  assert.deepEqual(parseStat(STAT), {
    utime: 250,
    stime: 75,
    starttime: 123456,
    vsize: 18744586240,
  });
  assert.throws(() => parseStat("garbage"), ProcParseError);
  assert.throws(() => parseStat("1 (x) S 1"), ProcParseError);
});

Deno.test("limits: soft limits, unlimited as 2^64 - 1", () => {
  assert.deepEqual(parseLimits(LIMITS), { openFiles: 20000, addressSpace: 2 ** 64 - 1 });
  assert.throws(() => parseLimits("Limit Soft\n"), ProcParseError);
});

Deno.test("netstat: IpExt octets; boot time from /proc/stat", () => {
  assert.deepEqual(parseNetstat(NETSTAT), { inOctets: 18981591881, outOctets: 18383424256 });
  assert.throws(() => parseNetstat("TcpExt: a\nTcpExt: 1\n"), ProcParseError);
  assert.equal(parseBootTime("cpu 1 2 3\nbtime 1700000000\nprocesses 9\n"), 1700000000);
  assert.throws(() => parseBootTime("cpu 1\n"), ProcParseError);
});

function source(files: Record<string, string | Error>, os = "linux"): ProcessSource {
  const read = (path: string): string => {
    const v = files[path];
    if (v === undefined) throw new Deno.errors.NotFound(path);
    if (v instanceof Error) throw v;
    return v;
  };
  return {
    os,
    readText: read,
    countEntries: (path) => (read(path), 17),
    cpuUsage: () => ({ user: 1_500_000, system: 500_000 }),
    residentBytes: () => 50_000_000,
    timeOrigin: 1_700_000_123_456,
  };
}

Deno.test("Linux with /proc readable: the whole set", () => {
  const s = new ProcessSampler(
    undefined,
    source({
      "/proc/self/stat": STAT,
      "/proc/stat": "btime 1700000000\n",
      "/proc/self/fd": "",
      "/proc/self/limits": LIMITS,
      "/proc/self/net/netstat": NETSTAT,
    }),
  );
  assert.deepEqual(s.sample(), {
    residentBytes: 50_000_000,
    cpuSeconds: 3.25,
    virtualBytes: 18744586240,
    startTimeSeconds: 1700000000 + 1234.56,
    openFds: 17,
    maxFds: 20000,
    virtualMaxBytes: 2 ** 64 - 1,
    receiveBytes: 18981591881,
    transmitBytes: 18383424256,
  });
});

Deno.test("without permission for /proc: node:process figures, the rest left out, one debug line each", () => {
  const lines: string[] = [];
  const logger = new Logger("debug", (l) => lines.push(l));
  const denied = new Deno.errors.NotCapable('Requires all access to "/proc/self/stat"');
  const s = new ProcessSampler(
    logger,
    source({
      "/proc/self/stat": denied,
      "/proc/self/fd": denied,
      "/proc/self/limits": denied,
      "/proc/self/net/netstat": new Error("netstat went away"),
    }),
  );
  const expected = {
    residentBytes: 50_000_000,
    cpuSeconds: 2,
    startTimeSeconds: 1_700_000_123.456,
  };
  assert.deepEqual(s.sample(), expected);
  assert.deepEqual(s.sample(), expected);
  const logged = lines.map((l) => JSON.parse(l));
  assert.equal(logged.length, 4);
  assert.deepEqual(logged.map((l) => [l.level, l.source]), [
    ["debug", "stat"],
    ["debug", "file descriptors"],
    ["debug", "limits"],
    ["warn", "netstat"],
  ]);
});

Deno.test("elsewhere than Linux: what node:process gives", () => {
  const s = new ProcessSampler(undefined, source({}, "darwin"));
  assert.deepEqual(s.sample(), {
    residentBytes: 50_000_000,
    cpuSeconds: 2,
    startTimeSeconds: 1_700_000_123.456,
  });
});

Deno.test("this process (tests run with all permissions): every process metric served", async () => {
  const exporter = new PrometheusExporter({ preventServerStart: true });
  const provider = new MeterProvider({ readers: [exporter] });
  registerProcessMetrics(provider.getMeter("t"), new ProcessSampler(undefined, THIS_PROCESS));
  const { resourceMetrics } = await exporter.collect();
  const text = new PrometheusSerializer("", false, undefined, true, true).serialize(
    resourceMetrics,
  );
  await provider.shutdown();
  for (const name of PROCESS_METRIC_NAMES) {
    const m = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
    assert.ok(m, `${name} in\n${text}`);
    assert.ok(Number(m[1]) >= 0, name);
  }
  const start = Number(/^process_start_time_seconds (\S+)$/m.exec(text)![1]);
  // Started before now (btime is whole seconds), and within this test run.
  const now = Date.now() / 1000;
  assert.ok(start <= now + 1 && start >= now - 3600, String(start));
});
