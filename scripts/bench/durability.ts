/**
 * The durability section of `deno task bench`: what a disk flush costs on the disk of the bench's
 * logs (`.bench/` in the repository, where a tmpfs `/tmp` would flush nothing): a small append
 * (one record's worth) followed by `fdatasync`, N times, the time of each flush. From it, the
 * power-loss window of each `audit.durability` mode:
 *
 * - `entry`: none — each batch is flushed before its message is forwarded;
 * - `batch`: records written since the last flush began: at most `audit.sync_interval_ms` plus one
 *   flush (p99 here), when the tree coalesces flushes that way (otherwise one flush in flight
 *   plus the next);
 * - `none`: until the kernel writes the dirty pages back (`vm.dirty_expire_centisecs` plus up to
 *   `vm.dirty_writeback_centisecs`, read from `/proc`).
 *
 * @module
 */
import { percentile, type Progress } from "./common.ts";

export interface DurabilityBenchResult {
  /** Where the flushes were timed. */
  path: string;
  flushes: number;
  p50Us: number;
  p99Us: number;
  maxUs: number;
  /** `audit.sync_interval_ms` of the tree, or null when it does not know it. */
  syncIntervalMs: number | null;
  /** The kernel's writeback settings, in ms, when readable. */
  dirtyExpireMs: number | null;
  dirtyWritebackMs: number | null;
  /** The power-loss window of each mode, in ms (null when unknown). */
  window: { entry: number; batch: number; none: number | null };
}

async function centis(name: string): Promise<number | null> {
  try {
    return Number((await Deno.readTextFile(`/proc/sys/vm/${name}`)).trim()) * 10;
  } catch {
    return null;
  }
}

/** Times `flushes` appends with `fdatasync` in `dir`. */
export async function runDurabilityBench(o: {
  dir: string;
  flushes: number;
  syncIntervalMs: number | null;
  progress: Progress;
}): Promise<DurabilityBenchResult> {
  const path = `${o.dir}/fdatasync.bin`;
  const record = new Uint8Array(1024).fill(0x61);
  const times = new Float64Array(o.flushes);
  o.progress(`durability: ${o.flushes} appends with fdatasync in ${o.dir}`);
  {
    using file = await Deno.open(path, { create: true, append: true });
    for (let i = 0; i < o.flushes; i++) {
      file.writeSync(record);
      const t0 = performance.now();
      file.syncDataSync();
      times[i] = (performance.now() - t0) * 1000;
    }
  }
  await Deno.remove(path);
  const sorted = times.slice().sort();
  const p99Us = percentile(sorted, 99);
  const [expire, writeback] = await Promise.all([
    centis("dirty_expire_centisecs"),
    centis("dirty_writeback_centisecs"),
  ]);
  return {
    path,
    flushes: o.flushes,
    p50Us: percentile(sorted, 50),
    p99Us,
    maxUs: sorted[sorted.length - 1] ?? NaN,
    syncIntervalMs: o.syncIntervalMs,
    dirtyExpireMs: expire,
    dirtyWritebackMs: writeback,
    window: {
      entry: 0,
      // Without the interval, one flush in flight and the one queued behind it.
      batch: (o.syncIntervalMs ?? 0) + (o.syncIntervalMs === null ? 2 : 1) * p99Us / 1000,
      none: expire === null ? null : expire + (writeback ?? 0),
    },
  };
}

/** The durability section as report lines. */
export function durabilityReport(r: DurabilityBenchResult): string[] {
  const ms = (x: number): string => x >= 100 ? x.toFixed(0) : x.toFixed(1);
  return [
    `durability: fdatasync after a 1 KiB append, ${r.flushes} times in ${r.path}: p50 ` +
    `${Math.round(r.p50Us)} µs, p99 ${Math.round(r.p99Us)} µs, max ${Math.round(r.maxUs)} µs`,
    `  power-loss window: entry 0 (flushed before forwarding); batch ≈ ` +
    (r.syncIntervalMs === null
      ? `two flushes, ${ms(r.window.batch)} ms (this tree has no audit.sync_interval_ms)`
      : `audit.sync_interval_ms ${r.syncIntervalMs} + one flush = ${ms(r.window.batch)} ms`) +
    `; none ≈ the kernel's writeback, ` +
    (r.window.none === null
      ? "unknown"
      : `${(r.window.none / 1000).toFixed(0)} s (vm.dirty_expire_centisecs + ` +
        `vm.dirty_writeback_centisecs)`),
  ];
}
