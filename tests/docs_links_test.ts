/**
 * Every relative link in the documentation resolves: README.md, the top-level *.md files and
 * docs/*.md. A link names a file or folder that exists, and a `#anchor` names a heading of its page
 * as GitHub makes anchors from headings. Paths in code spans (`src/…`, `tests/…`, `scripts/…`,
 * `dashboard/…`, `examples/…`) name files that exist, so a reference to the code cannot go stale.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";

const ROOT = new URL("..", import.meta.url).pathname;

/** Folders whose paths, quoted in a code span, must exist. */
const CODE_PATH = /^(?:src|tests|scripts|dashboard|examples)\/[\w./-]*$/;

/** GitHub's anchor for a heading: lower case, punctuation removed, spaces to hyphens. */
export function slug(heading: string): string {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1") // a link's text only
    .trim()
    .toLowerCase();
  return text.replace(/[^\p{L}\p{M}\p{N}\p{Pc}\- ]/gu, "").replace(/ /g, "-");
}

/** The lines of a page outside fenced code blocks, with their numbers. */
function proseLines(text: string): { line: string; n: number }[] {
  const out: { line: string; n: number }[] = [];
  let fence: string | null = null;
  text.split("\n").forEach((line, i) => {
    const m = /^\s*(`{3,}|~{3,})/.exec(line);
    if (m) {
      if (fence === null) fence = m[1]!;
      else if (m[1]!.startsWith(fence)) fence = null;
      return;
    }
    if (fence === null) out.push({ line, n: i + 1 });
  });
  return out;
}

/** The anchors of a page's headings, numbered as GitHub numbers repeated ones. */
export function anchors(text: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const { line } of proseLines(text)) {
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const base = slug(m[1]!);
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    out.add(count === 0 ? base : `${base}-${count}`);
  }
  return out;
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

function dirOf(path: string): string {
  return path.slice(0, path.lastIndexOf("/") + 1);
}

/** Removes `./` and `dir/../` segments. */
function normalize(path: string): string {
  const parts: string[] = [];
  for (const part of path.split("/")) {
    if (part === ".") continue;
    if (part === ".." && parts.length > 0 && parts.at(-1) !== "..") parts.pop();
    else parts.push(part);
  }
  return parts.join("/");
}

/**
 * The broken links and stale code paths of one page, as "file:line: problem".
 * @param root the repository's folder, ending in `/`
 * @param page the page's path inside it
 */
export function problems(root: string, page: string): string[] {
  const text = Deno.readTextFileSync(root + page);
  const out: string[] = [];
  const anchorCache = new Map<string, Set<string>>();
  const anchorsOf = (file: string): Set<string> => {
    let set = anchorCache.get(file);
    if (set === undefined) {
      set = anchors(Deno.readTextFileSync(root + file));
      anchorCache.set(file, set);
    }
    return set;
  };
  for (const { line, n } of proseLines(text)) {
    const spans = [...line.matchAll(/(`+)(.+?)\1/g)].map((m) => m[2]!.trim());
    for (const span of spans) {
      if (CODE_PATH.test(span) && !exists(root + span.replace(/\/$/, ""))) {
        out.push(`${page}:${n}: \`${span}\` does not exist`);
      }
    }
    const prose = line.replace(/(`+)(.+?)\1/g, "");
    for (const m of prose.matchAll(/\]\(([^)\s]*)(?:\s+"[^"]*")?\)/g)) {
      const target = m[1]!;
      if (/^[a-z][a-z+.-]*:/i.test(target)) continue; // https:, mailto:
      const hash = target.indexOf("#");
      const pathPart = hash < 0 ? target : target.slice(0, hash);
      const anchor = hash < 0 ? null : decodeURIComponent(target.slice(hash + 1));
      const file = pathPart === "" ? page : normalize(dirOf(page) + decodeURIComponent(pathPart));
      if (file.startsWith("../") || !exists(root + file.replace(/\/$/, ""))) {
        out.push(`${page}:${n}: link to ${target}: ${file} does not exist`);
        continue;
      }
      if (anchor === null) continue;
      if (!file.endsWith(".md")) {
        out.push(`${page}:${n}: link to ${target}: only a .md page has anchors`);
      } else if (!anchorsOf(file).has(anchor)) {
        out.push(`${page}:${n}: link to ${target}: ${file} has no heading #${anchor}`);
      }
    }
  }
  return out;
}

/** README.md, the other top-level pages and docs/*.md. */
function pages(root: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(root)) if (e.isFile && e.name.endsWith(".md")) out.push(e.name);
  for (const e of Deno.readDirSync(root + "docs")) {
    if (e.isFile && e.name.endsWith(".md")) out.push(`docs/${e.name}`);
  }
  return out.sort();
}

Deno.test("every relative link and anchor in README.md, the top-level pages and docs/ resolves", () => {
  const found = pages(ROOT);
  for (const page of ["README.md", "ARCHITECTURE.md", "SECURITY.md", "docs/audit-log.md"]) {
    if (!found.includes(page)) throw new Error(`${page} is missing`);
  }
  assertEquals(found.flatMap((page) => problems(ROOT, page)), []);
});

Deno.test("GitHub anchors: punctuation and code marks dropped, spaces hyphenated, repeats numbered", () => {
  assertEquals(slug("The anchor: a log cut back"), "the-anchor-a-log-cut-back");
  assertEquals(slug("Several proxies, one log"), "several-proxies-one-log");
  assertEquals(slug("`mcp-audit verify` exit codes"), "mcp-audit-verify-exit-codes");
  assertEquals(slug("Storage, detectors and dashboard"), "storage-detectors-and-dashboard");
  assertEquals(slug("stdio → HTTP"), "stdio--http");
  assertEquals([...anchors("# A\n## A\n```\n# not a heading\n```\n## A\n")], ["a", "a-1", "a-2"]);
});

Deno.test("the link check finds a missing page, a missing anchor and a stale code path", () => {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-docs-links-" });
  try {
    Deno.mkdirSync(`${dir}/docs`);
    Deno.writeTextFileSync(`${dir}/docs/b.md`, "# B\n\n## Real heading\n");
    Deno.writeTextFileSync(
      `${dir}/README.md`,
      [
        "# A",
        "[ok](docs/b.md#real-heading) [ok](#a) [web](https://example.com/x#y)",
        "[gone](docs/none.md) [no anchor](docs/b.md#unreal-heading) [self](#nope)",
        "`src/none.ts` and `docs/b.md` (only code folders are checked)",
        "```",
        "[in a code block](not/checked.md)",
        "```",
      ].join("\n"),
    );
    assertEquals(problems(`${dir}/`, "README.md"), [
      "README.md:3: link to docs/none.md: docs/none.md does not exist",
      "README.md:3: link to docs/b.md#unreal-heading: docs/b.md has no heading #unreal-heading",
      "README.md:3: link to #nope: README.md has no heading #nope",
      "README.md:4: `src/none.ts` does not exist",
    ]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
