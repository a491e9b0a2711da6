import assert from "node:assert/strict";
import {
  ANCHOR_FORMAT,
  AnchorFormatError,
  anchorText,
  checkAnchor,
  parseAnchor,
  signedBy,
} from "./anchor.ts";
import { canonicalize } from "./canonical.ts";
import { ed25519Signer, ed25519Verifier, generateEd25519, hmacSigner } from "./signing.ts";

const KEY = hmacSigner("0123456789abcdef0123456789abcdef");
const HEAD = {
  seq: 42,
  hash: "ab".repeat(32),
  id: "01JD0000000000000000000042",
  ts: "2026-11-25T03:49:36.219Z",
};
const LOG = "/var/log/mcp/audit.jsonl";

Deno.test("an anchor is one canonical line naming the log, the record and the key, signed", () => {
  const text = anchorText(LOG, HEAD, KEY);
  assert.ok(text.endsWith("\n") && !text.slice(0, -1).includes("\n"));
  const value = JSON.parse(text);
  assert.equal(text.slice(0, -1), canonicalize(value), "stored canonical");
  assert.deepEqual(Object.keys(value).sort(), [
    "format",
    "hash",
    "id",
    "key_id",
    "log",
    "seq",
    "sig",
    "ts",
  ]);
  assert.equal(value.format, ANCHOR_FORMAT);
  assert.equal(value.key_id, KEY.keyId);
  const { sig, ...unsigned } = value;
  assert.equal(sig, KEY.sign(canonicalize(unsigned)), "the signature covers every other member");
  const anchor = parseAnchor(text);
  assert.deepEqual(anchor, { ...HEAD, log: LOG, keyId: KEY.keyId, sig });
  assert.equal(checkAnchor(anchor, KEY), "ok");
  assert.equal(signedBy(anchor, KEY), true);
});

Deno.test("an anchor's signature is checked: an edited member, another key, no signature", () => {
  const anchor = parseAnchor(anchorText(LOG, HEAD, KEY));
  assert.equal(checkAnchor({ ...anchor, seq: 41 }, KEY), "modified");
  assert.equal(checkAnchor({ ...anchor, log: "/tmp/other.jsonl" }, KEY), "modified");
  assert.equal(checkAnchor({ ...anchor, keyId: "deadbeef" }, KEY), "modified");
  const other = hmacSigner("another secret entirely, 32 bytes");
  assert.equal(checkAnchor(anchor, other), "wrong key");
  assert.equal(signedBy(anchor, other), false);
  const unsigned = parseAnchor(anchorText(LOG, HEAD, null));
  assert.equal(unsigned.sig, null);
  assert.equal(checkAnchor(unsigned, KEY), "unsigned");
  assert.equal(signedBy(unsigned, null), true);
  assert.equal(signedBy(unsigned, KEY), false);
});

Deno.test("an Ed25519 anchor is checked with the public key and recognised by its signer", () => {
  const pair = generateEd25519();
  const signer = ed25519Signer(pair.privatePem);
  const anchor = parseAnchor(anchorText(LOG, HEAD, signer));
  assert.equal(checkAnchor(anchor, ed25519Verifier(pair.publicPem)), "ok");
  assert.equal(signedBy(anchor, signer), true, "Ed25519 signs deterministically");
  assert.equal(checkAnchor(anchor, KEY), "wrong key");
});

Deno.test("parseAnchor refuses what is not an anchor, a record among them", () => {
  const good = JSON.parse(anchorText(LOG, HEAD, KEY));
  const bad: unknown[] = [
    "not json",
    "[]",
    { ...good, format: "mcp-audit-anchor/2" },
    { ...good, seq: 0 },
    { ...good, seq: "42" },
    { ...good, hash: "AB".repeat(32) },
    { ...good, extra: 1 },
    { v: 1, seq: 1, prev: "0".repeat(64), sig: null },
  ];
  for (const b of bad) {
    const text = typeof b === "string" ? b : JSON.stringify(b);
    assert.throws(() => parseAnchor(text), AnchorFormatError, text);
  }
});
