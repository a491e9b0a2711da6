import assert from "node:assert/strict";
import { SyncPacer } from "./sync_pacer.ts";
import { ManualTimers } from "./testdata/sync_probes.ts";

/** Background syncs that end only when the test ends them. */
class FakeSyncs {
  started = 0;
  #ends: (() => void)[] = [];
  /** When false, `start` reports nothing to sync. */
  dirty = true;

  readonly start = (): Promise<void> | undefined => {
    if (!this.dirty) return undefined;
    this.started++;
    return new Promise<void>((resolve) => this.#ends.push(resolve));
  };

  get inFlight(): number {
    return this.#ends.length;
  }

  /** Ends the oldest sync in flight and lets its continuation run. */
  async finish(): Promise<void> {
    const end = this.#ends.shift();
    assert.ok(end !== undefined, "a sync is in flight");
    end();
    // The pacer's continuation runs on the microtask after the sync's promise resolves.
    await Promise.resolve();
    await Promise.resolve();
  }
}

function pacer(intervalMs: number) {
  const timers = new ManualTimers();
  const syncs = new FakeSyncs();
  return { timers, syncs, pacer: new SyncPacer({ intervalMs, start: syncs.start, timers }) };
}

Deno.test("sync pacer: the first request after a quiet spell syncs at once", () => {
  const { syncs, pacer: p } = pacer(10);
  p.request();
  assert.equal(syncs.started, 1);
  assert.ok(p.busy);
});

Deno.test("sync pacer: a hundred commits within one interval cost at most two fsyncs", async () => {
  const { timers, syncs, pacer: p } = pacer(10);
  for (let i = 0; i < 100; i++) {
    p.request();
    timers.advance(0.09);
    if (i === 3) await syncs.finish();
  }
  // 9 ms have passed: the first sync (at once) and nothing else started yet.
  assert.equal(syncs.started, 1);
  assert.equal(timers.pending, 1, "one sync is due, at the end of the interval");
  timers.advance(1);
  assert.equal(syncs.started, 2, "one fsync covers the 96 commits made meanwhile");
  await syncs.finish();
  assert.ok(!p.busy);
  assert.equal(timers.pending, 0);
});

Deno.test("sync pacer: never two syncs in flight, and the next waits for the one in flight", async () => {
  const { timers, syncs, pacer: p } = pacer(10);
  p.request();
  timers.advance(50); // a slow disk: the interval passes while the first sync runs
  p.request();
  p.request();
  assert.equal(syncs.inFlight, 1);
  assert.equal(syncs.started, 1);
  await syncs.finish();
  // The interval since its start has passed: the next starts as soon as it ends.
  assert.equal(syncs.started, 2);
  await syncs.finish();
  assert.ok(!p.busy);
});

Deno.test("sync pacer: a commit after a sync ended waits for the interval since that sync's start", async () => {
  const { timers, syncs, pacer: p } = pacer(10);
  p.request();
  timers.advance(3);
  await syncs.finish();
  p.request();
  assert.equal(syncs.started, 1);
  timers.advance(6.5);
  assert.equal(syncs.started, 1, "not before 10 ms since the first started");
  timers.advance(0.5);
  assert.equal(syncs.started, 2);
  await syncs.finish();
});

Deno.test("sync pacer: interval 0 starts the next sync as soon as the last ends", async () => {
  const { timers, syncs, pacer: p } = pacer(0);
  for (let i = 0; i < 3; i++) {
    p.request();
    p.request();
    assert.equal(syncs.started, 2 * i + 1);
    assert.equal(timers.pending, 0);
    await syncs.finish();
    // The second request was made while the sync ran: one more starts at once.
    assert.equal(syncs.started, 2 * i + 2);
    await syncs.finish();
  }
  assert.ok(!p.busy);
});

Deno.test("sync pacer: settled starts a due sync at once and waits for it", async () => {
  const { timers, syncs, pacer: p } = pacer(10_000);
  p.request();
  await syncs.finish();
  p.request();
  assert.equal(timers.pending, 1);
  const settled = p.settled();
  assert.equal(syncs.started, 2, "started without waiting for the interval");
  assert.equal(timers.pending, 0);
  await syncs.finish();
  await settled;
  assert.ok(!p.busy);
});

Deno.test("sync pacer: cancel drops a due sync; a request finds nothing to sync when the store says so", async () => {
  const { timers, syncs, pacer: p } = pacer(10);
  p.request();
  await syncs.finish();
  p.request();
  assert.equal(timers.pending, 1);
  p.cancel();
  assert.equal(timers.pending, 0, "no timer is left to hold the process");
  assert.ok(!p.busy);
  timers.advance(100);
  assert.equal(syncs.started, 1);
  syncs.dirty = false;
  p.request();
  assert.equal(syncs.started, 1, "nothing to sync: nothing started");
  assert.ok(!p.busy);
});

Deno.test("sync pacer: a sync whose promise rejects does not leave the pacer stuck", async () => {
  let calls = 0;
  const timers = new ManualTimers();
  const p = new SyncPacer({
    intervalMs: 0,
    start: () => (calls++, Promise.reject(new Error("broken"))),
    timers,
  });
  p.request();
  await p.settled();
  p.request();
  await p.settled();
  assert.equal(calls, 2);
  assert.ok(!p.busy);
});
