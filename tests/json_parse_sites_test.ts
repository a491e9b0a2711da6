/**
 * Every JSON text the project reads whose member names matter goes through `parseJson` or
 * `parseLossless` (src/jsonrpc/json.ts), and every JSON the dashboard page reads through its own
 * `parseJson` (dashboard/js/json.js): V8's `JSON.parse` can misread an escaped member name after
 * reading a similar object (nodejs/node#63785). This test fails on a `JSON.parse(` or `.json()`
 * anywhere else in `src/` or the page, naming its file and line.
 *
 * Unit tests (`*_test.ts`) are not scanned: they read what they wrote themselves. The readers
 * tests share (tests/helpers.ts and the other helpers) use `parseJson` too.
 */
import assert from "node:assert/strict";
import { join, relative } from "node:path";

const REPO = new URL("../", import.meta.url).pathname;

/** Where a direct parse is right, and why. `count` is how many the file holds. */
const ALLOWED: { file: string; count: number; reason: string }[] = [
  { file: "src/jsonrpc/json.ts", count: 3, reason: "the reader itself (and lone strings in it)" },
  {
    file: "src/jsonrpc/recover_id.ts",
    count: 1,
    reason: "a lone string literal (an id): the defect is in member names only",
  },
  {
    file: "src/telemetry/spans.ts",
    count: 1,
    reason: "JSON.parse(JSON.stringify(string)): a flat copy of a lone string",
  },
  {
    file: "src/audit/testdata/adversarial_inputs.ts",
    count: 1,
    reason: "JSON.parse(JSON.stringify(string)): a flat copy of a lone string",
  },
  { file: "dashboard/js/json.js", count: 2, reason: "the page's reader itself" },
];

const PARSE = /JSON\.parse\(|\.json\(\)/g;

/** The 1-based lines of `text` that parse JSON directly, comments left out. */
function parseLines(text: string): number[] {
  const out: number[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const code = line.trimStart();
    if (code.startsWith("//") || code.startsWith("*") || code.startsWith("/*")) continue;
    const comment = line.indexOf(" // ");
    const body = comment === -1 ? line : line.slice(0, comment);
    for (const _ of body.matchAll(PARSE)) out.push(i + 1);
  }
  return out;
}

async function* sources(dir: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) yield* sources(path);
    else if (/\.(ts|js|mjs)$/.test(entry.name) && !/_test\.ts$/.test(entry.name)) yield path;
  }
}

Deno.test("the scan finds a direct parse and passes over comments", () => {
  const text = [
    "// JSON.parse(x) in a comment",
    " * JSON.parse(x) in a doc comment",
    "const a = JSON.parse(text);",
    "const b = await res.json(); // and JSON.parse( here",
    "const c = c.json({ ok: true });",
  ].join("\n");
  assert.deepEqual(parseLines(text), [3, 4]);
});

Deno.test("src/ and the dashboard page read JSON only through parseJson, but for the listed lone-string parses", async () => {
  const found = new Map<string, number[]>();
  for (const dir of ["src", "dashboard/js"]) {
    for await (const path of sources(join(REPO, dir))) {
      const lines = parseLines(await Deno.readTextFile(path));
      if (lines.length > 0) found.set(relative(REPO, path), lines);
    }
  }
  const problems: string[] = [];
  for (const [file, lines] of found) {
    const allowed = ALLOWED.find((a) => a.file === file);
    if (allowed !== undefined && lines.length === allowed.count) continue;
    problems.push(
      ...lines.map((l) => `${file}:${l}`),
      allowed === undefined
        ? `  read JSON with parseJson from src/jsonrpc/json.ts (in the page: dashboard/js/json.js)`
        : `  ${allowed.count} allowed here (${allowed.reason}); found ${lines.length}`,
    );
  }
  for (const a of ALLOWED) {
    if (!found.has(a.file)) problems.push(`${a.file}: listed as allowed but parses nothing now`);
  }
  assert.equal(problems.length, 0, `direct JSON parses:\n${problems.join("\n")}`);
});
