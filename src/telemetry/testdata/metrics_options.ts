/**
 * The metrics options the telemetry unit tests start from: tool labels on, no process or runtime
 * metrics (their values move on their own), no OTel queue.
 *
 * @module
 */
import type { MetricsOptions } from "../metrics.ts";

export const METRICS_OPTIONS: Readonly<MetricsOptions> = {
  toolLabels: true,
  maxToolLabels: 200,
  includeProcess: false,
  includeRuntime: false,
  backend: "jsonl",
  otelQueueCapacity: 0,
};
