/**
 * The OpenTelemetry export (`otel.*`): spans for exchanges and, with `otel.logs: true`, every
 * audit record as a log record, sent over OTLP/HTTP to a collector.
 *
 * Built from the official SDK: the `@opentelemetry/sdk-trace` tracer provider and the
 * `@opentelemetry/sdk-logs` logger provider make the spans and log records, and the
 * `@opentelemetry/otlp-exporter-base` delegate with the `@opentelemetry/otlp-transformer`
 * serializers (JSON or protobuf) encodes them. Ours are the queue (bounded, never blocking, drained
 * with a deadline) and the HTTP transport (URL, headers, gzip, timeout, the Go tool's retries).
 *
 * It hangs on the audit log's record observer, after each stored batch: nothing here is on the
 * path of a forwarded message or an audit write, and nothing here throws into its caller.
 *
 * @example
 * ```ts
 * import { startOtel } from "./otel.ts";
 * // const otel = startOtel({ config: config.otel, fetch, health, logger, version, storage, upstream });
 * // log.observe((batch) => otel.records(batch));
 * // … after the audit log is closed:
 * // await otel.shutdown();
 * ```
 *
 * @module
 */
import { resourceFromAttributes } from "@opentelemetry/resources";
import { AlwaysOnSampler, type ReadableSpan, TracerProvider } from "@opentelemetry/sdk-trace";
import { LoggerProvider, type ReadableLogRecord } from "@opentelemetry/sdk-logs";
import type { Logger as OtelLogger } from "@opentelemetry/api-logs";
import type { Attributes } from "@opentelemetry/api";
import { type ExportResult, ExportResultCode } from "@opentelemetry/core";
import {
  createOtlpNetworkExportDelegate,
  ExporterMetrics,
  OTLPExporterBase,
} from "@opentelemetry/otlp-exporter-base";
import {
  type ISerializer,
  JsonLogsSerializer,
  JsonTraceSerializer,
  LogsExporterMetricsHelper,
  ProtobufLogsSerializer,
  ProtobufTraceSerializer,
  TraceExporterMetricsHelper,
} from "@opentelemetry/otlp-transformer";
import type { Config } from "../config/config.ts";
import type { StoredRecord } from "../audit/storage/store.ts";
import type { Logger } from "../log.ts";
import type { DropReason, ExportHealth, ExportSignal } from "./export_health.ts";
import {
  attributesWeight,
  ExportQueue,
  logRecordWeight,
  QueueLogRecordProcessor,
  QueueSpanProcessor,
  type SendOutcome,
  spanWeight,
  textWeight,
} from "./export_queue.ts";
import {
  loggableUrl,
  OtelConfigError,
  OtlpExportError,
  type OtlpFetch,
  OtlpHttpTransport,
  otlpUrl,
} from "./otlp_transport.ts";
import { ExchangeSpans, SPAN_TEXT_LIMIT } from "./spans.ts";
import { auditLogRecord } from "./log_records.ts";

export { OtelConfigError };

/** What `main.ts` gives the export. */
export interface OtelOptions {
  config: Config["otel"];
  /** Built from `otel.tls.*`. */
  fetch: OtlpFetch;
  health: ExportHealth;
  logger: Logger;
  /** `service.version`, and the `User-Agent`'s version. */
  version: string;
  storage: "jsonl" | "sqlite";
  /** `proxy.upstream` when it is a URL (`server.address` / `server.port`), else null. */
  upstream: string | null;
}

/** The running export. */
export interface Otel {
  /** Given to `log.observe`: the stored batch becomes spans and log records. Never throws. */
  records(batch: readonly StoredRecord[]): void;
  /** Exports what is queued, waiting at most `otel.shutdown_timeout_ms`. Never throws. */
  shutdown(): Promise<void>;
}

/** The instrumentation scope of every span and log record. */
const SCOPE = "mcp-audit";
/**
 * Log records carry whole lines: at most this many bytes of them wait (by an upper bound of their
 * encoded size, {@linkcode logRecordWeight})…
 */
const LOG_QUEUE_MAX_BYTES = 64 * 1024 * 1024;
/** …and of spans, whose every text is cut to `SPAN_TEXT_LIMIT` ({@linkcode spanWeight}). */
const SPAN_QUEUE_MAX_BYTES = 16 * 1024 * 1024;
/**
 * One request carries at most this many bytes, resource included (the Collector's default limit
 * is larger), but for a single log record larger than this, which goes alone.
 */
const REQUEST_MAX_BYTES = 4 * 1024 * 1024;

/**
 * Starts the export: checks the endpoint and headers (throws {@linkcode OtelConfigError}), builds
 * the providers, and returns the observer to hang on the audit log.
 */
export function startOtel(options: OtelOptions): Otel {
  const c = options.config;
  const tracesUrl = otlpUrl(c.endpoint, "traces");
  const logsUrl = otlpUrl(c.endpoint, "logs");
  const attributes = resourceAttributes(c.service_name, options.version);
  const resource = resourceFromAttributes(attributes);
  // What a request carries besides its items: the resource, the scope, the field names.
  const envelope = 2048 + attributesWeight(attributes) + textWeight(SCOPE) +
    textWeight(options.version);
  const maxBatchBytes = Math.max(1, REQUEST_MAX_BYTES - envelope);

  const traces = exportPipeline<ReadableSpan>(options, "traces", tracesUrl, {
    serializer: c.protocol === "http/protobuf" ? ProtobufTraceSerializer : JsonTraceSerializer,
    metricsHelper: TraceExporterMetricsHelper,
    componentType: "otlp_http_span_exporter",
    weigh: spanWeight,
    maxBytes: SPAN_QUEUE_MAX_BYTES,
    maxBatchBytes,
  });
  const spanProcessor = new QueueSpanProcessor(traces);
  const tracerProvider = new TracerProvider({
    resource,
    // Every exchange is exported, as the Go tool did, even in a trace its caller does not sample:
    // these spans point at signed records, and a collector can still sample them.
    sampler: new AlwaysOnSampler(),
    // ExchangeSpans cuts every text it sets, with a marker; this catches anything it would miss.
    spanLimits: { attributeValueLengthLimit: SPAN_TEXT_LIMIT },
    spanProcessors: [spanProcessor],
  });
  const spans = new ExchangeSpans({
    tracer: tracerProvider.getTracer(SCOPE, options.version),
    methods: c.methods,
    storage: options.storage,
    upstream: options.upstream,
    logger: options.logger,
  });

  let loggerProvider: LoggerProvider | null = null;
  let auditLogger: OtelLogger | null = null;
  if (c.logs) {
    const logs = exportPipeline<ReadableLogRecord>(options, "logs", logsUrl, {
      serializer: c.protocol === "http/protobuf" ? ProtobufLogsSerializer : JsonLogsSerializer,
      metricsHelper: LogsExporterMetricsHelper,
      componentType: "otlp_http_log_exporter",
      weigh: logRecordWeight,
      maxBytes: LOG_QUEUE_MAX_BYTES,
      maxBatchBytes,
    });
    loggerProvider = new LoggerProvider({
      resource,
      // The body is the line (bodies are never cut by limits); auditLogRecord cuts the
      // attributes a client or server chose. No limit may cut the evidence.
      logRecordLimits: { attributeValueLengthLimit: Infinity },
      processors: [new QueueLogRecordProcessor(logs)],
    });
    auditLogger = loggerProvider.getLogger(SCOPE, options.version);
  }

  options.logger.info("otel export started", {
    traces: loggableUrl(tracesUrl),
    logs: c.logs ? loggableUrl(logsUrl) : null,
    protocol: c.protocol,
    compression: c.compression,
    methods: c.methods,
  });

  let failures = 0;
  let shutdown: Promise<void> | undefined;
  return {
    records(batch) {
      try {
        const before = spans.evicted;
        for (const stored of batch) {
          const context = spans.record(stored.record);
          auditLogger?.emit(auditLogRecord(stored, context));
        }
        spans.reportEvictions(before);
      } catch (e) {
        // A bug here must cost telemetry, never the audit log that calls us.
        if (failures++ === 0) {
          options.logger.error("otel: a batch of records could not be turned into telemetry", {
            error: e instanceof Error ? e.message : String(e),
          });
        }
      }
    },
    shutdown() {
      shutdown ??= (async () => {
        const pending = spans.pending;
        if (pending > 0) {
          options.logger.info("otel: requests still unanswered at shutdown get no span", {
            pending,
          });
        }
        await Promise.all([
          tracerProvider.shutdown().catch(() => {}),
          loggerProvider?.shutdown().catch(() => {}),
        ]);
      })();
      return shutdown;
    },
  };
}

/** `service.name`, `service.version`, `host.name` (when permitted), `process.pid`. */
function resourceAttributes(serviceName: string, version: string): Attributes {
  const a: Attributes = { "service.name": serviceName, "service.version": version };
  const host = hostName();
  if (host !== null) a["host.name"] = host;
  a["process.pid"] = Deno.pid;
  return a;
}

/** The host name, if `--allow-sys=hostname` grants it; never prompts. */
function hostName(): string | null {
  try {
    if (Deno.permissions.querySync({ name: "sys", kind: "hostname" }).state !== "granted") {
      return null;
    }
    return Deno.hostname();
  } catch {
    return null;
  }
}

interface PipelineParts<T> {
  serializer: ISerializer<T[], unknown>;
  metricsHelper: ConstructorParameters<typeof ExporterMetrics<T[]>>[0]["metricsHelper"];
  componentType: string;
  /** An upper bound of an item's bytes in a request. */
  weigh: (item: T) => number;
  /** At most this many bytes wait. */
  maxBytes: number;
  /** At most this many bytes of items go in one request; one item alone always goes. */
  maxBatchBytes: number;
}

/** One signal's queue → official delegate (encoding) → our transport. */
function exportPipeline<T>(
  options: OtelOptions,
  signal: ExportSignal,
  url: URL,
  parts: PipelineParts<T>,
): ExportQueue<T> {
  const c = options.config;
  const stop = new AbortController();
  const transport = new OtlpHttpTransport({
    signal,
    url,
    protocol: c.protocol,
    compression: c.compression,
    headers: c.headers,
    userAgent: `mcp-audit/${options.version}`,
    timeoutMs: c.timeout_ms,
    retry: c.retry,
    fetch: options.fetch,
    health: options.health,
    logger: options.logger,
    stop: stop.signal,
  });
  const metrics = new ExporterMetrics<T[]>({
    componentType: parts.componentType,
    metricsHelper: parts.metricsHelper,
    url: loggableUrl(url),
    // Ours are the mcp_audit_otel_* metrics, fed by the transport and the queue.
    meterProvider: undefined,
    responseAttributesFromError: () => ({}),
  });
  const exporter = new OTLPExporterBase<T[]>(
    createOtlpNetworkExportDelegate(
      // Compression is the transport's; one export in flight per signal.
      { timeoutMillis: c.timeout_ms, concurrencyLimit: 1, compression: "none" },
      parts.serializer,
      metrics,
      transport,
    ),
  );
  return new ExportQueue<T>({
    signal,
    capacity: c.queue_size,
    batchSize: c.batch_size,
    flushIntervalMs: c.flush_interval_ms,
    shutdownTimeoutMs: c.shutdown_timeout_ms,
    stop,
    health: options.health,
    logger: options.logger,
    send: (batch: T[]) => exportBatch(exporter, transport, batch, options.logger),
    weigh: parts.weigh,
    maxBytes: parts.maxBytes,
    maxBatchBytes: parts.maxBatchBytes,
  });
}

function exportBatch<T>(
  exporter: OTLPExporterBase<T[]>,
  transport: OtlpHttpTransport,
  batch: T[],
  logger: Logger,
): Promise<SendOutcome> {
  return new Promise((resolve) => {
    transport.carrying(batch.length);
    try {
      exporter.export(batch, (result) => resolve(outcomeOf(result)));
    } catch (e) {
      logger.warn("otel: a batch could not be encoded", {
        items: batch.length,
        error: e instanceof Error ? e.message : String(e),
      });
      resolve({ kind: "failed", reason: "encode_error" });
    }
  });
}

function outcomeOf(result: ExportResult): SendOutcome {
  if (result.code === ExportResultCode.SUCCESS) return { kind: "sent" };
  const error = result.error;
  let reason: DropReason = "encode_error";
  if (error instanceof OtlpExportError) {
    switch (error.kind) {
      case "error":
      case "permanent_error":
      case "encode_error":
      case "shutdown":
        reason = error.kind;
        break;
      default: {
        const never: never = error.kind;
        reason = never;
      }
    }
  }
  return { kind: "failed", reason };
}
