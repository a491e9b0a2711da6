/**
 * `deno task demo`: runs mcp-audit in front of a small bundled MCP server, drives it with the MCP
 * SDK client, then shows the audit log it wrote and verifies it.
 *
 * @module
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const dir = `${root}.demo`;
Deno.mkdirSync(dir, { recursive: true });
const logPath = `${dir}/audit.jsonl`;
const secret = Deno.env.get("AUDIT_SECRET") ??
  Array.from(crypto.getRandomValues(new Uint8Array(32)), (b) => b.toString(16).padStart(2, "0"))
    .join("");
try {
  Deno.removeSync(logPath);
} catch {
  // A first run has no old log.
}

const deno = Deno.execPath();
const transport = new StdioClientTransport({
  command: deno,
  args: [
    "run",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-run",
    "--allow-net=127.0.0.1",
    `${root}main.ts`,
    "--log-level",
    "info",
    "--",
    deno,
    "run",
    "--allow-read",
    "--allow-env",
    `${root}scripts/demo_server.ts`,
  ],
  env: {
    ...Deno.env.toObject(),
    AUDIT_SECRET: secret,
    MCP_AUDIT_AUDIT_PATH: logPath,
    // Any free ports: the proxy's "metrics listening" and "dashboard listening" lines name them.
    MCP_AUDIT_METRICS_PORT: "0",
    MCP_AUDIT_DASHBOARD_PORT: "0",
    // A guardrail to show: payroll reports are refused by the proxy; the server never sees them.
    MCP_AUDIT_POLICY_ENABLED: "true",
    MCP_AUDIT_POLICY_RULES: JSON.stringify([{
      action: "deny",
      tool_name: "fetch_report",
      reason: "payroll reports need a human",
      when: [{ path: "arguments.report", op: "equals", value: "payroll" }],
    }]),
  },
  stderr: "pipe",
});
// The proxy's log lines: warnings and errors are shown; the metrics and dashboard addresses are
// kept.
let metricsAt: string | undefined;
const metricsListening = Promise.withResolvers<void>();
let dashboardAt: string | undefined;
const dashboardListening = Promise.withResolvers<void>();
let pending = "";
transport.stderr?.on("data", (chunk: Uint8Array | string) => {
  pending += typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk);
  const lines = pending.split("\n");
  pending = lines.pop() ?? "";
  for (const line of lines) {
    let entry: { level?: string; msg?: string; address?: string } = {};
    try {
      entry = JSON.parse(line);
    } catch {
      console.error(line);
      continue;
    }
    if (entry.msg === "metrics listening" && typeof entry.address === "string") {
      metricsAt = entry.address;
      metricsListening.resolve();
    } else if (entry.msg === "dashboard listening" && typeof entry.address === "string") {
      dashboardAt = entry.address;
      dashboardListening.resolve();
    } else if (entry.level === "warn" || entry.level === "error") {
      console.error(line);
    }
  }
});
const client = new Client({ name: "mcp-audit-demo-client", version: "1.0.0" });
console.log("== an MCP client talks to a server through mcp-audit\n");
await client.connect(transport);
const { tools } = await client.listTools();
console.log(`tools/list    -> ${tools.map((t: { name: string }) => t.name).join(", ")}`);
const sum = await client.callTool({ name: "add", arguments: { a: 2, b: 40 } });
console.log(`add(2, 40)    -> ${JSON.stringify(sum.content)}`);
const report = await client.callTool({
  name: "fetch_report",
  arguments: { report: "weekly", api_token: "sk-live-123456789" },
});
console.log(`fetch_report  -> ${JSON.stringify(report.content)}`);
try {
  await client.callTool({
    name: "fetch_report",
    arguments: { report: "payroll", api_token: "sk-live-123456789", cc: "ana@example.com" },
  });
} catch (e) {
  console.log(`fetch_report(payroll) -> refused by the proxy: ${(e as Error).message}`);
}
const counted = await client.callTool({ name: "slow_count", arguments: { n: 3 } }, undefined, {
  onprogress: () => {},
});
console.log(`slow_count(3) -> ${JSON.stringify(counted.content)} (with progress notifications)`);

await metricsListening.promise;
console.log(`\n== Prometheus metrics (${metricsAt}/metrics), a few of them\n`);
const scraped = await (await fetch(`${metricsAt}/metrics`)).text();
const shown =
  /^(mcp_audit_tool_calls_total|mcp_audit_policy_decisions_total|mcp_audit_chain_seq|mcp_audit_request_duration_seconds_count)\b/;
for (const line of scraped.split("\n")) if (shown.test(line)) console.log(line);

await dashboardListening.promise;
console.log(`\n== the dashboard's API (${dashboardAt}), as the console reads it\n`);
console.log(`GET /api/stats     -> ${await (await fetch(`${dashboardAt}/api/stats`)).text()}`);
// The first question starts the check of the whole log; it takes a moment.
let chain = await (await fetch(`${dashboardAt}/api/v1/verify`)).json();
for (let i = 0; i < 50 && chain.state === "checking"; i++) {
  await new Promise((resolve) => setTimeout(resolve, 100));
  chain = await (await fetch(`${dashboardAt}/api/v1/verify`)).json();
}
console.log(`GET /api/v1/verify -> ${chain.state} (${chain.records} records checked so far)`);
await client.close();

console.log(`\n== the audit log (${logPath})\n`);
const rows = Deno.readTextFileSync(logPath).trimEnd().split("\n").map((line) => JSON.parse(line));
const pad = (s: unknown, n: number): string => String(s ?? "").padEnd(n);
console.log(
  pad("seq", 4) + pad("kind", 13) + pad("direction", 17) + pad("method", 26) + pad("tool", 13) +
    pad("decision", 10) + "redacted",
);
for (const r of rows) {
  console.log(
    pad(r.seq, 4) + pad(r.kind, 13) + pad(r.direction, 17) + pad(r.method, 26) +
      pad(r.tool_name, 13) + pad(r.decision?.action, 10) +
      (r.redacted as string[]).join(", "),
  );
}
const calls = rows.filter((r) => r.tool_name === "fetch_report" && r.kind === "request");
for (const call of calls) {
  console.log(`\nstored arguments of fetch_report: ${JSON.stringify(call.params?.arguments)}`);
  console.log(`  decision: ${JSON.stringify(call.decision)}`);
}

console.log("\n== mcp-audit verify\n");
const verify = await new Deno.Command(deno, {
  args: ["run", "--allow-read", "--allow-env", `${root}main.ts`, "verify", logPath],
  env: { AUDIT_SECRET: secret },
  stdout: "inherit",
  stderr: "inherit",
}).output();
if (!Deno.env.has("AUDIT_SECRET")) {
  console.log(`\n(the demo signed with a random secret; set AUDIT_SECRET to choose one)`);
}
const secretShown = Deno.env.has("AUDIT_SECRET") ? '"$AUDIT_SECRET"' : secret;
console.log(
  `\nBrowse this log in the console: AUDIT_SECRET=${secretShown} deno task dashboard\n` +
    "then open http://127.0.0.1:9090/",
);
Deno.exit(verify.code);
