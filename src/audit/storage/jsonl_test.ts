import assert from "node:assert/strict";
import { hash } from "node:crypto";
import { gunzipSync, gzipSync } from "node:zlib";
import { checkChain, TinyChain } from "../../../tests/fixtures/jsonl_writer.ts";
import { parseAnchor } from "../anchor.ts";
import { hmacSigner } from "../signing.ts";
import { AnchorFile } from "./anchor_file.ts";
import { listArchives } from "./archives.ts";
import { type JsonlOptions, JsonlStore, RefusedPathError, StorageError } from "./jsonl.ts";
import type { Rotation } from "./rotation.ts";
import type { StoreChange } from "./store.ts";
import { FileCalls, ManualTimers } from "./testdata/sync_probes.ts";

const posix = Deno.build.os !== "windows";
const encoder = new TextEncoder();

function tempDir(): { dir: string; [Symbol.dispose](): void } {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-jsonl-" });
  return { dir, [Symbol.dispose]: () => Deno.removeSync(dir, { recursive: true }) };
}

function open(path: string, options: Partial<JsonlOptions> = {}): JsonlStore {
  return new JsonlStore(path, { durability: "none", ...options });
}

/** The lines of a file, without the empty one after its last newline. */
function lines(path: string): string[] {
  const text = Deno.readTextFileSync(path);
  const all = text.split("\n");
  if (all.at(-1) === "") all.pop();
  return all;
}

const kinds = (changes: readonly StoreChange[]) => changes.map((c) => c.kind);
const detailsOf = (c: StoreChange | undefined) =>
  c !== undefined && "details" in c ? c.details : undefined;

/** `n` canonical record lines of a chain of their own (seq 1…n), made through a scratch store. */
function recordLines(n: number): string[] {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-lines-" });
  try {
    const store = open(`${dir}/scratch.jsonl`);
    new TinyChain(store, "scratch").batch(n);
    store.close();
    return lines(`${dir}/scratch.jsonl`);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

const NO_ROTATION: Rotation = {
  max_size_bytes: 0,
  max_files: 0,
  interval: "",
  max_age_days: 0,
  compress: "",
};

// ---- opening, and what the first batch finds ----

Deno.test({
  name:
    "JsonlStore creates the log and its lock file with mode 0600 at the first batch, not at open",
  ignore: !posix,
  fn() {
    using tmp = tempDir();
    const path = `${tmp.dir}/audit.jsonl`;
    const store = open(path);
    assert.throws(() => Deno.statSync(path), Deno.errors.NotFound, "opening only looks");
    const start = store.begin();
    assert.deepEqual(start, { head: null, changes: [] });
    store.commit();
    store.close();
    assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
    assert.equal(Deno.statSync(`${path}.lock`).mode! & 0o777, 0o600);
  },
});

Deno.test({
  name: "JsonlStore tightens an existing log readable by others to 0600 at the first batch",
  ignore: !posix,
  fn() {
    using tmp = tempDir();
    const path = `${tmp.dir}/audit.jsonl`;
    Deno.writeTextFileSync(path, recordLines(1)[0] + "\n", { mode: 0o644 });
    Deno.chmodSync(path, 0o644);
    const store = open(path);
    assert.equal(Deno.statSync(path).mode! & 0o777, 0o644, "opening only looks");
    store.begin();
    store.abort();
    store.close();
    assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
  },
});

Deno.test("JsonlStore reports the stored head at the first batch, and nothing after its own", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  const made = recordLines(3);
  Deno.writeTextFileSync(path, made.join("\n") + "\n");
  const store = open(path);
  const first = store.begin();
  assert.deepEqual(first, { head: { seq: 3, hash: hash("sha256", made[2]!, "hex") }, changes: [] });
  store.abort();
  const chain = new TinyChain(store, "a");
  chain.batch(2);
  const again = store.begin();
  assert.deepEqual(again, { head: undefined, changes: [] }, "its own writes are no news");
  store.abort();
  store.close();
  assert.equal(checkChain(lines(path)).length, 5);
});

Deno.test("JsonlStore changes nothing at open; the first batch closes a torn line and names its bytes", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  const made = recordLines(2);
  const head = made.join("\n") + "\n";
  // A record cut inside a multi-byte character, as a crash can leave it.
  const torn = made[1]!.replace("test-client", "tést-clïent😀").slice(0, 30);
  Deno.writeTextFileSync(path, head + torn);
  const store = open(path);
  assert.equal(Deno.readTextFileSync(path), head + torn, "opening only looks");
  const chain = new TinyChain(store, "a");
  chain.batch(1);
  store.close();
  assert.deepEqual(chain.changes, [{
    kind: "torn",
    reason: chain.changes[0]!.reason,
    details: {
      path,
      torn: [{
        file: path,
        offset: encoder.encode(head).length,
        length: encoder.encode(torn).length,
      }],
    },
  }]);
  const after = lines(path);
  assert.equal(after[2], torn, "the torn line is kept, closed with a newline");
  const records = checkChain(after);
  assert.deepEqual(records.map((r) => r.seq), [1, 2, 3, 4]);
  assert.equal(records[2]!.method, "audit/recover");
});

Deno.test("JsonlStore closes a whole last record that lost only its newline, without a report", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  const made = recordLines(2);
  Deno.writeTextFileSync(path, made.join("\n"));
  const store = open(path);
  const chain = new TinyChain(store, "a");
  chain.batch(1);
  store.close();
  assert.deepEqual(chain.changes, []);
  assert.deepEqual(checkChain(lines(path)).map((r) => r.seq), [1, 2, 3]);
});

Deno.test("JsonlStore accepts a first record torn by a crash before its newline", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  Deno.writeTextFileSync(path, '{"client_id":"c","cli');
  const store = open(path);
  const start = store.begin();
  store.abort();
  store.close();
  assert.equal(start.head, null);
  assert.deepEqual(
    start.changes.map((c) => "details" in c && c.details.torn),
    [[{ file: path, offset: 0, length: 21 }]],
  );
});

/** What a file looks like, to show that a refusal changed nothing. */
function looks(path: string): { text: string; mode: number; mtime: number } {
  const stat = Deno.lstatSync(path);
  return {
    text: Deno.readTextFileSync(path),
    mode: (stat.mode ?? 0) & 0o7777,
    mtime: stat.mtime?.getTime() ?? 0,
  };
}

/** A file readable by others with an old mtime, so that any change to it shows. */
function planted(path: string, text: string): void {
  Deno.writeTextFileSync(path, text);
  if (posix) Deno.chmodSync(path, 0o644);
  Deno.utimeSync(path, 1_000_000, 1_000_000);
}

Deno.test({
  name: "JsonlStore refuses a symlinked path unless told to follow it, and changes nothing first",
  ignore: !posix,
  fn() {
    using tmp = tempDir();
    const target = `${tmp.dir}/real.jsonl`;
    const made = recordLines(2);
    planted(target, made[0] + "\n");
    const before = looks(target);
    const link = `${tmp.dir}/audit.jsonl`;
    Deno.symlinkSync(target, link);
    assert.throws(
      () => open(link),
      (e: unknown) => e instanceof RefusedPathError && e.key === "audit.path",
    );
    assert.deepEqual(looks(target), before, "mode, content and mtime as they were");

    const store = open(link, { followSymlinks: true });
    assert.equal(store.path, target, "it writes the file the link leads to");
    new TinyChain(store, "a").batch(1);
    store.close();
    assert.equal(checkChain(lines(target)).length, 2);
    assert.equal(Deno.statSync(target).mode! & 0o777, 0o600, "tightened once known to be a log");
    assert.ok(Deno.statSync(`${target}.lock`).isFile, "the lock sits beside the file written");
    assert.ok(Deno.lstatSync(link).isSymlink);
  },
});

Deno.test({
  name:
    "JsonlStore refuses a directory, a FIFO and files that are not logs, leaving them as they were",
  ignore: !posix,
  async fn() {
    using tmp = tempDir();
    Deno.mkdirSync(`${tmp.dir}/dir`);
    assert.throws(() => open(`${tmp.dir}/dir`), /is a directory, not a log/);
    const fifo = `${tmp.dir}/fifo`;
    assert.ok((await new Deno.Command("mkfifo", { args: [fifo] }).output()).success);
    assert.throws(() => open(fifo), /is a FIFO, not a log/);
    const record = recordLines(1)[0]!;
    const strangers = [
      "hello\nworld\n",
      '{"some":"json"}',
      record.replace('"v":1', '"v":2') + "\n",
      "\n" + record + "\n",
      "x".repeat(2 << 20),
      record + "\n" + "not\nan\naudit\nlog\n".repeat(5),
    ];
    for (const [i, text] of strangers.entries()) {
      const path = `${tmp.dir}/stranger-${i}`;
      planted(path, text);
      const before = looks(path);
      assert.throws(
        () => open(path),
        (e: unknown) => e instanceof RefusedPathError && /is not an mcp-audit log/.test(e.message),
        `stranger ${i}`,
      );
      assert.deepEqual(looks(path), before, `stranger ${i} is untouched`);
    }
  },
});

Deno.test("JsonlStore refuses a path whose directory is missing, and use after close", () => {
  using tmp = tempDir();
  assert.throws(() => open(`${tmp.dir}/missing/dir/audit.jsonl`), StorageError);
  const store = open(`${tmp.dir}/audit.jsonl`);
  store.close();
  store.close();
  assert.throws(() => store.begin(), /closed/);
});

// ---- several writers on one file ----

Deno.test("two stores on one log, writing interleaved batches, make one chain", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  const a = new TinyChain(open(path), "a");
  const b = new TinyChain(open(path), "b");
  let written = 0;
  for (let round = 0; round < 20; round++) {
    written += a.batch(1 + (round % 3)).length;
    written += b.batch(1 + (round % 5)).length;
    if (round % 4 === 0) written += b.batch(2).length;
  }
  a.store.close();
  b.store.close();
  const records = checkChain(lines(path));
  assert.equal(records.length, written);
  assert.equal(written, 109);
  assert.deepEqual([...a.changes, ...b.changes], [], "another writer's records are no change");
});

Deno.test("four stores on one log, in a shuffled order, make one chain", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  const chains = ["a", "b", "c", "d"].map((w) => new TinyChain(open(path), w));
  let x = 7;
  let written = 0;
  for (let i = 0; i < 200; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    const n = 1 + (x % 4);
    chains[x % 4]!.batch(n);
    written += n;
  }
  for (const c of chains) c.store.close();
  assert.equal(checkChain(lines(path)).length, written);
  assert.deepEqual(chains.flatMap((c) => c.changes), []);
});

Deno.test("a line torn by a writer killed mid-batch is reported once, by the next writer, and closed", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  const a = new TinyChain(open(path), "a");
  const b = new TinyChain(open(path), "b");
  const c = new TinyChain(open(path), "c");
  a.batch(2);
  b.batch(1);
  c.batch(1);
  // A writer killed mid-batch: two whole records of its batch, then part of the third.
  const size = Deno.statSync(path).size;
  const ghost = new TinyChain(open(path), "ghost");
  const batch = ghost.batch(3).map((r) => r.line);
  ghost.store.close();
  const cut = batch[2]!.slice(0, 50);
  Deno.truncateSync(path, size + batch[0]!.length + batch[1]!.length + 2 + 50);

  b.batch(1);
  assert.deepEqual(kinds(b.changes), ["torn"]);
  const torn = b.changes[0]!;
  assert.deepEqual("details" in torn && torn.details.torn, [{
    file: path,
    offset: size + batch[0]!.length + batch[1]!.length + 2,
    length: 50,
  }]);
  a.batch(1);
  c.batch(2);
  b.batch(1);
  for (const s of [a, b, c]) s.store.close();
  assert.deepEqual(kinds([...a.changes, ...c.changes]), [], "reported once");
  const records = checkChain(lines(path));
  assert.equal(records.length, 4 + 2 + 1 + 1 + 1 + 2 + 1, "the whole records of the batch count");
  assert.equal(records[6]!.method, "audit/recover");
  assert.ok(lines(path).includes(cut), "the torn line is kept");
});

Deno.test("bytes that are no record of ours are reported as extended, not as another writer", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  const a = new TinyChain(open(path), "a");
  const b = new TinyChain(open(path), "b");
  a.batch(1);
  const left = Deno.statSync(path).size;
  b.batch(1);
  const size = Deno.statSync(path).size;
  Deno.writeTextFileSync(path, "junk", { append: true });
  a.batch(1);
  b.batch(1);
  a.store.close();
  b.store.close();
  assert.deepEqual(kinds(a.changes), ["extended"]);
  assert.deepEqual(kinds(b.changes), []);
  const ext = a.changes[0]!;
  assert.deepEqual("details" in ext && ext.details, {
    path,
    found_size: size + 4,
    expected_size: left,
    foreign_bytes: { offset: size, length: 4 },
    lines: [{ file: path, offset: size, length: 4 }],
  });
  assert.equal(checkChain(lines(path)).length, 5);
});

Deno.test("abort drops the batch and unlocks; it is harmless with no batch open", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  const a = open(path);
  const b = new TinyChain(open(path), "b");
  a.abort();
  a.begin();
  a.write({ line: "never stored", record: b.batch.length as never, hash: "" });
  a.abort();
  a.abort();
  b.batch(1);
  assert.throws(() => a.commit(), /outside a batch/);
  a.close();
  b.store.close();
  assert.equal(checkChain(lines(path)).length, 1);
  assert.ok(!Deno.readTextFileSync(path).includes("never stored"));
});

// ---- the path taken away, cut short, replaced ----

Deno.test({
  name: "JsonlStore tells a deleted log from a moved one, and goes on in a new file",
  ignore: !posix,
  fn() {
    using tmp = tempDir();
    const path = `${tmp.dir}/audit.jsonl`;
    const deleted = new TinyChain(open(path), "a");
    deleted.batch(1);
    Deno.removeSync(path);
    deleted.batch(1);
    deleted.store.close();
    assert.deepEqual(
      deleted.changes.map((c) => [c.kind, "oldFileLinked" in c && c.oldFileLinked]),
      [
        ["deleted", false],
      ],
    );
    assert.deepEqual(lines(path).map((l) => JSON.parse(l).seq), [2, 3]);
    assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);

    const other = `${tmp.dir}/moved.jsonl`;
    const moved = new TinyChain(open(other), "m");
    moved.batch(1);
    Deno.renameSync(other, `${other}.1`);
    moved.batch(1);
    moved.store.close();
    assert.deepEqual(kinds(moved.changes), ["moved"]);
    const old = lines(`${other}.1`);
    assert.equal(JSON.parse(old[1]!).method, "audit/checkpoint", "the old file ends cleanly");
    assert.equal(checkChain([...old, ...lines(other)]).length, 4);
  },
});

Deno.test({
  name: "JsonlStore moves a stranger at the path aside whole and never writes into it",
  ignore: !posix,
  fn() {
    using tmp = tempDir();
    const path = `${tmp.dir}/audit.jsonl`;
    const chain = new TinyChain(open(path), "a");
    chain.batch(1);
    const stranger = `${tmp.dir}/stranger`;
    planted(stranger, "someone else's\n");
    const before = looks(stranger);
    Deno.renameSync(stranger, path);
    const start = chain.store.begin();
    assert.deepEqual(kinds(start.changes), ["replaced"]);
    const details = chain.store.startNewFile();
    chain.store.abort();
    const foreign = details.foreign as { moved_to: string; type: string };
    assert.equal(foreign.type, "a file");
    assert.deepEqual(looks(foreign.moved_to), before);
    chain.batch(1);
    chain.store.close();
    assert.deepEqual(kinds(chain.changes), ["replaced"], "the abandoned new file is owed again");
    assert.deepEqual(lines(path).map((l) => JSON.parse(l).method), ["audit/recover", "tools/call"]);
  },
});

Deno.test("JsonlStore notices a log cut short, and closes the partial line it ends in", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  const chain = new TinyChain(open(path), "a");
  chain.batch(2);
  const first = lines(path)[0]!;
  const cut = first.length + 1 + 5;
  const full = Deno.statSync(path).size;
  Deno.truncateSync(path, cut);
  chain.batch(1);
  chain.batch(1);
  chain.store.close();
  assert.deepEqual(kinds(chain.changes), ["truncated"], "recorded once");
  const change = chain.changes[0]!;
  assert.deepEqual("details" in change && change.details, {
    path,
    expected_size: full,
    found_size: cut,
    closed_line: { offset: first.length + 1, length: 5 },
  });
  const after = lines(path);
  assert.equal(after[1], lines(path)[1]!.slice(0, 5));
  assert.deepEqual(after.slice(2).map((l) => JSON.parse(l).seq), [3, 4, 5]);
});

Deno.test({
  name: "JsonlStore fails closed when its directory is gone, and keeps failing",
  ignore: !posix,
  fn() {
    using tmp = tempDir();
    Deno.mkdirSync(`${tmp.dir}/logs`);
    const chain = new TinyChain(open(`${tmp.dir}/logs/audit.jsonl`), "a");
    chain.batch(1);
    Deno.removeSync(`${tmp.dir}/logs`, { recursive: true });
    assert.throws(() => chain.batch(1), /its directory is gone/);
    assert.deepEqual(kinds(chain.changes), ["deleted"]);
    assert.throws(() => chain.batch(1), /its directory is gone/);
    assert.throws(() => chain.store.close(), /its directory is gone/);
  },
});

Deno.test("a log missing at start while its archives hold the chain goes on from the newest archive", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  const made = recordLines(3);
  Deno.writeTextFileSync(`${path}.20260101T000000Z`, made.join("\n") + "\n");
  const store = open(path);
  const abandoned = store.begin();
  store.abort();
  const chain = new TinyChain(store, "a");
  chain.batch(1);
  assert.deepEqual(abandoned.changes, chain.changes, "said again after an abandoned batch");
  assert.equal(abandoned.head?.seq, 3);
  chain.store.close();
  assert.deepEqual(kinds(chain.changes), ["deleted"]);
  const now = lines(path).map((l) => JSON.parse(l));
  assert.deepEqual(now.map((r) => [r.seq, r.method]), [[4, "audit/recover"], [5, "tools/call"]]);
  assert.equal(now[0].params.continues_from_archive, "audit.jsonl.20260101T000000Z");
  assert.equal(checkChain([...made, ...lines(path)]).length, 5);
});

// ---- rotation, retention, compression ----

const BYTES: Rotation = { ...NO_ROTATION, max_size_bytes: 4000 };

Deno.test("JsonlStore rotates by size at the start of a batch; the chain runs on across the archive", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  const clock = Date.parse("2026-06-10T22:00:00.000Z");
  const chain = new TinyChain(open(path, { rotation: BYTES, now: () => clock }), "a", () => clock);
  for (let i = 0; i < 12; i++) chain.batch(3);
  chain.store.close();
  const archives = listArchives(path);
  assert.ok(archives.length >= 2, `archives: ${archives.map((a) => a.name)}`);
  assert.deepEqual(
    archives.map((a) => a.name),
    [
      "audit.jsonl.20260610T220000Z",
      ...archives.slice(1).map((_, i) => `audit.jsonl.20260610T220000Z.${i + 1}`),
    ],
    "the same second: .1, .2 on clashes",
  );
  const all = [...archives.flatMap((a) => lines(a.path)), ...lines(path)];
  const records = checkChain(all);
  assert.equal(records.length, 36 + archives.length);
  for (const a of [...archives.slice(1).map((a) => a.path), path]) {
    const first = JSON.parse(lines(a)[0]!);
    assert.equal(first.method, "audit/rotate", `${a} begins with the rotation`);
    assert.equal(first.params.continues_after_seq, first.seq - 1);
    assert.equal(first.params.cause, "size");
  }
  for (const a of archives) {
    assert.ok(Deno.statSync(a.path).size >= 4000, "archived once it reached the size");
  }
  assert.deepEqual(
    detailsOf(chain.changes[0]),
    { archive: "audit.jsonl.20260610T220000Z", cause: "size", deleted_archives: [] },
  );
});

Deno.test("JsonlStore rotates at the first UTC hour after its first record, and takes the next free name", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  let clock = Date.parse("2026-06-10T21:30:00.000Z");
  const hourly: Rotation = { ...NO_ROTATION, interval: "hourly" };
  const store = open(path, { rotation: hourly, now: () => clock });
  const chain = new TinyChain(store, "a", () => clock);
  chain.batch(1);
  // Taken already: the rotation at 22:00:00 must take .1, then .2 (the .gz counts too).
  Deno.writeTextFileSync(`${path}.20260610T220000Z`, "");
  Deno.writeTextFileSync(`${path}.20260610T220000Z.1.gz`, "");
  clock = Date.parse("2026-06-10T21:59:59.999Z");
  chain.batch(1);
  assert.deepEqual(kinds(chain.changes), []);
  clock = Date.parse("2026-06-10T22:00:00.000Z");
  chain.batch(1);
  assert.deepEqual(kinds(chain.changes), ["rotated"]);
  assert.deepEqual(detailsOf(chain.changes[0]), {
    archive: "audit.jsonl.20260610T220000Z.2",
    cause: "interval",
    deleted_archives: [],
  });
  clock = Date.parse("2026-06-10T22:59:00.000Z");
  chain.batch(1);
  assert.equal(chain.changes.length, 1, "the new file's first record is at 22:00");
  store.close();
  // A restart reads the boundary from the file's first record, not from the time it starts.
  clock = Date.parse("2026-06-10T23:00:00.000Z");
  const again = new TinyChain(open(path, { rotation: hourly, now: () => clock }), "b", () => clock);
  again.batch(1);
  again.store.close();
  assert.deepEqual(kinds(again.changes), ["rotated"]);
  const archived = listArchives(path).filter((a) => a.stamp === "20260610T230000Z");
  assert.equal(archived.length, 1);
  assert.equal(
    checkChain([
      ...lines(`${path}.20260610T220000Z.2`),
      ...lines(archived[0]!.path),
      ...lines(path),
    ]).length,
    7,
  );
});

Deno.test("an empty active file never rotates, whatever the clock", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  let clock = Date.parse("2026-06-10T21:30:00.000Z");
  const store = open(path, { rotation: { ...NO_ROTATION, interval: "daily" }, now: () => clock });
  store.begin();
  store.commit();
  clock += 3 * 86_400_000;
  const start = store.begin();
  store.abort();
  store.close();
  assert.deepEqual(start.changes, []);
  assert.deepEqual(listArchives(path), []);
});

Deno.test("another writer's rotation is followed silently, never reported as a moved log", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  const clock = Date.parse("2026-06-10T22:00:00.000Z");
  const a = new TinyChain(open(path, { rotation: BYTES, now: () => clock }), "a", () => clock);
  const b = new TinyChain(open(path, { rotation: BYTES, now: () => clock }), "b", () => clock);
  for (let i = 0; i < 15; i++) {
    a.batch(2);
    b.batch(1);
  }
  a.store.close();
  b.store.close();
  const changes = [...a.changes, ...b.changes];
  assert.ok(changes.length >= 2);
  assert.ok(changes.every((c) => c.kind === "rotated"), `changes: ${kinds(changes)}`);
  const archives = listArchives(path);
  assert.equal(archives.length, changes.length, "one archive per rotation, by either writer");
  const all = [...archives.flatMap((x) => lines(x.path)), ...lines(path)];
  assert.equal(checkChain(all).length, 45 + archives.length);
});

Deno.test("a rotation whose batch is abandoned is reported again while the new file is empty", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  const clock = Date.parse("2026-06-10T22:00:00.000Z");
  const store = open(path, { rotation: { ...NO_ROTATION, max_size_bytes: 1 }, now: () => clock });
  const chain = new TinyChain(store, "a", () => clock);
  chain.batch(1);
  const first = store.begin();
  store.abort();
  const again = store.begin();
  store.abort();
  chain.batch(1);
  store.close();
  assert.deepEqual(kinds(first.changes), ["rotated"]);
  assert.deepEqual(again.changes, first.changes);
  assert.deepEqual(kinds(chain.changes), ["rotated"]);
  assert.equal(listArchives(path).length, 1);
  assert.equal(JSON.parse(lines(path)[0]!).method, "audit/rotate");
});

/** Archives `stamp`, `stamp.1` … `stamp.(n-1)` of two records each, then the active file. */
function archived(path: string, n: number, stamp: string): string[] {
  const made = recordLines(2 * n + 2);
  for (let i = 0; i < n; i++) {
    const name = i === 0 ? `${path}.${stamp}` : `${path}.${stamp}.${i}`;
    Deno.writeTextFileSync(name, made[2 * i] + "\n" + made[2 * i + 1] + "\n");
  }
  Deno.writeTextFileSync(path, made.slice(2 * n).join("\n") + "\n");
  return made;
}

Deno.test("retention at start keeps the newest max_files in number order (.10 after .2) and names what it deleted", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  const made = archived(path, 11, "20260610T220000Z");
  // One of those to go is compressed: its seqs are read from the .gz.
  const three = `${path}.20260610T220000Z.3`;
  Deno.writeFileSync(`${three}.gz`, gzipSync(Deno.readFileSync(three)));
  Deno.removeSync(three);
  const chain = new TinyChain(open(path, { rotation: { ...NO_ROTATION, max_files: 3 } }), "a");
  chain.batch(1);
  chain.store.close();
  assert.deepEqual(
    listArchives(path).map((a) => a.name),
    [8, 9, 10].map((i) => `audit.jsonl.20260610T220000Z.${i}`),
  );
  assert.deepEqual(kinds(chain.changes), ["retention"]);
  const deleted = detailsOf(chain.changes[0])?.deleted_archives;
  assert.deepEqual(
    deleted,
    [0, 1, 2, 3, 4, 5, 6, 7].map((i) => ({
      name: `audit.jsonl.20260610T220000Z${i === 0 ? "" : `.${i}`}${i === 3 ? ".gz" : ""}`,
      rule: "max_files",
      first_seq: 2 * i + 1,
      last_seq: 2 * i + 2,
      last_ts: JSON.parse(made[2 * i + 1]!).ts,
    })),
  );
  const event = JSON.parse(lines(path).at(-2)!);
  assert.equal(event.method, "audit/retention");
});

/** `times.length` canonical record lines of one chain, record i stamped `times[i]`. */
function recordLinesAt(times: readonly string[]): string[] {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-lines-" });
  try {
    const store = open(`${dir}/scratch.jsonl`);
    let i = 0;
    new TinyChain(store, "scratch", () => Date.parse(times[i++]!)).batch(times.length);
    store.close();
    return lines(`${dir}/scratch.jsonl`);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

/**
 * Writes archives of two records each from `made`, under the names given (after `<path>.`), and
 * the rest to the active file.
 */
function archivesOf(path: string, made: readonly string[], names: readonly string[]): void {
  names.forEach((name, i) => {
    Deno.writeTextFileSync(`${path}.${name}`, made[2 * i] + "\n" + made[2 * i + 1] + "\n");
  });
  Deno.writeTextFileSync(path, made.slice(2 * names.length).join("\n") + "\n");
}

/** Collects warnings, as the store's logger. */
function warnings() {
  const seen: { msg: string; path: string; why: string }[] = [];
  return {
    seen,
    warn(msg: string, fields?: Record<string, unknown>) {
      seen.push({ msg, path: String(fields?.path ?? ""), why: String(fields?.why ?? "") });
    },
  };
}

const NOT_OURS = "a file named like an audit log archive is not one of the log's chain; " +
  "retention leaves it alone and does not count it";

Deno.test("retention by age runs at start and after each rotation, by the time of each archive's last record", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  const made = recordLinesAt([
    "2026-01-01T00:00:00.000Z",
    "2026-01-01T00:00:00.000Z",
    "2026-05-31T00:00:00.000Z",
    "2026-06-01T00:00:00.000Z",
    "2026-06-09T00:00:00.000Z",
    "2026-06-09T00:00:00.000Z",
    "2026-06-10T00:00:00.000Z",
    "2026-06-10T00:00:00.000Z",
  ]);
  // The names' stamps say nothing of the records' age.
  archivesOf(path, made, ["20260610T000000Z", "20260610T000000Z.1", "20260610T000000Z.2"]);
  let clock = Date.parse("2026-06-10T12:00:00.000Z");
  const rotation: Rotation = { ...NO_ROTATION, max_age_days: 30, max_size_bytes: 3000 };
  const chain = new TinyChain(open(path, { rotation, now: () => clock }), "a", () => clock);
  chain.batch(1);
  assert.deepEqual(kinds(chain.changes), ["retention"]);
  assert.deepEqual(detailsOf(chain.changes[0]), {
    deleted_archives: [{
      name: "audit.jsonl.20260610T000000Z",
      rule: "max_age_days",
      first_seq: 1,
      last_seq: 2,
      last_ts: "2026-01-01T00:00:00.000Z",
    }],
  });
  // The second archive's last record is 34 days old then; its first, 35.
  clock = Date.parse("2026-07-05T00:00:00.000Z");
  for (let i = 0; i < 10 && chain.changes.length < 2; i++) chain.batch(3);
  chain.store.close();
  assert.deepEqual(kinds(chain.changes), ["retention", "rotated"]);
  assert.deepEqual(detailsOf(chain.changes[1])?.deleted_archives, [{
    name: "audit.jsonl.20260610T000000Z.1",
    rule: "max_age_days",
    first_seq: 3,
    last_seq: 4,
    last_ts: "2026-06-01T00:00:00.000Z",
  }]);
  assert.deepEqual(listArchives(path).map((a) => a.name), [
    "audit.jsonl.20260610T000000Z.2",
    "audit.jsonl.20260705T000000Z",
  ]);
});

Deno.test("retention keeps fresh archives renamed to an old stamp: age is read from the records, never the name", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  const now = Date.parse("2026-06-10T12:00:00.000Z");
  const made = recordLinesAt(Array(8).fill("2026-06-10T11:00:00.000Z"));
  const names = ["20000101T000000Z", "20000101T000001Z", "20000101T000002Z"];
  archivesOf(path, made, names);
  const logger = warnings();
  const rotation: Rotation = { ...NO_ROTATION, max_age_days: 30 };
  const chain = new TinyChain(open(path, { rotation, now: () => now, logger }), "a", () => now);
  chain.batch(1);
  chain.store.close();
  assert.deepEqual(kinds(chain.changes), [], "nothing deleted, no audit/retention");
  assert.deepEqual(listArchives(path).map((a) => a.name), names.map((n) => `audit.jsonl.${n}`));
  assert.deepEqual(logger.seen, []);
  assert.equal(
    checkChain(names.flatMap((n) => lines(`${path}.${n}`)).concat(lines(path))).length,
    9,
  );
});

Deno.test("retention does not count empty decoys named like newer archives, nor delete them; real archives stay", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  const made = recordLines(10);
  const real = ["20260610T220000Z", "20260610T220000Z.1", "20260610T220000Z.2", "20260610T220001Z"];
  archivesOf(path, made, real);
  const decoys = [1, 2, 3, 4, 5].map((k) => `${path}.2999010${k}T000000Z`);
  for (const d of decoys) Deno.writeTextFileSync(d, "");
  const logger = warnings();
  const rotation: Rotation = { ...NO_ROTATION, max_files: 5 };
  const chain = new TinyChain(open(path, { rotation, logger }), "a");
  chain.batch(1);
  chain.store.close();
  assert.deepEqual(kinds(chain.changes), []);
  assert.equal(listArchives(path).length, 9, "the four real archives and the five decoys");
  assert.deepEqual(
    logger.seen.filter((w) => w.msg === NOT_OURS).map((w) => [w.path, w.why]),
    decoys.map((d) => [d, "it is empty"]),
  );
  // With room for three, only the oldest real archive goes; the decoys are still not counted.
  const three = new TinyChain(open(path, { rotation: { ...NO_ROTATION, max_files: 3 } }), "b");
  three.batch(1);
  three.store.close();
  assert.deepEqual(
    detailsOf(three.changes[0])?.deleted_archives,
    [{
      name: "audit.jsonl.20260610T220000Z",
      rule: "max_files",
      first_seq: 1,
      last_seq: 2,
      last_ts: JSON.parse(made[1]!).ts,
    }],
  );
  for (const d of decoys) assert.equal(Deno.readTextFileSync(d), "");
});

Deno.test("retention counts neither an archive nor copies of it under newer names, and deletes nothing behind them", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  const made = recordLines(10);
  const real = ["20260610T220000Z", "20260610T220001Z", "20260610T220002Z", "20260610T220003Z"];
  archivesOf(path, made, real);
  const newest = Deno.readTextFileSync(`${path}.${real[3]}`);
  const copies = [1, 2, 3].map((k) => `${path}.2999010${k}T000000Z`);
  for (const c of copies) Deno.writeTextFileSync(c, newest);
  const logger = warnings();
  const chain = new TinyChain(
    open(path, { rotation: { ...NO_ROTATION, max_files: 3 }, logger }),
    "a",
  );
  chain.batch(1);
  chain.store.close();
  assert.deepEqual(kinds(chain.changes), []);
  assert.equal(listArchives(path).length, 7);
  const left = logger.seen.filter((w) => w.msg === NOT_OURS);
  assert.equal(left.length, 7);
  assert.equal(left.filter((w) => /overlap another archive's/.test(w.why)).length, 4);
});

Deno.test("retention never deletes an archive whose last record was changed to look old", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  const now = Date.parse("2026-06-10T12:00:00.000Z");
  const made = recordLinesAt(Array(6).fill("2026-06-10T11:00:00.000Z"));
  archivesOf(path, made, ["20260610T110000Z", "20260610T110001Z"]);
  // The same length, so that nothing but the chain's link can tell.
  const first = `${path}.20260610T110000Z`;
  const text = Deno.readTextFileSync(first);
  Deno.writeTextFileSync(
    first,
    text.replace(/"2026-06-10T11:00:00.000Z"(?=[^\n]*\n$)/, '"2000-06-10T11:00:00.000Z"'),
  );
  assert.notEqual(Deno.readTextFileSync(first), text);
  const logger = warnings();
  const rotation: Rotation = { ...NO_ROTATION, max_age_days: 30 };
  const chain = new TinyChain(open(path, { rotation, now: () => now, logger }), "a", () => now);
  chain.batch(1);
  chain.store.close();
  assert.deepEqual(kinds(chain.changes), []);
  assert.ok(Deno.statSync(first).isFile);
  assert.deepEqual(
    logger.seen.filter((w) => w.msg === NOT_OURS).map((w) => w.path),
    [first],
  );
  assert.match(logger.seen[0]!.why, /is not the line seq 3 links to/);
});

Deno.test("retention by max_files deletes the lowest seqs, whatever the names say", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  const made = recordLines(8);
  // Named newest first: the chain runs against the names.
  archivesOf(path, made, ["20260610T230000Z", "20260610T220000Z.10", "20260610T220000Z.2"]);
  const chain = new TinyChain(open(path, { rotation: { ...NO_ROTATION, max_files: 1 } }), "a");
  chain.batch(1);
  chain.store.close();
  assert.deepEqual(
    (detailsOf(chain.changes[0])?.deleted_archives as { name: string; first_seq: number }[])
      .map((d) => [d.name, d.first_seq]),
    [["audit.jsonl.20260610T230000Z", 1], ["audit.jsonl.20260610T220000Z.10", 3]],
  );
  assert.deepEqual(listArchives(path).map((a) => a.name), ["audit.jsonl.20260610T220000Z.2"]);
});

Deno.test("retention never deletes a compressed archive it cannot read, and keeps what is before it", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  const made = recordLines(10);
  const names = ["20260610T220000Z", "20260610T220001Z", "20260610T220002Z", "20260610T220003Z"];
  archivesOf(path, made, names);
  // The second archive compressed, then cut: its first line inflates, its end does not.
  const second = `${path}.${names[1]}`;
  const gz = gzipSync(Deno.readFileSync(second));
  Deno.writeFileSync(`${second}.gz`, gz.subarray(0, gz.length - 12));
  Deno.removeSync(second);
  const logger = warnings();
  const chain = new TinyChain(
    open(path, { rotation: { ...NO_ROTATION, max_files: 1 }, logger }),
    "a",
  );
  chain.batch(1);
  chain.store.close();
  assert.deepEqual(
    (detailsOf(chain.changes[0])?.deleted_archives as { name: string }[]).map((d) => d.name),
    [`audit.jsonl.${names[2]}`],
  );
  assert.deepEqual(listArchives(path).map((a) => a.name), [
    `audit.jsonl.${names[0]}`,
    `audit.jsonl.${names[1]}.gz`,
    `audit.jsonl.${names[3]}`,
  ]);
  assert.deepEqual(
    logger.seen.filter((w) => w.msg === NOT_OURS).map((w) => w.path),
    [`${second}.gz`, `${path}.${names[0]}`],
  );
});

Deno.test("retention deletes both forms of an archive caught mid-compression, and lists it once", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  archived(path, 12, "20260610T220000Z");
  const two = `${path}.20260610T220000Z.2`;
  Deno.writeFileSync(`${two}.gz`, gzipSync(Deno.readFileSync(two)));
  Deno.writeTextFileSync(`${tmp.dir}/other.log`, "not an archive");
  const chain = new TinyChain(open(path, { rotation: { ...NO_ROTATION, max_files: 2 } }), "a");
  chain.batch(1);
  chain.store.close();
  const deleted = detailsOf(chain.changes[0])?.deleted_archives as { name: string }[];
  assert.deepEqual(
    deleted.map((d) => d.name),
    Array.from({ length: 10 }, (_, i) => `audit.jsonl.20260610T220000Z${i === 0 ? "" : `.${i}`}`),
  );
  assert.deepEqual(
    [...Deno.readDirSync(tmp.dir)].map((e) => e.name).filter((n) => n !== "audit.jsonl.lock")
      .sort(),
    [
      "audit.jsonl",
      "audit.jsonl.20260610T220000Z.10",
      "audit.jsonl.20260610T220000Z.11",
      "other.log",
    ],
  );
});

Deno.test("a rotated archive is compressed in the background to exactly its bytes", async () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  const clock = Date.parse("2026-06-10T22:00:00.000Z");
  const rotation: Rotation = { ...NO_ROTATION, max_size_bytes: 3000, compress: "gzip" };
  const store = open(path, { rotation, now: () => clock });
  const chain = new TinyChain(store, "a", () => clock);
  chain.batch(1);
  let before = new Uint8Array();
  while (chain.changes.length === 0) {
    before = Deno.readFileSync(path);
    chain.batch(2);
  }
  assert.ok(Deno.statSync(`${path}.20260610T220000Z`).isFile, "plain until the batch is over");
  await store.settled();
  store.close();
  const [archive, ...more] = listArchives(path);
  assert.deepEqual(more, []);
  assert.equal(archive!.name, "audit.jsonl.20260610T220000Z.gz");
  assert.deepEqual(gunzipSync(Deno.readFileSync(archive!.path)), Buffer.from(before));
  assert.throws(() => Deno.statSync(`${path}.20260610T220000Z`), Deno.errors.NotFound);
  if (posix) assert.equal(Deno.statSync(archive!.path).mode! & 0o777, 0o600);
  assert.deepEqual(store.compressions.map((c) => c.outcome), ["compressed"]);
});

Deno.test("at start, unfinished compressions are cleaned up and closed archives compressed", async () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  const made = recordLines(10);
  const name = (day: string) => `${path}.202601${day}T000000Z`;
  // 01: a compression died writing its temp file; 02: one died after placing the .gz;
  // 03: a .gz that is not the plain file's bytes; 04: a compression under way elsewhere.
  Deno.writeTextFileSync(name("01"), made.slice(0, 2).join("\n") + "\n");
  Deno.writeTextFileSync(`${name("01")}.gz.tmp`, "half a gzip");
  Deno.writeTextFileSync(name("02"), made.slice(2, 4).join("\n") + "\n");
  Deno.writeFileSync(`${name("02")}.gz`, gzipSync(Deno.readFileSync(name("02"))));
  Deno.writeTextFileSync(name("03"), made.slice(4, 6).join("\n") + "\n");
  Deno.writeFileSync(`${name("03")}.gz`, gzipSync(encoder.encode("something else\n")));
  Deno.writeTextFileSync(name("04"), made.slice(6, 8).join("\n") + "\n");
  Deno.writeTextFileSync(`${name("04")}.gz.tmp`, "being written");
  using busy = Deno.openSync(`${name("04")}.gz.tmp`, { read: true, write: true });
  busy.lockSync(true);
  Deno.writeTextFileSync(path, made.slice(8).join("\n") + "\n");
  const plain01 = Deno.readFileSync(name("01"));

  const store = open(path, { rotation: { ...NO_ROTATION, compress: "gzip" } });
  new TinyChain(store, "a").batch(1);
  await store.settled();
  store.close();
  const outcomes = Object.fromEntries(
    store.compressions.map((c) => [/202601(\d\d)T/.exec(c.path)![1], c.outcome]),
  );
  assert.deepEqual(outcomes, {
    "01": "compressed",
    "02": "completed",
    "03": "mismatch",
    "04": "skipped",
  });
  assert.deepEqual(gunzipSync(Deno.readFileSync(`${name("01")}.gz`)), Buffer.from(plain01));
  assert.throws(() => Deno.statSync(name("02")), Deno.errors.NotFound);
  assert.ok(Deno.statSync(name("03")).isFile && Deno.statSync(`${name("03")}.gz`).isFile);
  assert.equal(Deno.readTextFileSync(`${name("04")}.gz.tmp`), "being written", "left to its owner");
  assert.ok(Deno.statSync(name("04")).isFile);
  const names = [...Deno.readDirSync(tmp.dir)].map((e) => e.name).sort();
  assert.ok(!names.includes("audit.jsonl.20260101T000000Z.gz.tmp"));
});

// ---- durability and the anchor ----

Deno.test("JsonlStore's anchor names the last stored line by its SHA-256", async () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  const anchorPath = `${tmp.dir}/audit.anchor`;
  const signer = hmacSigner("0123456789abcdef0123456789abcdef");
  const store = open(path, {
    durability: "entry",
    anchor: new AnchorFile(anchorPath, path, signer),
  });
  const chain = new TinyChain(store, "a");
  chain.batch(3);
  await store.settled();
  const stored = lines(path);
  const first = parseAnchor(Deno.readTextFileSync(anchorPath));
  assert.deepEqual([first.seq, first.hash], [3, hash("sha256", stored[2]!, "hex")]);
  chain.batch(2);
  store.close();
  await store.settled();
  const last = parseAnchor(Deno.readTextFileSync(anchorPath));
  assert.deepEqual([last.seq, last.hash], [5, hash("sha256", lines(path)[4]!, "hex")]);
});

Deno.test("durability entry syncs before commit returns; batch in the background; close syncs all", async () => {
  using tmp = tempDir();
  for (const durability of ["entry", "batch", "none"] as const) {
    const path = `${tmp.dir}/${durability}.jsonl`;
    const store = open(path, { durability });
    const chain = new TinyChain(store, "a");
    chain.batch(3);
    chain.batch(2);
    await store.settled();
    store.sync();
    store.close();
    await store.settled();
    assert.equal(checkChain(lines(path)).length, 5, durability);
  }
});

Deno.test("durability batch: commits within one sync interval share one background fsync; close syncs what is due", async () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  const timers = new ManualTimers();
  const store = open(path, { durability: "batch", syncIntervalMs: 10, syncTimers: timers });
  const chain = new TinyChain(store, "a");
  using calls = new FileCalls();
  for (let i = 0; i < 50; i++) chain.batch(2);
  // The first commit's fsync started at once; the 49 after it wait for it and the interval.
  assert.equal(calls.counts.syncData, 1);
  await store.settled();
  assert.equal(calls.take().syncData, 2, "fifty commits in one interval: two fsyncs");
  assert.equal(timers.pending, 0);
  for (let i = 0; i < 10; i++) chain.batch(2);
  assert.equal(
    calls.counts.syncData,
    0,
    "the interval since the last fsync's start has not passed",
  );
  assert.equal(timers.pending, 1);
  timers.advance(10);
  assert.equal(calls.counts.syncData, 1, "one fsync for the ten commits, once the interval passed");
  await store.settled();
  calls.take();
  chain.batch(3);
  assert.equal(timers.pending, 1, "an fsync is due");
  store.close();
  assert.equal(calls.take().syncDataSync, 1, "close syncs what the due fsync would have");
  assert.equal(timers.pending, 0, "and no timer is left behind");
  await store.settled();
  assert.equal(checkChain(lines(path)).length, 123);
});

Deno.test("durability batch with sync interval 0 starts the next fsync as soon as the last ends", async () => {
  using tmp = tempDir();
  const timers = new ManualTimers();
  const store = open(`${tmp.dir}/audit.jsonl`, {
    durability: "batch",
    syncIntervalMs: 0,
    syncTimers: timers,
  });
  const chain = new TinyChain(store, "a");
  using calls = new FileCalls();
  chain.batch(1);
  await store.settled();
  chain.batch(1);
  assert.equal(calls.counts.syncData, 2, "no wait after the last one ended");
  assert.equal(timers.pending, 0);
  store.close();
  await store.settled();
});

Deno.test("a commit hands all the records of its batch to the operating system in one write", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  for (const durability of ["none", "batch", "entry"] as const) {
    const store = open(`${path}.${durability}`, { durability, syncIntervalMs: 0 });
    const chain = new TinyChain(store, "a");
    chain.batch(1);
    using calls = new FileCalls();
    chain.batch(200);
    assert.equal(calls.counts.writeSync, 1, durability);
    store.close();
  }
});

// ---- a write that fails half way (a full file system) ----

async function mountTmpfs(dir: string, size: string): Promise<boolean> {
  if (!posix) return false;
  try {
    const out = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir],
      stderr: "null",
      stdout: "null",
    }).output();
    return out.success;
  } catch {
    return false;
  }
}

Deno.test("a batch cut short by a full disk is found by the next begin, which goes on from what was stored", async (t) => {
  using tmp = tempDir();
  const mnt = `${tmp.dir}/mnt`;
  Deno.mkdirSync(mnt);
  if (!await mountTmpfs(mnt, "64k")) {
    t.step({ name: "needs a tmpfs mount (root)", ignore: true, fn() {} });
    return;
  }
  try {
    const path = `${mnt}/audit.jsonl`;
    const chain = new TinyChain(open(path), "a");
    chain.batch(5);
    // Fill the file system to its last bytes.
    const filler = Deno.openSync(`${mnt}/filler`, { write: true, create: true });
    const block = new Uint8Array(512);
    try {
      for (;;) filler.writeSync(block);
    } catch (e) {
      assert.ok(!(e instanceof assert.AssertionError));
    } finally {
      filler.close();
    }
    assert.throws(() => chain.batch(200), StorageError);
    chain.store.abort();
    Deno.removeSync(`${mnt}/filler`);
    chain.batch(1);
    chain.store.close();
    const all = lines(path);
    const records = checkChain(all);
    const nonRecords = all.filter((l) => {
      try {
        JSON.parse(l);
        return false;
      } catch {
        return true;
      }
    });
    const torn = chain.changes.flatMap((c) =>
      "details" in c && Array.isArray(c.details.torn) ? c.details.torn : []
    );
    assert.equal(torn.length, nonRecords.length, "every torn line is reported");
    assert.equal(torn.length, 1, "the disk filled up inside a line");
    assert.ok(records.length >= 6);
    assert.equal(records.at(-1)!.method, "tools/call");
  } finally {
    await new Deno.Command("umount", { args: [mnt] }).output();
  }
});

// ---- several processes ----

const WRITER = new URL("../../../tests/fixtures/jsonl_writer.ts", import.meta.url).pathname;

/** Reads one line from a child's stdout. */
async function readLine(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  held: { text: string },
): Promise<string> {
  const decoder = new TextDecoder();
  for (;;) {
    const nl = held.text.indexOf("\n");
    if (nl !== -1) {
      const line = held.text.slice(0, nl);
      held.text = held.text.slice(nl + 1);
      return line;
    }
    const { value, done } = await reader.read();
    if (done) throw new Error(`the writer ended before a line (${held.text})`);
    held.text += decoder.decode(value, { stream: true });
  }
}

Deno.test("four writer processes appending 2,000 records each at once make one chain", async () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  // Writers need not agree on durability: each fsyncs its own way.
  const durability = ["none", "batch", "entry", "batch"];
  const writers = ["w0", "w1", "w2", "w3"].map((name, i) => {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", "--no-check", WRITER, path, "2000", name, durability[i]!],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    return { name, child, out: child.stdout.getReader(), held: { text: "" } };
  });
  try {
    for (const w of writers) assert.equal(await readLine(w.out, w.held), "ready");
    // Every writer is open before any writes: go.
    for (const w of writers) {
      const stdin = w.child.stdin.getWriter();
      await stdin.write(encoder.encode("go\n"));
      await stdin.close();
    }
    for (const w of writers) {
      const done = await readLine(w.out, w.held);
      assert.match(done, /^done \d+ 0$/, `${w.name}: no changes seen`);
      assert.ok((await w.child.status).success, w.name);
    }
  } finally {
    for (const w of writers) {
      w.out.releaseLock();
      await w.child.stdout.cancel();
      try {
        w.child.kill();
      } catch {
        // Already ended.
      }
      await w.child.status;
    }
  }
  const records = checkChain(lines(path));
  assert.equal(records.length, 8000);
  const bySession = new Map<string, number>();
  for (const r of records) bySession.set(r.session!, (bySession.get(r.session!) ?? 0) + 1);
  assert.deepEqual(Object.fromEntries(bySession), { w0: 2000, w1: 2000, w2: 2000, w3: 2000 });
  // Interleaved, not one after another (that would be exactly 3 switches): they took turns.
  let switches = 0;
  for (let i = 1; i < records.length; i++) {
    if (records[i]!.session !== records[i - 1]!.session) switches++;
  }
  assert.ok(switches > 3, `only ${switches} switches between writers`);
});

Deno.test("retention deletes a .gz beside a plain archive only when it is a copy of that archive", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  const made = recordLines(8);
  const names = ["20260610T220000Z", "20260610T220001Z", "20260610T220002Z"];
  archivesOf(path, made, names);
  // Beside the oldest, due archive: the newest archive's content under its .gz name.
  const stranger = `${path}.${names[0]}.gz`;
  Deno.writeFileSync(stranger, gzipSync(Deno.readFileSync(`${path}.${names[2]}`)));
  const logger = warnings();
  const chain = new TinyChain(
    open(path, { rotation: { ...NO_ROTATION, max_files: 2 }, logger }),
    "a",
  );
  chain.batch(1);
  chain.store.close();
  assert.deepEqual(
    (detailsOf(chain.changes[0])?.deleted_archives as { name: string }[]).map((d) => d.name),
    [`audit.jsonl.${names[0]}`],
  );
  assert.ok(Deno.statSync(stranger).isFile, "not its copy: left alone");
  assert.deepEqual(
    logger.seen.filter((w) => w.msg === NOT_OURS).map((w) => [w.path, w.why]),
    [[stranger, `it is not a copy of audit.jsonl.${names[0]}`]],
  );
});

Deno.test("two writer processes make one chain when the lock file is deleted between one's start and the other's", async () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  const spawn = (name: string) => {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", "--no-check", WRITER, path, "2000", name, "none"],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    return { name, child, out: child.stdout.getReader(), held: { text: "" } };
  };
  const writers: ReturnType<typeof spawn>[] = [];
  try {
    // The first has its lock file open; it is deleted (a cleanup job); the second makes anew.
    writers.push(spawn("w0"));
    assert.equal(await readLine(writers[0]!.out, writers[0]!.held), "ready");
    Deno.removeSync(`${path}.lock`);
    writers.push(spawn("w1"));
    assert.equal(await readLine(writers[1]!.out, writers[1]!.held), "ready");
    for (const w of writers) {
      const stdin = w.child.stdin.getWriter();
      await stdin.write(encoder.encode("go\n"));
      await stdin.close();
    }
    for (const w of writers) {
      assert.match(await readLine(w.out, w.held), /^done \d+ 0$/, w.name);
      assert.ok((await w.child.status).success, w.name);
    }
  } finally {
    for (const w of writers) {
      w.out.releaseLock();
      await w.child.stdout.cancel();
      try {
        w.child.kill();
      } catch {
        // Already ended.
      }
      await w.child.status;
    }
  }
  const records = checkChain(lines(path));
  assert.equal(records.length, 4000);
  let switches = 0;
  for (let i = 1; i < records.length; i++) {
    if (records[i]!.session !== records[i - 1]!.session) switches++;
  }
  assert.ok(switches > 1, `only ${switches} switches between writers`);
});
