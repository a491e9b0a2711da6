import assert from "node:assert/strict";
import { clientResponseHeaders, upstreamRequestHeaders, upstreamUrl } from "./headers.ts";

Deno.test("request paths map onto the upstream URL without doubling, legacy endpoints included", () => {
  const map = (upstream: string, path: string) =>
    upstreamUrl(new URL(upstream), new URL(path, "http://proxy")).href;
  assert.equal(map("http://h/mcp", "/mcp"), "http://h/mcp");
  assert.equal(map("http://h/mcp", "/"), "http://h/mcp");
  assert.equal(map("http://h/sse", "/messages?sessionId=1"), "http://h/messages?sessionId=1");
  assert.equal(map("http://h/tenant/mcp", "/mcp"), "http://h/tenant/mcp");
  assert.equal(map("http://h/tenant/mcp", "/tenant/mcp"), "http://h/tenant/mcp");
  assert.equal(map("http://h/tenant/sse", "/tenant/messages?s=2"), "http://h/tenant/messages?s=2");
  assert.equal(map("http://h/", "/anything"), "http://h/anything");
  assert.equal(map("http://h/mcp?key=1", "/mcp"), "http://h/mcp?key=1");
});

Deno.test("headers: hop-by-hop, Connection-listed and cookies never cross; Authorization only when allowed", () => {
  const incoming = new Headers({
    connection: "keep-alive, x-secret-hop",
    "x-secret-hop": "1",
    "keep-alive": "timeout=5",
    cookie: "a=b",
    "proxy-authorization": "Basic x",
    authorization: "Bearer t",
    "mcp-session-id": "s1",
    "x-forwarded-for": "10.0.0.1",
  });
  const out = upstreamRequestHeaders(incoming, { forward: new Set(), clientAddress: "127.0.0.1" });
  assert.deepEqual([...out.keys()].sort(), [
    "accept-encoding",
    "mcp-session-id",
    "x-forwarded-for",
  ]);
  assert.equal(out.get("x-forwarded-for"), "10.0.0.1, 127.0.0.1");
  assert.equal(out.get("accept-encoding"), "identity");
  const allowed = upstreamRequestHeaders(incoming, {
    forward: new Set(["authorization"]),
    clientAddress: undefined,
  });
  assert.equal(allowed.get("authorization"), "Bearer t");
  const back = clientResponseHeaders(
    new Headers({
      "set-cookie": "x=y",
      "content-type": "text/event-stream",
      "transfer-encoding": "chunked",
    }),
  );
  assert.deepEqual([...back.keys()], ["content-type"]);
});
