import assert from "node:assert/strict";
import { readCapped, readDeclared } from "./read_capped.ts";

/** More than any body read in one piece. */
const LARGE = 1 << 20;

const encoder = new TextEncoder();

/** A body that arrives in `pieces`, and refuses to be read in one piece (which reserves its declared length). */
function trickle(pieces: string[]): {
  bytes(): Promise<Uint8Array<ArrayBuffer>>;
  body: ReadableStream<Uint8Array>;
} {
  const queue = pieces.map((p) => encoder.encode(p));
  return {
    bytes: () => Promise.reject(new Error("read in one piece: the declared length was reserved")),
    body: new ReadableStream<Uint8Array>({
      pull(c) {
        const next = queue.shift();
        if (next === undefined) c.close();
        else c.enqueue(next);
      },
    }),
  };
}

Deno.test("readDeclared holds only the bytes that arrived when a body declares far more", async () => {
  const read = await readDeclared(trickle(['{"jsonrpc":"2.0"', "}"]), 16_000_000, 16_777_216);
  assert.deepStrictEqual(read.kind, "complete");
  if (read.kind === "complete") {
    assert.deepStrictEqual(new TextDecoder().decode(read.bytes), '{"jsonrpc":"2.0"}');
  }
});

Deno.test("readDeclared reads a small declared body in one piece", async () => {
  let called = false;
  const read = await readDeclared(
    {
      bytes: () => {
        called = true;
        return Promise.resolve(encoder.encode("{}"));
      },
      body: null,
    },
    2,
    1024,
  );
  assert.deepStrictEqual([called, read.kind], [true, "complete"]);
});

Deno.test("readDeclared stops a body that declares too little at the cap", async () => {
  const read = await readDeclared(
    trickle(["a".repeat(LARGE), "b".repeat(10)]),
    -1,
    LARGE,
  );
  assert.deepStrictEqual(read.kind, "oversized");
  if (read.kind === "oversized") assert.deepStrictEqual(read.size, LARGE + 10);
});

Deno.test("readCapped joins chunks into exactly the bytes received", async () => {
  const read = await readCapped(trickle(["ab", "cd", "e"]).body, 10);
  assert.deepStrictEqual(read.kind, "complete");
  if (read.kind === "complete") {
    assert.deepStrictEqual(new TextDecoder().decode(read.bytes), "abcde");
  }
});
