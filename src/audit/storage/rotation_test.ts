import assert from "node:assert/strict";
import { gunzipSync, gzipSync } from "node:zlib";
import { type Archive, listArchives } from "./archives.ts";
import { FileLock } from "./file_lock.ts";
import {
  applyRetention,
  ArchiveCompressor,
  compressArchive,
  type CompressorOptions,
  nextBoundary,
  removeStaleCompressions,
  retentionPlan,
  type Rotation,
  rotationCause,
} from "./rotation.ts";

function tempDir(): { dir: string; [Symbol.dispose](): void } {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-rotation-" });
  return { dir, [Symbol.dispose]: () => Deno.removeSync(dir, { recursive: true }) };
}

const OFF: Rotation = {
  max_size_bytes: 0,
  max_files: 0,
  interval: "",
  max_age_days: 0,
  compress: "",
};
const at = (iso: string) => Date.parse(iso);
const iso = (ms: number) => new Date(ms).toISOString();

Deno.test("nextBoundary is the first UTC hour or midnight strictly after a time", () => {
  assert.equal(
    iso(nextBoundary(at("2026-06-10T21:59:59.999Z"), "hourly")),
    "2026-06-10T22:00:00.000Z",
  );
  assert.equal(
    iso(nextBoundary(at("2026-06-10T22:00:00.000Z"), "hourly")),
    "2026-06-10T23:00:00.000Z",
  );
  assert.equal(
    iso(nextBoundary(at("2026-06-10T00:00:00.000Z"), "daily")),
    "2026-06-11T00:00:00.000Z",
  );
  assert.equal(
    iso(nextBoundary(at("2026-12-31T23:30:00.000Z"), "daily")),
    "2027-01-01T00:00:00.000Z",
  );
});

Deno.test("rotationCause: size at the limit, time past the boundary after the first record, never an empty file", () => {
  const first = at("2026-06-10T21:30:00.000Z");
  const hourly = { ...OFF, interval: "hourly" } as const;
  const sized = { ...OFF, max_size_bytes: 100 };
  assert.equal(rotationCause({ size: 99, firstTs: first }, sized, first), null);
  assert.equal(rotationCause({ size: 100, firstTs: first }, sized, first), "size");
  assert.equal(
    rotationCause({ size: 10, firstTs: first }, hourly, at("2026-06-10T21:59:59.999Z")),
    null,
  );
  assert.equal(
    rotationCause({ size: 10, firstTs: first }, hourly, at("2026-06-10T22:00:00.000Z")),
    "interval",
  );
  assert.equal(
    rotationCause({ size: 10, firstTs: undefined }, hourly, at("2030-01-01T00:00:00Z")),
    null,
  );
  assert.equal(
    rotationCause(
      { size: 0, firstTs: first },
      { ...hourly, max_size_bytes: 1 },
      at("2030-01-01T00:00:00Z"),
    ),
    null,
  );
  assert.equal(
    rotationCause(
      { size: 200, firstTs: first },
      { ...hourly, max_size_bytes: 100 },
      at("2030-01-01T00:00:00Z"),
    ),
    "size",
    "both due: one archive",
  );
  assert.equal(
    rotationCause({ size: 1 << 30, firstTs: first }, OFF, at("2030-01-01T00:00:00Z")),
    null,
  );
});

function archive(stamp: string, clash = 0, gzip = false): Archive {
  const name = `audit.jsonl.${stamp}${clash === 0 ? "" : `.${clash}`}${gzip ? ".gz" : ""}`;
  const t = `${stamp.slice(0, 4)}-${stamp.slice(4, 6)}-${stamp.slice(6, 11)}:${
    stamp.slice(11, 13)
  }:${stamp.slice(13, 15)}Z`;
  return { path: `/logs/${name}`, name, stamp, clash, gzip, time: Date.parse(t) };
}

Deno.test("retentionPlan deletes by age first, then all but the newest max_files, oldest first", () => {
  const list = [
    archive("20260101T000000Z"),
    archive("20260601T000000Z"),
    archive("20260609T000000Z"),
    archive("20260609T000000Z", 1, true),
    archive("20260610T000000Z"),
  ];
  const now = at("2026-06-10T12:00:00Z");
  const plan = (r: Partial<Rotation>) =>
    retentionPlan(list, { ...OFF, ...r }, now).map((v) => [v.archive.name, v.rule]);
  assert.deepEqual(plan({}), []);
  assert.deepEqual(plan({ max_age_days: 30 }), [["audit.jsonl.20260101T000000Z", "max_age_days"]]);
  assert.deepEqual(plan({ max_files: 3 }), [
    ["audit.jsonl.20260101T000000Z", "max_files"],
    ["audit.jsonl.20260601T000000Z", "max_files"],
  ]);
  assert.deepEqual(plan({ max_age_days: 5, max_files: 2 }), [
    ["audit.jsonl.20260101T000000Z", "max_age_days"],
    ["audit.jsonl.20260601T000000Z", "max_age_days"],
    ["audit.jsonl.20260609T000000Z", "max_files"],
  ]);
});

Deno.test("applyRetention deletes both forms of an archive caught mid-compression, and lists each once", () => {
  using tmp = tempDir();
  const active = `${tmp.dir}/audit.jsonl`;
  for (let i = 0; i < 12; i++) {
    Deno.writeTextFileSync(`${active}.20260610T220000Z${i === 0 ? "" : `.${i}`}`, `${i}\n`);
  }
  Deno.writeFileSync(`${active}.20260610T220000Z.2.gz`, gzipSync(new TextEncoder().encode("2\n")));
  Deno.writeTextFileSync(`${tmp.dir}/other.log`, "not an archive");
  const read: string[] = [];
  const deleted = applyRetention(active, { ...OFF, max_files: 2 }, Date.now(), (a) => {
    read.push(a.name);
    return { first_seq: a.clash, last_seq: a.clash + 100 };
  });
  assert.deepEqual(deleted.map((d) => d.name), read, "seqs are read before deleting");
  assert.deepEqual(
    deleted.map((d) => [d.name, d.first_seq, d.last_seq]),
    Array.from(
      { length: 10 },
      (_, i) => [`audit.jsonl.20260610T220000Z${i === 0 ? "" : `.${i}`}`, i, i + 100],
    ),
  );
  assert.deepEqual(
    listArchives(active).map((a) => a.name),
    ["audit.jsonl.20260610T220000Z.10", "audit.jsonl.20260610T220000Z.11"],
  );
  assert.deepEqual(
    [...Deno.readDirSync(tmp.dir)].map((e) => e.name).sort(),
    ["audit.jsonl.20260610T220000Z.10", "audit.jsonl.20260610T220000Z.11", "other.log"],
  );
});

/** Runs steps under a real lock file, as the store does. */
function locked(lockPath: string, before?: (step: number) => void): CompressorOptions {
  let step = 0;
  return {
    underLock<T>(fn: () => T): T {
      before?.(++step);
      using lock = new FileLock(lockPath);
      lock.lock();
      try {
        return fn();
      } finally {
        lock.unlock();
      }
    },
  };
}

Deno.test("compressArchive writes a .gz of exactly the archive's bytes, then deletes the plain file", async () => {
  using tmp = tempDir();
  const plain = `${tmp.dir}/audit.jsonl.20260610T220000Z`;
  const bytes = new TextEncoder().encode("é😀 line\n".repeat(50_000));
  Deno.writeFileSync(plain, bytes, { mode: 0o600 });
  assert.equal(await compressArchive(plain, locked(`${tmp.dir}/audit.jsonl.lock`)), "compressed");
  assert.deepEqual(new Uint8Array(gunzipSync(Deno.readFileSync(`${plain}.gz`))), bytes);
  assert.throws(() => Deno.statSync(plain), Deno.errors.NotFound);
  assert.throws(() => Deno.statSync(`${plain}.gz.tmp`), Deno.errors.NotFound);
  assert.equal(await compressArchive(plain, locked(`${tmp.dir}/audit.jsonl.lock`)), "skipped");
});

Deno.test("compressArchive leaves nothing when retention deletes the archive while it compresses", async () => {
  using tmp = tempDir();
  const plain = `${tmp.dir}/audit.jsonl.20260610T220000Z`;
  Deno.writeTextFileSync(plain, "records\n");
  const outcome = await compressArchive(
    plain,
    // Between the claim (step 1) and the placing (step 2), retention deletes the archive.
    locked(`${tmp.dir}/audit.jsonl.lock`, (step) => step === 2 && Deno.removeSync(plain)),
  );
  assert.equal(outcome, "skipped");
  assert.deepEqual([...Deno.readDirSync(tmp.dir)].map((e) => e.name), ["audit.jsonl.lock"]);
});

Deno.test("compressArchive keeps the plain archive when a record was added to it meanwhile", async () => {
  using tmp = tempDir();
  const plain = `${tmp.dir}/audit.jsonl.20260610T220000Z`;
  Deno.writeTextFileSync(plain, "records\n");
  const outcome = await compressArchive(
    plain,
    // A writer that still held the file closes it with a checkpoint after the read.
    locked(
      `${tmp.dir}/audit.jsonl.lock`,
      (step) => step === 2 && Deno.writeTextFileSync(plain, "checkpoint\n", { append: true }),
    ),
  );
  assert.equal(outcome, "skipped");
  assert.equal(Deno.readTextFileSync(plain), "records\ncheckpoint\n");
  assert.deepEqual(
    [...Deno.readDirSync(tmp.dir)].map((e) => e.name).sort(),
    ["audit.jsonl.20260610T220000Z", "audit.jsonl.lock"],
  );
});

Deno.test("compressArchive keeps both files when a .gz already there holds other bytes", async () => {
  using tmp = tempDir();
  const plain = `${tmp.dir}/audit.jsonl.20260610T220000Z`;
  Deno.writeTextFileSync(plain, "records\n");
  Deno.writeFileSync(`${plain}.gz`, gzipSync(new TextEncoder().encode("other\n")));
  assert.equal(await compressArchive(plain, locked(`${tmp.dir}/l`)), "mismatch");
  assert.equal(Deno.readTextFileSync(plain), "records\n");
  Deno.writeFileSync(`${plain}.gz`, gzipSync(new TextEncoder().encode("records\n")));
  assert.equal(await compressArchive(plain, locked(`${tmp.dir}/l`)), "completed");
  assert.throws(() => Deno.statSync(plain), Deno.errors.NotFound);
});

Deno.test("closing the compressor mid-compression removes its temp file at once and keeps the plain archive", async () => {
  using tmp = tempDir();
  const plain = `${tmp.dir}/audit.jsonl.20260610T220000Z`;
  const bytes = new TextEncoder().encode("line\n".repeat(100_000));
  Deno.writeFileSync(plain, bytes);
  const names = () => [...Deno.readDirSync(tmp.dir)].map((e) => e.name).sort();
  let before: string[] = [];
  let after: string[] = [];
  // Closed from the first moment the compression waits, once its temp file is claimed.
  const compressor: ArchiveCompressor = new ArchiveCompressor(
    locked(`${tmp.dir}/audit.jsonl.lock`, (step) => {
      if (step !== 1) return;
      queueMicrotask(() => {
        before = names();
        compressor.close();
        after = names();
      });
    }),
  );
  compressor.schedule(plain);
  compressor.schedule(`${plain}.1`);
  await compressor.settled();
  assert.ok(before.includes("audit.jsonl.20260610T220000Z.gz.tmp"), "closed mid-compression");
  assert.ok(!after.includes("audit.jsonl.20260610T220000Z.gz.tmp"), "removed by close itself");
  assert.deepEqual(compressor.outcomes.map((o) => o.outcome), ["cancelled", "cancelled"]);
  assert.deepEqual(
    [...Deno.readDirSync(tmp.dir)].map((e) => e.name).sort(),
    ["audit.jsonl.20260610T220000Z", "audit.jsonl.lock"],
  );
  assert.deepEqual(Deno.readFileSync(plain), bytes);
});

Deno.test("removeStaleCompressions removes temps nobody holds, and only this log's", () => {
  using tmp = tempDir();
  const active = `${tmp.dir}/audit.jsonl`;
  const stale = `${active}.20260610T220000Z.gz.tmp`;
  const live = `${active}.20260610T220000Z.1.gz.tmp`;
  const other = `${tmp.dir}/other.jsonl.20260610T220000Z.gz.tmp`;
  for (const p of [stale, live, other]) Deno.writeTextFileSync(p, "half");
  using holder = Deno.openSync(live, { read: true, write: true });
  holder.lockSync(true);
  assert.deepEqual(removeStaleCompressions(active), [stale]);
  assert.ok(Deno.statSync(live).isFile && Deno.statSync(other).isFile);
});

Deno.test("ArchiveCompressor compresses what it is given once each, in the background", async () => {
  using tmp = tempDir();
  const names = ["20260610T220000Z", "20260610T220000Z.1", "20260610T230000Z"];
  for (const n of names) Deno.writeTextFileSync(`${tmp.dir}/audit.jsonl.${n}`, `${n}\n`);
  const compressor = new ArchiveCompressor(locked(`${tmp.dir}/audit.jsonl.lock`));
  for (const n of [...names, names[0]!]) compressor.schedule(`${tmp.dir}/audit.jsonl.${n}`);
  assert.equal(compressor.outcomes.length, 0, "nothing happens before the caller's turn ends");
  await compressor.settled();
  assert.deepEqual(compressor.outcomes.map((o) => o.outcome), [
    "compressed",
    "compressed",
    "compressed",
  ]);
  assert.deepEqual(
    listArchives(`${tmp.dir}/audit.jsonl`).map((a) => [a.name, a.gzip]),
    names.map((n) => [`audit.jsonl.${n}.gz`, true]),
  );
});
