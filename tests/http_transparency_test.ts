/**
 * HTTP transparency: request bodies, JSON answers and SSE event bytes reach the other side exactly
 * as sent, SSE is streamed event by event (never buffered whole), headers are cleaned as SPEC §5
 * and the README say, paths map onto the upstream without doubling, and the proxy's own listener
 * refuses foreign `Host` and `Origin` values.
 *
 * The upstream is a scripted `Deno.serve` in this process that keeps every request it receives;
 * the proxy is a real process; the client is `fetch` (or a raw TCP connection for `Host`).
 *
 * @module
 */
import {
  answerTo,
  assert,
  assertBytesEqual,
  assertEquals,
  assertMatch,
  Collector,
  concatBytes,
  pick,
  seededRandom,
  sha256Hex,
} from "./helpers.ts";
import {
  assertNoHeaders,
  dig,
  type HttpProxy,
  parseSse,
  rawHttp,
  rpc,
  ScriptedUpstream,
  u8,
  type UpstreamContext,
  withProxy,
} from "./http_helpers.ts";

const SEED = Number(Deno.env.get("E2E_SEED") ?? "20261125");
const decoder = new TextDecoder();

// ---------------------------------------------------------------------------------------------
// Bodies and SSE bytes

/** Script steps for a streamed body: bytes to write, or a pause until `gate` resolves. */
type Step = Uint8Array | { gate: Promise<void> };

/**
 * A body that writes each step as its own chunk, only when the server asks for the next one
 * (`highWaterMark: 0`), so chunk boundaries stay where the script puts them.
 */
function scriptedBody(steps: Step[]): ReadableStream<Uint8Array> {
  const queue = [...steps];
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      while (true) {
        const next = queue.shift();
        if (next === undefined) return controller.close();
        if (next instanceof Uint8Array) return controller.enqueue(next);
        await next.gate;
      }
    },
  }, { highWaterMark: 0 });
}

/** Splits `bytes` at the given offsets and at seeded random places in between. */
function oddChunks(bytes: Uint8Array, forced: number[], rand: () => number): Uint8Array[] {
  const cuts = new Set(forced.filter((c) => c > 0 && c < bytes.length));
  for (let at = 1; at < bytes.length; at += 1 + Math.floor(rand() * 23)) cuts.add(at);
  const sorted = [...cuts].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let from = 0;
  for (const c of [...sorted, bytes.length]) {
    out.push(bytes.slice(from, c));
    from = c;
  }
  return out;
}

// In every durability mode: the fsyncs' timing must never change what crosses or what is recorded.
for (const durability of ["batch", "none", "entry"] as const) {
  Deno.test(
    `request bodies, JSON answers and batches cross the HTTP proxy byte for byte, in both directions (durability ${durability})`,
    () => bodiesCrossUnchanged({ MCP_AUDIT_AUDIT_DURABILITY: durability }),
  );
}

async function bodiesCrossUnchanged(env: Record<string, string>): Promise<void> {
  const requestBody = u8(
    '{ "jsonrpc" : "2.0",\t"id" : 1 , "method":"tools/call",\n "params":{"name":"echo",' +
      '"arguments":{"big":12345678901234567890,"s":"\\u00e9 ✓ 🎉","esc":"a\\/b\\"c","f":1.50}} }',
  );
  const answerBody = u8(
    '{"id":1,  "jsonrpc":"2.0","result":{"content":[{"type":"text","text":"h\\u00e9llo ✓ 日本"}],' +
      '"n":12345678901234567890,"x":1.0e2}}\r\n',
  );
  const batchBody = u8(
    '[{"jsonrpc":"2.0","id":"b-1","method":"ping"} ,\n{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"zz"}}]',
  );
  const batchAnswer = u8('[ {"jsonrpc":"2.0","id":"b-1","result":{}} ]');
  await using upstream = new ScriptedUpstream(({ request }) => {
    const script = request.headers.get("x-script");
    const body = script === "batch" ? batchAnswer : answerBody;
    return new Response(body, {
      headers: { "content-type": "application/json; charset=utf-8" },
    });
  });
  const log = await withProxy("http-bytes", upstream.url, env, async (proxy, client, signal) => {
    for (
      const [script, sent, expected] of [["single", requestBody, answerBody], [
        "batch",
        batchBody,
        batchAnswer,
      ]] as const
    ) {
      const res = await fetch(proxy.endpoint, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          "x-script": script,
        },
        body: sent,
        client,
        signal,
      });
      assertEquals(res.status, 200);
      assertEquals(res.headers.get("content-type"), "application/json; charset=utf-8");
      assertBytesEqual(new Uint8Array(await res.arrayBuffer()), expected, `${script} answer`);
    }
    assertEquals(upstream.requests.length, 2);
    assertBytesEqual(upstream.requests[0]!.body, requestBody, "the request body upstream");
    assertBytesEqual(upstream.requests[1]!.body, batchBody, "the batch body upstream");
  });
  const recs = log.records;
  const start = recs.find((r) => r.method === "audit/start");
  assertEquals(dig(start?.params, "durability"), env.MCP_AUDIT_AUDIT_DURABILITY, "the mode run");
  assert(log.text.includes("12345678901234567890"), "big integers are logged as their digits");
  const call = recs.find((r) => r.kind === "request" && r.method === "tools/call")!;
  assertEquals(
    call.wire_sha256,
    await sha256Hex(requestBody),
    "the request's hash is of its bytes",
  );
  assertEquals(dig(call.params, "arguments", "s"), "é ✓ 🎉");
  const answer = answerTo(recs, call);
  assertEquals([answer.kind, answer.method, answer.tool_name], ["response", "tools/call", "echo"]);
  assertEquals(
    answer.wire_sha256,
    await sha256Hex(answerBody),
    "the answer's hash is of its bytes",
  );
  assertEquals(dig(answer.result, "content"), [{ type: "text", text: "héllo ✓ 日本" }]);
  // A batch: one record per message, each with the hash of the whole body it came in.
  const fromBatch = recs.filter((r) => r.kind !== "event" && r.seq > answer.seq);
  assertEquals(
    fromBatch.map((r) => [r.kind, r.direction, r.jsonrpc_id, r.method]),
    [
      ["request", "client_to_server", "b-1", "ping"],
      ["notification", "client_to_server", null, "notifications/cancelled"],
      ["response", "server_to_client", "b-1", "ping"],
    ],
  );
  assertEquals(fromBatch[0]!.wire_sha256, await sha256Hex(batchBody));
  assertEquals(fromBatch[1]!.wire_sha256, await sha256Hex(batchBody));
  assertEquals(fromBatch[2]!.wire_sha256, await sha256Hex(batchAnswer));
  for (const r of recs.filter((r) => r.kind !== "event")) assertEquals(r.transport, "http");
}

Deno.test("SSE answers are streamed event by event and every byte reaches the client unchanged: CRLF, CR, comments, ids, retry, multi-line data, UTF-8 split anywhere", async () => {
  const rand = seededRandom(SEED);
  const progress = rpc({
    method: "notifications/progress",
    params: { progressToken: "tok-3", progress: 1, total: 2, message: "ünïcødé ✓ 🎉 日本語" },
  });
  const logMessage = rpc({
    method: "notifications/message",
    params: { level: "info", data: "zwei\nZeilen — ✓" },
  });
  const result = rpc({ id: 3, result: { content: [{ type: "text", text: "done ✓ 🎉" }] } });
  // Events the client must see before the upstream goes on.
  const head = u8(
    ":ok\n\n" +
      "id: ev-1\r\nretry: 1500\r\ndata: \r\n\r\n" +
      `id: ev-2\r\nevent: message\r\ndata: ${progress}\r\n\r\n`,
  );
  // The rest: a message split over two data lines, a keep-alive comment, an event of another
  // type, and the answer with bare CR line ends.
  const multiLine = logMessage.replace('"params":', '\n"params":');
  const [line1, line2] = multiLine.split("\n");
  const tail = u8(
    `id: ev-3\ndata: ${line1}\ndata:${line2}\n\n` +
      ": keepalive ✓\n\n" +
      'event: custom\ndata: {"not":"recorded"}\n\n' +
      `id: ev-4\rdata: ${result}\r\r`,
  );
  const all = concatBytes([head, tail]);
  // Forced splits: inside a multi-byte character, between a CR and its LF, inside "data:".
  const text = decoder.decode(tail);
  const forced = [
    u8(text.slice(0, text.indexOf("—"))).length + 1,
    u8(text.slice(0, text.indexOf("✓"))).length + 2,
    u8(text.slice(0, text.indexOf("data:"))).length + 2,
    u8(text.slice(0, text.indexOf("\r"))).length + 1,
  ];
  // The first part of the tail goes out with the head, cut mid-line; the upstream then waits for
  // the client to say it has the head's events.
  const early = 17;
  let acknowledge: () => void = () => {};
  const acknowledged = new Promise<void>((resolve) => acknowledge = resolve);
  let upstreamFinished = false;
  await using upstream = new ScriptedUpstream(() => {
    const steps: Step[] = [
      concatBytes([head, tail.subarray(0, early)]),
      { gate: acknowledged },
      ...oddChunks(tail.subarray(early), forced.map((f) => f - early), rand),
    ];
    const body = scriptedBody(steps).pipeThrough(
      new TransformStream({ flush: () => void (upstreamFinished = true) }),
    );
    return new Response(body, {
      headers: { "content-type": "text/event-stream", "cache-control": "no-cache" },
    });
  });
  const request = rpc({
    id: 3,
    method: "tools/call",
    params: { name: "slow", arguments: {}, _meta: { progressToken: "tok-3" } },
  });
  const log = await withProxy("http-sse", upstream.url, {}, async (proxy, client, signal) => {
    const res = await fetch(proxy.endpoint, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
      },
      body: request,
      client,
      signal,
    });
    assertEquals(res.status, 200);
    assertEquals(res.headers.get("content-type"), "text/event-stream");
    assertEquals(res.headers.get("x-accel-buffering"), "no", "the proxy marks streams unbuffered");
    const body = new Collector(res.body!, { lines: false });
    const hasHead = (c: Collector) =>
      parseSse(c.bytes()).some((e) => e.id === "ev-2" && e.data === progress);
    await body.waitFor(hasHead, "the head's events before the upstream sends the rest", signal);
    assert(!upstreamFinished, "the upstream has not finished: the proxy streams");
    const before = body.bytes();
    assertBytesEqual(before, all.subarray(0, before.length), "what arrived first is a prefix");
    assert(before.length >= head.length, "the whole head arrived");
    acknowledge();
    await body.done;
    assert(upstreamFinished, "the upstream finished");
    assertBytesEqual(body.bytes(), all, "the SSE bytes the client received");
  });
  const recs = log.records;
  const fromServer = recs.filter((r) => r.direction === "server_to_client");
  assertEquals(
    fromServer.map((r) => [r.kind, r.method, r.jsonrpc_id]),
    [
      ["notification", "notifications/progress", null],
      ["notification", "notifications/message", null],
      ["response", "tools/call", 3],
    ],
    "one record per message event; comments, the primer and other event types are not messages",
  );
  // Each record hashes its event's data exactly (data lines joined with \n).
  const events = parseSse(all).filter((e) =>
    e.data !== null && e.data !== "" && e.event !== "custom"
  );
  assertEquals(
    fromServer.map((r) => r.wire_sha256),
    await Promise.all(events.map((e) => sha256Hex(e.data!))),
  );
  assertEquals(dig(fromServer[0]!.params, "message"), "ünïcødé ✓ 🎉 日本語");
  assertEquals(dig(fromServer[1]!.params, "data"), "zwei\nZeilen — ✓");
  const call = recs.find((r) => r.kind === "request")!;
  assertEquals(call.tool_name, "slow");
  assertEquals(answerTo(recs, call), fromServer[2], "the answer inside the stream is correlated");
  assertEquals(fromServer[2]!.tool_name, "slow");
  assert(typeof fromServer[2]!.duration_ms === "number", "the answer has a duration");
});

// ---------------------------------------------------------------------------------------------
// Headers

const CLIENT_HEADERS: Record<string, string> = {
  "content-type": "application/json",
  accept: "application/json, text/event-stream",
  connection: "X-Client-Hop",
  "x-client-hop": "must not cross",
  "keep-alive": "timeout=5",
  te: "trailers",
  "proxy-connection": "keep-alive",
  "proxy-authorization": "Basic cHJveHk6c2VjcmV0",
  cookie: "sid=cookie-secret",
  authorization: "Bearer auth-secret",
  "x-forwarded-for": "203.0.113.7",
  "mcp-session-id": "sess-42",
  "mcp-protocol-version": "2025-11-25",
  "last-event-id": "ev-41",
  "mcp-method": "tools/call",
  "mcp-name": "echo",
  "mcp-param-message": "hi there",
  "x-custom": "kept",
};

const PASSED_THROUGH = [
  "content-type",
  "accept",
  "mcp-session-id",
  "mcp-protocol-version",
  "last-event-id",
  "mcp-method",
  "mcp-name",
  "mcp-param-message",
  "x-custom",
];
const NEVER_UPSTREAM = [
  "connection",
  "x-client-hop",
  "keep-alive",
  "te",
  "proxy-connection",
  "proxy-authorization",
  "cookie",
];
const NEVER_TO_CLIENT = [
  "x-up-hop",
  "keep-alive",
  "proxy-authenticate",
  "trailer",
  "upgrade",
  "set-cookie",
];

function headerUpstream(): ScriptedUpstream {
  return new ScriptedUpstream(({ request }: UpstreamContext) => {
    const headers = new Headers({
      connection: "X-Up-Hop",
      "x-up-hop": "must not cross",
      "keep-alive": "timeout=5",
      "proxy-authenticate": "Basic",
      trailer: "X-Trailer",
      upgrade: "h2c",
      "set-cookie": "upstream=cookie-secret",
      "mcp-session-id": "sess-42",
      "x-custom-up": "kept",
    });
    if (request.method === "GET") {
      headers.set("content-type", "text/event-stream");
      return new Response(": nothing yet\n\n", { headers });
    }
    headers.set("content-type", "application/json");
    return new Response(rpc({ id: 1, result: {} }), { headers });
  });
}

async function sendWithHeaders(
  proxy: HttpProxy,
  client: Deno.HttpClient,
  method: "POST" | "GET",
  signal: AbortSignal,
): Promise<Response> {
  return await fetch(proxy.endpoint, {
    method,
    headers: CLIENT_HEADERS,
    body: method === "POST"
      ? rpc({ id: 1, method: "tools/call", params: { name: "echo", arguments: {} } })
      : null,
    client,
    signal,
  });
}

Deno.test("headers: hop-by-hop and Connection-listed ones dropped both ways, cookies and Proxy-Authorization never cross, Authorization only when configured, X-Forwarded-For appended, MCP headers passed", async () => {
  await using upstream = headerUpstream();
  await withProxy("http-headers", upstream.url, {}, async (proxy, client, signal) => {
    for (const method of ["POST", "GET"] as const) {
      const res = await sendWithHeaders(proxy, client, method, signal);
      assertEquals(res.status, 200);
      await res.body?.cancel();
      const seen = upstream.requests.at(-1)!;
      assertEquals(seen.method, method);
      assertNoHeaders(seen.headers, [...NEVER_UPSTREAM, "authorization"], `${method} upstream`);
      for (const name of PASSED_THROUGH) {
        if (method === "GET" && name === "content-type") continue;
        assertEquals(seen.headers.get(name), CLIENT_HEADERS[name]!, `${name} reaches upstream`);
      }
      assertEquals(seen.headers.get("x-forwarded-for"), "203.0.113.7, 127.0.0.1");
      assertEquals(
        seen.headers.get("host"),
        `127.0.0.1:${upstream.port}`,
        "Host is the upstream's",
      );
      assertNoHeaders(res.headers, NEVER_TO_CLIENT, `${method} answer to the client`);
      assert(
        !/x-up-hop/i.test(res.headers.get("connection") ?? ""),
        "the upstream's Connection header does not reach the client",
      );
      assertEquals(res.headers.get("mcp-session-id"), "sess-42");
      assertEquals(res.headers.get("x-custom-up"), "kept");
      if (method === "GET") {
        assertEquals(res.headers.get("content-type"), "text/event-stream");
        assertEquals(res.headers.get("x-accel-buffering"), "no");
      }
    }
  });
  // With `proxy.forward_headers: [Authorization]` the bearer token goes up; cookies still never.
  await using upstream2 = headerUpstream();
  await withProxy(
    "http-headers-auth",
    upstream2.url,
    { MCP_AUDIT_PROXY_FORWARD_HEADERS: "Authorization" },
    async (proxy, client, signal) => {
      const res = await sendWithHeaders(proxy, client, "POST", signal);
      await res.body?.cancel();
      const seen = upstream2.requests.at(-1)!;
      assertEquals(seen.headers.get("authorization"), "Bearer auth-secret");
      assertNoHeaders(seen.headers, NEVER_UPSTREAM, "upstream with Authorization forwarded");
      assertNoHeaders(res.headers, NEVER_TO_CLIENT, "answer to the client");
    },
  );
});

// ---------------------------------------------------------------------------------------------
// Paths, 202s, DELETE

Deno.test("paths map onto the upstream URL without doubling; 202 and DELETE pass through", async () => {
  await using upstream = new ScriptedUpstream(({ request }) => {
    if (request.method === "DELETE") return new Response(null, { status: 200 });
    const message = JSON.parse(decoder.decode(request.body));
    if (!("id" in message)) return new Response(null, { status: 202 });
    return new Response(rpc({ id: message.id, result: { path: request.path } }), {
      headers: { "content-type": "application/json" },
    });
  });
  const cases: [string, string][] = [
    ["/mcp", "/mcp"],
    ["/mcp?x=1&y=%20z", "/mcp?x=1&y=%20z"],
    ["/", "/mcp"],
    ["/mcp/sub", "/mcp/sub"],
    // Inside the upstream URL's folder ("/"): as it is, like a legacy SSE server's endpoint.
    ["/other", "/other"],
    ["/messages?sessionId=1", "/messages?sessionId=1"],
  ];
  const { records: recs } = await withProxy(
    "http-paths",
    upstream.url,
    {},
    async (proxy, client, signal) => {
      for (const [i, [path, expected]] of cases.entries()) {
        const res = await fetch(`${proxy.origin}${path}`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: rpc({ id: i, method: "ping" }),
          client,
          signal,
        });
        assertEquals(res.status, 200, `POST ${path}`);
        assertEquals(
          dig(await res.json(), "result", "path"),
          expected,
          `${path} maps to ${expected}`,
        );
        assertEquals(upstream.requests.at(-1)!.path, expected);
      }
      const note = await fetch(proxy.endpoint, {
        method: "POST",
        headers: { "content-type": "application/json", "mcp-session-id": "s-1" },
        body: rpc({ method: "notifications/initialized" }),
        client,
        signal,
      });
      assertEquals(note.status, 202, "a notification's 202 passes through");
      assertEquals(await note.text(), "");
      const del = await fetch(proxy.endpoint, {
        method: "DELETE",
        headers: { "mcp-session-id": "s-1" },
        client,
        signal,
      });
      assertEquals(del.status, 200);
      await del.body?.cancel();
      assertEquals(upstream.requests.at(-1)!.method, "DELETE");
      assertEquals(upstream.requests.at(-1)!.headers.get("mcp-session-id"), "s-1");
    },
  );
  assertEquals(pick(recs, { kind: "request", method: "ping" }).length, cases.length);
  for (const request of pick(recs, { kind: "request", method: "ping" })) {
    assertEquals(answerTo(recs, request).kind, "response");
  }
  const note = pick(recs, { kind: "notification", method: "notifications/initialized" });
  assertEquals(note.map((r) => r.session), ["s-1"], "the notification carries its session");
});

// ---------------------------------------------------------------------------------------------
// Host and Origin

Deno.test("the proxy's listener refuses a foreign Host or Origin with 403 and lets loopback ones through", async () => {
  await using upstream = new ScriptedUpstream(({ request }) => {
    const message = JSON.parse(decoder.decode(request.body));
    return new Response(rpc({ id: message.id, result: {} }), {
      headers: { "content-type": "application/json" },
    });
  });
  await withProxy("http-host-origin", upstream.url, {}, async (proxy, _client, signal) => {
    const port = proxy.port;
    let id = 0;
    const send = async (host: string, origin?: string) => {
      const body = u8(rpc({ id: ++id, method: "ping" }));
      const head = [
        "POST /mcp HTTP/1.1",
        `Host: ${host}`,
        ...(origin === undefined ? [] : [`Origin: ${origin}`]),
        "Content-Type: application/json",
        `Content-Length: ${body.length}`,
      ].join("\r\n");
      return await rawHttp(port, head, body, signal);
    };
    const allowed: [string, string | undefined][] = [
      [`127.0.0.1:${port}`, undefined],
      [`localhost:${port}`, undefined],
      [`[::1]:${port}`, undefined],
      [`LOCALHOST:${port}`, undefined],
      [`127.0.0.1:${port}`, "http://localhost:5173"],
      [`127.0.0.1:${port}`, "http://127.0.0.1:8080"],
      [`127.0.0.1:${port}`, "https://[::1]"],
    ];
    for (const [host, origin] of allowed) {
      const before = upstream.requests.length;
      const res = await send(host, origin);
      assertEquals(res.status, 200, `Host ${host}, Origin ${origin} is allowed`);
      assertEquals(upstream.requests.length, before + 1, "and reaches the upstream");
    }
    const refused: [string, string | undefined][] = [
      ["evil.example", undefined],
      [`evil.example:${port}`, undefined],
      [`127.0.0.1.nip.io:${port}`, undefined],
      [`127.0.0.1:${port}`, "http://evil.example"],
      [`127.0.0.1:${port}`, "https://localhost.evil.example"],
      [`127.0.0.1:${port}`, "null"],
    ];
    for (const [host, origin] of refused) {
      const before = upstream.requests.length;
      const res = await send(host, origin);
      assertEquals(res.status, 403, `Host ${host}, Origin ${origin} is refused`);
      assertEquals(upstream.requests.length, before, "and never reaches the upstream");
      assertMatch(decoder.decode(res.body), /not allowed/);
    }
  });
});
