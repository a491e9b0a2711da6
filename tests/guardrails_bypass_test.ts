/**
 * Ways around the guardrails, each closed, end to end over real processes: a message the proxy
 * cannot read (bad UTF-8, a gzip or UTF-16 body), one it could read two ways (member names that
 * differ only in case), a rate bucket picked by what the client merely claims, a reload from an
 * empty or missing file, and a server answering `tools/list` with its id as text. Each test proves
 * from outside the proxy what reached the server (the server's own answer, a file it wrote, the
 * bytes a recording upstream read, the requests an in-process upstream got), so each can fail.
 *
 * @module
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";
import {
  answerTo,
  assert,
  assertChain,
  assertEquals,
  assertMatch,
  type AuditLogFile,
  type AuditRecord,
  type Collector,
  concatBytes,
  deadline,
  EVERYTHING,
  filesystemServer,
  idNumber,
  type Json,
  pick,
  ProxyProcess,
  readLog,
  recordingUpstream,
  rewriteInPlace,
  sha256Hex,
  tempDir,
  utf8,
  verifyLog,
} from "./helpers.ts";
import { rpc, ScriptedUpstream, u8, withProxy } from "./http_helpers.ts";

const INVALID_REQUEST = -32600;
const POLICY_DENIED = -32030;
const RATE_LIMITED = -32029;
const decoder = new TextDecoder();

// ----------------------------------------------------------------------------------------------
// Helpers

/** Writes `config.yaml` (JSON is YAML) into the proxy's working directory. */
async function writeConfig(dir: string, config: Record<string, unknown>): Promise<void> {
  await Deno.writeTextFile(`${dir}/config.yaml`, JSON.stringify(config, null, 2) + "\n");
}

function asObject(value: Json | undefined, what: string): { [key: string]: Json } {
  assert(
    typeof value === "object" && value !== null && !Array.isArray(value),
    `${what} is an object: ${JSON.stringify(value)}`,
  );
  return value;
}

/** Reads the log, checks the chain and signatures, and runs `mcp-audit verify` on it. */
async function checkedLog(path: string): Promise<AuditLogFile> {
  const file = await readLog(path);
  await assertChain(file);
  const verified = await verifyLog(path);
  assertEquals(verified.code, 0, `verify exits 0:\n${verified.stdout}${verified.stderr}`);
  return file;
}

/** Every JSON-RPC message the proxy wrote to its stdout so far (batches flattened). */
function messagesOut(out: Collector): Record<string, Json>[] {
  return out.lines.flatMap((l) => {
    const v: unknown = JSON.parse(l);
    return (Array.isArray(v) ? v : [v]) as Record<string, Json>[];
  });
}

/** Waits for the proxy's stdout to carry a message passing `test`, and returns it. */
async function awaitMessage(
  out: Collector,
  test: (m: Record<string, Json>) => boolean,
  what: string,
  signal: AbortSignal,
): Promise<Record<string, Json>> {
  await out.waitFor(() => messagesOut(out).some(test), what, signal);
  return messagesOut(out).find(test)!;
}

const withId = (id: Json) => (m: Record<string, Json>): boolean => m.id === id && !("method" in m);

const errorCode = (m: Record<string, Json>): Json | undefined =>
  typeof m.error === "object" && m.error !== null && !Array.isArray(m.error)
    ? m.error.code
    : undefined;

const INITIALIZE = rpc({
  id: 1,
  method: "initialize",
  params: {
    protocolVersion: "2025-06-18",
    capabilities: {},
    clientInfo: { name: "bypass-e2e", version: "1.0.0" },
  },
});
const INITIALIZED = rpc({ method: "notifications/initialized" });

/** Initializes the MCP session by hand over the proxy's stdio. */
async function handshake(proxy: ProxyProcess, out: Collector, signal: AbortSignal): Promise<void> {
  await proxy.write(utf8(INITIALIZE + "\n"));
  await awaitMessage(out, withId(1), "the initialize answer", signal);
  await proxy.write(utf8(INITIALIZED + "\n"));
}

const exists = (path: string): Promise<boolean> => Deno.stat(path).then(() => true, () => false);

// ----------------------------------------------------------------------------------------------
// 1. Bad UTF-8 over stdio

/**
 * A `tools/call` of `write_file` whose `params._meta` holds one byte that is not UTF-8 (0xff).
 * Node reads the byte as U+FFFD and the line as a valid call; the proxy cannot read it at all.
 */
function badUtf8WriteLine(path: string): Uint8Array {
  const head = `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"_meta":{"note":"a`;
  const tail = `b"},"name":"write_file","arguments":{"path":${
    JSON.stringify(path)
  },"content":"written past the policy"}}}`;
  return concatBytes([utf8(head), Uint8Array.of(0xff), utf8(tail)]);
}

Deno.test("with a policy denying write_file, a write_file call holding one invalid UTF-8 byte in params._meta is answered -32600 by the proxy, recorded invalid and denied, and server-filesystem never writes the file", async () => {
  await using dir = await tempDir("bypass-utf8");
  const signal = deadline(60_000);
  const data = `${dir.path}/data`;
  await Deno.mkdir(data);
  const target = `${data}/pwned.txt`;
  const line = badUtf8WriteLine(target);
  await writeConfig(dir.path, {
    policy: { enabled: true, rules: [{ action: "deny", tool_name: "write_file" }] },
  });
  let messages: Record<string, Json>[] = [];
  let refusal: Record<string, Json> | undefined;
  {
    await using proxy = new ProxyProcess({ cwd: dir.path, upstream: filesystemServer(data) });
    const out = proxy.stdout();
    await handshake(proxy, out, signal);
    // A ping after it, to show the session goes on; each answer is awaited for itself, as the
    // refusal comes from the proxy and the pong from the server.
    await proxy.write(concatBytes([line, utf8("\n" + rpc({ id: 8, method: "ping" }) + "\n")]));
    refusal = await awaitMessage(
      out,
      (m) => errorCode(m) === INVALID_REQUEST,
      "the proxy's -32600",
      signal,
    );
    await awaitMessage(out, withId(8), "the pong", signal);
    // The server's stdout ends after the proxy's; an answer from it to id 7 would be among these.
    await proxy.closeInput();
    assertEquals((await proxy.finished(signal)).code, 0);
    messages = messagesOut(out);
  }
  assert(refusal !== undefined, `a -32600 answer: ${JSON.stringify(messages)}`);
  // The id is read from the line's bytes, so the client hears the answer it waits for.
  assertEquals(refusal.id, 7, "the refusal answers the request's id");
  const error = asObject(refusal.error, "the refusal's error");
  assertMatch(String(asObject(error.data, "error.data").reason), /invalid UTF-8/);
  assertEquals(
    messages.filter((m) => (m.id === 7 || m.id === null) && errorCode(m) !== INVALID_REQUEST),
    [],
    "no answer from the server to the write",
  );
  assertEquals(await exists(target), false, "server-filesystem did not write the file");

  const { records } = await checkedLog(`${dir.path}/audit.jsonl`);
  const invalid = pick(records, { kind: "invalid", direction: "client_to_server" });
  assertEquals(invalid.length, 1, "the line is recorded once, as invalid");
  assertEquals(invalid[0]!.wire_sha256, await sha256Hex(line), "the record hashes the bytes sent");
  const decision = asObject(invalid[0]!.decision, "the invalid record's decision");
  assertEquals(decision.action, "deny");
  assertMatch(String(decision.reason), /invalid UTF-8/);
  const answers = records.filter((r) =>
    r.kind === "error" && r.direction === "server_to_client" && r.seq > invalid[0]!.seq
  );
  assertEquals(answers.map((r) => r.error?.code), [INVALID_REQUEST], "the proxy's answer");
  assertEquals(answers[0]!.jsonrpc_id, refusal.id);
  assertEquals(pick(records, { kind: "request", method: "tools/call" }), [], "no call was read");
});

Deno.test("without a policy or rate limit the same invalid-UTF-8 write_file line is refused all the same, recorded invalid and not forwarded, and server-filesystem never writes the file", async () => {
  await using dir = await tempDir("bypass-utf8-control");
  const signal = deadline(60_000);
  const data = `${dir.path}/data`;
  await Deno.mkdir(data);
  const target = `${data}/pwned.txt`;
  const line = badUtf8WriteLine(target);
  await writeConfig(dir.path, {
    policy: { enabled: false },
    middleware: { rate_limit: { enabled: false } },
  });
  let messages: Record<string, Json>[] = [];
  let refusal: Record<string, Json>;
  {
    await using proxy = new ProxyProcess({ cwd: dir.path, upstream: filesystemServer(data) });
    const out = proxy.stdout();
    await handshake(proxy, out, signal);
    await proxy.write(concatBytes([line, utf8("\n" + rpc({ id: 8, method: "ping" }) + "\n")]));
    refusal = await awaitMessage(out, withId(7), "the answer to id 7", signal);
    await awaitMessage(out, withId(8), "the pong", signal);
    await proxy.closeInput();
    assertEquals((await proxy.finished(signal)).code, 0);
    messages = messagesOut(out);
  }
  // Bytes that SDKs read differently are refused whatever the guardrails: invalid lines are no
  // longer forwarded with the guardrails off.
  assertEquals(errorCode(refusal), INVALID_REQUEST, `refused: ${JSON.stringify(refusal)}`);
  assertEquals(messages.filter((m) => m.id === 7).length, 1, "one answer to id 7, the proxy's");
  assertEquals(await exists(target), false, "server-filesystem did not write the file");
  const { records } = await checkedLog(`${dir.path}/audit.jsonl`);
  const invalid = pick(records, { kind: "invalid", direction: "client_to_server" });
  assertEquals(
    invalid.map((r) => asObject(r.error?.data, "the invalid record's error.data").forwarded),
    [false],
    "recorded once, invalid and not forwarded",
  );
  assertEquals(pick(records, { kind: "request", method: "tools/call" }), [], "no call was read");
});

// ----------------------------------------------------------------------------------------------
// 2. Member names that differ only in case

Deno.test("with a policy denying write_file, a tools/call naming read_text_file as name and write_file as Name is answered -32600 and never reaches the server, while the same call without Name does", async () => {
  await using dir = await tempDir("bypass-case");
  const signal = deadline(60_000);
  await writeConfig(dir.path, {
    policy: { enabled: true, rules: [{ action: "deny", tool_name: "write_file" }] },
  });
  const args = `"arguments":{"path":"/tmp/notes.txt","content":"x"}`;
  const twoNames =
    `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"read_text_file","Name":"write_file",${args}}}`;
  // The same at depth: a path an allowed tool reads, and another a peer folding case would read.
  const deepNames =
    `{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"read_text_file","arguments":{"path":"/tmp/notes.txt","PATH":"/etc/shadow"}}}`;
  const plain =
    `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"read_text_file",${args}}}`;
  const ping = rpc({ id: 10, method: "ping" });
  const refusals: Record<string, Json>[] = [];
  {
    await using proxy = new ProxyProcess({ cwd: dir.path, upstream: recordingUpstream(dir.path) });
    const out = proxy.stdout();
    // The control is forwarded (the recorder does not answer tools/call). The ping after it is
    // answered, and stdio keeps order: by the pong the server has read all it will read, and the
    // proxy has answered what it refused, as it read it.
    await proxy.write(utf8([twoNames, deepNames, plain, ping].join("\n") + "\n"));
    await awaitMessage(out, withId(10), "the pong", signal);
    for (const id of [7, 8]) {
      const refusal = messagesOut(out).find(withId(id));
      assert(refusal !== undefined, `the proxy answered id ${id}: ${out.text()}`);
      refusals.push(refusal);
    }
    await proxy.closeInput();
    assertEquals((await proxy.finished(signal)).code, 0);
  }
  assertEquals(
    await Deno.readTextFile(`${dir.path}/in.bin`),
    plain + "\n" + ping + "\n",
    "the server read the plain call and the ping, and neither ambiguous call",
  );
  for (const [i, refusal] of refusals.entries()) {
    const error = asObject(refusal.error, `refusal ${i}`);
    assertEquals(error.code, INVALID_REQUEST, JSON.stringify(refusal));
    assertMatch(String(asObject(error.data, "error.data").reason), /differ only in case/);
  }
  assertMatch(
    String(asObject(asObject(refusals[0]!.error, "error").data, "data").reason),
    /\(name, Name\)/,
  );

  const { records } = await checkedLog(`${dir.path}/audit.jsonl`);
  const calls = pick(records, { kind: "request", method: "tools/call" });
  assertEquals(calls.map((r) => r.jsonrpc_id), [7, 8, 9]);
  for (const call of calls.slice(0, 2)) {
    const decision = asObject(call.decision, `decision of id ${call.jsonrpc_id}`);
    assertEquals([decision.action, decision.rule], ["deny", null]);
    assertMatch(String(decision.reason), /differ only in case/);
    const answer = answerTo(records, call);
    assertEquals([answer.kind, answer.error?.code], ["error", INVALID_REQUEST]);
  }
  assertEquals(asObject(calls[2]!.decision, "the plain call's decision").action, "allow");
});

// ----------------------------------------------------------------------------------------------
// 3. Bodies the HTTP proxy cannot read

/** gzip of `bytes`. */
async function gzip(bytes: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
  const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** UTF-16LE of `text`, without a byte order mark. */
function utf16le(text: string): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(text.length * 2);
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    out[2 * i] = unit & 0xff;
    out[2 * i + 1] = unit >> 8;
  }
  return out;
}

/** An upstream answering every request with a result, and every notification with 202. */
function answeringUpstream(): ScriptedUpstream {
  return new ScriptedUpstream(({ request }) => {
    if (request.method !== "POST") return new Response(null, { status: 405 });
    let message;
    try {
      message = JSON.parse(decoder.decode(request.body));
    } catch {
      return new Response("not JSON\n", { status: 400 });
    }
    if (message.id === undefined) return new Response(null, { status: 202 });
    const result = { content: [{ type: "text", text: `done: ${message.params?.name}` }] };
    return new Response(JSON.stringify({ jsonrpc: "2.0", id: message.id, result }), {
      status: 200,
      headers: { "content-type": "application/json" },
    });
  });
}

Deno.test("an HTTP proxy with a policy answers a gzip-encoded and a UTF-16LE tools/call of a denied tool with HTTP 200 and -32600, and the upstream receives neither", async () => {
  await using upstream = answeringUpstream();
  const env = {
    MCP_AUDIT_POLICY_ENABLED: "true",
    MCP_AUDIT_POLICY_RULES: JSON.stringify([{ action: "deny", tool_name: "delete_everything" }]),
  };
  const call = (id: number, name: string) =>
    rpc({ id, method: "tools/call", params: { name, arguments: { really: true } } });
  const cases = [
    {
      label: "gzip",
      body: await gzip(u8(call(1, "delete_everything"))),
      headers: { "content-type": "application/json", "content-encoding": "gzip" },
    },
    {
      label: "UTF-16LE",
      body: utf16le(call(2, "delete_everything")),
      headers: { "content-type": "application/json; charset=utf-16le" },
    },
  ];
  const control = call(3, "echo");
  const replies: { label: string; status: number; type: string | null; body: string }[] = [];
  const upstreamGot: number[] = [];
  let controlReply = "";
  const run = await withProxy("bypass-http-encoded", upstream.url, env, async (proxy, client) => {
    for (const c of cases) {
      const res = await fetch(proxy.endpoint, {
        method: "POST",
        client,
        headers: { ...c.headers, accept: "application/json, text/event-stream" },
        body: c.body,
      });
      replies.push({
        label: c.label,
        status: res.status,
        type: res.headers.get("content-type"),
        body: await res.text(),
      });
      upstreamGot.push(upstream.requests.length);
    }
    // The control: a plain JSON call of an allowed tool does reach this upstream.
    const res = await fetch(proxy.endpoint, {
      method: "POST",
      client,
      headers: { "content-type": "application/json", accept: "application/json" },
      body: control,
    });
    controlReply = await res.text();
  });
  assertEquals(upstreamGot, [0, 0], "the upstream received neither unreadable body");
  assertEquals(upstream.requests.map((r) => decoder.decode(r.body)), [control]);
  assertEquals(JSON.parse(controlReply).result.content[0].text, "done: echo");
  for (const reply of replies) {
    assertEquals([reply.status, reply.type], [200, "application/json"], reply.label);
    const answer = JSON.parse(reply.body);
    assertEquals(answer.jsonrpc, "2.0", reply.label);
    assertEquals(answer.error.code, INVALID_REQUEST, `${reply.label}: ${reply.body}`);
    assertMatch(String(answer.error.data?.reason), /refused unread/, reply.label);
  }

  const invalid = pick(run.records, { kind: "invalid", direction: "client_to_server" });
  assertEquals(
    invalid.map((r) => r.wire_sha256),
    await Promise.all(cases.map((c) => sha256Hex(c.body))),
    "each body is recorded as invalid, hashing the bytes sent",
  );
  for (const r of invalid) {
    assertEquals(asObject(r.decision, `decision of seq ${r.seq}`).action, "deny");
  }
  assertEquals(
    pick(run.records, { kind: "error", direction: "server_to_client" }).map((r) => r.error?.code),
    [INVALID_REQUEST, INVALID_REQUEST],
  );
});

// ----------------------------------------------------------------------------------------------
// 4. Rate buckets picked by what a client claims

const ECHO_2_PER_MINUTE = {
  MCP_AUDIT_MIDDLEWARE_RATE_LIMIT_TOOLS: JSON.stringify({ echo: { requests_per_minute: 2 } }),
};

/**
 * Five echo calls, each claiming a new identity in its own way; none sends a session the
 * server named. The upstream is in-process: server-everything answers a call outside a session it
 * initialized with HTTP 400, so a call getting through could not be told from one refused there.
 */
const CLAIMS: {
  label: string;
  request: (endpoint: string, i: number) => { url: string; headers: Record<string, string> };
  meta: (i: number) => Record<string, unknown>;
}[] = [
  {
    label: "a new _meta.clientInfo name on each call",
    request: (endpoint) => ({ url: endpoint, headers: {} }),
    meta: (i) => ({ _meta: { clientInfo: { name: `client-${i}`, version: "1.0.0" } } }),
  },
  {
    label: "a random ?sessionId= on each call",
    request: (endpoint) => ({ url: `${endpoint}?sessionId=${crypto.randomUUID()}`, headers: {} }),
    meta: () => ({}),
  },
  {
    label: "a random Mcp-Session-Id the server never issued on each call",
    request: (endpoint) => ({
      url: endpoint,
      headers: { "mcp-session-id": crypto.randomUUID() },
    }),
    meta: () => ({}),
  },
];

for (const claim of CLAIMS) {
  Deno.test(`at 2 echo calls per minute an HTTP client claiming ${claim.label} gets 2 of 5 calls through and -32029 for the rest`, async () => {
    await using upstream = answeringUpstream();
    const outcomes: Json[] = [];
    const run = await withProxy(
      "bypass-rate",
      upstream.url,
      ECHO_2_PER_MINUTE,
      async (proxy, c) => {
        for (let i = 1; i <= 5; i++) {
          const { url, headers } = claim.request(proxy.endpoint, i);
          const res = await fetch(url, {
            method: "POST",
            client: c,
            headers: {
              ...headers,
              "content-type": "application/json",
              accept: "application/json, text/event-stream",
            },
            body: rpc({
              id: i,
              method: "tools/call",
              params: { name: "echo", arguments: { message: `call ${i}` }, ...claim.meta(i) },
            }),
          });
          const text = await res.text();
          assertEquals(res.status, 200, `call ${i}: ${text}`);
          const answer = JSON.parse(text);
          outcomes.push("result" in answer ? "ok" : answer.error.code);
        }
      },
    );
    assertEquals(outcomes, ["ok", "ok", RATE_LIMITED, RATE_LIMITED, RATE_LIMITED]);
    assertEquals(upstream.requests.length, 2, "only the two calls within budget were forwarded");
    const calls = pick(run.records, { kind: "request", method: "tools/call", tool_name: "echo" });
    assertEquals(
      calls.map((r) => r.decision === null ? null : asObject(r.decision, "decision").action),
      [null, null, "rate_limited", "rate_limited", "rate_limited"],
    );
  });
}

// ----------------------------------------------------------------------------------------------
// 5. Reload from an empty or missing file

const DENY_SUM = `policy:
  enabled: true
  default_action: allow
  rules:
    - action: deny
      tool_name: get-sum
      reason: "sums are switched off"
`;
const NO_RULES = `policy:
  enabled: true
  default_action: allow
  rules: []
`;

/** The code of the JSON-RPC error a get-sum call gets, or "allowed" with the sum's text. */
async function getSum(client: Client): Promise<number | string> {
  try {
    const result = CallToolResultSchema.parse(
      await client.callTool({ name: "get-sum", arguments: { a: 1, b: 2 } }),
    );
    const first = result.content[0];
    return first !== undefined && first.type === "text" ? `allowed: ${first.text}` : "allowed";
  } catch (e) {
    if (e instanceof Error && "code" in e && typeof e.code === "number") return e.code;
    throw e;
  }
}

Deno.test("a --config file truncated to empty, then holding only a comment, then deleted, is a rejected reload each time and get-sum stays denied; a valid file without the rule then allows it", async () => {
  await using dir = await tempDir("bypass-reload");
  const signal = deadline(120_000);
  const configPath = `${dir.path}/etc/mcp-audit.yaml`;
  await Deno.mkdir(`${dir.path}/etc`);
  await Deno.writeTextFile(configPath, DENY_SUM);
  const outcomes: (number | string)[] = [];
  const errors: string[] = [];
  {
    await using proxy = new ProxyProcess({
      cwd: dir.path,
      upstream: EVERYTHING,
      flags: ["--config", configPath],
    });
    const client = new Client({ name: "bypass-reload", version: "1.0.0" });
    await client.connect(proxy.transport());
    // Every reload attempt ends in one of these lines; the next one after `count` of them.
    const ends = () =>
      proxy.logLines().filter((l) =>
        l.msg === "configuration reloaded" ||
        (typeof l.msg === "string" && l.msg.startsWith("configuration reload rejected"))
      );
    const nextEnd = async (count: number, what: string) => {
      await proxy.stderr.waitFor(() => ends().length > count, what, signal);
      return ends()[count]!;
    };
    const rejection = async (count: number, what: string) => {
      const line = await nextEnd(count, what);
      assert(line.msg !== "configuration reloaded", `${what}: ${JSON.stringify(line)}`);
      errors.push(String(line.error));
    };
    outcomes.push(await getSum(client));

    await Deno.writeTextFile(configPath, "");
    await rejection(0, "the reload of the empty file is rejected");
    outcomes.push(await getSum(client));

    // An editor's first write of a new version: a file that sets nothing at all.
    rewriteInPlace(configPath, "# being edited\n");
    await rejection(ends().length, "the reload of a file that sets no keys is rejected");
    outcomes.push(await getSum(client));

    await Deno.remove(configPath);
    await rejection(ends().length, "the reload of the deleted file is rejected");
    outcomes.push(await getSum(client));

    // Seen mid-write, the new file may be rejected once more before it applies.
    await Deno.writeTextFile(configPath, NO_RULES);
    await proxy.stderr.waitFor(
      () => ends().some((l) => l.msg === "configuration reloaded"),
      "the valid file to apply",
      signal,
    );
    const applied = ends().find((l) => l.msg === "configuration reloaded")!;
    assertEquals([applied.trigger, applied.outcome], ["file", "applied"]);
    outcomes.push(await getSum(client));

    await client.close();
    assertEquals((await proxy.finished(signal)).code, 0);
  }
  assertEquals(
    outcomes,
    [
      POLICY_DENIED,
      POLICY_DENIED,
      POLICY_DENIED,
      POLICY_DENIED,
      "allowed: The sum of 1 and 2 is 3.",
    ],
    "denied at start, after the truncation, the comment and the deletion; allowed by the valid file",
  );
  assert(errors[0]!.includes(configPath), `the error names the file: ${errors[0]}`);
  assertMatch(errors[0]!, /missing or empty/);
  assertMatch(errors[1]!, /sets no keys/);
  assert(errors[2]!.includes(configPath), `the error names the file: ${errors[2]}`);

  const { records } = await checkedLog(`${dir.path}/audit.jsonl`);
  const start = asObject(records[0]!.params, "audit/start params");
  const reloads = pick(records, { kind: "event", method: "audit/reload" }).map((r) =>
    asObject(r.params, `audit/reload seq ${r.seq}`)
  );
  const rejected = reloads.filter((e) => e.outcome === "rejected");
  assert(rejected.length >= 3, `the truncation, comment and deletion are recorded: ${rejected}`);
  assertEquals(rejected[0]!.trigger, "file");
  assertEquals(rejected[0]!.error, errors[0]!, "the event carries the error of the log line");
  for (const event of rejected) {
    assertEquals(event.policy_digest, start.policy_digest, "the policy in force stayed the same");
  }
  assertEquals(reloads.at(-1)!.outcome, "applied");
  const sums = pick(records, { kind: "request", method: "tools/call", tool_name: "get-sum" });
  assertEquals(
    sums.map((r) => asObject(r.decision, "decision").action),
    ["deny", "deny", "deny", "deny", "allow"],
  );
});

// ----------------------------------------------------------------------------------------------
// 6. A tools/list answer whose id is the request's number as text

/** A stdio MCP server answering `tools/list` with its id as a string ("2" for 2). */
const STRING_ID_SERVER = `
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const tools = [
  { name: "safe", description: "Harmless", inputSchema: { type: "object", properties: {} } },
  { name: "danger", description: "Deletes things", inputSchema: { type: "object", properties: {} } },
];
async function send(message) {
  const bytes = encoder.encode(JSON.stringify(message) + "\\n");
  let at = 0;
  while (at < bytes.length) at += await Deno.stdout.write(bytes.subarray(at));
}
let pending = "";
for await (const chunk of Deno.stdin.readable) {
  pending += decoder.decode(chunk, { stream: true });
  let nl;
  while ((nl = pending.indexOf("\\n")) !== -1) {
    const line = pending.slice(0, nl);
    pending = pending.slice(nl + 1);
    if (line.trim() === "") continue;
    const m = JSON.parse(line);
    if (m.id === undefined || m.method === undefined) continue;
    if (m.method === "initialize") {
      await send({ jsonrpc: "2.0", id: m.id, result: {
        protocolVersion: m.params.protocolVersion,
        capabilities: { tools: {} },
        serverInfo: { name: "string-id-server", version: "1.0.0" },
      } });
    } else if (m.method === "tools/list") {
      // The id as text ("2"), or as number text that a double reads as the request's number.
      const id = Deno.args[0] === "string" ? JSON.stringify(String(m.id)) : String(m.id) + Deno.args[0];
      const line = '{"jsonrpc":"2.0","id":' + id + ',"result":' + JSON.stringify({ tools }) + "}\\n";
      const bytes = encoder.encode(line);
      let at = 0;
      while (at < bytes.length) at += await Deno.stdout.write(bytes.subarray(at));
    } else {
      await send({ jsonrpc: "2.0", id: m.id, result: {} });
    }
  }
}
`;

for (
  const [spelling, arg] of <[string, string][]> [
    ['"2"', "string"],
    ["2.0000000000000000000001", ".0000000000000000000001"],
    ["2.0", ".0"],
  ]
) {
  Deno.test(`a server answering tools/list with id ${spelling} for request 2 still has the denied tool filtered out, and the record names tools/list and the filter`, async () => {
    await using dir = await tempDir("bypass-string-id");
    const signal = deadline(60_000);
    const server = `${dir.path}/string_id_server.js`;
    await Deno.writeTextFile(server, STRING_ID_SERVER);
    await writeConfig(dir.path, {
      policy: { enabled: true, rules: [{ action: "deny", tool_name: "danger" }] },
    });
    const list = rpc({ id: 2, method: "tools/list" });
    let answer: Record<string, Json> | undefined;
    let answerLine = "";
    {
      await using proxy = new ProxyProcess({
        cwd: dir.path,
        upstream: ["deno", "run", "-A", server, arg],
      });
      const out = proxy.stdout();
      await handshake(proxy, out, signal);
      await proxy.write(utf8(list + "\n"));
      // The SDK clients look answers up by Number(id): each spelling is the answer to request 2.
      const isAnswer = (m: Record<string, Json>) => m.result !== undefined && Number(m.id) === 2;
      answer = await awaitMessage(out, isAnswer, `the tools/list answer (id ${spelling})`, signal);
      answerLine = out.lines.find((l) => isAnswer(JSON.parse(l)))!;
      await proxy.closeInput();
      assertEquals((await proxy.finished(signal)).code, 0);
    }
    const tools = asObject(answer.result, "the tools/list result").tools;
    assert(Array.isArray(tools), `a tools array: ${JSON.stringify(answer)}`);
    assertEquals(
      tools.map((t) => asObject(t, "tool").name),
      ["safe"],
      "the client got the listing without the denied tool",
    );

    const { records } = await checkedLog(`${dir.path}/audit.jsonl`);
    const responses = pick(records, { kind: "response", direction: "server_to_client" }).filter((
      r,
    ) => idNumber(r.jsonrpc_id) === 2);
    assertEquals(responses.length, 1, "one record of the listing");
    const record: AuditRecord = responses[0]!;
    assertEquals(record.method, "tools/list", "the answer is correlated with its request");
    const decision = asObject(record.decision, "the listing's decision");
    assertEquals(decision.action, "filter");
    assertEquals(decision.hidden, [{ name: "danger", reason: "refused by policy" }]);
    assertEquals(
      record.wire_sha256,
      await sha256Hex(answerLine),
      "the record hashes what was sent",
    );
    assert(typeof record.duration_ms === "number", "the answer is timed against its request");
  });
}
