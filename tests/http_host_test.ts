/**
 * Every malformed `Host` or `Origin` gets a 400 from the proxy's listener, and nothing of the
 * proxy's insides reaches the wire: not from the HTTP proxy, not from the HTTP-to-stdio bridge,
 * which uses the same guard. Hosts are read as RFC 3986 authorities (reg-name, IPv4 or bracketed
 * IPv6, optional port 0-65535); a well-formed host we do not serve is a 403.
 *
 * Requests are written on raw sockets: `fetch` will not send a malformed `Host`.
 *
 * @module
 */
import { assert, assertEquals, FIXTURES } from "./helpers.ts";
import { rawHttp, rpc, ScriptedUpstream, u8, withProxy } from "./http_helpers.ts";

const decoder = new TextDecoder();

/** `Host` values that are not one host and an optional port. */
const MALFORMED_HOSTS = [
  "[::1]evil.com",
  "[::1]:80evil.com",
  "[::1",
  "[::1]]",
  "[::1%25lo]",
  "[v1.fe]",
  "::1",
  "a b",
  "host:port:extra",
  "localhost:8080:1",
  "localhost:99999",
  "localhost:65536",
  "localhost:",
  "localhost:-1",
  "",
  "l\u00e9.localhost",
  "user@localhost",
  "user:pass@localhost:80",
  "localhost.",
  ".localhost",
  "local..host",
  "localhost%2e",
  "%6cocalhost",
  "localhost, evil.com",
  "127.1",
  "127.0.0.01",
  "local_host!",
];

/** A line that gives away how the proxy is built. */
const INTERNALS = /\bat \S+:\d+|Error:|TypeError|stack|node_modules|file:\/\/|\.ts:\d+/;

interface Case {
  label: string;
  head: string;
  status: number;
}

function cases(port: number): Case[] {
  const out: Case[] = MALFORMED_HOSTS.map((host) => ({
    label: `Host ${JSON.stringify(host)}`,
    head: `POST /mcp HTTP/1.1\r\nHost: ${host}`,
    status: 400,
  }));
  out.push(
    {
      label: "two Host headers",
      head: `POST /mcp HTTP/1.1\r\nHost: localhost\r\nHost: evil.example`,
      status: 400,
    },
    { label: "no Host (HTTP/1.0)", head: `POST /mcp HTTP/1.0`, status: 400 },
    {
      label: "an absolute-form target naming another host than Host",
      head: `POST http://evil.example/mcp HTTP/1.1\r\nHost: localhost:${port}`,
      status: 400,
    },
    {
      label: "an absolute-form target naming another port than Host",
      head: `POST http://localhost:1/mcp HTTP/1.1\r\nHost: localhost:${port}`,
      status: 400,
    },
    {
      label: "a malformed Origin",
      head: `POST /mcp HTTP/1.1\r\nHost: localhost\r\nOrigin: http://[::1]evil.com`,
      status: 400,
    },
    {
      label: "an Origin with a path",
      head: `POST /mcp HTTP/1.1\r\nHost: localhost\r\nOrigin: http://localhost/x`,
      status: 400,
    },
    {
      label: "an Origin with user information",
      head: `POST /mcp HTTP/1.1\r\nHost: localhost\r\nOrigin: http://user@localhost`,
      status: 400,
    },
    {
      label: "a foreign Host",
      head: `POST /mcp HTTP/1.1\r\nHost: evil.example`,
      status: 403,
    },
    {
      label: "a foreign Origin",
      head: `POST /mcp HTTP/1.1\r\nHost: localhost\r\nOrigin: https://evil.example`,
      status: 403,
    },
    {
      label: "Origin null",
      head: `POST /mcp HTTP/1.1\r\nHost: localhost\r\nOrigin: null`,
      status: 403,
    },
  );
  return out;
}

/** Sends every case and checks its status and that the body holds no internals. */
async function assertRefusals(port: number, signal: AbortSignal): Promise<void> {
  const body = u8(rpc({ id: 1, method: "ping" }));
  for (const c of cases(port)) {
    const res = await rawHttp(
      port,
      `${c.head}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}`,
      body,
      signal,
    );
    const text = decoder.decode(res.body);
    assertEquals(res.status, c.status, `${c.label}: ${text}`);
    assert(!INTERNALS.test(text), `${c.label}: no internals on the wire: ${text}`);
  }
}

/** Requests the guard must let through, with what the server answers. */
async function assertAccepted(port: number, signal: AbortSignal): Promise<void> {
  const body = u8(rpc({ id: 2, method: "ping" }));
  for (
    const head of [
      `POST /mcp HTTP/1.1\r\nHost: localhost:${port}`,
      `POST /mcp HTTP/1.1\r\nHost: LOCALHOST`,
      `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${port}`,
      `POST /mcp HTTP/1.1\r\nHost: [::1]:${port}`,
      `POST /mcp HTTP/1.1\r\nHost: localhost\r\nOrigin: http://localhost:3000`,
      `POST http://localhost:${port}/mcp HTTP/1.1\r\nHost: localhost:${port}`,
    ]
  ) {
    const res = await rawHttp(
      port,
      `${head}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n` +
        `Content-Length: ${body.length}`,
      body,
      signal,
    );
    assert(res.status < 400, `${head.split("\r\n").join(" / ")}: accepted, got ${res.status}`);
  }
}

Deno.test("the HTTP proxy answers every malformed Host or Origin with 400 and no stack trace; a foreign one with 403", async () => {
  await using upstream = new ScriptedUpstream(() =>
    new Response(rpc({ id: 2, result: {} }), { headers: { "content-type": "application/json" } })
  );
  const run = await withProxy("http-host", upstream.url, {}, async (proxy, _client, signal) => {
    await assertRefusals(proxy.port, signal);
    assertEquals(upstream.requests.length, 0, "no refused request reached the upstream");
    await assertAccepted(proxy.port, signal);
  });
  const refused = run.logLines.filter((l) => l.msg === "request refused");
  assert(refused.length >= MALFORMED_HOSTS.length, "each refusal is logged");
  assertEquals(
    run.logLines.filter((l) => l.level === "error"),
    [],
    "no refusal is an internal error",
  );
});

Deno.test("the HTTP-to-stdio bridge refuses the same Hosts and Origins the same way", async () => {
  const upstream = `${Deno.execPath()} run -A ${FIXTURES}echo_upstream.ts`;
  const run = await withProxy("http-host-bridge", upstream, {}, async (proxy, _client, signal) => {
    await assertRefusals(proxy.port, signal);
  });
  assertEquals(
    run.logLines.filter((l) => l.level === "error"),
    [],
    "no refusal is an internal error",
  );
});
