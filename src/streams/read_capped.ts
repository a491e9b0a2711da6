/**
 * Reads a whole byte stream, up to a cap. Knows nothing of HTTP or MCP.
 *
 * @module
 */

/** What reading found. */
export type CappedRead =
  | { kind: "complete"; bytes: Uint8Array<ArrayBuffer> }
  | {
    kind: "oversized";
    /** Bytes seen before reading stopped (at least cap + 1). */
    size: number;
    /** The first bytes. */
    head: Uint8Array;
    /** The last bytes seen. */
    tail: Uint8Array;
  };

const KEEP = 4096;
/**
 * Bodies declared at most this long are read in one piece. `bytes()` reserves the declared length
 * before a byte has arrived, so a larger declaration (16 MB, of which 15 bytes are sent) must not
 * reach it: a few such requests would hold the whole of it each.
 */
export const EAGER_READ_BYTES = 65536;

/**
 * Reads a body whose length was declared, holding only the bytes that have arrived: in one piece
 * when the declaration is small (far cheaper than chunk by chunk), else chunk by chunk through
 * {@link readCapped}, which also enforces the cap if the declared length was false.
 *
 * @example
 * ```ts
 * const read = await readDeclared(request, Number(request.headers.get("content-length")), 1 << 20);
 * if (read.kind === "complete") console.log(read.bytes.length);
 * ```
 */
export async function readDeclared(
  body: { bytes(): Promise<Uint8Array<ArrayBuffer>>; body: ReadableStream<Uint8Array> | null },
  declared: number,
  cap: number,
  onChunk?: () => void,
): Promise<CappedRead> {
  if (
    Number.isSafeInteger(declared) && declared >= 0 && declared <= Math.min(cap, EAGER_READ_BYTES)
  ) {
    const bytes = await body.bytes();
    if (bytes.length <= cap) return { kind: "complete", bytes };
    return {
      kind: "oversized",
      size: bytes.length,
      head: bytes.slice(0, KEEP),
      tail: bytes.slice(bytes.length - KEEP),
    };
  }
  if (body.body === null) return { kind: "complete", bytes: new Uint8Array(0) };
  return await readCapped(body.body, cap, onChunk);
}

/**
 * Reads `stream` to its end, or stops (and cancels it) once more than `cap` bytes have arrived.
 * Each read may be given a deadline by `onChunk`, called after every chunk.
 */
export async function readCapped(
  stream: ReadableStream<Uint8Array>,
  cap: number,
  onChunk: () => void = () => {},
): Promise<CappedRead> {
  const reader = stream.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      onChunk();
      parts.push(value);
      size += value.length;
      if (size > cap) {
        await reader.cancel().catch(() => {});
        const all = join(parts, size);
        return {
          kind: "oversized",
          size,
          head: all.slice(0, KEEP),
          tail: all.slice(Math.max(0, all.length - KEEP)),
        };
      }
    }
  } finally {
    reader.releaseLock();
  }
  return { kind: "complete", bytes: join(parts, size) };
}

/** A view typed as backed by a plain `ArrayBuffer` (what `Response` and `fetch` take), copying only if it is not. */
export function ownBytes(b: Uint8Array): Uint8Array<ArrayBuffer> {
  return b.buffer instanceof ArrayBuffer
    ? new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
    : b.slice();
}

function join(parts: Uint8Array[], size: number): Uint8Array<ArrayBuffer> {
  if (parts.length === 1) return ownBytes(parts[0]!);
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
