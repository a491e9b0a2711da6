import assert from "node:assert/strict";
import { checkConfig, envSources } from "./config_check.ts";

Deno.test("config: the file, the variables and the flags in force are named (values never)", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.writeTextFileSync(`${dir}/config.yaml`, "audit:\n  path: /tmp/x.jsonl\n");
    const { result, loaded } = await checkConfig({
      flags: new Map([["audit.storage", { flag: "--storage", value: "jsonl" }]]),
      configPath: `${dir}/config.yaml`,
      upstreamArgv: ["echo"],
    }, {
      MCP_AUDIT_METRICS_PORT: "0",
      AUDIT_SECRET: "x".repeat(40),
      PATH: "/bin",
      DASHBOARD_PORT: "0",
    });
    assert.equal(result.status, "ok");
    assert.equal(
      result.detail,
      `${dir}/config.yaml (file + MCP_AUDIT_METRICS_PORT + AUDIT_SECRET + DASHBOARD_PORT + --storage + -- upstream)`,
    );
    assert.equal(loaded?.config.audit.path, "/tmp/x.jsonl");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("config: a bad key fails naming it and the file; an ignored key is a warning", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.writeTextFileSync(`${dir}/config.yaml`, "dashboard:\n  port: lots\n");
    const line = { flags: new Map(), configPath: `${dir}/config.yaml`, upstreamArgv: [] };
    const bad = await checkConfig(line, {});
    assert.equal(bad.result.status, "fail");
    assert.match(bad.result.detail, /^dashboard\.port: /);
    assert.match(
      bad.result.fix ?? "",
      new RegExp(`^correct dashboard\\.port \\(in ${dir}/config\\.yaml`),
    );
    assert.equal(bad.loaded, undefined);
    const missing = await checkConfig({ ...line, configPath: `${dir}/nope.yaml` }, {});
    assert.equal(missing.result.status, "fail");
    assert.match(missing.result.detail, /nope\.yaml: cannot read/);
    Deno.writeTextFileSync(`${dir}/config.yaml`, "middleware:\n  redact:\n    patterns: []\n");
    const warned = await checkConfig(line, {});
    assert.equal(warned.result.status, "warn");
    assert.match(warned.result.notes?.[0] ?? "", /middleware\.redact\.patterns is empty/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("config: envSources lists MCP_AUDIT_ names and the secret's variable", () => {
  assert.deepEqual(
    envSources({
      MCP_AUDIT_B: "1",
      MCP_AUDIT_A: "1",
      AUDIT_SECRET: "s",
      HOME: "/h",
      AUDIT_PATH: "p",
    }, [
      "AUDIT_PATH",
      "PROXY_PORT",
    ]),
    ["MCP_AUDIT_A", "MCP_AUDIT_B", "AUDIT_SECRET", "AUDIT_PATH"],
  );
});

Deno.test("config: an empty variable is not a source; the empty ones read are noted as not set", async () => {
  assert.deepEqual(
    envSources({ MCP_AUDIT_A: "", MCP_AUDIT_SIGNING_SECRET: "", AUDIT_SECRET: "s" }),
    ["AUDIT_SECRET"],
  );
  assert.deepEqual(envSources({ AUDIT_SECRET: "", AUDIT_PATH: "" }, ["AUDIT_PATH"]), []);
  const dir = Deno.makeTempDirSync();
  try {
    Deno.writeTextFileSync(`${dir}/c.yaml`, "dashboard:\n  auth:\n    token: from-file\n");
    const { result, loaded } = await checkConfig(
      { flags: new Map(), configPath: `${dir}/c.yaml`, upstreamArgv: [] },
      { MCP_AUDIT_DASHBOARD_AUTH_TOKEN: "", AUDIT_SECRET: "", PROXY_PORT: "" },
    );
    assert.equal(result.status, "ok", result.detail);
    assert.equal(result.detail, `${dir}/c.yaml (file)`);
    assert.deepEqual(result.notes, [
      "empty, so not set: AUDIT_SECRET, MCP_AUDIT_DASHBOARD_AUTH_TOKEN, PROXY_PORT",
    ]);
    assert.equal(loaded?.config.dashboard.auth.token, "from-file");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
