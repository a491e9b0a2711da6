/**
 * STABILITY.md lists the whole stable surface as the code defines it: every configuration key of
 * `src/config/schema.ts`, every metric of `src/telemetry/metric_names.ts`, every dashboard API
 * route of `src/dashboard/app.ts`, every record field and event, every JSON-RPC error code the proxy
 * returns, and every command of `--help`. Adding one without listing it fails here.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { SCHEMA } from "../src/config/schema.ts";
import { ALL_METRICS } from "../src/telemetry/metric_names.ts";
import { EventMethod, RECORD_FIELDS } from "../src/audit/record.ts";
import { ErrorCode } from "../src/jsonrpc/errors.ts";
import { HELP } from "../src/cli/args.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const STABILITY = Deno.readTextFileSync(`${ROOT}STABILITY.md`);

/** The names a page does not quote as `name`. */
export function unlisted(names: Iterable<string>, page: string): string[] {
  return [...new Set(names)].filter((name) => !page.includes(`\`${name}\``));
}

/** The API routes the dashboard's app registers (the page and its assets aside). */
export function apiRoutes(appSource: string): string[] {
  return [...appSource.matchAll(/\broute\(\s*"([^"]+)"/g)].map((m) => m[1]!)
    .filter((r) => r.startsWith("/api"));
}

/** The subcommands `--help` names. */
function commands(help: string): string[] {
  return [...help.matchAll(/^\s+mcp-audit ([a-z]+)\b/gm)].map((m) => m[1]!);
}

Deno.test("STABILITY.md lists every configuration key of src/config/schema.ts", () => {
  const keys = Object.keys(SCHEMA);
  assert(keys.length > 100, `only ${keys.length} keys read from the schema`);
  assertEquals(unlisted(keys, STABILITY), []);
});

Deno.test("STABILITY.md lists every metric name the proxy can serve", () => {
  assert(ALL_METRICS.length > 40);
  assertEquals(unlisted(ALL_METRICS.map((m) => m.name), STABILITY), []);
});

Deno.test("STABILITY.md lists every dashboard API route", () => {
  const routes = apiRoutes(Deno.readTextFileSync(`${ROOT}src/dashboard/app.ts`));
  for (const r of ["/api/v1/records", "/api/entries", "/api/v1/stream"]) {
    assert(routes.includes(r), `the route parser missed ${r}: ${routes.join(", ")}`);
  }
  assertEquals(unlisted(routes, STABILITY), []);
});

Deno.test("STABILITY.md lists every record field, event, JSON-RPC error code and command", () => {
  assertEquals(unlisted(RECORD_FIELDS, STABILITY), []);
  assertEquals(unlisted(Object.values(EventMethod), STABILITY), []);
  assertEquals(unlisted(Object.values(ErrorCode).map(String), STABILITY), []);
  const names = commands(HELP);
  assert(names.includes("verify") && names.includes("export"), names.join(", "));
  assertEquals(unlisted(names, STABILITY), []);
});

Deno.test("the stability check names what a page leaves out, and reads routes over two lines", () => {
  assertEquals(unlisted(["a.b", "a.c", "a.b"], "keys: `a.b`, a.c"), ["a.c"]);
  assertEquals(
    apiRoutes(
      'route("/", h);\n  route(\n    "/api/entries",\n    h,\n  );\nroute("/api/v1/x", h);',
    ),
    ["/api/entries", "/api/v1/x"],
  );
});
