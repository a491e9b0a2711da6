/**
 * The anchor: a small signed file, kept away from the log, naming the last record the proxy knew
 * to be durable in it. A hash chain shows edits inside a log but not a log cut back to an earlier
 * clean end; the anchor does, as long as whoever cuts the log cannot also rewrite the anchor.
 *
 * One line of RFC 8785 JSON:
 * `{"format":"mcp-audit-anchor/1","hash":…,"id":…,"key_id":…,"log":…,"seq":…,"sig":…,"ts":…}`.
 * `sig` is over the canonical form of every other member, signed like a record (SPEC §3). The
 * `format` member keeps an anchor's signed text from ever being a record's.
 *
 * @example
 * ```ts
 * import { anchorText, parseAnchor } from "./anchor.ts";
 * import { hmacSigner } from "./signing.ts";
 * const key = hmacSigner("a secret of at least thirty-two bytes!!");
 * const head = { seq: 7, hash: "ab".repeat(32), id: "01JD0000000000000000000007", ts: "2026-01-01T00:00:00.000Z" };
 * const anchor = parseAnchor(anchorText("/var/log/audit.jsonl", head, key));
 * console.assert(anchor.seq === 7);
 * ```
 *
 * @module
 */
import { canonicalize } from "./canonical.ts";
import type { SignatureCheck, SignatureVerifier, Signer } from "./signing.ts";
import { isJsonObject, type JsonObject, parseLossless } from "../jsonrpc/json.ts";

/** The `format` member of every anchor this version writes. */
export const ANCHOR_FORMAT = "mcp-audit-anchor/1";

/** The record an anchor names. */
export interface AnchorHead {
  seq: number;
  /** Hex SHA-256 of the record's stored line: the `prev` of the record after it. */
  hash: string;
  id: string;
  ts: string;
}

/** A parsed anchor. */
export interface Anchor extends AnchorHead {
  /** The log it was written for (absolute path, as the proxy resolved it). */
  log: string;
  keyId: string | null;
  sig: string | null;
}

/** The anchor file is not one. */
export class AnchorFormatError extends Error {
  override name = "AnchorFormatError";
}

function unsignedMembers(log: string, head: AnchorHead, keyId: string | null): JsonObject {
  return {
    format: ANCHOR_FORMAT,
    log,
    seq: head.seq,
    hash: head.hash,
    id: head.id,
    ts: head.ts,
    key_id: keyId,
  };
}

/** The anchor's text (one line, with its newline) for `head` of the log at `log`. */
export function anchorText(log: string, head: AnchorHead, signer: Signer | null): string {
  const members = unsignedMembers(log, head, signer?.keyId ?? null);
  const sig = signer === null ? null : signer.sign(canonicalize(members));
  return canonicalize({ ...members, sig }) + "\n";
}

const HEX64 = /^[0-9a-f]{64}$/;

/** Reads an anchor's text. */
export function parseAnchor(text: string): Anchor {
  let value;
  try {
    value = parseLossless(text.trim());
  } catch (e) {
    throw new AnchorFormatError(`not JSON: ${(e as Error).message}`);
  }
  if (!isJsonObject(value) || value.format !== ANCHOR_FORMAT) {
    throw new AnchorFormatError(`not an anchor (no "format":"${ANCHOR_FORMAT}")`);
  }
  const { log, seq, hash, id, ts, key_id: keyId, sig } = value;
  if (typeof log !== "string") throw new AnchorFormatError("log is not a string");
  if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 1) {
    throw new AnchorFormatError("seq is not a positive integer");
  }
  if (typeof hash !== "string" || !HEX64.test(hash)) {
    throw new AnchorFormatError("hash is not 64 lowercase hex digits");
  }
  if (typeof id !== "string" || typeof ts !== "string") {
    throw new AnchorFormatError("id or ts is not a string");
  }
  if (keyId !== null && typeof keyId !== "string") {
    throw new AnchorFormatError("key_id is not a string");
  }
  if (sig !== null && typeof sig !== "string") throw new AnchorFormatError("sig is not a string");
  const known = new Set(["format", "log", "seq", "hash", "id", "ts", "key_id", "sig"]);
  const extra = Object.keys(value).filter((k) => !known.has(k));
  if (extra.length > 0) throw new AnchorFormatError(`unknown members: ${extra.join(", ")}`);
  return { log, seq, hash, id, ts, keyId, sig };
}

/** The text an anchor's signature covers. */
function signedText(anchor: Anchor): string {
  return canonicalize(unsignedMembers(anchor.log, anchor, anchor.keyId));
}

/** Checks an anchor's signature with the key `verify` was given. */
export function checkAnchor(anchor: Anchor, verifier: SignatureVerifier): SignatureCheck {
  const check = verifier.check(signedText(anchor), anchor.sig);
  // The key_id member is signed too: one that disagrees with the signature's is an edit.
  if (check === "ok" && anchor.keyId !== verifier.keyId) return "modified";
  return check;
}

/**
 * Whether `signer` made this anchor. Both schemes sign deterministically (HMAC, and Ed25519 per
 * RFC 8032), so signing the same text again must give the same signature; the proxy needs no
 * separate verifying key for its own anchor.
 */
export function signedBy(anchor: Anchor, signer: Signer | null): boolean {
  if (signer === null) return anchor.sig === null && anchor.keyId === null;
  return anchor.keyId === signer.keyId && anchor.sig === signer.sign(signedText(anchor));
}
