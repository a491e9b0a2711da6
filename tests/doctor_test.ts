/**
 * `mcp-audit doctor` end to end over real things: a log written by a real proxy (then an edited
 * copy of it), real MCP servers over stdio and HTTP, a port held open by the test, a key file
 * readable by others, a read-only directory, a client file. The command runs as `deno run main.ts
 * doctor` with the environment a shell would give it.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { generateEd25519 } from "../src/audit/signing.ts";
import { wrappedArgs } from "../src/clients/wrap.ts";
import {
  deadline,
  echoProxyLog,
  EVERYTHING,
  MAIN,
  type MainRun,
  runMain,
  SECRET,
  tempDir,
  verifyLog,
} from "./helpers.ts";
import { cleanEnv, EverythingHttpServer } from "./http_helpers.ts";

/** Runs `mcp-audit doctor ARGS` as a user would, from source, with exactly `env`. */
function doctor(args: string[], env: Record<string, string>): Promise<MainRun> {
  return runMain(["doctor", ...args], { env });
}

/** The output line of check `name`. */
function line(ran: MainRun, name: string): string {
  const found = ran.out.find((l) => new RegExp(`^\\S+ +${name} `).test(l));
  assert(found !== undefined, `no ${name} line in:\n${ran.out.join("\n")}`);
  return found;
}

Deno.test("doctor: every check passes for a proxy's log and server-everything over stdio; an edited copy of the log fails the chain", async () => {
  await using dir = await tempDir("doctor-chain");
  const logPath = await echoProxyLog(dir.path);
  Deno.writeTextFileSync(`${dir.path}/config.yaml`, `audit:\n  path: ${logPath}\n`);
  const env = {
    ...cleanEnv(),
    AUDIT_SECRET: SECRET,
    MCP_AUDIT_DASHBOARD_PORT: "0",
    MCP_AUDIT_METRICS_PORT: "0",
  };
  const good = await doctor(["--config", `${dir.path}/config.yaml`, "--", ...EVERYTHING], env);
  assertEquals(good.out.at(-1), "6 ok, 0 warnings, 0 failed", good.out.join("\n"));
  assertEquals(good.code, 0);
  assertEquals(
    line(good, "config"),
    `ok    config    ${dir.path}/config.yaml (file + MCP_AUDIT_DASHBOARD_PORT + MCP_AUDIT_METRICS_PORT + AUDIT_SECRET + -- upstream)`,
  );
  assert(
    /^ok +chain +OK: 4 records, seq 1-4; chain intact; .* \(\d+ ms\)$/.test(line(good, "chain")),
  );
  assert(/^ok +upstream +mcp-servers\/everything \S+, protocol 2025-06-18 \(stdio: deno run/.test(
    line(good, "upstream"),
  ));

  // One record's content changed: the chain breaks there.
  const text = Deno.readTextFileSync(logPath);
  assert(text.includes('"method":"ping"'));
  Deno.writeTextFileSync(
    `${dir.path}/edited.jsonl`,
    text.replace('"method":"ping"', '"method":"pong"'),
  );
  const edited = await doctor(["--no-dashboard", "--no-metrics"], {
    ...env,
    MCP_AUDIT_AUDIT_PATH: `${dir.path}/edited.jsonl`,
  });
  assertEquals(edited.code, 1);
  const chain = line(edited, "chain");
  assert(chain.startsWith("FAIL  chain     FAILED: "), chain);
  assert(
    chain.endsWith(
      `— fix: mcp-audit verify ${dir.path}/edited.jsonl for details; a break means edited or cut records — keep the file as evidence`,
    ),
    chain,
  );
  // The problem itself is shown under it.
  const next = edited.out[edited.out.indexOf(chain) + 1] ?? "";
  assert(/^ {16}line 2 seq 2: /.test(next), next);
});

Deno.test("doctor: a SQLite log a proxy wrote opens read-only and verifies; doctor and verify leave no -wal or -shm beside it", async () => {
  await using dir = await tempDir("doctor-sqlite");
  const db = await echoProxyLog(dir.path, "sqlite");
  const listing = () => [...Deno.readDirSync(dir.path)].map((e) => e.name).sort();
  // The proxy closed it cleanly: its -wal and -shm are gone. A read-only open would make both.
  assertEquals(listing(), ["audit.db"]);
  const verified = await verifyLog(db);
  assertEquals(verified.code, 0, verified.stdout + verified.stderr);
  assertEquals(listing(), ["audit.db"], "verify left files beside the database");
  const ran = await doctor(["--storage", "sqlite", "--no-dashboard", "--no-metrics"], {
    ...cleanEnv(),
    AUDIT_SECRET: SECRET,
    MCP_AUDIT_AUDIT_SQLITE_PATH: db,
  });
  assert(
    new RegExp(`^ok +log +${db} \\(sqlite; \\d+ bytes, writable, opens; directory writable\\)$`)
      .test(line(ran, "log")),
    line(ran, "log"),
  );
  assert(/^ok +chain +OK: 4 records, seq 1-4; chain intact; /.test(line(ran, "chain")));
  assertEquals(ran.out.at(-1), "5 ok, 0 warnings, 0 failed, 1 skipped");
  assertEquals(listing(), ["audit.db"], "doctor left files beside the database");
});

Deno.test("doctor: an HTTP upstream (server-everything streamableHttp) answers initialize", async () => {
  await using dir = await tempDir("doctor-http");
  await using server = await EverythingHttpServer.start(dir.path, deadline(30_000));
  const ran = await doctor(["--upstream", server.url, "--no-dashboard", "--no-metrics", "--json"], {
    ...cleanEnv(),
    AUDIT_SECRET: SECRET,
    MCP_AUDIT_AUDIT_PATH: `${dir.path}/audit.jsonl`,
  });
  assertEquals(ran.code, 0, ran.out.join("\n"));
  const checks = ran.out.map((l) => JSON.parse(l));
  assertEquals(checks.map((c) => [c.name, c.status]), [
    ["config", "ok"],
    ["log", "ok"],
    ["chain", "ok"],
    ["signing", "ok"],
    ["ports", "ok"],
    ["upstream", "ok"],
  ]);
  assert(
    new RegExp(
      `^mcp-servers/everything \\S+, protocol 2025-06-18 \\(http: ${server.url}, \\d+ ms\\)$`,
    )
      .test(checks[5].detail),
    checks[5].detail,
  );
});

Deno.test("doctor: a taken port, a key readable by others, an unwritable directory and a missing command each get their line and fix", async () => {
  await using dir = await tempDir("doctor-fail");
  using held = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const pair = generateEd25519();
  Deno.writeTextFileSync(`${dir.path}/key.pem`, pair.privatePem);
  Deno.chmodSync(`${dir.path}/key.pem`, 0o644);
  Deno.mkdirSync(`${dir.path}/logs`);
  Deno.chmodSync(`${dir.path}/logs`, 0o555);
  const ran = await doctor(["--", "no-such-mcp-server-here", "--flag"], {
    ...cleanEnv(),
    MCP_AUDIT_AUDIT_PATH: `${dir.path}/logs/audit.jsonl`,
    MCP_AUDIT_AUDIT_SIGNING_PRIVATE_KEY_FILE: `${dir.path}/key.pem`,
    MCP_AUDIT_DASHBOARD_PORT: String(held.addr.port),
    MCP_AUDIT_METRICS_PORT: "0",
  });
  Deno.chmodSync(`${dir.path}/logs`, 0o755);
  assertEquals(ran.code, 1);
  assertEquals(
    line(ran, "ports"),
    `FAIL  ports     dashboard 127.0.0.1:${held.addr.port} is taken — fix: set dashboard.port to another port, or 0 for any free one, --no-dashboard (another mcp-audit with this configuration may be running)`,
  );
  assert(
    /^warn {2}signing {3}ed25519 key [0-9a-f]{8} from .*: readable by group or others \(mode 0644\) — fix: chmod 600 .*key\.pem$/
      .test(line(ran, "signing")),
  );
  assert(
    line(ran, "upstream").startsWith(
      'FAIL  upstream  cannot start upstream "no-such-mcp-server-here": ',
    ),
  );
  assert(
    line(ran, "upstream").endsWith(
      '— fix: check that "no-such-mcp-server-here" is installed and on PATH (no shell is used)',
    ),
  );
  // Root writes whatever the mode says: the directory cannot fail for it.
  if (Deno.uid() !== 0) {
    assert(
      line(ran, "log").startsWith(`FAIL  log       cannot create a file in ${dir.path}/logs: `),
    );
  }
  assertEquals(
    ran.out.at(-1),
    Deno.uid() === 0 ? "3 ok, 1 warning, 2 failed" : "2 ok, 1 warning, 3 failed",
  );
});

Deno.test("doctor: a configuration that does not load fails, and the checks that need it are skipped", async () => {
  await using dir = await tempDir("doctor-config");
  Deno.writeTextFileSync(`${dir.path}/config.yaml`, "audit:\n  storage: tape\n");
  const ran = await doctor(["--config", `${dir.path}/config.yaml`], cleanEnv());
  assertEquals(ran.code, 1);
  assert(line(ran, "config").startsWith("FAIL  config    audit.storage: "));
  assertEquals(ran.out.filter((l) => l.startsWith("skip ")).length, 5);
  assertEquals(ran.out.at(-1), "0 ok, 0 warnings, 1 failed, 5 skipped");
});

Deno.test("doctor: --file checks each wrapped entry of a client file; a server command that is gone fails", async () => {
  await using dir = await tempDir("doctor-clients");
  Deno.writeTextFileSync(`${dir.path}/config.yaml`, `audit:\n  path: ${dir.path}/audit.jsonl\n`);
  const entry = (name: string, argv: string[]) => ({
    command: Deno.execPath(),
    args: wrappedArgs(["run", "--allow-read", MAIN], name, "cursor", `${dir.path}/config.yaml`, {
      kind: "stdio",
      argv,
    }),
  });
  Deno.writeTextFileSync(
    `${dir.path}/mcp.json`,
    JSON.stringify({
      mcpServers: { ok: entry("ok", EVERYTHING), gone: entry("gone", ["no-such-mcp-server-here"]) },
    }),
  );
  const ran = await doctor(
    [
      "--config",
      `${dir.path}/config.yaml`,
      "--no-dashboard",
      "--no-metrics",
      "--file",
      `${dir.path}/mcp.json`,
    ],
    { ...cleanEnv(), AUDIT_SECRET: SECRET },
  );
  assertEquals(ran.code, 1);
  assertEquals(
    line(ran, "clients"),
    "FAIL  clients   2 wrapped servers in 1 file: 1 problem — fix: install what is missing, or wrap the file again (mcp-audit wrap) from where mcp-audit now lives",
  );
  assert(
    ran.out.some((l) =>
      l.trim().startsWith(
        `${dir.path}/mcp.json: gone: the server's command "no-such-mcp-server-here" is not found on PATH`,
      )
    ),
  );
});

Deno.test("doctor: bad usage is exit 2 with the usage line; --help is exit 0", async () => {
  for (const args of [["--timeout", "soon"], ["--bogus"], ["verify", "x"]]) {
    const ran = await doctor(args, cleanEnv());
    assertEquals(ran.code, 2, args.join(" "));
    assert(ran.err[0]?.includes("usage: mcp-audit doctor"), ran.err.join("\n"));
  }
  const help = await doctor(["--help"], cleanEnv());
  assertEquals(help.code, 0);
  assert(help.out[0]?.startsWith("usage: mcp-audit doctor"));
});
