/**
 * The HTTP benchmark's upstream: a minimal Streamable-HTTP-shaped MCP endpoint on `Deno.serve`.
 * Every POSTed JSON-RPC request gets an `application/json` answer with its id and a small
 * `tools/call`-shaped result (`tools/list` gets a list of three tools); a POST of notifications or
 * responses only gets 202; `initialize` answers also name a session (`Mcp-Session-Id`); GET gets
 * 405 (no server-initiated stream) and DELETE 204. Built to cost as little as possible, so that what `scripts/bench/http.ts` measures is
 * the proxy: the id is found without a full parse when the body starts the usual way.
 *
 * Usage: `deno run --allow-net scripts/bench_http_upstream.ts [--port N] [--hostname H]`
 * (defaults: 127.0.0.1, port 0 = any free port). Writes `listening on http://HOST:PORT/mcp` to
 * stderr once it accepts connections; runs until killed.
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  bytesAt,
  COMMA,
  HEAD,
  idEnd,
  QUOTE,
  RESULT,
  startsWithHead,
  TOOLS_LIST_METHOD,
  TOOLS_LIST_RESULT,
} from "./bench_upstream.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const TAIL = encoder.encode(RESULT);
const TOOLS_LIST_TAIL = encoder.encode(TOOLS_LIST_RESULT);
const INITIALIZE_TAIL = encoder.encode(
  ',"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},' +
    '"serverInfo":{"name":"mcp-audit-bench-http-upstream","version":"1"}}}',
);
const INITIALIZE_METHOD = encoder.encode('"method":"initialize"');

const JSON_HEADERS = { "content-type": "application/json" };
const SESSION = crypto.randomUUID();

function contains(buf: Uint8Array, needle: Uint8Array): boolean {
  const first = needle[0];
  for (let at = buf.indexOf(first!); at !== -1; at = buf.indexOf(first!, at + 1)) {
    let i = 1;
    while (i < needle.length && buf[at + i] === needle[i]) i++;
    if (i === needle.length) return true;
  }
  return false;
}

interface Parsed {
  /** The id's JSON bytes, or `undefined` for a body without a request (202). */
  id: Uint8Array | undefined;
  initialize: boolean;
  toolsList: boolean;
}

/** The request id of a body holding one JSON-RPC message. */
function parse(buf: Uint8Array): Parsed {
  if (startsWithHead(buf, 0, buf.length)) {
    const from = HEAD.length;
    const at = idEnd(buf, from, buf.length);
    const id = buf.subarray(from, at);
    // `{"jsonrpc":"2.0","id":1,"result":…}` is a response: no answer.
    const isRequest = buf[at] === COMMA && buf[at + 1] === QUOTE && buf[at + 2] === 0x6d; // "m
    return isRequest
      ? {
        id,
        initialize: contains(buf.subarray(at), INITIALIZE_METHOD),
        toolsList: bytesAt(buf, at, buf.length, TOOLS_LIST_METHOD),
      }
      : { id: undefined, initialize: false, toolsList: false };
  }
  // Anything else: parse it properly (a batch gets the answer of its first request only).
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(buf));
  } catch {
    return { id: encoder.encode("null"), initialize: false, toolsList: false };
  }
  if (Array.isArray(value)) value = value.find((m) => typeof m === "object" && m && "id" in m);
  if (
    typeof value !== "object" || value === null || !("id" in value) || !("method" in value)
  ) {
    return { id: undefined, initialize: false, toolsList: false };
  }
  return {
    id: encoder.encode(JSON.stringify(value.id)),
    initialize: value.method === "initialize",
    toolsList: value.method === "tools/list",
  };
}

function answer(id: Uint8Array, tail: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(HEAD.length + id.length + tail.length);
  out.set(HEAD);
  out.set(id, HEAD.length);
  out.set(tail, HEAD.length + id.length);
  return out;
}

async function handle(req: Request): Promise<Response> {
  if (req.method === "GET") return new Response(null, { status: 405 });
  if (req.method === "DELETE") return new Response(null, { status: 204 });
  if (req.method !== "POST") return new Response(null, { status: 405 });
  const { id, initialize, toolsList } = parse(await req.bytes());
  if (id === undefined) return new Response(null, { status: 202 });
  if (initialize) {
    return new Response(answer(id, INITIALIZE_TAIL), {
      headers: { ...JSON_HEADERS, "mcp-session-id": SESSION },
    });
  }
  return new Response(answer(id, toolsList ? TOOLS_LIST_TAIL : TAIL), { headers: JSON_HEADERS });
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { port: { type: "string" }, hostname: { type: "string" } },
    strict: true,
  });
  Deno.serve({
    hostname: values.hostname ?? "127.0.0.1",
    port: Number(values.port ?? "0"),
    onListen: ({ hostname, port }) => {
      const host = hostname.includes(":") ? `[${hostname}]` : hostname;
      console.error(`listening on http://${host}:${port}/mcp`);
    },
  }, handle);
}
