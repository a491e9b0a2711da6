import assert from "node:assert/strict";
import { KeyFileError, KeyRing, parseKeyFile, readKeyFile } from "./key_file.ts";
import { defaultKeyId, ed25519Signer, generateEd25519, hmacSigner, KeyError } from "./signing.ts";

const SECRET_A = "the first secret, of thirty-two bytes";
const SECRET_B = "the second secret # with a hash sign";

function fails(text: string, line: number, message: RegExp, file = "keys.txt"): void {
  assert.throws(
    () => parseKeyFile(text, file, () => assert.fail("no PEM is read")),
    (e: unknown) => {
      assert.ok(e instanceof KeyFileError, String(e));
      assert.equal(e.line, line);
      assert.match(e.message, message);
      assert.ok(e.message.startsWith(`${file}:${line}: `), e.message);
      return true;
    },
  );
}

Deno.test("a key file lists HMAC secrets by key id, with comments, blank lines and CRLF", () => {
  const entries = parseKeyFile(
    `# keys over time\r\n\r\n  # indented comment\nhmac k1 ${SECRET_A}\r\nhmac\tk2\t${SECRET_B}  \n`,
    "keys.txt",
  );
  assert.deepEqual(entries.map((e) => [e.verifier.scheme, e.verifier.keyId, e.source]), [
    ["hmac-sha256", "k1", "keys.txt:4"],
    ["hmac-sha256", "k2", "keys.txt:5"],
  ]);
  const signed = hmacSigner(SECRET_B, "k2").sign("text");
  assert.equal(
    entries[1]!.verifier.check("text", signed),
    "ok",
    "the secret keeps its # and is trimmed",
  );
});

Deno.test("a key file's - stands for the default key id the proxy uses", () => {
  const [hmac] = parseKeyFile(`hmac - ${SECRET_A}\n`, "keys.txt");
  assert.equal(hmac!.verifier.keyId, defaultKeyId(SECRET_A));
  const pair = generateEd25519();
  const [ed] = parseKeyFile(`ed25519 -\n${pair.publicPem}`, "keys.txt");
  assert.equal(ed!.verifier.keyId, pair.keyId);
});

Deno.test("a key file gives Ed25519 keys by PEM path (from its folder) or as a PEM block", () => {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-keys-" });
  try {
    const old = generateEd25519();
    const now = generateEd25519();
    Deno.mkdirSync(`${dir}/pub`);
    Deno.writeTextFileSync(`${dir}/pub/old.pub`, old.publicPem);
    Deno.writeTextFileSync(
      `${dir}/keys.txt`,
      `ed25519 old pub/old.pub\ned25519 now\n${now.publicPem}hmac h ${SECRET_A}\n`,
    );
    const ring = new KeyRing(readKeyFile(`${dir}/keys.txt`));
    assert.equal(ring.size, 3);
    assert.equal(ring.describe(), "ed25519 keys old, now; hmac-sha256 key h");
    for (const [pair, id] of [[old, "old"], [now, "now"]] as const) {
      const sig = ed25519Signer(pair.privatePem, id).sign("record");
      assert.equal(ring.check("record", sig), "ok");
      assert.equal(ring.check("another record", sig), "modified");
    }
    assert.equal(
      ring.check("record", ed25519Signer(old.privatePem, "other").sign("record")),
      "wrong key",
    );
    assert.equal(ring.check("record", null), "unsigned");
    assert.equal(ring.check("record", "nonsense"), "malformed");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a key file refuses what it does not define, naming the line", () => {
  fails("# ok\nhmac k1\n", 2, /hmac: no secret after the key id/);
  fails("rsa k1 abc\n", 1, /unknown scheme "rsa": expected hmac or ed25519/);
  fails("hmac\n", 1, /expected `hmac KEY_ID SECRET`/);
  fails("\n\nhmac a:b secret\n", 3, /key id a:b contains ':'/);
  fails(`hmac ${"k".repeat(129)} secret\n`, 1, /key id is over 128 characters/);
  fails("ed25519 k1\nnot a pem\n", 1, /give a PEM path after the key id, or a -----BEGIN/);
  fails(
    "ed25519 k1\n-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n",
    2,
    /no -----END PUBLIC KEY-----/,
  );
  fails(
    "ed25519 k1\n-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n",
    1,
    /cannot read the Ed25519 public key/,
  );
  const pair = generateEd25519();
  assert.throws(
    () => parseKeyFile("ed25519 k1 private.pem\n", "keys.txt", () => pair.privatePem),
    /keys\.txt:1: this is a private key: give the public key/,
  );
  assert.throws(
    () =>
      parseKeyFile("ed25519 k1 nowhere.pem\n", "/tmp/keys.txt", (p) => {
        assert.equal(p, "/tmp/nowhere.pem", "relative to the key file's folder");
        throw new KeyError(`cannot read ${p}: not found`);
      }),
    /\/tmp\/keys\.txt:1: cannot read \/tmp\/nowhere\.pem/,
  );
});

Deno.test("a key file refuses two different keys under one key id, and keeps the same key given twice once", () => {
  assert.throws(
    () => parseKeyFile(`hmac k1 ${SECRET_A}\n# again\nhmac k1 ${SECRET_B}\n`, "keys.txt"),
    /keys\.txt:3: another hmac-sha256 key with key id k1 than the one from keys\.txt:1/,
  );
  const same = parseKeyFile(`hmac k1 ${SECRET_A}\nhmac k1 ${SECRET_A}\n`, "keys.txt");
  assert.equal(new KeyRing(same).size, 1);
  // One id for an HMAC and an Ed25519 key: the signature's scheme tells them apart.
  const pair = generateEd25519();
  const both = parseKeyFile(`hmac k1 ${SECRET_A}\ned25519 k1\n${pair.publicPem}`, "keys.txt");
  assert.equal(new KeyRing(both).size, 2);
});

Deno.test("readKeyFile refuses a missing file, a directory and one too large to be a key file", () => {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-keys-" });
  try {
    assert.throws(() => readKeyFile(`${dir}/none.txt`), KeyError);
    assert.throws(() => readKeyFile(dir), /is not a file/);
    Deno.writeTextFileSync(`${dir}/big.txt`, "#".repeat((1 << 20) + 1));
    assert.throws(() => readKeyFile(`${dir}/big.txt`), /is over 1048576 bytes/);
    Deno.writeFileSync(`${dir}/bin.txt`, new Uint8Array([0x68, 0xff, 0xfe]));
    assert.throws(() => readKeyFile(`${dir}/bin.txt`), /not UTF-8/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
