/**
 * mulberry32, a small seeded generator for tests: the same seed gives the same numbers, so that a
 * failing random case (a chunking, a document, a number spelling) can be replayed from its seed.
 *
 * Test code only (`testdata/` is outside the layers): tests in any folder of `src/`, the tests of
 * `tests/` (through tests/helpers.ts) and their fixtures import it.
 *
 * @module
 */

/**
 * A generator of numbers in [0, 1), seeded.
 *
 * @example
 * ```ts
 * import { seededRandom } from "./seeded_random.ts";
 * const random = seededRandom(7);
 * const size = 1 + Math.floor(random() * 16);
 * ```
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
