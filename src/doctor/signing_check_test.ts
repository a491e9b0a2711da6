import assert from "node:assert/strict";
import { generateEd25519 } from "../audit/signing.ts";
import { loadConfig } from "../config/load.ts";
import { checkSigning, secretSource } from "./signing_check.ts";

/** The check on the configuration `env` gives, as the doctor runs it. */
function check(env: Record<string, string>, file?: { path: string; text: string }) {
  const loaded = loadConfig({ file, env, flags: new Map(), upstreamArgv: [] });
  return checkSigning(loaded.config.audit, secretSource(loaded.setBy));
}

function keyPair(dir: string, mode: number): { priv: string; pub: string } {
  const pair = generateEd25519();
  const priv = `${dir}/signing.pem`;
  const pub = `${dir}/signing.pub.pem`;
  Deno.writeTextFileSync(priv, pair.privatePem, { mode });
  Deno.chmodSync(priv, mode);
  Deno.writeTextFileSync(pub, pair.publicPem);
  return { priv, pub };
}

Deno.test("signing: the HMAC secret's source and length are named, never its value", () => {
  const secret = "s3cr3t-value-0123456789abcdef0123456789";
  const r = check({ AUDIT_SECRET: secret });
  assert.equal(r.status, "ok");
  assert.match(r.detail, /^hmac-sha256 key [0-9a-f]{8} from AUDIT_SECRET \(39 bytes\)$/);
  const short = check({ AUDIT_SECRET: "tiny" });
  assert.equal(short.status, "warn");
  assert.match(short.fix ?? "", /export AUDIT_SECRET=\$\(openssl rand -hex 32\)/);
  assert.ok(
    !JSON.stringify([r, short]).includes(secret) && !JSON.stringify(short).includes("tiny"),
  );
});

Deno.test("signing: no key fails; audit.sign false warns", () => {
  const none = check({});
  assert.equal(none.status, "fail");
  assert.equal(none.detail, "no signing key: the proxy would write unsigned records");
  const off = check({ MCP_AUDIT_AUDIT_SIGN: "false" });
  assert.equal(off.status, "warn");
  assert.equal(off.detail, "audit.sign is false: records are not signed");
});

Deno.test("signing: an Ed25519 key readable by others warns with chmod 600; at 0600 it passes", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const { priv, pub } = keyPair(dir, 0o644);
    const env = {
      MCP_AUDIT_AUDIT_SIGNING_PRIVATE_KEY_FILE: priv,
      MCP_AUDIT_AUDIT_SIGNING_PUBLIC_KEY_FILE: pub,
    };
    const loose = check(env);
    assert.equal(loose.status, "warn");
    assert.match(
      loose.detail,
      /^ed25519 key [0-9a-f]{8} from .*: readable by group or others \(mode 0644\)$/,
    );
    assert.equal(loose.fix, `chmod 600 ${priv}`);
    Deno.chmodSync(priv, 0o600);
    const tight = check(env);
    assert.equal(tight.status, "ok");
    assert.deepEqual(tight.notes, [`public key ${pub} matches`]);
    assert.ok(!JSON.stringify([loose, tight]).includes("PRIVATE KEY"));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("signing: a public key that is not the private key's half fails; so does a file that is no key", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const { priv } = keyPair(dir, 0o600);
    Deno.writeTextFileSync(`${dir}/other.pub.pem`, generateEd25519().publicPem);
    const env = {
      MCP_AUDIT_AUDIT_SIGNING_PRIVATE_KEY_FILE: priv,
      MCP_AUDIT_AUDIT_SIGNING_PUBLIC_KEY_FILE: `${dir}/other.pub.pem`,
    };
    const r = check(env);
    assert.equal(r.status, "fail");
    assert.match(r.detail, /other\.pub\.pem is not the public half of/);
    Deno.writeTextFileSync(priv, "not a key\n");
    const bad = check(env);
    assert.equal(bad.status, "fail");
    assert.match(
      bad.detail,
      /^audit\.signing\.private_key_file: cannot read the Ed25519 private key/,
    );
    assert.match(bad.fix ?? "", /mcp-audit keygen/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("signing: the source named is the one in force; an empty variable is not set", () => {
  const secret = "0123456789abcdef0123456789abcdef-secret";
  const other = "fedcba9876543210fedcba9876543210-other";
  const file = { path: "c.yaml", text: `audit:\n  secret: ${secret}\n` };
  const from = (env: Record<string, string>, f?: typeof file) =>
    / from (\S+) /.exec(check(env, f).detail)?.[1];
  assert.equal(from({}, file), "audit.secret");
  assert.equal(from({ AUDIT_SECRET: "" }, file), "audit.secret");
  assert.equal(from({ MCP_AUDIT_SIGNING_SECRET: "", AUDIT_SECRET: other }), "AUDIT_SECRET");
  assert.equal(
    from({ MCP_AUDIT_SIGNING_SECRET: other, AUDIT_SECRET: secret }),
    "MCP_AUDIT_SIGNING_SECRET",
  );
  assert.equal(from({ MCP_AUDIT_AUDIT_SECRET: other }, file), "MCP_AUDIT_AUDIT_SECRET");
  assert.equal(from({ MCP_AUDIT_AUDIT_SECRET: "", AUDIT_SECRET: "" }, file), "audit.secret");
  assert.equal(check({ AUDIT_SECRET: "", MCP_AUDIT_SIGNING_SECRET: "" }).status, "fail");
});
