import assert from "node:assert/strict";
import { createHash, createHmac, createPublicKey, generateKeyPairSync, verify } from "node:crypto";
import { Buffer } from "node:buffer";
import {
  defaultKeyId,
  ed25519Signer,
  ed25519Verifier,
  generateEd25519,
  hmacSigner,
  KeyError,
} from "./signing.ts";

const TEXT = '{"kind":"request","seq":1,"v":1}';

Deno.test("defaultKeyId is the first 8 hex characters of SHA-256 of the key", () => {
  // SHA-256("abc") = ba7816bf 8f01cfea ...
  assert.equal(defaultKeyId("abc"), "ba7816bf");
  assert.equal(
    defaultKeyId("sécret"),
    createHash("sha256").update("sécret", "utf8").digest("hex").slice(0, 8),
  );
  assert.equal(defaultKeyId(new TextEncoder().encode("abc")), "ba7816bf");
});

Deno.test("hmacSigner writes hmac-sha256:<key id>:<hex> matching RFC 4231 test case 2", () => {
  const s = hmacSigner("Jefe");
  assert.equal(s.scheme, "hmac-sha256");
  assert.equal(s.keyId, defaultKeyId("Jefe"));
  assert.equal(
    s.sign("what do ya want for nothing?"),
    `hmac-sha256:${
      defaultKeyId("Jefe")
    }:5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843`,
  );
});

Deno.test("hmacSigner agrees with node:crypto and WebCrypto over the UTF-8 bytes", async () => {
  const secret = "s3cr3t-ключ-🔑";
  const text = '{"a":"é😀\u2028"}';
  const sig = hmacSigner(secret).sign(text);
  const [scheme, keyId, hex] = sig.split(":");
  assert.equal(scheme, "hmac-sha256");
  assert.equal(
    keyId,
    createHash("sha256").update(Buffer.from(secret, "utf8")).digest("hex").slice(0, 8),
  );
  assert.equal(
    hex,
    createHmac("sha256", Buffer.from(secret, "utf8")).update(Buffer.from(text, "utf8")).digest(
      "hex",
    ),
  );
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(text)));
  assert.equal(hex, Buffer.from(mac).toString("hex"));
  assert.match(sig, /^hmac-sha256:[0-9a-f]{8}:[0-9a-f]{64}$/);
});

Deno.test("hmacSigner agrees with createHmac for keys and texts of every length around the block", () => {
  // Keys shorter than, equal to and longer than the 64-byte block (the last are hashed first),
  // texts from empty to several blocks, and one signer reused, as the chain reuses it.
  for (const keyLength of [1, 31, 63, 64, 65, 200]) {
    const secret = "k".repeat(keyLength);
    const signer = hmacSigner(secret, "id");
    for (let n = 0; n <= 300; n += 7) {
      const text = "aé😀\u2028".repeat(n).slice(0, n);
      const want = createHmac("sha256", Buffer.from(secret, "utf8"))
        .update(Buffer.from(text, "utf8")).digest("hex");
      assert.equal(signer.sign(text), `hmac-sha256:id:${want}`, `key ${keyLength}, text ${n}`);
      assert.equal(signer.check(text, signer.sign(text)), "ok");
    }
  }
});

Deno.test("hmacSigner uses a configured key id", () => {
  const s = hmacSigner("secret", "prod-2026");
  assert.ok(s.sign(TEXT).startsWith("hmac-sha256:prod-2026:"));
  assert.equal(s.check(TEXT, s.sign(TEXT)), "ok");
});

Deno.test("hmac check tells ok, modified, wrong key, unsigned and malformed apart", () => {
  const s = hmacSigner("secret");
  const sig = s.sign(TEXT);
  assert.equal(s.check(TEXT, sig), "ok");
  assert.equal(s.check(TEXT.replace("1", "2"), sig), "modified");
  assert.equal(s.check(TEXT, sig.slice(0, -1) + (sig.endsWith("0") ? "1" : "0")), "modified");
  assert.equal(s.check(TEXT, sig.slice(0, -2)), "modified");
  assert.equal(hmacSigner("other").check(TEXT, sig), "wrong key");
  assert.equal(s.check(TEXT, null), "unsigned");
  assert.equal(s.check(TEXT, "garbage"), "malformed");
  assert.equal(s.check(TEXT, "rsa:abc:def"), "malformed");
  const ed = generateEd25519();
  assert.equal(s.check(TEXT, ed25519Signer(ed.privatePem).sign(TEXT)), "wrong key");
});

Deno.test("Ed25519 signatures round-trip and name the public key's id", () => {
  const pair = generateEd25519();
  const signer = ed25519Signer(pair.privatePem);
  const verifier = ed25519Verifier(pair.publicPem);
  assert.equal(signer.scheme, "ed25519");
  assert.equal(signer.keyId, pair.keyId);
  assert.equal(verifier.keyId, pair.keyId);
  const der = createPublicKey(pair.publicPem).export({ type: "spki", format: "der" });
  assert.equal(pair.keyId, createHash("sha256").update(der).digest("hex").slice(0, 8));
  const sig = signer.sign(TEXT);
  assert.match(sig, /^ed25519:[0-9a-f]{8}:[A-Za-z0-9_-]{86}$/);
  assert.equal(signer.sign(TEXT), sig, "Ed25519 is deterministic");
  assert.equal(verifier.check(TEXT, sig), "ok");
});

Deno.test("Ed25519 signatures verify independently with node:crypto and WebCrypto", async () => {
  const pair = generateEd25519();
  const text = '{"n":12345678901234567890,"s":"é😀"}';
  const sig = ed25519Signer(pair.privatePem).sign(text);
  const raw = Buffer.from(sig.split(":")[2]!, "base64url");
  assert.equal(raw.length, 64);
  const bytes = Buffer.from(text, "utf8");
  assert.equal(verify(null, bytes, createPublicKey(pair.publicPem), raw), true);
  const der = createPublicKey(pair.publicPem).export({ type: "spki", format: "der" });
  const key = await crypto.subtle.importKey(
    "spki",
    new Uint8Array(der),
    { name: "Ed25519" },
    false,
    [
      "verify",
    ],
  );
  assert.equal(
    await crypto.subtle.verify("Ed25519", key, new Uint8Array(raw), new Uint8Array(bytes)),
    true,
  );
});

Deno.test("Ed25519 check reports wrong key, modified and unsigned", () => {
  const a = generateEd25519();
  const b = generateEd25519();
  const sig = ed25519Signer(a.privatePem).sign(TEXT);
  const verifier = ed25519Verifier(a.publicPem);
  assert.equal(ed25519Verifier(b.publicPem).check(TEXT, sig), "wrong key");
  assert.equal(verifier.check(TEXT + " ", sig), "modified");
  assert.equal(verifier.check(TEXT, null), "unsigned");
  assert.equal(verifier.check(TEXT, hmacSigner("x").sign(TEXT)), "wrong key");
  // Same key id, someone else's signature bytes.
  const forged = sig.split(":").slice(0, 2).join(":") + ":" +
    ed25519Signer(b.privatePem).sign(TEXT).split(":")[2];
  assert.equal(verifier.check(TEXT, forged), "modified");
});

Deno.test("Ed25519 key loading refuses keys that are not Ed25519 PEM", () => {
  const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const ecPrivate = ec.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  const ecPublic = ec.publicKey.export({ type: "spki", format: "pem" }).toString();
  assert.throws(() => ed25519Signer(ecPrivate), KeyError);
  assert.throws(() => ed25519Verifier(ecPublic), KeyError);
  assert.throws(() => ed25519Signer("not a pem"), KeyError);
  assert.throws(() => ed25519Verifier("not a pem"), KeyError);
});
