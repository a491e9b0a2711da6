import assert from "node:assert/strict";
import { JsonlStore, RefusedPathError, StorageError } from "./jsonl.ts";
import type { AuditRecord } from "../record.ts";

function tempDir(): { dir: string; [Symbol.dispose](): void } {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-jsonl-" });
  return { dir, [Symbol.dispose]: () => Deno.removeSync(dir, { recursive: true }) };
}

const rec = (seq: number) => JSON.stringify({ seq, prev: "0".repeat(64), v: 1 });
// The store does not read the record object; the line is what it stores.
const unused = null as unknown as AuditRecord;
const posix = Deno.build.os !== "windows";

Deno.test({
  name: "JsonlStore creates the log with mode 0600",
  ignore: !posix,
  fn() {
    using tmp = tempDir();
    const path = `${tmp.dir}/audit.jsonl`;
    const store = new JsonlStore(path, false);
    store.append(rec(1), unused);
    store.close();
    assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
  },
});

Deno.test({
  name: "JsonlStore tightens an existing log readable by others to 0600",
  ignore: !posix,
  fn() {
    using tmp = tempDir();
    const path = `${tmp.dir}/audit.jsonl`;
    Deno.writeTextFileSync(path, rec(1) + "\n", { mode: 0o644 });
    Deno.chmodSync(path, 0o644);
    new JsonlStore(path, false).close();
    assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
  },
});

Deno.test("JsonlStore appends one line per record and reports the last one on open", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  const a = new JsonlStore(path, true);
  assert.deepEqual(a.opened, { last: undefined, torn: [] });
  a.append(rec(1), unused);
  a.append(rec(2), unused);
  a.sync();
  a.close();
  a.close();
  assert.equal(Deno.readTextFileSync(path), rec(1) + "\n" + rec(2) + "\n");
  const b = new JsonlStore(path, false);
  assert.deepEqual(b.opened, { last: rec(2), torn: [] });
  b.close();
});

Deno.test("JsonlStore closes a torn last line with a newline and reports its offset", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  const head = rec(1) + "\n" + rec(2) + "\n";
  Deno.writeTextFileSync(path, head + '{"seq":3,"pr');
  const store = new JsonlStore(path, false);
  const offset = new TextEncoder().encode(head).length;
  assert.deepEqual(store.opened, {
    last: rec(2),
    torn: [{ offset, length: 12, file: path }],
  });
  store.append(rec(3), unused);
  store.close();
  assert.equal(Deno.readTextFileSync(path), head + '{"seq":3,"pr\n' + rec(3) + "\n");
});

Deno.test("JsonlStore reports a torn line an earlier recovery closed but never recorded", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  const head = rec(1) + "\n";
  const content = head + '{"seq":2,"pr\n{"se\n';
  Deno.writeTextFileSync(path, content);
  const store = new JsonlStore(path, false);
  store.close();
  assert.deepEqual(store.opened, {
    last: rec(1),
    torn: [
      { offset: head.length, length: 12, file: path },
      { offset: head.length + 13, length: 4, file: path },
    ],
  });
  assert.equal(Deno.readTextFileSync(path), content, "a file ending in a newline is left as is");
});

Deno.test("JsonlStore counts torn offsets in bytes, not characters", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  const head = JSON.stringify({ v: 1, seq: 1, prev: "0".repeat(64), s: "é😀€" }) + "\n";
  Deno.writeTextFileSync(path, head + "{€");
  const store = new JsonlStore(path, false);
  store.close();
  const enc = new TextEncoder();
  assert.deepEqual(store.opened.torn, [{
    offset: enc.encode(head).length,
    length: enc.encode("{€").length,
    file: path,
  }]);
});

Deno.test("JsonlStore refuses a file that does not end in audit records", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/notes.txt`;
  Deno.writeTextFileSync(path, "not\nan\naudit\nlog\n".repeat(5));
  assert.throws(() => new JsonlStore(path, false), StorageError);
});

Deno.test("JsonlStore raises StorageError for an unopenable path and appends after close", () => {
  using tmp = tempDir();
  assert.throws(() => new JsonlStore(`${tmp.dir}/missing/dir/audit.jsonl`, false), StorageError);
  const store = new JsonlStore(`${tmp.dir}/audit.jsonl`, false);
  store.close();
  assert.throws(() => store.append(rec(1), unused), StorageError);
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
    planted(target, rec(1) + "\n");
    const before = looks(target);
    const link = `${tmp.dir}/audit.jsonl`;
    Deno.symlinkSync(target, link);
    assert.throws(
      () => new JsonlStore(link, false),
      (e: unknown) => e instanceof RefusedPathError && e.key === "audit.path",
    );
    assert.deepEqual(looks(target), before, "mode, content and mtime as they were");

    const store = new JsonlStore(link, false, { followSymlinks: true });
    assert.equal(store.path, target, "it writes the file the link leads to");
    store.append(rec(2), unused);
    store.close();
    assert.equal(Deno.readTextFileSync(target), rec(1) + "\n" + rec(2) + "\n");
    assert.equal(Deno.statSync(target).mode! & 0o777, 0o600, "tightened once known to be a log");
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
    assert.throws(() => new JsonlStore(`${tmp.dir}/dir`, false), /is a directory, not a log/);
    const fifo = `${tmp.dir}/fifo`;
    assert.ok((await new Deno.Command("mkfifo", { args: [fifo] }).output()).success);
    assert.throws(() => new JsonlStore(fifo, false), /is a FIFO, not a log/);
    const strangers = [
      "hello\nworld\n",
      '{"some":"json"}',
      rec(1).replace('"v":1', '"v":2') + "\n",
      "\n" + rec(1) + "\n",
      "x".repeat(2 << 20),
    ];
    for (const [i, text] of strangers.entries()) {
      const path = `${tmp.dir}/stranger-${i}`;
      planted(path, text);
      const before = looks(path);
      assert.throws(
        () => new JsonlStore(path, false),
        (e: unknown) => e instanceof RefusedPathError && /is not an mcp-audit log/.test(e.message),
        `stranger ${i}`,
      );
      assert.deepEqual(looks(path), before, `stranger ${i} is untouched`);
    }
  },
});

Deno.test("JsonlStore accepts a first record torn by a crash before its newline", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  Deno.writeTextFileSync(path, '{"client_id":"c","cli');
  const store = new JsonlStore(path, false);
  assert.deepEqual(store.opened, {
    last: undefined,
    torn: [{ offset: 0, length: 21, file: path }],
  });
  store.close();
});

/** A store with a record written, and a function that starts the next batch's check. */
function live(path: string): JsonlStore {
  const store = new JsonlStore(path, false);
  store.append(rec(1), unused);
  store.sync();
  return store;
}

Deno.test("JsonlStore.checkTarget finds nothing to say while the path names its file", () => {
  using tmp = tempDir();
  const store = live(`${tmp.dir}/audit.jsonl`);
  assert.equal(store.checkTarget(), null);
  store.append(rec(2), unused);
  store.flush();
  assert.equal(store.checkTarget(), null, "what the store wrote itself is no change");
  store.close();
});

Deno.test({
  name: "JsonlStore.checkTarget tells a deleted log from a moved one, and starts a new file",
  ignore: !posix,
  fn() {
    using tmp = tempDir();
    const path = `${tmp.dir}/audit.jsonl`;
    const deleted = live(path);
    Deno.removeSync(path);
    const gone = deleted.checkTarget();
    assert.equal(gone?.kind, "deleted");
    assert.equal(gone?.kind === "deleted" && gone.oldFileLinked, false);
    const details = deleted.startNewFile();
    assert.equal((details.previous_file as { still_linked: boolean }).still_linked, false);
    deleted.append(rec(2), unused);
    deleted.close();
    assert.equal(Deno.readTextFileSync(path), rec(2) + "\n");
    assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);

    const other = `${tmp.dir}/moved.jsonl`;
    const moved = live(other);
    Deno.renameSync(other, `${other}.1`);
    const away = moved.checkTarget();
    assert.deepEqual(
      away && { kind: away.kind, linked: "oldFileLinked" in away && away.oldFileLinked },
      {
        kind: "moved",
        linked: true,
      },
    );
    moved.append(rec(3), unused); // the closing record goes to the old file
    moved.startNewFile();
    moved.append(rec(4), unused);
    moved.close();
    assert.equal(Deno.readTextFileSync(`${other}.1`), rec(1) + "\n" + rec(3) + "\n");
    assert.equal(Deno.readTextFileSync(other), rec(4) + "\n");
  },
});

Deno.test({
  name: "JsonlStore.checkTarget moves a stranger at the path aside whole and never writes into it",
  ignore: !posix,
  fn() {
    using tmp = tempDir();
    const path = `${tmp.dir}/audit.jsonl`;
    const store = live(path);
    const stranger = `${tmp.dir}/stranger`;
    planted(stranger, "someone else's\n");
    const before = looks(stranger);
    Deno.renameSync(stranger, path);
    assert.equal(store.checkTarget()?.kind, "replaced");
    const details = store.startNewFile();
    const foreign = details.foreign as { moved_to: string; type: string };
    assert.equal(foreign.type, "a file");
    assert.deepEqual(looks(foreign.moved_to), before);
    store.append(rec(2), unused);
    store.close();
    assert.equal(Deno.readTextFileSync(path), rec(2) + "\n");
  },
});

Deno.test("JsonlStore.checkTarget notices a log cut short or written into, and closes a partial line", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl`;
  const store = live(path);
  store.append(rec(2), unused);
  store.sync();
  const cut = rec(1).length + 1 + 5;
  Deno.truncateSync(path, cut);
  const shorter = store.checkTarget();
  assert.equal(shorter?.kind, "truncated");
  assert.deepEqual(shorter && "details" in shorter && shorter.details, {
    path,
    expected_size: 2 * (rec(1).length + 1),
    found_size: cut,
    closed_line: { offset: rec(1).length + 1, length: 5 },
  });
  assert.equal(store.checkTarget(), null, "recorded once");
  store.append(rec(3), unused);
  store.flush();
  Deno.writeTextFileSync(path, "junk", { append: true });
  const longer = store.checkTarget();
  assert.equal(longer?.kind, "extended");
  store.append(rec(4), unused);
  store.close();
  assert.equal(
    Deno.readTextFileSync(path),
    rec(1) + "\n" + rec(2).slice(0, 5) + "\n" + rec(3) + "\njunk\n" + rec(4) + "\n",
  );
});

Deno.test({
  name: "JsonlStore fails closed when its directory is gone, and keeps failing",
  ignore: !posix,
  fn() {
    using tmp = tempDir();
    Deno.mkdirSync(`${tmp.dir}/logs`);
    const store = live(`${tmp.dir}/logs/audit.jsonl`);
    Deno.removeSync(`${tmp.dir}/logs`, { recursive: true });
    assert.equal(store.checkTarget()?.kind, "deleted");
    assert.throws(() => store.startNewFile(), /its directory is gone/);
    assert.throws(() => store.append(rec(2), unused), /its directory is gone/);
    assert.throws(() => store.close(), /its directory is gone/);
  },
});
