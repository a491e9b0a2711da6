/**
 * A server-sent events tap: bytes pass through unchanged, event by event, and each complete event
 * is shown to a callback before its bytes go on. Knows nothing of JSON-RPC.
 *
 * @module
 */

/** One complete event. */
export interface SseEvent {
  /** The `data` lines joined with `\n`. */
  data: string;
  /** The `event` field; `message` when absent. */
  event: string;
  /** The `id` field, when the event had one. */
  id: string | undefined;
  /** Whether the event had any `data` line. */
  hasData: boolean;
  /** The `retry` field, when the event had a valid one (ASCII digits). */
  retry: string | undefined;
  /**
   * The `data` lines' bytes joined with `\n`, only when they are not valid UTF-8: `data` then holds
   * U+FFFD where a decoder that does not refuse them would put it, and a reader that does refuse
   * them reads no message at all. A caller that must know what every reader takes looks here.
   */
  invalidData: Uint8Array | undefined;
}

/** What the tap calls. */
export interface SseTapHandlers {
  /**
   * Called with each complete event before its bytes are passed on. May return bytes to send in
   * place of the event (or `null` to drop it); `undefined` passes it on unchanged.
   */
  onEvent(event: SseEvent): Uint8Array | null | undefined;
  /**
   * Called for an event larger than the cap, which is not buffered and not passed on, with its
   * size and its first and last bytes. Returns bytes to send in its place, if any.
   */
  onOversized(size: number, head: Uint8Array, tail: Uint8Array): Uint8Array | null;
}

const LF = 0x0a;
const CR = 0x0d;
const KEEP = 4096;
const decoder = new TextDecoder();
const strict = new TextDecoder("utf-8", { fatal: true });

function join(parts: Uint8Array[], size: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const encoder = new TextEncoder();

/** A `data:` line's value as bytes: after the colon and one optional space. */
function rawValue(line: Uint8Array): Uint8Array {
  const colon = line.indexOf(0x3a);
  if (colon === -1) return new Uint8Array(0);
  const start = line[colon + 1] === 0x20 ? colon + 2 : colon + 1;
  return line.slice(start);
}

/** Lines joined with `\n`, as the standard joins data lines. */
function joinLines(lines: Uint8Array[]): Uint8Array {
  const size = lines.reduce((n, l) => n + l.length, 0) + Math.max(0, lines.length - 1);
  const out = new Uint8Array(size);
  let at = 0;
  lines.forEach((l, i) => {
    if (i > 0) out[at++] = LF;
    out.set(l, at);
    at += l.length;
  });
  return out;
}

/**
 * Passes an SSE byte stream through, event by event, showing each event to `handlers` first.
 * Lines may end in `\n`, `\r\n` or `\r`, split anywhere across chunks.
 *
 * @example
 * ```ts
 * const tapped = response.body!.pipeThrough(new SseTap(1 << 20, {
 *   onEvent: (e) => { console.log(e.data); return undefined; },
 *   onOversized: () => null,
 * }));
 * ```
 */
export class SseTap extends TransformStream<Uint8Array, Uint8Array> {
  constructor(maxEventBytes: number, handlers: SseTapHandlers) {
    let eventParts: Uint8Array[] = [];
    let eventSize = 0;
    let lineParts: Uint8Array[] = [];
    let lineSize = 0;
    let sawCR = false;
    let endAfterCR = false;
    let data: string[] = [];
    /** Each data line's raw value, kept from the first line that is not valid UTF-8 on. */
    let rawData: Uint8Array[] | undefined;
    let eventType = "";
    let id: string | undefined;
    let retry: string | undefined;
    let oversized: { head: Uint8Array; tail: Uint8Array } | undefined;

    const reset = (): void => {
      eventParts = [];
      eventSize = 0;
      data = [];
      rawData = undefined;
      eventType = "";
      id = undefined;
      retry = undefined;
      oversized = undefined;
    };

    const addRaw = (bytes: Uint8Array): void => {
      if (bytes.length === 0) return;
      eventSize += bytes.length;
      if (oversized) {
        const t = new Uint8Array(Math.min(KEEP, oversized.tail.length + bytes.length));
        const keepOld = t.length - Math.min(bytes.length, t.length);
        t.set(oversized.tail.subarray(oversized.tail.length - keepOld));
        t.set(bytes.subarray(bytes.length - (t.length - keepOld)), keepOld);
        oversized.tail = t;
        return;
      }
      eventParts.push(bytes);
      if (eventSize > maxEventBytes) {
        const all = join(eventParts, eventSize);
        oversized = { head: all.slice(0, KEEP), tail: all.slice(Math.max(0, all.length - KEEP)) };
        eventParts = [];
        data = [];
      }
    };

    const field = (line: Uint8Array): void => {
      if (oversized || line.length === 0 || line[0] === 0x3a) return;
      let valid = true;
      let text: string;
      try {
        text = strict.decode(line);
      } catch {
        valid = false;
        text = decoder.decode(line);
      }
      const colon = text.indexOf(":");
      const name = colon === -1 ? text : text.slice(0, colon);
      let value = colon === -1 ? "" : text.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (name === "data") {
        if (!valid && rawData === undefined) rawData = data.map((d) => encoder.encode(d));
        if (rawData !== undefined) rawData.push(rawValue(line));
        data.push(value);
      } else if (name === "event") eventType = value;
      else if (name === "id" && !value.includes("\0")) id = value;
      else if (name === "retry" && /^\d+$/.test(value)) retry = value;
    };

    const emit = (controller: TransformStreamDefaultController<Uint8Array>): void => {
      if (oversized) {
        const replacement = handlers.onOversized(eventSize, oversized.head, oversized.tail);
        if (replacement) controller.enqueue(replacement);
      } else if (eventSize > 0) {
        const raw = join(eventParts, eventSize);
        const out = handlers.onEvent({
          data: data.join("\n"),
          event: eventType || "message",
          id,
          hasData: data.length > 0,
          retry,
          invalidData: rawData === undefined ? undefined : joinLines(rawData),
        });
        if (out === undefined) controller.enqueue(raw);
        else if (out !== null) controller.enqueue(out);
      }
      reset();
    };

    super({
      transform(chunk, controller) {
        let segment = 0; // start of the part of `chunk` not yet given to the event
        let lineStart = 0;
        for (let i = 0; i < chunk.length; i++) {
          const b = chunk[i]!;
          if (sawCR) {
            sawCR = false;
            if (b === LF) {
              lineStart = i + 1;
              if (endAfterCR) {
                endAfterCR = false;
                addRaw(chunk.subarray(segment, i + 1));
                segment = i + 1;
                emit(controller);
              }
              continue;
            }
            if (endAfterCR) {
              endAfterCR = false;
              addRaw(chunk.subarray(segment, i));
              segment = i;
              emit(controller);
            }
          }
          if (b !== LF && b !== CR) continue;
          const piece = chunk.subarray(lineStart, i);
          const empty = lineSize === 0 && piece.length === 0;
          if (!empty) {
            if (!oversized) {
              lineParts.push(piece);
              field(join(lineParts, lineSize + piece.length));
            }
            lineParts = [];
            lineSize = 0;
          }
          lineStart = i + 1;
          if (b === CR) sawCR = true;
          if (empty) {
            if (b === CR) {
              endAfterCR = true;
            } else {
              addRaw(chunk.subarray(segment, i + 1));
              segment = i + 1;
              emit(controller);
            }
          }
        }
        addRaw(chunk.subarray(segment));
        const rest = chunk.subarray(lineStart);
        if (rest.length > 0 && !oversized) {
          lineParts.push(rest);
          lineSize += rest.length;
        }
      },
      flush(controller) {
        // A stream that ends mid-event: what arrived is passed on as it is.
        if (oversized || endAfterCR) emit(controller);
        else if (eventSize > 0) controller.enqueue(join(eventParts, eventSize));
        reset();
      },
    });
  }
}
