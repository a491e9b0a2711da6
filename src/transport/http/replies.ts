/**
 * The proxy's own answers as an HTTP body.
 *
 * @module
 */
import type { Outbound } from "../../pipeline/exchange.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * The answers meant for the client as one JSON body: an array when they answer a batch (or are
 * several), else the single answer. Null when there is none.
 */
export function repliesBody(
  outs: readonly Outbound[],
  batch: boolean,
): Uint8Array<ArrayBuffer> | null {
  const texts = outs.filter((o) => o.to === "client").map((o) => decoder.decode(o.bytes).trimEnd());
  if (texts.length === 0) return null;
  return encoder.encode(texts.length === 1 && !batch ? texts[0]! : `[${texts.join(",")}]`);
}
