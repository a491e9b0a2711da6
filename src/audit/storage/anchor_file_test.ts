import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { parseAnchor } from "../anchor.ts";
import type { AuditRecord } from "../record.ts";
import { hmacSigner } from "../signing.ts";
import { AnchorFile } from "./anchor_file.ts";
import { AnchorMismatchError, JsonlStore, RefusedPathError } from "./jsonl.ts";

const KEY = hmacSigner("0123456789abcdef0123456789abcdef");
const posix = Deno.build.os !== "windows";

function tempDir(): { dir: string; [Symbol.dispose](): void } {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-anchor-" });
  return { dir, [Symbol.dispose]: () => Deno.removeSync(dir, { recursive: true }) };
}

const line = (seq: number) => JSON.stringify({ v: 1, seq, prev: "0".repeat(64), n: seq });
// The store reads seq, id and ts of a record for the anchor; nothing else.
const rec = (seq: number) => ({ seq, id: `ID${seq}`, ts: `T${seq}` }) as unknown as AuditRecord;
const sha = (text: string) => createHash("sha256").update(text).digest("hex");

function readAnchor(path: string) {
  return parseAnchor(Deno.readTextFileSync(path));
}

/** A log of `n` records written through a store with an anchor, closed cleanly. */
function written(log: string, anchor: string, n: number): void {
  const store = new JsonlStore(log, false, { anchor: new AnchorFile(anchor, log, KEY) });
  for (let seq = 1; seq <= n; seq++) store.append(line(seq), rec(seq));
  store.close();
}

Deno.test("AnchorFile refuses a directory or a symlink at its path, and the log's own path", () => {
  using tmp = tempDir();
  const log = `${tmp.dir}/audit.jsonl`;
  Deno.mkdirSync(`${tmp.dir}/dir`);
  assert.throws(() => new AnchorFile(`${tmp.dir}/dir`, log, KEY), RefusedPathError);
  assert.throws(() => new AnchorFile(log, log, KEY), RefusedPathError);
  if (posix) {
    Deno.symlinkSync(`${tmp.dir}/elsewhere`, `${tmp.dir}/link`);
    assert.throws(() => new AnchorFile(`${tmp.dir}/link`, log, KEY), RefusedPathError);
  }
});

Deno.test("the store moves the anchor after each fsync, and to the last record at close", async () => {
  using tmp = tempDir();
  const log = `${tmp.dir}/audit.jsonl`;
  const anchorPath = `${tmp.dir}/audit.anchor`;
  const store = new JsonlStore(log, false, { anchor: new AnchorFile(anchorPath, log, KEY) });
  store.append(line(1), rec(1));
  store.append(line(2), rec(2));
  store.flush();
  await store.settled();
  assert.throws(() => Deno.statSync(anchorPath), Deno.errors.NotFound, "not before an fsync");
  store.syncSoon();
  await store.settled();
  const soon = readAnchor(anchorPath);
  assert.deepEqual([soon.seq, soon.hash, soon.id, soon.ts], [2, sha(line(2)), "ID2", "T2"]);
  assert.equal(soon.log, log);
  assert.equal(soon.keyId, KEY.keyId);
  store.append(line(3), rec(3));
  store.close();
  assert.equal(readAnchor(anchorPath).seq, 3);
  if (posix) assert.equal(Deno.statSync(anchorPath).mode! & 0o777, 0o600);
  assert.deepEqual(
    [...Deno.readDirSync(tmp.dir)].map((e) => e.name).sort(),
    ["audit.anchor", "audit.jsonl"],
    "no temporary file is left behind",
  );
});

Deno.test("the anchor never goes back: a background write overtaken by the final one is dropped", async () => {
  using tmp = tempDir();
  const log = `${tmp.dir}/audit.jsonl`;
  const anchor = new AnchorFile(`${tmp.dir}/audit.anchor`, log, KEY);
  anchor.writeSoon({ seq: 5, hash: sha("5"), id: "ID5", ts: "T5" });
  anchor.writeNow({ seq: 6, hash: sha("6"), id: "ID6", ts: "T6" });
  await anchor.settled();
  assert.equal(readAnchor(anchor.path).seq, 6);
  anchor.writeSoon({ seq: 4, hash: sha("4"), id: "ID4", ts: "T4" });
  await anchor.settled();
  assert.equal(readAnchor(anchor.path).seq, 6);
  assert.equal([...Deno.readDirSync(tmp.dir)].length, 1, "the dropped write left nothing");
});

Deno.test("a restart refuses a log that ends before its anchor, changing nothing", () => {
  using tmp = tempDir();
  const log = `${tmp.dir}/audit.jsonl`;
  const anchorPath = `${tmp.dir}/audit.anchor`;
  written(log, anchorPath, 3);
  const full = Deno.readTextFileSync(log);
  // Cut back into the middle of the last record: a torn line the store would otherwise close.
  const cut = full.slice(0, full.length - 5);
  Deno.writeTextFileSync(log, cut);
  assert.throws(
    () => new JsonlStore(log, false, { anchor: new AnchorFile(anchorPath, log, KEY) }),
    (e: unknown) =>
      e instanceof AnchorMismatchError && /ends at seq 2/.test(e.message) &&
      /names seq 3/.test(e.message),
  );
  assert.equal(Deno.readTextFileSync(log), cut, "the log is untouched");
  Deno.writeTextFileSync(log, "");
  assert.throws(
    () => new JsonlStore(log, false, { anchor: new AnchorFile(anchorPath, log, KEY) }),
    /holds no records/,
  );
});

Deno.test("a restart refuses a log whose last record is not the anchored one", () => {
  using tmp = tempDir();
  const log = `${tmp.dir}/audit.jsonl`;
  const anchorPath = `${tmp.dir}/audit.anchor`;
  written(log, anchorPath, 3);
  const lines = Deno.readTextFileSync(log).trimEnd().split("\n");
  lines[2] = lines[2]!.replace('"n":3', '"n":33');
  Deno.writeTextFileSync(log, lines.join("\n") + "\n");
  assert.throws(
    () => new JsonlStore(log, false, { anchor: new AnchorFile(anchorPath, log, KEY) }),
    (e: unknown) => e instanceof AnchorMismatchError && /is not the one/.test(e.message),
  );
});

Deno.test("a restart refuses an anchor signed with another key, edited, or for another log", () => {
  using tmp = tempDir();
  const log = `${tmp.dir}/audit.jsonl`;
  const anchorPath = `${tmp.dir}/audit.anchor`;
  written(log, anchorPath, 2);
  const open = (signer = KEY, path = log) =>
    new JsonlStore(path, false, { anchor: new AnchorFile(anchorPath, path, signer) });
  assert.throws(() => open(hmacSigner("another secret entirely, 32 bytes")), AnchorMismatchError);
  const text = Deno.readTextFileSync(anchorPath);
  Deno.writeTextFileSync(anchorPath, text.replace('"seq":2', '"seq":1'));
  assert.throws(() => open(), AnchorMismatchError);
  Deno.writeTextFileSync(anchorPath, text);
  Deno.copyFileSync(log, `${tmp.dir}/other.jsonl`);
  assert.throws(() => open(KEY, `${tmp.dir}/other.jsonl`), RefusedPathError);
  Deno.writeTextFileSync(anchorPath, "not an anchor\n");
  assert.throws(() => open(), RefusedPathError);
  Deno.writeTextFileSync(anchorPath, text);
  open().close();
});

Deno.test("an anchor whose directory is missing is refused at once", () => {
  using tmp = tempDir();
  assert.throws(
    () => new AnchorFile(`${tmp.dir}/nowhere/audit.anchor`, `${tmp.dir}/audit.jsonl`, KEY),
    (e: unknown) => e instanceof RefusedPathError && e.key === "audit.anchor.path",
  );
});

Deno.test("the run's first anchor is written before sync returns, so a failure stops the start", () => {
  using tmp = tempDir();
  Deno.mkdirSync(`${tmp.dir}/anchors`);
  const log = `${tmp.dir}/audit.jsonl`;
  const store = new JsonlStore(log, false, {
    anchor: new AnchorFile(`${tmp.dir}/anchors/audit.anchor`, log, KEY),
  });
  Deno.removeSync(`${tmp.dir}/anchors`);
  store.append(line(1), rec(1));
  assert.throws(() => store.sync(), /cannot update the anchor/);
  assert.throws(() => store.append(line(2), rec(2)), /cannot update the anchor/, "fail closed");
});
