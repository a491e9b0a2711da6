/**
 * Classification: `readWire` on typical messages (decode, framing and depth checks, lossless
 * parse, JSON-RPC classification). Run with `deno bench src/jsonrpc/framing_bench.ts`.
 *
 * @module
 */
import { readWire, type WireRules } from "./framing.ts";

const enc = new TextEncoder();
const LINE: WireRules = { framing: "line", terminated: true, maxDepth: 1000 };
const PROSE = "Summarise the quarterly report for the board and list the open risks. " +
  "Keep it under three hundred words, cite the sections you used, and flag anything that " +
  "changed since the last meeting; the finance team wants the draft by Friday afternoon.";

const request = enc.encode(JSON.stringify({
  jsonrpc: "2.0",
  id: 42,
  method: "tools/call",
  params: {
    name: "search_documents",
    arguments: { query: PROSE, limit: 10, filters: { lang: "en", tags: ["q3", "board"] } },
  },
}));
const response = enc.encode(JSON.stringify({
  jsonrpc: "2.0",
  id: 42,
  result: { content: [{ type: "text", text: PROSE.repeat(6) }], isError: false },
}));
const ping = enc.encode('{"jsonrpc":"2.0","id":7,"method":"ping"}');
// With line breaks, as most tool results and listings have: a backslash in the text, so the
// parse also looks for member names that hold one.
const lines = enc.encode(JSON.stringify({
  jsonrpc: "2.0",
  id: 42,
  result: { content: [{ type: "text", text: (PROSE + "\n").repeat(6) }], isError: false },
}));
const listing = enc.encode(JSON.stringify({
  jsonrpc: "2.0",
  id: 3,
  result: {
    tools: Array.from({ length: 40 }, (_, i) => ({
      name: `tool_${i}`,
      description: `Does thing ${i}.\nSecond line.`,
      inputSchema: {
        type: "object",
        properties: { path: { type: "string", description: "a path" }, limit: { type: "number" } },
        required: ["path"],
      },
    })),
  },
}));

Deno.bench(`readWire: tools/call request (${request.length} B)`, () => {
  if (readWire(request, LINE).kind !== "messages") throw new Error("not read");
});
Deno.bench(`readWire: tools/call response (${response.length} B)`, () => {
  if (readWire(response, LINE).kind !== "messages") throw new Error("not read");
});
Deno.bench(`readWire: tools/call response with line breaks (${lines.length} B)`, () => {
  if (readWire(lines, LINE).kind !== "messages") throw new Error("not read");
});
Deno.bench(`readWire: tools/list of 40 tools with line breaks (${listing.length} B)`, () => {
  if (readWire(listing, LINE).kind !== "messages") throw new Error("not read");
});
Deno.bench("readWire: ping", () => {
  if (readWire(ping, LINE).kind !== "messages") throw new Error("not read");
});
