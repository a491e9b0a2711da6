/**
 * Newline framing for byte streams with a cap on line length. Knows nothing of JSON-RPC.
 *
 * @module
 */

/** One framed unit of the input. */
export type Frame =
  | {
    kind: "line";
    /** The exact input bytes, terminator included. */
    bytes: Uint8Array;
    /** Length of the content: `bytes` without a trailing `\n` or `\r\n`. */
    contentLength: number;
    /** False only for a last line that ended at end of input without `\n`. */
    terminated: boolean;
  }
  | {
    kind: "oversized";
    /** Content length in bytes (terminator excluded). */
    size: number;
    /** The first bytes of the line, to recover an id from. */
    head: Uint8Array;
    /** The last bytes of the content, to recover an id from. */
    tail: Uint8Array;
    terminated: boolean;
  };

const LF = 0x0a;
const CR = 0x0d;

function concat(parts: Uint8Array[], length: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** A bounded copy of the last `capacity` bytes written to it. */
class Tail {
  #buf: Uint8Array;
  #len = 0;
  constructor(capacity: number) {
    this.#buf = new Uint8Array(capacity);
  }
  push(bytes: Uint8Array): void {
    const cap = this.#buf.length;
    if (bytes.length >= cap) {
      this.#buf.set(bytes.subarray(bytes.length - cap));
      this.#len = cap;
      return;
    }
    const keep = Math.min(this.#len, cap - bytes.length);
    this.#buf.copyWithin(0, this.#len - keep, this.#len);
    this.#buf.set(bytes, keep);
    this.#len = keep + bytes.length;
  }
  take(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
}

/** How a {@link LineSplitter} treats the input. */
export interface LineSplitterOptions {
  /**
   * End at the first line over the cap: it comes out as an `oversized` frame as soon as it passes
   * the cap (`size` the bytes seen so far, `terminated` false), the stream ends after it, and the
   * rest of the input is cancelled, unread. Default false: the line is measured to its end without
   * being held, and framing goes on after it.
   */
  stopAtOversized?: boolean;
}

interface Discarding {
  size: number;
  head: Uint8Array;
  tail: Tail;
}

/**
 * Splits a byte stream into `\n`-terminated lines of at most `maxBytes` content bytes. Lines may
 * arrive split at any byte and several to a chunk. A longer line is not buffered: only its size
 * and a few bytes of head and tail are kept, and it comes out as an `oversized` frame.
 *
 * Frames come out as one array per input chunk, so that a reader handles a burst in one go and
 * writes it on in one write.
 *
 * With `stopAtOversized`, for input where a long line is an error rather than a message to skip
 * (a file being checked), the first line over `maxBytes` comes out as soon as it passes the cap,
 * without waiting for its end, and is the last frame: the rest of the input is not read.
 *
 * @example
 * ```ts
 * const frames = ReadableStream.from([new TextEncoder().encode("a\r\nb")])
 *   .pipeThrough(new LineSplitter(1024));
 * for await (const batch of frames) console.log(batch.map((f) => f.kind)); // ["line"], ["line"]
 * ```
 */
export class LineSplitter extends TransformStream<Uint8Array, Frame[]> {
  /**
   * @param maxBytes the longest line content passed whole
   * @param keepBytes how much of an oversized line's head and tail is kept
   */
  constructor(maxBytes: number, keepBytes = 4096, options: LineSplitterOptions = {}) {
    const stopAtOversized = options.stopAtOversized ?? false;
    let parts: Uint8Array[] = [];
    let length = 0;
    let discarding: Discarding | undefined;
    let stopped = false;

    const finishDiscard = (
      state: Discarding,
      last: Uint8Array,
      terminated: boolean,
    ): Frame => {
      state.tail.push(last);
      let tail = state.tail.take();
      let size = state.size + last.length;
      if (terminated && tail.length > 0 && tail[tail.length - 1] === CR) {
        tail = tail.subarray(0, tail.length - 1);
        size -= 1;
      }
      // The tail keeps one byte more than asked, for the `\r` just removed.
      if (tail.length > keepBytes) tail = tail.subarray(tail.length - keepBytes);
      const head = state.head.length > size ? state.head.subarray(0, size) : state.head;
      return { kind: "oversized", size, head, tail, terminated };
    };

    // The line gathered so far, as an oversized line's head and tail: never copied whole, so that
    // a line passing the cap costs the cap and no more.
    const startDiscard = (): Discarding => {
      const head = new Uint8Array(Math.min(keepBytes, length));
      let at = 0;
      for (const part of parts) {
        if (at >= head.length) break;
        const n = Math.min(part.length, head.length - at);
        head.set(part.subarray(0, n), at);
        at += n;
      }
      const tail = new Tail(keepBytes + 1);
      let first = parts.length;
      for (let kept = 0; first > 0 && kept < keepBytes + 1;) kept += parts[--first]!.length;
      for (let i = first; i < parts.length; i++) tail.push(parts[i]!);
      const state = { size: length, head, tail };
      parts = [];
      length = 0;
      return state;
    };

    const emitLine = (
      out: Frame[],
      bytes: Uint8Array,
      terminated: boolean,
    ): void => {
      let contentLength = terminated ? bytes.length - 1 : bytes.length;
      if (terminated && contentLength > 0 && bytes[contentLength - 1] === CR) contentLength -= 1;
      if (contentLength > maxBytes) {
        const content = bytes.subarray(0, contentLength);
        out.push({
          kind: "oversized",
          size: contentLength,
          head: content.slice(0, keepBytes),
          tail: content.slice(Math.max(0, contentLength - keepBytes)),
          terminated,
        });
        return;
      }
      out.push({ kind: "line", bytes, contentLength, terminated });
    };

    super({
      transform(chunk, controller) {
        if (stopped) return;
        const out: Frame[] = [];
        split(chunk, out);
        if (out.length > 0) controller.enqueue(out);
        // What was split comes out; the rest of the input is not read.
        if (stopped) controller.terminate();
      },
      flush(controller) {
        if (stopped) return;
        const out: Frame[] = [];
        if (discarding) {
          out.push(finishDiscard(discarding, new Uint8Array(0), false));
          discarding = undefined;
        } else if (length > 0) {
          emitLine(out, concat(parts, length), false);
        }
        parts = [];
        length = 0;
        if (out.length > 0) controller.enqueue(out);
      },
    });

    function split(chunk: Uint8Array, out: Frame[]): void {
      let start = 0;
      while (start < chunk.length) {
        const nl = chunk.indexOf(LF, start);
        if (nl === -1) {
          const rest = chunk.subarray(start);
          if (discarding) {
            discarding.tail.push(rest);
            discarding.size += rest.length;
          } else {
            parts.push(rest);
            length += rest.length;
            // One byte of slack for a `\r` that a following `\n` would make a terminator.
            if (length > maxBytes + 1) {
              const state = startDiscard();
              if (stopAtOversized) {
                // Its end is not waited for: it is over the cap already.
                out.push(finishDiscard(state, new Uint8Array(0), false));
                stopped = true;
              } else {
                discarding = state;
              }
            }
          }
          return;
        }
        const piece = chunk.subarray(start, nl + 1);
        start = nl + 1;
        if (discarding) {
          out.push(finishDiscard(discarding, piece.subarray(0, piece.length - 1), true));
          discarding = undefined;
        } else if (length === 0) {
          emitLine(out, piece, true);
        } else {
          parts.push(piece);
          const line = concat(parts, length + piece.length);
          parts = [];
          length = 0;
          emitLine(out, line, true);
        }
        if (stopAtOversized && out.at(-1)?.kind === "oversized") {
          stopped = true;
          return;
        }
      }
    }
  }
}
