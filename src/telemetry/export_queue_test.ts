import assert from "node:assert/strict";
import { SpanStatusCode } from "@opentelemetry/api";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { AlwaysOnSampler, type ReadableSpan, TracerProvider } from "@opentelemetry/sdk-trace";
import { LoggerProvider, type ReadableLogRecord } from "@opentelemetry/sdk-logs";
import {
  JsonLogsSerializer,
  JsonTraceSerializer,
  ProtobufLogsSerializer,
  ProtobufTraceSerializer,
} from "@opentelemetry/otlp-transformer";
import {
  attributesWeight,
  ExportQueue,
  type ExportQueueOptions,
  logRecordWeight,
  type SendOutcome,
  spanWeight,
  textWeight,
} from "./export_queue.ts";
import { Logger } from "../log.ts";
import { RecordingHealth } from "../../tests/fixtures/otlp_receiver.ts";

/**
 * A send function the test finishes by hand: each call waits until the test resolves it (or the
 * stop signal aborts it, as the transport does).
 */
class ManualSend {
  readonly batches: number[][] = [];
  readonly #resolvers: ((o: SendOutcome) => void)[] = [];
  #waiters: (() => void)[] = [];
  inFlight = 0;
  maxInFlight = 0;

  constructor(readonly stop: AbortController) {}

  send = (batch: number[]): Promise<SendOutcome> => {
    this.batches.push(batch);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    for (const wake of this.#waiters.splice(0)) wake();
    return new Promise<SendOutcome>((resolve) => {
      const done = (o: SendOutcome) => {
        this.stop.signal.removeEventListener("abort", onAbort);
        this.inFlight--;
        resolve(o);
      };
      const onAbort = () => done({ kind: "failed", reason: "shutdown" });
      this.stop.signal.addEventListener("abort", onAbort, { once: true });
      this.#resolvers.push(done);
    });
  };

  /** Ends the oldest export still running. */
  finish(outcome: SendOutcome = { kind: "sent" }): void {
    const done = this.#resolvers.shift();
    assert.ok(done !== undefined, "an export is running");
    done(outcome);
  }

  /** Waits for the n-th call. */
  async calls(n: number): Promise<void> {
    while (this.batches.length < n) await new Promise<void>((r) => this.#waiters.push(r));
  }
}

function queueWith(
  overrides: Partial<ExportQueueOptions<number>> = {},
): {
  queue: ExportQueue<number>;
  manual: ManualSend;
  health: RecordingHealth;
  lines: Record<string, unknown>[];
} {
  const stop = overrides.stop ?? new AbortController();
  const manual = new ManualSend(stop);
  const health = new RecordingHealth();
  const lines: Record<string, unknown>[] = [];
  const queue = new ExportQueue<number>({
    signal: "traces",
    capacity: 10,
    batchSize: 3,
    flushIntervalMs: 60_000,
    shutdownTimeoutMs: 60_000,
    send: manual.send,
    stop,
    health,
    logger: new Logger("debug", (line) => lines.push(JSON.parse(line))),
    ...overrides,
  });
  return { queue, manual, health, lines };
}

Deno.test("a full batch is sent at once, one batch in flight at a time, in order", async () => {
  const { queue, manual } = queueWith();
  for (let i = 1; i <= 7; i++) assert.ok(queue.push(i));
  await manual.calls(1);
  assert.deepEqual(manual.batches, [[1, 2, 3]]);
  assert.equal(queue.depth, 4);
  manual.finish();
  await manual.calls(2);
  assert.deepEqual(manual.batches[1], [4, 5, 6]);
  manual.finish();
  // One left: a partial batch waits for the flush interval, or shutdown.
  const done = queue.shutdown();
  await manual.calls(3);
  assert.deepEqual(manual.batches[2], [7]);
  manual.finish();
  await done;
  assert.equal(manual.maxInFlight, 1);
});

Deno.test("a partial batch is sent when the flush interval passes", async () => {
  const { queue, manual } = queueWith({ flushIntervalMs: 5 });
  queue.push(1);
  queue.push(2);
  await manual.calls(1);
  assert.deepEqual(manual.batches, [[1, 2]]);
  manual.finish();
  await queue.shutdown();
});

Deno.test("a full queue drops the new item, reports queue_full, never blocks, and logs once per episode", async () => {
  const { queue, manual, health, lines } = queueWith({ capacity: 4, batchSize: 2 });
  for (let i = 1; i <= 2; i++) queue.push(i);
  await manual.calls(1); // [1, 2] in flight; the queue holds the next ones
  for (let i = 3; i <= 6; i++) assert.ok(queue.push(i));
  assert.equal(queue.push(7), false);
  assert.equal(queue.push(8), false);
  assert.deepEqual(health.drops(), [
    { reason: "queue_full", items: 1 },
    { reason: "queue_full", items: 1 },
  ]);
  assert.deepEqual(health.queues.get("traces")?.(), { depth: 4, capacity: 4 });
  assert.equal(
    lines.filter((l) => l.msg === "otel queue full: dropping new items until it drains").length,
    1,
  );
  manual.finish();
  await manual.calls(2);
  assert.ok(queue.push(9));
  assert.equal(lines.find((l) => l.msg === "otel queue accepting again")?.dropped, 2);
  const done = queue.shutdown();
  manual.finish();
  await manual.calls(3);
  manual.finish();
  await manual.calls(4);
  manual.finish();
  await done;
  assert.deepEqual(manual.batches, [[1, 2], [3, 4], [5, 6], [9]]);
});

Deno.test("a failed batch is dropped with the reason its export gave", async () => {
  const { queue, manual, health } = queueWith();
  for (let i = 1; i <= 3; i++) queue.push(i);
  await manual.calls(1);
  manual.finish({ kind: "failed", reason: "permanent_error" });
  await queue.idle();
  assert.deepEqual(health.drops(), [{ reason: "permanent_error", items: 3 }]);
  await queue.shutdown();
});

Deno.test("a send that throws costs its batch (error), never the queue", async () => {
  const health = new RecordingHealth();
  let calls = 0;
  const queue = new ExportQueue<number>({
    signal: "logs",
    capacity: 10,
    batchSize: 2,
    flushIntervalMs: 60_000,
    shutdownTimeoutMs: 1000,
    send: () => {
      calls++;
      if (calls === 1) throw new Error("boom");
      return Promise.resolve({ kind: "sent" });
    },
    stop: new AbortController(),
    health,
    logger: new Logger("error", () => {}),
  });
  queue.push(1);
  queue.push(2);
  await queue.idle();
  queue.push(3);
  await queue.shutdown();
  assert.equal(calls, 2);
  assert.deepEqual(health.drops("logs"), [{ reason: "error", items: 2 }]);
});

Deno.test("shutdown drains every queued batch back to back, without waiting for the flush interval", async () => {
  const { queue, manual, health } = queueWith({ batchSize: 2 });
  queue.push(1);
  const done = queue.shutdown();
  // Pushed after shutdown began: dropped as shutdown.
  assert.equal(queue.push(2), false);
  await manual.calls(1);
  manual.finish();
  await done;
  assert.deepEqual(manual.batches, [[1]]);
  assert.deepEqual(health.drops(), [{ reason: "shutdown", items: 1 }]);
});

Deno.test("shutdown with a hung export returns at the deadline: the export is aborted, the rest dropped as shutdown", async () => {
  const stop = new AbortController();
  const { queue, manual, health, lines } = queueWith({
    stop,
    batchSize: 2,
    shutdownTimeoutMs: 20,
  });
  for (let i = 1; i <= 5; i++) queue.push(i);
  await manual.calls(1);
  // The export of [1, 2] never ends by itself.
  await queue.shutdown();
  assert.ok(stop.signal.aborted, "the transport was told to stop");
  await queue.idle();
  assert.deepEqual(manual.batches, [[1, 2]]);
  assert.deepEqual(
    health.drops().sort((a, b) => a.items - b.items),
    [{ reason: "shutdown", items: 2 }, { reason: "shutdown", items: 3 }],
  );
  assert.equal(
    lines.find((l) => l.msg === "otel shutdown deadline passed: queued items dropped")?.dropped,
    3,
  );
  assert.equal(queue.depth, 0);
});

Deno.test("shutdown_timeout_ms 0 gives up at once", async () => {
  const { queue, manual, health } = queueWith({ shutdownTimeoutMs: 0 });
  for (let i = 1; i <= 4; i++) queue.push(i);
  await manual.calls(1);
  await queue.shutdown();
  await queue.idle();
  const dropped = health.drops().reduce((n, d) => n + d.items, 0);
  assert.equal(dropped, 4);
});

Deno.test("a second shutdown returns the first one's promise", () => {
  const { queue } = queueWith();
  const a = queue.shutdown();
  assert.equal(queue.shutdown(), a);
  return a;
});

Deno.test("flush exports everything queued now", async () => {
  const health = new RecordingHealth();
  const sent: number[][] = [];
  const queue = new ExportQueue<number>({
    signal: "traces",
    capacity: 10,
    batchSize: 4,
    flushIntervalMs: 60_000,
    shutdownTimeoutMs: 1000,
    send: (batch) => {
      sent.push(batch);
      return Promise.resolve({ kind: "sent" });
    },
    stop: new AbortController(),
    health,
    logger: new Logger("error", () => {}),
  });
  for (let i = 1; i <= 6; i++) queue.push(i);
  await queue.flush();
  assert.deepEqual(sent, [[1, 2, 3, 4], [5, 6]]);
  await queue.shutdown();
});

Deno.test("byte limits: a batch stops before maxBatchBytes, the queue refuses past maxBytes, one big item still goes alone", async () => {
  const { queue, manual, health } = queueWith({
    capacity: 100,
    batchSize: 100,
    weigh: (n) => n,
    maxBytes: 100,
    maxBatchBytes: 50,
  });
  assert.ok(queue.push(30));
  assert.ok(queue.push(30)); // 60 ≥ 50: a batch is ready
  await manual.calls(1);
  assert.deepEqual(manual.batches[0], [30]);
  assert.ok(queue.push(60)); // queued: 30 + 60
  assert.equal(queue.push(20), false); // 110 > 100
  assert.deepEqual(health.drops(), [{ reason: "queue_full", items: 1 }]);
  manual.finish();
  await manual.calls(2);
  assert.deepEqual(manual.batches[1], [30]);
  manual.finish();
  await manual.calls(3);
  assert.deepEqual(manual.batches[2], [60]);
  manual.finish();
  await queue.shutdown();
  // An item larger than every limit is accepted into an empty queue and sent alone.
  const big = queueWith({ weigh: (n) => n, maxBytes: 10, maxBatchBytes: 10 });
  assert.ok(big.queue.push(500));
  await big.manual.calls(1);
  assert.deepEqual(big.manual.batches[0], [500]);
  big.manual.finish();
  await big.queue.shutdown();
});

/** Text a client or server might choose to make encoded requests larger than they look. */
const HOSTILE = [
  "plain ascii",
  '"quoted" \\back\\slashed\\',
  "\u0001\u0002\u001f\n\t control",
  "\ud800 lone \udfff surrogates",
  "😀 pairs 👍",
  "é ü ß",
  "中文字符",
  "\u2028\u2029",
];

Deno.test("textWeight is at least the UTF-8 length and the JSON-escaped UTF-8 length of any text", () => {
  const encoder = new TextEncoder();
  assert.equal(textWeight(""), 0);
  assert.equal(textWeight('é"x'), 5);
  for (const text of [...HOSTILE, HOSTILE.join(""), "\ud83d", "\ude00"]) {
    const json = encoder.encode(JSON.stringify(text)).length - 2;
    const utf8 = encoder.encode(text).length;
    const w = textWeight(text);
    assert.ok(w >= json && w >= utf8, `${JSON.stringify(text)}: ${w} < ${json} or ${utf8}`);
  }
  // Tight for ASCII: a line of JSON weighs little more than its bytes.
  const line = JSON.stringify({ method: "tools/call", params: { text: "y".repeat(100_000) } });
  assert.ok(textWeight(line) < line.length * 1.01);
});

/** Real spans and log records, made by the SDK, with hostile text everywhere it can go. */
function hostileItems(): { spans: ReadableSpan[]; logs: ReadableLogRecord[] } {
  const spans: ReadableSpan[] = [];
  const logs: ReadableLogRecord[] = [];
  const resource = resourceFromAttributes({ "service.name": "svc", "process.pid": 1 });
  const tracer = new TracerProvider({
    resource,
    sampler: new AlwaysOnSampler(),
    spanProcessors: [{
      onStart() {},
      onEnd: (s) => void spans.push(s),
      forceFlush: () => Promise.resolve(),
      shutdown: () => Promise.resolve(),
    }],
  }).getTracer("mcp-audit", "1.0.0");
  const logger = new LoggerProvider({
    resource,
    processors: [{
      onEmit: (r) => void logs.push(r),
      forceFlush: () => Promise.resolve(),
      shutdown: () => Promise.resolve(),
    }],
  }).getLogger("mcp-audit", "1.0.0");
  for (const text of [...HOSTILE, HOSTILE.join("").repeat(50)]) {
    const span = tracer.startSpan(text, {
      attributes: { "a.text": text, "a.n": 12345, "a.b": true },
    });
    span.setStatus({ code: SpanStatusCode.ERROR, message: text });
    span.end();
    logger.emit({
      body: JSON.stringify({ method: text, params: { text } }),
      eventName: "mcp_audit.record",
      severityText: "WARN",
      attributes: { "mcp.method.name": text, "mcp_audit.seq": 7 },
    });
  }
  return { spans, logs };
}

Deno.test("spanWeight and logRecordWeight bound the bytes of real OTLP requests, JSON and protobuf", () => {
  const { spans, logs } = hostileItems();
  const resource = spans[0]!.resource;
  // The request's envelope: resource, scope, field names.
  const envelope = 2048 + attributesWeight(resource.attributes);
  const sum = <T>(items: T[], weigh: (item: T) => number) =>
    items.reduce((n, item) => n + weigh(item), envelope);
  const cases: [string, Uint8Array | undefined, number][] = [
    ["json spans", JsonTraceSerializer.serializeRequest(spans), sum(spans, spanWeight)],
    ["protobuf spans", ProtobufTraceSerializer.serializeRequest(spans), sum(spans, spanWeight)],
    ["json logs", JsonLogsSerializer.serializeRequest(logs), sum(logs, logRecordWeight)],
    ["protobuf logs", ProtobufLogsSerializer.serializeRequest(logs), sum(logs, logRecordWeight)],
  ];
  for (const [what, bytes, weight] of cases) {
    assert.ok(bytes !== undefined, what);
    assert.ok(bytes.length <= weight, `${what}: ${bytes.length} bytes > weight ${weight}`);
  }
  // One by one too: each item within its own weight.
  for (const s of spans) {
    const bytes = JsonTraceSerializer.serializeRequest([s])!;
    assert.ok(bytes.length <= envelope + spanWeight(s), `span ${s.name.slice(0, 20)}`);
  }
  for (const l of logs) {
    const bytes = JsonLogsSerializer.serializeRequest([l])!;
    assert.ok(bytes.length <= envelope + logRecordWeight(l));
  }
});
