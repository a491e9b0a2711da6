import assert from "node:assert/strict";
import { hmacEntry, KeyRing } from "../audit/key_file.ts";
import { EventMethod } from "../audit/record.ts";
import { Logger } from "../log.ts";
import { AnswerCache, createDashboardServices, STATS_CACHE_MS, statsKey } from "./services.ts";
import { callFields, chainWriter, logName } from "./testdata/test_log.ts";

const SECRET = "services-test-secret-0b7d3e";

Deno.test("AnswerCache: an answer is reused while fresh, computed again after, per key", async () => {
  let now = 0;
  let computed = 0;
  const cache = new AnswerCache<number>(2000, 8, () => now);
  const compute = () => Promise.resolve(++computed);
  assert.equal(await cache.get("a", compute), 1);
  now = 1999;
  assert.equal(await cache.get("a", compute), 1);
  assert.equal(await cache.get("b", compute), 2);
  now = 2000;
  assert.equal(await cache.get("a", compute), 3);
});

Deno.test("AnswerCache: a failed answer is not kept; callers at once share one computation", async () => {
  const cache = new AnswerCache<number>(2000, 8, () => 0);
  await assert.rejects(cache.get("a", () => Promise.reject(new Error("disk"))), /disk/);
  assert.equal(cache.size, 0);
  let computed = 0;
  let release: (n: number) => void = () => {};
  const compute = () => {
    computed++;
    return new Promise<number>((r) => release = r);
  };
  const both = Promise.all([cache.get("a", compute), cache.get("a", compute)]);
  release(7);
  assert.deepEqual(await both, [7, 7]);
  assert.equal(computed, 1);
});

Deno.test("AnswerCache: at most max keys, the oldest dropped first", async () => {
  let now = 0;
  const cache = new AnswerCache<string>(2000, 3, () => now);
  for (const k of ["a", "b", "c", "d", "e"]) {
    now++;
    await cache.get(k, () => Promise.resolve(k));
  }
  assert.equal(cache.size, 3);
  let again = 0;
  await cache.get("a", () => Promise.resolve(String(++again)));
  assert.equal(again, 1, "a was dropped");
  await cache.get("e", () => Promise.resolve(String(++again)));
  assert.equal(again, 1, "e was kept");
});

Deno.test("statsKey: ignored and repeated parameters, and their order, ask the same question", () => {
  const key = (q: string) => statsKey(new URLSearchParams(q));
  assert.equal(key("from=1&buckets=5"), key("buckets=5&from=1"));
  assert.equal(key("from=1&x=1"), key("from=1&x=2"));
  assert.equal(key("from=1&from=2"), key("from=1"));
  assert.equal(key("from=1&tool="), key("from=1"));
  assert.notEqual(key("from=1"), key("from=2"));
  assert.notEqual(key("kind=request"), key("kind=error"), "a malformed kind is still refused");
});

for (const backend of ["jsonl", "sqlite"] as const) {
  Deno.test(`services over a ${backend} log: info, the chain followed as the feed reads new records, stats kept 2 s per query`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "mcp-audit-services-" });
    const path = `${dir}/${logName(backend)}`;
    const { log } = chainWriter(path, backend, { secret: SECRET });
    log.event(EventMethod.Start, { version: "test" }, "s1");
    log.sync();
    let now = new Date("2026-06-10T12:00:00Z");
    const services = createDashboardServices({
      path,
      storage: backend,
      live: true,
      authEnabled: false,
      timeZone: "UTC",
      pinsPath: null,
      keys: new KeyRing([hmacEntry(SECRET, undefined, "AUDIT_SECRET")]),
      logger: new Logger("error", () => {}),
      now: () => now,
      // Only wake() reads, in this test: the poll is not what is tested.
      pollMs: 3_600_000,
    });
    try {
      assert.deepEqual(
        { ...services.info(), version: "" },
        {
          version: "",
          storage: backend,
          log: path.slice(path.lastIndexOf("/") + 1),
          auth: false,
          timezone: "UTC",
          live: true,
        },
      );
      // Records stored now reach the chain status through the feed when it is woken.
      const arrived = new Promise<number>((resolve) => {
        const stop = services.feed.onRecords((records) => {
          const last = records.at(-1)?.record.seq ?? 0;
          if (last >= 3) {
            stop();
            resolve(last);
          }
        });
      });
      log.append(callFields(1, "echo", {}));
      log.append(callFields(2, "echo", {}));
      log.sync();
      services.feed.wake();
      assert.equal(await arrived, 3);
      // The tracker checks what it is handed in the background: asked again a bounded number of
      // times, each after the other work waiting has run.
      let status = services.verify();
      for (let i = 0; i < 1000 && status.last_seq !== 3; i++) {
        await new Promise((r) => setTimeout(r, 0));
        status = services.verify();
      }
      assert.equal(status.last_seq, 3, JSON.stringify(status));
      assert.equal(status.signatures_checked, true);

      const a = await services.stats(new URLSearchParams("tool=echo&method=tools%2Fcall"));
      const b = await services.stats(new URLSearchParams("method=tools%2Fcall&tool=echo"));
      assert.equal(a, b, "the same question within 2 s is one answer");
      now = new Date(now.getTime() + STATS_CACHE_MS);
      const c = await services.stats(new URLSearchParams("tool=echo&method=tools%2Fcall"));
      assert.notEqual(c, a, "and computed again after");
      const go = await services.goStats();
      assert.equal(await services.goStats(), go);
    } finally {
      services.close();
      services.close();
      log.close();
      await Deno.remove(dir, { recursive: true });
    }
  });
}
