/**
 * What the release scripts' command lines share: strict option parsing, the usage and refusal
 * messages with exit code 2, and writing an output file whole.
 *
 * Each script prints its messages as `<script>: <message>` on stderr, so a failed release step
 * names the script that refused.
 *
 * @module
 */
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";

/** The values `parseArgs` gives for `O`, parsed strictly. */
export type Options<O extends ParseArgsOptionsConfig> = ReturnType<
  typeof parseArgs<{ args: string[]; options: O; strict: true; allowPositionals: false }>
>["values"];

/** The exit code of a script that refuses its arguments or its input. */
export const REFUSED = 2;

/**
 * The options of `args`, parsed strictly (unknown options and positionals are errors), or null
 * after printing the error as `<script>: <message>`.
 *
 * @example
 * ```ts
 * import { parseOptions } from "./common.ts";
 * const values = parseOptions("stamp", ["--commit", "0123abc"], { commit: { type: "string" } });
 * ```
 */
export function parseOptions<O extends ParseArgsOptionsConfig>(
  script: string,
  args: string[],
  options: O,
): Options<O> | null {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (e) {
    console.error(`${script}: ${e instanceof Error ? e.message : String(e)}`);
    return null;
  }
}

/** Prints the usage line and returns the exit code of a refused command line. */
export function usage(line: string): typeof REFUSED {
  console.error(`usage: ${line}`);
  return REFUSED;
}

/**
 * The exit code for `error` when it is one of the errors the script refuses with (printed as
 * `<script>: <message>`); any other error is thrown again, a bug to see whole.
 */
export function refused(
  script: string,
  error: unknown,
  kinds: readonly (abstract new (...args: never[]) => Error)[],
): typeof REFUSED {
  if (error instanceof Error && kinds.some((kind) => error instanceof kind)) {
    console.error(`${script}: ${error.message}`);
    return REFUSED;
  }
  throw error;
}

/**
 * Writes `text` to `path` through a temporary file in the same folder and a rename, so that
 * `path` is either as it was or whole; the temporary file is removed when the write fails.
 */
export async function writeTextAtomic(path: string, text: string): Promise<void> {
  const temp = `${path}.${crypto.randomUUID()}.tmp`;
  try {
    await Deno.writeTextFile(temp, text);
    await Deno.rename(temp, path);
  } catch (e) {
    await Deno.remove(temp).catch(() => {});
    throw e;
  }
}

/** Whether `value` is a plain JSON object (not null, not an array). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
