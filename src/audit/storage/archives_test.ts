import assert from "node:assert/strict";
import { archiveName, listArchives, openArchiveLines } from "./archives.ts";
import { StorageError } from "./errors.ts";

const AT = new Date("2026-06-10T22:00:00.123Z");

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

async function text(stream: ReadableStream<Uint8Array>): Promise<string> {
  return await new Response(stream).text();
}

async function gzip(bytes: string): Promise<Uint8Array> {
  const stream = ReadableStream.from([new TextEncoder().encode(bytes)])
    .pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

Deno.test("archiveName stamps the UTC time to the second", () => {
  assert.deepEqual(
    archiveName("/d/audit.jsonl", AT, () => false),
    "/d/audit.jsonl.20260610T220000Z",
  );
  assert.deepEqual(
    archiveName("audit.jsonl", new Date("2001-02-03T04:05:06Z"), () => false),
    "audit.jsonl.20010203T040506Z",
  );
});

Deno.test("archiveName takes .1, .2… when the name is taken plain or compressed", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const active = `${dir}/audit.jsonl`;
    const first = archiveName(active, AT, exists);
    assert.deepEqual(first, `${active}.20260610T220000Z`);
    Deno.writeTextFileSync(first, "");
    const second = archiveName(active, AT, exists);
    assert.deepEqual(second, `${active}.20260610T220000Z.1`);
    Deno.writeTextFileSync(`${second}.gz`, "");
    assert.deepEqual(archiveName(active, AT, exists), `${active}.20260610T220000Z.2`);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("archiveName gives up with a StorageError when every clash number is taken", () => {
  assert.throws(
    () => archiveName("/d/a", AT, () => true),
    (e) => e instanceof StorageError && e.message.includes("no free archive name"),
  );
});

Deno.test("listArchives orders by stamp then clash as a number: .2 before .10", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const names = [
      "audit.jsonl.20260610T220000Z.10",
      "audit.jsonl.20260610T220000Z.2",
      "audit.jsonl.20260611T000000Z",
      "audit.jsonl.20260610T220000Z",
      "audit.jsonl.20260610T220000Z.1.gz",
      "audit.jsonl.20250101T000000Z.gz",
    ];
    for (const n of names) Deno.writeTextFileSync(`${dir}/${n}`, "");
    const list = listArchives(`${dir}/audit.jsonl`);
    assert.deepEqual(list.map((a) => a.name), [
      "audit.jsonl.20250101T000000Z.gz",
      "audit.jsonl.20260610T220000Z",
      "audit.jsonl.20260610T220000Z.1.gz",
      "audit.jsonl.20260610T220000Z.2",
      "audit.jsonl.20260610T220000Z.10",
      "audit.jsonl.20260611T000000Z",
    ]);
    assert.deepEqual(list[2], {
      path: `${dir}/audit.jsonl.20260610T220000Z.1.gz`,
      name: "audit.jsonl.20260610T220000Z.1.gz",
      stamp: "20260610T220000Z",
      clash: 1,
      gzip: true,
      time: Date.UTC(2026, 5, 10, 22, 0, 0),
    });
    assert.deepEqual(list.map((a) => a.clash), [0, 0, 1, 2, 10, 0]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("listArchives lists a name both plain and .gz once, as the plain file", () => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.writeTextFileSync(`${dir}/audit.jsonl.20260610T220000Z.gz`, "");
    Deno.writeTextFileSync(`${dir}/audit.jsonl.20260610T220000Z`, "");
    const list = listArchives(`${dir}/audit.jsonl`);
    assert.deepEqual(list.map((a) => [a.name, a.gzip]), [["audit.jsonl.20260610T220000Z", false]]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("listArchives ignores .tmp files, directories, other logs and near-miss names", () => {
  const dir = Deno.makeTempDirSync();
  try {
    for (
      const n of [
        "audit.jsonl",
        "audit.jsonl.lock",
        "audit.jsonl.20260610T220000Z.gz.tmp",
        "audit.jsonl.20260610T220000Z.tmp",
        "audit.jsonl.2026061T220000Z",
        "audit.jsonl.20260610T220000",
        "audit.jsonl.20260610T220000Z.",
        "audit.jsonl.20260610T220000Z.x",
        "other.jsonl.20260610T220000Z",
        "xaudit.jsonl.20260610T220000Z",
        "audit.jsonlx.20260610T220000Z",
        "audit.jsonl.20260610T220000Z.gz.gz",
      ]
    ) Deno.writeTextFileSync(`${dir}/${n}`, "");
    Deno.mkdirSync(`${dir}/audit.jsonl.20260612T000000Z`);
    Deno.writeTextFileSync(`${dir}/audit.jsonl.20260613T000000Z`, "");
    assert.deepEqual(listArchives(`${dir}/audit.jsonl`).map((a) => a.name), [
      "audit.jsonl.20260613T000000Z",
    ]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("listArchives keeps the active path's form and finds none in a missing directory", () => {
  const dir = Deno.makeTempDirSync();
  const cwd = Deno.cwd();
  try {
    Deno.writeTextFileSync(`${dir}/audit.jsonl.20260610T220000Z`, "");
    Deno.chdir(dir);
    assert.deepEqual(listArchives("audit.jsonl").map((a) => a.path), [
      "audit.jsonl.20260610T220000Z",
    ]);
    assert.deepEqual(listArchives("./audit.jsonl").map((a) => a.path), [
      "./audit.jsonl.20260610T220000Z",
    ]);
    assert.deepEqual(listArchives(`${dir}/missing/audit.jsonl`), []);
  } finally {
    Deno.chdir(cwd);
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("openArchiveLines reads plain archives as they are and gunzips .gz ones", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const lines = "a\n".repeat(50_000) + "end";
    Deno.writeTextFileSync(`${dir}/audit.jsonl.20260610T220000Z`, lines);
    Deno.writeFileSync(`${dir}/audit.jsonl.20260611T220000Z.gz`, await gzip(lines));
    const [plain, gz] = listArchives(`${dir}/audit.jsonl`);
    assert.deepEqual(await text(openArchiveLines(plain!)), lines);
    assert.deepEqual(await text(openArchiveLines(gz!)), lines);
    assert.deepEqual(await text(openArchiveLines(gz!.path)), lines);
    Deno.writeTextFileSync(`${dir}/audit.jsonl`, "active\n");
    assert.deepEqual(await text(openArchiveLines(`${dir}/audit.jsonl`)), "active\n");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("openArchiveLines errors the stream for a missing file or a corrupt .gz", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    await assert.rejects(() => text(openArchiveLines(`${dir}/nope`)), Deno.errors.NotFound);
    Deno.writeTextFileSync(`${dir}/bad.gz`, "not gzip at all");
    await assert.rejects(() => text(openArchiveLines(`${dir}/bad.gz`)));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

function openFds(): number {
  return [...Deno.readDirSync("/proc/self/fd")].length;
}

Deno.test({
  name: "openArchiveLines closes the file when the reader cancels or reaches the end",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const dir = Deno.makeTempDirSync();
    try {
      Deno.writeTextFileSync(`${dir}/f`, "x".repeat(300_000));
      const before = openFds();
      const reader = openArchiveLines(`${dir}/f`).getReader();
      const first = await reader.read();
      assert.equal(first.value?.length, 64 * 1024);
      assert.equal(openFds(), before + 1);
      await reader.cancel();
      assert.equal(openFds(), before);
      await text(openArchiveLines(`${dir}/f`));
      assert.equal(openFds(), before);
      // An archive listed plain, read through the stream that falls back to its .gz.
      Deno.renameSync(`${dir}/f`, `${dir}/f.20260610T220000Z`);
      const [archive] = listArchives(`${dir}/f`);
      const again = openArchiveLines(archive!).getReader();
      await again.read();
      assert.equal(openFds(), before + 1);
      await again.cancel();
      assert.equal(openFds(), before);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test("openArchiveLines reads an archive compressed since it was listed from its .gz", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const plain = `${dir}/audit.jsonl.20260610T220000Z`;
    Deno.writeTextFileSync(plain, "a\nb\n");
    const [listed] = listArchives(`${dir}/audit.jsonl`);
    Deno.writeFileSync(`${plain}.gz`, await gzip("a\nb\n"));
    Deno.removeSync(plain);
    assert.equal(await text(openArchiveLines(listed!)), "a\nb\n");
    Deno.removeSync(`${plain}.gz`);
    await assert.rejects(() => text(openArchiveLines(listed!)), Deno.errors.NotFound);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("archiveName sorts after the newest archive: a name a deleted archive freed is not reused", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const active = `${dir}/audit.jsonl`;
    // X was deleted (retention, or by hand); X.1 and X.2 remain.
    for (const n of [".20260610T220000Z.1", ".20260610T220000Z.2"]) {
      Deno.writeTextFileSync(`${active}${n}`, "");
    }
    const newest = listArchives(active).at(-1);
    const name = archiveName(active, AT, (p) => existsSync(p), newest);
    assert.equal(name, `${active}.20260610T220000Z.3`);
    // A clock that stepped back still names an archive after the newest.
    const earlier = archiveName(
      active,
      new Date("2026-06-10T21:00:00Z"),
      (p) => existsSync(p),
      newest,
    );
    assert.equal(earlier, `${active}.20260610T220000Z.3`);
    Deno.writeTextFileSync(name, "");
    assert.deepEqual(
      listArchives(active).map((a) => a.name).at(-1),
      `audit.jsonl.20260610T220000Z.3`,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

function existsSync(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
