/**
 * Line splitting: one read of 64 KiB holding many MCP lines, and one line split across reads (each
 * through a new splitter), and one line through a splitter already running, as a proxy pays per read.
 * Run with `deno bench src/streams/line_splitter_bench.ts`.
 *
 * @module
 */
import { LineSplitter } from "./line_splitter.ts";

const enc = new TextEncoder();
const line = enc.encode(
  JSON.stringify({
    jsonrpc: "2.0",
    id: 1,
    method: "tools/call",
    params: { name: "search", arguments: { query: "x".repeat(300), limit: 10 } },
  }) + "\n",
);
const burst = new Uint8Array(64 * 1024 - (64 * 1024) % line.length);
for (let at = 0; at < burst.length; at += line.length) burst.set(line, at);
const lines = burst.length / line.length;

async function split(chunks: Uint8Array[]): Promise<number> {
  let n = 0;
  const frames = ReadableStream.from(chunks).pipeThrough(new LineSplitter(1 << 20));
  for await (const batch of frames) n += batch.length;
  return n;
}

Deno.bench(`line splitter: one 64 KiB read of ${lines} lines`, async () => {
  if (await split([burst]) !== lines) throw new Error("lines lost");
});

Deno.bench("line splitter: one line in one read", async () => {
  if (await split([line]) !== 1) throw new Error("line lost");
});

const halves = [line.subarray(0, 100), line.subarray(100)];
Deno.bench("line splitter: one line split across two reads", async () => {
  if (await split(halves) !== 1) throw new Error("line lost");
});

// The cost a proxy pays per read: one splitter lives as long as its pipe.
const running = new LineSplitter(1 << 20);
const input = running.writable.getWriter();
const output = running.readable.getReader();
Deno.bench("line splitter, running: one line in one read", async () => {
  void input.write(line);
  const { value } = await output.read();
  if (value?.length !== 1) throw new Error("line lost");
});
