import assert from "node:assert/strict";
import { unifiedDiff } from "./diff.ts";
import { seededRandom } from "../testdata/seeded_random.ts";

function which(program: string): boolean {
  try {
    return new Deno.Command("sh", {
      args: ["-c", `command -v ${program}`],
      stdout: "null",
      stderr: "null",
    })
      .outputSync().success;
  } catch {
    return false;
  }
}

const HAS_PATCH = which("patch");
const HAS_DIFF = which("diff");

/** Applies `diff` with `patch -p0` in a directory holding `old` as `config.json`; returns the result. */
async function patched(old: string, diff: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "mcp-audit-diff-" });
  try {
    await Deno.writeTextFile(`${dir}/config.json`, old);
    const child = new Deno.Command("patch", {
      args: ["-p0", "--batch", "--silent", "--no-backup-if-mismatch"],
      cwd: dir,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(diff));
    await writer.close();
    const out = await child.output();
    const dec = new TextDecoder();
    assert.ok(
      out.success,
      `patch failed: ${dec.decode(out.stdout)}${dec.decode(out.stderr)}\n${diff}`,
    );
    return await Deno.readTextFile(`${dir}/config.json`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** `diff -u`'s output for the two texts, its two header lines (which carry times) left out. */
async function gnuDiff(oldText: string, newText: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "mcp-audit-diff-" });
  try {
    await Deno.writeTextFile(`${dir}/old`, oldText);
    await Deno.writeTextFile(`${dir}/new`, newText);
    const out = await new Deno.Command("diff", {
      args: ["-u", "old", "new"],
      cwd: dir,
      stdout: "piped",
    })
      .output();
    return new TextDecoder().decode(out.stdout).split("\n").slice(2).join("\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function body(diff: string): string {
  return diff.split("\n").slice(2).join("\n");
}

Deno.test("equal texts have no diff; headers name the two sides", () => {
  assert.equal(unifiedDiff("a\nb\n", "a\nb\n", "x", "y"), "");
  assert.equal(unifiedDiff("", "", "x", "y"), "");
  assert.equal(
    unifiedDiff("a\nb\nc\n", "a\nB\nc\n", "config.json", "config.json (wrapped)"),
    "--- config.json\n+++ config.json (wrapped)\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n",
  );
  assert.throws(() => unifiedDiff("a", "b", "x", "y", -1), RangeError);
});

Deno.test("hunk ranges, context and missing final newlines are written as diff -u writes them", async () => {
  const cases: Array<[string, string]> = [
    ["", "a\nb\n"],
    ["a\nb\n", ""],
    ["a\nb", "a\nc"],
    ["a\nb", "a\nb\n"],
    ["a\nb\n", "a\nb"],
    ["x\ny", "x\ny\nz"],
    ["1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n", "1\n2\nthree\n4\n5\n6\n7\n8\n9\n10\neleven\n12\n"],
    [
      "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n",
      "1\n2\n3\n4\n5\nsix\n7\n8\n9\n10\n11\n12\n13\n14\n15\n",
    ],
    ["a\r\nb\r\n", "a\r\nc\r\n"],
    ["a\nb\n", "a\r\nb\n"],
  ];
  for (const [oldText, newText] of cases) {
    const ours = unifiedDiff(oldText, newText, "old", "new");
    assert.ok(ours.startsWith("--- old\n+++ new\n@@ "), ours);
    if (HAS_DIFF) {
      assert.equal(body(ours), await gnuDiff(oldText, newText), JSON.stringify([oldText, newText]));
    }
  }
  assert.equal(
    unifiedDiff("a\nb", "a\nc", "o", "n"),
    "--- o\n+++ n\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n",
  );
  assert.equal(unifiedDiff("", "a\n", "o", "n"), "--- o\n+++ n\n@@ -0,0 +1 @@\n+a\n");
  assert.equal(
    unifiedDiff("1\n2\n3\n", "1\n3\n", "o", "n", 0),
    "--- o\n+++ n\n@@ -2 +1,0 @@\n-2\n",
  );
});

Deno.test({
  name: "patch -p0 turns the old text into the new with every generated diff",
  ignore: !HAS_PATCH,
  fn: async () => {
    const r = seededRandom(31);
    const words = ["{", "}", '  "a": 1,', '  "b": [', "    2", "  ]", "", "x"];
    const text = (): string => {
      const lines = Array.from(
        { length: Math.floor(r() * 25) },
        () => words[Math.floor(r() * words.length)]!,
      );
      const eol = r() < 0.2 ? "\r\n" : "\n";
      return lines.join(eol) + (r() < 0.7 ? eol : "");
    };
    let checked = 0;
    for (let i = 0; i < 40; i++) {
      const oldText = text();
      const lines = oldText.split("\n");
      // Related texts: the old one with a few lines changed, added or removed.
      for (let e = Math.floor(r() * 4); e >= 0; e--) {
        const at = Math.floor(r() * (lines.length + 1));
        if (r() < 0.5) lines.splice(at, 1);
        else lines.splice(at, 0, words[Math.floor(r() * words.length)]!);
      }
      const newText = r() < 0.2 ? text() : lines.join("\n");
      const diff = unifiedDiff(oldText, newText, "config.json", "config.json", Math.floor(r() * 4));
      if (diff === "") {
        assert.equal(oldText, newText);
        continue;
      }
      assert.equal(await patched(oldText, diff), newText);
      checked++;
    }
    assert.ok(checked > 30);
  },
});

Deno.test({
  name: "big inputs with many changes fall back to one replacement hunk that still applies",
  ignore: !HAS_PATCH,
  fn: async () => {
    const oldLines = Array.from({ length: 4000 }, (_, i) => `line ${i}\n`);
    const newLines = oldLines.map((
      line,
      i,
    ) => (i % 2 === 0 && i > 0 && i < 3999 ? `changed ${i}\n` : line));
    const oldText = oldLines.join("");
    const newText = newLines.join("");
    const diff = unifiedDiff(oldText, newText, "config.json", "config.json");
    assert.equal(diff.match(/^@@ /gm)?.length, 1, "one hunk");
    // Past the bound, the unchanged odd lines between the changes are removed and added again.
    assert.ok(
      diff.startsWith(
        "--- config.json\n+++ config.json\n@@ -1,4000 +1,4000 @@\n line 0\n line 1\n-line 2\n-line 3\n",
      ),
    );
    assert.equal(await patched(oldText, diff), newText);

    // Few changes in a big text are still found one by one.
    const few = oldLines.map((line, i) => (i === 100 || i === 3000 ? "x\n" : line)).join("");
    const small = unifiedDiff(oldText, few, "config.json", "config.json");
    assert.equal(small.match(/^@@ /gm)?.length, 2);
    assert.equal(await patched(oldText, small), few);
  },
});
