/**
 * Every Prometheus metric the proxy serves: name, type, help text, labels and buckets. The Go
 * tool's (`origin: "go"`) are copied from it exactly, so that its dashboards and alerts keep
 * working; the others are ours. A golden test pins this file: changing a name, a label or a help
 * text is a CHANGELOG entry.
 *
 * @module
 */

/** A Prometheus metric type, as `# TYPE` names it. */
export type MetricType = "counter" | "gauge" | "histogram";

/** One metric family. */
export interface MetricSpec {
  readonly name: string;
  readonly type: MetricType;
  readonly help: string;
  /** Label names in the order series carry them (with tool labels on). */
  readonly labels: readonly string[];
  /** Histogram bucket upper bounds (`+Inf` is implied). */
  readonly buckets?: readonly number[];
  /** Where the name comes from: the Go tool, ours, or a library convention (`process_*`). */
  readonly origin: "go" | "added" | "process" | "runtime";
}

function spec(
  origin: MetricSpec["origin"],
  name: string,
  type: MetricType,
  labels: readonly string[],
  help: string,
  buckets?: readonly number[],
): MetricSpec {
  return buckets === undefined
    ? { name, type, help, labels, origin }
    : { name, type, help, labels, buckets, origin };
}

const STORAGE_SECONDS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const BATCH_SIZES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];
const EXPORT_SECONDS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const REQUEST_SECONDS = [
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
  60,
  120,
];
const LOOP_DELAY_SECONDS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** The label whose values are tool names; dropped everywhere with `metrics.tool_labels: false`. */
export const TOOL_LABEL = "tool_name";

/** The Go tool's application metrics (go-contract §1.1). */
export const GO = {
  entries: spec(
    "go",
    "mcp_audit_entries_total",
    "counter",
    ["transport", "direction", "method", "status"],
    "Total audit entries recorded.",
  ),
  toolCalls: spec(
    "go",
    "mcp_audit_tool_calls_total",
    "counter",
    ["transport", "tool_name", "status"],
    "Total MCP tools/call audit entries recorded.",
  ),
  policyDecisions: spec(
    "go",
    "mcp_audit_policy_decisions_total",
    "counter",
    ["action"],
    "Total policy decisions for MCP tools/call requests.",
  ),
  rateLimitRejections: spec(
    "go",
    "mcp_audit_rate_limit_rejections_total",
    "counter",
    ["client_id", "tool_name"],
    "Total tools/call requests rejected by rate limits.",
  ),
  upstreamRetries: spec(
    "go",
    "mcp_audit_http_upstream_retries_total",
    "counter",
    ["reason"],
    "Total HTTP upstream retry attempts.",
  ),
  storageWrites: spec(
    "go",
    "mcp_audit_storage_writes_total",
    "counter",
    ["backend", "mode", "status"],
    "Total audit storage writes.",
  ),
  storageWriteDuration: spec(
    "go",
    "mcp_audit_storage_write_duration_seconds",
    "histogram",
    ["backend", "mode"],
    "Audit storage write duration in seconds.",
    STORAGE_SECONDS,
  ),
  asyncBackpressure: spec(
    "go",
    "mcp_audit_async_backpressure_total",
    "counter",
    [],
    "Total times async audit writes encountered a full queue.",
  ),
  asyncBatches: spec(
    "go",
    "mcp_audit_async_batches_total",
    "counter",
    [],
    "Total async audit batches written.",
  ),
  asyncBatchSize: spec(
    "go",
    "mcp_audit_async_batch_size",
    "histogram",
    [],
    "Number of audit entries per async storage batch.",
    BATCH_SIZES,
  ),
  asyncQueueDepth: spec(
    "go",
    "mcp_audit_async_queue_depth",
    "gauge",
    [],
    "Current number of queued async audit entries.",
  ),
  asyncQueueCapacity: spec(
    "go",
    "mcp_audit_async_queue_capacity",
    "gauge",
    [],
    "Maximum number of queued async audit entries.",
  ),
} as const;

/** The six health metrics of one OpenTelemetry export (go-contract §1.2 for traces). */
export interface ExportSpecs {
  readonly requests: MetricSpec;
  readonly items: MetricSpec;
  readonly duration: MetricSpec;
  readonly dropped: MetricSpec;
  readonly queueDepth: MetricSpec;
  readonly queueCapacity: MetricSpec;
}

/** The Go tool's trace-export health metrics. */
export const OTEL_TRACES: ExportSpecs = {
  requests: spec(
    "go",
    "mcp_audit_otel_export_requests_total",
    "counter",
    ["status"],
    "Total OTLP trace export requests.",
  ),
  items: spec(
    "go",
    "mcp_audit_otel_spans_total",
    "counter",
    ["status"],
    "Total OTLP spans by export outcome.",
  ),
  duration: spec(
    "go",
    "mcp_audit_otel_export_duration_seconds",
    "histogram",
    ["status"],
    "OTLP trace export request duration in seconds.",
    EXPORT_SECONDS,
  ),
  dropped: spec(
    "go",
    "mcp_audit_otel_spans_dropped_total",
    "counter",
    ["reason"],
    "Total OTLP spans dropped before successful export.",
  ),
  queueDepth: spec(
    "go",
    "mcp_audit_otel_queue_depth",
    "gauge",
    [],
    "Current number of queued OTLP spans.",
  ),
  queueCapacity: spec(
    "go",
    "mcp_audit_otel_queue_capacity",
    "gauge",
    [],
    "Maximum number of queued OTLP spans.",
  ),
};

/** The same six for the log-record export (`otel.logs`), which the Go tool does not have. */
export const OTEL_LOGS: ExportSpecs = {
  requests: spec(
    "added",
    "mcp_audit_otel_log_export_requests_total",
    "counter",
    ["status"],
    "Total OTLP log export requests.",
  ),
  items: spec(
    "added",
    "mcp_audit_otel_log_records_total",
    "counter",
    ["status"],
    "Total OTLP log records by export outcome.",
  ),
  duration: spec(
    "added",
    "mcp_audit_otel_log_export_duration_seconds",
    "histogram",
    ["status"],
    "OTLP log export request duration in seconds.",
    EXPORT_SECONDS,
  ),
  dropped: spec(
    "added",
    "mcp_audit_otel_log_records_dropped_total",
    "counter",
    ["reason"],
    "Total OTLP log records dropped before successful export.",
  ),
  queueDepth: spec(
    "added",
    "mcp_audit_otel_log_queue_depth",
    "gauge",
    [],
    "Current number of queued OTLP log records.",
  ),
  queueCapacity: spec(
    "added",
    "mcp_audit_otel_log_queue_capacity",
    "gauge",
    [],
    "Maximum number of queued OTLP log records.",
  ),
};

/** Metrics the Go tool does not have. */
export const ADDED = {
  requestDuration: spec(
    "added",
    "mcp_audit_request_duration_seconds",
    "histogram",
    ["transport", "method", "tool_name", "status"],
    "Time from a request to its answer as the proxy saw them, in seconds, by how it ended (ok, rpc_error, tool_error).",
    REQUEST_SECONDS,
  ),
  chainSeq: spec(
    "added",
    "mcp_audit_chain_seq",
    "gauge",
    [],
    "Sequence number of the last audit record this process stored.",
  ),
  records: spec(
    "added",
    "mcp_audit_records_total",
    "counter",
    ["kind"],
    "Total audit records this process stored, by record kind.",
  ),
  guardrailDecisions: spec(
    "added",
    "mcp_audit_guardrail_decisions_total",
    "counter",
    ["method", "action", "by"],
    "Total guardrail decisions recorded, by method, action and deciding guardrail.",
  ),
  toolPinChanges: spec(
    "added",
    "mcp_audit_tool_pin_changes_total",
    "counter",
    ["change"],
    "Total tool definitions found added, changed or removed since they were pinned.",
  ),
  configReloads: spec(
    "added",
    "mcp_audit_config_reloads_total",
    "counter",
    ["trigger", "outcome"],
    "Total configuration reloads, by what started them and their outcome.",
  ),
  httpSessionsOpen: spec(
    "added",
    "mcp_audit_http_sessions_open",
    "gauge",
    [],
    "Current number of open HTTP sessions.",
  ),
  upstreamStarts: spec(
    "added",
    "mcp_audit_upstream_processes_started_total",
    "counter",
    [],
    "Total upstream server processes started.",
  ),
  upstreamExits: spec(
    "added",
    "mcp_audit_upstream_process_exits_total",
    "counter",
    ["outcome"],
    "Total upstream server processes ended, by how they ended (clean, error, signal).",
  ),
} as const;

/** The client_golang process collector's Linux set, same names and help texts. */
export const PROCESS = {
  cpu: spec(
    "process",
    "process_cpu_seconds_total",
    "counter",
    [],
    "Total user and system CPU time spent in seconds.",
  ),
  openFds: spec("process", "process_open_fds", "gauge", [], "Number of open file descriptors."),
  maxFds: spec(
    "process",
    "process_max_fds",
    "gauge",
    [],
    "Maximum number of open file descriptors.",
  ),
  virtualMemory: spec(
    "process",
    "process_virtual_memory_bytes",
    "gauge",
    [],
    "Virtual memory size in bytes.",
  ),
  virtualMemoryMax: spec(
    "process",
    "process_virtual_memory_max_bytes",
    "gauge",
    [],
    "Maximum amount of virtual memory available in bytes.",
  ),
  residentMemory: spec(
    "process",
    "process_resident_memory_bytes",
    "gauge",
    [],
    "Resident memory size in bytes.",
  ),
  startTime: spec(
    "process",
    "process_start_time_seconds",
    "gauge",
    [],
    "Start time of the process since unix epoch in seconds.",
  ),
  networkReceive: spec(
    "process",
    "process_network_receive_bytes_total",
    "counter",
    [],
    "Number of bytes received by the process over the network.",
  ),
  networkTransmit: spec(
    "process",
    "process_network_transmit_bytes_total",
    "counter",
    [],
    "Number of bytes sent by the process over the network.",
  ),
} as const;

/** The Deno runtime's own metrics (`metrics.include_go_metrics`). */
export const RUNTIME = {
  heapUsed: spec(
    "runtime",
    "deno_memory_heap_used_bytes",
    "gauge",
    [],
    "V8 heap memory in use, in bytes.",
  ),
  heapTotal: spec(
    "runtime",
    "deno_memory_heap_total_bytes",
    "gauge",
    [],
    "V8 heap memory reserved, in bytes.",
  ),
  external: spec(
    "runtime",
    "deno_memory_external_bytes",
    "gauge",
    [],
    "Memory of objects outside the V8 heap bound to JavaScript objects, in bytes.",
  ),
  loopLag: spec(
    "runtime",
    "deno_event_loop_lag_seconds",
    "gauge",
    [],
    "How late the last event-loop probe timer fired, in seconds.",
  ),
  loopDelay: spec(
    "runtime",
    "deno_event_loop_delay_seconds",
    "histogram",
    [],
    "How late event-loop probe timers fired, in seconds.",
    LOOP_DELAY_SECONDS,
  ),
  info: spec(
    "runtime",
    "deno_info",
    "gauge",
    ["version", "v8"],
    "Deno runtime version; always 1.",
  ),
} as const;

/** Every metric family, in the order they are registered. */
export const ALL_METRICS: readonly MetricSpec[] = [
  ...Object.values(GO),
  ...Object.values(OTEL_TRACES),
  ...Object.values(OTEL_LOGS),
  ...Object.values(ADDED),
  ...Object.values(PROCESS),
  ...Object.values(RUNTIME),
];

/** A spec's labels with or without the tool-name label. */
export function labelsOf(s: MetricSpec, toolLabels: boolean): readonly string[] {
  return toolLabels ? s.labels : s.labels.filter((l) => l !== TOOL_LABEL);
}
