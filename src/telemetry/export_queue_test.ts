import assert from "node:assert/strict";
import { ExportQueue, type ExportQueueOptions, type SendOutcome } from "./export_queue.ts";
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
