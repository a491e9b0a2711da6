/**
 * The two bridges, with the SDK client at one end and the reference server at the other:
 * a stdio client reaching a Streamable HTTP server, and a stdio server served over HTTP.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  auditEnv,
  type AuditRecord,
  cleanEnv,
  Collector,
  deadline,
  readLog,
  StdioCommand,
} from "./helpers.ts";
import { LISTENING } from "./lines.ts";

const root = new URL("..", import.meta.url).pathname;
const deno = Deno.execPath();
const SECRET = "bridges-test-secret-0123456789abcdef";
const EVERYTHING = "npm:@modelcontextprotocol/server-everything@2026.8.31";

async function records(log: string): Promise<AuditRecord[]> {
  return (await readLog(log)).records;
}

async function verify(log: string): Promise<string> {
  const out = await new Deno.Command(deno, {
    args: ["run", "-A", `${root}main.ts`, "verify", log],
    env: { AUDIT_SECRET: SECRET },
    stdout: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout);
}

function strays(marker: string): string[] {
  const ps = new Deno.Command("ps", { args: ["-eo", "pid,args"], stdout: "piped" }).outputSync();
  // Upstream processes only: the proxy's own command line names the marker too.
  return new TextDecoder().decode(ps.stdout).split("\n").filter((l) =>
    l.includes(marker) && !l.includes("main.ts")
  );
}

/** server-everything over Streamable HTTP, listening, with its stderr drained. */
interface HttpEverything {
  server: Deno.ChildProcess;
  stderr: Collector;
  port: number;
}

/**
 * Starts server-everything over Streamable HTTP. It takes its port from `PORT` and cannot be told
 * to pick one, so the port is found free first, and another process may take it before the server
 * binds it: then the server exits without listening, and another port is tried.
 */
async function startHttpEverything(signal: AbortSignal): Promise<HttpEverything> {
  const failures: string[] = [];
  for (let attempt = 0; attempt < 5; attempt++) {
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = probe.addr.port;
    probe.close();
    const server = new Deno.Command(deno, {
      args: ["run", "-A", EVERYTHING, "streamableHttp"],
      env: { PORT: String(port) },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const stderr = new Collector(server.stderr);
    try {
      await stderr.waitFor(
        (c) => c.text().includes(`listening on port ${port}`),
        "server-everything to listen",
        signal,
      );
      return { server, stderr, port };
    } catch (e) {
      if (signal.aborted) throw e;
      failures.push(`port ${port}: ${stderr.text().slice(-500)}`);
      await server.status;
    }
  }
  throw new Error(`server-everything did not listen:\n${failures.join("\n")}`);
}

Deno.test("a stdio client reaches a Streamable HTTP server through the bridge, fully audited", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-bridge-" });
  const signal = deadline(60_000);
  const { server, stderr: serverLog, port } = await startHttpEverything(signal);
  try {
    const log = `${dir}/audit.jsonl`;
    await using proxy = new StdioCommand(
      deno,
      ["run", "-A", `${root}main.ts`, "--upstream", `http://127.0.0.1:${port}/mcp`],
      { env: { ...cleanEnv(), AUDIT_SECRET: SECRET, ...auditEnv(log) } },
    );
    const client = new Client({ name: "bridge-stdio-client", version: "1.0.0" });
    await client.connect(proxy.transport());
    const { tools } = await client.listTools();
    assert(tools.some((t: { name: string }) => t.name === "echo"));
    const echo = await client.callTool({
      name: "echo",
      arguments: { message: "over the bridge", token: "t0k" },
    });
    assertEquals(echo.content, [{ type: "text", text: "Echo: over the bridge" }]);
    await client.callTool(
      { name: "trigger-long-running-operation", arguments: { duration: 1, steps: 2 } },
      undefined,
      {
        onprogress: () => {},
      },
    );
    await client.close();
    assertEquals((await proxy.finished(signal)).code, 0, proxy.stderr.text());

    const recs = await records(log);
    assertEquals(recs[0]!.method, "audit/start");
    assertEquals(recs.at(-1)!.method, "audit/stop");
    const init = recs.find((r) => r.kind === "response" && r.method === "initialize")!;
    assert(typeof init.session === "string" && init.session.length > 0, "session named");
    const later = recs.filter((r) =>
      r.kind !== "event" && r !== init && recs.indexOf(r) > recs.indexOf(init)
    );
    assert(
      later.every((r) => r.session === init.session),
      "records after initialize carry the server's Mcp-Session-Id",
    );
    const call = recs.find((r) => r.kind === "request" && r.tool_name === "echo")!;
    assertEquals((call.params as { arguments: { token: string } }).arguments.token, "[REDACTED]");
    assertEquals(recs.filter((r) => r.method === "notifications/progress").length, 2);
    assert(
      recs.some((r) => r.kind === "response" && r.tool_name === "trigger-long-running-operation"),
    );
    const verified = await verify(log);
    assert(verified.startsWith("OK:"), verified);
  } finally {
    server.kill();
    await server.status;
    await serverLog.done;
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a stdio server is served over HTTP, one process per session, none left behind", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-bridge-" });
  const log = `${dir}/audit.jsonl`;
  const marker = `${dir}/marker`;
  const proxy = new Deno.Command(deno, {
    args: [
      "run",
      "-A",
      `${root}main.ts`,
      "--transport",
      "http",
      "--port",
      "0",
      "--",
      deno,
      "run",
      "-A",
      EVERYTHING,
      "stdio",
      marker,
    ],
    env: { ...cleanEnv(), AUDIT_SECRET: SECRET, ...auditEnv(log) },
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  // Read all along: a proxy whose stderr pipe is full stops.
  const stderr = new Collector(proxy.stderr);
  const signal = deadline(60_000);
  try {
    await stderr.waitFor((c) => LISTENING.test(c.text()), "the proxy to listen", signal);
    const url = LISTENING.exec(stderr.text())![1]!;
    const connect = async (name: string) => {
      const transport = new StreamableHTTPClientTransport(new URL(`${url}/mcp`));
      const client = new Client({ name, version: "1.0.0" });
      await client.connect(transport);
      return { client, transport };
    };
    const a = await connect("bridge-http-client-a");
    const b = await connect("bridge-http-client-b");
    assertEquals(
      strays(marker).length,
      2,
      `one upstream process per session: ${strays(marker).join("\n")}`,
    );
    const echo = await a.client.callTool({ name: "echo", arguments: { message: "a" } });
    assertEquals(echo.content, [{ type: "text", text: "Echo: a" }]);
    let ticks = 0;
    await b.client.callTool(
      { name: "trigger-long-running-operation", arguments: { duration: 1, steps: 2 } },
      undefined,
      {
        onprogress: () => ticks++,
      },
    );
    assert(ticks >= 1, "progress reaches the client over the request's stream");
    await a.transport.terminateSession();
    await a.client.close();
    assertEquals(strays(marker).length, 1, "DELETE ends that session's process");
    proxy.kill("SIGTERM");
    await stderr.done;
    assertEquals((await proxy.status).code, 0, stderr.text());
    await b.client.close();
    assertEquals(strays(marker), [], "shutdown ends every session's process");

    const recs = await records(log);
    const sessions = new Set(recs.filter((r) => r.kind !== "event").map((r) => r.session));
    assertEquals(sessions.size, 2, "each session's records carry its own id");
    assert(
      recs.some((r) => r.method === "notifications/progress" && r.direction === "server_to_client"),
    );
    const verified = await verify(log);
    assert(verified.startsWith("OK:"), verified);
  } finally {
    try {
      proxy.kill("SIGKILL");
    } catch {
      // Already ended.
    }
    await proxy.status;
    Deno.removeSync(dir, { recursive: true });
  }
});
