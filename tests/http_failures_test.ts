/**
 * HTTP failure cases, each with the status the client gets, the records the log holds, and nothing
 * left behind: an upstream that is down, one that never answers, one killed mid-stream, a client
 * that leaves mid-stream, a 16 MiB body, bodies over the limit (with and without Content-Length),
 * malformed JSON, a wrong content type, and the idle timeout (which never cuts a stream that keeps
 * flowing, but does cut one that goes silent).
 *
 * The proxy is a real process; upstreams are scripted `Deno.serve` handlers in this process (which
 * can see the proxy abort their requests), the SDK's own server transport for protocol errors, and
 * `fixtures/http_sse_upstream.ts` as a process to kill.
 *
 * @module
 */
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import {
  answerTo,
  assert,
  assertBytesEqual,
  assertEquals,
  assertMatch,
  assertNoStrays,
  type AuditRecord,
  Collector,
  FIXTURES,
  type Json,
  pick,
  sha256Hex,
  tempDir,
} from "./helpers.ts";
import {
  chunkedBody,
  cleanEnv,
  ControlledBody,
  dig,
  freePort,
  parseSse,
  rpc,
  ScriptedUpstream,
  sseMessages,
  u8,
  waitForRecord,
  withProxy,
} from "./http_helpers.ts";

const MiB = 1024 * 1024;
const decoder = new TextDecoder();
const JSON_HEADERS = {
  "content-type": "application/json",
  accept: "application/json, text/event-stream",
};

function call(id: number | string, tool = "echo"): string {
  return rpc({ id, method: "tools/call", params: { name: tool, arguments: { message: "m" } } });
}

function sseEvent(message: Record<string, unknown>): string {
  return `event: message\ndata: ${rpc(message)}\n\n`;
}

function progressEvent(token: string, progress: number): string {
  return sseEvent({
    method: "notifications/progress",
    params: { progressToken: token, progress },
  });
}

/** The error answer the proxy wrote for `id`, as parsed JSON. */
function parsed(text: string): Json {
  return JSON.parse(text);
}

/** The one record answering request `id` (sent by the client). */
function answerFor(records: AuditRecord[], id: number | string): AuditRecord {
  const request = records.find((r) =>
    r.kind === "request" && r.direction === "client_to_server" && r.jsonrpc_id === id
  );
  assert(request !== undefined, `the log holds request ${id}`);
  return answerTo(records, request);
}

function assertUpstreamError(record: AuditRecord, reason: RegExp): void {
  assertEquals(record.kind, "error");
  assertEquals(record.direction, "server_to_client");
  assertEquals(record.error?.code, -32603);
  assertEquals(record.error?.message, "upstream unavailable");
  assertMatch(String(dig(record.error?.data, "reason")), reason);
  assert(typeof record.duration_ms === "number", "the error has a duration");
}

Deno.test("upstream down: 502 with a JSON-RPC -32603 body for the request's id (type kept), recorded", async () => {
  const closed = freePort();
  const bodies: string[] = [];
  const run = await withProxy(
    "http-down",
    `http://127.0.0.1:${closed}/mcp`,
    {},
    async (proxy, client, signal) => {
      for (const id of [7, "seven"]) {
        const res = await fetch(proxy.endpoint, {
          method: "POST",
          headers: JSON_HEADERS,
          body: call(id),
          client,
          signal,
        });
        assertEquals(res.status, 502);
        assertEquals(res.headers.get("content-type"), "application/json");
        const text = await res.text();
        bodies.push(text);
        const answer = parsed(text);
        assertEquals(dig(answer, "jsonrpc"), "2.0");
        assertEquals(dig(answer, "id"), id, "the id is the request's, type kept");
        assertEquals(dig(answer, "error", "code"), -32603);
        assertEquals(dig(answer, "error", "message"), "upstream unavailable");
        assertMatch(String(dig(answer, "error", "data", "reason")), /upstream unreachable/);
      }
      // Without an id there is nothing to answer in JSON-RPC, but the status still says it.
      const note = await fetch(proxy.endpoint, {
        method: "POST",
        headers: JSON_HEADERS,
        body: rpc({ method: "notifications/initialized" }),
        client,
        signal,
      });
      assertEquals(note.status, 502);
      await note.body?.cancel();
      const get = await fetch(proxy.endpoint, {
        headers: { accept: "text/event-stream" },
        client,
        signal,
      });
      assertEquals(get.status, 502);
      await get.body?.cancel();
    },
  );
  for (const [i, id] of [7, "seven"].entries()) {
    const answer = answerFor(run.records, id);
    assertUpstreamError(answer, /upstream unreachable/);
    assertEquals([answer.method, answer.tool_name], ["tools/call", "echo"]);
    assertEquals(
      answer.wire_sha256,
      await sha256Hex(bodies[i]!.trimEnd()),
      "hash of what was sent",
    );
  }
  assertEquals(pick(run.records, { kind: "notification" }).length, 1, "the notification is logged");
});

Deno.test("an upstream that sends no headers within proxy.upstream_timeout_ms: 502 and a record, and the upstream request is aborted", async () => {
  await using upstream = new ScriptedUpstream(async ({ request }) => {
    await request.aborted;
    return new Response(null, { status: 500 });
  });
  const run = await withProxy(
    "http-no-headers",
    upstream.url,
    { MCP_AUDIT_PROXY_UPSTREAM_TIMEOUT_MS: "300" },
    async (proxy, client, signal) => {
      const started = performance.now();
      const res = await fetch(proxy.endpoint, {
        method: "POST",
        headers: JSON_HEADERS,
        body: call(8),
        client,
        signal,
      });
      assertEquals(res.status, 502);
      const answer = parsed(await res.text());
      assert(performance.now() - started >= 290, "the proxy waited for the timeout");
      assertEquals(dig(answer, "id"), 8);
      assertEquals(dig(answer, "error", "code"), -32603);
      assertMatch(
        String(dig(answer, "error", "data", "reason")),
        /no response headers within 300 ms/,
      );
      await upstream.waitFor(
        () => upstream.requests[0]?.wasAborted === true,
        "the upstream request to be aborted",
        signal,
      );
      await upstream.waitFor(
        () => upstream.inFlight === 0,
        "no upstream request in flight",
        signal,
      );
    },
  );
  assertUpstreamError(answerFor(run.records, 8), /no response headers within 300 ms/);
});

Deno.test("upstream killed mid-SSE-stream: the client's stream ends with a -32603 event for the pending request, and it is recorded", async () => {
  await using dir = await tempDir("http-killed-fixture");
  const fixture = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${FIXTURES}http_sse_upstream.ts`],
    cwd: dir.path,
    env: cleanEnv(),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out = new Collector(fixture.stdout);
  const err = new Collector(fixture.stderr);
  let killed = false;
  try {
    const setup = AbortSignal.timeout(20_000);
    await out.waitFor((c) => /listening on \d+/.test(c.text()), "the fixture to listen", setup);
    const port = Number(/listening on (\d+)/.exec(out.text())![1]);
    let streamed = "";
    const run = await withProxy(
      "http-killed-upstream",
      `http://127.0.0.1:${port}/mcp`,
      {},
      async (proxy, client, signal) => {
        const res = await fetch(proxy.endpoint, {
          method: "POST",
          headers: JSON_HEADERS,
          body: call(9, "slow"),
          client,
          signal,
        });
        assertEquals(res.status, 200);
        const body = new Collector(res.body!, { lines: false });
        await body.waitFor(
          (c) => c.text().includes('"notifications/progress"'),
          "the first event",
          signal,
        );
        fixture.kill("SIGKILL");
        killed = true;
        await fixture.status;
        await body.done;
        streamed = body.text();
      },
    );
    const messages = sseMessages(u8(streamed)).map((m) => parsed(m));
    assertEquals(messages.length, 2, `a progress event, then the error: ${streamed}`);
    assertEquals(dig(messages[1], "id"), 9);
    assertEquals(dig(messages[1], "error", "code"), -32603);
    assertMatch(String(dig(messages[1], "error", "data", "reason")), /upstream stream failed/);
    const answer = answerFor(run.records, 9);
    assertUpstreamError(answer, /upstream stream failed/);
    assertEquals(answer.tool_name, "slow");
    assertEquals(pick(run.records, { method: "notifications/progress" }).length, 1);
  } finally {
    if (!killed) fixture.kill("SIGKILL");
    await fixture.status;
    await Promise.all([out.done, err.done]);
  }
  await assertNoStrays(dir.path);
});

Deno.test("client disconnect mid-stream, or before the upstream answered, aborts the upstream request and records the undelivered answer (data.delivered: false); a GET stream's too", async () => {
  const bodies: ControlledBody[] = [];
  await using upstream = new ScriptedUpstream(async ({ request }) => {
    if (request.headers.get("x-script") === "no-headers") {
      await request.aborted;
      return new Response(null, { status: 500 });
    }
    const body = new ControlledBody();
    bodies.push(body);
    body.push(request.method === "GET" ? ": open\n\n" : progressEvent("p-10", 1));
    return new Response(body.stream, { headers: { "content-type": "text/event-stream" } });
  });
  const run = await withProxy(
    "http-client-gone",
    upstream.url,
    {},
    async (proxy, client, signal, dir) => {
      const logPath = `${dir}/audit.jsonl`;
      for (const method of ["POST", "GET"] as const) {
        const leave = new AbortController();
        const res = await fetch(proxy.endpoint, {
          method,
          headers: { ...JSON_HEADERS, "mcp-session-id": "s-10" },
          body: method === "POST" ? call(10, "slow") : null,
          client,
          signal: AbortSignal.any([leave.signal, signal]),
        });
        assertEquals(res.status, 200);
        const body = new Collector(res.body!, { lines: false });
        await body.waitFor((c) => c.length > 0, `the first bytes of the ${method} stream`, signal);
        leave.abort();
        await body.done;
        const seen = upstream.requests.at(-1)!;
        await upstream.waitFor(() => seen.wasAborted, `the upstream ${method} to abort`, signal);
        await bodies.at(-1)!.cancelled;
        await upstream.waitFor(() => upstream.inFlight === 0, "no request in flight", signal);
        if (method === "POST") {
          await waitForRecord(
            logPath,
            (r) => r.kind === "error" && r.jsonrpc_id === 10,
            "the undelivered answer to request 10",
            signal,
          );
        }
      }
      // Leaving while the upstream has not even sent its headers.
      const leave = new AbortController();
      const pending = fetch(proxy.endpoint, {
        method: "POST",
        headers: { ...JSON_HEADERS, "mcp-session-id": "s-10", "x-script": "no-headers" },
        body: call(19, "slow"),
        client,
        signal: AbortSignal.any([leave.signal, signal]),
      });
      const seen = await upstream.nth(3, signal);
      leave.abort();
      await pending.then(
        () => assert(false, "the aborted fetch does not resolve"),
        (e) => assertEquals((e as Error).name, "AbortError"),
      );
      await upstream.waitFor(() => seen.wasAborted, "the upstream POST to abort", signal);
      await upstream.waitFor(() => upstream.inFlight === 0, "no request in flight", signal);
      await waitForRecord(
        logPath,
        (r) => r.kind === "error" && r.jsonrpc_id === 19,
        "the undelivered answer to request 19",
        signal,
      );
    },
  );
  for (const id of [10, 19]) {
    const answer = answerFor(run.records, id);
    assertEquals(answer.kind, "error");
    assertEquals(answer.direction, "server_to_client");
    assertEquals(answer.wire_sha256, null, "nothing was sent");
    assertEquals(dig(answer.error?.data, "delivered"), false);
    assertEquals([answer.method, answer.tool_name, answer.session], ["tools/call", "slow", "s-10"]);
  }
  assertEquals(pick(run.records, { kind: "error" }).length, 2, "the GET stream had no request");
});

Deno.test("SIGTERM with a POST stream and a GET stream open: the proxy exits 0 at once, the cut request's end is recorded before audit/stop", async () => {
  const bodies: ControlledBody[] = [];
  await using upstream = new ScriptedUpstream(({ request }) => {
    const body = new ControlledBody();
    bodies.push(body);
    body.push(request.method === "GET" ? ": open\n\n" : progressEvent("p-20", 1));
    return new Response(body.stream, { headers: { "content-type": "text/event-stream" } });
  });
  const run = await withProxy(
    "http-sigterm-streams",
    upstream.url,
    {},
    async (proxy, client, signal) => {
      const streams: Collector[] = [];
      for (const method of ["POST", "GET"] as const) {
        const res = await fetch(proxy.endpoint, {
          method,
          headers: { ...JSON_HEADERS, "mcp-session-id": "s-20" },
          body: method === "POST" ? call(20, "slow") : null,
          client,
          signal,
        });
        const body = new Collector(res.body!, { lines: false });
        await body.waitFor((c) => c.length > 0, `the ${method} stream to flow`, signal);
        streams.push(body);
      }
      assertEquals((await proxy.stop(signal)).code, 0, "SIGTERM ends the proxy with streams open");
      await Promise.all(streams.map((s) => s.done));
      await Promise.all(bodies.map((b) => b.cancelled));
      await upstream.waitFor(() => upstream.inFlight === 0, "no request in flight", signal);
    },
  );
  const answer = answerFor(run.records, 20);
  assertEquals(answer.kind, "error");
  assert(answer.seq < run.records.at(-1)!.seq, "recorded before audit/stop");
  assertEquals(dig(run.records.at(-1)!.params, "pending"), [], "nothing left pending at stop");
});

Deno.test("an SSE answer stream that ends before the answer, with no event id to resume from, is recorded: the request is closed by an error record, with or without a session", async () => {
  await using upstream = new ScriptedUpstream(({ request }) => {
    const message = JSON.parse(decoder.decode(request.body));
    return new Response(progressEvent(`p-${message.id}`, 1), {
      headers: { "content-type": "text/event-stream" },
    });
  });
  const run = await withProxy("http-early-end", upstream.url, {}, async (proxy, client, signal) => {
    for (const [id, session] of [[21, null], [22, "s-22"]] as const) {
      const res = await fetch(proxy.endpoint, {
        method: "POST",
        headers: { ...JSON_HEADERS, ...(session === null ? {} : { "mcp-session-id": session }) },
        body: call(id, "slow"),
        client,
        signal,
      });
      assertEquals(res.status, 200);
      const messages = sseMessages(u8(await res.text()));
      assert(messages.length >= 1, "the progress event arrived");
    }
  });
  for (const id of [21, 22]) {
    const answer = run.records.find((r) =>
      r.jsonrpc_id === id && r.direction === "server_to_client" &&
      (r.kind === "error" || r.kind === "response")
    );
    assert(
      answer !== undefined,
      `request ${id} got no answer and its stream ended, yet nothing in the log says so; ` +
        `audit/stop pending: ${JSON.stringify(dig(run.records.at(-1)!.params, "pending"))}`,
    );
    assertEquals([answer.kind, answer.method, answer.tool_name], ["error", "tools/call", "slow"]);
  }
});

Deno.test("an answer that arrives on a resumed GET stream (Last-Event-ID) after its POST stream ended is correlated with its request", async () => {
  await using upstream = new ScriptedUpstream(({ request }) => {
    if (request.method === "GET") {
      assertEquals(request.headers.get("last-event-id"), "ev-1");
      return new Response(`id: ev-2\ndata: ${rpc({ id: 23, result: { content: [] } })}\n\n`, {
        headers: { "content-type": "text/event-stream" },
      });
    }
    // A primer with an event id, then the stream ends: the client is to resume with GET.
    return new Response("id: ev-1\nretry: 10\ndata: \n\n", {
      headers: { "content-type": "text/event-stream" },
    });
  });
  const run = await withProxy("http-resumed", upstream.url, {}, async (proxy, client, signal) => {
    const headers = { ...JSON_HEADERS, "mcp-session-id": "s-23" };
    const res = await fetch(proxy.endpoint, {
      method: "POST",
      headers,
      body: call(23, "slow"),
      client,
      signal,
    });
    assertEquals(await res.text(), "id: ev-1\nretry: 10\ndata: \n\n");
    const resumed = await fetch(proxy.endpoint, {
      headers: { ...headers, "last-event-id": "ev-1" },
      client,
      signal,
    });
    assertEquals(sseMessages(u8(await resumed.text())).length, 1);
  });
  const answer = answerFor(run.records, 23);
  assertEquals([answer.kind, answer.method, answer.tool_name], ["response", "tools/call", "slow"]);
  assert(typeof answer.duration_ms === "number", "the resumed answer has a duration");
  assertEquals(dig(run.records.at(-1)!.params, "pending"), []);
});

Deno.test("a 16 MiB body (the default limit, exactly) passes both ways unchanged and is recorded", async () => {
  const prefix = '{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"echo",' +
    '"arguments":{"message":"';
  const request = padded(prefix, '"}}}', 16 * MiB);
  const answer = padded(
    '{"jsonrpc":"2.0","id":11,"result":{"content":[{"type":"text","text":"',
    '"}]}}',
    16 * MiB,
  );
  await using upstream = new ScriptedUpstream(() =>
    new Response(answer, { headers: { "content-type": "application/json" } })
  );
  const run = await withProxy("http-16mib", upstream.url, {}, async (proxy, client, signal) => {
    const res = await fetch(proxy.endpoint, {
      method: "POST",
      headers: JSON_HEADERS,
      body: request,
      client,
      signal,
    });
    assertEquals(res.status, 200);
    assertBytesEqual(new Uint8Array(await res.arrayBuffer()), answer, "the 16 MiB answer");
    assertBytesEqual(upstream.requests[0]!.body, request, "the 16 MiB request upstream");
  });
  const recorded = answerFor(run.records, 11);
  assertEquals(recorded.kind, "response");
  const sent = run.records.find((r) => r.kind === "request")!;
  assertEquals(sent.wire_sha256, await sha256Hex(request));
  assertEquals(recorded.wire_sha256, await sha256Hex(answer));
});

/** `head` + filler + `tail`, exactly `size` bytes. */
function padded(head: string, tail: string, size: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(size).fill(0x61);
  out.set(u8(head));
  out.set(u8(tail), size - tail.length);
  return out;
}

/** A tools/call of exactly 5000 bytes with `id`, over a 4096-byte limit. */
function oversizedCall(id: number | string): Uint8Array<ArrayBuffer> {
  return padded(
    `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"method":"tools/call","params":{"x":"`,
    '"}}',
    5000,
  );
}

/**
 * Sends `body` (5000 bytes, id `id`) to a proxy limited to 4096 bytes and checks the 413, its
 * JSON-RPC body, the records, that nothing went upstream, and that the proxy goes on serving.
 */
async function assertOversizedRefused(
  label: string,
  id: number | string,
  body: () => BodyInit,
): Promise<void> {
  await using upstream = new ScriptedUpstream(({ request }) => {
    const message = JSON.parse(decoder.decode(request.body));
    return new Response(rpc({ id: message.id, result: {} }), {
      headers: { "content-type": "application/json" },
    });
  });
  const run = await withProxy(
    label,
    upstream.url,
    { MCP_AUDIT_PROXY_MAX_MESSAGE_BYTES: "4096" },
    async (proxy, client, signal) => {
      const res = await fetch(proxy.endpoint, {
        method: "POST",
        headers: JSON_HEADERS,
        body: body(),
        client,
        signal,
      });
      assertEquals(res.status, 413);
      const text = await res.text();
      assertEquals(
        res.headers.get("content-type"),
        "application/json",
        `a JSON-RPC answer, since the id ${JSON.stringify(id)} is in the body's first bytes; got: ${
          JSON.stringify(text)
        }`,
      );
      const answer = parsed(text);
      assertEquals(dig(answer, "id"), id);
      assertEquals(dig(answer, "error", "code"), -32600);
      assertEquals(dig(answer, "error", "message"), "message too large");
      assertEquals(dig(answer, "error", "data", "limit_bytes"), 4096);
      assertEquals(upstream.requests.length, 0, "nothing over the limit went upstream");
      // The proxy goes on: a small request passes.
      const small = await fetch(proxy.endpoint, {
        method: "POST",
        headers: JSON_HEADERS,
        body: rpc({ id: 14, method: "ping" }),
        client,
        signal,
      });
      assertEquals(small.status, 200);
      assertEquals(dig(await small.json(), "id"), 14);
    },
  );
  const invalid = pick(run.records, { kind: "invalid" });
  assertEquals(invalid.map((r) => [r.jsonrpc_id, r.direction, r.wire_sha256]), [
    [id, "client_to_server", null],
  ]);
  const data = invalid[0]!.error?.data;
  assertEquals(invalid[0]!.error?.code, -32600);
  assertEquals(dig(data, "limit_bytes"), 4096);
  assertEquals(dig(data, "forwarded"), false);
  assert(Number(dig(data, "size_bytes")) > 4096, "the size seen is named");
  assertEquals(
    pick(run.records, { kind: "error" }).map((r) => [r.jsonrpc_id, r.direction, r.error?.code]),
    [[id, "server_to_client", -32600]],
    "the 413's JSON-RPC answer is recorded",
  );
  assertEquals(answerFor(run.records, 14).kind, "response");
}

Deno.test("a body over proxy.max_message_bytes sent chunked (no Content-Length) is counted as it streams: 413 with -32600 data.limit_bytes for its id, recorded invalid, never upstream", async () => {
  await assertOversizedRefused(
    "http-oversized-chunked",
    "c-13",
    () => chunkedBody(pieces(oversizedCall("c-13"), 700)),
  );
});

Deno.test("a body over proxy.max_message_bytes with a Content-Length: 413 with -32600 data.limit_bytes for its id (readable in the first bytes), recorded invalid, never upstream", async () => {
  await assertOversizedRefused("http-oversized-length", 12, () => oversizedCall(12));
});

Deno.test("a body over proxy.max_message_bytes without an id: 413 and an invalid record, the proxy goes on", async () => {
  await using upstream = new ScriptedUpstream(() =>
    new Response(rpc({ id: 14, result: {} }), { headers: { "content-type": "application/json" } })
  );
  const note = padded(
    '{"jsonrpc":"2.0","method":"notifications/message","params":{"x":"',
    '"}}',
    5000,
  );
  const run = await withProxy(
    "http-oversized-note",
    upstream.url,
    { MCP_AUDIT_PROXY_MAX_MESSAGE_BYTES: "4096" },
    async (proxy, client, signal) => {
      for (const body of [() => note, () => chunkedBody(pieces(note, 1000))]) {
        const res = await fetch(proxy.endpoint, {
          method: "POST",
          headers: JSON_HEADERS,
          body: body(),
          client,
          signal,
        });
        assertEquals(res.status, 413);
        await res.body?.cancel();
      }
      assertEquals(upstream.requests.length, 0, "nothing over the limit went upstream");
      const small = await fetch(proxy.endpoint, {
        method: "POST",
        headers: JSON_HEADERS,
        body: rpc({ id: 14, method: "ping" }),
        client,
        signal,
      });
      assertEquals(small.status, 200);
      await small.body?.cancel();
    },
  );
  const invalid = pick(run.records, { kind: "invalid" });
  assertEquals(invalid.map((r) => [r.jsonrpc_id, dig(r.error?.data, "limit_bytes")]), [
    [null, 4096],
    [null, 4096],
  ]);
  assertEquals(pick(run.records, { kind: "error" }), [], "no JSON-RPC answer without an id");
});

function pieces(bytes: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; at += size) out.push(bytes.slice(at, at + size));
  return out;
}

/** The SDK's own Streamable HTTP server transport (stateless), one per request. */
function sdkUpstream(): ScriptedUpstream {
  return new ScriptedUpstream(async ({ request }) => {
    const server = new McpServer({ name: "sdk-upstream", version: "1.0.0" });
    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: true,
    });
    await server.connect(transport);
    try {
      return await transport.handleRequest(
        new Request("http://127.0.0.1/mcp", {
          method: request.method,
          headers: request.headers,
          body: request.method === "POST" ? request.body.slice() : null,
        }),
      );
    } finally {
      await server.close();
    }
  });
}

// Malformed JSON is refused unread since the framing fix (src/jsonrpc/framing.ts): some SDKs
// read a message in bytes that are not one JSON text, so the proxy forwards none of them.
Deno.test("malformed JSON is answered -32600 by the proxy, recorded invalid and never forwarded; a wrong content type gets the upstream's own status, recorded", async () => {
  await using upstream = sdkUpstream();
  const malformed = u8('{"jsonrpc":"2.0","id":15,"method":"tools/call","params":{"name":');
  const run = await withProxy("http-malformed", upstream.url, {}, async (proxy, client, signal) => {
    const res = await fetch(proxy.endpoint, {
      method: "POST",
      headers: JSON_HEADERS,
      body: malformed,
      client,
      signal,
    });
    assertEquals(res.status, 200, "the proxy's own answer");
    const answer = parsed(await res.text());
    assertEquals(dig(answer, "id"), 15, "its id, read from its first bytes");
    assertEquals(dig(answer, "error", "code"), -32600);
    assertEquals(dig(answer, "error", "data", "violation"), "not_json");

    const wrongType = await fetch(proxy.endpoint, {
      method: "POST",
      headers: { ...JSON_HEADERS, "content-type": "text/plain" },
      body: call(16),
      client,
      signal,
    });
    assertEquals(wrongType.status, 415, "the upstream's 415 passes through");
    const refusal = parsed(await wrongType.text());
    assertMatch(String(dig(refusal, "error", "message")), /Unsupported Media Type/);
    assertEquals(upstream.requests.length, 1, "the malformed body never went upstream");
    assertEquals(upstream.requests[0]!.headers.get("content-type"), "text/plain");
  });
  const records = run.records.filter((r) => r.kind !== "event");
  assertEquals(
    records.map((r) => [r.kind, r.direction, r.jsonrpc_id, r.method, r.error?.code ?? null]),
    [
      ["invalid", "client_to_server", 15, null, -32600],
      ["error", "server_to_client", 15, null, -32600],
      ["request", "client_to_server", 16, "tools/call", null],
      ["error", "server_to_client", null, null, -32000],
      ["error", "server_to_client", 16, "tools/call", -32603],
    ],
  );
  assertEquals(records[0]!.wire_sha256, await sha256Hex(malformed), "the invalid body's hash");
  // The upstream's refusal names no id; the request is closed by a record saying why.
  const closed = records[4]!;
  assertEquals(dig(closed.error?.data, "delivered"), false);
  assertMatch(String(dig(closed.error?.data, "reason")), /HTTP 415/);
});

Deno.test("the upstream timeout is an idle timeout: a stream that keeps flowing outlives it, one that goes silent is cut with a -32603 event, a JSON body that stalls gets 502", async () => {
  const timeoutMs = 600;
  const events = 24;
  const gapMs = 100;
  await using upstream = new ScriptedUpstream(({ request }) => {
    const message = JSON.parse(decoder.decode(request.body));
    const body = new ControlledBody();
    if (message.id === 24) {
      // Headers, half a JSON body, then silence.
      body.push('{"jsonrpc":"2.0","id":24,"result":{"content":[');
      return new Response(body.stream, { headers: { "content-type": "application/json" } });
    }
    body.push(progressEvent(`p-${message.id}`, 0));
    if (message.id === 17) {
      // Flowing: an event every 100 ms for 2.4 s, four times the timeout, then the answer.
      let sent = 0;
      const timer = setInterval(() => {
        if (++sent < events) return body.push(progressEvent("p-17", sent));
        clearInterval(timer);
        body.push(sseEvent({ id: 17, result: { content: [] } }));
        body.end();
      }, gapMs);
      body.cancelled.then(() => clearInterval(timer));
    }
    // Otherwise silent after the first event, until the proxy gives up.
    return new Response(body.stream, { headers: { "content-type": "text/event-stream" } });
  });
  const streams: string[] = [];
  const run = await withProxy(
    "http-idle-timeout",
    upstream.url,
    { MCP_AUDIT_PROXY_UPSTREAM_TIMEOUT_MS: String(timeoutMs) },
    async (proxy, client, signal) => {
      for (const id of [17, 18]) {
        const started = performance.now();
        const res = await fetch(proxy.endpoint, {
          method: "POST",
          headers: JSON_HEADERS,
          body: call(id, "slow"),
          client,
          signal,
        });
        assertEquals(res.status, 200);
        const text = await res.text();
        streams.push(text);
        if (id === 17) {
          assert(
            performance.now() - started > 3 * timeoutMs,
            "the stream lasted several timeouts",
          );
        }
      }
      const stalled = await fetch(proxy.endpoint, {
        method: "POST",
        headers: JSON_HEADERS,
        body: call(24, "slow"),
        client,
        signal,
      });
      assertEquals(stalled.status, 502, "a JSON answer that stalls midway");
      streams.push(await stalled.text());
      await upstream.waitFor(() => upstream.requests[1]?.wasAborted === true, "abort", signal);
      await upstream.waitFor(() => upstream.requests[2]?.wasAborted === true, "abort", signal);
      await upstream.waitFor(() => upstream.inFlight === 0, "no request in flight", signal);
    },
  );
  const flowing = sseMessages(u8(streams[0]!)).map((m) => parsed(m));
  assertEquals(flowing.length, events + 1, "every event and the answer arrived");
  assertEquals(dig(flowing.at(-1), "result", "content"), []);
  assertEquals(answerFor(run.records, 17).kind, "response");
  assertEquals(pick(run.records, { method: "notifications/progress" }).length, events + 1);

  const silent = parseSse(u8(streams[1]!));
  const last = parsed(silent.at(-1)!.data!);
  assertEquals(dig(last, "id"), 18);
  assertEquals(dig(last, "error", "code"), -32603);
  assertMatch(String(dig(last, "error", "data", "reason")), /went quiet for 600 ms/);
  assertUpstreamError(answerFor(run.records, 18), /went quiet for 600 ms/);
  assertEquals(upstream.requests[0]!.wasAborted, false, "the flowing stream was never cut");

  const stalled = parsed(streams[2]!);
  assertEquals(dig(stalled, "id"), 24);
  assertEquals(dig(stalled, "error", "code"), -32603);
  assertMatch(String(dig(stalled, "error", "data", "reason")), /quiet for 600 ms mid-response/);
  assertUpstreamError(answerFor(run.records, 24), /quiet for 600 ms mid-response/);
});
