/**
 * The MCP SDK client → mcp-audit → an `npx`-like wrapper process → the real
 * `@modelcontextprotocol/server-filesystem`. Besides the log, these tests check the process table:
 * neither the wrapper nor anything it started may outlive the session.
 *
 * @module
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { CallToolResultSchema, ListRootsRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import {
  answerTo,
  assert,
  assertChain,
  assertConversation,
  assertEquals,
  assertMatch,
  assertNoStrays,
  deadline,
  descendants,
  filesystemServer,
  fixture,
  type Json,
  pick,
  type Proc,
  processTable,
  ProxyProcess,
  readLog,
  tempDir,
  verifyLog,
} from "./helpers.ts";

const CLIENT_INFO = { name: "mcp-audit-e2e-fs", version: "0.9.0" };

function resultOf(result: unknown): { text: string; isError: boolean } {
  const parsed = CallToolResultSchema.parse(result);
  const first = parsed.content[0];
  assert(first !== undefined && first.type === "text", "the result starts with a text block");
  return { text: first.text, isError: parsed.isError === true };
}

function field(value: Json, key: string): Json | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? value[key]
    : undefined;
}

Deno.test("server-filesystem behind an npx-like wrapper: tools work, the log is complete, no process survives", async () => {
  await using dir = await tempDir("filesystem");
  const data = `${dir.path}/data`;
  await Deno.mkdir(data);
  await Deno.writeTextFile(`${data}/hello.txt`, "hello from the test\n");
  const signal = deadline(90_000);
  let family: Proc[] = [];
  let wire = { sentLines: [] as string[], receivedLines: [] as string[] };
  let exitCode: number | undefined;
  {
    await using proxy = new ProxyProcess({
      cwd: dir.path,
      upstream: fixture("npx_like_wrapper.ts", "--", ...filesystemServer(data)),
    });
    const transport = proxy.transport();
    const client = new Client(CLIENT_INFO, { capabilities: { roots: { listChanged: true } } });
    let rootsAsked!: () => void;
    const rootsListed = new Promise<void>((resolve) => rootsAsked = resolve);
    client.setRequestHandler(ListRootsRequestSchema, () => {
      rootsAsked();
      return { roots: [{ uri: `file://${data}`, name: "test data" }] };
    });
    await client.connect(transport);
    // The server asks for the client's roots once initialized: a server-to-client request.
    await rootsListed;
    await proxy.stderr.waitFor(
      (c) => c.text().includes("npx_like_wrapper: child pid"),
      "the wrapper to start the server",
      signal,
    );
    family = descendants(await processTable(), proxy.pid);
    assert(
      family.some((p) => p.args.includes("npx_like_wrapper.ts")),
      "the wrapper runs below the proxy",
    );
    assert(
      family.some((p) => p.args.includes("server-filesystem")),
      `the real server runs below the wrapper: ${family.map((p) => p.args).join(" | ")}`,
    );

    const { tools } = await client.listTools();
    const names = tools.map((t: { name: string }) => t.name);
    for (const name of ["read_text_file", "write_file", "list_directory", "get_file_info"]) {
      assert(names.includes(name), `server-filesystem offers ${name}`);
    }
    const read = resultOf(
      await client.callTool({ name: "read_text_file", arguments: { path: `${data}/hello.txt` } }),
    );
    assertEquals(read, { text: "hello from the test\n", isError: false });
    const written = resultOf(
      await client.callTool({
        name: "write_file",
        arguments: { path: `${data}/new.txt`, content: "grüße, 世界 🌍\n" },
      }),
    );
    assertEquals(written.isError, false);
    assertEquals(await Deno.readTextFile(`${data}/new.txt`), "grüße, 世界 🌍\n");
    const listing = resultOf(
      await client.callTool({ name: "list_directory", arguments: { path: data } }),
    );
    assertMatch(listing.text, /\[FILE\] hello\.txt/);
    assertMatch(listing.text, /\[FILE\] new\.txt/);
    // Outside the allowed directory: a tool error (a result with isError), not a JSON-RPC error.
    const denied = resultOf(
      await client.callTool({ name: "read_text_file", arguments: { path: "/etc/hostname" } }),
    );
    assertEquals(denied.isError, true, `reading outside the root is refused: ${denied.text}`);

    await client.close();
    wire = { sentLines: transport.sentLines, receivedLines: transport.receivedLines };
    exitCode = (await proxy.finished(signal)).code;
  }
  await assertNoStrays(dir.path, family);
  assertEquals(exitCode, 0);

  const logPath = `${dir.path}/audit.jsonl`;
  const file = await readLog(logPath);
  await assertChain(file);
  await assertConversation(file, wire, CLIENT_INFO);
  const records = file.records;

  const roots = pick(records, { kind: "request", method: "roots/list" });
  assert(roots.length >= 1, "the server's roots/list request is recorded");
  for (const request of roots) {
    assertEquals(request.direction, "server_to_client");
    const answer = answerTo(records, request);
    assertEquals(answer.direction, "client_to_server");
    assertEquals(field(answer.result, "roots"), [{ uri: `file://${data}`, name: "test data" }]);
  }

  const calls = pick(records, { kind: "request", method: "tools/call" });
  assertEquals(calls.map((r) => r.tool_name), [
    "read_text_file",
    "write_file",
    "list_directory",
    "read_text_file",
  ]);
  const writeCall = calls[1]!;
  assertEquals(
    field(field(writeCall.params, "arguments") ?? null, "content"),
    "grüße, 世界 🌍\n",
    "multi-byte text is stored as sent",
  );
  const deniedAnswer = answerTo(records, calls[3]!);
  assertEquals(deniedAnswer.kind, "response");
  assertEquals(field(deniedAnswer.result, "isError"), true);
  assertEquals(deniedAnswer.tool_name, "read_text_file");

  const verify = await verifyLog(logPath);
  assertEquals(verify.code, 0, `verify exits 0:\n${verify.stdout}${verify.stderr}`);
  assertMatch(verify.lines[0] ?? "", /^OK: /);
});

Deno.test("a process the wrapper leaves behind (ignoring stdin EOF and SIGTERM) is ended with the wrapper's process group", async () => {
  await using dir = await tempDir("filesystem-sidecar");
  const data = `${dir.path}/data`;
  await Deno.mkdir(data);
  const marker = `sidecar-of-${dir.path}`;
  const signal = deadline(60_000);
  let family: Proc[] = [];
  let exitCode: number | undefined;
  {
    await using proxy = new ProxyProcess({
      cwd: dir.path,
      upstream: fixture(
        "npx_like_wrapper.ts",
        "--sidecar",
        marker,
        "--",
        ...filesystemServer(data),
      ),
    });
    const client = new Client(CLIENT_INFO);
    await client.connect(proxy.transport());
    await proxy.stderr.waitFor(
      (c) => c.text().includes("npx_like_wrapper: sidecar pid"),
      "the wrapper to start its sidecar",
      signal,
    );
    const dirs = resultOf(
      await client.callTool({ name: "list_allowed_directories", arguments: {} }),
    );
    assertMatch(dirs.text, new RegExp(data.replaceAll("/", "\\/")));
    const table = await processTable();
    family = descendants(table, proxy.pid);
    assert(
      table.some((p) => p.args.includes(marker) && !p.stat.startsWith("Z")),
      "the sidecar is running before the session ends",
    );
    await client.close();
    exitCode = (await proxy.finished(signal)).code;
  }
  await assertNoStrays(dir.path, family);
  assertEquals(exitCode, 0);
  const verify = await verifyLog(`${dir.path}/audit.jsonl`);
  assertEquals(verify.code, 0, `verify exits 0:\n${verify.stdout}${verify.stderr}`);
});
