/**
 * The nesting gate end to end: a message nested deeper than `proxy.max_json_depth` (default 1000)
 * from either side, over stdio, the HTTP proxy and both bridges, is answered `-32600` with
 * `data.max_json_depth` where its id can be found, recorded `invalid`, never forwarded, and the
 * session goes on; a message exactly that deep crosses byte for byte. Real processes: the proxy,
 * a raw stdio upstream, an HTTP upstream in this process; every log must pass `mcp-audit verify`.
 *
 * @module
 */
import {
  assert,
  assertEquals,
  auditEnv,
  type AuditRecord,
  Collector,
  deadline,
  DENO_JSON,
  fixture,
  type Json,
  MAIN,
  pick,
  ProxyProcess,
  readLog,
  SECRET,
  tempDir,
  utf8,
  verifyLog,
} from "./helpers.ts";
import { cleanEnv, parseSse, ScriptedUpstream, withProxy } from "./http_helpers.ts";

const INVALID_REQUEST = -32600;
const LIMIT = 1000;
const decoder = new TextDecoder();

const rpc = (m: Record<string, Json>): string => JSON.stringify({ jsonrpc: "2.0", ...m });
const ping = (id: number | string): string => rpc({ id, method: "ping" }) + "\n";

/**
 * A `tools/call` whose arguments hold `arrays` nested arrays: the message's own depth is
 * `arrays + 3` (the message, `params`, `arguments`).
 */
function deepCall(id: number, arrays: number): string {
  return `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"x","arguments":{"a":` +
    "[".repeat(arrays) + "]".repeat(arrays) + "}}}";
}

/** An answer whose result holds `arrays` nested arrays: depth `arrays + 2`. */
function deepResult(id: string, arrays: number): string {
  return `{"jsonrpc":"2.0","id":${id},"result":{"a":${"[".repeat(arrays)}${"]".repeat(arrays)}}}`;
}

/** The depths the issue names (5,000 arrays is 10 KB), and exactly the limit, which passes. */
const TOO_DEEP = [5_000, 100_000];
const EXACT = LIMIT - 3;

type Message = Record<string, Json>;

function parsed(lines: readonly string[]): Message[] {
  return lines.map((l) => JSON.parse(l) as Message);
}

const answerTo = (id: Json) => (m: Message): boolean => m.id === id && !("method" in m);

function refusalOf(m: Message | undefined): { code: Json; depth: Json } {
  const error = m?.error as Record<string, Json> | undefined;
  const data = error?.data as Record<string, Json> | undefined;
  return { code: error?.code ?? null, depth: data?.max_json_depth ?? null };
}

async function awaitAnswer(out: Collector, id: Json, signal: AbortSignal): Promise<Message> {
  const find = () => parsed(out.lines).find(answerTo(id));
  await out.waitFor(() => find() !== undefined, `the answer to ${id}`, signal);
  return find()!;
}

function violations(records: readonly AuditRecord[], direction: AuditRecord["direction"]) {
  return pick(records, { kind: "invalid", direction }).map((r) => {
    const data = r.error?.data as Record<string, Json> | undefined;
    return [r.jsonrpc_id, data?.violation ?? null, data?.max_json_depth ?? null];
  });
}

async function verified(path: string): Promise<AuditRecord[]> {
  const v = await verifyLog(path);
  assertEquals(v.code, 0, `verify exits 0:\n${v.stdout}${v.stderr}`);
  return (await readLog(path)).records;
}

// ----------------------------------------------------------------------------------------------
// stdio

Deno.test("over stdio, 5,000 and 100,000 nested arrays from the client are answered -32600 and never reach the upstream; exactly max_json_depth crosses byte-exact", async () => {
  await using dir = await tempDir("nesting-stdio-client");
  const signal = deadline(60_000);
  const exact = deepCall(3, EXACT) + "\n";
  let messages: Message[];
  {
    await using proxy = new ProxyProcess({
      cwd: dir.path,
      upstream: fixture("raw_upstream.ts", "--in", `${dir.path}/in.bin`),
    });
    const out = proxy.stdout();
    await proxy.write(utf8(deepCall(1, TOO_DEEP[0]!) + "\n" + ping(10)));
    await awaitAnswer(out, 10, signal);
    await proxy.write(utf8(deepCall(2, TOO_DEEP[1]!) + "\n" + ping(11)));
    await awaitAnswer(out, 11, signal);
    // No id to be found in it: the client still hears why, with id null.
    await proxy.write(utf8("[".repeat(5_000) + "]".repeat(5_000) + "\n" + exact + ping(12)));
    await awaitAnswer(out, 12, signal);
    assert(!proxy.exited, "the proxy is still running");
    await proxy.closeInput();
    assertEquals((await proxy.finished(signal)).code, 0, "the proxy exits 0");
    messages = parsed(out.lines);
  }
  assertEquals(
    decoder.decode(await Deno.readFile(`${dir.path}/in.bin`)),
    ping(10) + ping(11) + exact + ping(12),
    "the upstream got the pings and the message exactly the limit deep, byte for byte",
  );
  for (const id of [1, 2, null]) {
    assertEquals(refusalOf(messages.find(answerTo(id))), { code: INVALID_REQUEST, depth: LIMIT });
  }
  const records = await verified(`${dir.path}/audit.jsonl`);
  assertEquals(violations(records, "client_to_server"), [
    [1, "max_json_depth", LIMIT],
    [2, "max_json_depth", LIMIT],
    [null, "max_json_depth", LIMIT],
  ]);
  const forwarded = records.find((r) => r.kind === "request" && r.jsonrpc_id === 3);
  assert(forwarded !== undefined, "the message exactly the limit deep is recorded as a request");
});

Deno.test("over stdio, 5,000 and 100,000 nested arrays in the server's answers reach the client as -32600 for its request; exactly max_json_depth crosses byte-exact", async () => {
  await using dir = await tempDir("nesting-stdio-server");
  const signal = deadline(60_000);
  const exact = deepResult("$ID", EXACT + 1) + "\n";
  await Deno.writeTextFile(
    `${dir.path}/replies.json`,
    JSON.stringify({
      "deep/5000": deepResult("$ID", TOO_DEEP[0]!) + "\n",
      "deep/100000": deepResult("$ID", TOO_DEEP[1]!) + "\n",
      "deep/exact": exact,
    }),
  );
  let out: Collector;
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
    out = proxy.stdout();
    await proxy.write(utf8(rpc({ id: 1, method: "deep/5000" }) + "\n" + ping(10)));
    assertEquals(refusalOf(await awaitAnswer(out, 1, signal)), {
      code: INVALID_REQUEST,
      depth: LIMIT,
    });
    await awaitAnswer(out, 10, signal);
    await proxy.write(utf8(rpc({ id: 2, method: "deep/100000" }) + "\n" + ping(11)));
    assertEquals(refusalOf(await awaitAnswer(out, 2, signal)), {
      code: INVALID_REQUEST,
      depth: LIMIT,
    });
    await awaitAnswer(out, 11, signal);
    await proxy.write(utf8(rpc({ id: 3, method: "deep/exact" }) + "\n"));
    await awaitAnswer(out, 3, signal);
    await proxy.closeInput();
    assertEquals((await proxy.finished(signal)).code, 0, "the proxy exits 0");
  }
  assert(
    out.lines.includes(exact.replace("$ID", "3").trimEnd()),
    "the answer exactly the limit deep reached the client byte for byte",
  );
  assert(!out.lines.some((l) => l.includes("[[[[[[[[[[[[".repeat(100))), "no deeper answer did");
  const records = await verified(`${dir.path}/audit.jsonl`);
  assertEquals(violations(records, "server_to_client"), [
    [1, "max_json_depth", LIMIT],
    [2, "max_json_depth", LIMIT],
  ]);
  const answers = records.filter((r) => r.kind === "error" && r.error?.code === INVALID_REQUEST);
  assertEquals(answers.map((r) => [r.jsonrpc_id, r.method]), [[1, "deep/5000"], [
    2,
    "deep/100000",
  ]]);
});

// ----------------------------------------------------------------------------------------------
// HTTP

/** An upstream that answers each POSTed request with `answer(message)`, notifications with 202. */
function answeringUpstream(answer: (m: Message) => string): ScriptedUpstream {
  return new ScriptedUpstream(({ request }) => {
    if (request.method !== "POST") return new Response(null, { status: 405 });
    const text = decoder.decode(request.body);
    let m: Message;
    try {
      m = JSON.parse(text);
    } catch {
      return new Response(null, { status: 400 });
    }
    if (!("id" in m)) return new Response(null, { status: 202 });
    return new Response(answer(m), { headers: { "content-type": "application/json" } });
  });
}

const POST_HEADERS = {
  "content-type": "application/json",
  accept: "application/json, text/event-stream",
};

Deno.test("over the HTTP proxy, 5,000 and 100,000 nested arrays from the client get 200 and -32600 and never reach the upstream; exactly max_json_depth crosses byte-exact", async () => {
  await using upstream = answeringUpstream((m) => rpc({ id: m.id ?? null, result: {} }));
  const exact = deepCall(3, EXACT);
  const run = await withProxy("nesting-http-client", upstream.url, {}, async (proxy, client) => {
    const post = async (body: string) => {
      const res = await fetch(proxy.endpoint, {
        method: "POST",
        client,
        headers: POST_HEADERS,
        body,
      });
      return { status: res.status, body: await res.text() };
    };
    for (const [id, arrays] of [[1, TOO_DEEP[0]!], [2, TOO_DEEP[1]!]] as const) {
      const res = await post(deepCall(id, arrays));
      assertEquals(res.status, 200, res.body);
      const answer = JSON.parse(res.body) as Message;
      assertEquals(answer.id, id);
      assertEquals(refusalOf(answer), { code: INVALID_REQUEST, depth: LIMIT });
      const next = await post(rpc({ id: 10 + id, method: "ping" }));
      assertEquals(JSON.parse(next.body).id, 10 + id, "the next request goes through");
    }
    const res = await post(exact);
    assertEquals(JSON.parse(res.body).id, 3);
  });
  assertEquals(
    upstream.requests.map((r) => decoder.decode(r.body)),
    [rpc({ id: 11, method: "ping" }), rpc({ id: 12, method: "ping" }), exact],
    "the upstream got the pings and the message exactly the limit deep, byte for byte",
  );
  assertEquals(violations(run.records, "client_to_server"), [
    [1, "max_json_depth", LIMIT],
    [2, "max_json_depth", LIMIT],
  ]);
});

Deno.test("over the HTTP proxy, 5,000 nested arrays in the upstream's answer are recorded invalid, never a 500, and the proxy goes on", async () => {
  let calls = 0;
  await using upstream = answeringUpstream((m) =>
    ++calls === 1 ? deepResult(JSON.stringify(m.id), TOO_DEEP[0]!) : rpc({ id: m.id!, result: {} })
  );
  const run = await withProxy("nesting-http-server", upstream.url, {}, async (proxy, client) => {
    const post = (body: string) =>
      fetch(proxy.endpoint, { method: "POST", client, headers: POST_HEADERS, body });
    const deep = await post(rpc({ id: 1, method: "tools/list" }));
    await deep.body?.cancel();
    assert(deep.status !== 500, `no 500: ${deep.status}`);
    const next = await post(rpc({ id: 2, method: "ping" }));
    assertEquals(JSON.parse(await next.text()).id, 2, "the next request goes through");
  });
  assertEquals(violations(run.records, "server_to_client"), [[1, "max_json_depth", LIMIT]]);
});

Deno.test("over the HTTP proxy, the client waiting for an answer 5,000 arrays deep gets -32600 in its place", async () => {
  await using upstream = answeringUpstream((m) => deepResult(JSON.stringify(m.id), TOO_DEEP[0]!));
  await withProxy("nesting-http-server-answer", upstream.url, {}, async (proxy, client) => {
    const res = await fetch(proxy.endpoint, {
      method: "POST",
      client,
      headers: POST_HEADERS,
      body: rpc({ id: 1, method: "tools/list" }),
    });
    const answer = JSON.parse(await res.text()) as Message;
    assertEquals([answer.id, refusalOf(answer)], [1, { code: INVALID_REQUEST, depth: LIMIT }]);
  });
});

Deno.test("over the HTTP-to-stdio bridge, nested arrays past the limit are refused from the client's body and from the server's line, and the session goes on", async () => {
  await using dir = await tempDir("nesting-bridge-http");
  const signal = deadline(60_000);
  await Deno.writeTextFile(
    `${dir.path}/replies.json`,
    JSON.stringify({
      initialize: rpc({
        id: 0,
        result: {
          protocolVersion: "2025-06-18",
          capabilities: {},
          serverInfo: { name: "raw", version: "1" },
        },
      }).replace('"id":0', '"id":$ID') + "\n",
      "deep/100000": deepResult("$ID", TOO_DEEP[1]!) + "\n",
    }),
  );
  const proxy = new ProxyProcess({
    cwd: dir.path,
    upstream: fixture(
      "raw_upstream.ts",
      "--in",
      `${dir.path}/in.bin`,
      "--replies",
      `${dir.path}/replies.json`,
    ),
    flags: ["--transport", "http", "--port", "0"],
  });
  await using _proxy = proxy;
  const find = () => proxy.logLines().find((l) => l.msg === "proxy listening");
  await proxy.stderr.waitFor(() => find() !== undefined, "the bridge to listen", signal);
  const endpoint = `${new URL(String(find()!.address)).origin}/mcp`;
  let session = "";
  /** The JSON-RPC messages of a POST's answer, JSON or SSE. */
  const post = async (body: string): Promise<{ status: number; messages: Message[] }> => {
    const headers: Record<string, string> = { ...POST_HEADERS };
    if (session !== "") headers["mcp-session-id"] = session;
    const res = await fetch(endpoint, { method: "POST", headers, body, signal });
    session ||= res.headers.get("mcp-session-id") ?? "";
    const bytes = new Uint8Array(await res.arrayBuffer());
    const type = res.headers.get("content-type") ?? "";
    const texts = type.startsWith("text/event-stream")
      ? parseSse(bytes).flatMap((e) => e.data === null ? [] : [e.data])
      : bytes.length === 0
      ? []
      : [decoder.decode(bytes)];
    return { status: res.status, messages: texts.map((t) => JSON.parse(t) as Message) };
  };
  const init = await post(
    rpc({
      id: 0,
      method: "initialize",
      params: {
        protocolVersion: "2025-06-18",
        capabilities: {},
        clientInfo: { name: "nesting-e2e", version: "1" },
      },
    }),
  );
  assert(session !== "", `a session: ${JSON.stringify(init)}`);
  const fromClient = await post(deepCall(1, TOO_DEEP[0]!));
  assertEquals(fromClient.status, 200);
  assertEquals(fromClient.messages.map((m) => [m.id, refusalOf(m)]), [
    [1, { code: INVALID_REQUEST, depth: LIMIT }],
  ]);
  const fromServer = await post(rpc({ id: 2, method: "deep/100000" }));
  assertEquals(fromServer.messages.map((m) => [m.id, refusalOf(m)]), [
    [2, { code: INVALID_REQUEST, depth: LIMIT }],
  ]);
  const next = await post(rpc({ id: 3, method: "ping" }));
  assertEquals(next.messages.map((m) => m.id), [3], "the session goes on");
  proxy.child.kill("SIGTERM");
  assertEquals((await proxy.finished(signal)).code, 0);
  const got = decoder.decode(await Deno.readFile(`${dir.path}/in.bin`));
  assert(!got.includes("[[[["), "the upstream never got the deep body");
  const records = await verified(`${dir.path}/audit.jsonl`);
  assertEquals(violations(records, "client_to_server"), [[1, "max_json_depth", LIMIT]]);
  assertEquals(violations(records, "server_to_client"), [[2, "max_json_depth", LIMIT]]);
});

Deno.test("over the stdio-to-HTTP bridge, an HTTP upstream's answer 100,000 arrays deep reaches the stdio client as -32600, and the session goes on", async () => {
  await using upstream = answeringUpstream((m) =>
    m.method === "deep" ? deepResult(JSON.stringify(m.id), TOO_DEEP[1]!) : rpc({
      id: m.id!,
      result: {},
    })
  );
  await using dir = await tempDir("nesting-bridge-stdio");
  const signal = deadline(60_000);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--config",
      DENO_JSON,
      MAIN,
      "--no-dashboard",
      "--no-metrics",
      "--upstream",
      upstream.url,
    ],
    cwd: dir.path,
    env: { ...cleanEnv(), AUDIT_SECRET: SECRET, ...auditEnv(`${dir.path}/audit.jsonl`) },
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out = new Collector(child.stdout);
  const err = new Collector(child.stderr);
  const stdin = child.stdin.getWriter();
  try {
    await stdin.write(utf8(rpc({ id: 1, method: "deep" }) + "\n"));
    assertEquals(refusalOf(await awaitAnswer(out, 1, signal)), {
      code: INVALID_REQUEST,
      depth: LIMIT,
    });
    await stdin.write(utf8(ping(2)));
    await awaitAnswer(out, 2, signal);
  } finally {
    await stdin.close().catch(() => {});
  }
  assertEquals((await child.status).code, 0, err.text());
  await out.done;
  await err.done;
  assert(!out.text().includes("[[[["), "the deep answer never reached the client");
  const records = await verified(`${dir.path}/audit.jsonl`);
  assertEquals(violations(records, "server_to_client"), [[1, "max_json_depth", LIMIT]]);
});
