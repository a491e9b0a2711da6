import assert from "node:assert/strict";
import { type Expiring, IdleDeadlines } from "./idle_deadlines.ts";

/** An entry that resolves `expired` when its deadline passes. */
function entry(name: string, log: string[]): Expiring & { expired: Promise<void> } {
  const { promise, resolve } = Promise.withResolvers<void>();
  return {
    expiresAt: 0,
    expired: promise,
    expire() {
      log.push(name);
      resolve();
    },
  };
}

Deno.test("an armed deadline expires once, after its idle time", async () => {
  const log: string[] = [];
  const deadlines = new IdleDeadlines(5);
  const a = entry("a", log);
  const armedAt = performance.now();
  deadlines.arm(a);
  await a.expired;
  assert.ok(performance.now() - armedAt >= 4, "not before its time");
  assert.deepEqual(log, ["a"]);
  assert.equal(deadlines.size, 0);
});

Deno.test("deadlines expire in the order they were last armed, and a disarmed one never", async () => {
  const log: string[] = [];
  let now = 0;
  const deadlines = new IdleDeadlines(5, () => now);
  const [a, b, c] = [entry("a", log), entry("b", log), entry("c", log)];
  deadlines.arm(a);
  deadlines.arm(b);
  deadlines.arm(c);
  now = 1;
  deadlines.arm(a); // renewed: now the last to expire
  deadlines.disarm(b);
  now = 5.5;
  await c.expired;
  assert.deepEqual(log, ["c"], "a was renewed, b disarmed");
  now = 6;
  await a.expired;
  assert.deepEqual(log, ["c", "a"]);
  assert.equal(deadlines.size, 0);
});

Deno.test("an entry armed while another expires gets its own full idle time", async () => {
  const log: string[] = [];
  let now = 0;
  const deadlines = new IdleDeadlines(5, () => now);
  const b = entry("b", log);
  const aExpired = Promise.withResolvers<void>();
  const a: Expiring = {
    expiresAt: 0,
    expire() {
      log.push("a");
      deadlines.arm(b);
      aExpired.resolve();
    },
  };
  deadlines.arm(a);
  now = 5;
  await aExpired.promise;
  assert.deepEqual(log, ["a"], "b, armed at 5, is not expired with a");
  assert.equal(b.expiresAt, 10);
  now = 10;
  await b.expired;
  assert.deepEqual(log, ["a", "b"]);
});

Deno.test("with nothing armed, no timer is left running", () => {
  const deadlines = new IdleDeadlines(60_000);
  const a = entry("a", []);
  deadlines.arm(a);
  deadlines.disarm(a);
  // The test's op sanitizer fails this test if a timer were still pending.
  assert.equal(deadlines.size, 0);
});
