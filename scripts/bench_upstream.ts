/**
 * The benchmark's upstream: a minimal stdio JSON-RPC server that answers every request with a
 * small `tools/call`-shaped result carrying the request's id — except `tools/list`, which gets a
 * list of three tools — and ignores notifications. Built to cost as little as possible, so that
 * what `scripts/bench.ts` measures is the proxy: it reads raw chunks, finds the id without a full
 * parse when the line starts the usual way, and writes all the answers to one chunk in one write.
 *
 * Usage: `deno run scripts/bench_upstream.ts [--mark]` (needs no permissions). With `--mark` it
 * writes `first read at MS` to stderr when its first input arrives, MS being the wall clock in
 * milliseconds (`performance.timeOrigin + performance.now()`): for the bench's startup section,
 * the moment the first message was forwarded to it.
 *
 * Its answers and its scan for the id are exported for `scripts/bench_http_upstream.ts`.
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const LF = 0x0a;
export const COMMA = 0x2c;
export const CLOSE_BRACE = 0x7d;
export const QUOTE = 0x22;
export const BACKSLASH = 0x5c;

/**
 * The start of every answer, up to its id. It is also what well-behaved clients put first in every
 * message: `{"jsonrpc":"2.0","id":`.
 */
export const HEAD: Uint8Array = encoder.encode('{"jsonrpc":"2.0","id":');
/** The rest of an answer after its id: a small `tools/call` result (without a line feed). */
export const RESULT = ',"result":{"content":[{"type":"text","text":"3 open issues match: ' +
  '#12 crash on start, #40 slow search, #41 docs typo"}],"isError":false}}';
const TAIL = encoder.encode(`${RESULT}\n`);
/** The rest of the answer to `tools/list` after its id (without a line feed). */
export const TOOLS_LIST_RESULT = `,"result":{"tools":${
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
const TOOLS_LIST_TAIL = encoder.encode(`${TOOLS_LIST_RESULT}\n`);
/** `,"method":"tools/list"`, as it follows the id of a `tools/list` request. */
export const TOOLS_LIST_METHOD: Uint8Array = encoder.encode(',"method":"tools/list"');

function tool(name: string, description: string, properties: Record<string, unknown>): unknown {
  return {
    name,
    description,
    inputSchema: { type: "object", properties, required: ["repo"] },
  };
}

/** Whether `needle` is at `buf[at]`, within `end`. */
export function bytesAt(buf: Uint8Array, at: number, end: number, needle: Uint8Array): boolean {
  if (end - at < needle.length) return false;
  for (let i = 0; i < needle.length; i++) {
    if (buf[at + i] !== needle[i]) return false;
  }
  return true;
}

/** Whether the message `buf[start, end)` begins with {@link HEAD}. */
export function startsWithHead(buf: Uint8Array, start: number, end: number): boolean {
  return bytesAt(buf, start, end, HEAD);
}

/**
 * Where the JSON id that starts at `buf[from]` ends (the index just after it), looking no further
 * than `end`: a string id ends after its closing quote, any other before the next `,` or `}`.
 */
export function idEnd(buf: Uint8Array, from: number, end: number): number {
  let at = from;
  if (buf[at] === QUOTE) {
    // A string id: scan to the closing quote, skipping escapes.
    at++;
    while (at < end && buf[at] !== QUOTE) at += buf[at] === BACKSLASH ? 2 : 1;
    return at + 1;
  }
  while (at < end && buf[at] !== COMMA && buf[at] !== CLOSE_BRACE) at++;
  return at;
}

/** A request's id (its JSON bytes), and whether it is a `tools/list`. */
interface Request {
  id: Uint8Array;
  toolsList: boolean;
}

/** The request on the line `buf[start, end)`, or `undefined` for a notification. */
function requestOf(buf: Uint8Array, start: number, end: number): Request | undefined {
  if (startsWithHead(buf, start, end)) {
    const from = start + HEAD.length;
    const at = idEnd(buf, from, end);
    return { id: buf.subarray(from, at), toolsList: bytesAt(buf, at, end, TOOLS_LIST_METHOD) };
  }
  // Anything else: parse it properly.
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(buf.subarray(start, end)));
  } catch {
    return { id: encoder.encode("null"), toolsList: false };
  }
  if (typeof value !== "object" || value === null || !("id" in value)) {
    return typeof value === "object" && value !== null && "method" in value
      ? undefined
      : { id: encoder.encode("null"), toolsList: false };
  }
  return {
    id: encoder.encode(JSON.stringify(value.id)),
    toolsList: "method" in value && value.method === "tools/list",
  };
}

async function writeAll(bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.length) at += await Deno.stdout.write(bytes.subarray(at));
}

async function serve(): Promise<void> {
  const input = new Uint8Array(1 << 16);
  // Bytes of a line that began in an earlier chunk.
  let carry = new Uint8Array(0);
  let out = new Uint8Array(1 << 16);
  let mark = Deno.args.includes("--mark");
  while (true) {
    const n = await Deno.stdin.read(input);
    if (n === null) break;
    if (mark) {
      console.error(`first read at ${performance.timeOrigin + performance.now()}`);
      mark = false;
    }
    let buf = input.subarray(0, n);
    if (carry.length > 0) {
      const joined = new Uint8Array(carry.length + n);
      joined.set(carry);
      joined.set(buf, carry.length);
      buf = joined;
    }
    let used = 0;
    let start = 0;
    while (true) {
      const nl = buf.indexOf(LF, start);
      if (nl === -1) break;
      const request = requestOf(buf, start, nl);
      start = nl + 1;
      if (request === undefined) continue;
      const { id } = request;
      const tail = request.toolsList ? TOOLS_LIST_TAIL : TAIL;
      const need = used + HEAD.length + id.length + tail.length;
      if (need > out.length) {
        const bigger = new Uint8Array(Math.max(need, out.length * 2));
        bigger.set(out.subarray(0, used));
        out = bigger;
      }
      out.set(HEAD, used);
      used += HEAD.length;
      out.set(id, used);
      used += id.length;
      out.set(tail, used);
      used += tail.length;
    }
    carry = start < buf.length ? buf.slice(start) : new Uint8Array(0);
    if (used > 0) await writeAll(out.subarray(0, used));
  }
}

if (import.meta.main) {
  await serve();
}
