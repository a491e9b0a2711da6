import assert from "node:assert/strict";
import {
  DEFAULT_MAX_BUCKETS,
  RateLimiter,
  type RateLimiterOptions,
  type RateOutcome,
} from "./rate_limiter.ts";
import { GuardrailConfigError } from "./policy.ts";

/** A limiter on a hand-driven clock. */
function limiter(options: RateLimiterOptions = {}) {
  const clock = { now: 0 };
  return { clock, limiter: new RateLimiter(options, () => clock.now) };
}

function allowedCount(outcomes: RateOutcome[]): number {
  return outcomes.filter((o) => o.allowed).length;
}

function calls(l: RateLimiter, n: number, caller = "s1", tool = "read_file"): RateOutcome[] {
  return Array.from({ length: n }, () => l.check(caller, "tools/call", tool));
}

Deno.test("rate limiter rejects the 61st call within a minute with retry_after_ms 1000", () => {
  const { limiter: l } = limiter();
  assert.equal(allowedCount(calls(l, 60)), 60);
  assert.deepEqual(l.check("s1", "tools/call", "read_file"), {
    allowed: false,
    retryAfterMs: 1000,
    limit: { requests_per_minute: 60, burst: 60 },
  });
});

Deno.test("retry_after_ms counts down as the bucket refills", () => {
  const { clock, limiter: l } = limiter();
  calls(l, 60);
  clock.now = 400;
  const refused = l.check("s1", "tools/call", "read_file");
  assert.equal(refused.allowed, false);
  assert.equal(!refused.allowed && refused.retryAfterMs, 600);
  clock.now = 999;
  const almost = l.check("s1", "tools/call", "read_file");
  assert.equal(!almost.allowed && almost.retryAfterMs, 1);
  clock.now = 1000;
  assert.deepEqual(l.check("s1", "tools/call", "read_file"), { allowed: true });
});

Deno.test("tokens refill at requests_per_minute over time, never beyond burst", () => {
  const { clock, limiter: l } = limiter({ requests_per_minute: 60 });
  calls(l, 60);
  clock.now = 10_000; // ten tokens back
  assert.equal(allowedCount(calls(l, 11)), 10);
  clock.now = 10_000 + 3_600_000; // an hour idle refills to burst, not to 3600
  assert.equal(allowedCount(calls(l, 61)), 60);
});

Deno.test("burst caps calls at once while requests_per_minute sets the refill rate", () => {
  const { clock, limiter: l } = limiter({ requests_per_minute: 120, burst: 5 });
  assert.equal(allowedCount(calls(l, 6)), 5);
  const refused = l.check("s1", "tools/call", "read_file");
  assert.deepEqual(refused, {
    allowed: false,
    retryAfterMs: 500,
    limit: { requests_per_minute: 120, burst: 5 },
  });
  clock.now = 500;
  assert.equal(allowedCount(calls(l, 2)), 1);
});

Deno.test("burst defaults to requests_per_minute, as in the Go tool (0 means the default too)", () => {
  for (const options of [{ requests_per_minute: 10 }, { requests_per_minute: 10, burst: 0 }]) {
    const { limiter: l } = limiter(options);
    assert.equal(allowedCount(calls(l, 20)), 10);
    assert.deepEqual(l.limitFor("tools/call", "x"), { requests_per_minute: 10, burst: 10 });
  }
});

Deno.test("two callers hitting the same tool get separate budgets", () => {
  const { limiter: l } = limiter({ requests_per_minute: 5 });
  assert.equal(allowedCount(calls(l, 6, "session-a")), 5);
  assert.equal(allowedCount(calls(l, 6, "session-b")), 5);
  assert.equal(l.size, 2);
});

Deno.test("one caller has a separate budget per tool", () => {
  const { limiter: l } = limiter({ requests_per_minute: 3 });
  assert.equal(allowedCount(calls(l, 4, "s", "read_file")), 3);
  assert.equal(allowedCount(calls(l, 4, "s", "write_file")), 3);
  // As in Go, a call without a tool name counts under "unknown".
  assert.equal(allowedCount([l.check("s", "tools/call", ""), l.check("s", "tools/call", null)]), 2);
  assert.equal(allowedCount(calls(l, 2, "s", "unknown")), 1);
});

Deno.test("caller and tool names cannot be combined to reach another caller's bucket", () => {
  const { limiter: l } = limiter({ requests_per_minute: 1 });
  assert.equal(l.check("a", "tools/call", "b\u0000c").allowed, true);
  assert.equal(l.check("a\u0000b", "tools/call", "c").allowed, true);
  assert.equal(l.check("a", "tools/call", "b").allowed, true);
  assert.equal(l.check("1:a", "tools/call", "b").allowed, true);
});

Deno.test("only tools/call is limited unless a method has a limit of its own", () => {
  const { limiter: l } = limiter({
    requests_per_minute: 1,
    methods: {
      "resources/read": { requests_per_minute: 2 },
      "prompts/*": { requests_per_minute: 1 },
    },
  });
  for (let i = 0; i < 100; i++) assert.equal(l.check("s", "tools/list").allowed, true);
  assert.equal(l.size, 0, "unlimited methods hold no bucket");
  const reads = Array.from({ length: 3 }, () => l.check("s", "resources/read"));
  assert.equal(allowedCount(reads), 2);
  assert.deepEqual(reads[2], {
    allowed: false,
    retryAfterMs: 30_000,
    limit: { requests_per_minute: 2, burst: 2 },
  });
  assert.equal(l.check("s", "prompts/get").allowed, true);
  assert.equal(l.check("s", "prompts/get").allowed, false);
  assert.equal(l.check("s", "prompts/list").allowed, true, "a pattern gives each method a bucket");
});

Deno.test("per-tool overrides win over the tools/call method limit, which wins over the default", () => {
  const { limiter: l } = limiter({
    requests_per_minute: 100,
    methods: { "tools/call": { requests_per_minute: 10 } },
    tools: {
      "delete_*": { requests_per_minute: 1 },
      delete_scratch: { requests_per_minute: 3, burst: 2 },
      search: { burst: 4 },
    },
  });
  assert.deepEqual(l.limitFor("tools/call", "read_file"), { requests_per_minute: 10, burst: 10 });
  assert.deepEqual(l.limitFor("tools/call", "delete_file"), { requests_per_minute: 1, burst: 1 });
  assert.deepEqual(l.limitFor("tools/call", "delete_scratch"), {
    requests_per_minute: 3,
    burst: 2,
  });
  // An override without requests_per_minute keeps the top-level rate.
  assert.deepEqual(l.limitFor("tools/call", "search"), { requests_per_minute: 100, burst: 4 });
  assert.equal(l.limitFor("initialize"), undefined);
  assert.equal(allowedCount(calls(l, 3, "s", "delete_file")), 1);
  assert.equal(allowedCount(calls(l, 3, "s", "delete_scratch")), 2);
  assert.equal(allowedCount(calls(l, 12, "s", "read_file")), 10);
  const refused = l.check("s", "tools/call", "delete_file");
  assert.equal(!refused.allowed && refused.retryAfterMs, 60_000);
});

Deno.test("a bucket that has refilled while idle is dropped", () => {
  const { clock, limiter: l } = limiter({ requests_per_minute: 60 });
  l.check("a", "tools/call", "t");
  l.check("b", "tools/call", "t");
  assert.equal(l.size, 2);
  clock.now = 1000; // both full again
  l.check("c", "tools/call", "t");
  assert.equal(l.size, 1, "the idle buckets went on the next call");
  calls(l, 10, "c", "t");
  clock.now = 5000;
  assert.equal(l.sweep(), 0, "c has not refilled yet");
  clock.now = 12_000;
  assert.equal(l.sweep(), 1);
  assert.equal(l.size, 0);
});

Deno.test("dropping a full bucket loses nothing: the caller's budget is unchanged", () => {
  const { clock, limiter: l } = limiter({ requests_per_minute: 2 });
  calls(l, 2, "a", "t");
  clock.now = 60_000;
  assert.equal(l.sweep(), 1);
  assert.equal(allowedCount(calls(l, 3, "a", "t")), 2);
});

Deno.test("100k distinct callers keep the bucket count within the cap", () => {
  const { limiter: l } = limiter({ requests_per_minute: 60, max_buckets: 1000 });
  for (let i = 0; i < 100_000; i++) {
    assert.equal(l.check(`caller-${i}`, "tools/call", "read_file").allowed, true);
    assert.ok(l.size <= 1000);
  }
  assert.equal(l.size, 1000);
  // The most recent callers keep their state.
  calls(l, 59, "caller-99999", "read_file");
  assert.equal(l.check("caller-99999", "tools/call", "read_file").allowed, false);
  // Spread over time, idle eviction alone keeps the count small.
  const spread = limiter({ requests_per_minute: 60 });
  for (let i = 0; i < 100_000; i++) {
    spread.clock.now = i * 1000;
    spread.limiter.check(`caller-${i}`, "tools/call", "read_file");
  }
  assert.ok(spread.limiter.size <= 2, `size ${spread.limiter.size}`);
});

Deno.test("the default cap is used when max_buckets is absent", () => {
  const { limiter: l } = limiter();
  for (let i = 0; i < DEFAULT_MAX_BUCKETS + 10; i++) l.check(`c${i}`, "tools/call", "t");
  assert.equal(l.size, DEFAULT_MAX_BUCKETS);
});

Deno.test("a clock that steps back does not mint tokens", () => {
  const { clock, limiter: l } = limiter({ requests_per_minute: 60 });
  clock.now = 10_000;
  calls(l, 60);
  clock.now = 0;
  assert.equal(l.check("s1", "tools/call", "read_file").allowed, false);
  clock.now = 10_999;
  assert.equal(l.check("s1", "tools/call", "read_file").allowed, false);
  clock.now = 11_000;
  assert.equal(l.check("s1", "tools/call", "read_file").allowed, true);
});

Deno.test("invalid limits are refused naming the key", () => {
  const cases: [RateLimiterOptions, string][] = [
    [{ requests_per_minute: 0 }, "middleware.rate_limit.requests_per_minute"],
    [{ requests_per_minute: 1.5 }, "middleware.rate_limit.requests_per_minute"],
    [{ burst: -1 }, "middleware.rate_limit.burst"],
    [{ max_buckets: 0 }, "middleware.rate_limit.max_buckets"],
    [
      { tools: { x: { requests_per_minute: -2 } } },
      "middleware.rate_limit.tools.x.requests_per_minute",
    ],
    [
      { methods: { "resources/read": { burst: 2.5 } } },
      "middleware.rate_limit.methods.resources/read.burst",
    ],
    [
      { tools: { x: { rate: 5 } as unknown as { burst: number } } },
      "middleware.rate_limit.tools.x.rate",
    ],
    [{ tools: { x: 5 as unknown as { burst: number } } }, "middleware.rate_limit.tools.x"],
  ];
  for (const [options, key] of cases) {
    assert.throws(
      () => new RateLimiter(options, () => 0),
      (e: unknown) => e instanceof GuardrailConfigError && e.key === key,
      key,
    );
  }
});

Deno.test("refund gives back one token, never beyond the burst", () => {
  const limiter = new RateLimiter({ requests_per_minute: 2 }, () => 0);
  assert.equal(limiter.check("a", "tools/call", "x").allowed, true);
  assert.equal(limiter.check("a", "tools/call", "x").allowed, true);
  limiter.refund("a", "tools/call", "x");
  assert.equal(limiter.check("a", "tools/call", "x").allowed, true);
  assert.equal(limiter.check("a", "tools/call", "x").allowed, false);
  limiter.refund("a", "tools/call", "x");
  limiter.refund("a", "tools/call", "x");
  limiter.refund("a", "tools/call", "x");
  assert.equal(limiter.check("a", "tools/call", "x").allowed, true);
  assert.equal(limiter.check("a", "tools/call", "x").allowed, true);
  assert.equal(limiter.check("a", "tools/call", "x").allowed, false);
});

Deno.test("calls interleaving callers, methods and tools each spend their own bucket", () => {
  // A model of the buckets, one count per caller and tool or method, against the limiter fed
  // runs of repeated calls (where it reuses the last call's key) and switches between them.
  let seed = 99;
  const rand = (n: number): number => {
    seed = (Math.imul(seed, 48271) + 1) >>> 0;
    return (seed >>> 16) % n;
  };
  const limiter = new RateLimiter(
    { requests_per_minute: 5, methods: { "resources/read": { requests_per_minute: 3 } } },
    () => 0,
  );
  const spent = new Map<string, number>();
  const callers = ["a", "b", "a:b"];
  const calls: [string, string | null | undefined][] = [
    ["tools/call", "x"],
    ["tools/call", "y"],
    ["tools/call", null],
    ["tools/call", undefined],
    ["tools/call", "unknown"],
    ["resources/read", null],
    ["ping", null],
  ];
  for (let i = 0; i < 400; i++) {
    const caller = callers[rand(callers.length)]!;
    const [method, tool] = calls[rand(calls.length)]!;
    for (let run = 1 + rand(3); run > 0; run--) {
      const limit = method === "resources/read" ? 3 : method === "tools/call" ? 5 : Infinity;
      const scope = method === "tools/call" ? `tool ${tool || "unknown"}` : method;
      const key = `${caller} ${scope}`;
      const used = spent.get(key) ?? 0;
      assert.equal(limiter.check(caller, method, tool).allowed, used < limit, `${key} #${used}`);
      spent.set(key, Math.min(limit, used + 1));
    }
  }
});
