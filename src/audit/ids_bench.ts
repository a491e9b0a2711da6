/**
 * Record ids and timestamps: `npm:ulid`'s monotonic factory against {@link ulidFactory}, and
 * `toISOString` against {@link isoTimestamps}, each when every call is a new millisecond (one
 * record per millisecond or fewer, as in lockstep traffic) and when calls share one.
 * Run: `deno bench src/audit/ids_bench.ts`.
 *
 * @module
 */
import { monotonicFactory } from "ulid";
import { isoTimestamps, ulidFactory } from "./ids.ts";

const start = Date.UTC(2026, 10, 25, 4, 30, 53, 379);

const npmNew = monotonicFactory();
let npmNewTime = start;
Deno.bench(
  "npm:ulid monotonicFactory, a new millisecond each call",
  { group: "ulid new ms" },
  () => {
    npmNew(npmNewTime++);
  },
);
const oursNew = ulidFactory();
let oursNewTime = start;
Deno.bench("ulidFactory, a new millisecond each call", { group: "ulid new ms" }, () => {
  oursNew(oursNewTime++);
});

const npmSame = monotonicFactory();
Deno.bench("npm:ulid monotonicFactory, one millisecond", { group: "ulid same ms" }, () => {
  npmSame(start);
});
const oursSame = ulidFactory();
Deno.bench("ulidFactory, one millisecond", { group: "ulid same ms" }, () => {
  oursSame(start);
});

let dateTime = start;
Deno.bench("new Date(now).toISOString(), a new millisecond each call", { group: "iso" }, () => {
  new Date(dateTime++).toISOString();
});
const iso = isoTimestamps();
let isoTime = start;
Deno.bench("isoTimestamps, a new millisecond each call", { group: "iso" }, () => {
  iso(isoTime++);
});
