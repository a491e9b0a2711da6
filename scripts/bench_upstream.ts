/**
 * The benchmark's upstream: a minimal stdio JSON-RPC server that answers every request with a
 * small `tools/call`-shaped result carrying the request's id, and ignores notifications. Built to
 * cost as little as possible, so that what `scripts/bench.ts` measures is the proxy: it reads raw
 * chunks, finds the id without a full parse when the line starts the usual way, and writes all the
 * answers to one chunk in one write.
 *
 * Usage: `deno run scripts/bench_upstream.ts` (needs no permissions).
 *
 * Its answer and its scan for the id are exported for `scripts/bench_http_upstream.ts`.
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

/** Whether the message `buf[start, end)` begins with {@link HEAD}. */
export function startsWithHead(buf: Uint8Array, start: number, end: number): boolean {
  if (end - start < HEAD.length) return false;
  for (let i = 0; i < HEAD.length; i++) {
    if (buf[start + i] !== HEAD[i]) return false;
  }
  return true;
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

/** The id's JSON bytes for the line `buf[start, end)`, or `undefined` for a notification. */
function idOf(buf: Uint8Array, start: number, end: number): Uint8Array | undefined {
  if (startsWithHead(buf, start, end)) {
    const from = start + HEAD.length;
    return buf.subarray(from, idEnd(buf, from, end));
  }
  // Anything else: parse it properly.
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(buf.subarray(start, end)));
  } catch {
    return encoder.encode("null");
  }
  if (typeof value !== "object" || value === null || !("id" in value)) {
    return typeof value === "object" && value !== null && "method" in value
      ? undefined
      : encoder.encode("null");
  }
  return encoder.encode(JSON.stringify(value.id));
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
  while (true) {
    const n = await Deno.stdin.read(input);
    if (n === null) break;
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
      const id = idOf(buf, start, nl);
      start = nl + 1;
      if (id === undefined) continue;
      const need = used + HEAD.length + id.length + TAIL.length;
      if (need > out.length) {
        const bigger = new Uint8Array(Math.max(need, out.length * 2));
        bigger.set(out.subarray(0, used));
        out = bigger;
      }
      out.set(HEAD, used);
      used += HEAD.length;
      out.set(id, used);
      used += id.length;
      out.set(TAIL, used);
      used += TAIL.length;
    }
    carry = start < buf.length ? buf.slice(start) : new Uint8Array(0);
    if (used > 0) await writeAll(out.subarray(0, used));
  }
}

if (import.meta.main) {
  await serve();
}
