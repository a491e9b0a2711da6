import assert from "node:assert/strict";
import { gunzipSync, gzipSync } from "node:zlib";
import { type Archive, listArchives } from "./archives.ts";
import { FileLock } from "./file_lock.ts";
import {
  ArchiveCompressor,
  type ArchiveRead,
  type ArchiveReader,
  type ArchiveRecord,
  type ChainArchive,
  chainOfArchives,
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

/** The hex SHA-256 stand-in of record `seq`'s line, for chains made of facts. */
const h = (seq: number) => seq.toString(16).padStart(64, "0");

/** Record `seq` of an intact chain, at `ts`. */
function rec(seq: number, ts: string, hash = h(seq)): ArchiveRecord {
  return { seq, prev: h(seq - 1), hash, ts, time: Date.parse(ts) };
}

/** An archive of records `from`…`to`, its last at `ts`. */
function chained(a: Archive, from: number, to: number, ts: string): ChainArchive {
  return { archive: a, first: rec(from, ts), last: rec(to, ts) };
}

Deno.test("retentionPlan judges age by the last record's time and counts by seq, never by the name", () => {
  // Named oldest first, but holding the chain the other way round: names say nothing.
  const chain = [
    chained(archive("20260610T000000Z"), 1, 10, "2026-01-01T00:00:00Z"),
    chained(archive("20260609T000000Z", 1, true), 11, 20, "2026-06-01T00:00:00Z"),
    chained(archive("20000101T000000Z"), 21, 30, "2026-06-09T00:00:00Z"),
    chained(archive("20000101T000000Z", 1), 31, 40, "2026-06-10T00:00:00Z"),
  ];
  const now = at("2026-06-10T12:00:00Z");
  const plan = (r: Partial<Rotation>) =>
    retentionPlan(chain, { ...OFF, ...r }, now).map((v) => [v.archive.first.seq, v.rule]);
  assert.deepEqual(plan({}), []);
  assert.deepEqual(plan({ max_age_days: 30 }), [[1, "max_age_days"]]);
  assert.deepEqual(plan({ max_files: 3 }), [[1, "max_files"]]);
  assert.deepEqual(plan({ max_age_days: 5, max_files: 1 }), [
    [1, "max_age_days"],
    [11, "max_age_days"],
    [21, "max_files"],
  ]);
  const unknownAge = [{ ...chain[0]!, last: { ...chain[0]!.last, ts: null, time: null } }];
  assert.deepEqual(retentionPlan(unknownAge, { ...OFF, max_age_days: 1 }, now), []);
});

/** Reads archives from a table of what each holds, counting the last records read. */
function tableReader(table: Map<string, { first: ArchiveRead; last: ArchiveRead }>) {
  const lastRead: string[] = [];
  const reader: ArchiveReader = {
    first: (a) => table.get(a.name)!.first,
    last: (a) => {
      lastRead.push(a.name);
      return table.get(a.name)!.last;
    },
  };
  return { reader, lastRead };
}

const record = (r: ArchiveRecord): ArchiveRead => ({ kind: "record", record: r });
const TS = "2026-06-10T00:00:00Z";

Deno.test("chainOfArchives links back from the record after the newest archive, by content, whatever the names", () => {
  const a = archive("20991231T000000Z"); // 1-10
  const b = archive("20000101T000000Z"); // 11-20
  const c = archive("20260610T000000Z", 2, true); // 21-30
  const table = new Map([
    [a.name, { first: record(rec(1, TS)), last: record(rec(10, TS)) }],
    [b.name, { first: record(rec(11, TS)), last: record(rec(20, TS)) }],
    [c.name, { first: record(rec(21, TS)), last: record(rec(30, TS)) }],
  ]);
  const { reader, lastRead } = tableReader(table);
  const { chain, left } = chainOfArchives([b, c, a], { seq: 31, prev: h(30) }, reader);
  assert.deepEqual(chain.map((x) => x.archive.name), [a.name, b.name, c.name]);
  assert.deepEqual(left, []);
  assert.deepEqual(lastRead, [b.name, c.name, a.name], "one last record read each");
  const none = chainOfArchives([a, b, c], undefined, tableReader(table).reader);
  assert.deepEqual(none.chain, []);
  assert.deepEqual(
    none.left.map((l) => l.why),
    Array(3).fill("the log holds no record to link it to"),
    "nothing to link them to: none is counted",
  );
});

/** Four archives of seq 1-40 (the active file starts at 41), in a table to change. */
function fourArchives() {
  const real = [1, 2, 3, 4].map((i) => archive("20260610T000000Z", i));
  const table = new Map<string, { first: ArchiveRead; last: ArchiveRead }>();
  real.forEach((a, i) =>
    table.set(a.name, {
      first: record(rec(10 * i + 1, TS)),
      last: record(rec(10 * i + 10, TS)),
    })
  );
  const found = (extra: Archive[] = []) =>
    chainOfArchives([...real, ...extra], { seq: 41, prev: h(40) }, tableReader(table).reader);
  return { real, table, found };
}

const names = (l: ({ archive: Archive } | Archive)[]) =>
  l.map((x) => "archive" in x ? x.archive.name : x.name).sort();

Deno.test("chainOfArchives leaves out files that are no record of ours or hold the active file's seqs", () => {
  const { real, table, found } = fourArchives();
  const empty = archive("29990101T000000Z");
  table.set(empty.name, {
    first: { kind: "stranger", why: "it is empty" },
    last: { kind: "unreadable", why: "-" },
  });
  const future = archive("29990104T000000Z");
  table.set(future.name, { first: record(rec(41, TS)), last: record(rec(50, TS)) });
  const { chain, left } = found([empty, future]);
  assert.deepEqual(chain.map((x) => x.first.seq), [1, 11, 21, 31]);
  assert.deepEqual(names(left), names([empty, future]));
  assert.deepEqual(names(chain), names(real));
});

Deno.test("chainOfArchives counts neither a copy nor its original, nor anything before them", () => {
  // A copy of the newest archive under a newer name: which one is real cannot be told.
  const newest = fourArchives();
  const copy = archive("29990102T000000Z");
  newest.table.set(copy.name, newest.table.get(newest.real[3]!.name)!);
  const a = newest.found([copy]);
  assert.deepEqual(a.chain, []);
  assert.equal(a.left.length, 5);
  assert.match(a.left.find((l) => l.archive === copy)!.why, /overlap another archive's/);

  // Lines 15-20 cut from the second archive: it and the cut are out, and so is the first.
  const cut = fourArchives();
  const piece = archive("29990103T000000Z");
  cut.table.set(piece.name, { first: record(rec(15, TS)), last: record(rec(20, TS)) });
  const b = cut.found([piece]);
  assert.deepEqual(b.chain.map((x) => x.first.seq), [21, 31]);
  assert.deepEqual(names(b.left), names([cut.real[0]!, cut.real[1]!, piece]));
  assert.match(b.left.find((l) => l.archive === cut.real[0])!.why, /chain breaks/);
});

Deno.test("chainOfArchives leaves out an archive whose last record was changed, and all before it", () => {
  const { real, table, found } = fourArchives();
  // The second archive's last record made old: its line no longer hashes to what seq 21 names.
  table.set(real[1]!.name, {
    first: record(rec(11, TS)),
    last: record(rec(20, "2000-01-01T00:00:00Z", "f".repeat(64))),
  });
  const { chain, left } = found();
  assert.deepEqual(chain.map((x) => x.first.seq), [21, 31]);
  assert.deepEqual(left.map((l) => l.archive.name), [real[1]!.name, real[0]!.name]);
  assert.match(left[0]!.why, /is not the line seq 21 links to/);
  assert.match(left[1]!.why, /the chain breaks after it, before seq 21/);
});

Deno.test("chainOfArchives: an archive that cannot be read breaks the chain there", () => {
  const { real, table, found } = fourArchives();
  table.set(real[2]!.name, {
    first: record(rec(21, TS)),
    last: { kind: "unreadable", why: "no complete audit record is found at its end" },
  });
  const { chain, left } = found();
  assert.deepEqual(chain.map((x) => x.first.seq), [31]);
  assert.deepEqual(names(left), names(real.slice(0, 3)));
  assert.match(left.find((l) => l.archive === real[1])!.why, /no archive ends at seq 30/);
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
