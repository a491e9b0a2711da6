import assert from "node:assert/strict";
import { JsonlStore, StorageError } from "./jsonl.ts";
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
  const head = JSON.stringify({ seq: 1, prev: "x", s: "é😀€" }) + "\n";
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
