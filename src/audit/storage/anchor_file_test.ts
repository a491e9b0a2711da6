import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { checkChain, TinyChain } from "../../../tests/fixtures/jsonl_writer.ts";
import { parseAnchor } from "../anchor.ts";
import { hmacSigner } from "../signing.ts";
import { AnchorFile } from "./anchor_file.ts";
import { AnchorMismatchError, type JsonlOptions, JsonlStore, RefusedPathError } from "./jsonl.ts";

const KEY = hmacSigner("0123456789abcdef0123456789abcdef");
const posix = Deno.build.os !== "windows";

function tempDir(): { dir: string; [Symbol.dispose](): void } {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-anchor-" });
  return { dir, [Symbol.dispose]: () => Deno.removeSync(dir, { recursive: true }) };
}

const sha = (text: string) => createHash("sha256").update(text).digest("hex");
const head = (seq: number) => ({ seq, hash: sha(String(seq)), id: `ID${seq}`, ts: `T${seq}` });

function readAnchor(path: string) {
  return parseAnchor(Deno.readTextFileSync(path));
}

function lines(path: string): string[] {
  return Deno.readTextFileSync(path).split("\n").filter((l) => l !== "");
}

function anchored(
  log: string,
  anchor: string,
  options: Partial<JsonlOptions> = {},
  signer = KEY,
): JsonlStore {
  return new JsonlStore(log, {
    durability: "none",
    anchor: new AnchorFile(anchor, log, signer),
    ...options,
  });
}

/** A log of `n` records written through a store with an anchor, closed cleanly. */
function written(log: string, anchor: string, n: number): void {
  const store = anchored(log, anchor);
  new TinyChain(store, "w").batch(n);
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
    Deno.symlinkSync(`${tmp.dir}/elsewhere`, `${tmp.dir}/a.anchor.lock`);
    assert.throws(
      () => new AnchorFile(`${tmp.dir}/a.anchor`, log, KEY),
      (e: unknown) => e instanceof RefusedPathError && e.key === "audit.anchor.path",
    );
  }
});

Deno.test("the store moves the anchor after each fsync, and to the last record at close", async () => {
  using tmp = tempDir();
  const log = `${tmp.dir}/audit.jsonl`;
  const anchorPath = `${tmp.dir}/audit.anchor`;
  const store = anchored(log, anchorPath);
  const chain = new TinyChain(store, "w");
  chain.batch(2);
  await store.settled();
  assert.throws(() => Deno.statSync(anchorPath), Deno.errors.NotFound, "not before an fsync");
  store.sync();
  const first = readAnchor(anchorPath);
  const last = lines(log)[1]!;
  assert.deepEqual([first.seq, first.hash, first.id], [2, sha(last), "w-2"]);
  assert.equal(first.log, log);
  assert.equal(first.keyId, KEY.keyId);
  chain.batch(1);
  store.close();
  assert.equal(readAnchor(anchorPath).seq, 3);
  if (posix) assert.equal(Deno.statSync(anchorPath).mode! & 0o777, 0o600);
  assert.deepEqual(
    [...Deno.readDirSync(tmp.dir)].map((e) => e.name).sort(),
    ["audit.anchor", "audit.anchor.lock", "audit.jsonl", "audit.jsonl.lock"],
    "no temporary file is left behind",
  );
});

Deno.test("with durability batch the anchor follows each background fsync", async () => {
  using tmp = tempDir();
  const log = `${tmp.dir}/audit.jsonl`;
  const anchorPath = `${tmp.dir}/audit.anchor`;
  const store = anchored(log, anchorPath, { durability: "batch" });
  const chain = new TinyChain(store, "w");
  chain.batch(1);
  store.sync(); // the run's first anchor, synchronously
  chain.batch(3);
  await store.settled();
  assert.equal(readAnchor(anchorPath).seq, 4);
  chain.batch(1);
  await store.settled();
  assert.equal(readAnchor(anchorPath).seq, 5);
  store.close();
});

Deno.test("the anchor never goes back: a background write overtaken by the final one is dropped", async () => {
  using tmp = tempDir();
  const log = `${tmp.dir}/audit.jsonl`;
  const anchor = new AnchorFile(`${tmp.dir}/audit.anchor`, log, KEY);
  anchor.writeSoon(head(5));
  anchor.writeNow(head(6));
  await anchor.settled();
  assert.equal(readAnchor(anchor.path).seq, 6);
  anchor.writeSoon(head(4));
  await anchor.settled();
  assert.equal(readAnchor(anchor.path).seq, 6);
  anchor.close();
  assert.deepEqual(
    [...Deno.readDirSync(tmp.dir)].map((e) => e.name).sort(),
    ["audit.anchor", "audit.anchor.lock"],
    "the dropped write left nothing",
  );
});

Deno.test("writers sharing an anchor: heads arrive out of order, the anchor only moves forward, nobody fails", async () => {
  using tmp = tempDir();
  const log = `${tmp.dir}/audit.jsonl`;
  const path = `${tmp.dir}/audit.anchor`;
  const a = new AnchorFile(path, log, KEY);
  const b = new AnchorFile(path, log, KEY);
  b.writeNow(head(9));
  a.writeNow(head(7)); // a knew nothing of 9: nothing to do, and no failure
  assert.equal(readAnchor(path).seq, 9);
  a.writeSoon(head(8));
  b.writeSoon(head(12));
  a.writeSoon(head(11));
  await Promise.all([a.settled(), b.settled()]);
  assert.equal(readAnchor(path).seq, 12);
  a.writeNow(head(13));
  b.writeNow(head(10));
  assert.equal(readAnchor(path).seq, 13);
  a.check();
  b.check();
  a.close();
  b.close();
});

Deno.test("two stores with one anchor on one log: the last close leaves the newest head", async () => {
  using tmp = tempDir();
  const log = `${tmp.dir}/audit.jsonl`;
  const anchorPath = `${tmp.dir}/audit.anchor`;
  const a = new TinyChain(anchored(log, anchorPath, { durability: "entry" }), "a");
  const b = new TinyChain(anchored(log, anchorPath, { durability: "entry" }), "b");
  a.batch(3);
  b.batch(2);
  a.batch(1);
  await a.store.settled();
  assert.equal(readAnchor(anchorPath).seq, 6);
  b.store.close(); // b's own last head is 5: the anchor stays at 6
  assert.equal(readAnchor(anchorPath).seq, 6);
  a.store.close();
  const all = lines(log);
  assert.equal(checkChain(all).length, 6);
  assert.equal(readAnchor(anchorPath).hash, sha(all[5]!));
  // A restart by either agrees with the anchor.
  anchored(log, anchorPath).close();
});

Deno.test("a temp file another writer is still writing is not cleaned up; a dead one's is", () => {
  using tmp = tempDir();
  const log = `${tmp.dir}/audit.jsonl`;
  const live = `${tmp.dir}/.audit.anchor.4000001.1.tmp`;
  const dead = `${tmp.dir}/.audit.anchor.4000002.1.tmp`;
  Deno.writeTextFileSync(live, "half");
  Deno.writeTextFileSync(dead, "half");
  using holder = Deno.openSync(live, { read: true, write: true });
  holder.lockSync(true);
  new AnchorFile(`${tmp.dir}/audit.anchor`, log, KEY).close();
  assert.ok(Deno.statSync(live).isFile);
  assert.throws(() => Deno.statSync(dead), Deno.errors.NotFound);
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
    () => anchored(log, anchorPath),
    (e: unknown) =>
      e instanceof AnchorMismatchError && /ends at seq 2/.test(e.message) &&
      /names seq 3/.test(e.message),
  );
  assert.equal(Deno.readTextFileSync(log), cut, "the log is untouched");
  Deno.writeTextFileSync(log, "");
  assert.throws(() => anchored(log, anchorPath), /holds no records/);
});

Deno.test("a restart refuses a log whose last record is not the anchored one", () => {
  using tmp = tempDir();
  const log = `${tmp.dir}/audit.jsonl`;
  const anchorPath = `${tmp.dir}/audit.anchor`;
  written(log, anchorPath, 3);
  const all = lines(log);
  all[2] = all[2]!.replace('"n":2', '"n":22');
  Deno.writeTextFileSync(log, all.join("\n") + "\n");
  assert.throws(
    () => anchored(log, anchorPath),
    (e: unknown) => e instanceof AnchorMismatchError && /is not the one/.test(e.message),
  );
});

Deno.test("a restart after a rotation checks the anchor against the chain, archives included", () => {
  using tmp = tempDir();
  const log = `${tmp.dir}/audit.jsonl`;
  const anchorPath = `${tmp.dir}/audit.anchor`;
  const rotation = {
    max_size_bytes: 1,
    max_files: 0,
    interval: "",
    max_age_days: 0,
    compress: "",
  } as const;
  const store = anchored(log, anchorPath, { rotation });
  const chain = new TinyChain(store, "w");
  chain.batch(2);
  chain.batch(1); // rotates first
  store.close();
  assert.equal(readAnchor(anchorPath).seq, 4);
  anchored(log, anchorPath).close();
  // The active file taken away while stopped: the newest archive must still hold the anchored
  // record, and it does not.
  Deno.removeSync(log);
  assert.throws(() => anchored(log, anchorPath), /holds no records|ends at seq 2/);
});

Deno.test("a restart refuses an anchor signed with another key, edited, or for another log", () => {
  using tmp = tempDir();
  const log = `${tmp.dir}/audit.jsonl`;
  const anchorPath = `${tmp.dir}/audit.anchor`;
  written(log, anchorPath, 2);
  const open = (signer = KEY, path = log) => anchored(path, anchorPath, {}, signer);
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
  const store = anchored(log, `${tmp.dir}/anchors/audit.anchor`);
  Deno.removeSync(`${tmp.dir}/anchors`, { recursive: true });
  const chain = new TinyChain(store, "w");
  chain.batch(1);
  assert.throws(() => store.sync(), /cannot update the anchor/);
  assert.throws(() => chain.batch(1), /cannot update the anchor/, "fail closed");
  assert.throws(() => store.close(), /cannot update the anchor/);
});
