/**
 * Server-sent events encoding: the one place text becomes an SSE event. Knows nothing of JSON-RPC.
 *
 * @module
 */

/** One event to write. */
export interface SseOut {
  /** The payload; any line break in it (`\r\n`, `\r`, `\n`) starts another `data:` line. */
  data: string;
  /** The `event` field; omitted when undefined. */
  event?: string;
  /** The `id` field; omitted when undefined. */
  id?: string;
  /** The `retry` field (ASCII digits); omitted when undefined. */
  retry?: string;
}

/** A field value that cannot be written as one SSE line. */
export class SseEncodeError extends Error {
  override name = "SseEncodeError";
}

const LINE_BREAK = /\r\n|\r|\n/;

function single(field: string, value: string): string {
  // A line break would end the field early; NUL in an id makes a conforming parser drop the id.
  if (/[\r\n]/.test(value) || (field === "id" && value.includes("\0"))) {
    throw new SseEncodeError(
      `an SSE ${field} field cannot hold a line break${field === "id" ? " or NUL" : ""}`,
    );
  }
  return `${field}: ${value}\n`;
}

/**
 * Writes one event so that a parser following the HTML standard's algorithm reads back exactly
 * `data`: each line of it in its own `data:` field, always after one space (which the parser
 * removes, so a line's own leading space survives).
 * @throws {SseEncodeError} when `event`, `id` or `retry` holds a line break
 *
 * @example
 * ```ts
 * encodeSseEvent({ event: "message", data: "a\rb" }); // "event: message\ndata: a\ndata: b\n\n"
 * ```
 */
export function encodeSseEvent(e: SseOut): string {
  let out = "";
  if (e.retry !== undefined) {
    if (!/^\d+$/.test(e.retry)) throw new SseEncodeError("an SSE retry field holds digits only");
    out += `retry: ${e.retry}\n`;
  }
  if (e.id !== undefined) out += single("id", e.id);
  if (e.event !== undefined) out += single("event", e.event);
  for (const line of e.data.split(LINE_BREAK)) out += `data: ${line}\n`;
  return out + "\n";
}
