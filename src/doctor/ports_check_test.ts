import assert from "node:assert/strict";
import { loadConfig } from "../config/load.ts";
import { checkPorts } from "./ports_check.ts";

function config(env: Record<string, string>) {
  return loadConfig({ env, flags: new Map(), upstreamArgv: [] }).config;
}

Deno.test("ports: a port held by another listener fails, naming the key to change", () => {
  using held = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const r = checkPorts(config({
    MCP_AUDIT_DASHBOARD_PORT: String(held.addr.port),
    MCP_AUDIT_METRICS_PORT: "0",
  }));
  assert.equal(r.status, "fail");
  assert.equal(r.detail, `dashboard 127.0.0.1:${held.addr.port} is taken`);
  assert.match(
    r.fix ?? "",
    /set dashboard\.port to another port, or 0 for any free one, --no-dashboard/,
  );
});

Deno.test("ports: port 0 binds; off listeners are not bound; the HTTP proxy's port counts in http mode", () => {
  assert.equal(
    checkPorts(config({ MCP_AUDIT_DASHBOARD_PORT: "0", MCP_AUDIT_METRICS_ENABLED: "false" }))
      .detail,
    "free: dashboard 127.0.0.1:0 (any free port)",
  );
  using held = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const r = checkPorts(config({
    MCP_AUDIT_DASHBOARD_ENABLED: "false",
    MCP_AUDIT_METRICS_ENABLED: "false",
    MCP_AUDIT_PROXY_TRANSPORT: "http",
    MCP_AUDIT_PROXY_BIND_ADDRESS: "127.0.0.1",
    MCP_AUDIT_PROXY_PORT: String(held.addr.port),
  }));
  assert.equal(r.status, "fail");
  assert.match(r.detail, /^proxy 127\.0\.0\.1:\d+ is taken$/);
  assert.match(r.fix ?? "", /proxy\.port \(--port\)/);
});

Deno.test("ports: two listeners given the same free port are found", () => {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = String(probe.addr.port);
  probe.close();
  const r = checkPorts(config({ MCP_AUDIT_DASHBOARD_PORT: port, MCP_AUDIT_METRICS_PORT: port }));
  assert.equal(r.status, "fail");
  // The metrics bind first, so the dashboard finds the port taken (by them, or by a stranger).
  assert.match(r.detail, new RegExp(`127\\.0\\.0\\.1:${port} is taken$`));
});
