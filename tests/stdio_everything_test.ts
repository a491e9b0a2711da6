/**
 * The MCP SDK client → mcp-audit (a real process) → `@modelcontextprotocol/server-everything`
 * over stdio, then the audit log checked record by record against what crossed the wire.
 *
 * @module
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import {
  CallToolResultSchema,
  type CreateMessageRequest,
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  type Progress,
} from "@modelcontextprotocol/sdk/types.js";
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
  EVERYTHING,
  type Json,
  pick,
  type Proc,
  processTable,
  ProxyProcess,
  readLog,
  SECRET,
  tempDir,
  verifyLog,
} from "./helpers.ts";

/** The text of a tool result's first content block. */
function textOf(result: unknown): string {
  const parsed = CallToolResultSchema.parse(result);
  const first = parsed.content[0];
  assert(first !== undefined && first.type === "text", "the result starts with a text block");
  return first.text;
}

function asObject(value: Json | undefined, what: string): { [key: string]: Json } {
  assert(
    typeof value === "object" && value !== null && !Array.isArray(value),
    `${what} is an object`,
  );
  return value;
}

const SECRET_VALUES = ["sk-e2e-DO-NOT-LOG", "tok-e2e-DO-NOT-LOG", "hdr-e2e-DO-NOT-LOG", "pw-e2e-1"];

Deno.test("SDK client through the proxy to server-everything: every message crosses unchanged and is in the signed log", async () => {
  await using dir = await tempDir("everything");
  const signal = deadline(90_000);
  let family: Proc[] = [];
  let sentLines: string[] = [];
  let receivedLines: string[] = [];
  const progress: Progress[] = [];
  let samplingMaxTokens: number | undefined;
  let exitCode: number | undefined;
  {
    await using proxy = new ProxyProcess({ cwd: dir.path, upstream: EVERYTHING });
    const transport = proxy.transport();
    const client = new Client(
      { name: "mcp-audit-e2e", version: "1.2.3" },
      { capabilities: { sampling: {}, elicitation: {} } },
    );
    client.setRequestHandler(CreateMessageRequestSchema, (request: CreateMessageRequest) => {
      samplingMaxTokens = request.params.maxTokens;
      return {
        role: "assistant",
        content: { type: "text", text: "sampled by the e2e client" },
        model: "e2e-model",
        stopReason: "endTurn",
        // server-everything quotes this whole result back as text in its tool result, where no
        // key-based redaction can reach it; only this message's own copy is checked.
        _meta: { api_key: "sk-e2e-sampling-meta" },
      };
    });
    client.setRequestHandler(ElicitRequestSchema, () => ({ action: "decline" }));
    await client.connect(transport);
    await proxy.upstreamPid(signal);
    family = descendants(await processTable(), proxy.pid);
    assert(family.length > 0, "the upstream runs below the proxy");

    const { tools } = await client.listTools();
    const names = tools.map((t: { name: string }) => t.name);
    for (
      const name of [
        "echo",
        "get-sum",
        "get-env",
        "trigger-long-running-operation",
        "trigger-sampling-request",
        "trigger-elicitation-request",
      ]
    ) {
      assert(names.includes(name), `server-everything offers ${name}: ${names.join(", ")}`);
    }

    assertEquals(
      textOf(await client.callTool({ name: "echo", arguments: { message: "héllo wörld ✓ 🎉" } })),
      "Echo: héllo wörld ✓ 🎉",
    );
    // Extra arguments are ignored by the tool but cross the wire and reach the log (redacted).
    assertEquals(
      textOf(
        await client.callTool({
          name: "echo",
          arguments: {
            message: "with secrets",
            api_key: SECRET_VALUES[0]!,
            token: SECRET_VALUES[1]!,
            max_tokens: 7,
            headers: { "X-Api-Key": SECRET_VALUES[2]!, Accept: "application/json" },
            nested: [{ password: SECRET_VALUES[3]! }, { input_tokens: 3 }],
          },
        }),
      ),
      "Echo: with secrets",
    );
    assertEquals(
      textOf(await client.callTool({ name: "get-sum", arguments: { a: 2, b: 40 } })),
      "The sum of 2 and 40 is 42.",
    );
    const long = await client.callTool(
      { name: "trigger-long-running-operation", arguments: { duration: 0.3, steps: 3 } },
      CallToolResultSchema,
      { onprogress: (p: Progress) => progress.push(p) },
    );
    assertMatch(textOf(long), /Long running operation completed/);
    // The SDK runs notification handlers a microtask late, so a progress notification that arrives
    // in the same read as the result can miss its handler; the wire must still carry all three.
    assert(progress.length >= 1, "the client saw progress");
    assertEquals(progress.map((p) => p.progress), [1, 2, 3].slice(0, progress.length));
    assertEquals(
      transport.receivedLines.filter((l) => l.includes('"notifications/progress"')).length,
      3,
      "three progress notifications reached the client",
    );

    const sampled = textOf(
      await client.callTool({
        name: "trigger-sampling-request",
        arguments: { prompt: "Say hi", maxTokens: 25 },
      }),
    );
    assertMatch(sampled, /sampled by the e2e client/);
    assertEquals(samplingMaxTokens, 25);
    assertMatch(
      textOf(await client.callTool({ name: "trigger-elicitation-request", arguments: {} })),
      /decline/i,
    );

    // The upstream gets the proxy's environment without the audit secret or any MCP_AUDIT_ key.
    const env: unknown = JSON.parse(
      textOf(await client.callTool({ name: "get-env", arguments: {} })),
    );
    assert(typeof env === "object" && env !== null, "get-env returns an object");
    const leaked = Object.keys(env).filter((k) =>
      k === "AUDIT_SECRET" || k.startsWith("MCP_AUDIT")
    );
    assertEquals(leaked, [], "the upstream's environment holds no mcp-audit settings");
    assert(!JSON.stringify(env).includes(SECRET), "the secret's value is not in the upstream env");

    await client.close();
    sentLines = transport.sentLines;
    receivedLines = transport.receivedLines;
    exitCode = (await proxy.finished(signal)).code;
  }
  await assertNoStrays(dir.path, family);
  assertEquals(exitCode, 0, "the proxy exits 0 after the client closes");

  const logPath = `${dir.path}/audit.jsonl`;
  assertEquals((await Deno.stat(logPath)).mode! & 0o777, 0o600, "the log file mode is 0600");
  const file = await readLog(logPath);
  await assertChain(file);
  const records = file.records;
  const [start, stop] = [records[0]!, records.at(-1)!];
  const startParams = asObject(start.params, "audit/start params");
  assertEquals(startParams.upstream, EVERYTHING, "audit/start names the upstream argv");
  assertEquals(asObject(startParams.signing, "signing").scheme, "hmac-sha256");
  await assertConversation(file, { sentLines, receivedLines }, {
    name: "mcp-audit-e2e",
    version: "1.2.3",
  });

  // The wire carried the secrets; only the audit copy hides them.
  for (const value of SECRET_VALUES) {
    assert(sentLines.some((l) => l.includes(value)), `${value} crossed the wire`);
    assert(!new TextDecoder().decode(file.bytes).includes(value), `${value} is not in the log`);
  }

  const calls = pick(records, { kind: "request", method: "tools/call" });
  assertEquals(calls.map((r) => r.tool_name), [
    "echo",
    "echo",
    "get-sum",
    "trigger-long-running-operation",
    "trigger-sampling-request",
    "trigger-elicitation-request",
    "get-env",
  ]);
  const echoAnswer = answerTo(records, calls[0]!);
  assertEquals(
    asObject(echoAnswer.result, "echo result").content,
    [{ type: "text", text: "Echo: héllo wörld ✓ 🎉" }],
  );

  // Redaction of the stored copy: values of secret keys replaced, paths listed, look-alikes kept.
  const secretCall = calls[1]!;
  const args = asObject(asObject(secretCall.params, "params").arguments, "arguments");
  assertEquals(args.api_key, "[REDACTED]");
  assertEquals(args.token, "[REDACTED]");
  assertEquals(args.max_tokens, 7, "max_tokens is not a secret");
  assertEquals(args.message, "with secrets");
  const headers = asObject(args.headers, "headers");
  assertEquals(headers["X-Api-Key"], "[REDACTED]");
  assertEquals(headers.Accept, "application/json");
  assertEquals(args.nested, [{ password: "[REDACTED]" }, { input_tokens: 3 }]);
  const paths = [...secretCall.redacted].sort();
  assertEquals(paths.length, 4, `four redacted paths: ${paths.join(", ")}`);
  assert(paths.includes("params.arguments.api_key"), paths.join(", "));
  assert(paths.includes("params.arguments.token"), paths.join(", "));
  assert(paths.includes("params.arguments.nested[0].password"), paths.join(", "));
  assert(
    paths.some((p) => p.startsWith("params.arguments.headers") && p.includes("X-Api-Key")),
    `the X-Api-Key header path is listed: ${paths.join(", ")}`,
  );
  for (const r of records) {
    if (r !== secretCall && r.redacted.length > 0) {
      assertEquals(
        r.redacted,
        ["result._meta.api_key"],
        `only the sampling answer is redacted too`,
      );
    }
  }

  // Progress: server-to-client notifications carrying the request's token, before its answer.
  const longCall = calls[3]!;
  const longAnswer = answerTo(records, longCall);
  const token = asObject(asObject(longCall.params, "params")._meta, "_meta").progressToken;
  assert(token !== undefined, "the SDK sent a progress token");
  const progressRecords = pick(records, {
    kind: "notification",
    method: "notifications/progress",
  });
  assertEquals(progressRecords.length, 3);
  for (const [i, p] of progressRecords.entries()) {
    assertEquals(p.direction, "server_to_client");
    const params = asObject(p.params, "progress params");
    assertEquals([params.progressToken, params.progress, params.total], [token, i + 1, 3]);
    assert(p.seq > longCall.seq && p.seq < longAnswer.seq, "progress lies within its request");
  }
  assert(
    longAnswer.duration_ms !== null && longAnswer.duration_ms >= 250,
    `the 300 ms operation took its time: ${longAnswer.duration_ms} ms`,
  );

  // Server-to-client requests and the client's answers, inside the tool call that caused them.
  for (
    const [callIndex, method] of [[4, "sampling/createMessage"], [5, "elicitation/create"]] as const
  ) {
    const call = calls[callIndex]!;
    const callAnswer = answerTo(records, call);
    const inner = pick(records, { kind: "request", method });
    assertEquals(inner.length, 1, `one ${method} request`);
    const request = inner[0]!;
    assertEquals(request.direction, "server_to_client");
    assertEquals(request.tool_name, null);
    const answer = answerTo(records, request);
    assertEquals(answer.direction, "client_to_server");
    assert(call.seq < request.seq && answer.seq < callAnswer.seq, `${method} nested in its call`);
  }
  const samplingRequest = pick(records, { kind: "request", method: "sampling/createMessage" })[0]!;
  assertEquals(
    asObject(samplingRequest.params, "sampling params").maxTokens,
    25,
    "maxTokens is not a secret",
  );
  const samplingAnswer = answerTo(records, samplingRequest);
  const sampledResult = asObject(samplingAnswer.result, "sampling result");
  assertEquals(sampledResult.model, "e2e-model");
  assertEquals(asObject(sampledResult._meta, "_meta").api_key, "[REDACTED]");
  assertEquals(samplingAnswer.redacted, ["result._meta.api_key"]);
  const elicitAnswer = answerTo(
    records,
    pick(records, { kind: "request", method: "elicitation/create" })[0]!,
  );
  assertEquals(asObject(elicitAnswer.result, "elicit result").action, "decline");

  const verify = await verifyLog(logPath);
  assertEquals(verify.code, 0, `verify exits 0:\n${verify.stdout}${verify.stderr}`);
  assertMatch(verify.lines[0] ?? "", /^OK: /);
  assertMatch(verify.stdout, new RegExp(`seq 1-${stop.seq}`));
});
