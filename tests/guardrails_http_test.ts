/**
 * The guardrails over HTTP, end to end: real proxies (`main.ts` as a process), real MCP servers
 * (`server-everything` over Streamable HTTP and over stdio) and the SDK's own clients. Each test
 * checks what the client got on the wire, what the upstream got (or did not get), and the signed
 * audit records, and ends with an intact chain that `verify` accepts.
 *
 * Where the upstream is server-everything over HTTP, the proxy is pointed at a relay in this
 * process that passes every request on and keeps a copy of it and of the answer: the evidence
 * that a refused call never left the proxy comes from outside the proxy. A stdio upstream's input
 * is kept by `tee` in front of it for the same reason.
 *
 * @module
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";
import {
  answerTo,
  assert,
  assertChain,
  assertEquals,
  assertNoStrays,
  auditEnv,
  type AuditRecord,
  Collector,
  concatBytes,
  deadline,
  DENO_JSON,
  type Json,
  MAIN,
  pick,
  raceAbort,
  readLog,
  SECRET,
  sha256Hex,
  tempDir,
  verifyLog,
  WireTransport,
} from "./helpers.ts";
import {
  bodyBytes,
  cleanEnv,
  EVERYTHING_PACKAGE,
  EverythingHttpServer,
  jsonLines,
  parseSse,
  type RecordedExchange,
  RecordingFetch,
  rpc,
  ScriptedUpstream,
  type UpstreamRequest,
  withProxy,
} from "./http_helpers.ts";

const decoder = new TextDecoder();

const DENY_REASON = "sums are off limits";
/** The policy of most tests: `get-sum` is refused, everything else allowed. */
const DENY_GET_SUM = {
  MCP_AUDIT_POLICY_ENABLED: "true",
  MCP_AUDIT_POLICY_RULES: JSON.stringify([
    { action: "deny", tool_name: "get-sum", reason: DENY_REASON },
  ]),
};
const POLICY_DENIED = -32030;
const RATE_LIMITED = -32029;
const REFUSED_WITH_BATCH = "refused with its batch: another request in it was refused";

// ----------------------------------------------------------------------------------------------
// Harness

/** One request the relay passed on, and the answer's body bytes as they came back. */
interface Relayed {
  request: UpstreamRequest;
  response: Uint8Array[];
  /** Resolves when the answer's body has ended. */
  done: Promise<void>;
}

const HOP_BY_HOP = ["host", "connection", "keep-alive", "content-length", "transfer-encoding"];

/**
 * An upstream in this process that passes each request on to `target` (less hop-by-hop headers)
 * and keeps it, with the bytes of its answer (POSTs only: a GET stream lasts as long as the
 * session).
 */
class Relay implements AsyncDisposable {
  readonly relayed: Relayed[] = [];
  readonly upstream: ScriptedUpstream;
  readonly #client = Deno.createHttpClient({});

  constructor(target: string) {
    this.upstream = new ScriptedUpstream(async ({ request, signal }) => {
      const headers = new Headers(request.headers);
      for (const name of HOP_BY_HOP) headers.delete(name);
      const res = await fetch(target, {
        method: request.method,
        headers,
        body: request.body.length > 0 ? request.body.slice() : null,
        signal,
        client: this.#client,
      });
      const out = new Headers(res.headers);
      // fetch has decoded the body already, if it was encoded.
      for (const name of [...HOP_BY_HOP, "content-encoding"]) out.delete(name);
      const init = { status: res.status, statusText: res.statusText, headers: out };
      if (res.body === null || request.method !== "POST") return new Response(res.body, init);
      const [mine, theirs] = res.body.tee();
      const entry: Relayed = { request, response: [], done: Promise.resolve() };
      entry.done = (async () => {
        for await (const chunk of mine) entry.response.push(chunk);
      })().catch(() => {});
      this.relayed.push(entry);
      return new Response(theirs, init);
    });
  }

  get url(): string {
    return this.upstream.url;
  }

  /** The bodies of every request the upstream was sent, as text. */
  bodies(): string[] {
    return this.upstream.requests.map((r) => decoder.decode(r.body));
  }

  /** The relayed POST whose body is `body`. */
  find(body: string): Relayed {
    const found = this.relayed.filter((r) => decoder.decode(r.request.body) === body);
    assertEquals(found.length, 1, `the upstream got this body once: ${body.slice(0, 200)}`);
    return found[0]!;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.upstream[Symbol.asyncDispose]();
    this.#client.close();
  }
}

/** An SDK Streamable HTTP client connected to `endpoint`, with every exchange recorded. */
class SdkSession implements AsyncDisposable {
  readonly wire = new RecordingFetch();
  readonly client: Client;
  readonly transport: StreamableHTTPClientTransport;
  readonly errors: string[] = [];

  private constructor(endpoint: string, name: string) {
    this.transport = new StreamableHTTPClientTransport(new URL(endpoint), {
      fetch: this.wire.fetch,
      // The GET stream ends with the session; the client must not try to reopen it.
      reconnectionOptions: {
        maxRetries: 0,
        initialReconnectionDelay: 1000,
        maxReconnectionDelay: 1000,
        reconnectionDelayGrowFactor: 1,
      },
    });
    this.client = new Client({ name, version: "1.0.0" });
    this.client.onerror = (e: Error) => this.errors.push(e.message);
  }

  static async open(endpoint: string, name: string): Promise<SdkSession> {
    const s = new SdkSession(endpoint, name);
    await s.client.connect(s.transport);
    return s;
  }

  get sessionId(): string {
    const id = this.transport.sessionId;
    assert(typeof id === "string" && id !== "", "the server named a session");
    return id;
  }

  /** The one POST whose body names `needle`. */
  post(needle: string): RecordedExchange {
    const found = this.wire.exchanges.filter((e) =>
      e.method === "POST" && (e.requestBody ?? "").includes(needle)
    );
    assertEquals(found.length, 1, `one POST carries ${needle}`);
    return found[0]!;
  }

  /** Ends the session (DELETE), closes the client and waits for every response body to end. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.transport.terminateSession().catch(() => {});
    await this.client.close();
    await raceAbort(
      Promise.all(this.wire.exchanges.map((e) => e.done)),
      deadline(45_000),
      "the client's responses to end",
      () => "",
    );
    await this.wire[Symbol.asyncDispose]();
  }
}

/** A proxy started with any arguments (the two bridges), waited for until it is ready. */
class ProxyChild implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  readonly stderr: Collector;
  readonly status: Promise<Deno.CommandStatus>;
  readonly logPath: string;
  #exited = false;

  constructor(
    cwd: string,
    args: string[],
    env: Record<string, string>,
    stdio: "piped" | "null",
  ) {
    this.logPath = `${cwd}/audit.jsonl`;
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--config", DENO_JSON, MAIN, "--no-dashboard", "--no-metrics", ...args],
      cwd,
      env: { ...cleanEnv(), AUDIT_SECRET: SECRET, ...auditEnv(this.logPath), ...env },
      clearEnv: true,
      stdin: stdio,
      stdout: stdio,
      stderr: "piped",
    }).spawn();
    this.stderr = new Collector(this.child.stderr);
    this.status = this.child.status.then((s) => {
      this.#exited = true;
      return s;
    });
  }

  /** The MCP endpoint, from the "proxy listening" line of an HTTP proxy. */
  async endpoint(signal: AbortSignal): Promise<string> {
    const find = () => jsonLines(this.stderr.lines).find((l) => l.msg === "proxy listening");
    await this.stderr.waitFor(() => find() !== undefined, "the proxy to listen", signal);
    const address = find()?.address;
    assert(typeof address === "string", "the listening line names the address");
    return `${new URL(address).origin}/mcp`;
  }

  /** The end of what the proxy wrote to stderr, for failure messages. */
  tail(): string {
    return this.stderr.text().slice(-3000);
  }

  /** SIGTERM (unless it is ending already), then the exit code, once stderr has ended too. */
  async stop(signal: AbortSignal, terminate = true): Promise<number> {
    if (terminate && !this.#exited) this.child.kill("SIGTERM");
    const tail = () => this.tail();
    const status = await raceAbort(this.status, signal, "the proxy to exit", tail);
    await raceAbort(this.stderr.done, signal, "the proxy's stderr to end", tail);
    return status.code;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.#exited) {
      try {
        this.child.kill("SIGKILL");
      } catch {
        // Gone already.
      }
    }
    await this.status;
    await this.stderr.done;
  }
}

/** What every run must leave: no process of it alive, an intact chain, `verify` exit 0. */
/**
 * server-everything over Streamable HTTP. It takes its port from `PORT` and cannot pick one, so the
 * port is found free before it starts, and another process may take it first: the server then
 * exits without listening, and it is started again on another port.
 */
async function startEverything(dir: string, signal: AbortSignal): Promise<EverythingHttpServer> {
  for (let attempt = 1;; attempt++) {
    try {
      return await EverythingHttpServer.start(dir, signal);
    } catch (e) {
      if (signal.aborted || attempt === 5) throw e;
    }
  }
}

async function checkedLog(dir: string, logPath: string): Promise<AuditRecord[]> {
  await assertNoStrays(dir);
  const file = await readLog(logPath);
  await assertChain(file);
  const verify = await verifyLog(logPath);
  assertEquals(verify.code, 0, `verify exits 0:\n${verify.stdout}${verify.stderr}`);
  return file.records;
}

/** The error a promise rejected with, which must be an `McpError`. */
async function mcpError(promise: Promise<unknown>, what: string): Promise<McpError> {
  const outcome = await promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  assert("error" in outcome, `${what} is refused, not answered: ${JSON.stringify(outcome)}`);
  assert(outcome.error instanceof McpError, `${what} fails with an McpError: ${outcome.error}`);
  return outcome.error;
}

/** The text of a tool result's first block. */
function firstText(result: unknown): string {
  const text = dig(result, "content", 0, "text");
  assert(typeof text === "string", `a text result: ${JSON.stringify(result)}`);
  return text;
}

/** The value at `path` inside any value. */
function dig(value: unknown, ...path: (string | number)[]): unknown {
  let at = value;
  for (const key of path) {
    if (typeof at !== "object" || at === null) return undefined;
    at = (at as Record<string, unknown>)[String(key)];
  }
  return at;
}

/** The names in a `tools/list` result. */
function toolNames(result: unknown): string[] {
  const tools = dig(result, "tools");
  assert(Array.isArray(tools), `a tools/list result: ${JSON.stringify(result)}`);
  return tools.map((t) => String(dig(t, "name")));
}

/** The one request record for the tool call (or method) with this JSON-RPC id. */
function requestWithId(records: readonly AuditRecord[], id: Json): AuditRecord {
  const found = records.filter((r) =>
    r.kind === "request" && r.direction === "client_to_server" && r.jsonrpc_id === id
  );
  assertEquals(found.length, 1, `one request record with id ${JSON.stringify(id)}`);
  return found[0]!;
}

/** The JSON-RPC id a recorded POST sent. */
function sentId(exchange: RecordedExchange): Json {
  const id = dig(JSON.parse(exchange.requestBody ?? "null"), "id");
  assert(typeof id === "number" || typeof id === "string", "the POST sent a request");
  return id;
}

/** The records answering client requests that the upstream itself sent (not the proxy). */
function serverAnswersTo(records: readonly AuditRecord[], id: Json): AuditRecord[] {
  return records.filter((r) =>
    (r.kind === "response" || r.kind === "error") && r.direction === "server_to_client" &&
    r.jsonrpc_id === id
  );
}

// ----------------------------------------------------------------------------------------------
// 1. Policy over HTTP in front of server-everything

Deno.test("an HTTP proxy answers a denied tools/call itself with -32030 (HTTP 200, JSON body) while an allowed call reaches server-everything, and the upstream never sees the denied one", async () => {
  await using dir = await tempDir("guard-http-deny");
  const signal = deadline(45_000);
  await using server = await startEverything(dir.path, signal);
  await using relay = new Relay(server.url);
  let sessionId = "";
  let deniedPost: RecordedExchange | undefined;
  let echoPost: RecordedExchange | undefined;
  let raw: { status: number; type: string | null; body: string; sent: string } | undefined;

  const run = await withProxy("guard-http-deny", relay.url, DENY_GET_SUM, async (proxy, http) => {
    await using s = await SdkSession.open(proxy.endpoint, "guard-http-client");
    sessionId = s.sessionId;
    assertEquals(
      firstText(await s.client.callTool({ name: "echo", arguments: { message: "allowed" } })),
      "Echo: allowed",
    );
    const err = await mcpError(
      s.client.callTool({ name: "get-sum", arguments: { a: 2, b: 3 } }),
      "the get-sum call",
    );
    assertEquals(err.code, POLICY_DENIED);
    assertEquals(err.data, { action: "deny", reason: DENY_REASON, rule_index: 0 });
    echoPost = s.post('"echo"');
    deniedPost = s.post('"get-sum"');
    await deniedPost.done;
    assertEquals(deniedPost.status, 200, "a refusal is an HTTP 200");
    assertEquals(deniedPost.responseHeaders.get("content-type"), "application/json");
    assertEquals(JSON.parse(decoder.decode(bodyBytes(deniedPost))), {
      jsonrpc: "2.0",
      id: sentId(deniedPost),
      error: {
        code: POLICY_DENIED,
        message: "policy denied",
        data: { action: "deny", reason: DENY_REASON, rule_index: 0 },
      },
    });

    // The same by hand, on the SDK's session, with a string id.
    const sent = rpc({
      id: "raw-sum",
      method: "tools/call",
      params: { name: "get-sum", arguments: { a: 1, b: 1 } },
    });
    const res = await fetch(proxy.endpoint, {
      method: "POST",
      client: http,
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        "mcp-session-id": sessionId,
        "mcp-protocol-version": "2025-11-25",
      },
      body: sent,
    });
    raw = {
      status: res.status,
      type: res.headers.get("content-type"),
      body: await res.text(),
      sent,
    };
  });

  assert(raw !== undefined && deniedPost !== undefined && echoPost !== undefined);
  assertEquals([raw.status, raw.type], [200, "application/json"]);
  assertEquals(JSON.parse(raw.body), {
    jsonrpc: "2.0",
    id: "raw-sum",
    error: {
      code: POLICY_DENIED,
      message: "policy denied",
      data: { action: "deny", reason: DENY_REASON, rule_index: 0 },
    },
  });

  // What the upstream got: the echo call, exactly as sent, and no get-sum call at all.
  const bodies = relay.bodies();
  assertEquals(bodies.filter((b) => b.includes("get-sum")), [], "get-sum never reached upstream");
  assertEquals(bodies.filter((b) => b === echoPost!.requestBody).length, 1);

  const records = run.records;
  const cases: { id: Json; sent: string; received: string }[] = [
    {
      id: sentId(deniedPost),
      sent: deniedPost.requestBody ?? "",
      received: decoder.decode(bodyBytes(deniedPost)),
    },
    { id: "raw-sum", sent: raw.sent, received: raw.body },
  ];
  for (const { id, sent: body, received } of cases) {
    const request = requestWithId(records, id);
    assertEquals(request.tool_name, "get-sum");
    assertEquals(request.session, sessionId);
    assertEquals(request.wire_sha256, await sha256Hex(body), "the request as the client sent it");
    assertEquals(request.decision, { action: "deny", rule: 0, reason: DENY_REASON });
    // One answer only: the proxy's own, hashing the bytes the client received.
    const answers = serverAnswersTo(records, id);
    assertEquals(answers.length, 1, "one answer to the denied call: the proxy's");
    const answer = answerTo(records, request);
    assertEquals(answer.kind, "error");
    assertEquals(answer.tool_name, "get-sum");
    assertEquals(answer.error, {
      code: POLICY_DENIED,
      message: "policy denied",
      data: { action: "deny", reason: DENY_REASON, rule_index: 0 },
    });
    assertEquals(answer.wire_sha256, await sha256Hex(received), "the answer the client received");
    assert(typeof answer.duration_ms === "number" && answer.duration_ms >= 0);
  }
  const echo = requestWithId(records, sentId(echoPost));
  assertEquals(echo.decision, { action: "allow", rule: null, reason: "" });
  assertEquals(answerTo(records, echo).kind, "response");
  assertEquals(
    pick(records, { kind: "request", method: "tools/call" }).map((r) => r.tool_name),
    ["echo", "get-sum", "get-sum"],
  );
});

Deno.test("in monitor mode an HTTP proxy lets a call the policy would deny through to server-everything and records the deny with enforced:false", async () => {
  await using dir = await tempDir("guard-http-monitor");
  const signal = deadline(45_000);
  await using server = await startEverything(dir.path, signal);
  await using relay = new Relay(server.url);
  let sumPost: RecordedExchange | undefined;
  let listed: string[] = [];
  const env = { ...DENY_GET_SUM, MCP_AUDIT_POLICY_MODE: "monitor" };
  const run = await withProxy("guard-http-monitor", relay.url, env, async (proxy) => {
    await using s = await SdkSession.open(proxy.endpoint, "guard-monitor-client");
    listed = (await s.client.listTools()).tools.map((t: { name: string }) => t.name);
    assertEquals(
      firstText(await s.client.callTool({ name: "get-sum", arguments: { a: 2, b: 3 } })),
      "The sum of 2 and 3 is 5.",
    );
    sumPost = s.post('"get-sum"');
  });
  assert(sumPost !== undefined);
  assert(listed.includes("get-sum"), `monitor mode hides no tool: ${listed.join(", ")}`);
  assertEquals(relay.bodies().filter((b) => b === sumPost!.requestBody).length, 1);
  const request = requestWithId(run.records, sentId(sumPost));
  assertEquals(request.decision, {
    action: "deny",
    rule: 0,
    reason: DENY_REASON,
    enforced: false,
  });
  const answer = answerTo(run.records, request);
  assertEquals(answer.kind, "response");
  assertEquals(answer.error, null);
  const list = pick(run.records, { kind: "response", method: "tools/list" });
  assertEquals(list.map((r) => r.decision), [null], "the tools/list answer is not filtered");
});

// ----------------------------------------------------------------------------------------------
// 2. tools/list filtered, in an SSE event and in a JSON body

Deno.test("a tools/list answer streamed as SSE by server-everything reaches the client without the denied tools, in the same event with the same id, and the record names what was hidden", async () => {
  await using dir = await tempDir("guard-http-list-sse");
  const signal = deadline(45_000);
  await using server = await startEverything(dir.path, signal);
  await using relay = new Relay(server.url);
  const env = {
    MCP_AUDIT_POLICY_ENABLED: "true",
    MCP_AUDIT_POLICY_RULES: JSON.stringify([
      { action: "deny", tool_name: "get-sum" },
      { action: "deny", tool_name: "get-env" },
    ]),
  };
  let listPost: RecordedExchange | undefined;
  let sdkNames: string[] = [];
  const run = await withProxy("guard-http-list-sse", relay.url, env, async (proxy) => {
    await using s = await SdkSession.open(proxy.endpoint, "guard-list-client");
    sdkNames = (await s.client.listTools()).tools.map((t: { name: string }) => t.name);
    listPost = s.post('"tools/list"');
    await listPost.done;
  });
  assert(listPost !== undefined);
  assert(sdkNames.includes("echo"), `echo is listed: ${sdkNames.join(", ")}`);
  assertEquals(sdkNames.filter((n) => n === "get-sum" || n === "get-env"), []);

  // What the upstream sent for this POST, and what the client received, event by event.
  const upstream = relay.find(listPost.requestBody!);
  await upstream.done;
  const accept = upstream.request.headers.get("accept") ?? "";
  assert(accept.includes("text/event-stream"), "the client accepts SSE");
  assert(
    (listPost.responseHeaders.get("content-type") ?? "").startsWith("text/event-stream"),
    "server-everything answers tools/list as an SSE stream",
  );
  const isAnswer = (data: string | null) => data !== null && data.includes('"tools"');
  const theirs = parseSse(concatBytes(upstream.response))
    .filter((e) => isAnswer(e.data));
  const ours = parseSse(bodyBytes(listPost)).filter((e) => isAnswer(e.data));
  assertEquals(theirs.length, 1, "the upstream sent one tools/list answer");
  assertEquals(ours.length, 1, "the client received one tools/list answer");
  const [sent, got] = [theirs[0]!, ours[0]!];
  assert(sent.id !== null && sent.id !== "", "server-everything numbers its events");
  assertEquals(got.id, sent.id, "the rewritten event keeps the upstream's event id");
  assertEquals(got.event, sent.event ?? "message");
  const upstreamNames = toolNames(dig(JSON.parse(sent.data!), "result"));
  const clientAnswer = JSON.parse(got.data!);
  assertEquals(clientAnswer.id, sentId(listPost));
  assertEquals(
    toolNames(clientAnswer.result),
    upstreamNames.filter((n) => n !== "get-sum" && n !== "get-env"),
    "the client got the upstream's list, in order, less the denied tools",
  );
  assertEquals(sdkNames, toolNames(clientAnswer.result));
  // The other tools go through unchanged, definition for definition.
  assertEquals(
    dig(clientAnswer, "result", "tools"),
    (dig(JSON.parse(sent.data!), "result", "tools") as unknown[]).filter((t) =>
      !["get-sum", "get-env"].includes(String(dig(t, "name")))
    ),
  );

  const request = requestWithId(run.records, sentId(listPost));
  const answer = answerTo(run.records, request);
  assertEquals(answer.decision, {
    action: "filter",
    rule: null,
    reason: "2 of the server's tools hidden from this client",
    hidden: upstreamNames.filter((n) => n === "get-sum" || n === "get-env").map((name) => ({
      name,
      reason: "refused by policy",
    })),
    upstream_sha256: await sha256Hex(sent.data!),
  });
  assertEquals(answer.wire_sha256, await sha256Hex(got.data!), "the hash of what the client got");
  assertEquals(toolNames(answer.result), toolNames(clientAnswer.result));
});

/** A scripted MCP server answering in JSON bodies: initialize, tools/list, tools/call echo. */
function jsonServer(): { upstream: ScriptedUpstream; listBodies: string[] } {
  const listBodies: string[] = [];
  const tools = [
    {
      name: "echo",
      description: "Echoes its input",
      inputSchema: { type: "object", properties: { message: { type: "string" } } },
    },
    { name: "get-sum", description: "Adds", inputSchema: { type: "object", properties: {} } },
    { name: "get-time", description: "Tells the time", inputSchema: { type: "object" } },
  ];
  const upstream = new ScriptedUpstream(({ request }) => {
    if (request.method === "GET") {
      return new Response(null, { status: 405, headers: { allow: "POST" } });
    }
    if (request.method !== "POST") return new Response(null, { status: 200 });
    const message = JSON.parse(decoder.decode(request.body));
    if (Array.isArray(message) || message.id === undefined) {
      return new Response(null, { status: 202 });
    }
    let result: unknown = {};
    if (message.method === "initialize") {
      result = {
        protocolVersion: message.params.protocolVersion,
        capabilities: { tools: {} },
        serverInfo: { name: "scripted-json", version: "1.0.0" },
      };
    } else if (message.method === "tools/list") {
      result = { tools };
    } else if (message.method === "tools/call") {
      result = { content: [{ type: "text", text: `Echo: ${message.params.arguments?.message}` }] };
    }
    const body = JSON.stringify({ jsonrpc: "2.0", id: message.id, result });
    if (message.method === "tools/list") listBodies.push(body);
    return new Response(body, {
      status: 200,
      headers: { "content-type": "application/json", "mcp-session-id": "scripted-session-1" },
    });
  });
  return { upstream, listBodies };
}

Deno.test("a tools/list answer in a JSON body reaches the client without the denied tool, and the record hashes what the client got and what the upstream sent", async () => {
  const { upstream, listBodies } = jsonServer();
  await using _upstream = upstream;
  let listPost: RecordedExchange | undefined;
  let sdkNames: string[] = [];
  const run = await withProxy("guard-http-list-json", upstream.url, DENY_GET_SUM, async (proxy) => {
    await using s = await SdkSession.open(proxy.endpoint, "guard-json-list-client");
    sdkNames = (await s.client.listTools()).tools.map((t: { name: string }) => t.name);
    listPost = s.post('"tools/list"');
    await listPost.done;
  });
  assert(listPost !== undefined);
  assertEquals(sdkNames, ["echo", "get-time"]);
  assertEquals(listPost.status, 200);
  assertEquals(listPost.responseHeaders.get("content-type"), "application/json");
  const received = decoder.decode(bodyBytes(listPost));
  const length = listPost.responseHeaders.get("content-length");
  assert(
    length === null || Number(length) === bodyBytes(listPost).length,
    `content-length ${length} fits the filtered body`,
  );
  assertEquals(JSON.parse(received).id, sentId(listPost));
  assertEquals(toolNames(JSON.parse(received).result), ["echo", "get-time"]);
  assertEquals(listBodies.length, 1, "the upstream answered one tools/list");

  const answer = answerTo(run.records, requestWithId(run.records, sentId(listPost)));
  assertEquals(answer.session, "scripted-session-1");
  assertEquals(answer.decision, {
    action: "filter",
    rule: null,
    reason: "1 of the server's tools hidden from this client",
    hidden: [{ name: "get-sum", reason: "refused by policy" }],
    upstream_sha256: await sha256Hex(listBodies[0]!),
  });
  assertEquals(answer.wire_sha256, await sha256Hex(received), "the hash of what the client got");
  assertEquals(toolNames(answer.result), ["echo", "get-time"]);
});

// ----------------------------------------------------------------------------------------------
// 3. Rate limits per caller

const ECHO_3_PER_MINUTE = {
  MCP_AUDIT_MIDDLEWARE_RATE_LIMIT_TOOLS: JSON.stringify({ echo: { requests_per_minute: 3 } }),
};

/** Calls echo `n` times; the outcome of each: "ok", or the error code and its data. */
async function echoes(s: SdkSession, n: number, label: string): Promise<(string | McpError)[]> {
  const out: (string | McpError)[] = [];
  for (let i = 1; i <= n; i++) {
    const message = `${label} ${i}`;
    const outcome = await s.client.callTool({ name: "echo", arguments: { message } }).then(
      (r: unknown) => firstText(r) === `Echo: ${message}` ? "ok" : `wrong answer: ${firstText(r)}`,
      (e: unknown) => e instanceof McpError ? e : `not an McpError: ${e}`,
    );
    out.push(outcome);
  }
  return out;
}

/** Checks one refusal by the rate limiter: the code and a retry time within the minute. */
function assertRateLimited(outcome: string | McpError | undefined, what: string): void {
  assert(outcome instanceof McpError, `${what} is refused: ${String(outcome)}`);
  assertEquals(outcome.code, RATE_LIMITED, what);
  assertEquals(outcome.message, "MCP error -32029: rate limit exceeded");
  const retry = dig(outcome.data, "retry_after_ms");
  assert(
    typeof retry === "number" && retry > 0 && retry <= 20_000,
    `${what}: retry_after_ms within one token's 20 s: ${JSON.stringify(outcome.data)}`,
  );
}

Deno.test("two HTTP sessions calling the same tool at 3 requests per minute each get 3 calls and then -32029: one client's exhaustion leaves the other's budget untouched", async () => {
  await using dir = await tempDir("guard-http-rate");
  const signal = deadline(45_000);
  await using server = await startEverything(dir.path, signal);
  const sessions: string[] = [];
  let a: (string | McpError)[] = [];
  let b: (string | McpError)[] = [];
  let refusedPost: RecordedExchange | undefined;
  const run = await withProxy("guard-http-rate", server.url, ECHO_3_PER_MINUTE, async (proxy) => {
    await using sa = await SdkSession.open(proxy.endpoint, "rate-client-a");
    await using sb = await SdkSession.open(proxy.endpoint, "rate-client-b");
    sessions.push(sa.sessionId, sb.sessionId);
    a = await echoes(sa, 4, "a");
    b = await echoes(sb, 4, "b");
    refusedPost = sa.post('"a 4"');
    await refusedPost.done;
  });
  assert(sessions[0] !== sessions[1], "two sessions");
  assertEquals(a.slice(0, 3), ["ok", "ok", "ok"], "client A's first three calls pass");
  assertRateLimited(a[3], "client A's fourth call");
  assertEquals(b.slice(0, 3), ["ok", "ok", "ok"], "client B's budget is its own");
  assertRateLimited(b[3], "client B's fourth call");
  assert(refusedPost !== undefined);
  assertEquals(refusedPost.status, 200);
  assertEquals(refusedPost.responseHeaders.get("content-type"), "application/json");

  const calls = pick(run.records, { kind: "request", tool_name: "echo" });
  for (const [i, session] of sessions.entries()) {
    const mine = calls.filter((r) => r.session === session);
    assertEquals(mine.length, 4, `four echo calls recorded for session ${i}`);
    assertEquals(mine.slice(0, 3).map((r) => r.decision), [null, null, null]);
    const refused = mine[3]!;
    assertEquals(dig(refused.decision, "action"), "rate_limited");
    assertEquals(dig(refused.decision, "rule"), null);
    assert(
      String(dig(refused.decision, "reason")).startsWith("over 3 requests per minute (burst 3)"),
      `the reason names the limit: ${JSON.stringify(refused.decision)}`,
    );
    const answers = serverAnswersTo(run.records, refused.jsonrpc_id).filter((r) =>
      r.session === session
    );
    assertEquals(answers.length, 1, "one answer to the refused call: the proxy's");
    assertEquals(answers[0]!.error?.code, RATE_LIMITED);
    assertEquals(answers[0]!.error?.message, "rate limit exceeded");
    for (const r of mine.slice(0, 3)) {
      const answer = serverAnswersTo(run.records, r.jsonrpc_id).filter((x) =>
        x.session === session
      );
      assertEquals(answer.map((x) => x.kind), ["response"]);
    }
  }
});

Deno.test("with middleware.rate_limit.key client_id two HTTP sessions share one bucket: client A's exhaustion refuses client B", async () => {
  await using dir = await tempDir("guard-http-rate-shared");
  const signal = deadline(45_000);
  await using server = await startEverything(dir.path, signal);
  const env = { ...ECHO_3_PER_MINUTE, MCP_AUDIT_MIDDLEWARE_RATE_LIMIT_KEY: "client_id" };
  const sessions: string[] = [];
  let a: (string | McpError)[] = [];
  let b: (string | McpError)[] = [];
  const run = await withProxy("guard-http-rate-shared", server.url, env, async (proxy) => {
    await using sa = await SdkSession.open(proxy.endpoint, "shared-client-a");
    await using sb = await SdkSession.open(proxy.endpoint, "shared-client-b");
    sessions.push(sa.sessionId, sb.sessionId);
    a = await echoes(sa, 3, "a");
    b = await echoes(sb, 1, "b");
  });
  assertEquals(a, ["ok", "ok", "ok"]);
  assertRateLimited(b[0], "client B's first call, after A spent the shared bucket");
  const refused = pick(run.records, { kind: "request", tool_name: "echo" }).filter((r) =>
    r.session === sessions[1]
  );
  assertEquals(refused.map((r) => dig(r.decision, "action")), ["rate_limited"]);
});

// ----------------------------------------------------------------------------------------------
// 4. HTTP client → proxy → stdio server

Deno.test("over the HTTP-to-stdio bridge a denied tools/call is answered by the proxy as an isError tool result (deny_as tool_result), a denied method as -32030, and the stdio server never reads either", async () => {
  await using dir = await tempDir("guard-http-stdio");
  const signal = deadline(45_000);
  const input = `${dir.path}/upstream-in.jsonl`;
  const env = {
    MCP_AUDIT_POLICY_ENABLED: "true",
    MCP_AUDIT_POLICY_DENY_AS: "tool_result",
    MCP_AUDIT_POLICY_RULES: JSON.stringify([
      { action: "deny", tool_name: "get-sum", reason: DENY_REASON },
      { action: "deny", method: "resources/read" },
    ]),
  };
  let sumPost: RecordedExchange | undefined;
  let readPost: RecordedExchange | undefined;
  let sumResult: unknown;
  let listed: string[] = [];
  let code: number | undefined;
  {
    // `tee` keeps every byte the stdio server reads.
    await using proxy = new ProxyChild(
      dir.path,
      [
        "--transport",
        "http",
        "--port",
        "0",
        "--",
        "sh",
        "-c",
        `tee '${input}' | exec '${Deno.execPath()}' run -A ${EVERYTHING_PACKAGE} stdio`,
      ],
      env,
      "null",
    );
    const endpoint = await proxy.endpoint(signal);
    {
      await using s = await SdkSession.open(endpoint, "guard-bridge-client");
      listed = (await s.client.listTools()).tools.map((t: { name: string }) => t.name);
      assertEquals(
        firstText(await s.client.callTool({ name: "echo", arguments: { message: "via stdio" } })),
        "Echo: via stdio",
      );
      sumResult = await s.client.callTool({ name: "get-sum", arguments: { a: 2, b: 3 } });
      const err = await mcpError(
        s.client.readResource({ uri: "demo://resource/static/document/architecture.md" }),
        "the resources/read request",
      );
      assertEquals(err.code, POLICY_DENIED);
      assertEquals(err.data, { action: "deny", reason: "blocked by policy", rule_index: 1 });
      sumPost = s.post('"get-sum"');
      readPost = s.post('"resources/read"');
      await Promise.all([sumPost.done, readPost.done]);
    }
    code = await proxy.stop(signal);
  }
  assertEquals(code, 0, "the proxy exits 0 on SIGTERM");
  assert(sumPost !== undefined && readPost !== undefined);
  assert(listed.includes("echo") && !listed.includes("get-sum"), `listed: ${listed.join(", ")}`);
  const deniedResult = {
    content: [{ type: "text", text: `policy denied: ${DENY_REASON}` }],
    isError: true,
  };
  assertEquals(sumResult, deniedResult);
  for (const post of [sumPost, readPost]) {
    assertEquals(post.status, 200);
    assertEquals(post.responseHeaders.get("content-type"), "application/json");
  }
  const sumBody = decoder.decode(bodyBytes(sumPost));
  assertEquals(JSON.parse(sumBody), { jsonrpc: "2.0", id: sentId(sumPost), result: deniedResult });

  const seen = (await Deno.readTextFile(input)).split("\n").filter((l) => l !== "").map((l) =>
    JSON.parse(l)
  );
  assertEquals(
    seen.filter((m) => m.method === "resources/read" || dig(m, "params", "name") === "get-sum"),
    [],
    "the stdio server read neither refused request",
  );
  assert(seen.some((m) => dig(m, "params", "name") === "echo"), "it read the echo call");

  const records = await checkedLog(dir.path, `${dir.path}/audit.jsonl`);
  const sum = requestWithId(records, sentId(sumPost));
  assertEquals(sum.decision, { action: "deny", rule: 0, reason: DENY_REASON });
  const sumAnswer = answerTo(records, sum);
  assertEquals([sumAnswer.kind, sumAnswer.result], ["response", deniedResult]);
  assertEquals(sumAnswer.wire_sha256, await sha256Hex(sumBody));
  assertEquals(serverAnswersTo(records, sum.jsonrpc_id).length, 1);
  const read = requestWithId(records, sentId(readPost));
  assertEquals(read.decision, { action: "deny", rule: 1, reason: "blocked by policy" });
  const readAnswer = answerTo(records, read);
  assertEquals(readAnswer.error?.code, POLICY_DENIED);
  assertEquals(readAnswer.wire_sha256, await sha256Hex(bodyBytes(readPost)));
  const list = pick(records, { kind: "response", method: "tools/list" });
  assertEquals(list.map((r) => dig(r.decision, "hidden")), [[{
    name: "get-sum",
    reason: "refused by policy",
  }]]);
});

// ----------------------------------------------------------------------------------------------
// 5. stdio client → proxy → HTTP server

Deno.test("over the stdio-to-HTTP bridge a denied tools/call is answered on stdout with -32030 and nothing is posted upstream for it", async () => {
  await using serverDir = await tempDir("guard-stdio-http-server");
  // The proxy's own directory, which marks the processes that must be gone when it has exited.
  await using dir = await tempDir("guard-stdio-http");
  const signal = deadline(45_000);
  await using server = await startEverything(serverDir.path, signal);
  await using relay = new Relay(server.url);
  let transport: WireTransport | undefined;
  let code: number | undefined;
  let deniedId: Json = null;
  {
    await using proxy = new ProxyChild(
      dir.path,
      ["--upstream", relay.url],
      DENY_GET_SUM,
      "piped",
    );
    const stdin = proxy.child.stdin.getWriter();
    const wire = new WireTransport(proxy.child.stdout, stdin, () => stdin.close().catch(() => {}));
    transport = wire;
    const client = new Client({ name: "guard-stdio-client", version: "1.0.0" });
    await client.connect(wire);
    assertEquals(
      firstText(await client.callTool({ name: "echo", arguments: { message: "over stdio" } })),
      "Echo: over stdio",
    );
    const err = await mcpError(
      client.callTool({ name: "get-sum", arguments: { a: 2, b: 3 } }),
      "the get-sum call",
    );
    assertEquals(err.code, POLICY_DENIED);
    assertEquals(err.data, { action: "deny", reason: DENY_REASON, rule_index: 0 });
    const sent = wire.sentLines.find((l) => l.includes('"get-sum"'));
    assert(sent !== undefined);
    deniedId = JSON.parse(sent).id;
    // Closing ends the proxy's input; the proxy then ends the session upstream and exits.
    await raceAbort(client.close(), signal, "the proxy's stdout to end", () => proxy.tail());
    code = await proxy.stop(signal, false);
  }
  assertEquals(code, 0, "the proxy exits 0 when the client closes its input");
  const replies = transport.receivedLines.filter((l) => JSON.parse(l).id === deniedId);
  assertEquals(replies.length, 1, "one answer on stdout for the denied call");
  assertEquals(JSON.parse(replies[0]!), {
    jsonrpc: "2.0",
    id: deniedId,
    error: {
      code: POLICY_DENIED,
      message: "policy denied",
      data: { action: "deny", reason: DENY_REASON, rule_index: 0 },
    },
  });
  assertEquals(relay.bodies().filter((b) => b.includes("get-sum")), [], "nothing posted for it");
  assert(relay.bodies().some((b) => b.includes('"echo"')), "the echo call was posted");

  const records = await checkedLog(dir.path, `${dir.path}/audit.jsonl`);
  const request = requestWithId(records, deniedId);
  assertEquals(request.transport, "stdio");
  assertEquals(request.decision, { action: "deny", rule: 0, reason: DENY_REASON });
  const answer = answerTo(records, request);
  assertEquals(answer.kind, "error");
  assertEquals(answer.wire_sha256, await sha256Hex(replies[0]!), "the line the client read");
  assertEquals(serverAnswersTo(records, deniedId).length, 1);
});

// ----------------------------------------------------------------------------------------------
// 6. Batches

Deno.test("a JSON batch POST holding a denied request is refused whole: HTTP 200 with a JSON array of -32030 answers, and the upstream is never contacted", async () => {
  const { upstream } = jsonServer();
  await using _upstream = upstream;
  const batch = JSON.stringify([
    { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "echo", arguments: {} } },
    {
      jsonrpc: "2.0",
      id: "two",
      method: "tools/call",
      params: { name: "get-sum", arguments: { a: 1, b: 2 } },
    },
    { jsonrpc: "2.0", method: "notifications/roots/list_changed" },
  ]);
  const single = rpc({
    id: 3,
    method: "tools/call",
    params: { name: "echo", arguments: { message: "alone" } },
  });
  let reply: { status: number; type: string | null; body: string } | undefined;
  let after: { status: number; body: string } | undefined;
  let upstreamBeforeControl = -1;
  const headers = {
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
  };
  const run = await withProxy(
    "guard-http-batch",
    upstream.url,
    DENY_GET_SUM,
    async (proxy, http) => {
      const res = await fetch(proxy.endpoint, {
        method: "POST",
        client: http,
        headers,
        body: batch,
      });
      reply = { status: res.status, type: res.headers.get("content-type"), body: await res.text() };
      upstreamBeforeControl = upstream.requests.length;
      // A control: a lone allowed call does reach this upstream.
      const ok = await fetch(proxy.endpoint, {
        method: "POST",
        client: http,
        headers,
        body: single,
      });
      after = { status: ok.status, body: await ok.text() };
    },
  );
  assert(reply !== undefined && after !== undefined);
  assertEquals([reply.status, reply.type], [200, "application/json"]);
  const answers = JSON.parse(reply.body);
  assertEquals(answers, [
    {
      jsonrpc: "2.0",
      id: 1,
      error: {
        code: POLICY_DENIED,
        message: "policy denied",
        data: { action: "deny", reason: REFUSED_WITH_BATCH, rule_index: -1 },
      },
    },
    {
      jsonrpc: "2.0",
      id: "two",
      error: {
        code: POLICY_DENIED,
        message: "policy denied",
        data: { action: "deny", reason: DENY_REASON, rule_index: 0 },
      },
    },
  ]);
  assertEquals(upstreamBeforeControl, 0, "the upstream was not contacted for the batch");
  assertEquals(after.status, 200);
  assertEquals(upstream.requests.map((r) => decoder.decode(r.body)), [single]);

  // Each member recorded as sent (the batch's hash), each answer as the text the array holds.
  const records = run.records;
  const batchSha = await sha256Hex(batch);
  const fromClient = pick(records, { direction: "client_to_server" });
  assertEquals(
    fromClient.map((r) => [r.kind, r.jsonrpc_id, r.decision, r.wire_sha256]),
    [
      ["request", 1, { action: "deny", rule: null, reason: REFUSED_WITH_BATCH }, batchSha],
      ["request", "two", { action: "deny", rule: 0, reason: DENY_REASON }, batchSha],
      ["notification", null, { action: "deny", rule: null, reason: REFUSED_WITH_BATCH }, batchSha],
      ["request", 3, { action: "allow", rule: null, reason: "" }, await sha256Hex(single)],
    ],
  );
  const texts = (answers as unknown[]).map((a) => JSON.stringify(a));
  assertEquals(reply.body, `[${texts.join(",")}]`, "the array is the answers, comma-joined");
  for (const [i, id] of [1, "two"].entries()) {
    const answer = answerTo(records, requestWithId(records, id));
    assertEquals(answer.kind, "error");
    assertEquals(answer.session, null);
    // Each answer's record carries the digest of the array the client got, as sent.
    assertEquals(
      answer.wire_sha256,
      await sha256Hex(reply.body),
      `answer ${i} (${id}) is recorded with the bytes the client got`,
    );
  }
});
