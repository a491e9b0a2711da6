import assert from "node:assert/strict";
import { displayName, pinsCommand, type PinsIo } from "./pins_command.ts";
import { UsageError } from "./errors.ts";
import { PinStore, toolDigest } from "../guardrails/pins.ts";
import type { JsonObject } from "../jsonrpc/json.ts";

const ALL = { first: true, last: true };
const T0 = new Date("2025-03-01T10:00:00.000Z");
const T1 = new Date("2025-03-01T11:00:00.000Z");
const T2 = new Date("2025-03-02T09:00:00.000Z");

function tool(name: string, description = `${name} does things`): JsonObject {
  return { name, description, inputSchema: { type: "object" } };
}

function short(t: JsonObject): string {
  return (toolDigest(t) ?? "").slice(0, 12);
}

/** A pins file where `read_file` changed and `exfiltrate` appeared after the first listing. */
function fixture() {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/audit.pins.json`;
  let clock = T0;
  const store = PinStore.open(path, () => clock);
  store.observe("filesystem", [tool("read_file"), tool("write_file")], ALL);
  clock = T1;
  store.observe(
    "filesystem",
    [tool("read_file", "now evil"), tool("write_file"), tool("exfiltrate")],
    ALL,
  );
  return { dir, path, store };
}

/** Runs the command, collecting its lines and the config paths asked for. */
function run(args: string[], config: { pinsPath: string; serverId?: string }) {
  const lines: string[] = [];
  const configsRead: (string | undefined)[] = [];
  const io: PinsIo = {
    out: (line) => lines.push(line),
    env: {},
    readConfig: (path) => {
      configsRead.push(path);
      return { pinsPath: config.pinsPath, serverId: config.serverId ?? "filesystem" };
    },
    now: () => T2,
  };
  const code = pinsCommand(args, io);
  return { code, lines, text: lines.join("\n"), configsRead };
}

Deno.test("pins list shows pinned tools and pending changes with short digests", () => {
  const { path } = fixture();
  const r = run(["list"], { pinsPath: path });
  assert.equal(r.code, 0);
  assert.deepEqual(r.configsRead, [undefined]);
  assert.deepEqual(r.lines, [
    `pins file ${path}`,
    "server filesystem: 2 tools pinned",
    `  read_file   ${short(tool("read_file"))}  pinned 2025-03-01T10:00:00.000Z`,
    `  write_file  ${short(tool("write_file"))}  pinned 2025-03-01T10:00:00.000Z`,
    "pending changes (server, tool, change, pinned -> seen digest, when):",
    `  filesystem  exfiltrate  added    (none)       -> ${
      short(tool("exfiltrate"))
    }  seen 2025-03-01T11:00:00.000Z`,
    `  filesystem  read_file   changed  ${short(tool("read_file"))} -> ${
      short(tool("read_file", "now evil"))
    }  seen 2025-03-01T11:00:00.000Z`,
    "approve with: mcp-audit pins approve [--server ID] (--all | TOOL...)",
  ]);
});

Deno.test("pins list says when there are no pending changes, and --server narrows it", () => {
  const { path, store } = fixture();
  store.observe("other", [tool("x")], ALL);
  const r = run(["list", "--server", "other"], { pinsPath: path });
  assert.equal(r.code, 0);
  assert.deepEqual(r.lines, [
    `pins file ${path}`,
    "server other: 1 tool pinned",
    `  x  ${short(tool("x"))}  pinned 2025-03-01T11:00:00.000Z`,
    "no pending changes for server other",
  ]);
});

Deno.test("pins list with --file reads no configuration", () => {
  const { path } = fixture();
  const r = run(["list", "--file", path], { pinsPath: "/nonexistent/elsewhere.json" });
  assert.equal(r.code, 0);
  assert.deepEqual(r.configsRead, []);
  assert.ok(r.text.includes("read_file"));
});

Deno.test("pins list passes --config to the configuration reader", () => {
  const { path } = fixture();
  const r = run(["list", "--config", "/etc/mcp-audit.yaml"], { pinsPath: path });
  assert.equal(r.code, 0);
  assert.deepEqual(r.configsRead, ["/etc/mcp-audit.yaml"]);
});

Deno.test("pins list on a missing file says nothing is pinned yet", () => {
  const dir = Deno.makeTempDirSync();
  const r = run(["list"], { pinsPath: `${dir}/audit.pins.json` });
  assert.equal(r.code, 0);
  assert.deepEqual(r.lines, [
    `pins file ${dir}/audit.pins.json (does not exist yet)`,
    "nothing pinned",
    "no pending changes",
  ]);
  assert.deepEqual([...Deno.readDirSync(dir)], []);
});

Deno.test("pins approve by name pins that tool only and says when the proxy sees it", () => {
  const { path, store } = fixture();
  const r = run(["approve", "read_file"], { pinsPath: path });
  assert.equal(r.code, 0);
  assert.deepEqual(r.lines, [
    `approved read_file: pinned ${short(tool("read_file", "now evil"))} (was ${
      short(tool("read_file"))
    })`,
    `wrote ${path}; a running proxy picks the approval up on the next call to that tool`,
  ]);
  // The "proxy" store sees it without reopening.
  assert.equal(store.status("filesystem", "read_file"), "pinned");
  assert.equal(store.status("filesystem", "exfiltrate"), "unpinned");
  const pin = PinStore.open(path, () => T2).pins("filesystem").find((p) => p.name === "read_file");
  assert.equal(pin?.pinned_at, T2.toISOString());
});

Deno.test("pins approve --all pins every pending tool of the configured server", () => {
  const { path, store } = fixture();
  const r = run(["approve", "--all"], { pinsPath: path });
  assert.equal(r.code, 0);
  assert.deepEqual(r.lines, [
    `approved exfiltrate: pinned ${short(tool("exfiltrate"))} (a new tool)`,
    `approved read_file: pinned ${short(tool("read_file", "now evil"))} (was ${
      short(tool("read_file"))
    })`,
    `wrote ${path}; a running proxy picks the approval up on the next call to each tool`,
  ]);
  assert.equal(store.status("filesystem", "exfiltrate"), "pinned");
  assert.deepEqual(PinStore.open(path, () => T2).pending(), []);
});

Deno.test("pins approve --server overrides the configured server id", () => {
  const { path } = fixture();
  const r = run(["approve", "--server", "filesystem", "--all"], {
    pinsPath: path,
    serverId: "something-else",
  });
  assert.equal(r.code, 0);
  assert.equal(r.lines.length, 3);
});

Deno.test("pins approve of a tool with nothing pending exits 1 and shows what is pending", () => {
  const { path } = fixture();
  const before = Deno.readTextFileSync(path);
  const r = run(["approve", "read_file", "write_file", "nope"], { pinsPath: path });
  assert.equal(r.code, 1);
  assert.equal(
    r.lines[0],
    "mcp-audit pins: nothing pending on server filesystem for write_file, nope; nothing approved",
  );
  assert.equal(r.lines[1], "pending on server filesystem:");
  assert.ok(r.lines[2]?.includes("exfiltrate"));
  assert.ok(r.lines[3]?.includes("read_file"));
  assert.equal(Deno.readTextFileSync(path), before);
});

Deno.test("pins approve with nothing pending exits 1 and points at other servers", () => {
  const { path } = fixture();
  const r = run(["approve", "--all"], { pinsPath: path, serverId: "github" });
  assert.equal(r.code, 1);
  assert.deepEqual(r.lines, [
    "nothing to approve: no pending changes on server github",
    "changes are pending on server filesystem (use --server)",
  ]);
  assert.equal(run(["approve", "--all"], { pinsPath: path }).code, 0);
  const again = run(["approve", "--all"], { pinsPath: path });
  assert.equal(again.code, 1);
  assert.deepEqual(again.lines, ["nothing to approve: no pending changes on server filesystem"]);
});

Deno.test("pins approve on a missing file exits 1 and says the file does not exist", () => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/audit.pins.json`;
  const r = run(["approve", "--all"], { pinsPath: path });
  assert.equal(r.code, 1);
  assert.deepEqual(r.lines, [
    "nothing to approve: no pending changes on server filesystem",
    `(${path} does not exist)`,
  ]);
  assert.equal(run(["approve", "read_file"], { pinsPath: path }).code, 1);
  assert.deepEqual([...Deno.readDirSync(dir)], []);
});

Deno.test("pins with an unreadable pins file exits 2 with the problem", () => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/audit.pins.json`;
  Deno.writeTextFileSync(path, '{"version": 7, "servers": {}}');
  for (const args of [["list"], ["approve", "--all"]]) {
    const r = run(args, { pinsPath: path });
    assert.equal(r.code, 2);
    assert.deepEqual(r.lines, [`mcp-audit pins: ${path}: version: expected 1, got 7`]);
  }
  const asDir = run(["list", "--file", dir], { pinsPath: path });
  assert.equal(asDir.code, 2);
  assert.ok(asDir.lines[0]?.startsWith(`mcp-audit pins: ${dir}: `));
});

Deno.test("pins refuses bad usage with UsageError", () => {
  const config = { pinsPath: "/nonexistent/pins.json" };
  for (
    const args of [
      [],
      ["lsit"],
      ["approve"],
      ["approve", "--all", "read_file"],
      ["list", "read_file"],
      ["list", "--all"],
      ["list", "--bogus"],
      ["approve", "--file"],
    ]
  ) {
    assert.throws(() => run(args, config), UsageError, JSON.stringify(args));
  }
});

Deno.test("pins --help prints the usage", () => {
  for (const args of [["--help"], ["-h"], ["list", "--help"], ["approve", "-h"]]) {
    const r = run(args, { pinsPath: "/nonexistent/pins.json" });
    assert.equal(r.code, 0);
    assert.ok(r.lines[0]?.startsWith("usage: mcp-audit pins list"));
    assert.deepEqual(r.configsRead, []);
  }
});

Deno.test("names from the server are shown so they cannot drive the terminal", () => {
  assert.equal(displayName("read_file"), "read_file");
  assert.equal(displayName("\x1b[2Jgotcha"), '"\\u001b[2Jgotcha"');
  assert.equal(displayName("a b"), '"a b"');
  assert.equal(displayName('say "hi"'), '"say \\"hi\\""');
  assert.equal(displayName("evil\u202ereversed"), '"evil\\u202ereversed"');
  assert.equal(displayName(""), '""');
  const { path, store } = fixture();
  store.observe("filesystem", [tool("read_file"), tool("write_file"), tool("\x1b]0;x\x07")], ALL);
  const r = run(["list"], { pinsPath: path });
  assert.ok(!r.text.includes("\x1b"));
  assert.ok(r.text.includes('"\\u001b]0;x\\u0007"'));
});
