import assert from "node:assert/strict";
import { renderJson, renderText, summaryLine } from "./render.ts";
import { result } from "./result.ts";

const RESULTS = [
  result("config", "ok", "/etc/mcp/config.yaml (file + AUDIT_PATH)"),
  result("ports", "fail", "dashboard 127.0.0.1:9091 is taken", {
    fix: "set dashboard.port",
    notes: ["metrics 127.0.0.1:9090 is taken"],
  }),
  result("upstream", "skip", "needs config, which failed"),
  result("signing", "warn", "audit.sign is false", { fix: "set audit.sign: true" }),
];

Deno.test("render: one aligned line per check, the fix after a failure, notes indented, the count last", () => {
  assert.deepEqual(renderText(RESULTS, false), [
    "ok    config    /etc/mcp/config.yaml (file + AUDIT_PATH)",
    "FAIL  ports     dashboard 127.0.0.1:9091 is taken — fix: set dashboard.port",
    "                metrics 127.0.0.1:9090 is taken",
    "skip  upstream  needs config, which failed",
    "warn  signing   audit.sign is false — fix: set audit.sign: true",
    "",
    "1 ok, 1 warning, 1 failed, 1 skipped",
  ]);
});

Deno.test("render: colour only when asked, and control characters from files made visible", () => {
  assert.ok(!renderText(RESULTS, false).join("\n").includes("\x1b"));
  assert.ok(renderText(RESULTS, true)[1]!.startsWith("\x1b[31mFAIL  \x1b[0mports"));
  const [line] = renderText([result("upstream", "fail", "said \x1b[2Jhi\nthere")], false);
  assert.equal(line, "FAIL  upstream  said \\x1b[2Jhi\\x0athere");
});

Deno.test("render: --json is one object per check", () => {
  const lines = renderJson(RESULTS);
  assert.equal(lines.length, 4);
  assert.deepEqual(JSON.parse(lines[1]!), {
    name: "ports",
    status: "fail",
    detail: "dashboard 127.0.0.1:9091 is taken",
    fix: "set dashboard.port",
    notes: ["metrics 127.0.0.1:9090 is taken"],
  });
  assert.equal(summaryLine([result("log", "ok", "x")]), "1 ok, 0 warnings, 0 failed");
});

Deno.test("render: C1 controls, line separators and bidi controls are made visible too", () => {
  const hostile = "a\x9b2Jb\x85c\u2028d\u2029e\u202ef\u2066g\u2069h\u200fi\u061cj\u200ek\u202al";
  const [line] = renderText([result("upstream", "ok", hostile)], false);
  assert.equal(
    line,
    "ok    upstream  a\\x9b2Jb\\x85c\\u2028d\\u2029e\\u202ef\\u2066g\\u2069h\\u200fi\\u061cj\\u200ek\\u202al",
  );
  // Other text, accents and scripts included, is shown as it is.
  const [plain] = renderText([result("upstream", "ok", "café 服务 \u00a0x")], false);
  assert.equal(plain, "ok    upstream  café 服务 \u00a0x");
});
