/**
 * The benchmark's upstream: a minimal stdio JSON-RPC server that answers every request with a
 * small `tools/call`-shaped result carrying the request's id, and ignores notifications. Built to
 * cost as little as possible, so that what `scripts/bench.ts` measures is the proxy: it reads raw
 * chunks, finds the id without a full parse when the line starts the usual way, and writes all the
 * answers to one chunk in one write.
 *
 * Usage: `deno run scripts/bench_upstream.ts` (needs no permissions).
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const LF = 0x0a;
const COMMA = 0x2c;
const CLOSE_BRACE = 0x7d;
const QUOTE = 0x22;

const HEAD = encoder.encode('{"jsonrpc":"2.0","id":');
const TAIL = encoder.encode(
  ',"result":{"content":[{"type":"text","text":"3 open issues match: #12 crash on start, ' +
    '#40 slow search, #41 docs typo"}],"isError":false}}\n',
);
// What well-behaved clients put first on every line: `{"jsonrpc":"2.0","id":`.
const PREFIX = HEAD;

function startsWithPrefix(buf: Uint8Array, start: number, end: number): boolean {
  if (end - start < PREFIX.length) return false;
  for (let i = 0; i < PREFIX.length; i++) {
    if (buf[start + i] !== PREFIX[i]) return false;
  }
  return true;
}

/** The id's JSON bytes for the line `buf[start, end)`, or `undefined` for a notification. */
function idOf(buf: Uint8Array, start: number, end: number): Uint8Array | undefined {
  if (startsWithPrefix(buf, start, end)) {
    const from = start + PREFIX.length;
    let at = from;
    if (buf[at] === QUOTE) {
      // A string id: scan to the closing quote, skipping escapes.
      at++;
      while (at < end && buf[at] !== QUOTE) at += buf[at] === 0x5c ? 2 : 1;
      return buf.subarray(from, at + 1);
    }
    while (at < end && buf[at] !== COMMA && buf[at] !== CLOSE_BRACE) at++;
    return buf.subarray(from, at);
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
