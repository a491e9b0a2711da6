/**
 * The `process_*` metrics of the Prometheus client libraries, the Linux set of client_golang:
 * read from `/proc/self` at each scrape where the runtime lets us, else from `node:process`.
 *
 * Deno lets a program read `/proc/self/*` (and `/proc/<pid>/*`) only with `--allow-all` (any
 * `--allow-read` list is refused for those paths); `/proc/stat` needs `--allow-read=/proc/stat`.
 * A compiled binary has every permission. Without them, the CPU time and resident memory come from
 * `node:process` (no permission needed) and the start time from the time origin; open and max file
 * descriptors, virtual memory and network bytes are left out. Each source that cannot be read is
 * logged once (debug for a missing permission, warn for anything else), never as an error.
 *
 * `process_network_*_bytes_total` are, as in client_golang, the `IpExt` counters of
 * `/proc/self/net/netstat`: those of the process's network namespace, not of the process alone.
 *
 * @module
 */
import process from "node:process";
import type { Meter, Observable } from "@opentelemetry/api";
import type { Logger } from "../log.ts";
import { PROCESS } from "./metric_names.ts";

/** Clock ticks per second of `/proc` times; fixed at 100 on Linux (as procfs assumes too). */
const USER_HZ = 100;

/** What one collection read. Absent: not available here. */
export interface ProcessSample {
  cpuSeconds?: number;
  openFds?: number;
  maxFds?: number;
  virtualBytes?: number;
  virtualMaxBytes?: number;
  residentBytes?: number;
  startTimeSeconds?: number;
  receiveBytes?: number;
  transmitBytes?: number;
}

/** How the sampler reads the system; replaced in tests. */
export interface ProcessSource {
  os: string;
  readText(path: string): string;
  /** Entries in a directory. */
  countEntries(path: string): number;
  cpuUsage(): { user: number; system: number };
  residentBytes(): number;
  /** Milliseconds since the epoch at which the runtime started. */
  timeOrigin: number;
}

/** The running process. */
export const THIS_PROCESS: ProcessSource = {
  os: Deno.build.os,
  readText: (path) => Deno.readTextFileSync(path),
  countEntries(path) {
    let n = 0;
    for (const _ of Deno.readDirSync(path)) n++;
    return n;
  },
  cpuUsage: () => process.cpuUsage(),
  residentBytes: () => process.memoryUsage.rss(),
  timeOrigin: performance.timeOrigin,
};

/** Raised when a `/proc` file does not read as expected. */
export class ProcParseError extends Error {
  override name = "ProcParseError";
}

/** Fields of `/proc/<pid>/stat` we use (proc(5)). */
export interface ProcStat {
  /** User and system time, in clock ticks. */
  utime: number;
  stime: number;
  /** Start time after boot, in clock ticks. */
  starttime: number;
  /** Virtual memory size, in bytes. */
  vsize: number;
}

/**
 * Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may hold spaces and
 * parentheses itself, so fields are counted from the last `)`.
 * @throws {ProcParseError}
 */
export function parseStat(text: string): ProcStat {
  const close = text.lastIndexOf(")");
  if (close === -1) throw new ProcParseError("stat: no command name");
  // Fields from 3 (state) on: field n is at index n - 3.
  const f = text.slice(close + 1).trim().split(/\s+/);
  const num = (field: number): number => {
    const v = Number(f[field - 3]);
    if (!Number.isFinite(v)) throw new ProcParseError(`stat: field ${field} is not a number`);
    return v;
  };
  return { utime: num(14), stime: num(15), starttime: num(22), vsize: num(23) };
}

/** The boot time (`btime`) of `/proc/stat`, in seconds since the epoch. */
export function parseBootTime(text: string): number {
  const m = /^btime\s+(\d+)$/m.exec(text);
  if (m === null) throw new ProcParseError("stat: no btime line");
  return Number(m[1]);
}

/** Soft limits of `/proc/<pid>/limits`; `unlimited` is 2^64 - 1, as client_golang reports it. */
export function parseLimits(text: string): { openFiles: number; addressSpace: number } {
  const soft = (name: string): number => {
    const line = text.split("\n").find((l) => l.startsWith(name));
    if (line === undefined) throw new ProcParseError(`limits: no ${name} line`);
    const value = line.slice(name.length).trim().split(/\s+/)[0];
    if (value === "unlimited") return 2 ** 64 - 1;
    const n = Number(value);
    if (value === undefined || value === "" || !Number.isFinite(n)) {
      throw new ProcParseError(`limits: ${name} is not a number`);
    }
    return n;
  };
  return { openFiles: soft("Max open files"), addressSpace: soft("Max address space") };
}

/** `IpExt` `InOctets` and `OutOctets` of `/proc/<pid>/net/netstat`. */
export function parseNetstat(text: string): { inOctets: number; outOctets: number } {
  const lines = text.split("\n").filter((l) => l.startsWith("IpExt:"));
  const [names, values] = lines;
  if (names === undefined || values === undefined) throw new ProcParseError("netstat: no IpExt");
  const keys = names.split(/\s+/).slice(1);
  const nums = values.split(/\s+/).slice(1);
  const get = (key: string): number => {
    const i = keys.indexOf(key);
    const n = Number(nums[i]);
    if (i === -1 || !Number.isFinite(n)) throw new ProcParseError(`netstat: no ${key}`);
    return n;
  };
  return { inOctets: get("InOctets"), outOctets: get("OutOctets") };
}

type Source = "stat" | "boot time" | "file descriptors" | "limits" | "netstat";

/** Reads the process's figures, logging each source it cannot read once. */
export class ProcessSampler {
  #src: ProcessSource;
  #logger: Logger | undefined;
  #failed = new Set<Source>();
  #bootTime: number | undefined;

  constructor(logger?: Logger, source: ProcessSource = THIS_PROCESS) {
    this.#src = source;
    this.#logger = logger;
  }

  /** Calls `read`; on failure logs once for `source` and returns undefined. */
  #try<T>(source: Source, read: () => T): T | undefined {
    try {
      return read();
    } catch (e) {
      if (!this.#failed.has(source)) {
        this.#failed.add(source);
        const denied = e instanceof Deno.errors.NotCapable ||
          e instanceof Deno.errors.PermissionDenied;
        const fields = {
          source,
          error: e instanceof Error ? e.message : String(e),
          ...(denied ? { needs: "--allow-all (Deno reads /proc/self only with it)" } : {}),
        };
        const msg = "a process metric cannot be read; it is left out";
        if (denied) this.#logger?.debug(msg, fields);
        else this.#logger?.warn(msg, fields);
      }
      return undefined;
    }
  }

  sample(): ProcessSample {
    const s: ProcessSample = {};
    const src = this.#src;
    s.residentBytes = src.residentBytes();
    if (src.os === "linux") {
      const stat = this.#try("stat", () => parseStat(src.readText("/proc/self/stat")));
      if (stat !== undefined) {
        s.cpuSeconds = (stat.utime + stat.stime) / USER_HZ;
        s.virtualBytes = stat.vsize;
        this.#bootTime ??= this.#try("boot time", () => parseBootTime(src.readText("/proc/stat")));
        if (this.#bootTime !== undefined) {
          s.startTimeSeconds = this.#bootTime + stat.starttime / USER_HZ;
        }
      }
      const fds = this.#try("file descriptors", () => src.countEntries("/proc/self/fd"));
      if (fds !== undefined) s.openFds = fds;
      const limits = this.#try("limits", () => parseLimits(src.readText("/proc/self/limits")));
      if (limits !== undefined) {
        s.maxFds = limits.openFiles;
        s.virtualMaxBytes = limits.addressSpace;
      }
      const net = this.#try("netstat", () => parseNetstat(src.readText("/proc/self/net/netstat")));
      if (net !== undefined) {
        s.receiveBytes = net.inOctets;
        s.transmitBytes = net.outOctets;
      }
    }
    if (s.cpuSeconds === undefined) {
      const cpu = src.cpuUsage();
      s.cpuSeconds = (cpu.user + cpu.system) / 1e6;
    }
    s.startTimeSeconds ??= src.timeOrigin / 1000;
    return s;
  }
}

/** Registers the `process_*` metrics on `meter`, read from `sampler` once per collection. */
export function registerProcessMetrics(meter: Meter, sampler: ProcessSampler): void {
  const counter = (s: { name: string; help: string }): Observable =>
    meter.createObservableCounter(s.name, { description: s.help });
  const gauge = (s: { name: string; help: string }): Observable =>
    meter.createObservableGauge(s.name, { description: s.help });
  const pairs: [keyof ProcessSample, Observable][] = [
    ["cpuSeconds", counter(PROCESS.cpu)],
    ["openFds", gauge(PROCESS.openFds)],
    ["maxFds", gauge(PROCESS.maxFds)],
    ["virtualBytes", gauge(PROCESS.virtualMemory)],
    ["virtualMaxBytes", gauge(PROCESS.virtualMemoryMax)],
    ["residentBytes", gauge(PROCESS.residentMemory)],
    ["startTimeSeconds", gauge(PROCESS.startTime)],
    ["receiveBytes", counter(PROCESS.networkReceive)],
    ["transmitBytes", counter(PROCESS.networkTransmit)],
  ];
  meter.addBatchObservableCallback(
    (result) => {
      const s = sampler.sample();
      for (const [key, observable] of pairs) {
        const v = s[key];
        if (v !== undefined) result.observe(observable, v);
      }
    },
    pairs.map(([, o]) => o),
  );
}
