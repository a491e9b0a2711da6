import assert from "node:assert/strict";
import {
  clientResponseHeaders,
  upstreamHeaderList,
  upstreamRequestHeaders,
  upstreamUrl,
} from "./headers.ts";
import { parseTarget, TargetError } from "./request_target.ts";

const map = (upstream: string, target: string) =>
  upstreamUrl(new URL(upstream), parseTarget(target)).href;

Deno.test("request paths map onto the upstream URL without doubling, legacy endpoints included", () => {
  assert.equal(map("http://h/mcp", "/mcp"), "http://h/mcp");
  assert.equal(map("http://h/mcp", "/"), "http://h/mcp");
  assert.equal(map("http://h/sse", "/messages?sessionId=1"), "http://h/messages?sessionId=1");
  assert.equal(map("http://h/tenant/mcp", "/mcp"), "http://h/tenant/mcp");
  assert.equal(map("http://h/tenant/mcp", "/tenant/mcp"), "http://h/tenant/mcp");
  assert.equal(map("http://h/tenant/sse", "/tenant/messages?s=2"), "http://h/tenant/messages?s=2");
  assert.equal(map("http://h/", "/anything"), "http://h/anything");
  assert.equal(map("http://h/mcp?key=1", "/mcp"), "http://h/mcp?key=1");
});

Deno.test("every request target stays on the upstream's scheme, host and port, or is refused", () => {
  const upstreams = ["http://h:8080/mcp", "http://h/tenant/mcp", "https://[::1]:9/a/b/mcp"];
  const targets = [
    "//other-host:9999/x",
    "///other-host/x",
    "/\\other-host/x",
    "/\\/other-host/x",
    "/%2f%2fother-host/x",
    "/%2F/other-host/x",
    "/%5cother-host/x",
    "/%2e%2e/%2e%2e/admin",
    "/%252e%252e/admin",
    "/%252f%252fother/x",
    "/..%2fadmin",
    "/tenant/../../admin",
    "/a/./b",
    "/..",
    "/@other-host/x",
    "/user:pw@other-host/x",
    "/other-host:9999/x",
    "/mcp?next=//other-host/x",
    "/mcp?u=http://other-host/",
    "/mcp#@other-host",
    "/[::2]/x",
    "/a b",
    "/a\tb",
    "/a\nb",
    "/é",
    "http://other-host/x",
    "http://user@h:8080/x",
    "https://other-host:443/x",
    "file:///etc/passwd",
    "//",
    "*",
    "other-host:443",
    "mcp",
    "/" + "x".repeat(9000),
  ];
  for (const upstream of upstreams) {
    const origin = new URL(upstream).origin;
    for (const target of targets) {
      let url: URL;
      try {
        url = upstreamUrl(new URL(upstream), parseTarget(target));
      } catch (e) {
        assert.ok(e instanceof TargetError, `${target}: refused with a TargetError, got ${e}`);
        continue;
      }
      assert.equal(url.origin, origin, `${target} through ${upstream} reached ${url.href}`);
      assert.equal(url.username + url.password, "", `${target}: no user information`);
      const folder = new URL(upstream).pathname.replace(/[^/]*$/, "");
      assert.ok(url.pathname.startsWith(folder), `${target}: stays in ${folder}: ${url.href}`);
    }
  }
});

Deno.test("URL confusions are refused, plain paths and queries pass unchanged", () => {
  for (
    const refused of [
      "//other-host/x",
      "/\\other-host/x",
      "/%2f/x",
      "/%2E%2E/x",
      "/%252e/x",
      "/%5C/x",
      "/%00",
      "/a/../b",
      "/./a",
      "*",
      "other:443",
      "ftp://h/x",
    ]
  ) {
    assert.throws(() => parseTarget(refused), TargetError, refused);
  }
  assert.equal(
    (() => {
      try {
        parseTarget("/" + "x".repeat(9000));
      } catch (e) {
        return e instanceof TargetError ? e.status : 0;
      }
      return 200;
    })(),
    414,
  );
  assert.equal(map("http://h/mcp", "/mcp?a=%2f&b=//c"), "http://h/mcp?a=%2f&b=//c");
  assert.equal(map("http://h/mcp", "/mcp/x:y@z"), "http://h/mcp/x:y@z");
  assert.equal(map("http://h/mcp", "/a%20b"), "http://h/a%20b");
  // Absolute-form: the path is what is forwarded; the authority is the guard's to compare.
  assert.deepEqual(parseTarget("http://LocalHost/mcp?x").authority, {
    host: "localhost",
    port: 80,
  });
  assert.equal(map("http://h/mcp", "http://other-host/mcp"), "http://h/mcp");
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

Deno.test("the upstream header list is what a Headers of it would give, in its order (by name)", () => {
  const incoming = new Headers({
    "x-trace": "t",
    accept: "application/json",
    "content-type": "application/json",
    "x-forwarded-for": "10.0.0.1",
    "accept-encoding": "gzip",
    "mcp-session-id": "s",
    connection: "x-trace",
  });
  const list = upstreamHeaderList(incoming, { forward: new Set(), clientAddress: "127.0.0.1" });
  assert.deepEqual(list, [...new Headers(list)]);
  assert.deepEqual(list, [
    ["accept", "application/json"],
    ["accept-encoding", "identity"],
    ["content-type", "application/json"],
    ["mcp-session-id", "s"],
    ["x-forwarded-for", "10.0.0.1, 127.0.0.1"],
  ]);
});
