/**
 * The few assertions the end-to-end tests use (JSR's `@std/assert` is not reachable here).
 * Deep equality comes from `node:assert`, with the caller's message kept in front of its diff.
 *
 * @module
 */
import { AssertionError, deepStrictEqual } from "node:assert/strict";

/** Throws unless `condition` is truthy. */
export function assert(condition: unknown, message = "assertion failed"): asserts condition {
  if (!condition) throw new AssertionError({ message });
}

/** Throws unless `actual` deeply and strictly equals `expected`. */
export function assertEquals<T>(
  actual: unknown,
  expected: T,
  message?: string,
): asserts actual is T {
  try {
    deepStrictEqual(actual, expected);
  } catch (e) {
    if (message === undefined || !(e instanceof Error)) throw e;
    throw new AssertionError({ message: `${message}\n${e.message}` });
  }
}

/** Throws unless `text` matches `pattern`. */
export function assertMatch(text: string, pattern: RegExp, message?: string): void {
  if (!pattern.test(text)) {
    throw new AssertionError({
      message: `${message ?? "no match"}: expected ${pattern} in:\n${text}`,
    });
  }
}
