import assert from "node:assert/strict";
import { type SseEvent, SseTap } from "./sse_tap.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

async function run(chunks: Uint8Array[], max = 1 << 20) {
  const events: SseEvent[] = [];
  const oversized: number[] = [];
  const out: Uint8Array[] = [];
  const stream = ReadableStream.from(chunks).pipeThrough(
    new SseTap(max, {
      onEvent(e) {
        events.push(e);
        return undefined;
      },
      onOversized(size) {
        oversized.push(size);
        return enc.encode("data: replaced\n\n");
      },
    }),
  );
  for await (const c of stream) out.push(c);
  return { events, oversized, bytes: dec.decode(Uint8Array.from(out.flatMap((c) => [...c]))) };
}

const sample =
  ': comment\n\nid: 1\nevent: message\ndata: {"a":1}\n\r\ndata: line one\r\ndata: line two\r\rretry: 10\ndata:nospace\n\n';

Deno.test("SSE tap passes bytes unchanged and sees the same events at every split point", async () => {
  const bytes = enc.encode(sample + "data: 😀\n\n");
  const whole = await run([bytes]);
  assert.equal(whole.bytes, dec.decode(bytes));
  assert.deepEqual(whole.events.map((e) => [e.data, e.id, e.event, e.hasData]), [
    ["", undefined, "message", false],
    ['{"a":1}', "1", "message", true],
    ["line one\nline two", undefined, "message", true],
    ["nospace", undefined, "message", true],
    ["😀", undefined, "message", true],
  ]);
  for (let i = 1; i < bytes.length; i++) {
    for (const j of [i + 1, i + 7]) {
      if (j >= bytes.length) continue;
      const split = await run([bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)]);
      assert.equal(split.bytes, whole.bytes, `split at ${i},${j}`);
      assert.deepEqual(split.events, whole.events, `split at ${i},${j}`);
    }
  }
});

Deno.test("SSE tap shows each event before passing its bytes on", async () => {
  const order: string[] = [];
  const stream = ReadableStream.from([enc.encode("data: a\n\ndata: b\n\n")]).pipeThrough(
    new SseTap(1024, {
      onEvent(e) {
        order.push(`event ${e.data}`);
        return undefined;
      },
      onOversized: () => null,
    }),
  );
  for await (const c of stream) order.push(`bytes ${dec.decode(c).trim()}`);
  for (const x of ["a", "b"]) {
    assert.ok(order.indexOf(`event ${x}`) < order.indexOf(`bytes data: ${x}`), order.join(", "));
  }
});

Deno.test("SSE tap replaces an event over the cap and goes on", async () => {
  const big = "data: " + "x".repeat(5000) + "\n\n";
  const r = await run([
    enc.encode("data: small\n\n"),
    enc.encode(big.slice(0, 3000)),
    enc.encode(big.slice(3000) + "data: after\n\n"),
  ], 1024);
  assert.deepEqual(r.oversized, [big.length]);
  assert.equal(r.bytes, "data: small\n\ndata: replaced\n\ndata: after\n\n");
  assert.deepEqual(r.events.map((e) => e.data), ["small", "after"]);
});

Deno.test("SSE tap passes an unfinished last event on without showing it", async () => {
  const r = await run([enc.encode("data: done\n\ndata: cut")]);
  assert.equal(r.bytes, "data: done\n\ndata: cut");
  assert.deepEqual(r.events.map((e) => e.data), ["done"]);
});

Deno.test("SSE tap reports a valid retry field with its event, and ignores an invalid one", async () => {
  const { events } = await run([enc.encode("retry: 100\ndata: a\n\nretry: soon\ndata: b\n\n")]);
  assert.deepEqual(events.map((e) => [e.data, e.retry]), [["a", "100"], ["b", undefined]]);
});

Deno.test("an event whose data is not UTF-8 carries its raw bytes, and a valid one does not", async () => {
  const seen: SseEvent[] = [];
  const tap = new SseTap(1 << 20, {
    onEvent: (e) => {
      seen.push(e);
      return undefined;
    },
    onOversized: () => null,
  });
  const bytes = new Uint8Array([
    ...new TextEncoder().encode('data: {"a":"ok"}\n\ndata: {"a":"'),
    0xff,
    0xc0,
    0x8a,
    ...new TextEncoder().encode('"}\ndata:  x\n\n'),
  ]);
  const out = ReadableStream.from([bytes]).pipeThrough(tap);
  const passed: number[] = [];
  for await (const chunk of out) passed.push(...chunk);
  assert.deepEqual(passed, [...bytes], "the bytes pass unchanged");
  assert.deepEqual(seen.length, 2);
  assert.deepEqual(seen[0]!.invalidData, undefined);
  const raw = seen[1]!.invalidData;
  assert.deepEqual(
    raw === undefined ? undefined : [...raw],
    [
      ...new TextEncoder().encode('{"a":"'),
      0xff,
      0xc0,
      0x8a,
      ...new TextEncoder().encode('"}\n x'),
    ],
  );
  assert.deepEqual(seen[1]!.data.includes("\uFFFD"), true);
});
