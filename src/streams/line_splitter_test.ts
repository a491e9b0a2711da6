import assert from "node:assert/strict";
import { type Frame, LineSplitter } from "./line_splitter.ts";

const enc = new TextEncoder();

/** A frame with its bytes as text-free number arrays, so that `deepEqual` compares content. */
type Plain =
  | { kind: "line"; bytes: number[]; contentLength: number; terminated: boolean }
  | { kind: "oversized"; size: number; head: number[]; tail: number[]; terminated: boolean };

function plain(f: Frame): Plain {
  return f.kind === "line"
    ? {
      kind: "line",
      bytes: [...f.bytes],
      contentLength: f.contentLength,
      terminated: f.terminated,
    }
    : {
      kind: "oversized",
      size: f.size,
      head: [...f.head],
      tail: [...f.tail],
      terminated: f.terminated,
    };
}

async function batches(
  chunks: Uint8Array[],
  maxBytes: number,
  keepBytes?: number,
): Promise<Frame[][]> {
  const out: Frame[][] = [];
  const splitter = new LineSplitter(maxBytes, keepBytes);
  for await (const batch of ReadableStream.from(chunks).pipeThrough(splitter)) out.push(batch);
  return out;
}

async function frames(chunks: Uint8Array[], maxBytes: number, keepBytes?: number) {
  return (await batches(chunks, maxBytes, keepBytes)).flat().map(plain);
}

/** Every way of cutting `input` into two and three pieces (empty pieces included). */
function* splits(input: Uint8Array): Generator<Uint8Array[]> {
  for (let i = 0; i <= input.length; i++) {
    for (let j = i; j <= input.length; j++) {
      yield [input.slice(0, i), input.slice(i, j), input.slice(j)];
    }
  }
}

const line = (text: string, terminator: "" | "\n" | "\r\n"): Plain => {
  const content = enc.encode(text);
  return {
    kind: "line",
    bytes: [...enc.encode(text + terminator)],
    contentLength: content.length,
    terminated: terminator !== "",
  };
};

const oversized = (text: string, keep: number, terminated: boolean): Plain => {
  const content = enc.encode(text);
  return {
    kind: "oversized",
    size: content.length,
    head: [...content.slice(0, keep)],
    tail: [...content.slice(Math.max(0, content.length - keep))],
    terminated,
  };
};

Deno.test("LineSplitter yields the same frames and bytes wherever the input is split", async () => {
  const text = '{"a":"é😀"}\r\n\nx\n€€€\r\n\r\n  \nlast';
  const want = [
    line('{"a":"é😀"}', "\r\n"),
    line("", "\n"),
    line("x", "\n"),
    line("€€€", "\r\n"),
    line("", "\r\n"),
    line("  ", "\n"),
    line("last", ""),
  ];
  const input = enc.encode(text);
  assert.deepEqual(await frames([input], 64), want);
  for (const chunks of splits(input)) {
    assert.deepEqual(await frames(chunks, 64), want, chunks.map((c) => c.length).join("+"));
  }
});

Deno.test("LineSplitter gives a multi-line chunk back as one batch", async () => {
  const got = await batches([enc.encode("a\nb\r\nc\n"), enc.encode("d\ne")], 64);
  assert.equal(got.length, 3);
  assert.deepEqual(got[0]!.map(plain), [line("a", "\n"), line("b", "\r\n"), line("c", "\n")]);
  assert.deepEqual(got[1]!.map(plain), [line("d", "\n")]);
  assert.deepEqual(got[2]!.map(plain), [line("e", "")]);
});

Deno.test("LineSplitter emits nothing for an empty input and nothing for empty chunks", async () => {
  assert.deepEqual(await batches([], 8), []);
  assert.deepEqual(await batches([new Uint8Array(0), new Uint8Array(0)], 8), []);
});

Deno.test("LineSplitter passes an unterminated last line, CR included, as content", async () => {
  assert.deepEqual(await frames([enc.encode("a\nbc")], 8), [line("a", "\n"), line("bc", "")]);
  assert.deepEqual(await frames([enc.encode("bc\r")], 8), [line("bc\r", "")]);
});

Deno.test("LineSplitter passes a line of exactly maxBytes and not one byte more", async () => {
  const cases: [string, Plain[]][] = [
    ["12345678\n", [line("12345678", "\n")]],
    ["123456789\n", [oversized("123456789", 4096, true)]],
    ["12345678\r\n", [line("12345678", "\r\n")]],
    ["123456789\r\n", [oversized("123456789", 4096, true)]],
    ["12345678", [line("12345678", "")]],
    ["123456789", [oversized("123456789", 4096, false)]],
    ["1234567\r", [line("1234567\r", "")]],
  ];
  for (const [text, want] of cases) {
    const input = enc.encode(text);
    for (const chunks of splits(input)) {
      const got = await frames(chunks, 8, 4096);
      assert.equal(got.length, 1, JSON.stringify(text));
      assert.equal(
        got[0]!.kind,
        want[0]!.kind,
        `${JSON.stringify(text)} split ${chunks.map((c) => c.length)}`,
      );
      if (got[0]!.kind === "oversized" && want[0]!.kind === "oversized") {
        assert.equal(got[0]!.size, want[0]!.size);
        assert.equal(got[0]!.terminated, want[0]!.terminated);
      } else {
        assert.deepEqual(got, want);
      }
    }
  }
});

Deno.test("LineSplitter turns long LF lines into oversized frames and carries on, at every split", async () => {
  const keep = 4;
  const text = "0123456789ABCDEF\nok\n\n0123456789abc";
  const want = [
    oversized("0123456789ABCDEF", keep, true),
    line("ok", "\n"),
    line("", "\n"),
    oversized("0123456789abc", keep, false),
  ];
  const input = enc.encode(text);
  for (const chunks of splits(input)) {
    assert.deepEqual(await frames(chunks, 10, keep), want, chunks.map((c) => c.length).join("+"));
  }
});

Deno.test("LineSplitter gives a long CRLF line the same size, head and tail at every split", async () => {
  const keep = 4;
  const text = "0123456789ABCDEF\r\nok\r\n";
  const want = [oversized("0123456789ABCDEF", keep, true), line("ok", "\r\n")];
  const input = enc.encode(text);
  for (const chunks of splits(input)) {
    assert.deepEqual(await frames(chunks, 10, keep), want, chunks.map((c) => c.length).join("+"));
  }
});

Deno.test("LineSplitter's head of an oversized line is a prefix of its content, never its CR", async () => {
  // keepBytes above maxBytes is the production case whenever proxy.max_message_bytes < 4096.
  const content = "AAAAAAAAAAAA";
  const input = enc.encode(content + "\r\n");
  for (const chunks of splits(input)) {
    const got = await frames(chunks, 10, 4096);
    assert.equal(got.length, 1);
    const f = got[0]!;
    assert.ok(f.kind === "oversized");
    assert.equal(f.size, content.length);
    assert.ok(
      f.head.length <= f.size,
      `head has ${f.head.length} bytes, split ${chunks.map((c) => c.length)}`,
    );
    assert.deepEqual(f.head, [...enc.encode(content)].slice(0, f.head.length));
    assert.deepEqual(f.tail, [...enc.encode(content)]);
  }
});

Deno.test("LineSplitter measures a huge line without holding it, then frames the next line", async () => {
  const size = 4 << 20;
  const chunk = new Uint8Array(65536).fill(0x61);
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < size; at += chunk.length) chunks.push(chunk);
  chunks.push(enc.encode("z\nnext\n"));
  const got = await frames(chunks, 1024);
  assert.equal(got.length, 2);
  const big = got[0]!;
  assert.ok(big.kind === "oversized");
  assert.equal(big.size, size + 1);
  assert.equal(big.terminated, true);
  assert.equal(big.tail.length, 4096);
  assert.equal(big.tail.at(-1), 0x7a);
  assert.ok(big.head.length >= 1024 && big.head.every((b) => b === 0x61));
  assert.deepEqual(got[1], line("next", "\n"));
});

/**
 * An endless line of `a`s in 64 KiB chunks, pulled one at a time; pulling more than `limit`
 * bytes fails the stream, so a splitter that waits for the line's end gets that error.
 */
function endlessLine(limit: number): ReadableStream<Uint8Array> & { pulled: () => number } {
  const chunk = new Uint8Array(65536).fill(0x61);
  let pulled = 0;
  let cancelled = false;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (pulled + chunk.length > limit) {
        controller.error(new Error(`read past ${limit} bytes: the line was waited for`));
        return;
      }
      pulled += chunk.length;
      controller.enqueue(chunk);
    },
    cancel() {
      cancelled = true;
    },
  }, { highWaterMark: 0 });
  return Object.assign(stream, { pulled: () => (cancelled ? pulled : -1) });
}

Deno.test("LineSplitter with stopAtOversized ends at a line as it passes the cap, never reading to its end", async () => {
  const max = 1 << 20;
  const source = endlessLine(4 * max);
  const got: Frame[] = [];
  const splitter = new LineSplitter(max, 8, { stopAtOversized: true });
  for await (const batch of source.pipeThrough(splitter)) got.push(...batch);
  assert.equal(got.length, 1);
  const f = got[0]!;
  assert.ok(f.kind === "oversized");
  assert.equal(f.terminated, false);
  assert.ok(f.size > max && f.size <= max + 65536, `size ${f.size}`);
  assert.deepEqual(f.head, new Uint8Array(8).fill(0x61));
  assert.deepEqual(f.tail, new Uint8Array(8).fill(0x61));
  assert.notEqual(source.pulled(), -1, "the rest of the input is cancelled");
});

Deno.test("LineSplitter with stopAtOversized passes the lines before, and ends at a terminated long one", async () => {
  const got = await (async () => {
    const out: Plain[] = [];
    const input = ReadableStream.from([enc.encode("ok\n0123456789ABC\nnever\n")]);
    const splitter = new LineSplitter(10, 4, { stopAtOversized: true });
    for await (const batch of input.pipeThrough(splitter)) out.push(...batch.map(plain));
    return out;
  })();
  assert.deepEqual(got, [line("ok", "\n"), oversized("0123456789ABC", 4, true)]);
});

Deno.test("LineSplitter without stopAtOversized measures a long line to its end", async () => {
  const max = 1 << 20;
  const splitter = new LineSplitter(max, 8);
  await assert.rejects(
    async () => {
      for await (const _ of endlessLine(4 * max).pipeThrough(splitter)) { /* drain */ }
    },
    /read past/,
  );
});
