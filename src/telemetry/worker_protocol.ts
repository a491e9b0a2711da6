/**
 * The messages between the proxy's main thread and its telemetry worker. Both sides are this
 * program; the worker trusts what the main thread sends, and the main thread what it answers.
 *
 * @module
 */
import type { WriteReport } from "../audit/chain.ts";
import type { Config } from "../config/config.ts";
import type { Level } from "../log.ts";
import type { MetricsOptions } from "./metrics.ts";
import type { ProxyCountsSnapshot } from "./proxy_stats.ts";

/** What the worker runs: the metrics, the OpenTelemetry export, or both. */
export interface TelemetryStart {
  logLevel: Level;
  metrics: MetricsOptions | null;
  otel: {
    config: Config["otel"];
    version: string;
    storage: "jsonl" | "sqlite";
    upstream: string | null;
  } | null;
}

/** The audit log's queue, as the metrics show it, read when a scrape is asked for. */
export interface LogSnapshot {
  queued: number;
  queueCapacity: number;
  backpressure: number;
}

/** From the main thread. */
export type ToWorker =
  /**
   * `progress`: two Int32 counters the worker adds to as it takes records in (records, then
   * UTF-16 code units of their lines), modulo 2^32; the main thread reads them to bound what is in
   * flight without a message back per batch.
   */
  | { kind: "start"; start: TelemetryStart; progress: SharedArrayBuffer }
  /**
   * Stored lines, in seq order, as the audit log's observer got them, and the store attempts
   * since the last message.
   */
  | { kind: "records"; lines: string[]; reports: WriteReport[] }
  | {
    kind: "scrape";
    id: number;
    accept: string | null;
    log: LogSnapshot;
    counts: ProxyCountsSnapshot;
  }
  | { kind: "shutdown" };

/** From the worker. */
export type FromWorker =
  | { kind: "started" }
  /** `key`: the configuration key at fault, when the start failed on one. */
  | { kind: "start_failed"; key: string | null; problem: string }
  | { kind: "scraped"; id: number; body: string; contentType: string }
  | { kind: "scrape_failed"; id: number; error: string }
  | { kind: "stopped" };
