import assert from "node:assert/strict";
import { BatchWriter, SinkClosedError } from "./batch_writer.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/**
 * A real `WritableStream` whose writes complete only when the test says so, and which reports
 * each write (and the events around it) as it happens.
 */
class GatedSink {
  readonly events: string[] = [];
  readonly writes: string[] = [];
  readonly stream: WritableStream<Uint8Array>;
  #gates: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  #waiters: { count: number; resolve: () => void }[] = [];
  closed = false;

  constructor() {
    this.stream = new WritableStream<Uint8Array>({
      write: (chunk) => {
        const text = dec.decode(chunk);
        this.writes.push(text);
        this.events.push(`write:${text}`);
        const done = new Promise<void>((resolve, reject) => this.#gates.push({ resolve, reject }));
        this.#waiters = this.#waiters.filter((w) => {
          if (this.writes.length < w.count) return true;
          w.resolve();
          return false;
        });
        return done;
      },
      close: () => {
        this.closed = true;
      },
    });
  }

  /** Resolves once `count` writes have reached the sink. */
  started(count: number): Promise<void> {
    if (this.writes.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ count, resolve }));
  }

  /** Completes the oldest write that is still in flight. */
  finish(): void {
    const gate = this.#gates.shift();
    assert.ok(gate, "no write in flight");
    gate.resolve();
  }

  fail(error: unknown): void {
    const gate = this.#gates.shift();
    assert.ok(gate, "no write in flight");
    gate.reject(error);
  }
}

Deno.test("BatchWriter sends what is pushed in one task as one write", async () => {
  const sink = new GatedSink();
  const w = new BatchWriter(sink.stream);
  w.push(enc.encode("a\n"));
  w.push(enc.encode("b\n"));
  w.push(enc.encode("c\n"));
  await sink.started(1);
  sink.finish();
  await w.flush();
  assert.deepEqual(sink.writes, ["a\nb\nc\n"]);
});

Deno.test("BatchWriter coalesces what is pushed while a write is in flight, in order", async () => {
  const sink = new GatedSink();
  const w = new BatchWriter(sink.stream);
  w.push(enc.encode("1"));
  await sink.started(1);
  w.push(enc.encode("2"));
  await Promise.resolve();
  w.push(enc.encode("3"));
  w.push(enc.encode("4"));
  assert.deepEqual(sink.writes, ["1"], "nothing more is written while the first write is open");
  sink.finish();
  await sink.started(2);
  w.push(enc.encode("5"));
  sink.finish();
  await sink.started(3);
  sink.finish();
  await w.flush();
  assert.deepEqual(sink.writes, ["1", "234", "5"]);
});

Deno.test("BatchWriter keeps byte order across many pushes and writes", async () => {
  const chunks: Uint8Array[] = [];
  const w = new BatchWriter(new WritableStream({ write: (c) => void chunks.push(c.slice()) }));
  let want = "";
  for (let i = 0; i < 500; i++) {
    const text = `${i},`;
    want += text;
    w.push(enc.encode(text));
    if (i % 7 === 0) await Promise.resolve();
    if (i % 50 === 0) await w.flush();
  }
  await w.flush();
  assert.equal(chunks.map((c) => dec.decode(c)).join(""), want);
  assert.ok(chunks.length < 500, `expected coalesced writes, got ${chunks.length}`);
});

Deno.test("BatchWriter calls beforeWrite before every write", async () => {
  const sink = new GatedSink();
  const w = new BatchWriter(sink.stream, { beforeWrite: () => sink.events.push("before") });
  w.push(enc.encode("a"));
  await sink.started(1);
  w.push(enc.encode("b"));
  w.push(enc.encode("c"));
  sink.finish();
  await sink.started(2);
  sink.finish();
  await w.flush();
  assert.deepEqual(sink.events, ["before", "write:a", "before", "write:bc"]);
});

Deno.test("BatchWriter flush resolves only after the bytes reached the sink", async () => {
  const sink = new GatedSink();
  const w = new BatchWriter(sink.stream);
  w.push(enc.encode("x"));
  let flushed = false;
  const f = w.flush().then(() => (flushed = true));
  await sink.started(1);
  assert.equal(flushed, false);
  sink.finish();
  await f;
  assert.equal(flushed, true);
});

Deno.test("BatchWriter surfaces a sink failure on flush and on the next push", async () => {
  const sink = new GatedSink();
  const w = new BatchWriter(sink.stream);
  w.push(enc.encode("a"));
  await sink.started(1);
  w.push(enc.encode("b"));
  const cause = new Error("disk full");
  sink.fail(cause);
  await assert.rejects(w.flush(), (e: unknown) => {
    assert.ok(e instanceof SinkClosedError);
    assert.equal(e.cause, cause);
    return true;
  });
  assert.equal(w.failure, cause);
  assert.throws(() => w.push(enc.encode("c")), SinkClosedError);
  assert.deepEqual(sink.writes, ["a"], "nothing is written after the failure");
});

Deno.test("BatchWriter treats a throwing beforeWrite as a failure", async () => {
  const sink = new GatedSink();
  const boom = new Error("fsync failed");
  const w = new BatchWriter(sink.stream, {
    beforeWrite: () => {
      throw boom;
    },
  });
  w.push(enc.encode("a"));
  await assert.rejects(w.flush(), SinkClosedError);
  assert.deepEqual(sink.writes, []);
  assert.equal(w.failure, boom);
});

Deno.test("BatchWriter asks the caller to wait once the queue passes the high-water mark", async () => {
  const sink = new GatedSink();
  const w = new BatchWriter(sink.stream, { highWaterMark: 4 });
  assert.equal(w.push(enc.encode("ab")), undefined);
  await sink.started(1);
  assert.equal(w.push(enc.encode("cd")), undefined);
  const wait = w.push(enc.encode("efg"));
  assert.ok(wait instanceof Promise);
  let done = false;
  const waited = wait.then(() => (done = true));
  sink.finish();
  await sink.started(2);
  assert.equal(done, false);
  sink.finish();
  await waited;
  assert.deepEqual(sink.writes, ["ab", "cdefg"]);
});

Deno.test("BatchWriter close flushes and closes the sink, and never throws", async () => {
  const sink = new GatedSink();
  const w = new BatchWriter(sink.stream);
  w.push(enc.encode("a"));
  const closing = w.close();
  await sink.started(1);
  sink.finish();
  await closing;
  assert.equal(sink.closed, true);
  assert.deepEqual(sink.writes, ["a"]);

  const broken = new GatedSink();
  const w2 = new BatchWriter(broken.stream);
  w2.push(enc.encode("a"));
  await broken.started(1);
  broken.fail(new Error("gone"));
  await w2.close();
});

Deno.test("BatchWriter close still closes the sink after a throwing beforeWrite", async () => {
  // The audit log failed: nothing more is forwarded, but the other side must see the end.
  const sink = new GatedSink();
  const w = new BatchWriter(sink.stream, {
    beforeWrite: () => {
      throw new Error("No space left on device");
    },
  });
  w.push(enc.encode("a"));
  await assert.rejects(w.flush(), SinkClosedError);
  await w.close();
  assert.equal(sink.closed, true);
  assert.deepEqual(sink.writes, []);
});
