/**
 * The dependency rule of ARCHITECTURE.md, checked on the code: every module of `src/` is in one
 * layer, and imports only from its own layer's folder or from lower layers; no module of `src/`
 * imports `tests/`, `scripts/` or `main.ts`. The few imports that break the rule today are listed
 * with their reason, here and in ARCHITECTURE.md, and the test fails when one of them is gone, so
 * the list stays true.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";

const ROOT = new URL("..", import.meta.url).pathname;

/**
 * The layers, lowest first. A module may import from its own group and from any group of a lower
 * layer; groups of one layer are peers and do not import each other. A group is a folder of
 * `src/` (with its subfolders) or one file, or several of them separated by spaces.
 */
export const LAYERS: readonly (readonly string[])[] = [
  ["src/jsonrpc/", "src/streams/", "src/net/", "src/log.ts", "src/version.ts src/build_info.ts"],
  ["src/audit/"],
  ["src/guardrails/"],
  ["src/config/"],
  ["src/pipeline/", "src/telemetry/", "src/export/", "src/dashboard/", "src/clients/"],
  ["src/transport/"],
  // The commands: `doctor` runs the others' checks (verify's among them).
  ["src/cli/ src/doctor/"],
];

/** Imports that break the rule today, each with its reason (also in ARCHITECTURE.md). */
export const EXCEPTIONS: Readonly<Record<string, string>> = {
  "src/audit/storage/open.ts -> src/config/config.ts":
    "the storage factory reads config.audit and the path it names",
  "src/audit/storage/open.ts -> src/config/load.ts":
    "the storage factory reports an unusable path as a ConfigError (exit 2)",
  "src/audit/storage/rotation.ts -> src/config/config.ts": "type only: the rotation settings",
  "src/telemetry/telemetry_worker.ts -> src/transport/http/upstream_tls.ts":
    "the OTLP exporter reads otel.tls.* with the HTTP proxy's TLS helpers",
};

/** Code that is not part of the program: tests, benches and their data. */
function isTestCode(path: string): boolean {
  return /_test\.ts$|_bench\.ts$/.test(path) || path.includes("/testdata/");
}

function walk(dir: string, out: string[] = []): string[] {
  for (const e of Deno.readDirSync(ROOT + dir)) {
    const path = `${dir}${e.name}`;
    if (e.isDirectory) walk(`${path}/`, out);
    else if (e.isFile && /\.(ts|tsx|js|mjs)$/.test(e.name)) out.push(path);
  }
  return out;
}

/**
 * The relative specifiers a module imports: static imports and re-exports (at the start of a line,
 * as `deno fmt` writes them, so that examples in doc comments are not taken for imports) and
 * dynamic `import("…")` with a literal outside comments.
 */
export function specifiers(source: string): string[] {
  const out: string[] = [];
  for (const m of source.matchAll(/^(?:import|export)\b[^;]*?\bfrom\s*["']([^"']+)["']/gm)) {
    out.push(m[1]!);
  }
  for (const m of source.matchAll(/^import\s*["']([^"']+)["']/gm)) out.push(m[1]!);
  for (const line of source.split("\n")) {
    if (/^\s*(\*|\/\/|\/\*)/.test(line)) continue;
    for (const m of line.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g)) out.push(m[1]!);
  }
  return out.filter((s) => s.startsWith("."));
}

function resolve(from: string, specifier: string): string {
  return new URL(specifier, `file:///${from}`).pathname.slice(1);
}

/** The layer and group of a path, or undefined for a path in no layer. */
export function placeOf(path: string): { layer: number; group: string } | undefined {
  for (const [layer, groups] of LAYERS.entries()) {
    for (const group of groups) {
      for (const part of group.split(" ")) {
        if (part.endsWith("/") ? path.startsWith(part) : path === part) return { layer, group };
      }
    }
  }
  return undefined;
}

/** The import edges of the program's modules in `src/`, as "from -> to". */
function edges(): string[] {
  const out: string[] = [];
  for (const file of walk("src/")) {
    if (isTestCode(file)) continue;
    const source = Deno.readTextFileSync(ROOT + file);
    for (const s of specifiers(source)) out.push(`${file} -> ${resolve(file, s)}`);
  }
  return out;
}

/** The edges that break the rule, with why. */
export function breaches(all: readonly string[]): string[] {
  const out: string[] = [];
  for (const edge of all) {
    const [from, to] = edge.split(" -> ") as [string, string];
    if (!to.startsWith("src/")) {
      out.push(`${edge}: src/ imports outside src/ (tests, scripts or main.ts)`);
      continue;
    }
    const a = placeOf(from);
    const b = placeOf(to);
    if (a === undefined) {
      out.push(`${from}: in no layer (add its folder to LAYERS and ARCHITECTURE.md)`);
      continue;
    }
    if (b === undefined) {
      out.push(`${to}: in no layer (add its folder to LAYERS and ARCHITECTURE.md)`);
      continue;
    }
    if (a.group === b.group || b.layer < a.layer) continue;
    const how = b.layer === a.layer ? "a peer in the same layer" : "a higher layer";
    out.push(`${edge}: ${a.group} imports ${b.group}, ${how}`);
  }
  return [...new Set(out)];
}

Deno.test("src/ imports only downward through the layers, tests and scripts never", () => {
  const all = edges();
  assert(all.length > 100, `only ${all.length} imports found: is the parser broken?`);
  const found = breaches(all).filter((b) => !(b.split(":")[0]! in EXCEPTIONS));
  assertEquals(found, []);
});

Deno.test("each listed exception to the layers still exists, and ARCHITECTURE.md names it", () => {
  const all = new Set(edges());
  const architecture = Deno.readTextFileSync(`${ROOT}ARCHITECTURE.md`);
  for (const edge of Object.keys(EXCEPTIONS)) {
    assert(all.has(edge), `${edge} is gone: remove it from EXCEPTIONS and ARCHITECTURE.md`);
    const [from, to] = edge.split(" -> ") as [string, string];
    assert(
      architecture.includes(`\`${from}\``) && architecture.includes(`\`${to}\``),
      `ARCHITECTURE.md does not name ${edge}`,
    );
  }
});

Deno.test("the layer check finds an upward import, a peer import, a stray folder and a test import", () => {
  assertEquals(
    specifiers([
      'import { a } from "./a.ts";',
      "import {",
      "  b,",
      '} from "../b/b.ts";',
      'export { c } from "./c.ts";',
      'import type { D } from "../d.ts";',
      'import "./side_effect.ts";',
      ' * import { example } from "./in_a_comment.ts";',
      'const e = await import("./e.ts");',
      '// await import("./commented.ts")',
      'import { Hono } from "hono";',
    ].join("\n")),
    ["./a.ts", "../b/b.ts", "./c.ts", "../d.ts", "./side_effect.ts", "./e.ts"],
  );
  assertEquals(
    breaches([
      "src/audit/chain.ts -> src/jsonrpc/json.ts",
      "src/audit/chain.ts -> src/audit/storage/store.ts",
      "src/audit/chain.ts -> src/pipeline/exchange.ts",
      "src/pipeline/exchange.ts -> src/telemetry/metrics.ts",
      "src/newthing/x.ts -> src/log.ts",
      "src/transport/stdio.ts -> tests/helpers.ts",
    ]),
    [
      "src/audit/chain.ts -> src/pipeline/exchange.ts: src/audit/ imports src/pipeline/, a higher layer",
      "src/pipeline/exchange.ts -> src/telemetry/metrics.ts: src/pipeline/ imports src/telemetry/, a peer in the same layer",
      "src/newthing/x.ts: in no layer (add its folder to LAYERS and ARCHITECTURE.md)",
      "src/transport/stdio.ts -> tests/helpers.ts: src/ imports outside src/ (tests, scripts or main.ts)",
    ],
  );
});
