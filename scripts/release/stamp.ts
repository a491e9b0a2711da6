/**
 * Stamps the commit and build date of a release into `src/build_info.ts`, so that `--version`
 * prints `mcp-audit <version> (commit <sha>, built <date>)`. Run before `deno compile`:
 *
 * ```sh
 * deno run --allow-read=src --allow-write=src scripts/release/stamp.ts \
 *   --commit "$GITHUB_SHA" --date 2026-12-06T20:00:00Z
 * ```
 *
 * Only the two string values change; a file of any other shape is refused, untouched, so that a
 * changed `build_info.ts` fails the release instead of shipping "unknown". The file is written
 * to a temporary file beside it and renamed.
 *
 * @module
 */
import { parseOptions, REFUSED, refused, usage, writeTextAtomic } from "./common.ts";

/** A stamping that cannot be done; the message names the file or the value and what to do. */
export class StampError extends Error {
  override name = "StampError";
}

/** The file's shape: each constant on its own line, with a string literal of no escapes. */
const SHAPES = {
  commit: /^export const BUILD_COMMIT = "[^"\\\n]*";$/m,
  date: /^export const BUILD_DATE = "[^"\\\n]*";$/m,
} as const;

/**
 * The text of `build_info.ts` with `commit` and `date` stamped in.
 *
 * @throws {StampError} when a constant is missing, given twice, or a value is not well formed
 * @example
 * ```ts
 * import { stampText } from "./stamp.ts";
 * const src = 'export const BUILD_COMMIT = "unknown";\nexport const BUILD_DATE = "unknown";\n';
 * stampText(src, "0123abc", "2026-12-06T20:00:00Z", "build_info.ts");
 * ```
 */
export function stampText(text: string, commit: string, date: string, file: string): string {
  if (!/^[0-9a-f]{7,64}$/.test(commit)) {
    throw new StampError(
      `--commit: expected a hex commit id (7 to 64 characters), got ${JSON.stringify(commit)}`,
    );
  }
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/.test(date) || Number.isNaN(Date.parse(date))) {
    throw new StampError(
      `--date: expected a UTC time like 2026-12-06T20:00:00Z, got ${JSON.stringify(date)}`,
    );
  }
  let out = text;
  for (const [key, value] of [["commit", commit], ["date", date]] as const) {
    const shape = SHAPES[key];
    const global = new RegExp(shape.source, "gm");
    const found = text.match(global)?.length ?? 0;
    if (found !== 1) {
      throw new StampError(
        `${file}: expected exactly one line \`${
          key === "commit" ? "export const BUILD_COMMIT" : "export const BUILD_DATE"
        } = "…";\`, found ${found}; the file's shape changed: update scripts/release/stamp.ts with it`,
      );
    }
    const name = key === "commit" ? "BUILD_COMMIT" : "BUILD_DATE";
    out = out.replace(shape, `export const ${name} = "${value}";`);
  }
  return out;
}

/** Runs the command line; returns the exit code (0 stamped, 2 refused). */
export async function main(args: string[]): Promise<number> {
  const values = parseOptions("stamp", args, {
    commit: { type: "string" },
    date: { type: "string" },
    file: { type: "string", default: "src/build_info.ts" },
  });
  if (values === null) return REFUSED;
  if (values.commit === undefined || values.date === undefined) {
    return usage("stamp.ts --commit SHA --date YYYY-MM-DDTHH:MM:SSZ [--file src/build_info.ts]");
  }
  try {
    const text = await Deno.readTextFile(values.file);
    await writeTextAtomic(values.file, stampText(text, values.commit, values.date, values.file));
  } catch (e) {
    return refused("stamp", e, [StampError, Deno.errors.NotFound]);
  }
  console.log(`stamp: ${values.file}: commit ${values.commit}, built ${values.date}`);
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
