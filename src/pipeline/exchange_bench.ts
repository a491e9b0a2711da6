/**
 * One `Exchange.pass` of a `tools/call` request and of its response, as the proxy runs by
 * default: key redaction and every value detector on, records signed (HMAC) and chained into a
 * JSONL log in a temporary directory with `durability: none`. Each pass's records are written
 * (`log.flush()`, as a transport does before it forwards) outside the timed part, so the numbers
 * are the message side: read, correlate, redact, assemble. The record side (canonical text, hash,
 * signature, write) is `pass + write`. Run with `deno bench -A src/pipeline/exchange_bench.ts`.
 *
 * @module
 */
import { Exchange } from "./exchange.ts";
import { AuditLog } from "../audit/chain.ts";
import { JsonlStore } from "../audit/storage/jsonl.ts";
import { hmacSigner } from "../audit/signing.ts";
import { DEFAULT_KEY_PATTERNS, KeyRedactor } from "../audit/redact.ts";
import { ValueRedactor } from "../audit/detectors.ts";
import { Logger } from "../log.ts";

const enc = new TextEncoder();
const PROSE = "Summarise the quarterly report for the board and list the open risks. " +
  "Keep it under three hundred words, cite the sections you used, and flag anything that " +
  "changed since the last meeting; the finance team wants the draft by Friday afternoon.";

const request = enc.encode(JSON.stringify({
  jsonrpc: "2.0",
  id: 42,
  method: "tools/call",
  params: {
    name: "search_documents",
    arguments: {
      query: PROSE,
      limit: 10,
      filters: { lang: "en", tags: ["q3", "board"] },
      api_key: "not-a-real-key-0123456789",
    },
    _meta: { progressToken: 17 },
  },
}));
const response = enc.encode(JSON.stringify({
  jsonrpc: "2.0",
  id: 42,
  result: {
    content: [{ type: "text", text: PROSE.repeat(4) }],
    structuredContent: { hits: 4, took_ms: 12 },
    isError: false,
  },
}));

const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-exchange-bench-" });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
let n = 0;
const log = new AuditLog({
  store: new JsonlStore(`${dir}/audit.jsonl`, { durability: "none" }),
  signer: hmacSigner("0123456789abcdef0123456789abcdef"),
  now: () => Date.now(),
  newId: () => "01JD" + String(++n).padStart(22, "0"),
  clientId: "bench-client",
  serverId: "bench-server",
  transport: "stdio",
});
let t = 0;
const exchange = new Exchange({
  log,
  transport: "stdio",
  live: {
    guard: null,
    redactors: [new KeyRedactor(DEFAULT_KEY_PATTERNS), new ValueRedactor()],
  },
  mono: () => (t += 0.125),
  maxMessageBytes: 1 << 20,
  logger: new Logger("error", () => {}),
}, "bench-session");

Deno.bench("Exchange.pass: tools/call request", { group: "pass" }, (b) => {
  b.start();
  exchange.pass("client", request);
  b.end();
  log.flush();
});
Deno.bench("Exchange.pass: its response", { group: "pass" }, (b) => {
  exchange.pass("client", request);
  log.flush();
  b.start();
  exchange.pass("server", response);
  b.end();
  log.flush();
});
Deno.bench("Exchange.pass + write: request and response", { group: "write" }, () => {
  exchange.pass("client", request);
  log.flush();
  exchange.pass("server", response);
  log.flush();
});
