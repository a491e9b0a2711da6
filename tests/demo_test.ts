/**
 * The README's first command, `deno task demo`, run as written in deno.json: the proxy in front
 * of the bundled server, its metrics, its log, and `verify`.
 */
import { assert, assertEquals } from "./assert.ts";
import { REPO, STORAGE } from "./helpers.ts";

Deno.test({
  name: "deno task demo runs the proxy, shows its metrics and log, and verifies the log",
  // The demo writes JSONL whatever the pass; it runs once.
  ignore: STORAGE === "sqlite",
  async fn() {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["task", "demo"],
      cwd: REPO,
      env: { AUDIT_SECRET: "demo-test-secret-0123456789abcdef0123456789abcdef" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    const stderr = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 0, stdout + stderr);
    assert(stdout.includes("refused by the proxy"), stdout);
    assert(
      /mcp_audit_tool_calls_total\{transport="stdio",tool_name="add",status="ok"\} 1/.test(stdout),
      stdout,
    );
    // The dashboard's Go-compatible stats count the six client requests, one of them refused.
    assert(/GET \/api\/stats +-> \{"total_today":6,"error_rate":0\.1666/.test(stdout), stdout);
    assert(/GET \/api\/v1\/verify -> intact/.test(stdout), stdout);
    assert(/OK: \d+ records, .*chain intact/.test(stdout), stdout);
  },
});
