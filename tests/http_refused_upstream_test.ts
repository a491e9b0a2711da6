/**
 * What the HTTP proxy does with an upstream's answer it refuses unread (not one message every MCP
 * SDK reads alike): nothing of it reaches the client, in a JSON body or an SSE event, and the
 * client's request still gets an answer. And a client body refused with no id to answer is a 400
 * that says why, not an empty 200.
 *
 * @module
 */
import { assertEquals, assertMatch, concatBytes, type Json, pick } from "./helpers.ts";
import { dig, parseSse, rpc, ScriptedUpstream, u8, withProxy } from "./http_helpers.ts";

const JSON_HEADERS = {
  "content-type": "application/json",
  accept: "application/json, text/event-stream",
};
const decoder = new TextDecoder();

/** An answer no SDK reads as one JSON-RPC message: JSON, but not JSON-RPC, and no id in it. */
const NOT_JSONRPC = '{"result":{"content":[{"type":"text","text":"hidden"}]}}';

Deno.test("an upstream JSON answer that is not JSON-RPC never reaches the client, which gets -32603 for its request, and the answer is recorded invalid", async () => {
  await using upstream = new ScriptedUpstream(() =>
    new Response(NOT_JSONRPC, { status: 200, headers: { "content-type": "application/json" } })
  );
  const run = await withProxy(
    "http-refused-json",
    upstream.url,
    {},
    async (proxy, client, signal) => {
      const res = await fetch(proxy.endpoint, {
        method: "POST",
        headers: JSON_HEADERS,
        body: rpc({ id: 4, method: "tools/call", params: { name: "t", arguments: {} } }),
        client,
        signal,
      });
      const text = await res.text();
      assertEquals(res.status, 502, text);
      assertEquals(
        text.includes("hidden"),
        false,
        "nothing of the refused answer reaches the client",
      );
      const answer = JSON.parse(text) as Json;
      assertEquals(dig(answer, "id"), 4);
      assertEquals(dig(answer, "error", "code"), -32603);
    },
  );
  const refused = pick(run.records, { kind: "invalid", direction: "server_to_client" });
  assertEquals(refused.length, 1, run.text);
  assertEquals(dig(refused[0]!.error as Json, "data", "violation"), "not_jsonrpc");
  assertEquals(dig(refused[0]!.error as Json, "data", "forwarded"), false);
});

Deno.test("an upstream SSE event whose data is not UTF-8 is dropped and recorded invalid; the events around it pass", async () => {
  const good = (id: number) => rpc({ id, result: { ok: true } });
  const bad = concatBytes([
    u8('{"jsonrpc":"2.0","id":99,"result":{"t":"'),
    new Uint8Array([0xff]),
    u8('"}}'),
  ]);
  const body = concatBytes([
    u8(`event: message\ndata: ${rpc({ method: "notifications/message", params: { n: 1 } })}\n\n`),
    u8("event: message\ndata: "),
    bad,
    u8("\n\n"),
    u8(`event: message\ndata: ${good(5)}\n\n`),
  ]);
  await using upstream = new ScriptedUpstream(() =>
    new Response(new Uint8Array(body), {
      status: 200,
      headers: { "content-type": "text/event-stream" },
    })
  );
  const run = await withProxy(
    "http-refused-sse",
    upstream.url,
    {},
    async (proxy, client, signal) => {
      const res = await fetch(proxy.endpoint, {
        method: "POST",
        headers: JSON_HEADERS,
        body: rpc({ id: 5, method: "tools/call", params: { name: "t", arguments: {} } }),
        client,
        signal,
      });
      const bytes = new Uint8Array(await res.arrayBuffer());
      assertEquals(res.status, 200);
      assertEquals(bytes.includes(0xff), false, "the event that is not UTF-8 is not passed on");
      const datas = parseSse(bytes).map((e) => e.data);
      assertEquals(datas.length, 2, decoder.decode(bytes));
      assertEquals(datas[1], good(5));
    },
  );
  const refused = pick(run.records, { kind: "invalid", direction: "server_to_client" });
  assertEquals(refused.map((r) => dig(r.error as Json, "data", "violation")), ["invalid_utf8"]);
});

Deno.test("a client body of white space only is a 400 naming why, and never reaches the upstream", async () => {
  await using upstream = new ScriptedUpstream(() => new Response(null, { status: 202 }));
  await withProxy("http-refused-blank", upstream.url, {}, async (proxy, client, signal) => {
    const res = await fetch(proxy.endpoint, {
      method: "POST",
      headers: JSON_HEADERS,
      body: "  \r\n ",
      client,
      signal,
    });
    assertEquals(res.status, 400);
    assertMatch(await res.text(), /not forwarded/);
    assertEquals(upstream.requests.length, 0);
  });
});

Deno.test("an upstream body that is not JSON-RPC, answering the POST of a notification, is taken as accepted: 202 without it", async () => {
  await using upstream = new ScriptedUpstream(() =>
    new Response('{"ok":true}', { status: 200, headers: { "content-type": "application/json" } })
  );
  const run = await withProxy(
    "http-refused-notify",
    upstream.url,
    {},
    async (proxy, client, signal) => {
      const res = await fetch(proxy.endpoint, {
        method: "POST",
        headers: JSON_HEADERS,
        body: rpc({ method: "notifications/initialized" }),
        client,
        signal,
      });
      assertEquals(res.status, 202);
      assertEquals(await res.text(), "");
      assertEquals(upstream.requests.length, 1, "the notification reached the upstream");
    },
  );
  const refused = pick(run.records, { kind: "invalid", direction: "server_to_client" });
  assertEquals(refused.map((r) => dig(r.error as Json, "data", "violation")), ["not_jsonrpc"]);
});
