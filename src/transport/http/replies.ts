/**
 * The proxy's own answers as an HTTP body.
 *
 * @module
 */
import type { Outbound } from "../../pipeline/exchange.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * The answers meant for the client as one JSON body: the single answer, or an array of several.
 * A refused batch comes as one answer that is already an array. Null when there is none.
 */
export function repliesBody(outs: readonly Outbound[]): Uint8Array<ArrayBuffer> | null {
  const texts = outs.filter((o) => o.to === "client").map((o) => decoder.decode(o.bytes).trimEnd());
  if (texts.length === 0) return null;
  return encoder.encode(texts.length === 1 ? texts[0]! : `[${texts.join(",")}]`);
}
