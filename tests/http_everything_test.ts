/**
 * The MCP SDK's Streamable HTTP client → mcp-audit (`--transport http`, a real process) →
 * `server-everything streamableHttp`, then the audit log checked record by record against what
 * crossed the wire: POST bodies, JSON answers, every message inside the SSE streams of POSTs and of
 * the GET stream, server-to-client requests and the client's answers that arrive as later POSTs.
 *
 * @module
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  CallToolResultSchema,
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  type LoggingMessageNotification,
  LoggingMessageNotificationSchema,
  type Progress,
} from "@modelcontextprotocol/sdk/types.js";
import {
  answerTo,
  assert,
  assertChain,
  assertEquals,
  assertMatch,
  assertNoStrays,
  type AuditRecord,
  deadline,
  type Json,
  pick,
  readLog,
  sha256Hex,
  tempDir,
  verifyLog,
} from "./helpers.ts";
import {
  bodyBytes,
  EverythingHttpServer,
  HttpProxy,
  type RecordedExchange,
  RecordingFetch,
  sseMessages,
} from "./http_helpers.ts";

const CLIENT_INFO = { name: "mcp-audit-http-e2e", version: "2.3.4" };
const TOKEN_VALUE = "tok-http-e2e-DO-NOT-LOG";

/** The text blocks of a tool result, joined. */
function textOf(result: unknown): string {
  const texts: string[] = [];
  for (const block of CallToolResultSchema.parse(result).content) {
    if (block.type === "text") texts.push(block.text);
  }
  assert(texts.length > 0, "the result has text");
  return texts.join("\n");
}

function asObject(value: Json | undefined, what: string): { [key: string]: Json } {
  assert(
    typeof value === "object" && value !== null && !Array.isArray(value),
    `${what} is an object`,
  );
  return value;
}

function isSse(exchange: RecordedExchange): boolean {
  return (exchange.responseHeaders.get("content-type") ?? "").startsWith("text/event-stream");
}

/** The JSON-RPC messages the client received in one exchange, as the exact payload text. */
function receivedMessages(exchange: RecordedExchange): string[] {
  const bytes = bodyBytes(exchange);
  if (bytes.length === 0) return [];
  if (isSse(exchange)) return sseMessages(bytes);
  if ((exchange.responseHeaders.get("content-type") ?? "").startsWith("application/json")) {
    return [new TextDecoder().decode(bytes)];
  }
  return [];
}

Deno.test("SDK Streamable HTTP client through the proxy to server-everything: tools, progress over SSE, sampling and elicitation answered by later POSTs, GET-stream notifications, DELETE — every message in the signed log", async () => {
  await using dir = await tempDir("http-everything");
  const signal = deadline(60_000);
  let wireLog: RecordedExchange[] = [];
  let sessionId: string | undefined;
  let progressToken: string | number | undefined;
  const progress: Progress[] = [];
  const logMessages: string[] = [];
  const clientErrors: string[] = [];
  let stopCode: number | undefined;
  {
    await using server = await EverythingHttpServer.start(dir.path, signal);
    await using proxy = await HttpProxy.start({ cwd: dir.path, upstream: server.url }, signal);
    await using wire = new RecordingFetch();
    const transport = new StreamableHTTPClientTransport(new URL(proxy.endpoint), {
      fetch: wire.fetch,
      // The GET stream ends with the session; the client must not try to reopen it.
      reconnectionOptions: {
        maxRetries: 0,
        initialReconnectionDelay: 1000,
        maxReconnectionDelay: 1000,
        reconnectionDelayGrowFactor: 1,
      },
    });
    const client = new Client(CLIENT_INFO, { capabilities: { sampling: {}, elicitation: {} } });
    client.onerror = (e: Error) => clientErrors.push(e.message);
    client.setRequestHandler(CreateMessageRequestSchema, () => ({
      role: "assistant",
      content: { type: "text", text: "sampled over http" },
      model: "e2e-model",
      stopReason: "endTurn",
    }));
    client.setRequestHandler(ElicitRequestSchema, () => ({
      action: "accept",
      content: { name: "Ada Lovelace", check: true },
    }));
    client.setNotificationHandler(
      LoggingMessageNotificationSchema,
      (n: LoggingMessageNotification) => {
        logMessages.push(String(n.params.data));
      },
    );
    await client.connect(transport);
    sessionId = transport.sessionId;
    assert(typeof sessionId === "string" && sessionId !== "", "the server named a session");

    // The SDK opens the GET stream once `notifications/initialized` is accepted.
    await wire.waitFor(
      () => wire.exchanges.some((e) => e.method === "GET" && e.status === 200),
      "the GET stream to open through the proxy",
      signal,
    );
    const get = wire.exchanges.find((e) => e.method === "GET")!;
    assertEquals(get.responseHeaders.get("x-accel-buffering"), "no", "streams are not buffered");
    assertEquals(get.responseHeaders.get("mcp-session-id"), sessionId);

    const { tools } = await client.listTools();
    const names = tools.map((t: { name: string }) => t.name);
    for (
      const name of [
        "echo",
        "trigger-long-running-operation",
        "trigger-sampling-request",
        "trigger-elicitation-request",
        "toggle-simulated-logging",
      ]
    ) {
      assert(names.includes(name), `server-everything offers ${name}: ${names.join(", ")}`);
    }

    assertEquals(
      textOf(
        await client.callTool({
          name: "echo",
          arguments: { message: "héllo över http ✓ 🎉", token: TOKEN_VALUE },
        }),
      ),
      "Echo: héllo över http ✓ 🎉",
    );

    const long = await client.callTool(
      { name: "trigger-long-running-operation", arguments: { duration: 0.4, steps: 4 } },
      CallToolResultSchema,
      { onprogress: (p: Progress) => progress.push(p) },
    );
    assertMatch(textOf(long), /Long running operation completed/);
    const longPost = wire.exchanges.find((e) =>
      e.requestBody?.includes('"trigger-long-running-operation"')
    )!;
    assert(isSse(longPost), "the long-running call is answered with an SSE stream");
    assertEquals(longPost.responseHeaders.get("x-accel-buffering"), "no");
    assertEquals(
      receivedMessages(longPost).filter((m) => m.includes('"notifications/progress"')).length,
      4,
      "four progress notifications reached the client inside the call's stream",
    );
    assert(progress.length >= 1, "the client's progress callback ran");
    const sentCall = JSON.parse(longPost.requestBody!);
    progressToken = sentCall.params._meta.progressToken;

    assertMatch(
      textOf(
        await client.callTool({
          name: "trigger-sampling-request",
          arguments: { prompt: "Say hi", maxTokens: 21 },
        }),
      ),
      /sampled over http/,
    );
    assertMatch(
      textOf(await client.callTool({ name: "trigger-elicitation-request", arguments: {} })),
      /Ada Lovelace/,
    );

    // Simulated logging sends its first message at once, on the session's GET stream.
    assertMatch(
      textOf(await client.callTool({ name: "toggle-simulated-logging", arguments: {} })),
      /Started simulated/,
    );
    await wire.waitFor(
      () => receivedMessages(get).some((m) => m.includes('"notifications/message"')),
      "a logging notification on the GET stream",
      signal,
    );
    assertMatch(
      textOf(await client.callTool({ name: "toggle-simulated-logging", arguments: {} })),
      /Stopped simulated/,
    );

    // DELETE ends the session upstream, which ends the GET stream.
    await transport.terminateSession();
    const del = wire.exchanges.find((e) => e.method === "DELETE");
    assert(del !== undefined, "a DELETE was sent");
    assert(del.status >= 200 && del.status < 300, `DELETE answered ${del.status}`);
    assertEquals(del.requestHeaders.get("mcp-session-id"), sessionId);
    await wire.waitFor(() => get.ended, "the GET stream to end after DELETE", signal);
    await client.close();
    await Promise.all(wire.exchanges.map((e) => e.done));
    wireLog = wire.exchanges;
    stopCode = (await proxy.stop(signal)).code;
  }
  await assertNoStrays(dir.path);
  assertEquals(stopCode, 0, "the proxy exits 0 on SIGTERM");
  assert(logMessages.length >= 1, "the client's logging handler saw the GET-stream notification");
  // The only complaint allowed: the GET stream, ended by DELETE, is not to be reopened.
  assertEquals(
    clientErrors.filter((m) => !/Maximum reconnection attempts \(0\)/.test(m)),
    [],
    "the SDK client reported no errors",
  );

  const logPath = `${dir.path}/audit.jsonl`;
  const file = await readLog(logPath);
  await assertChain(file);
  const records = file.records;
  const messages = records.filter((r) => r.kind !== "event");
  assertEquals(pick(records, { kind: "invalid" }), [], "no message was classified invalid");
  assertEquals(
    pick(records, { kind: "error" }).map((r) => [r.method, r.error]),
    [],
    "no errors",
  );

  // Every message is an http record carrying the session and the client's info; only the
  // initialize request precedes the session id the server assigns in its answer.
  const initRequest = pick(records, { kind: "request", method: "initialize" });
  assertEquals(initRequest.length, 1, "one initialize request");
  for (const r of messages) {
    assertEquals(r.transport, "http", `seq ${r.seq} transport`);
    assertEquals(r.client_info, CLIENT_INFO, `client_info of seq ${r.seq}`);
    if (r === initRequest[0]) {
      assertEquals(r.session, null, "the initialize request has no session yet");
    } else {
      assertEquals(r.session, sessionId, `session of seq ${r.seq} (${r.kind} ${r.method})`);
    }
  }

  // Client to server: one record per POST body, in order, hashed as sent.
  const posts = wireLog.filter((e) => e.method === "POST");
  assertEquals(
    pick(records, { direction: "client_to_server" }).map((r) => r.wire_sha256),
    await Promise.all(posts.map((e) => sha256Hex(e.requestBody ?? ""))),
    "client_to_server records are the POST bodies, in order, hashed as sent",
  );
  // Server to client: one record per message the client received, JSON bodies and SSE events
  // alike, each stream's messages in the order they arrived.
  const fromServer = pick(records, { direction: "server_to_client" });
  const bySha = new Map<string, AuditRecord[]>();
  for (const r of fromServer) bySha.set(r.wire_sha256!, [...(bySha.get(r.wire_sha256!) ?? []), r]);
  let receivedCount = 0;
  for (const exchange of wireLog) {
    let lastSeq = 0;
    for (const text of receivedMessages(exchange)) {
      receivedCount++;
      const sha = await sha256Hex(text);
      const match = bySha.get(sha)?.shift();
      assert(match !== undefined, `the log holds ${exchange.method} message ${text.slice(0, 120)}`);
      assert(match.seq > lastSeq, `messages of one stream are logged in order: ${text}`);
      lastSeq = match.seq;
    }
  }
  assertEquals(receivedCount, fromServer.length, "nothing logged that the client did not receive");
  const getMessages = receivedMessages(wireLog.find((e) => e.method === "GET")!);
  assert(
    getMessages.some((m) => m.includes('"notifications/message"')),
    "the GET stream carried a logging notification",
  );
  const logRecords = pick(records, { kind: "notification", method: "notifications/message" });
  assert(logRecords.length >= 1, "the GET stream's notification is recorded");
  for (const r of logRecords) assertEquals(r.direction, "server_to_client");

  // Every request, either way, is answered once, with its method, tool and a duration.
  for (const request of pick(records, { kind: "request" })) {
    const answer = answerTo(records, request);
    assertEquals(answer.kind, "response", `${request.method} seq ${request.seq} got a result`);
    assertEquals(answer.tool_name, request.tool_name, `tool_name copied onto seq ${answer.seq}`);
    assert(
      typeof answer.duration_ms === "number" && answer.duration_ms >= 0,
      `duration_ms of seq ${answer.seq}: ${answer.duration_ms}`,
    );
  }
  for (const r of records) {
    if (r.kind !== "response" && r.kind !== "error") assertEquals(r.duration_ms, null);
    if (r.kind === "notification" || r.kind === "event") assertEquals(r.jsonrpc_id, null);
  }
  assertEquals(
    pick(records, { kind: "notification", method: "notifications/initialized" }).map((r) =>
      r.direction
    ),
    ["client_to_server"],
  );

  const calls = pick(records, { kind: "request", method: "tools/call" });
  assertEquals(calls.map((r) => r.tool_name), [
    "echo",
    "trigger-long-running-operation",
    "trigger-sampling-request",
    "trigger-elicitation-request",
    "toggle-simulated-logging",
    "toggle-simulated-logging",
  ]);

  // Redaction touches the audit copy only.
  const echoCall = calls[0]!;
  const echoArgs = asObject(asObject(echoCall.params, "params").arguments, "arguments");
  assertEquals(echoArgs.token, "[REDACTED]");
  assertEquals(echoArgs.message, "héllo över http ✓ 🎉");
  assertEquals(echoCall.redacted, ["params.arguments.token"]);
  assert(
    posts.some((e) => e.requestBody?.includes(TOKEN_VALUE)),
    "the token crossed the wire",
  );
  assert(!new TextDecoder().decode(file.bytes).includes(TOKEN_VALUE), "the token is not logged");
  assertEquals(
    asObject(answerTo(records, echoCall).result, "echo result").content,
    [{ type: "text", text: "Echo: héllo över http ✓ 🎉" }],
  );

  // Progress inside the call's SSE stream, between the request and its answer.
  const longCall = calls[1]!;
  const longAnswer = answerTo(records, longCall);
  const progressRecords = pick(records, {
    kind: "notification",
    method: "notifications/progress",
  });
  assertEquals(progressRecords.length, 4);
  for (const [i, p] of progressRecords.entries()) {
    assertEquals(p.direction, "server_to_client");
    const params = asObject(p.params, "progress params");
    assertEquals([params.progressToken, params.progress, params.total], [progressToken, i + 1, 4]);
    assert(p.seq > longCall.seq && p.seq < longAnswer.seq, "progress lies within its request");
  }
  assert(
    longAnswer.duration_ms !== null && longAnswer.duration_ms >= 350,
    `the 400 ms operation's answer has its duration: ${longAnswer.duration_ms}`,
  );

  // Server-to-client requests inside a call's stream, answered by the client's later POSTs.
  for (
    const [call, method] of [[calls[2]!, "sampling/createMessage"], [
      calls[3]!,
      "elicitation/create",
    ]] as const
  ) {
    const callAnswer = answerTo(records, call);
    const inner = pick(records, { kind: "request", method });
    assertEquals(inner.length, 1, `one ${method} request`);
    const request = inner[0]!;
    assertEquals(request.direction, "server_to_client");
    assertEquals(request.tool_name, null);
    const answer = answerTo(records, request);
    assertEquals(answer.direction, "client_to_server");
    assertEquals(answer.method, method, "the POSTed answer is correlated with the request");
    assert(call.seq < request.seq && answer.seq < callAnswer.seq, `${method} nested in its call`);
    const answerPost = posts.find((e) =>
      e.requestBody !== null && JSON.parse(e.requestBody).id === request.jsonrpc_id &&
      !("method" in JSON.parse(e.requestBody))
    );
    assert(answerPost !== undefined, `the ${method} answer was its own POST`);
    assertEquals(answerPost.status, 202, `the ${method} answer POST is accepted with 202`);
  }
  const samplingRequest = pick(records, { kind: "request", method: "sampling/createMessage" })[0]!;
  assertEquals(asObject(samplingRequest.params, "sampling params").maxTokens, 21);
  assertEquals(
    asObject(answerTo(records, samplingRequest).result, "sampling result").model,
    "e2e-model",
  );

  const verify = await verifyLog(logPath);
  assertEquals(verify.code, 0, `verify exits 0:\n${verify.stdout}${verify.stderr}`);
  assertMatch(verify.lines[0] ?? "", /^OK: /);
});
