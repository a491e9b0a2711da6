/**
 * A small "agent" for the observability example: it connects to mcp-audit over Streamable HTTP with
 * the MCP TypeScript SDK and makes a few calls per round — allowed ones, one the example policy
 * denies (`get-env`), a burst that the example rate limit refuses (`get-sum`), a call with bad
 * arguments and a slow one — so that every panel of the Grafana dashboard has something to show.
 *
 * Each call runs inside an agent span of its own, exported over OTLP/HTTP to the same collector as
 * the proxy's, and carries that span's W3C trace context in `params._meta.traceparent` (the MCP
 * convention). The proxy's span for the call is then a child of the agent's span: Jaeger shows
 * agent → proxy in one trace.
 *
 * ```sh
 * deno run --allow-net --allow-env examples/observability/load.ts \
 *   --url http://localhost:4422/mcp --otlp http://localhost:4318 --rounds 3
 * ```
 *
 * `--rounds 0` (the compose service's setting) runs until stopped, `--pause-ms` apart. Between
 * rounds it waits on a timer: this is a load generator, not a test.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { type Span, SpanKind, SpanStatusCode, type Tracer } from "@opentelemetry/api";
import { type ExportResult, ExportResultCode } from "@opentelemetry/core";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  BatchSpanProcessor,
  type ReadableSpan,
  type SpanExporter,
  TracerProvider,
} from "@opentelemetry/sdk-trace";
import { JsonTraceSerializer } from "@opentelemetry/otlp-transformer";

/** What one run does. */
export interface LoadOptions {
  /** The proxy's MCP endpoint. */
  url: string;
  /** The OTLP/HTTP endpoint (`/v1/traces` is appended); empty: no agent spans are exported. */
  otlp: string;
  /** Rounds of calls; 0: until the signal aborts. */
  rounds: number;
  /** Pause between rounds. */
  pauseMs: number;
  signal: AbortSignal;
}

/** What a run did, for the caller to check against the proxy's metrics and traces. */
export interface LoadReport {
  /** tools/call requests sent. */
  calls: number;
  /** Calls answered with a JSON-RPC error (refusals included) or a tool result with isError. */
  errors: number;
  /** The agent spans' ids, with the tool each one called (the first {@link MAX_SPANS}). */
  spans: { traceId: string; spanId: string; tool: string }[];
}

/** How many agent spans a report keeps: a run until stopped must not grow without end. */
export const MAX_SPANS = 10_000;

/** Posts finished agent spans as OTLP/JSON; a failure is reported to the SDK and otherwise ignored. */
class OtlpJsonExporter implements SpanExporter {
  #url: string;
  constructor(endpoint: string) {
    this.#url = endpoint.replace(/\/+$/, "") + "/v1/traces";
  }

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    const body = JsonTraceSerializer.serializeRequest(spans);
    if (body === undefined) return done({ code: ExportResultCode.FAILED });
    fetch(this.#url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: body.slice(),
      signal: AbortSignal.timeout(5000),
    }).then(
      async (response) => {
        await response.body?.cancel();
        done({ code: response.ok ? ExportResultCode.SUCCESS : ExportResultCode.FAILED });
      },
      (error: unknown) =>
        done({
          code: ExportResultCode.FAILED,
          error: error instanceof Error ? error : new Error(String(error)),
        }),
    );
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

/** One call the agent makes in each round. */
interface Step {
  tool: string;
  arguments: Record<string, unknown>;
}

const ROUND: readonly Step[] = [
  { tool: "echo", arguments: { message: "hello through mcp-audit" } },
  { tool: "get-structured-content", arguments: { location: "Chicago" } },
  { tool: "get-tiny-image", arguments: {} },
  // Denied by the example policy (-32030).
  { tool: "get-env", arguments: {} },
  // Five at once against a burst of 3: the last ones are refused (-32029).
  ...Array.from({ length: 5 }, (_, i) => ({ tool: "get-sum", arguments: { a: i, b: 1 } })),
  // Bad arguments: the server answers with an error.
  { tool: "echo", arguments: {} },
  // A slower call, for the latency panels.
  { tool: "trigger-long-running-operation", arguments: { duration: 1, steps: 2 } },
];

function traceparent(span: Span): string {
  const context = span.spanContext();
  const flags = context.traceFlags.toString(16).padStart(2, "0");
  return `00-${context.traceId}-${context.spanId}-${flags}`;
}

async function callStep(
  client: Client,
  tracer: Tracer,
  step: Step,
  report: LoadReport,
): Promise<void> {
  const span = tracer.startSpan(`agent calls ${step.tool}`, {
    kind: SpanKind.INTERNAL,
    attributes: { "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": step.tool },
  });
  const context = span.spanContext();
  if (report.spans.length < MAX_SPANS) {
    report.spans.push({ traceId: context.traceId, spanId: context.spanId, tool: step.tool });
  }
  report.calls++;
  try {
    const result = await client.callTool({
      name: step.tool,
      arguments: step.arguments,
      _meta: { traceparent: traceparent(span) },
    });
    if (result.isError === true) {
      report.errors++;
      span.setStatus({ code: SpanStatusCode.ERROR, message: "tool_error" });
    }
  } catch (error) {
    report.errors++;
    span.setStatus({
      code: SpanStatusCode.ERROR,
      message: error instanceof Error ? error.message : String(error),
    });
  } finally {
    span.end();
  }
}

async function round(url: string, tracer: Tracer, report: LoadReport): Promise<void> {
  const client = new Client({ name: "mcp-audit-observability-load", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  try {
    await client.listTools();
    const burst: Promise<void>[] = [];
    for (const step of ROUND) {
      // The get-sum burst goes out at once; everything else one after another.
      if (step.tool === "get-sum") burst.push(callStep(client, tracer, step, report));
      else {
        await Promise.all(burst.splice(0));
        await callStep(client, tracer, step, report);
      }
    }
    await Promise.all(burst);
  } finally {
    await client.close();
  }
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/**
 * Runs rounds of calls through the proxy. A round that fails to connect (the proxy still starting)
 * is retried after the pause, up to 30 times in a row.
 */
export async function runLoad(options: LoadOptions): Promise<LoadReport> {
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ "service.name": "demo-agent" }),
    spanProcessors: options.otlp === "" ? [] : [
      new BatchSpanProcessor({
        exporter: new OtlpJsonExporter(options.otlp),
        scheduledDelayMillis: 500,
      }),
    ],
  });
  const tracer = provider.getTracer("mcp-audit-observability-load");
  const report: LoadReport = { calls: 0, errors: 0, spans: [] };
  let failures = 0;
  try {
    for (let done = 0; options.rounds === 0 || done < options.rounds;) {
      if (options.signal.aborted) break;
      try {
        await round(options.url, tracer, report);
        failures = 0;
        done++;
      } catch (error) {
        if (++failures >= 30) throw error;
        console.error(`round ${done + 1}: ${error instanceof Error ? error.message : error}`);
      }
      const more = options.rounds === 0 || done < options.rounds;
      if (more) {
        await pause(
          failures > 0 ? Math.max(options.pauseMs, 1000) : options.pauseMs,
          options.signal,
        );
      }
    }
  } finally {
    await provider.shutdown();
  }
  return report;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      url: { type: "string", default: "http://localhost:4422/mcp" },
      otlp: { type: "string", default: "http://localhost:4318" },
      rounds: { type: "string", default: "1" },
      "pause-ms": { type: "string", default: "2000" },
    },
  });
  const controller = new AbortController();
  Deno.addSignalListener("SIGTERM", () => controller.abort());
  Deno.addSignalListener("SIGINT", () => controller.abort());
  const rounds = Number(values.rounds);
  const report = await runLoad({
    url: values.url,
    otlp: values.otlp,
    rounds,
    pauseMs: Number(values["pause-ms"]),
    signal: controller.signal,
  });
  // A counted run prints its spans too, for tests/prometheus_scrape_test.ts to find in the traces.
  const { calls, errors } = report;
  console.log(JSON.stringify(rounds === 0 ? { calls, errors } : report));
  // The signal listeners would keep the process alive.
  Deno.exit(0);
}
