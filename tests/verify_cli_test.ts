/**
 * `verify` and `keygen` from the command line: Ed25519 logs end to end, progress on a terminal,
 * exit code 2 when the log cannot be read or no key is given, 3 when only the structure was
 * checked, and the unsigned / wrong key family; a rotated log's archives (plain and gzipped) as one
 * chain, deleted, reordered and retention-deleted archives; several keys from a key file, each
 * limited to the seqs it signed; a log still being written, or cut after a checkpoint; a new file
 * after the log was deleted or moved; lines that are not canonical; SQLite databases and their
 * tampering.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { createHash } from "node:crypto";
import { recordText } from "../src/audit/record_text.ts";
import { type AuditRecord, eventFields, EventMethod, GENESIS } from "../src/audit/record.ts";
import { SqliteStore } from "../src/audit/storage/sqlite.ts";
import { anchorText } from "../src/audit/anchor.ts";
import { DatabaseSync } from "node:sqlite";
import { hmacSigner, type Signer } from "../src/audit/signing.ts";
import type { JsonObject } from "../src/jsonrpc/json.ts";

const root = new URL("..", import.meta.url).pathname;
const deno = Deno.execPath();
const SECRET = "verify-cli-test-secret-0123456789abcdef";

async function run(
  args: string[],
  opts: { cwd?: string; env?: Record<string, string>; stdin?: string } = {},
) {
  const child = new Deno.Command(deno, {
    args: ["run", "-A", `${root}main.ts`, ...args],
    cwd: opts.cwd ?? root,
    env: opts.env ?? {},
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(opts.stdin ?? ""));
  await w.close();
  const out = await child.output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

Deno.test("keygen writes an Ed25519 pair; a log signed with it verifies with the public key only", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-ed25519-" });
  try {
    const gen = await run(["keygen", "--out", `${dir}/signing`]);
    assertEquals(gen.code, 0, gen.stdout + gen.stderr);
    assertEquals(Deno.statSync(`${dir}/signing.key`).mode! & 0o777, 0o600);
    const again = await run(["keygen", "--out", `${dir}/signing`]);
    assertEquals(again.code, 1, "keygen never overwrites a key");

    Deno.writeTextFileSync(
      `${dir}/config.yaml`,
      `audit:\n  path: ${dir}/audit.jsonl\n  signing:\n    private_key_file: ${dir}/signing.key\n`,
    );
    const proxy = await run(["--", deno, "run", `${root}tests/fixtures/echo_upstream.ts`], {
      cwd: dir,
      stdin: '{"jsonrpc":"2.0","id":1,"method":"ping"}\n',
    });
    assertEquals(proxy.code, 0, proxy.stderr);
    assertEquals(proxy.stdout, '{"jsonrpc":"2.0","id":1,"result":{"echo":null}}\n');
    const lines = Deno.readTextFileSync(`${dir}/audit.jsonl`).trimEnd().split("\n");
    assert(
      lines.every((l) => JSON.parse(l).sig.startsWith("ed25519:")),
      "every record is signed with Ed25519",
    );

    const ok = await run(["verify", "--public-key", `${dir}/signing.pub`, `${dir}/audit.jsonl`]);
    assertEquals(ok.code, 0, ok.stdout);
    assert(ok.stdout.startsWith("OK: 4 records, seq 1-4"), ok.stdout);

    await run(["keygen", "--out", `${dir}/other`]);
    const wrong = await run(["verify", "--public-key", `${dir}/other.pub`, `${dir}/audit.jsonl`]);
    assertEquals(wrong.code, 1, wrong.stdout);
    assert(wrong.stdout.includes("seq 1-4: wrong key"), wrong.stdout);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("verify exits 2 when the log cannot be read", async () => {
  const r = await run(["verify", "/nonexistent/audit.jsonl"], { env: { AUDIT_SECRET: SECRET } });
  assertEquals(r.code, 2);
  assert(r.stdout.includes("cannot read"), r.stdout);
});

Deno.test({
  name: "verify shows progress on a terminal for a large log, and not when piped",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-progress-" });
    try {
      const big = `${dir}/big.jsonl`;
      Deno.writeTextFileSync(big, `{"pad":"${"x".repeat(1000)}"}\n`.repeat(10_000));
      const cmd = `${deno} run -A ${root}main.ts verify --no-signatures ${big}`;
      // `script` gives the command a pseudo-terminal, as a person at a shell would have.
      const tty = await new Deno.Command("script", {
        args: ["-qec", cmd, "/dev/null"],
        stdout: "piped",
      }).output();
      assert(
        new TextDecoder().decode(tty.stdout).includes(`verifying ${big}:`),
        "progress on a terminal",
      );
      const piped = await run(["verify", "--no-signatures", big]);
      assert(
        !piped.stdout.includes("verifying") && !piped.stderr.includes("verifying"),
        "no progress when piped",
      );
      assertEquals(piped.code, 1);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

/** A log written by two real proxy runs: the first with `first` as its secret, then `second`. */
async function twoRuns(dir: string, first: string | null, second: string | null): Promise<string> {
  const log = `${dir}/audit.jsonl`;
  for (const secret of [first, second]) {
    const env: Record<string, string> = { MCP_AUDIT_AUDIT_PATH: log };
    if (secret !== null) env.AUDIT_SECRET = secret;
    const proxy = await run(["--", deno, "run", `${root}tests/fixtures/echo_upstream.ts`], {
      cwd: dir,
      env,
      stdin: '{"jsonrpc":"2.0","id":1,"method":"ping"}\n',
    });
    assertEquals(proxy.code, 0, proxy.stderr);
  }
  return log;
}

/** The log with one byte of a stored result changed, and every prev after it made to match. */
function rechained(log: string): string {
  const lines = Deno.readTextFileSync(log).trimEnd().split("\n");
  const i = lines.findIndex((l) => l.includes('"echo":null'));
  assert(i > 0, "a response to tamper with");
  lines[i] = lines[i]!.replace('"echo":null', '"echo":true');
  const sha = (t: string) => createHash("sha256").update(t).digest("hex");
  for (let j = i + 1; j < lines.length; j++) {
    lines[j] = lines[j]!.replace(/"prev":"[0-9a-f]{64}"/, `"prev":"${sha(lines[j - 1]!)}"`);
  }
  const out = `${log}.rechained`;
  Deno.writeTextFileSync(out, lines.join("\n") + "\n");
  return out;
}

Deno.test("verify without a key exits 2 with one line saying how to give one, whatever the log", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-nokey-" });
  try {
    const log = await twoRuns(dir, SECRET, SECRET);
    for (const path of [log, rechained(log)]) {
      const r = await run(["verify", path]);
      assertEquals(r.code, 2, r.stdout);
      const lines = r.stdout.trim().split("\n");
      assertEquals(lines.length, 1, r.stdout);
      assert(/AUDIT_SECRET/.test(lines[0]!) && /--public-key/.test(lines[0]!), r.stdout);
      assert(/--no-signatures/.test(lines[0]!), r.stdout);
      assert(!r.stdout.startsWith("OK"), r.stdout);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("verify --no-signatures exits 3 when the chain is intact (even rewritten), 1 when it is not, never 0", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-nosig-" });
  try {
    const log = await twoRuns(dir, SECRET, SECRET);
    const intact = await run(["verify", "--no-signatures", log]);
    assertEquals(intact.code, 3, intact.stdout);
    assert(intact.stdout.startsWith("UNVOUCHED: "), intact.stdout);
    assert(intact.stdout.includes("signatures NOT checked"), intact.stdout);

    // Someone without the key rewrote a result and re-linked the chain: the structure holds.
    const forged = rechained(log);
    const structure = await run(["verify", "--no-signatures", forged]);
    assertEquals(structure.code, 3, `the structure alone cannot tell:\n${structure.stdout}`);
    const keyed = await run(["verify", forged], { env: { AUDIT_SECRET: SECRET } });
    assertEquals(keyed.code, 1, keyed.stdout);
    assert(/: modified: signature does not match/.test(keyed.stdout), keyed.stdout);

    const lines = Deno.readTextFileSync(log).trimEnd().split("\n");
    lines.splice(2, 1);
    Deno.writeTextFileSync(`${dir}/gap.jsonl`, lines.join("\n") + "\n");
    const gap = await run(["verify", "--no-signatures", `${dir}/gap.jsonl`]);
    assertEquals(gap.code, 1, gap.stdout);
    assert(gap.stdout.includes("seq 3: missing"), gap.stdout);

    const both = await run(["verify", "--no-signatures", "--public-key", "k.pem", log]);
    assertEquals(both.code, 2, "a key and --no-signatures contradict each other");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("verify with a key reports unsigned records, all of them or a run, and another scheme as a wrong key", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-unsigned-" });
  try {
    const unsigned = await twoRuns(dir, null, null);
    const all = await run(["verify", unsigned], { env: { AUDIT_SECRET: SECRET } });
    assertEquals(all.code, 1, all.stdout);
    const n = Deno.readTextFileSync(unsigned).trimEnd().split("\n").length;
    assert(all.stdout.includes(`seq 1-${n}: unsigned`), all.stdout);
    assert(!all.stdout.includes("modified"), all.stdout);
    Deno.removeSync(unsigned);

    const mixed = await twoRuns(dir, null, SECRET);
    const m = await run(["verify", mixed], { env: { AUDIT_SECRET: SECRET } });
    assertEquals(m.code, 1, m.stdout);
    assert(/seq 1-\d+: unsigned/.test(m.stdout), m.stdout);
    assert(!m.stdout.includes("modified") && !m.stdout.includes("wrong key"), m.stdout);

    await run(["keygen", "--out", `${dir}/ed`]);
    const hmacLog = mixed;
    const ed = await run(["verify", "--public-key", `${dir}/ed.pub`, hmacLog]);
    assertEquals(ed.code, 1, ed.stdout);
    assert(/: wrong key: /.test(ed.stdout), ed.stdout);
    assert(!ed.stdout.includes("modified"), ed.stdout);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

// ---- logs written record by record, with the real record text and signers ----

/** A chain as the proxy writes it: numbered, linked, signed by whichever signer is set. */
class Chain {
  seq = 0;
  prev = GENESIS;
  constructor(public signer: Signer | null) {}

  /** The next record and its stored line. */
  entry(method: string, params: JsonObject = {}): { record: AuditRecord; line: string } {
    const seq = ++this.seq;
    const record: AuditRecord = {
      v: 1,
      seq,
      id: "01JD" + String(seq).padStart(22, "0"),
      ts: new Date(Date.UTC(2026, 0, 1) + seq * 1000).toISOString(),
      ...eventFields(method, params, "stdio", null),
      client_id: "c",
      server_id: "s",
      prev: this.prev,
      sig: null,
    };
    const text = recordText(record);
    record.sig = this.signer === null ? null : this.signer.sign(text.unsigned);
    const line = text.signed(record.sig);
    this.prev = createHash("sha256").update(line).digest("hex");
    return { record, line };
  }

  event(method: string, params: JsonObject = {}): string {
    return this.entry(method, params).line;
  }

  /** A record standing for traffic: an event with a number in it is enough for the chain. */
  some(n: number): string[] {
    return Array.from({ length: n }, () => this.event(EventMethod.Reload, { n: this.seq + 1 }));
  }

  rotate(archive: string, deleted: JsonObject[] = []): string {
    return this.event(EventMethod.Rotate, {
      reason: "audit.rotation.max_size_bytes reached",
      archive,
      cause: "size",
      deleted_archives: deleted,
      continues_after_seq: this.seq,
      new_file: true,
    });
  }
}

const text = (lines: string[]) => lines.map((l) => l + "\n").join("");

async function gzip(s: string): Promise<Uint8Array> {
  const stream = new Blob([s]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

const T1 = "audit.jsonl.20260101T000000Z";
const T2 = "audit.jsonl.20260102T000000Z";
const T3 = "audit.jsonl.20260102T000000Z.1";

/**
 * A log rotated three times: T1 (plain, seq 1-4), T2 (gzipped, seq 5-8), T3 (a clash, plain, seq
 * 9-12), the active file (seq 13-15, ending with audit/stop).
 */
async function rotatedLog(dir: string, deleted: JsonObject[] = []): Promise<string> {
  const c = new Chain(hmacSigner(SECRET));
  Deno.writeTextFileSync(`${dir}/${T1}`, text([c.event(EventMethod.Start), ...c.some(3)]));
  Deno.writeFileSync(`${dir}/${T2}.gz`, await gzip(text([c.rotate(T1), ...c.some(3)])));
  Deno.writeTextFileSync(`${dir}/${T3}`, text([c.rotate(T2), ...c.some(3)]));
  const active = [c.rotate(T3, deleted), ...c.some(1), c.event(EventMethod.Stop)];
  Deno.writeTextFileSync(`${dir}/audit.jsonl`, text(active));
  return `${dir}/audit.jsonl`;
}

const secretEnv = { AUDIT_SECRET: SECRET };

Deno.test("verify checks the archives, plain and gzipped, then the active file, as one chain", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-archives-" });
  try {
    const log = await rotatedLog(dir);
    const ok = await run(["verify", log], { env: secretEnv });
    assertEquals(ok.code, 0, ok.stdout);
    assert(ok.stdout.startsWith("OK: 15 records, seq 1-15 in 4 files; chain intact"), ok.stdout);

    // One archive alone: checked by itself, its start and end mid-chain are notes.
    const one = await run(["verify", `${dir}/${T2}.gz`], { env: secretEnv });
    assertEquals(one.code, 0, one.stdout);
    assert(one.stdout.startsWith("OK: 4 records, seq 5-8 (continues after seq 4"), one.stdout);
    assert(one.stdout.includes("note: the archive ends at seq 8"), one.stdout);

    // A record changed inside the gzipped archive: named by file and line.
    const gz = new TextDecoder().decode(
      new Uint8Array(
        await new Response(
          Deno.openSync(`${dir}/${T2}.gz`).readable.pipeThrough(new DecompressionStream("gzip")),
        ).arrayBuffer(),
      ),
    ).trimEnd().split("\n");
    gz[2] = gz[2]!.replace('"n":7', '"n":70');
    Deno.writeFileSync(`${dir}/${T2}.gz`, await gzip(text(gz)));
    const bad = await run(["verify", log], { env: secretEnv });
    assertEquals(bad.code, 1, bad.stdout);
    assert(bad.stdout.includes(`${dir}/${T2}.gz line 3 seq 7: modified: `), bad.stdout);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("verify reports a deleted middle archive as missing, and archives renamed out of order as reordered", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-archives-" });
  try {
    const log = await rotatedLog(dir);
    const t2 = Deno.readFileSync(`${dir}/${T2}.gz`);
    Deno.removeSync(`${dir}/${T2}.gz`);
    const gap = await run(["verify", log], { env: secretEnv });
    assertEquals(gap.code, 1, gap.stdout);
    assert(gap.stdout.startsWith("FAILED: 1 problem in 11 records"), gap.stdout);
    assert(gap.stdout.includes("seq 5-8: missing: record is missing"), gap.stdout);
    Deno.writeFileSync(`${dir}/${T2}.gz`, t2);

    // T1 and T3 swap names: T3's records come first, T1's after them.
    Deno.renameSync(`${dir}/${T1}`, `${dir}/swap`);
    Deno.renameSync(`${dir}/${T3}`, `${dir}/${T1}`);
    Deno.renameSync(`${dir}/swap`, `${dir}/${T3}`);
    const swapped = await run(["verify", log], { env: secretEnv });
    assertEquals(swapped.code, 1, swapped.stdout);
    assert(/seq \d+(-\d+)?: reordered: /.test(swapped.stdout), swapped.stdout);
    assert(!swapped.stdout.includes(": missing: "), swapped.stdout);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("verify accepts the oldest archive deleted by retention as its rotation listed it; not one deleted by hand", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-retention-" });
  try {
    const log = await rotatedLog(dir, [{ name: T1, rule: "max_files", first_seq: 1, last_seq: 4 }]);
    Deno.removeSync(`${dir}/${T1}`);
    const ok = await run(["verify", log], { env: secretEnv });
    assertEquals(ok.code, 0, ok.stdout);
    assert(
      ok.stdout.startsWith(
        "OK: 11 records, seq 5-15 in 3 files (continues after seq 4, earlier archives deleted by retention)",
      ),
      ok.stdout,
    );
    assert(
      ok.stdout.includes(`note: seq 1-4 were in archives retention deleted: ${T1} (max_files`),
      ok.stdout,
    );

    Deno.removeSync(`${dir}/${T2}.gz`);
    const gone = await run(["verify", log], { env: secretEnv });
    assertEquals(gone.code, 1, gone.stdout);
    assert(gone.stdout.includes("seq 5-8: missing: "), gone.stdout);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

/** A log signed by `k1` up to a key rotation, then by `k2`. */
function rotatedKeys(dir: string): string {
  const c = new Chain(hmacSigner("the first secret, thirty-two bytes", "k1"));
  const lines = [c.event(EventMethod.Start), ...c.some(2), c.event(EventMethod.Stop)];
  c.signer = hmacSigner("the second secret, thirty-two bytes", "k2");
  lines.push(c.event(EventMethod.Start), ...c.some(2), c.event(EventMethod.Stop));
  Deno.writeTextFileSync(`${dir}/audit.jsonl`, text(lines));
  return `${dir}/audit.jsonl`;
}

Deno.test("verify --key-file checks a log across a key rotation; a key left out is a wrong key; a bad line exits 2", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-keyfile-" });
  try {
    const log = rotatedKeys(dir);
    Deno.writeTextFileSync(
      `${dir}/keys.txt`,
      "# the log's keys over time\nhmac k1 the first secret, thirty-two bytes\n" +
        "hmac k2 the second secret, thirty-two bytes\n",
    );
    const ok = await run(["verify", "--key-file", `${dir}/keys.txt`, log]);
    assertEquals(ok.code, 0, ok.stdout);
    assert(
      ok.stdout.startsWith(
        "OK: 8 records, seq 1-8; chain intact; signatures checked with 2 of 2 keys given: " +
          "hmac-sha256 k1 (4 records), hmac-sha256 k2 (4 records)",
      ),
      ok.stdout,
    );

    // The old key in a file, the current one in AUDIT_SECRET, as a rotation leaves them.
    Deno.writeTextFileSync(`${dir}/old.txt`, "hmac k1 the first secret, thirty-two bytes\n");
    const combined = await run(["verify", "--key-file", `${dir}/old.txt`, "--key-id", "k2", log], {
      env: { AUDIT_SECRET: "the second secret, thirty-two bytes" },
    });
    assertEquals(combined.code, 0, combined.stdout);

    const missing = await run(["verify", "--key-file", `${dir}/old.txt`, log]);
    assertEquals(missing.code, 1, missing.stdout);
    assert(
      missing.stdout.includes("seq 5-8: wrong key: signed with key id k2, checked with k1"),
      missing.stdout,
    );

    Deno.writeTextFileSync(
      `${dir}/bad.txt`,
      "hmac k1 the first secret, thirty-two bytes\nhmac k2\n",
    );
    const bad = await run(["verify", "--key-file", `${dir}/bad.txt`, log]);
    assertEquals(bad.code, 2, bad.stdout);
    assertEquals(
      bad.stdout,
      `mcp-audit verify: ${dir}/bad.txt:2: hmac: no secret after the key id\n`,
    );

    const conflict = await run(["verify", "--key-file", `${dir}/old.txt`, "--key-id", "k1", log], {
      env: { AUDIT_SECRET: "not the first secret at all, no" },
    });
    assertEquals(conflict.code, 2, conflict.stdout);
    assert(conflict.stdout.includes("another hmac-sha256 key with key id k1"), conflict.stdout);

    const keyId = await run(["verify", "--key-file", `${dir}/keys.txt`, "--key-id", "k1", log]);
    assertEquals(keyId.code, 2, `--key-id with no AUDIT_SECRET or --public-key:\n${keyId.stdout}`);

    const both = await run(["verify", "--no-signatures", "--key-file", `${dir}/keys.txt`, log]);
    assertEquals(both.code, 2, "keys and --no-signatures contradict each other");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("verify on a log still being written: intact up to its last checkpoint; a line a writer is writing is a note, one nobody writes is torn", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-live-" });
  try {
    const c = new Chain(hmacSigner(SECRET));
    const lines = [c.event(EventMethod.Start), ...c.some(3)];
    lines.push(c.event(EventMethod.Checkpoint, {
      reason: "periodic",
      head_seq: c.seq,
      head_hash: c.prev,
      records_since_last: 4,
    }));
    const log = `${dir}/audit.jsonl`;
    Deno.writeTextFileSync(log, text(lines));
    // A checkpoint vouches for what came before it, not that nothing came after: a log that ends
    // in one may have been cut there.
    const atCheckpoint = await run(["verify", log], { env: secretEnv });
    assertEquals(atCheckpoint.code, 4, atCheckpoint.stdout);
    assertEquals(
      atCheckpoint.stdout,
      "INCOMPLETE: 5 records, seq 1-5; intact up to its last checkpoint at seq 5, where it ends " +
        "without audit/stop (a proxy still running, or the log cut there); signatures checked " +
        `with hmac-sha256 key ${hmacSigner(SECRET).keyId}\n` +
        "log: missing: log ends at seq 5 with audit/checkpoint, not audit/stop: a checkpoint " +
        "vouches for the records before it, not that none came after it (proxy still running, " +
        "crashed, or records removed from the end)\n",
    );

    const more = c.some(2);
    Deno.writeTextFileSync(log, text(more), { append: true });
    const running = await run(["verify", log], { env: secretEnv });
    assertEquals(running.code, 4, running.stdout);
    assert(
      running.stdout.startsWith(
        "INCOMPLETE: 7 records, seq 1-7; intact up to its last checkpoint at seq 5 (2 records after it not yet covered)",
      ),
      running.stdout,
    );

    const stop = c.event(EventMethod.Stop);
    Deno.writeTextFileSync(log, stop + "\n", { append: true });
    const stopped = await run(["verify", log], { env: secretEnv });
    assertEquals(stopped.code, 0, stopped.stdout);

    // Another run's first record, half written: while a writer holds the log's lock it is that
    // writer's line in progress, a note; with nobody at work it is torn.
    const start = c.event(EventMethod.Start);
    Deno.writeTextFileSync(log, start.slice(0, 40), { append: true });
    const noWriter = await run(["verify", log], { env: secretEnv });
    assertEquals(noWriter.code, 1, noWriter.stdout);
    assert(
      /^line 9: torn: record cut short by a crash \(after seq 8,/m.test(noWriter.stdout),
      noWriter.stdout,
    );
    {
      using lock = Deno.openSync(`${log}.lock`, { read: true, write: true, create: true });
      lock.lockSync(true);
      const writing = await run(["verify", log], { env: secretEnv });
      assertEquals(writing.code, 0, writing.stdout);
      assert(!writing.stdout.includes("torn"), writing.stdout);
      assert(
        writing.stdout.includes(
          "note: last line incomplete (a writer may be mid-write): audit.jsonl line 9, after seq 8",
        ),
        writing.stdout,
      );
      lock.unlockSync();
    }
    const released = await run(["verify", log], { env: secretEnv });
    assertEquals(
      released.code,
      1,
      `the lock free and the line still cut: torn\n${released.stdout}`,
    );
    assert(released.stdout.includes("torn"), released.stdout);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

/**
 * A SQLite log written by the SQLite store: start, six records, stop. Returns its path; the lines
 * stored are also in `rows.txt` beside it.
 */
function sqliteLog(dir: string): string {
  const path = `${dir}/audit.db`;
  const store = new SqliteStore(path, { durability: "entry", busyTimeoutMs: 5_000 });
  try {
    const start = store.begin();
    assertEquals(start.changes, [], "a new database");
    const c = new Chain(hmacSigner(SECRET));
    const entries = [c.entry(EventMethod.Start)];
    for (let i = 0; i < 6; i++) entries.push(c.entry(EventMethod.Reload, { n: c.seq + 1 }));
    entries.push(c.entry(EventMethod.Stop));
    for (const e of entries) {
      store.write({ ...e, hash: createHash("sha256").update(e.line).digest("hex") });
    }
    const lines = entries.map((e) => e.line);
    store.commit();
    Deno.writeTextFileSync(`${dir}/rows.txt`, text(lines));
  } finally {
    store.close();
  }
  return path;
}

/** Runs SQL on a copy of the log, past the triggers that keep rows append-only. */
function tampered(path: string, sql: string): string {
  const copy = `${path}.${createHash("sha256").update(sql).digest("hex").slice(0, 8)}.db`;
  Deno.copyFileSync(path, copy);
  const db = new DatabaseSync(copy);
  try {
    db.exec("DROP TRIGGER records_no_update; DROP TRIGGER records_no_delete;");
    db.exec(sql);
  } finally {
    db.close();
  }
  return copy;
}

Deno.test("verify checks a SQLite log by its content, whatever its name, and catches every tamper kind", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-sqlite-" });
  try {
    const db = sqliteLog(dir);
    const ok = await run(["verify", db], { env: secretEnv });
    assertEquals(ok.code, 0, ok.stdout);
    assert(ok.stdout.startsWith("OK: 8 records, seq 1-8; chain intact"), ok.stdout);
    Deno.copyFileSync(db, `${dir}/named.jsonl`);
    const named = await run(["verify", `${dir}/named.jsonl`], { env: secretEnv });
    assertEquals(named.code, 0, `told by its content:\n${named.stdout}`);

    // The line edited (its columns still agree): the signature no longer matches.
    const line = tampered(
      db,
      `UPDATE records SET line = replace(line, '"n":4', '"n":40') WHERE seq = 4`,
    );
    const l = await run(["verify", line], { env: secretEnv });
    assertEquals(l.code, 1, l.stdout);
    assert(l.stdout.includes("\nseq 4: modified: signature does not match the record"), l.stdout);

    // A column edited, the line left alone: the row disagrees with its line.
    const column = tampered(db, "UPDATE records SET method = 'tools/call' WHERE seq = 5");
    const c = await run(["verify", column], { env: secretEnv });
    assertEquals(c.code, 1, c.stdout);
    assert(/\nseq 5: modified: a column disagrees with the stored line/.test(c.stdout), c.stdout);

    // A row deleted: its seq is missing.
    const row = tampered(db, "DELETE FROM records WHERE seq = 3");
    const r = await run(["verify", row], { env: secretEnv });
    assertEquals(r.code, 1, r.stdout);
    assert(r.stdout.includes("\nseq 3: missing: record is missing"), r.stdout);

    // The last rows deleted: the log no longer ends cleanly.
    const end = tampered(db, "DELETE FROM records WHERE seq >= 7");
    const e = await run(["verify", end], { env: secretEnv });
    assertEquals(e.code, 1, e.stdout);
    assert(e.stdout.includes("without audit/stop"), e.stdout);

    // An anchor kept elsewhere names the last record: the database cut back to before it shows.
    const rows = Deno.readTextFileSync(`${dir}/rows.txt`).trimEnd().split("\n");
    const last = JSON.parse(rows.at(-1)!);
    Deno.writeTextFileSync(
      `${dir}/audit.anchor`,
      anchorText(db, {
        seq: last.seq,
        hash: createHash("sha256").update(rows.at(-1)!).digest("hex"),
        id: last.id,
        ts: last.ts,
      }, hmacSigner(SECRET)),
    );
    const anchored = await run(["verify", "--anchor", `${dir}/audit.anchor`, db], {
      env: secretEnv,
    });
    assertEquals(anchored.code, 0, anchored.stdout);
    const cutBack = tampered(db, "DELETE FROM records WHERE seq >= 5");
    const back = await run(["verify", "--anchor", `${dir}/audit.anchor`, cutBack], {
      env: secretEnv,
    });
    assertEquals(back.code, 1, back.stdout);
    assert(
      back.stdout.includes(`seq 5-8: missing: the anchor ${dir}/audit.anchor names seq 8`),
      back.stdout,
    );

    // Checked with another key: wrong key, not modified.
    const wrong = await run(["verify", db], { env: { AUDIT_SECRET: SECRET + "-other" } });
    assertEquals(wrong.code, 1, wrong.stdout);
    assert(wrong.stdout.includes("seq 1-8: wrong key"), wrong.stdout);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("verify exits 2 for a database it cannot read", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-sqlite-" });
  try {
    const db = sqliteLog(dir);
    const bytes = Deno.readFileSync(db);
    // The header kept, the rest cut: SQLite knows it for a database, and a damaged one.
    Deno.writeFileSync(`${dir}/cut.db`, bytes.subarray(0, 1024));
    const cut = await run(["verify", `${dir}/cut.db`], { env: secretEnv });
    assertEquals(cut.code, 2, cut.stdout);
    assert(cut.stdout.startsWith("mcp-audit verify: "), cut.stdout);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

/** A SQLite log of the lines `build` makes, written by the SQLite store. */
function sqliteOf(path: string, build: (c: Chain) => { record: AuditRecord; line: string }[]) {
  const store = new SqliteStore(path, { durability: "entry", busyTimeoutMs: 5_000 });
  try {
    store.begin();
    for (const e of build(new Chain(hmacSigner(SECRET)))) {
      store.write({ ...e, hash: createHash("sha256").update(e.line).digest("hex") });
    }
    store.commit();
  } finally {
    store.close();
  }
  return path;
}

const KEY_ID = hmacSigner(SECRET).keyId;

Deno.test("verify of a log cut right after a checkpoint exits 4, JSONL or SQLite; the whole log exits 0", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-cut-" });
  try {
    const build = (c: Chain) => {
      const entries = [c.entry(EventMethod.Start)];
      for (let i = 0; i < 2; i++) entries.push(c.entry(EventMethod.Reload, { n: c.seq + 1 }));
      entries.push(c.entry(EventMethod.Checkpoint, {
        reason: "periodic",
        head_seq: c.seq,
        head_hash: c.prev,
        records_since_last: 3,
      }));
      for (let i = 0; i < 2; i++) entries.push(c.entry(EventMethod.Reload, { n: c.seq + 1 }));
      entries.push(c.entry(EventMethod.Stop));
      return entries;
    };
    const db = sqliteOf(`${dir}/audit.db`, build);
    const lines = build(new Chain(hmacSigner(SECRET))).map((e) => e.line);
    Deno.writeTextFileSync(`${dir}/audit.jsonl`, text(lines));
    Deno.writeTextFileSync(`${dir}/cut.jsonl`, text(lines.slice(0, 4)));
    const cutDb = tampered(db, "DELETE FROM records WHERE seq > 4");
    for (const whole of [db, `${dir}/audit.jsonl`]) {
      const ok = await run(["verify", whole], { env: secretEnv });
      assertEquals(ok.code, 0, ok.stdout);
      assert(ok.stdout.startsWith("OK: 7 records, seq 1-7; chain intact"), ok.stdout);
    }
    for (const cut of [cutDb, `${dir}/cut.jsonl`]) {
      const r = await run(["verify", cut], { env: secretEnv });
      assertEquals(r.code, 4, r.stdout);
      assert(
        r.stdout.startsWith(
          "INCOMPLETE: 4 records, seq 1-4; intact up to its last checkpoint at seq 4, where it ends without audit/stop",
        ),
        r.stdout,
      );
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("verify of a new file the proxy started after its log was deleted or moved: the records before it are missing, and the moved file verifies", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-newfile-" });
  try {
    for (const cause of ["deleted", "moved"]) {
      const c = new Chain(hmacSigner(SECRET));
      const old = [c.event(EventMethod.Start), ...c.some(2)];
      if (cause === "moved") {
        old.push(c.event(EventMethod.Checkpoint, { reason: "moved", cause, last_seq: c.seq + 1 }));
      }
      const now = [
        c.event(EventMethod.Recover, {
          reason: `the audit log was ${cause}`,
          cause,
          continues_after_seq: c.seq,
          new_file: true,
        }),
        ...c.some(1),
        c.event(EventMethod.Stop),
      ];
      const log = `${dir}/${cause}.jsonl`;
      Deno.writeTextFileSync(log, text(now));
      const r = await run(["verify", log], { env: secretEnv });
      assertEquals(r.code, 1, r.stdout);
      const n = old.length;
      const lost = cause === "deleted"
        ? `seq 1-${n}: missing: the records before seq ${n + 1} were in a file that was deleted ` +
          `while the proxy ran (the audit/recover at seq ${n + 1} says so): they are gone unless ` +
          "a copy of that file exists, and nothing here vouches for them"
        : `seq 1-${n}: missing: the records before seq ${n + 1} are in the file that was moved ` +
          `away while the proxy ran (the audit/recover at seq ${n + 1} says so): they are not ` +
          "checked here (verify that file too)";
      assertEquals(
        r.stdout,
        `FAILED: 1 problem in 3 records, seq ${n + 1}-${n + 3} (continues after seq ${n}, ` +
          `previous file ${cause}); signatures checked with hmac-sha256 key ${KEY_ID}\n${lost}\n` +
          `note: seq ${n + 1}: the proxy found its log ${
            cause === "moved" ? "moved away" : cause
          } while it ran\n`,
      );
      if (cause === "moved") {
        const moved = `${dir}/elsewhere.jsonl`;
        Deno.writeTextFileSync(moved, text(old));
        const m = await run(["verify", moved], { env: secretEnv });
        assertEquals(m.code, 0, m.stdout);
        assertEquals(
          m.stdout,
          `OK: 4 records, seq 1-4; chain intact; signatures checked with hmac-sha256 key ${KEY_ID}; ` +
            "ends with the audit/checkpoint written when the proxy found the file moved (the " +
            "chain goes on in a new file)\nnote: the file ends at seq 4 with the audit/checkpoint " +
            "the proxy wrote on finding it moved away while it ran: the chain goes on in a new " +
            "file at the log's path, which holds the records after it (verify that file too)\n",
        );
        Deno.writeTextFileSync(`${dir}/joined.jsonl`, text([...old, ...now]));
        const joined = await run(["verify", `${dir}/joined.jsonl`], { env: secretEnv });
        assertEquals(joined.code, 0, joined.stdout);
      }
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("verify reports a stored line that is not its record's canonical JSON as modified, JSONL or SQLite", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-canonical-" });
  try {
    const db = sqliteLog(dir);
    const lines = Deno.readTextFileSync(`${dir}/rows.txt`).trimEnd().split("\n");
    // The last line, which no prev pins, with members repeated: JSON.parse keeps the last ones.
    const sneak = '{"kind":"request","method":"tools/call","tool_name":"rm_rf","client_id":"';
    lines[7] = lines[7]!.replace('{"client_id":"', sneak);
    Deno.writeTextFileSync(`${dir}/audit.jsonl`, text(lines));
    const detail = "modified: the stored line is not its record's canonical JSON (a member " +
      "repeated or out of order, blanks, or a value spelled another way): not as the proxy writes it";
    const j = await run(["verify", `${dir}/audit.jsonl`], { env: secretEnv });
    assertEquals(j.code, 1, j.stdout);
    assert(j.stdout.includes(`\nline 8 seq 8: ${detail}\n`), j.stdout);

    const row = tampered(
      db,
      `UPDATE records SET line = replace(line, '{"client_id":"', '${sneak}') WHERE seq = 8`,
    );
    const s = await run(["verify", row], { env: secretEnv });
    assertEquals(s.code, 1, s.stdout);
    assert(s.stdout.includes(`\nseq 8: ${detail}\n`), s.stdout);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("verify --key-file with valid lines: a retired key re-signing the records after its retirement is a wrong key, the anchor too", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-retired-" });
  try {
    const log = rotatedKeys(dir);
    const keys = "hmac k1 the first secret, thirty-two bytes\n" +
      "hmac k2 the second secret, thirty-two bytes\n";
    Deno.writeTextFileSync(`${dir}/keys.txt`, `${keys}valid hmac k1 1-4\nvalid hmac k2 5-\n`);
    Deno.writeTextFileSync(`${dir}/open.txt`, keys);
    const ok = await run(["verify", "--key-file", `${dir}/keys.txt`, log]);
    assertEquals(ok.code, 0, ok.stdout);

    // Whoever holds the retired k1 writes the whole log again with it: every link and signature
    // holds, and only the key's seqs tell.
    const retired = hmacSigner("the first secret, thirty-two bytes", "k1");
    const c = new Chain(retired);
    const forged = [c.event(EventMethod.Start), ...c.some(2), c.event(EventMethod.Stop)];
    forged.push(c.event(EventMethod.Start), ...c.some(2), c.event(EventMethod.Stop));
    Deno.writeTextFileSync(`${dir}/forged.jsonl`, text(forged));
    const open = await run(["verify", "--key-file", `${dir}/open.txt`, `${dir}/forged.jsonl`]);
    assertEquals(open.code, 0, `without valid lines, nothing can tell:\n${open.stdout}`);
    const r = await run(["verify", "--key-file", `${dir}/keys.txt`, `${dir}/forged.jsonl`]);
    assertEquals(r.code, 1, r.stdout);
    assert(
      r.stdout.includes(
        `\nline 5 seq 5-8: wrong key: signed with hmac-sha256 key id k1, valid only for seq 1-4 (${dir}/keys.txt:3)\n`,
      ),
      r.stdout,
    );

    // An anchor the retired key signed for a seq after its retirement.
    const last = JSON.parse(forged.at(-1)!);
    const head = {
      seq: last.seq,
      hash: createHash("sha256").update(forged.at(-1)!).digest("hex"),
      id: last.id,
      ts: last.ts,
    };
    Deno.writeTextFileSync(`${dir}/audit.anchor`, anchorText(log, head, retired));
    const a = await run([
      "verify",
      "--key-file",
      `${dir}/keys.txt`,
      "--anchor",
      `${dir}/audit.anchor`,
      log,
    ]);
    assertEquals(a.code, 1, a.stdout);
    assert(
      a.stdout.includes(
        `\n${dir}/audit.anchor: wrong key: the anchor names seq 8 and was signed with key id k1, valid only for seq 1-4 (${dir}/keys.txt:3)\n`,
      ),
      a.stdout,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
