/**
 * Finds the id of a message too large to parse, from its first and last bytes. Only positions
 * that are certainly top-level are trusted: `id` as the first member (or second, after
 * `"jsonrpc":"2.0"`), or as the last member before the closing brace.
 *
 * @module
 */
import { changedByDouble, rawNumber } from "./json.ts";
import type { JsonRpcId } from "./message.ts";

/** One code unit per byte. (`TextDecoder("latin1")` is windows-1252 and remaps 0x80–0x9F.) */
function bytesToText(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    out += String.fromCharCode(...bytes.subarray(i, i + 4096));
  }
  return out;
}
const VALUE = String.raw`(-?(?:0|[1-9]\d*)|"(?:[^"\\]|\\.){0,256}")`;
const HEAD = new RegExp(
  String.raw`^\s*\{\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?"id"\s*:\s*` + VALUE + String.raw`\s*[,}]`,
);
const TAIL = new RegExp(String.raw`[,{]\s*"id"\s*:\s*` + VALUE + String.raw`\s*\}\s*$`);

function toId(text: string): JsonRpcId | undefined {
  if (text.startsWith('"')) {
    try {
      // A lone string literal: JSON.parse reads it right (the V8 defect parseJson guards against
      // is in member names only).
      const value: unknown = JSON.parse(
        new TextDecoder().decode(Uint8Array.from(text, (c) => c.charCodeAt(0))),
      );
      return typeof value === "string" ? value : undefined;
    } catch {
      return undefined;
    }
  }
  // As a lossless parse would have it: -0 and big integers keep their text.
  const n = Number(text);
  return changedByDouble(text, n) ? rawNumber(text) : n;
}

/** The id, when it can be found for certain; `undefined` otherwise. */
export function recoverId(head: Uint8Array, tail: Uint8Array): JsonRpcId | undefined {
  // Bytes map 1:1 to code units, so a multi-byte character cut at the edge cannot fail.
  const h = HEAD.exec(bytesToText(head));
  if (h?.[1] !== undefined) return toId(h[1]);
  const t = TAIL.exec(bytesToText(tail));
  if (t?.[1] !== undefined) return toId(t[1]);
  return undefined;
}

/** True when the head shows a `"method"` member early, i.e. the message is a request. */
export function looksLikeRequest(head: Uint8Array): boolean {
  return /^\s*\{[^{[]*"method"\s*:/.test(bytesToText(head));
}
