/**
 * `verify` and `keygen` from the command line: Ed25519 logs end to end, progress on a terminal,
 * and exit code 2 when the log cannot be read.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";

const root = new URL("..", import.meta.url).pathname;
const deno = Deno.execPath();

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
  const r = await run(["verify", "/nonexistent/audit.jsonl"]);
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
      const cmd = `${deno} run -A ${root}main.ts verify ${big}`;
      // `script` gives the command a pseudo-terminal, as a person at a shell would have.
      const tty = await new Deno.Command("script", {
        args: ["-qec", cmd, "/dev/null"],
        stdout: "piped",
      }).output();
      assert(
        new TextDecoder().decode(tty.stdout).includes(`verifying ${big}:`),
        "progress on a terminal",
      );
      const piped = await run(["verify", big]);
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
