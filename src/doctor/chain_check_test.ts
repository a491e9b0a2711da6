import assert from "node:assert/strict";
import { AuditLog } from "../audit/chain.ts";
import { EventMethod } from "../audit/record.ts";
import { ed25519Signer, generateEd25519, type Signer } from "../audit/signing.ts";
import { JsonlStore } from "../audit/storage/jsonl.ts";
import { testAuditLog } from "../audit/testdata/test_audit_log.ts";
import { loadConfig } from "../config/load.ts";
import { checkChain } from "./chain_check.ts";

/** The secret testAuditLog signs with. */
const SECRET = "0123456789abcdef0123456789abcdef";
const deps = { mono: () => performance.now(), keyUsable: true };

function audit(env: Record<string, string>) {
  return loadConfig({ env, flags: new Map(), upstreamArgv: [] }).config.audit;
}

function write(log: AuditLog, stop: boolean): void {
  log.event(EventMethod.Start, { version: "test" });
  if (stop) log.stop({ reason: "test" });
  log.sync();
  log.close();
}

Deno.test("chain: a stopped log verifies with the secret; cut short it warns; with another key it fails", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    write(testAuditLog(`${dir}/audit.jsonl`, "stdio"), true);
    const env = { MCP_AUDIT_AUDIT_PATH: `${dir}/audit.jsonl`, AUDIT_SECRET: SECRET };
    const ok = await checkChain(audit(env), deps);
    assert.equal(ok.status, "ok", ok.detail);
    assert.match(ok.detail, /^OK: 2 records, seq 1-2; chain intact; .* \(\d+ ms\)$/);

    const wrong = await checkChain(
      audit({ ...env, AUDIT_SECRET: "another-secret-".repeat(3) }),
      deps,
    );
    assert.equal(wrong.status, "fail");
    assert.match(wrong.fix ?? "", /^mcp-audit verify .*audit\.jsonl for details; a break means/);
    assert.ok((wrong.notes ?? []).some((n) => n.includes("wrong key")), JSON.stringify(wrong));

    write(testAuditLog(`${dir}/running.jsonl`, "stdio"), false);
    const running = await checkChain(
      audit({ ...env, MCP_AUDIT_AUDIT_PATH: `${dir}/running.jsonl` }),
      deps,
    );
    assert.equal(running.status, "warn");
    assert.match(running.detail, /; log ends at seq 1 without audit\/stop \(proxy still running/);
    assert.match(running.fix ?? "", /^fine while a proxy writes the log/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("chain: an Ed25519 log verifies with the private key's public half (no public key file)", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const pair = generateEd25519();
    Deno.writeTextFileSync(`${dir}/key.pem`, pair.privatePem);
    const signer: Signer = ed25519Signer(pair.privatePem);
    let n = 0;
    write(
      new AuditLog({
        store: new JsonlStore(`${dir}/audit.jsonl`, { durability: "none" }),
        signer,
        now: () => Date.UTC(2026, 0, 1),
        newId: () => "01JD" + String(++n).padStart(22, "0"),
        clientId: "c",
        serverId: "s",
        transport: "stdio",
      }),
      true,
    );
    const before = new Set(
      [...Deno.readDirSync(Deno.env.get("TMPDIR") ?? "/tmp")].map((e) => e.name),
    );
    const r = await checkChain(
      audit({
        MCP_AUDIT_AUDIT_PATH: `${dir}/audit.jsonl`,
        MCP_AUDIT_AUDIT_SIGNING_PRIVATE_KEY_FILE: `${dir}/key.pem`,
      }),
      deps,
    );
    assert.equal(r.status, "ok", r.detail);
    assert.match(r.detail, new RegExp(`signatures checked with ed25519 key ${signer.keyId}`));
    // The temporary public key file is gone again.
    const after = [...Deno.readDirSync(Deno.env.get("TMPDIR") ?? "/tmp")].map((e) => e.name);
    assert.deepEqual(after.filter((f) => f.startsWith("mcp-audit-doctor-") && !before.has(f)), []);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("chain: no log yet passes; a file that is not a log fails; signing off warns", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const none = await checkChain(audit({ MCP_AUDIT_AUDIT_PATH: `${dir}/audit.jsonl` }), deps);
    assert.equal(none.status, "ok");
    assert.equal(none.detail, `${dir}/audit.jsonl: no records yet, nothing to verify`);
    Deno.writeTextFileSync(`${dir}/notes.txt`, "hello\n");
    const foreign = await checkChain(
      audit({ MCP_AUDIT_AUDIT_PATH: `${dir}/notes.txt`, AUDIT_SECRET: SECRET }),
      deps,
    );
    assert.equal(foreign.status, "fail");
    write(testAuditLog(`${dir}/audit.jsonl`, "stdio"), true);
    const off = await checkChain(
      audit({ MCP_AUDIT_AUDIT_PATH: `${dir}/audit.jsonl`, MCP_AUDIT_AUDIT_SIGN: "false" }),
      deps,
    );
    assert.equal(off.status, "warn");
    assert.match(off.detail, /signatures not checked: audit\.sign is false$/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
