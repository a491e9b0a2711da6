/**
 * The HTTP proxy reaches only its configured upstream's scheme, host and port, whatever a client
 * puts in the request target (scheme-relative paths, backslashes, escaped slashes and dots, double
 * escaping, user information, absolute-form targets over a raw socket, IPv6 brackets, `..`, tabs,
 * very long paths), whatever an upstream's redirect or legacy `endpoint` event names; and every
 * record of an HTTP exchange names the exact upstream URL it reached.
 *
 * Two scripted upstreams run in this process: the configured one, and another host that must
 * never see a request. `Authorization` forwarding is on, so a request that went astray would carry
 * the client's token to the other host.
 *
 * @module
 */
import { assert, assertEquals, assertMatch } from "./helpers.ts";
import {
  ControlledBody,
  dig,
  parseSse,
  rawHttp,
  rpc,
  ScriptedUpstream,
  u8,
  type UpstreamContext,
  withProxy,
} from "./http_helpers.ts";

const decoder = new TextDecoder();
const FORWARD_AUTH = { MCP_AUDIT_PROXY_FORWARD_HEADERS: "Authorization" };

/** Answers every JSON-RPC request with the path it arrived on. */
function echoPath({ request }: UpstreamContext): Response {
  if (request.method !== "POST") return new Response(null, { status: 405 });
  let id: unknown = null;
  try {
    id = JSON.parse(decoder.decode(request.body)).id ?? null;
  } catch {
    // Not JSON: answered without an id.
  }
  return new Response(rpc({ id, result: { path: request.path } }), {
    headers: { "content-type": "application/json" },
  });
}

/** Request targets that would reach `host` (another host:port) if read as URLs of their own. */
function confusions(host: string, proxyPort: number): string[] {
  const [, port] = host.split(":");
  return [
    `//${host}/x`,
    `///${host}/x`,
    `//${host}`,
    `/\\${host}/x`,
    `/\\/${host}/x`,
    `\\\\${host}/x`,
    `/%2f%2f${host}/x`,
    `/%2F${host}/x`,
    `/%5c${host}/x`,
    `/%5C%5C${host}/x`,
    `/%2e%2e/%2e%2e/x`,
    `/%2E%2E%2f%2E%2E%2fx`,
    `/%252e%252e/x`,
    `/%252f%252f${host}/x`,
    `/..%2f..%2fx`,
    `/mcp/../../x`,
    `/./x`,
    `/..`,
    `/x/%00/y`,
    `http://${host}/x`,
    `http://${host}`,
    `HTTP://${host}/x`,
    `https://${host}/x`,
    `http://localhost@${host}/x`,
    `http://localhost:${proxyPort}@${host}/x`,
    `http://[::1]:${port}/x`,
    `http://[::ffff:127.0.0.1]:${port}/x`,
    `//[::1]:${port}/x`,
    `/[::1]:${port}/x`,
    `/x#@${host}`,
    `${host}`,
    `*`,
    `/x\ty`,
    `/x y`,
    `/` + "a".repeat(20_000),
  ];
}

Deno.test("no request target reaches another host: URL confusions are refused with 400, never forwarded, never with Authorization", async () => {
  await using upstream = new ScriptedUpstream(echoPath);
  await using other = new ScriptedUpstream(echoPath);
  const otherHost = `127.0.0.1:${other.port}`;
  const run = await withProxy(
    "http-relay",
    upstream.url,
    FORWARD_AUTH,
    async (proxy, _c, signal) => {
      const body = u8(
        rpc({ id: 1, method: "tools/call", params: { name: "echo", arguments: {} } }),
      );
      for (const target of confusions(otherHost, proxy.port)) {
        for (const method of ["GET", "POST"]) {
          const res = await rawHttp(
            proxy.port,
            `${method} ${target} HTTP/1.1\r\nHost: localhost:${proxy.port}\r\n` +
              `Authorization: Bearer client-token\r\nContent-Type: application/json\r\n` +
              `Content-Length: ${method === "POST" ? body.length : 0}`,
            method === "POST" ? body : new Uint8Array(0),
            signal,
          );
          const shown = JSON.stringify(target.slice(0, 60));
          assert(
            res.status === 400 || res.status === 414,
            `${method} ${shown}: refused with 400 (414 when too long), got ${res.status}`,
          );
          const text = decoder.decode(res.body);
          assert(!/\bat \S+:\d+|Error:/.test(text), `${shown}: no stack trace: ${text}`);
          assertEquals(other.requests.length, 0, `${method} ${shown}: the other host saw nothing`);
          assertEquals(upstream.requests.length, 0, `${method} ${shown}: nothing forwarded`);
        }
      }
      // Paths that only look like hosts stay paths on the upstream.
      for (const target of [`/@${otherHost}/x`, `/user:pw@${otherHost}/x`, `/${otherHost}/x`]) {
        const res = await rawHttp(
          proxy.port,
          `POST ${target} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer client-token\r\n` +
            `Content-Type: application/json\r\nContent-Length: ${body.length}`,
          body,
          signal,
        );
        assertEquals(res.status, 200, `${target} is forwarded`);
        const seen = upstream.requests.at(-1)!;
        assertEquals(seen.path, target, `${target} arrives on the upstream as that path`);
        assertEquals(seen.headers.get("host"), `127.0.0.1:${upstream.port}`);
      }
      // An absolute-form target naming the proxy itself is read as its path.
      const own = await rawHttp(
        proxy.port,
        `POST http://localhost:${proxy.port}/mcp HTTP/1.1\r\nHost: localhost:${proxy.port}\r\n` +
          `Content-Type: application/json\r\nContent-Length: ${body.length}`,
        body,
        signal,
      );
      assertEquals(own.status, 200);
      assertEquals(upstream.requests.at(-1)!.path, "/mcp");
      assertEquals(other.requests.length, 0, "the other host never saw a request");
    },
  );
  const refusals = run.logLines.filter((l) =>
    l.msg === "request refused" || l.msg === "refused a malformed or slow HTTP request"
  );
  assert(refusals.length > 0, "refusals are logged");
  for (const r of run.records.filter((r) => r.upstream !== null)) {
    assert(
      String(r.upstream).startsWith(`http://127.0.0.1:${upstream.port}/`),
      `record ${r.seq} names the upstream it reached: ${r.upstream}`,
    );
  }
});

Deno.test("a relay upstream under a folder: nothing leaves the folder, and /mcp maps into it", async () => {
  await using upstream = new ScriptedUpstream(echoPath);
  const base = `http://127.0.0.1:${upstream.port}/tenant/mcp`;
  await withProxy("http-relay-folder", base, {}, async (proxy, client, signal) => {
    for (const [path, expected] of [["/mcp", "/tenant/mcp"], ["/other", "/tenant/other"]]) {
      const res = await fetch(`${proxy.origin}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: rpc({ id: 1, method: "ping" }),
        client,
        signal,
      });
      assertEquals(dig(await res.json(), "result", "path"), expected);
    }
    for (const target of ["/tenant/../admin", "/tenant/%2e%2e/admin", "/%2e%2e/admin"]) {
      const res = await rawHttp(
        proxy.port,
        `GET ${target} HTTP/1.1\r\nHost: localhost`,
        undefined,
        signal,
      );
      assertEquals(res.status, 400, `${target} is refused`);
    }
    assertEquals(upstream.requests.length, 2, "only the two plain paths were forwarded");
  });
});

Deno.test("every record of an HTTP exchange names the exact upstream URL it reached", async () => {
  await using upstream = new ScriptedUpstream(echoPath);
  const run = await withProxy("http-relay-via", upstream.url, {}, async (proxy, client, signal) => {
    for (const [id, path] of [[1, "/mcp?x=1"], [2, "/other/path"], [3, "/"]] as const) {
      const res = await fetch(`${proxy.origin}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: rpc({ id, method: "tools/call", params: { name: "echo", arguments: {} } }),
        client,
        signal,
      });
      assertEquals(res.status, 200);
      await res.body?.cancel();
    }
  });
  const origin = `http://127.0.0.1:${upstream.port}`;
  const reached = run.records
    .filter((r) => r.kind === "request" || r.kind === "response")
    .map((r) => [r.kind, r.jsonrpc_id, r.upstream]);
  assertEquals(reached, [
    ["request", 1, `${origin}/mcp?x=1`],
    ["response", 1, `${origin}/mcp?x=1`],
    ["request", 2, `${origin}/other/path`],
    ["response", 2, `${origin}/other/path`],
    ["request", 3, `${origin}/mcp`],
    ["response", 3, `${origin}/mcp`],
  ]);
});

Deno.test("an upstream's redirect never takes the proxy or the client elsewhere: not followed, Location kept on the upstream or dropped", async () => {
  await using other = new ScriptedUpstream(echoPath);
  let self = "";
  await using upstream = new ScriptedUpstream(({ request }): Response => {
    const location = request.path.startsWith("/away")
      ? `http://127.0.0.1:${other.port}/mcp`
      : `${self}/moved?y=2`;
    return new Response(null, { status: 307, headers: { location } });
  });
  self = `http://127.0.0.1:${upstream.port}`;
  const run = await withProxy(
    "http-relay-redirect",
    upstream.url,
    FORWARD_AUTH,
    async (proxy, client, signal) => {
      for (const path of ["/away", "/here"]) {
        const res = await fetch(`${proxy.origin}${path}`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: "Bearer client-token" },
          body: rpc({ id: path, method: "tools/call", params: { name: "echo", arguments: {} } }),
          redirect: "manual",
          client,
          signal,
        });
        assertEquals(res.status, 307, `${path}: the redirect is passed on`);
        await res.body?.cancel();
        const location = res.headers.get("location");
        if (path === "/away") assertEquals(location, null, "a Location elsewhere is dropped");
        else assertEquals(location, "/moved?y=2", "a Location on the upstream becomes its path");
      }
      assertEquals(other.requests.length, 0, "the proxy followed no redirect");
    },
  );
  assert(
    run.logLines.some((l) => l.msg === "dropped a redirect to another origin than the upstream's"),
    "the dropped Location is logged",
  );
  // A request whose answer was a redirect does not stay open: its end is recorded.
  const ends = run.records.filter((r) => r.kind === "error").map((r) =>
    String(dig(r.error?.data, "reason"))
  );
  assertEquals(ends.length, 2);
  for (const reason of ends) assertMatch(reason, /HTTP 307/);
});

Deno.test("a legacy endpoint event cannot steer the client past the proxy: another origin is dropped, the upstream's own becomes a path", async () => {
  await using other = new ScriptedUpstream(echoPath);
  const body = new ControlledBody();
  await using upstream = new ScriptedUpstream(({ request }) => {
    if (request.method === "GET") {
      return new Response(body.stream, { headers: { "content-type": "text/event-stream" } });
    }
    return echoPath({ request, signal: new AbortController().signal });
  });
  const run = await withProxy(
    "http-relay-endpoint",
    `${upstream.url.replace(/mcp$/, "sse")}`,
    {},
    async (proxy, client, signal) => {
      const res = await fetch(`${proxy.origin}/sse`, {
        headers: { accept: "text/event-stream" },
        client,
        signal,
      });
      body.push(
        `event: endpoint\ndata: http://127.0.0.1:${other.port}/messages?sessionId=away\n\n`,
      );
      body.push(`event: endpoint\ndata: //127.0.0.1:${other.port}/messages?sessionId=away2\n\n`);
      body.push(
        `event: endpoint\ndata: http://127.0.0.1:${upstream.port}/messages?sessionId=here\n\n`,
      );
      body.push(": ready\n\n");
      const reader = res.body!.getReader();
      const chunks: Uint8Array[] = [];
      let text = "";
      while (!text.includes(": ready")) {
        const { value, done } = await reader.read();
        if (done) break;
        chunks.push(value);
        text += decoder.decode(value, { stream: true });
      }
      const endpoints = parseSse(u8(text)).filter((e) => e.event === "endpoint").map((e) => e.data);
      assertEquals(
        endpoints,
        ["/messages?sessionId=here"],
        "only the upstream's own endpoint, as a path",
      );
      const post = await fetch(`${proxy.origin}/messages?sessionId=here`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: rpc({ id: 7, method: "ping" }),
        client,
        signal,
      });
      assertEquals(dig(await post.json(), "result", "path"), "/messages?sessionId=here");
      await reader.cancel();
      body.end();
      assertEquals(other.requests.length, 0);
    },
  );
  assertEquals(
    run.logLines.filter((l) => l.msg === "dropped a legacy endpoint event naming another origin")
      .length,
    2,
  );
  const ping = run.records.find((r) => r.kind === "request" && r.jsonrpc_id === 7);
  assertEquals(ping?.session, "here", "the endpoint's session names the records");
  assertEquals(ping?.upstream, `http://127.0.0.1:${upstream.port}/messages?sessionId=here`);
});
