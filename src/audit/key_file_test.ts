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

Deno.test("a key file's valid lines limit a key to the seqs it signed, before or after its line, adding up", () => {
  const entries = parseKeyFile(
    `valid hmac k1 1-14\nhmac k1 ${SECRET_A}\nhmac\tk2 ${SECRET_B}\n` +
      "  valid\thmac  k2 15-\nvalid hmac k1 40-41\n",
    "keys.txt",
  );
  assert.deepEqual(entries.map((e) => [e.verifier.keyId, e.seqs]), [
    ["k1", [{ from: 1, to: 14, source: "keys.txt:1" }, { from: 40, to: 41, source: "keys.txt:5" }]],
    ["k2", [{ from: 15, to: null, source: "keys.txt:4" }]],
  ]);
  const ring = new KeyRing(entries);
  const k1 = hmacSigner(SECRET_A, "k1").sign("r");
  const k2 = hmacSigner(SECRET_B, "k2").sign("r");
  assert.equal(ring.outsideSeqs(k1, 1), null);
  assert.equal(ring.outsideSeqs(k1, 14), null);
  assert.equal(ring.outsideSeqs(k1, 41), null);
  assert.equal(ring.outsideSeqs(k1, 15), "seq 1-14 (keys.txt:1), seq 40-41 (keys.txt:5)");
  assert.equal(ring.outsideSeqs(k2, 14), "seq 15 on (keys.txt:4)");
  assert.equal(ring.outsideSeqs(k2, 1_000_000), null);
  assert.equal(ring.check("r", k1), "ok", "the signature itself is still good");
  // A key no range names, or a signature naming no key: nothing to say here.
  const open = new KeyRing(parseKeyFile(`hmac k3 ${SECRET_A}\n`, "keys.txt"));
  assert.equal(open.outsideSeqs(hmacSigner(SECRET_A, "k3").sign("r"), 99), null);
  assert.equal(ring.outsideSeqs(null, 1), null);
  assert.equal(ring.outsideSeqs("nonsense", 1), null);
});

Deno.test("a key limited in a key file stays limited when given again elsewhere", () => {
  const limited = parseKeyFile(`hmac k1 ${SECRET_A}\nvalid hmac k1 1-3\n`, "keys.txt");
  const again = parseKeyFile(`hmac k1 ${SECRET_A}\n`, "more.txt");
  const sig = hmacSigner(SECRET_A, "k1").sign("r");
  for (const ring of [new KeyRing([...again, ...limited]), new KeyRing([...limited, ...again])]) {
    assert.equal(ring.size, 1);
    assert.equal(ring.outsideSeqs(sig, 4), "seq 1-3 (keys.txt:2)");
  }
  // The same line twice says it once.
  const twice = parseKeyFile(`hmac k1 ${SECRET_A}\nhmac k1 ${SECRET_A}\nvalid hmac k1 1-3\n`, "k");
  assert.equal(new KeyRing(twice).outsideSeqs(sig, 4), "seq 1-3 (k:3)");
});

Deno.test("a key file refuses a valid line that is not one, naming the line", () => {
  const form = /expected `valid SCHEME KEY_ID FIRST-LAST` or `valid SCHEME KEY_ID FIRST-`/;
  fails(`hmac k1 ${SECRET_A}\nvalid hmac k1\n`, 2, form);
  fails(`hmac k1 ${SECRET_A}\nvalid hmac k1 3\n`, 2, form);
  fails(`hmac k1 ${SECRET_A}\nvalid hmac k1 -3\n`, 2, form);
  fails(`hmac k1 ${SECRET_A}\nvalid hmac k1 1-3 extra\n`, 2, form);
  fails("valid\n", 1, form);
  fails(`hmac k1 ${SECRET_A}\nvalid hmac k1 0-3\n`, 2, /valid: seqs are whole numbers from 1/);
  fails(
    `hmac k1 ${SECRET_A}\nvalid hmac k1 9999999999999999-\n`,
    2,
    /valid: seqs are whole numbers from 1/,
  );
  fails(
    `hmac k1 ${SECRET_A}\nvalid hmac k1 5-4\n`,
    2,
    /valid: the last seq 4 is below the first 5/,
  );
  fails(`hmac k1 ${SECRET_A}\nvalid rsa k1 1-3\n`, 2, /valid: unknown scheme "rsa"/);
  fails(`hmac - ${SECRET_A}\nvalid hmac - 1-3\n`, 2, /valid: name the key id the signatures carry/);
  fails(
    `hmac k1 ${SECRET_A}\nvalid hmac k2 1-3\n`,
    2,
    /valid: no hmac-sha256 key with key id k2 in/,
  );
  fails(`hmac k1 ${SECRET_A}\nvalid ed25519 k1 1-3\n`, 2, /valid: no ed25519 key with key id k1/);
  // A secret is still the rest of its line, whatever it looks like.
  const [e] = parseKeyFile("hmac k1 valid hmac k1 1-3\n", "keys.txt");
  assert.equal(e!.seqs, undefined);
  assert.equal(e!.verifier.check("r", hmacSigner("valid hmac k1 1-3", "k1").sign("r")), "ok");
  // The default id, named as signatures carry it.
  const [d] = parseKeyFile(`hmac - ${SECRET_A}\nvalid hmac ${defaultKeyId(SECRET_A)} 1-\n`, "k");
  assert.deepEqual(d!.seqs, [{ from: 1, to: null, source: "k:2" }]);
});
