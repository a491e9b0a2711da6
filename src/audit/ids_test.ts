import assert from "node:assert/strict";
import { decodeTime, isValid } from "ulid";
import { IdError, isoTimestamps, ulidFactory } from "./ids.ts";

const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/** The 80 random bits of a ULID as 10 bytes, decoded independently of the factory. */
function randomBytes(id: string): Uint8Array {
  let bits = 0n;
  for (const c of id.slice(10)) bits = (bits << 5n) | BigInt(CROCKFORD.indexOf(c));
  const out = new Uint8Array(10);
  for (let i = 9; i >= 0; i--) {
    out[i] = Number(bits & 0xffn);
    bits >>= 8n;
  }
  return out;
}

/** A random source that hands out the given bytes, then zeros. */
function bytesSource(...bytes: number[]): (into: Uint8Array) => void {
  return (into) => {
    into.fill(0);
    into.set(bytes);
  };
}

Deno.test("ulidFactory makes valid ULIDs whose time npm:ulid decodes to the time given", () => {
  const newId = ulidFactory();
  for (const now of [0, 1, 1469918176385, Date.UTC(2026, 10, 25, 4, 30, 53, 379), 2 ** 48 - 1]) {
    const id = newId(now);
    assert.match(id, /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/);
    assert.ok(isValid(id), id);
    assert.equal(decodeTime(id), now);
  }
});

Deno.test("ulidFactory takes the time from Date.now() when given none", () => {
  const before = Date.now();
  const id = ulidFactory()();
  const time = decodeTime(id);
  assert.ok(time >= before && time <= Date.now(), id);
});

Deno.test("ulidFactory's random part is the random source's 80 bits", () => {
  const bytes = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc];
  const newId = ulidFactory(bytesSource(...bytes));
  assert.deepEqual(randomBytes(newId(1000)), new Uint8Array(bytes));
  // The next millisecond takes the next 10 bytes of the pool (zeros here).
  assert.equal(newId(1001).slice(10), "0".repeat(16));
});

Deno.test("ulidFactory ids increase within a millisecond, across them and when the clock goes back", () => {
  const newId = ulidFactory();
  let last = "";
  const times = [5, 5, 5, 6, 6, 4, 3, 7, 7, 100, 99, 100, 101];
  for (let round = 0; round < 200; round++) {
    for (const t of times) {
      const id = newId(1_700_000_000_000 + round * 1000 + t);
      assert.ok(id > last, `${id} after ${last}`);
      last = id;
    }
  }
  // An id made while the clock was behind keeps the later time it had already used.
  const ids = ulidFactory();
  const first = ids(2000);
  assert.equal(decodeTime(ids(1000)), 2000);
  assert.ok(ids(1500) > first);
});

Deno.test("ulidFactory carries the increment across its 20-bit parts", () => {
  // Every bit set but the first byte's: the increment carries up to the most significant part.
  const newId = ulidFactory(
    bytesSource(0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
  );
  const first = newId(42);
  const second = newId(42);
  assert.deepEqual(
    randomBytes(first),
    new Uint8Array([0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
  );
  assert.deepEqual(randomBytes(second), new Uint8Array([0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
  assert.ok(second > first);
  // Each smaller carry too.
  for (const at of [2, 5, 7]) {
    const bytes = new Array<number>(10).fill(0);
    for (let i = at; i < 10; i++) bytes[i] = 0xff;
    const ids = ulidFactory(bytesSource(...bytes));
    const a = ids(7);
    const b = ids(7);
    const want = BigInt(
      "0x" + Array.from(randomBytes(a), (x) => x.toString(16).padStart(2, "0")).join(""),
    ) + 1n;
    const got = BigInt(
      "0x" + Array.from(randomBytes(b), (x) => x.toString(16).padStart(2, "0")).join(""),
    );
    assert.equal(got, want, `carry from byte ${at}`);
  }
});

Deno.test("ulidFactory refuses times a ULID cannot hold, and a millisecond out of ids", () => {
  const newId = ulidFactory();
  for (const bad of [-1, 1.5, NaN, Infinity, 2 ** 48]) {
    assert.throws(() => newId(bad), IdError, String(bad));
  }
  const full = ulidFactory(bytesSource(...new Array<number>(10).fill(0xff)));
  assert.equal(full(9).slice(10), "Z".repeat(16));
  assert.throws(() => full(9), IdError);
  // Still refusing, not wrapping round.
  assert.throws(() => full(9), IdError);
  assert.equal(decodeTime(full(10)), 10);
});

Deno.test("isoTimestamps writes what toISOString writes, for every kind of time", () => {
  const iso = isoTimestamps();
  const times = [
    0,
    1,
    -1,
    999,
    1000,
    -999,
    -1000,
    -1001,
    Date.UTC(2026, 10, 25, 4, 30, 53, 379),
    Date.UTC(2026, 11, 31, 23, 59, 59, 999),
    Date.UTC(2027, 0, 1, 0, 0, 0, 0),
    Date.UTC(10000, 0, 1),
    Date.UTC(-1, 0, 1, 0, 0, 0, 5),
    8.64e15,
    -8.64e15,
    -8.64e15 + 1,
    1.5,
    -1.5,
    1700000000000.999,
  ];
  // Steps of -200 to +2299 ms from a fixed seed: many within a second, some across, a few back.
  let t = 1_700_000_000_000;
  let seed = 12345;
  for (let i = 0; i < 5000; i++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    t += (seed % 2500) - 200;
    times.push(t);
  }
  for (const now of times) assert.equal(iso(now), new Date(now).toISOString(), String(now));
});

Deno.test("isoTimestamps throws RangeError where toISOString does", () => {
  const iso = isoTimestamps();
  for (const bad of [NaN, 8.64e15 + 1, -8.64e15 - 1, Infinity]) {
    assert.throws(() => new Date(bad).toISOString(), RangeError);
    assert.throws(() => iso(bad), RangeError, String(bad));
  }
});
