import assert from "node:assert/strict";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { wrappedArgs } from "../clients/wrap.ts";
import { checkClients, findCommand } from "./clients_check.ts";

const MAIN = fileURLToPath(new URL("../../main.ts", import.meta.url));
const DENO_DIR = dirname(Deno.execPath());

/** A client file with the entries given, wrapped as `wrap` writes them (from source). */
function clientFile(dir: string, config: string, servers: Record<string, string[]>): string {
  const entries: Record<string, unknown> = {};
  for (const [name, argv] of Object.entries(servers)) {
    entries[name] = {
      command: Deno.execPath(),
      args: wrappedArgs(["run", "--allow-read", MAIN], name, "cursor", config, {
        kind: "stdio",
        argv,
      }),
    };
  }
  entries["plain"] = { command: "npx", args: ["-y", "some-server"] };
  const path = `${dir}/mcp.json`;
  Deno.writeTextFileSync(path, JSON.stringify({ mcpServers: entries }, null, 2));
  return path;
}

const platform = (cwd: string, env: Record<string, string> = {}) => ({
  os: Deno.build.os,
  env: { PATH: DENO_DIR, ...env },
  cwd,
});

Deno.test("clients: wrapped entries whose launcher, main.ts, config and command exist pass", () => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.writeTextFileSync(`${dir}/config.yaml`, "");
    const path = clientFile(dir, `${dir}/config.yaml`, { everything: ["deno", "run", "x.ts"] });
    const r = checkClients({ clients: [], files: [path] }, platform(dir));
    assert.equal(r.status, "ok", JSON.stringify(r));
    assert.equal(r.detail, "1 wrapped server in 1 file (1 not wrapped) point at existing programs");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("clients: a missing server command and a missing --config are named per entry", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const path = clientFile(dir, `${dir}/gone.yaml`, {
      fs: ["no-such-mcp-server-here", "/tmp"],
    });
    const r = checkClients({ clients: [], files: [path] }, platform(dir));
    assert.equal(r.status, "fail");
    assert.equal(r.detail, "1 wrapped server in 1 file (1 not wrapped): 2 problems");
    assert.deepEqual(r.notes, [
      `${path}: fs: its --config ${dir}/gone.yaml does not exist`,
      `${path}: fs: the server's command "no-such-mcp-server-here" is not found on PATH (no shell is used; clients often start servers with a shorter PATH than a terminal's)`,
    ]);
    assert.match(r.fix ?? "", /mcp-audit wrap/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("clients: a client not installed warns; a malformed file fails with its line and column", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const none = checkClients({ clients: ["cursor"], files: [] }, platform(dir, { HOME: dir }));
    assert.equal(none.status, "warn");
    assert.deepEqual(none.notes, [`cursor: not installed here (no ${dir}/.cursor/mcp.json)`]);
    Deno.writeTextFileSync(`${dir}/bad.json`, '{\n  "mcpServers": {\n    "x": [1,\n}');
    const bad = checkClients({ clients: [], files: [`${dir}/bad.json`] }, platform(dir));
    assert.equal(bad.status, "fail");
    assert.match(bad.notes?.[0] ?? "", new RegExp(`^${dir}/bad\\.json: line 4, column 1: `));
    const unknown = checkClients({ clients: ["emacs"], files: [] }, platform(dir));
    assert.equal(unknown.status, "fail");
    assert.deepEqual(unknown.notes, ['unknown client "emacs"']);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("clients: findCommand looks along PATH for a bare name and at the path itself otherwise", () => {
  const p = platform("/");
  assert.equal(findCommand("deno", DENO_DIR, p), Deno.execPath());
  assert.equal(findCommand("deno", "/nonexistent", p), undefined);
  assert.equal(findCommand(Deno.execPath(), "", p), Deno.execPath());
  assert.equal(findCommand(MAIN, DENO_DIR, p), undefined); // not executable
});

Deno.test("clients: an entry whose args only look wrapped is not counted as mcp-audit's", () => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.writeTextFileSync(`${dir}/config.yaml`, "");
    const path = clientFile(dir, `${dir}/config.yaml`, { everything: ["deno", "run", "x.ts"] });
    const doc = JSON.parse(Deno.readTextFileSync(path));
    // The same arguments behind another program: someone else's entry, not ours.
    doc.mcpServers["lookalike"] = { ...doc.mcpServers["everything"], command: "/tmp/evil" };
    Deno.writeTextFileSync(path, JSON.stringify(doc, null, 2));
    const r = checkClients({ clients: [], files: [path] }, platform(dir));
    assert.equal(r.status, "ok", JSON.stringify(r));
    assert.equal(r.detail, "1 wrapped server in 1 file (2 not wrapped) point at existing programs");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
