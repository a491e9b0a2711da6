/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
/**
 * The telemetry worker: the metrics and the OpenTelemetry export run here, on their own thread,
 * so that what they cost (label hashing, span building, OTLP encoding, HTTP requests) is never
 * paid by the thread that forwards messages. The main thread sends each stored batch's lines and
 * each store attempt; scrapes are asked for by message and answered with the rendered text.
 *
 * @module
 */
import { parseRecord } from "../audit/storage/jsonl_query.ts";
import type { StoredRecord } from "../audit/storage/store.ts";
import { type Logger, stderrLogger } from "../log.ts";
import { NO_EXPORT_HEALTH } from "./export_health.ts";
import { Metrics } from "./metrics.ts";
import type { Otel } from "./otel.ts";
import { countsFrom } from "./proxy_stats.ts";
import type { FromWorker, LogSnapshot, TelemetryStart, ToWorker } from "./worker_protocol.ts";

function send(message: FromWorker): void {
  self.postMessage(message);
}

let metrics: Metrics | undefined;
let otel: Otel | undefined;
// What the last scrape request said of the main thread's counters; read by the metrics.
let log: LogSnapshot = { queued: 0, queueCapacity: 0, backpressure: 0 };
let counts = countsFrom({ retries: [], upstreamStarts: 0, upstreamExits: [], sessionsOpen: 0 });
let progress = new Int32Array(new SharedArrayBuffer(8));

async function start(s: TelemetryStart): Promise<void> {
  const logger = stderrLogger(s.logLevel);
  try {
    if (s.metrics !== null) {
      metrics = new Metrics(s.metrics, {
        log: {
          get queued() {
            return log.queued;
          },
          get queueCapacity() {
            return log.queueCapacity;
          },
          get backpressure() {
            return log.backpressure;
          },
        },
        stats: {
          get retries() {
            return counts.retries;
          },
          get upstreamStarts() {
            return counts.upstreamStarts;
          },
          get upstreamExits() {
            return counts.upstreamExits;
          },
          sessionsOpen: () => counts.sessionsOpen(),
        },
      }, logger);
    }
    if (s.otel !== null) await startExport(s.otel, logger);
    send({ kind: "started" });
  } catch (e) {
    if (e instanceof KeyedStartError) {
      send({ kind: "start_failed", key: e.key, problem: e.problem });
    } else {
      const problem = e instanceof Error ? e.message : String(e);
      send({ kind: "start_failed", key: null, problem });
    }
  }
}

/** A start refused for a setting, by its key. */
class KeyedStartError extends Error {
  override name = "KeyedStartError";
  constructor(readonly key: string, readonly problem: string) {
    super(`${key}: ${problem}`);
  }
}

/**
 * Starts the OpenTelemetry export. Its modules (the SDK's, and the TLS helpers) are loaded only
 * here: a worker that serves metrics alone never loads them.
 * @throws {KeyedStartError} for a setting the export or its TLS refuses
 */
async function startExport(o: NonNullable<TelemetryStart["otel"]>, logger: Logger): Promise<void> {
  const [{ upstreamTls, UpstreamTlsError }, { OtelConfigError, startOtel }] = await Promise.all([
    import("../transport/http/upstream_tls.ts"),
    import("./otel.ts"),
  ]);
  try {
    const tls = await upstreamTls(o.config.tls, {
      warn: (msg, fields) => logger.warn(msg, fields),
      keyPrefix: "otel.tls",
    });
    otel = startOtel({
      config: o.config,
      fetch: tls.fetch,
      health: metrics ?? NO_EXPORT_HEALTH,
      logger,
      version: o.version,
      storage: o.storage,
      upstream: o.upstream,
    });
  } catch (e) {
    if (e instanceof OtelConfigError || e instanceof UpstreamTlsError) {
      throw new KeyedStartError(e.key, e.problem);
    }
    throw e;
  }
}

function records(lines: string[]): void {
  const batch: StoredRecord[] = [];
  let chars = 0;
  for (const line of lines) {
    chars += line.length;
    const record = parseRecord(line);
    if (record !== null) batch.push({ line, record });
  }
  metrics?.records(batch);
  otel?.records(batch);
  Atomics.add(progress, 0, lines.length);
  Atomics.add(progress, 1, chars);
}

async function scrape(m: Extract<ToWorker, { kind: "scrape" }>): Promise<void> {
  if (metrics === undefined) {
    send({ kind: "scrape_failed", id: m.id, error: "metrics are off" });
    return;
  }
  log = m.log;
  counts = countsFrom(m.counts);
  try {
    const { body, contentType } = await metrics.scrape(m.accept);
    send({ kind: "scraped", id: m.id, body, contentType });
  } catch (e) {
    send({ kind: "scrape_failed", id: m.id, error: e instanceof Error ? e.message : String(e) });
  }
}

async function shutdown(): Promise<void> {
  await otel?.shutdown();
  await metrics?.shutdown().catch(() => {});
  send({ kind: "stopped" });
}

self.onmessage = (event: MessageEvent<ToWorker>) => {
  const m = event.data;
  switch (m.kind) {
    case "start":
      progress = new Int32Array(m.progress);
      void start(m.start);
      return;
    case "records":
      records(m.lines);
      if (m.reports.length > 0) metrics?.writes(m.reports);
      return;
    case "scrape":
      void scrape(m);
      return;
    case "shutdown":
      void shutdown();
      return;
    default: {
      const never: never = m;
      throw new Error(`unknown message ${JSON.stringify(never)}`);
    }
  }
};
