/**
 * Framing smuggling, end to end: bytes that some official MCP SDK frames differently from the
 * proxy (a bare `\r`, two values on a line, invalid UTF-8, … — the table in
 * src/jsonrpc/framing.ts) never reach the other side, in either direction, with the guardrails
 * off or on; each is recorded as `invalid` and answered `-32600` where its id can be found. Real
 * processes throughout: the proxy, the official Python SDK's server, the TypeScript SDK's server,
 * and a raw upstream that writes exactly the bytes a test gives it.
 *
 * @module
 */
import {
  assert,
  assertChain,
  assertEquals,
  assertMatch,
  type AuditLogFile,
  type AuditRecord,
  Collector,
  concatBytes,
  deadline,
  fixture,
  FIXTURES,
  type Json,
  pick,
  ProxyProcess,
  readLog,
  tempDir,
  utf8,
  verifyLog,
} from "./helpers.ts";
import { pythonWithMcp } from "./py_sdk.ts";

const INVALID_REQUEST = -32600;
const UPSTREAM_GONE = -32603;
const decoder = new TextDecoder();

const rpc = (m: Record<string, Json>): string => JSON.stringify({ jsonrpc: "2.0", ...m });
const ping = (id: number): string => rpc({ id, method: "ping" }) + "\n";
const call = (id: number, name: string, args: Record<string, Json>): string =>
  rpc({ id, method: "tools/call", params: { name, arguments: args } });

/** The issue's line: one `ping` to a `\n` reader; a ping and a delete_file call to Python's. */
const ISSUE_LINE = `{"jsonrpc":"2.0","id":2,"method":"ping","params":{"x":\r` +
  call(3, "delete_file", { path: "/x" }) + "\r}}\n";

const INITIALIZE = rpc({
  id: 1,
  method: "initialize",
  params: {
    protocolVersion: "2025-06-18",
    capabilities: {},
    clientInfo: { name: "framing-e2e", version: "1.0.0" },
  },
}) + "\n";
const INITIALIZED = rpc({ method: "notifications/initialized" }) + "\n";

const DENY_DELETE = {
  policy: { enabled: true, rules: [{ action: "deny", tool_name: "delete_file" }] },
};
const MODES = [
  {
    mode: "guardrails off",
    config: { policy: { enabled: false }, middleware: { rate_limit: { enabled: false } } },
    guarded: false,
  },
  { mode: "a policy denying delete_file", config: DENY_DELETE, guarded: true },
] as const;

async function writeConfig(dir: string, config: Record<string, unknown>): Promise<void> {
  await Deno.writeTextFile(`${dir}/config.yaml`, JSON.stringify(config, null, 2) + "\n");
}

type Message = Record<string, Json>;

/** Every line the proxy wrote to the client, parsed: each must be one JSON-RPC message. */
function messagesOut(out: Collector): Message[] {
  return out.lines.map((l) => {
    const v: unknown = JSON.parse(l);
    assert(typeof v === "object" && v !== null && !Array.isArray(v), `one message: ${l}`);
    return v as Message;
  });
}

const isAnswerTo = (id: Json) => (m: Message): boolean => m.id === id && !("method" in m);

async function awaitAnswer(out: Collector, id: Json, signal: AbortSignal): Promise<Message> {
  await out.waitFor(() => messagesOut(out).some(isAnswerTo(id)), `the answer to ${id}`, signal);
  return messagesOut(out).find(isAnswerTo(id))!;
}

function errorOf(m: Message): { code?: Json; data?: Json } {
  const e = m.error;
  return typeof e === "object" && e !== null && !Array.isArray(e) ? e : {};
}

function dataOf(r: AuditRecord): Record<string, Json> {
  const d = r.error?.data;
  return typeof d === "object" && d !== null && !Array.isArray(d) ? d : {};
}

/** Reads the log, checks the chain and signatures, and runs `mcp-audit verify` on it. */
async function checkedLog(path: string): Promise<AuditLogFile> {
  const file = await readLog(path);
  await assertChain(file);
  const verified = await verifyLog(path);
  assertEquals(verified.code, 0, `verify exits 0:\n${verified.stdout}${verified.stderr}`);
  return file;
}

const exists = (path: string): Promise<boolean> => Deno.stat(path).then(() => true, () => false);

/** The official Python SDK's server fixture, as an upstream command. */
async function pythonServer(marker: string): Promise<string[]> {
  return [await pythonWithMcp(), `${FIXTURES}py_delete_server.py`, marker];
}

// ----------------------------------------------------------------------------------------------
// The issue's line against real SDK servers

Deno.test("control: the official Python SDK server, sent the issue's line directly, runs delete_file", async () => {
  await using dir = await tempDir("smuggle-control");
  const signal = deadline(60_000);
  const marker = `${dir.path}/deleted.txt`;
  const [python, ...args] = await pythonServer(marker);
  const child = new Deno.Command(python!, {
    args,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out = new Collector(child.stdout);
  const err = new Collector(child.stderr);
  const stdin = child.stdin.getWriter();
  try {
    await stdin.write(utf8(INITIALIZE));
    await awaitAnswer(out, 1, signal);
    await stdin.write(utf8(INITIALIZED + ISSUE_LINE));
    // Python's reader ends lines at the bare \r: the call inside the ping is a call of its own.
    const answer = await awaitAnswer(out, 3, signal);
    assert("result" in answer, JSON.stringify(answer));
    assertEquals(await Deno.readTextFile(marker), "/x\n", "the Python server ran delete_file");
  } finally {
    await stdin.close().catch(() => {});
    await child.status;
    await out.done;
    await err.done;
  }
});

const SERVERS = [
  { sdk: "Python", upstream: pythonServer },
  {
    sdk: "TypeScript",
    upstream: (marker: string) => Promise.resolve(fixture("ts_delete_server.ts", marker)),
  },
] as const;

for (const { sdk, upstream } of SERVERS) {
  for (const { mode, config, guarded } of MODES) {
    Deno.test(`with ${mode}, the issue's line through the proxy to the ${sdk} SDK server: -32600 for id 2, recorded, and delete_file never runs`, async () => {
      await using dir = await tempDir(`smuggle-${sdk}`);
      const signal = deadline(90_000);
      const marker = `${dir.path}/deleted.txt`;
      await writeConfig(dir.path, config);
      let messages: Message[];
      {
        await using proxy = new ProxyProcess({ cwd: dir.path, upstream: await upstream(marker) });
        const out = proxy.stdout();
        await proxy.write(utf8(INITIALIZE));
        await awaitAnswer(out, 1, signal);
        await proxy.write(utf8(INITIALIZED + ISSUE_LINE));
        // A call after it goes through the same tool path: once answered, the line is behind us.
        await proxy.write(utf8(call(4, "echo", { text: "after" }) + "\n"));
        const refusal = await awaitAnswer(out, 2, signal);
        const echo = await awaitAnswer(out, 4, signal);
        assert("result" in echo, `the session goes on: ${JSON.stringify(echo)}`);
        assertEquals(errorOf(refusal).code, INVALID_REQUEST, JSON.stringify(refusal));
        assertEquals(
          (errorOf(refusal).data as Record<string, Json>).violation,
          "carriage_return",
        );
        await proxy.closeInput();
        assertEquals((await proxy.finished(signal)).code, 0, "the proxy exits 0");
        messages = messagesOut(out);
        assert(
          !proxy.stderr.text().includes("delete_file ran"),
          `the server never ran delete_file:\n${proxy.stderr.text()}`,
        );
      }
      assertEquals(messages.filter((m) => m.id === 3), [], "nothing answers id 3: never sent");
      assertEquals(await exists(marker), false, "the marker file was never written");

      const { records } = await checkedLog(`${dir.path}/audit.jsonl`);
      const invalid = pick(records, { kind: "invalid" });
      assertEquals(invalid.length, 1, "the line is recorded once");
      const r = invalid[0]!;
      assertEquals([r.direction, r.jsonrpc_id, r.error?.code], [
        "client_to_server",
        2,
        INVALID_REQUEST,
      ]);
      assertEquals(dataOf(r).violation, "carriage_return");
      assertEquals(dataOf(r).forwarded, false);
      assertEquals(r.decision === null, !guarded, "decided by the guardrails only when on");
      if (guarded) assertMatch(JSON.stringify(r.decision), /"action":"deny"/);
      const answer = records.find((x) => x.kind === "error" && x.jsonrpc_id === 2);
      assertEquals(answer?.direction, "server_to_client", "the proxy's answer is recorded");
      assertEquals(pick(records, { method: "ping" }), [], "no ping was read or forwarded");
      assertEquals(pick(records, { tool_name: "delete_file" }), [], "no delete_file call either");
    });
  }
}

Deno.test("over the HTTP-to-stdio bridge, the issue's bytes as one body are one ping with a call in its params, for the Python server too", async () => {
  await using dir = await tempDir("smuggle-bridge");
  const signal = deadline(90_000);
  const marker = `${dir.path}/deleted.txt`;
  const proxy = new ProxyProcess({
    cwd: dir.path,
    upstream: await pythonServer(marker),
    flags: ["--transport", "http", "--port", "0"],
  });
  await using _proxy = proxy;
  const find = () => proxy.logLines().find((l) => l.msg === "proxy listening");
  await proxy.stderr.waitFor(() => find() !== undefined, "the bridge to listen", signal);
  const endpoint = `${new URL(String(find()!.address)).origin}/mcp`;
  const post = async (body: string, session?: string) => {
    const headers: Record<string, string> = {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
    };
    if (session !== undefined) headers["mcp-session-id"] = session;
    const res = await fetch(endpoint, { method: "POST", headers, body, signal });
    return { session: res.headers.get("mcp-session-id"), text: await res.text() };
  };
  const init = await post(INITIALIZE);
  const session = init.session!;
  assert(session !== null, "a session");
  await post(INITIALIZED, session);
  // A body is one JSON text: the \r between its tokens is white space to every HTTP reader, and
  // the bridge writes it to the server as one line with spaces there.
  const pong = await post(ISSUE_LINE, session);
  assertMatch(pong.text, /"id":2,"result":\{\}/);
  const echo = await post(call(4, "echo", { text: "after" }), session);
  assertMatch(echo.text, /"id":4,"result"/);
  await fetch(endpoint, { method: "DELETE", headers: { "mcp-session-id": session }, signal })
    .then((r) => r.body?.cancel());
  proxy.child.kill("SIGTERM");
  await proxy.finished(signal);
  assertEquals(await exists(marker), false, "the Python server never ran delete_file");
  const { records } = await checkedLog(`${dir.path}/audit.jsonl`);
  const pings = pick(records, { kind: "request", method: "ping" });
  assertEquals(pings.length, 1, "recorded as the one ping it is");
  assertMatch(JSON.stringify(pings[0]!.params), /"name":"delete_file"/);
  assertEquals(pick(records, { kind: "request", tool_name: "delete_file" }), []);
});

// ----------------------------------------------------------------------------------------------
// Every variant of the class, client to server

/** A variant line: its bytes (line end included), the rule it breaks, the id answered. */
interface Variant {
  what: string;
  bytes: Uint8Array;
  code: string;
  /** The id of the proxy's -32600 answer (null: answered with id null), or none. */
  answer: number | null | "none";
}

const b = (...parts: (string | number[])[]): Uint8Array =>
  concatBytes(parts.map((p) => typeof p === "string" ? utf8(p) : Uint8Array.from(p)));
const CALL = (id: number) => call(id, "delete_file", { path: "/x" });

const CLIENT_VARIANTS: Variant[] = [
  {
    what: "the issue's line",
    bytes: utf8(ISSUE_LINE.replace('"id":2', '"id":11')),
    code: "carriage_return",
    answer: 11,
  },
  {
    what: "a bare CR between two messages",
    bytes: b(rpc({ id: 12, method: "ping" }), "\r", CALL(13), "\n"),
    code: "carriage_return",
    answer: 12,
  },
  { what: "a CR first", bytes: b("\r", CALL(14), "\n"), code: "carriage_return", answer: 14 },
  {
    what: "a CR before the CRLF",
    bytes: b(CALL(15), "\r\r\n"),
    code: "carriage_return",
    answer: 15,
  },
  {
    what: "a CR in a string",
    bytes: b('{"jsonrpc":"2.0","id":16,"method":"a\rb"}\n'),
    code: "carriage_return",
    answer: 16,
  },
  {
    what: "two values on a line",
    bytes: b(rpc({ id: 17, method: "ping" }), CALL(18), "\n"),
    code: "not_json",
    answer: 17,
  },
  {
    what: "white space after the value",
    bytes: b(CALL(19), " \n"),
    code: "trailing_whitespace",
    answer: 19,
  },
  {
    what: "a value split over lines, first line",
    bytes: b('{"jsonrpc":"2.0",\n'),
    code: "not_json",
    answer: null,
  },
  {
    what: "a value split over lines, second line",
    bytes: b('"id":20,"method":"tools/call","params":{"name":"delete_file"}}\n'),
    code: "not_json",
    answer: null,
  },
  {
    what: "junk before the value",
    bytes: b("log: ", CALL(21), "\n"),
    code: "not_json",
    answer: null,
  },
  {
    what: "a UTF-8 BOM",
    bytes: b([0xef, 0xbb, 0xbf], CALL(22), "\n"),
    code: "not_json",
    answer: null,
  },
  { what: "a trailing VT", bytes: b(CALL(23), "\v\n"), code: "not_json", answer: 23 },
  {
    what: "NaN",
    bytes: b(
      '{"jsonrpc":"2.0","id":24,"method":"tools/call","params":{"name":"delete_file","arguments":{"n":NaN}}}\n',
    ),
    code: "not_json",
    answer: 24,
  },
  {
    what: "an invalid UTF-8 byte",
    bytes: b(CALL(25).slice(0, 60), [0xff], CALL(25).slice(60), "\n"),
    code: "invalid_utf8",
    answer: 25,
  },
  {
    what: "a UTF-16 BOM",
    bytes: b([0xff, 0xfe], CALL(26), "\n"),
    code: "invalid_utf8",
    answer: null,
  },
  { what: "a blank line", bytes: b("\n"), code: "blank", answer: "none" },
  { what: "a line of spaces", bytes: b("  \t\n"), code: "blank", answer: "none" },
  {
    what: "no jsonrpc member",
    bytes: b('{"id":27,"method":"tools/call","params":{"name":"delete_file"}}\n'),
    code: "not_jsonrpc",
    answer: 27,
  },
  {
    what: "a batch with a member that is not JSON-RPC",
    bytes: b(`[${rpc({ id: 28, method: "ping" })},{"id":29,"method":"tools/call"}]\n`),
    code: "not_jsonrpc",
    answer: null,
  },
  {
    what: "nesting past proxy.max_json_depth",
    bytes: b(
      '{"jsonrpc":"2.0","id":30,"method":"tools/call","params":{"name":"x","arguments":{"a":',
      "[".repeat(1000),
      "]".repeat(1000),
      "}}}\n",
    ),
    code: "max_json_depth",
    answer: 30,
  },
];
/** Last, since nothing can follow it: a line the input ends inside. */
const UNTERMINATED: Variant = {
  what: "a last line without \\n",
  bytes: b(CALL(31)),
  code: "unterminated",
  answer: 31,
};

for (const { mode, config, guarded } of MODES) {
  Deno.test(`with ${mode}, every framing variant from the client is refused: none reaches the upstream, each recorded and answered where it can be`, async () => {
    await using dir = await tempDir("framing-client");
    const signal = deadline(90_000);
    await writeConfig(dir.path, config);
    const pings: string[] = [];
    let messages: Message[];
    {
      await using proxy = new ProxyProcess({
        cwd: dir.path,
        upstream: fixture("raw_upstream.ts", "--in", `${dir.path}/in.bin`),
      });
      const out = proxy.stdout();
      for (const [i, v] of CLIENT_VARIANTS.entries()) {
        pings.push(ping(100 + i));
        await proxy.write(concatBytes([v.bytes, utf8(pings.at(-1)!)]));
        // The pong comes back through the upstream: by then the variant has been dealt with.
        await awaitAnswer(out, 100 + i, signal);
      }
      await proxy.write(UNTERMINATED.bytes);
      await proxy.closeInput();
      await awaitAnswer(out, 31, signal);
      assertEquals((await proxy.finished(signal)).code, 0);
      messages = messagesOut(out);
    }
    assertEquals(
      decoder.decode(await Deno.readFile(`${dir.path}/in.bin`)),
      pings.join(""),
      "the upstream received the pings and nothing else",
    );
    const refusals = messages.filter((m) => errorOf(m).code === INVALID_REQUEST);
    const expected = [...CLIENT_VARIANTS, UNTERMINATED].filter((v) => v.answer !== "none");
    assertEquals(refusals.map((m) => m.id), expected.map((v) => v.answer));
    assertEquals(
      refusals.map((m) => (errorOf(m).data as Record<string, Json>).violation),
      expected.map((v) => v.code),
    );

    const { records } = await checkedLog(`${dir.path}/audit.jsonl`);
    const invalid = pick(records, { kind: "invalid", direction: "client_to_server" });
    assertEquals(
      invalid.map((r) => [dataOf(r).violation, dataOf(r).forwarded]),
      [...CLIENT_VARIANTS, UNTERMINATED].map((v) => [v.code, false]),
      "one invalid record per variant, in order",
    );
    for (const r of invalid) {
      assertEquals(r.error?.code, INVALID_REQUEST);
      assertEquals(
        (r.decision as { action?: string } | null)?.action,
        guarded ? "deny" : undefined,
        `decision of seq ${r.seq}`,
      );
    }
    assertEquals(pick(records, { kind: "request", method: "tools/call" }), [], "no call was read");
  });
}

// ----------------------------------------------------------------------------------------------
// Every variant of the class, server to client

/** A server's answer to request `v/N`: its bytes with `$ID` for the id, and the rule it breaks. */
const SERVER_VARIANTS: { what: string; reply: Uint8Array; code: string; found: boolean }[] = [
  {
    what: "a bare CR around a smuggled notification",
    reply: b(
      '{"jsonrpc":"2.0","id":$ID,"result":{"a":\r{"jsonrpc":"2.0","method":"notifications/evil"}\r}}\n',
    ),
    code: "carriage_return",
    found: true,
  },
  {
    what: "two answers on one line",
    reply: b(
      '{"jsonrpc":"2.0","id":$ID,"result":{}}{"jsonrpc":"2.0","id":$ID,"result":{"evil":1}}\n',
    ),
    code: "not_json",
    found: true,
  },
  {
    what: "white space after the answer",
    reply: b('{"jsonrpc":"2.0","id":$ID,"result":{}} \n'),
    code: "trailing_whitespace",
    found: true,
  },
  {
    what: "an invalid UTF-8 byte",
    reply: b('{"jsonrpc":"2.0","id":$ID,"result":{"text":"', [0xff], '"}}\n'),
    code: "invalid_utf8",
    found: true,
  },
  {
    what: "NaN",
    reply: b('{"jsonrpc":"2.0","id":$ID,"result":{"n":NaN}}\n'),
    code: "not_json",
    found: true,
  },
  {
    what: "no jsonrpc member",
    reply: b('{"id":$ID,"result":{}}\n'),
    code: "not_jsonrpc",
    found: true,
  },
  {
    what: "a UTF-8 BOM",
    reply: b([0xef, 0xbb, 0xbf], '{"jsonrpc":"2.0","id":$ID,"result":{}}\n'),
    code: "not_json",
    found: false,
  },
  { what: "a blank line", reply: b("\n"), code: "blank", found: false },
  {
    what: "nesting past proxy.max_json_depth",
    reply: b(
      '{"jsonrpc":"2.0","id":$ID,"result":{"a":',
      "[".repeat(5000),
      "]".repeat(5000),
      "}}\n",
    ),
    code: "max_json_depth",
    found: true,
  },
];

/** Bytes as the raw upstream's replies file holds them: one character each. */
function byteText(bytes: Uint8Array): string {
  let out = "";
  for (const byte of bytes) out += String.fromCharCode(byte);
  return out;
}

for (const { mode, config } of MODES) {
  Deno.test(`with ${mode}, every framing variant from the server is refused: none reaches the client, each recorded, the waiting request answered`, async () => {
    await using dir = await tempDir("framing-server");
    const signal = deadline(90_000);
    await writeConfig(dir.path, config);
    const replies: Record<string, string> = {};
    SERVER_VARIANTS.forEach((v, i) => (replies[`v/${i}`] = byteText(v.reply)));
    replies["v/last"] = '{"jsonrpc":"2.0","id":$ID,"result":{}}'; // no \n: the server's last bytes
    await Deno.writeTextFile(`${dir.path}/replies.json`, JSON.stringify(replies));
    let messages: Message[];
    let clientBytes: Uint8Array;
    {
      await using proxy = new ProxyProcess({
        cwd: dir.path,
        upstream: fixture(
          "raw_upstream.ts",
          "--in",
          `${dir.path}/in.bin`,
          "--replies",
          `${dir.path}/replies.json`,
        ),
      });
      const out = proxy.stdout();
      for (const i of SERVER_VARIANTS.keys()) {
        await proxy.write(utf8(rpc({ id: i, method: `v/${i}` }) + "\n" + ping(100 + i)));
        await awaitAnswer(out, 100 + i, signal);
      }
      await proxy.write(utf8(rpc({ id: 99, method: "v/last" }) + "\n"));
      await proxy.closeInput();
      assertEquals((await proxy.finished(signal)).code, 0);
      messages = messagesOut(out);
      clientBytes = out.bytes();
    }
    assert(!decoder.decode(clientBytes).includes("evil"), "nothing smuggled reached the client");
    for (const [i, v] of SERVER_VARIANTS.entries()) {
      const answers = messages.filter(isAnswerTo(i));
      assertEquals(answers.length, 1, `one answer to ${i} (${v.what})`);
      assertEquals(
        errorOf(answers[0]!).code,
        v.found ? INVALID_REQUEST : UPSTREAM_GONE,
        `${v.what}: ${JSON.stringify(answers[0])}`,
      );
    }
    assertEquals(errorOf(messages.find(isAnswerTo(99))!).code, INVALID_REQUEST, "unterminated");

    const { records } = await checkedLog(`${dir.path}/audit.jsonl`);
    const invalid = pick(records, { kind: "invalid", direction: "server_to_client" });
    assertEquals(
      invalid.map((r) => dataOf(r).violation),
      [...SERVER_VARIANTS.map((v) => v.code), "unterminated"],
      "one invalid record per variant, in order",
    );
    for (const r of invalid) assertEquals(r.decision, null, "the guardrails judge no server line");
  });
}
