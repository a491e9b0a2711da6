import assert from "node:assert/strict";
import { bearerToken, digestsEqual, principalOf, TokenAuth } from "./auth.ts";

const TOKEN = "k7Qp2-dashboard-token";

/** A clock the test moves by hand. */
function clock(start = 1_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => t += ms };
}

Deno.test("bearerToken: the Bearer scheme in any case, spaces before the token, no whitespace in it", () => {
  assert.equal(bearerToken(`Bearer ${TOKEN}`), TOKEN);
  assert.equal(bearerToken(`bEaReR    ${TOKEN}`), TOKEN);
  for (
    const bad of [
      null,
      undefined,
      "",
      TOKEN,
      `Basic ${TOKEN}`,
      `Bearer`,
      `Bearer `,
      `Bearer ${TOKEN} extra`,
      `Bearer ${TOKEN}\t`,
      `Bearer\t${TOKEN}`,
    ]
  ) {
    assert.equal(bearerToken(bad), null, JSON.stringify(bad));
  }
});

Deno.test("the right token passes; a wrong, shorter, longer, empty or missing one does not", async () => {
  const auth = new TokenAuth(TOKEN, { maxFailures: 100 });
  assert.deepEqual(await auth.check(`Bearer ${TOKEN}`, "a"), { kind: "pass" });
  assert.deepEqual(await auth.check(`bearer ${TOKEN}`, "a"), { kind: "pass" });
  for (
    const wrong of [
      `Bearer ${TOKEN.slice(0, -1)}`,
      `Bearer ${TOKEN}x`,
      `Bearer ${TOKEN.toUpperCase()}`,
      `Bearer x${TOKEN.slice(1)}`,
      "Bearer ",
      null,
    ]
  ) {
    assert.deepEqual(await auth.check(wrong, "a"), { kind: "unauthorized" }, String(wrong));
  }
});

Deno.test("an empty configured token is refused: it would let anyone in", () => {
  assert.throws(() => new TokenAuth(""), RangeError);
});

Deno.test("failures 1-10 in a window are 401, the 11th and later 429 with the seconds left in the window", async () => {
  const c = clock();
  const auth = new TokenAuth(TOKEN, { now: c.now });
  for (let i = 1; i <= 10; i++) {
    assert.deepEqual(
      await auth.check("Bearer nope", "10.0.0.1"),
      { kind: "unauthorized" },
      `#${i}`,
    );
    c.advance(1_000);
  }
  // 10 s into the window: 50 s are left.
  assert.deepEqual(await auth.check("Bearer nope", "10.0.0.1"), {
    kind: "throttled",
    retryAfterSeconds: 50,
    firstThrottled: true,
  });
  c.advance(49_500);
  assert.deepEqual(await auth.check(null, "10.0.0.1"), {
    kind: "throttled",
    retryAfterSeconds: 1,
    firstThrottled: false,
  });
  // Another address has its own count.
  assert.deepEqual(await auth.check(null, "10.0.0.2"), { kind: "unauthorized" });
  // The window ends 60 s after it opened: a new one starts with the next failure.
  c.advance(500);
  assert.deepEqual(await auth.check(null, "10.0.0.1"), { kind: "unauthorized" });
});

Deno.test("the right token passes while throttled and resets the address's count", async () => {
  const c = clock();
  const auth = new TokenAuth(TOKEN, { now: c.now });
  for (let i = 0; i < 11; i++) await auth.check("Bearer nope", "a");
  assert.equal((await auth.check("Bearer nope", "a")).kind, "throttled");
  assert.deepEqual(await auth.check(`Bearer ${TOKEN}`, "a"), { kind: "pass" });
  assert.equal(auth.tracked, 0);
  for (let i = 0; i < 10; i++) {
    assert.deepEqual(await auth.check("Bearer nope", "a"), { kind: "unauthorized" });
  }
  assert.equal((await auth.check("Bearer nope", "a")).kind, "throttled");
});

Deno.test("at most maxTracked addresses: expired windows go first; while all run, a new address is refused, not let in to evict one", async () => {
  const c = clock();
  const auth = new TokenAuth(TOKEN, { now: c.now, maxTracked: 3, maxFailures: 1 });
  await auth.check(null, "old");
  c.advance(30_000);
  await auth.check(null, "mid");
  await auth.check(null, "mid");
  c.advance(20_000);
  await auth.check(null, "new");
  assert.equal(auth.tracked, 3);
  // "old" expires at 60 s: at 61 s a fourth address takes its place, and "mid" is still counted.
  c.advance(11_000);
  await auth.check(null, "fourth");
  assert.equal(auth.tracked, 3);
  assert.equal((await auth.check(null, "mid")).kind, "throttled");
  // Nothing expired now: a fifth address is refused until the oldest window ("mid", opened at
  // 30 s) ends at 90 s, and "mid" stays throttled.
  assert.deepEqual(await auth.check(null, "fifth"), {
    kind: "throttled",
    retryAfterSeconds: 29,
    firstThrottled: true,
  });
  assert.equal(auth.tracked, 3);
  assert.equal((await auth.check(null, "mid")).kind, "throttled", "mid was not evicted");
  // The right token passes from a new address all the same.
  assert.deepEqual(await auth.check(`Bearer ${TOKEN}`, "sixth"), { kind: "pass" });
  c.advance(29_000);
  assert.deepEqual(await auth.check(null, "fifth"), { kind: "unauthorized" });
  assert.ok(auth.tracked <= 3);
});

Deno.test("4,096 addresses at most by default: 5,000 rotating addresses get 4,096 x 10 guesses a minute, no more", async () => {
  const auth = new TokenAuth(TOKEN);
  let unauthorized = 0;
  for (let round = 0; round < 11; round++) {
    for (let i = 0; i < 5000; i++) {
      const outcome = await auth.check(null, `10.${i >> 8}.${i & 255}.1`);
      if (outcome.kind === "unauthorized") unauthorized++;
    }
  }
  assert.equal(auth.tracked, 4096);
  assert.equal(unauthorized, 4096 * 10);
});

Deno.test("an IPv6 client is counted by its /64, an IPv4-mapped one as its IPv4 address", async () => {
  assert.equal(principalOf("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
  assert.equal(principalOf("2001:DB8:1:2:ffff:ffff:ffff:ffff"), "2001:db8:1:2::/64");
  assert.equal(principalOf("fe80::1%eth0"), "fe80:0:0:0::/64");
  assert.equal(principalOf("::1"), "0:0:0:0::/64");
  assert.equal(principalOf("::ffff:10.0.0.1"), "10.0.0.1");
  assert.equal(principalOf("::ffff:0a00:0001"), "10.0.0.1");
  assert.equal(principalOf("10.0.0.1"), "10.0.0.1");
  assert.equal(principalOf("not an address"), "not an address");
  assert.equal(principalOf("1:2:3:4:5:6:7:8:9"), "1:2:3:4:5:6:7:8:9");

  const auth = new TokenAuth(TOKEN);
  for (let i = 1; i <= 10; i++) {
    assert.equal((await auth.check(null, `2001:db8:0:7::${i.toString(16)}`)).kind, "unauthorized");
  }
  assert.equal((await auth.check(null, "2001:db8:0:7:ffff::9")).kind, "throttled");
  assert.equal((await auth.check(null, "2001:db8:0:8::1")).kind, "unauthorized");
  for (let i = 1; i <= 10; i++) await auth.check(null, "::ffff:192.0.2.1");
  assert.equal((await auth.check(null, "192.0.2.1")).kind, "throttled");
});

Deno.test("a wrong token costs one digest whatever its length: no early exit on length", async () => {
  // The comparison is of two SHA-256 digests (32 bytes each), so the token's length cannot end it
  // early; what is checked here is that tokens sharing a prefix with the right one, or its exact
  // length, are refused exactly as any other.
  const auth = new TokenAuth(TOKEN, { maxFailures: 1000 });
  for (let n = 0; n <= TOKEN.length + 2; n++) {
    const guess = TOKEN.slice(0, n) + "z".repeat(Math.max(0, TOKEN.length - n));
    if (guess === TOKEN) continue;
    assert.deepEqual(await auth.check(`Bearer ${guess}`, "a"), { kind: "unauthorized" }, guess);
  }
});

Deno.test("digestsEqual looks at all 32 bytes: a difference in the first or the last byte alone is seen", () => {
  const a = new Uint8Array(32).fill(7);
  assert.ok(digestsEqual(a, a.slice()));
  for (const at of [0, 15, 31]) {
    const b = a.slice();
    b[at] = 8;
    assert.ok(!digestsEqual(a, b), `byte ${at}`);
  }
  assert.ok(!digestsEqual(a, a.subarray(0, 31)), "a shorter digest");
});
