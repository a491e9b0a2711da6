/**
 * The doctor's output: one aligned line per check (`ok    config    …`, `FAIL  ports     … — fix:
 * …`), notes indented under it, and a count at the end; or one JSON object per check for machines.
 *
 * @module
 */
import type { CheckResult, CheckStatus } from "./result.ts";

const WORD: Record<CheckStatus, string> = { ok: "ok", warn: "warn", fail: "FAIL", skip: "skip" };
// Green, yellow, red, dim: only on a terminal.
const COLOR: Record<CheckStatus, string> = {
  ok: "\x1b[32m",
  warn: "\x1b[33m",
  fail: "\x1b[31m",
  skip: "\x1b[2m",
};
const RESET = "\x1b[0m";
const STATUS_WIDTH = 6;

/**
 * The lines of the report, with the summary last.
 *
 * @example
 * ```ts
 * renderText([{ name: "config", status: "ok", detail: "config.yaml (file)" }], false);
 * // ["ok    config  config.yaml (file)", "", "1 ok, 0 warnings, 0 failed"]
 * ```
 */
export function renderText(results: readonly CheckResult[], color: boolean): string[] {
  const nameWidth = Math.max(0, ...results.map((r) => r.name.length)) + 2;
  const lines: string[] = [];
  for (const r of results) {
    const word = WORD[r.status].padEnd(STATUS_WIDTH);
    const shown = color ? `${COLOR[r.status]}${word}${RESET}` : word;
    const fix = r.fix === undefined || r.status === "ok" ? "" : ` — fix: ${r.fix}`;
    lines.push(`${shown}${r.name.padEnd(nameWidth)}${oneLine(r.detail)}${oneLine(fix)}`);
    const indent = " ".repeat(STATUS_WIDTH + nameWidth);
    for (const note of r.notes ?? []) lines.push(`${indent}${oneLine(note)}`);
  }
  lines.push("", summaryLine(results));
  return lines;
}

/** `N ok, N warnings, N failed` (and `, N skipped` when some were). */
export function summaryLine(results: readonly CheckResult[]): string {
  const n = (s: CheckStatus) => results.filter((r) => r.status === s).length;
  const skipped = n("skip");
  const warnings = n("warn");
  return `${n("ok")} ok, ${warnings} warning${warnings === 1 ? "" : "s"}, ${n("fail")} failed${
    skipped > 0 ? `, ${skipped} skipped` : ""
  }`;
}

/** One JSON object per check, one a line. */
export function renderJson(results: readonly CheckResult[]): string[] {
  return results.map((r) => JSON.stringify(r));
}

/**
 * Characters a terminal acts on, or that change how a line reads: C0 controls and DEL, C1
 * controls (U+0080–U+009F: `\x9b` is CSI on some terminals), the line and paragraph separators,
 * and the bidirectional controls (U+061C, U+200E/F, U+202A–U+202E, U+2066–U+2069) that can make a
 * `FAIL` read as something else.
 */
// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** Text from files and servers shown on one line: those characters made visible as escapes. */
export function oneLine(text: string): string {
  return text.replace(CONTROL, (c) => {
    if (c === "\t") return " ";
    const code = c.charCodeAt(0);
    return code <= 0xff
      ? `\\x${code.toString(16).padStart(2, "0")}`
      : `\\u${code.toString(16).padStart(4, "0")}`;
  });
}
