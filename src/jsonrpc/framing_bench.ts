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

Deno.bench(`readWire: tools/call request (${request.length} B)`, () => {
  if (readWire(request, LINE).kind !== "messages") throw new Error("not read");
});
Deno.bench(`readWire: tools/call response (${response.length} B)`, () => {
  if (readWire(response, LINE).kind !== "messages") throw new Error("not read");
});
Deno.bench("readWire: ping", () => {
  if (readWire(ping, LINE).kind !== "messages") throw new Error("not read");
});
