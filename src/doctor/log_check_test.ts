import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { loadConfig } from "../config/load.ts";
import { checkLog, mayWrite, ownIdentity } from "./log_check.ts";

function audit(env: Record<string, string>) {
  return loadConfig({ env, flags: new Map(), upstreamArgv: [] }).config.audit;
}

const ROOT = Deno.uid() === 0;

Deno.test("log: a directory that does not exist fails with the mkdir to run (the proxy does not create it)", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const r = checkLog(
      audit({ MCP_AUDIT_AUDIT_PATH: `${dir}/missing/audit.jsonl` }),
      ownIdentity(),
    );
    assert.equal(r.status, "fail");
    assert.equal(
      r.detail,
      `the directory ${dir}/missing does not exist (the proxy does not create it)`,
    );
    assert.match(r.fix ?? "", new RegExp(`^mkdir -p ${dir}/missing`));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("log: a writable directory passes and the probe file is gone afterwards", () => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.writeTextFileSync(`${dir}/audit.jsonl`, "");
    const r = checkLog(audit({ MCP_AUDIT_AUDIT_PATH: `${dir}/audit.jsonl` }), ownIdentity());
    assert.equal(r.status, "ok");
    assert.equal(r.detail, `${dir}/audit.jsonl (jsonl; 0 bytes, appendable; directory writable)`);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["audit.jsonl"]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("log: a symlinked path fails unless audit.follow_symlinks, then names where it leads", () => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.mkdirSync(`${dir}/real`);
    Deno.symlinkSync(`${dir}/real/audit.jsonl`, `${dir}/audit.jsonl`);
    const refused = checkLog(audit({ MCP_AUDIT_AUDIT_PATH: `${dir}/audit.jsonl` }), ownIdentity());
    assert.equal(refused.status, "fail");
    assert.match(refused.detail, /is a symbolic link; the proxy refuses to write through it/);
    assert.match(refused.fix ?? "", /audit\.follow_symlinks: true/);
    const followed = checkLog(
      audit({
        MCP_AUDIT_AUDIT_PATH: `${dir}/audit.jsonl`,
        MCP_AUDIT_AUDIT_FOLLOW_SYMLINKS: "true",
      }),
      ownIdentity(),
    );
    assert.equal(followed.status, "ok");
    assert.match(
      followed.detail,
      new RegExp(`→ ${dir}/real/audit\\.jsonl \\(jsonl; not created yet`),
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test({
  name: "log: a read-only directory and a read-only file fail with what to change",
  // Root writes whatever the mode bits say, so nothing here could fail for it.
  ignore: ROOT || Deno.build.os === "windows",
  fn() {
    const dir = Deno.makeTempDirSync();
    try {
      Deno.mkdirSync(`${dir}/ro`);
      Deno.chmodSync(`${dir}/ro`, 0o555);
      const r = checkLog(audit({ MCP_AUDIT_AUDIT_PATH: `${dir}/ro/audit.jsonl` }), ownIdentity());
      assert.equal(r.status, "fail");
      assert.match(r.detail, new RegExp(`^cannot create a file in ${dir}/ro: `));
      assert.match(r.fix ?? "", /write permission on/);
      Deno.writeTextFileSync(`${dir}/audit.jsonl`, "");
      Deno.chmodSync(`${dir}/audit.jsonl`, 0o444);
      const file = checkLog(audit({ MCP_AUDIT_AUDIT_PATH: `${dir}/audit.jsonl` }), ownIdentity());
      assert.equal(file.status, "fail");
      assert.match(file.detail, /is not writable by uid \d+ \(mode 0444, owner uid \d+\)$/);
    } finally {
      Deno.chmodSync(`${dir}/ro`, 0o755);
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test("log: mode bits are read for owner, primary group and others", () => {
  const info = (mode: number, uid: number, gid: number) =>
    ({ ...Deno.statSync("."), mode, uid, gid }) satisfies Deno.FileInfo;
  const me = { uid: 1000, gid: 100 };
  assert.equal(mayWrite(info(0o644, 1000, 100), me), true);
  assert.equal(mayWrite(info(0o444, 1000, 100), me), false);
  assert.equal(mayWrite(info(0o664, 2000, 100), me), true);
  assert.equal(mayWrite(info(0o644, 2000, 100), me), false);
  assert.equal(mayWrite(info(0o666, 2000, 300), me), true);
  assert.equal(mayWrite(info(0o664, 2000, 300), me), undefined);
  assert.equal(mayWrite(info(0o444, 2000, 300), { uid: 0, gid: 0 }), true);
});

Deno.test("log: SQLite: a database that opens passes; a file that is not one fails", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const db = new DatabaseSync(`${dir}/audit.db`);
    db.exec("CREATE TABLE t (x)");
    db.close();
    const env = {
      MCP_AUDIT_AUDIT_STORAGE: "sqlite",
      MCP_AUDIT_AUDIT_SQLITE_PATH: `${dir}/audit.db`,
    };
    const ok = checkLog(audit(env), ownIdentity());
    assert.equal(ok.status, "ok");
    assert.match(ok.detail, /\(sqlite; \d+ bytes, writable, opens; directory writable\)$/);
    Deno.writeTextFileSync(
      `${dir}/audit.db`,
      "not a database, just text that is long enough ".repeat(4),
    );
    const bad = checkLog(audit(env), ownIdentity());
    assert.equal(bad.status, "fail");
    assert.match(bad.detail, /does not open as a SQLite database/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
