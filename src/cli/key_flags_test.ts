import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { ed25519Signer, hmacSigner } from "../audit/signing.ts";
import { loadConfig } from "../config/load.ts";
import { configKeys, keysFor } from "./key_flags.ts";

/** The audit section of a configuration whose keys are `audit`. */
function audit(keys: Record<string, unknown>) {
  const text = JSON.stringify({ audit: keys });
  return loadConfig({ file: { path: "c.json", text }, env: {}, flags: new Map(), upstreamArgv: [] })
    .config.audit;
}

Deno.test("configKeys: the configuration's own key verifies what the proxy signs with it", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const pair = generateKeyPairSync("ed25519");
    const privatePem = String(pair.privateKey.export({ type: "pkcs8", format: "pem" }));
    const publicPem = String(pair.publicKey.export({ type: "spki", format: "pem" }));
    Deno.writeTextFileSync(`${dir}/signing.key`, privatePem);
    Deno.writeTextFileSync(`${dir}/signing.pub`, publicPem);
    const signature = ed25519Signer(privatePem).sign("{}");
    for (
      const keys of [
        { signing: { private_key_file: `${dir}/signing.key` } },
        { signing: { public_key_file: `${dir}/signing.pub` } },
      ]
    ) {
      const ring = configKeys(audit(keys));
      assert.ok(ring !== null && ring.size === 1, JSON.stringify(keys));
      assert.equal(ring.keys[0]!.check("{}", signature), "ok", JSON.stringify(keys));
      assert.equal(ring.keys[0]!.check("{ }", signature), "modified");
    }
    const hmac = configKeys(audit({ secret: "a-long-enough-secret-for-the-test-0123" }));
    const signed = hmacSigner("a-long-enough-secret-for-the-test-0123").sign("{}");
    assert.ok(hmac !== null);
    assert.equal(hmac.keys[0]!.check("{}", signed), "ok");
    assert.equal(configKeys(audit({})), null, "no key named: structure only");
    assert.equal(configKeys(audit({ sign: false, secret: "x".repeat(40) })), null);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("keysFor: an empty MCP_AUDIT_SIGNING_SECRET is not set, so AUDIT_SECRET is used", () => {
  const secret = "the-audit-secret-of-this-test-4821";
  const ring = keysFor({}, { MCP_AUDIT_SIGNING_SECRET: "", AUDIT_SECRET: secret });
  assert.ok(ring !== null);
  assert.equal(ring.keys[0]!.check("{}", hmacSigner(secret).sign("{}")), "ok");
  assert.equal(keysFor({}, { AUDIT_SECRET: "" }), null);
});
