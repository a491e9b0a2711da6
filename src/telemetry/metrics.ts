/**
 * The Prometheus metrics: the OpenTelemetry metrics SDK's `MeterProvider`, read by its Prometheus
 * exporter (never started as a server: {@link Metrics.scrape} renders on demand), fed off the hot
 * path by the audit log's observers — each stored batch of records, each store attempt — and by
 * the OTLP export's health reports. Gauges and transport counters are read at scrape time.
 *
 * What a record counts for, as the Go tool counted its entries:
 * - `mcp_audit_entries_total`: each answer (`response`, `error`) and notification; a request is
 *   counted once, by its answer (Go wrote one entry per exchange), and an `invalid` message not at
 *   all: the Go tool never wrote one, and the proxy's `-32600` answer to it is its entry.
 * - `mcp_audit_tool_calls_total`, `mcp_audit_request_duration_seconds`: answers to requests.
 * - `mcp_audit_policy_decisions_total`, `mcp_audit_rate_limit_rejections_total`: request records
 *   with a decision; `mcp_audit_guardrail_decisions_total`: any record with one.
 * - events: pin changes (`audit/tools_changed`) and reloads (`audit/reload`).
 *
 * @module
 */
import type { Counter, Histogram, Meter, Observable } from "@opentelemetry/api";
import { ValueType } from "@opentelemetry/api";
import {
  AggregationTemporality,
  DataPointType,
  type HistogramMetricData,
  MeterProvider,
  type ResourceMetrics,
} from "@opentelemetry/sdk-metrics";
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus";
import type { WriteReport } from "../audit/chain.ts";
import type { AuditRecord, Decision } from "../audit/record.ts";
import type { StoredRecord } from "../audit/storage/store.ts";
import { isJsonObject, type JsonValue } from "../jsonrpc/json.ts";
import type { Logger } from "../log.ts";
import type {
  AttemptStatus,
  DropReason,
  ExportHealth,
  ExportSignal,
  QueueReading,
} from "./export_health.ts";
import { CONTENT_TYPE, negotiate, toOpenMetrics } from "./exposition.ts";
import { BoundedLabel, isPlainId, methodLabel, oneOf, ToolLabels } from "./labels.ts";
import {
  ADDED,
  type ExportSpecs,
  GO,
  type MetricSpec,
  OTEL_LOGS,
  OTEL_TRACES,
  RUNTIME,
  TOOL_LABEL,
} from "./metric_names.ts";
import type { ProxyCounts } from "./proxy_stats.ts";
import { ProcessSampler, registerProcessMetrics } from "./process_metrics.ts";
import { RuntimeMetrics } from "./runtime_metrics.ts";

/** `metrics.*` and what else the metrics are labelled with. */
export interface MetricsOptions {
  /** `metrics.tool_labels`: label series by tool name. */
  toolLabels: boolean;
  /**
   * `metrics.max_tool_labels`: distinct tool names labelled by name, the server's listed tools
   * first (see {@link ToolLabels}); the others are `other`.
   */
  maxToolLabels: number;
  /** `metrics.include_process_metrics`. */
  includeProcess: boolean;
  /** `metrics.include_go_metrics`: the Deno runtime's own metrics (`deno_*`). */
  includeRuntime: boolean;
  /** The storage backend, the `backend` label. */
  backend: "jsonl" | "sqlite";
  /** `otel.queue_size` when the OTLP export is on, else 0: the span queue's capacity. */
  otelQueueCapacity: number;
}

/** What the metrics read at scrape time. */
export interface MetricSources {
  log: { readonly queued: number; readonly queueCapacity: number; readonly backpressure: number };
  stats: ProxyCounts;
}

/** Raised when metrics cannot be collected. */
export class MetricsError extends Error {
  override name = "MetricsError";
}

/** Distinct client ids labelled by name. */
export const MAX_CLIENT_IDS = 200;

const TRANSPORTS: ReadonlySet<string> = new Set(["stdio", "http"]);
const DIRECTIONS: ReadonlySet<string> = new Set(["client_to_server", "server_to_client"]);
const PIN_CHANGES: ReadonlySet<string> = new Set(["added", "changed", "removed"]);
const RELOAD_TRIGGERS: ReadonlySet<string> = new Set(["signal", "file"]);
const RELOAD_OUTCOMES: ReadonlySet<string> = new Set(["applied", "unchanged", "rejected"]);
const NONE: ReadonlySet<string> = new Set();
const RETRY_REASON = /^(network|[1-5][0-9][0-9])$/;

/** One export's instruments. */
interface ExportInstruments {
  requests: Counter;
  items: Counter;
  duration: Histogram;
  dropped: Counter;
  read: (() => QueueReading) | undefined;
}

// No instrument is given a `unit`: the serializer would write a `# UNIT` line, which text format
// 0.0.4 does not have. Counter names all end in `_total` (a golden test checks it), so the
// serializer, which appends `_total` to a counter without it, never renames one.
function counter(meter: Meter, s: MetricSpec): Counter {
  return meter.createCounter(s.name, { description: s.help });
}

function histogram(meter: Meter, s: MetricSpec): Histogram {
  return meter.createHistogram(s.name, {
    description: s.help,
    advice: { explicitBucketBoundaries: [...(s.buckets ?? [])] },
  });
}

/** The guardrail a decision came from, and what it did, as `guardrail_decisions` labels them. */
function decisionLabels(d: Decision): { action: string; by: string } {
  switch (d.action) {
    case "deny":
      return {
        action: d.enforced === false ? "monitored_deny" : "deny",
        by: d.by === "pinning" ? "pinning" : "policy",
      };
    case "rate_limited":
      return { action: "rate_limited", by: "rate_limit" };
    case "allow":
    case "filter":
      return { action: d.action, by: d.by === "pinning" ? "pinning" : "policy" };
    default: {
      const never: never = d.action;
      return { action: oneOf(never, NONE), by: "policy" };
    }
  }
}

function isToolError(result: JsonValue): boolean {
  return isJsonObject(result) && result.isError === true;
}

/**
 * Every metric of the proxy.
 *
 * @example
 * ```ts ignore
 * const metrics = new Metrics(options, { log, stats }, logger);
 * log.observe((batch) => metrics.records(batch));
 * log.observeWrites((reports) => metrics.writes(reports));
 * const { body, contentType } = await metrics.scrape(request.headers.get("accept"));
 * ```
 */
export class Metrics implements ExportHealth {
  #opts: MetricsOptions;
  #provider: MeterProvider;
  #exporter: PrometheusExporter;
  #serializer = new PrometheusSerializer("", false, undefined, true, true);
  #runtime: RuntimeMetrics | undefined;
  #tools: ToolLabels;
  #clients = new BoundedLabel(MAX_CLIENT_IDS, isPlainId);
  #seq = 0;
  /** Label-less histograms shown at zero before their first observation (as client_golang). */
  #zeroHistograms: MetricSpec[] = [GO.asyncBatchSize];

  #entries: Counter;
  #toolCalls: Counter;
  #policyDecisions: Counter;
  #rateLimitRejections: Counter;
  #storageWrites: Counter;
  #storageWriteDuration: Histogram;
  #asyncBatches: Counter;
  #asyncBatchSize: Histogram;
  #requestDuration: Histogram;
  #records: Counter;
  #guardrailDecisions: Counter;
  #pinChanges: Counter;
  #reloads: Counter;
  #exports: Record<ExportSignal, ExportInstruments>;

  constructor(options: MetricsOptions, sources: MetricSources, logger?: Logger) {
    this.#opts = options;
    this.#tools = new ToolLabels(options.maxToolLabels);
    this.#exporter = new PrometheusExporter({
      preventServerStart: true,
      withoutScopeInfo: true,
      withoutTargetInfo: true,
    });
    this.#provider = new MeterProvider({
      readers: [this.#exporter],
      // Our own bounds keep every metric far below this; it is set above their product so that
      // the SDK never folds series into an `otel_metric_overflow` one.
      views: [{
        instrumentName: "*",
        aggregationCardinalityLimit: Math.max(
          10_000,
          (options.maxToolLabels + 2) * (MAX_CLIENT_IDS + 2) + 1,
        ),
      }],
    });
    const meter = this.#provider.getMeter("mcp-audit");

    this.#entries = counter(meter, GO.entries);
    this.#toolCalls = counter(meter, GO.toolCalls);
    this.#policyDecisions = counter(meter, GO.policyDecisions);
    this.#rateLimitRejections = counter(meter, GO.rateLimitRejections);
    this.#storageWrites = counter(meter, GO.storageWrites);
    this.#storageWriteDuration = histogram(meter, GO.storageWriteDuration);
    this.#asyncBatches = counter(meter, GO.asyncBatches);
    this.#asyncBatchSize = histogram(meter, GO.asyncBatchSize);
    // Shown at 0 from the start, as the Go tool's label-less counters are.
    this.#asyncBatches.add(0);

    const { log, stats } = sources;
    const observe = (s: MetricSpec, read: (o: Observer) => void): void => {
      const o: Observable = s.type === "counter"
        ? meter.createObservableCounter(s.name, { description: s.help })
        : meter.createObservableGauge(s.name, { description: s.help });
      o.addCallback((result) => read((value, attributes) => result.observe(value, attributes)));
    };
    observe(GO.upstreamRetries, (o) => {
      for (const [reason, n] of stats.retries) {
        o(n, { reason: RETRY_REASON.test(reason) ? reason : oneOf(reason, NONE) });
      }
    });
    observe(GO.asyncBackpressure, (o) => o(log.backpressure));
    observe(GO.asyncQueueDepth, (o) => o(log.queueCapacity === 0 ? 0 : log.queued));
    observe(GO.asyncQueueCapacity, (o) => o(log.queueCapacity));

    this.#exports = {
      traces: this.#exportInstruments(meter, OTEL_TRACES, observe, options.otelQueueCapacity),
      logs: this.#exportInstruments(meter, OTEL_LOGS, observe, 0),
    };

    this.#requestDuration = histogram(meter, ADDED.requestDuration);
    observe(ADDED.chainSeq, (o) => o(this.#seq));
    this.#records = counter(meter, ADDED.records);
    this.#guardrailDecisions = counter(meter, ADDED.guardrailDecisions);
    this.#pinChanges = counter(meter, ADDED.toolPinChanges);
    this.#reloads = counter(meter, ADDED.configReloads);
    observe(ADDED.httpSessionsOpen, (o) => o(stats.sessionsOpen()));
    observe(ADDED.upstreamStarts, (o) => o(stats.upstreamStarts));
    observe(ADDED.upstreamExits, (o) => {
      for (const [outcome, n] of stats.upstreamExits) o(n, { outcome });
    });

    if (options.includeProcess) registerProcessMetrics(meter, new ProcessSampler(logger));
    if (options.includeRuntime) {
      this.#runtime = new RuntimeMetrics(meter);
      this.#zeroHistograms.push(RUNTIME.loopDelay);
    }
  }

  #exportInstruments(
    meter: Meter,
    specs: ExportSpecs,
    observe: (s: MetricSpec, read: (o: Observer) => void) => void,
    capacity: number,
  ): ExportInstruments {
    const ins: ExportInstruments = {
      requests: counter(meter, specs.requests),
      items: counter(meter, specs.items),
      duration: histogram(meter, specs.duration),
      dropped: counter(meter, specs.dropped),
      read: undefined,
    };
    const reading = (): QueueReading | undefined => {
      try {
        return ins.read?.();
      } catch {
        return undefined;
      }
    };
    observe(specs.queueDepth, (o) => o(reading()?.depth ?? 0));
    observe(specs.queueCapacity, (o) => o(reading()?.capacity ?? capacity));
    return ins;
  }

  #tool(name: string | null): Record<string, string> {
    return this.#opts.toolLabels ? { [TOOL_LABEL]: this.#tools.label(name) } : {};
  }

  /** Counts a stored batch of records; given to `log.observe`. */
  records(batch: readonly StoredRecord[]): void {
    for (const { record } of batch) this.#record(record);
  }

  #record(r: AuditRecord): void {
    if (r.seq > this.#seq) this.#seq = r.seq;
    this.#records.add(1, { kind: r.kind });
    const transport = oneOf(r.transport, TRANSPORTS);
    switch (r.kind) {
      case "response":
        this.#listedTools(r);
        this.#entry(r, transport);
        this.#answer(r, transport);
        break;
      case "error":
        this.#entry(r, transport);
        this.#answer(r, transport);
        break;
      case "notification":
        this.#entry(r, transport);
        break;
      case "invalid":
        // Counted by the proxy's answer to it, when it has one (records_total{kind} shows it).
        break;
      case "request":
        this.#request(r);
        break;
      case "event":
        this.#event(r);
        break;
      default: {
        const never: never = r.kind;
        throw new MetricsError(`unknown record kind ${String(never)}`);
      }
    }
    if (r.decision !== null) {
      this.#guardrailDecisions.add(1, {
        method: methodLabel(r.method),
        ...decisionLabels(r.decision),
      });
    }
  }

  #entry(r: AuditRecord, transport: string): void {
    this.#entries.add(1, {
      transport,
      direction: oneOf(r.direction, DIRECTIONS),
      method: methodLabel(r.method),
      status: r.error !== null ? "rpc_error" : "ok",
    });
  }

  /** The tool names of a server's `tools/list` answer (the stored copy), labelled first. */
  #listedTools(r: AuditRecord): void {
    if (!this.#opts.toolLabels || r.method !== "tools/list") return;
    if (r.direction !== "server_to_client" || !isJsonObject(r.result)) return;
    const tools = r.result.tools;
    if (!Array.isArray(tools)) return;
    const names: string[] = [];
    for (const t of tools) if (isJsonObject(t) && typeof t.name === "string") names.push(t.name);
    this.#tools.listed(names);
  }

  #answer(r: AuditRecord, transport: string): void {
    if (r.method === "tools/call") {
      this.#toolCalls.add(1, {
        transport,
        ...this.#tool(r.tool_name),
        status: r.error !== null ? "rpc_error" : "ok",
      });
    }
    if (r.duration_ms !== null) {
      const status = r.error !== null ? "rpc_error" : isToolError(r.result) ? "tool_error" : "ok";
      this.#requestDuration.record(r.duration_ms / 1000, {
        transport,
        method: methodLabel(r.method),
        ...(r.method === "tools/call" ? this.#tool(r.tool_name) : this.#tool(null)),
        status,
      });
    }
  }

  #request(r: AuditRecord): void {
    const d = r.decision;
    if (d === null) return;
    if (d.action === "rate_limited") {
      this.#rateLimitRejections.add(1, {
        client_id: this.#clients.label(r.client_id),
        ...this.#tool(r.tool_name),
      });
    } else if (
      r.method === "tools/call" && (d.action === "allow" || d.action === "deny") &&
      d.by === undefined
    ) {
      this.#policyDecisions.add(1, { action: d.action });
    }
  }

  #event(r: AuditRecord): void {
    const p = r.params;
    if (!isJsonObject(p)) return;
    if (r.method === "audit/tools_changed" && Array.isArray(p.changes)) {
      for (const c of p.changes) {
        this.#pinChanges.add(1, { change: oneOf(isJsonObject(c) ? c.change : null, PIN_CHANGES) });
      }
    } else if (r.method === "audit/reload") {
      this.#reloads.add(1, {
        trigger: oneOf(p.trigger, RELOAD_TRIGGERS),
        outcome: oneOf(p.outcome, RELOAD_OUTCOMES),
      });
    }
  }

  /** Counts store attempts; given to `log.observeWrites`. */
  writes(reports: readonly WriteReport[]): void {
    const backend = this.#opts.backend;
    for (const w of reports) {
      const attributes = { backend, mode: w.mode };
      this.#storageWrites.add(w.records, { ...attributes, status: w.ok ? "ok" : "error" });
      this.#storageWriteDuration.record(w.seconds, attributes);
      if (w.ok && w.mode === "async") {
        this.#asyncBatches.add(1);
        this.#asyncBatchSize.record(w.records);
      }
    }
  }

  attempt(signal: ExportSignal, status: AttemptStatus, items: number, seconds: number): void {
    // As the Go tool: a report about nothing is not counted.
    if (!(items > 0)) return;
    const e = this.#exports[signal];
    e.requests.add(1, { status });
    e.items.add(items, { status });
    e.duration.record(seconds, { status });
  }

  dropped(signal: ExportSignal, reason: DropReason, items: number): void {
    if (!(items > 0)) return;
    this.#exports[signal].dropped.add(items, { reason });
  }

  queue(signal: ExportSignal, read: () => QueueReading): void {
    this.#exports[signal].read = read;
  }

  /**
   * Renders every metric for an `Accept` header (null: text 0.0.4).
   * @throws {MetricsError} when they cannot be collected
   */
  async scrape(accept: string | null): Promise<{ body: string; contentType: string }> {
    let collected;
    try {
      collected = await this.#exporter.collect();
    } catch (e) {
      throw new MetricsError(`cannot collect metrics: ${e instanceof Error ? e.message : e}`, {
        cause: e,
      });
    }
    const { resourceMetrics, errors } = collected;
    if (errors.length > 0) {
      const e = errors[0];
      throw new MetricsError(`cannot collect metrics: ${e instanceof Error ? e.message : e}`, {
        cause: e,
      });
    }
    this.#fillZeroHistograms(resourceMetrics);
    const text = this.#serializer.serialize(resourceMetrics);
    const format = negotiate(accept);
    return {
      body: format === "openmetrics" ? toOpenMetrics(text) : text,
      contentType: CONTENT_TYPE[format],
    };
  }

  /**
   * The SDK leaves out an instrument nothing was recorded on; a label-less histogram the Go tool
   * shows with zero counts from the start is put in, as it would be after no observation.
   */
  #fillZeroHistograms(rm: ResourceMetrics): void {
    const present = new Set(
      rm.scopeMetrics.flatMap((s) => s.metrics.map((m) => m.descriptor.name)),
    );
    const missing = this.#zeroHistograms.filter((s) => !present.has(s.name));
    if (missing.length === 0) return;
    let scope = rm.scopeMetrics[0];
    if (scope === undefined) {
      scope = { scope: { name: "mcp-audit" }, metrics: [] };
      rm.scopeMetrics.push(scope);
    }
    const now = hrNow();
    for (const s of missing) scope.metrics.push(zeroHistogram(s, now));
  }

  /** Stops the runtime probe and the meter provider. */
  async shutdown(): Promise<void> {
    this.#runtime?.close();
    await this.#provider.shutdown();
  }
}

/** Reports one observation to an observable's result. */
type Observer = (value: number, attributes?: Record<string, string>) => void;

function hrNow(): [number, number] {
  const ms = Date.now();
  return [Math.floor(ms / 1000), (ms % 1000) * 1e6];
}

function zeroHistogram(s: MetricSpec, time: [number, number]): HistogramMetricData {
  const boundaries = [...(s.buckets ?? [])];
  return {
    descriptor: { name: s.name, description: s.help, unit: "", valueType: ValueType.DOUBLE },
    aggregationTemporality: AggregationTemporality.CUMULATIVE,
    dataPointType: DataPointType.HISTOGRAM,
    dataPoints: [{
      startTime: time,
      endTime: time,
      attributes: {},
      value: {
        buckets: { boundaries, counts: boundaries.map(() => 0).concat(0) },
        sum: 0,
        count: 0,
      },
    }],
  };
}
