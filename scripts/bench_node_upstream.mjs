/**
 * The stdio benchmark's default upstream, for `node`: the same server as
 * `scripts/bench_upstream.ts` (byte for byte the same answers: a small `tools/call`-shaped result
 * carrying the request's id for every request, a list of three tools for `tools/list`, nothing for
 * a notification), in plain JavaScript so that Node runs it. The measurements used a Node
 * echo upstream; a Deno one answers several times faster, which leaves "of direct" measuring the
 * pipes rather than a proxy in front of a real server.
 *
 * Like the Deno one it reads raw chunks, finds the id without a full parse when the line starts
 * the usual way, and writes all the answers to one chunk in one `process.stdout.write` (a server
 * that batches per read); it stops reading while a write is pending, as a server that awaits its
 * writes does. With `--like-sdk` it costs what a server on the MCP TypeScript SDK's stdio transport
 * does at the least: every line parsed (`JSON.parse`, as the SDK's `ReadBuffer` does) and each
 * answer written on its own (`StdioServerTransport.send`: one `write` a message, a `write(2)` each
 * on a Linux pipe). The answers are the same bytes, by the same rules: the parse is the cost, not
 * the source of the answer. That is several times slower than one write a read, and what the
 * issue's "Node echo upstream" (73k msg/s direct) most likely was. `scripts/bench/upstreams.ts` checks before every stdio run that both upstreams
 * answer the same input with the same bytes, so the constants below cannot drift from the
 * TypeScript ones unnoticed.
 *
 * Usage: `node scripts/bench_node_upstream.mjs [--like-sdk] [--mark]`. With `--mark` it writes
 * `first read at MS` to stderr when its first input arrives (wall clock, in milliseconds).
 *
 * @module
 */
import process from "node:process";
import { Buffer } from "node:buffer";

const LF = 0x0a;
const COMMA = 0x2c;
const CLOSE_BRACE = 0x7d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** The start of every answer, up to its id; what well-behaved clients put first too. */
const HEAD = Buffer.from('{"jsonrpc":"2.0","id":');
const RESULT = ',"result":{"content":[{"type":"text","text":"3 open issues match: ' +
  '#12 crash on start, #40 slow search, #41 docs typo"}],"isError":false}}';
const TAIL = Buffer.from(`${RESULT}\n`);

function tool(name, description, properties) {
  return {
    name,
    description,
    inputSchema: { type: "object", properties, required: ["repo"] },
  };
}

const TOOLS_LIST_RESULT = `,"result":{"tools":${
  JSON.stringify([
    tool("search_issues", "Search the issues of a repository.", {
      repo: { type: "string" },
      query: { type: "string" },
      limit: { type: "integer" },
    }),
    tool("create_issue", "Open an issue in a repository.", {
      repo: { type: "string" },
      title: { type: "string" },
      body: { type: "string" },
    }),
    tool("delete_repository", "Delete a repository and everything in it.", {
      repo: { type: "string" },
    }),
  ])
}}}`;
const TOOLS_LIST_TAIL = Buffer.from(`${TOOLS_LIST_RESULT}\n`);
const TOOLS_LIST_METHOD = Buffer.from(',"method":"tools/list"');
const NULL_ID = Buffer.from("null");

/** The line `buf[start, end)` parsed, or undefined when it is not JSON. */
function parse(buf, start, end) {
  try {
    return JSON.parse(buf.toString("utf8", start, end));
  } catch {
    return undefined;
  }
}

/** Writes `bytes`, and stops reading until they are taken when the pipe is full. */
function write(bytes) {
  if (!process.stdout.write(bytes)) {
    process.stdin.pause();
    process.stdout.once("drain", () => process.stdin.resume());
  }
}

/** Whether `needle` is at `buf[at]`, within `end`. */
function bytesAt(buf, at, end, needle) {
  if (end - at < needle.length) return false;
  for (let i = 0; i < needle.length; i++) {
    if (buf[at + i] !== needle[i]) return false;
  }
  return true;
}

/** Where the JSON id that starts at `buf[from]` ends, looking no further than `end`. */
function idEnd(buf, from, end) {
  let at = from;
  if (buf[at] === QUOTE) {
    at++;
    while (at < end && buf[at] !== QUOTE) at += buf[at] === BACKSLASH ? 2 : 1;
    return at + 1;
  }
  while (at < end && buf[at] !== COMMA && buf[at] !== CLOSE_BRACE) at++;
  return at;
}

/** The id (JSON bytes) and answer tail of the line `buf[start, end)`; null for a notification. */
function answerOf(buf, start, end) {
  if (bytesAt(buf, start, end, HEAD)) {
    const from = start + HEAD.length;
    const at = idEnd(buf, from, end);
    return {
      id: buf.subarray(from, at),
      tail: bytesAt(buf, at, end, TOOLS_LIST_METHOD) ? TOOLS_LIST_TAIL : TAIL,
    };
  }
  // Anything else: parse it properly.
  let value;
  try {
    value = JSON.parse(buf.toString("utf8", start, end));
  } catch {
    return { id: NULL_ID, tail: TAIL };
  }
  if (typeof value !== "object" || value === null || !("id" in value)) {
    return typeof value === "object" && value !== null && "method" in value
      ? null
      : { id: NULL_ID, tail: TAIL };
  }
  return {
    id: Buffer.from(JSON.stringify(value.id)),
    tail: "method" in value && value.method === "tools/list" ? TOOLS_LIST_TAIL : TAIL,
  };
}

let mark = process.argv.includes("--mark");
const likeSdk = process.argv.includes("--like-sdk");
/** The last message parsed under `--like-sdk` (kept, so that the parse is not work thrown away). */
let _parsed;
// Bytes of a line that began in an earlier chunk.
let carry = null;
let out = Buffer.allocUnsafe(1 << 16);

process.stdin.on("data", (chunk) => {
  if (mark) {
    process.stderr.write(`first read at ${performance.timeOrigin + performance.now()}\n`);
    mark = false;
  }
  const buf = carry === null ? chunk : Buffer.concat([carry, chunk]);
  let used = 0;
  let start = 0;
  while (true) {
    const nl = buf.indexOf(LF, start);
    if (nl === -1) break;
    if (likeSdk) _parsed = parse(buf, start, nl);
    const answer = answerOf(buf, start, nl);
    start = nl + 1;
    if (answer === null) continue;
    if (likeSdk) {
      write(Buffer.concat([HEAD, answer.id, answer.tail]));
      continue;
    }
    const need = used + HEAD.length + answer.id.length + answer.tail.length;
    if (need > out.length) {
      const bigger = Buffer.allocUnsafe(Math.max(need, out.length * 2));
      out.copy(bigger, 0, 0, used);
      out = bigger;
    }
    used += HEAD.copy(out, used);
    used += answer.id.copy(out, used);
    used += answer.tail.copy(out, used);
  }
  carry = start < buf.length ? Buffer.from(buf.subarray(start)) : null;
  if (used === 0) return;
  // A copy: `out` is reused for the next chunk's answers while this write may still be pending.
  write(Buffer.from(out.subarray(0, used)));
});
