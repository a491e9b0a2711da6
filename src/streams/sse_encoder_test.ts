import assert from "node:assert/strict";
import { encodeSseEvent, SseEncodeError } from "./sse_encoder.ts";
import { type SseEvent, SseTap } from "./sse_tap.ts";

/** Reads `text` back with the project's SSE parser, which follows the standard's algorithm. */
async function parse(text: string): Promise<SseEvent[]> {
  const events: SseEvent[] = [];
  const tap = new SseTap(1 << 20, {
    onEvent: (e) => {
      events.push(e);
      return undefined;
    },
    onOversized: () => null,
  });
  const out = ReadableStream.from([new TextEncoder().encode(text)]).pipeThrough(tap);
  for await (const _ of out) { /* drain */ }
  return events;
}

Deno.test("an SSE event's data reads back the same whatever line breaks and spaces it holds", async () => {
  const samples = [
    '{"a":1}',
    "a\rb",
    "a\r\nb",
    "a\nb",
    "\r",
    "\n\n",
    " leading space",
    "trailing\r",
    "",
    "data: inside",
    "x\u2028y\u0085z",
  ];
  for (const data of samples) {
    const [event, ...rest] = await parse(encodeSseEvent({ event: "message", data }));
    assert.equal(rest.length, 0, JSON.stringify(data));
    // The standard's parser joins data lines with \n: every break reads back as \n.
    assert.equal(event?.data, data.replace(/\r\n|\r/g, "\n"), JSON.stringify(data));
    assert.equal(event?.event, "message");
  }
});

Deno.test("an SSE event keeps its id and retry, and refuses a field that would break the line", async () => {
  const [e] = await parse(encodeSseEvent({ id: "7", retry: "1500", event: "message", data: "x" }));
  assert.equal(e?.id, "7");
  assert.equal(e?.retry, "1500");
  assert.throws(() => encodeSseEvent({ id: "1\r2", data: "x" }), SseEncodeError);
  assert.throws(() => encodeSseEvent({ event: "m\nx", data: "x" }), SseEncodeError);
  assert.throws(() => encodeSseEvent({ id: "a\0", data: "x" }), SseEncodeError);
  assert.throws(() => encodeSseEvent({ retry: "1\n", data: "x" }), SseEncodeError);
});
