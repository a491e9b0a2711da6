/**
 * `verify` and `keygen` from the command line: Ed25519 logs end to end, progress on a terminal,
 * exit code 2 when the log cannot be read or no key is given, 3 when only the structure was
 * checked, and the unsigned / wrong key family.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { createHash } from "node:crypto";

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
