/**
 * How the OpenTelemetry export reports on itself: every OTLP request attempt, every item dropped,
 * and its queues. The metrics implement it (`mcp_audit_otel_*`); without metrics nothing listens.
 *
 * @module
 */

/** What is exported: spans, or audit records as log records. */
export type ExportSignal = "traces" | "logs";

/**
 * The outcome of one OTLP request, as the Go tool labels it: `ok` (2xx), `retry` (a retryable
 * failure that will be tried again), `error` (a retryable failure on the last attempt),
 * `permanent_error` (a failure no retry can mend).
 */
export type AttemptStatus = "ok" | "retry" | "error" | "permanent_error";

/**
 * Why items were given up: the queue was full, they could not be encoded, their last attempt
 * failed (`error`, `permanent_error`), or shutdown's deadline passed with them still queued.
 */
export type DropReason = "queue_full" | "encode_error" | "error" | "permanent_error" | "shutdown";

/** What an export queue holds now. */
export interface QueueReading {
  depth: number;
  capacity: number;
}

/** Told of the export's progress; each call is cheap and never throws. */
export interface ExportHealth {
  /** One OTLP request attempt carrying `items` spans or log records. */
  attempt(signal: ExportSignal, status: AttemptStatus, items: number, seconds: number): void;
  /** `items` given up before a successful export. */
  dropped(signal: ExportSignal, reason: DropReason, items: number): void;
  /** How to read a queue's depth and capacity when metrics are collected. */
  queue(signal: ExportSignal, read: () => QueueReading): void;
}

/** Health reports that go nowhere (metrics off). */
export const NO_EXPORT_HEALTH: ExportHealth = {
  attempt() {},
  dropped() {},
  queue() {},
};
