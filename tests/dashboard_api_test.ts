/**
 * End-to-end: the dashboard's HTTP API on a real proxy (`deno run main.ts`) in front of
 * server-everything, driven by the real MCP SDK client, reached over loopback: the token on every
 * `/api/` route and the SSE stream, the failure throttle, the headers of every kind of answer,
 * 404/405, the Host and Origin checks, the Go API's shapes after real calls, and the live stream
 * with a `Last-Event-ID` reconnect. Then `mcp-audit dashboard` serving a log alone.
 *
 * No sleeps: the `dashboard listening` line, the stream's events and the process exit are awaited;
 * the log is read back when a call's answer has reached the client.
 */
import { assert, assertEquals, deadline, readLog, STORAGE, tempDir } from "./helpers.ts";
import { rawHttp } from "./http_helpers.ts";
import { DashboardProxy, LOG_NAME, SseReader, StandaloneDashboard } from "./dashboard_helpers.ts";

const TOKEN = "e2e-dashboard-token-3b9d0c";
const AUTH = { authorization: `Bearer ${TOKEN}` };

/** Every `/api/` route, with a path that exists (or does not) after the traffic of the test. */
const API_ROUTES = [
  "/api/entries",
  "/api/stats",
  "/api/verify",
  "/api/v1/info",
  "/api/v1/records",
  "/api/v1/records/1",
  "/api/v1/exchanges",
  "/api/v1/stats",
  "/api/v1/sessions",
  "/api/v1/verify",
  "/api/v1/pins",
  "/api/v1/stream",
];

const SECURITY: Record<string, string> = {
  "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; " +
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; manifest-src 'self'; " +
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
  "permissions-policy": "camera=(), microphone=(), geolocation=()",
};

function assertSecurityHeaders(headers: Headers, where: string): void {
  for (const [name, value] of Object.entries(SECURITY)) {
    assertEquals(headers.get(name), value, `${where}: ${name}`);
  }
}

/** A plain object read from JSON, for the shape checks. */
function objectOf(v: unknown, what: string): Record<string, unknown> {
  assert(typeof v === "object" && v !== null && !Array.isArray(v), `${what} is an object`);
  return Object.fromEntries(Object.entries(v));
}

/** The Go entry keys in the order the Go tool emits them (`?` ones only when set). */
const GO_ENTRY_ORDER = [
  "id",
  "timestamp",
  "direction",
  "transport",
  "method",
  "request_id",
  "tool_name",
  "params",
  "result",
  "error",
  "duration_ms",
  "client_id",
  "server_id",
  "signature",
];

Deno.test("with a token: every /api/ route refuses without it, the 11th failure is 429, the right one works everywhere and is never logged", async () => {
  await using dir = await tempDir("dashboard-auth");
  await using proxy = await DashboardProxy.start({ cwd: dir.path, token: TOKEN });
  const client = await proxy.client();
  await client.callTool({ name: "echo", arguments: { message: "first" } });

  for (const path of API_ROUTES) {
    for (const authorization of [undefined, "Bearer not-the-token", `Basic ${TOKEN}`]) {
      const res = await proxy.fetch(path, {
        headers: authorization === undefined ? {} : { authorization },
      });
      await res.body?.cancel();
      assertEquals(res.status, 401, `${path} with ${authorization ?? "no token"}`);
      assertEquals(
        res.headers.get("www-authenticate"),
        'Bearer realm="mcp-audit-dashboard"',
        path,
      );
      assertSecurityHeaders(res.headers, `401 of ${path}`);
    }
    // The right token passes, and resets this address's failures.
    const res = await proxy.fetchWith(TOKEN, path);
    assertEquals(res.status, 200, `${path} with the token`);
    await res.body?.cancel();
  }
  // The page and its assets hold no data: they load, so that the page can ask for the token.
  for (const path of ["/", "/assets/vendor/uplot/uPlot.min.css"]) {
    const res = await proxy.fetch(path);
    assertEquals(res.status, 200, path);
    await res.body?.cancel();
  }

  for (let i = 1; i <= 10; i++) {
    const res = await proxy.fetch("/api/v1/records", { headers: { authorization: "Bearer x" } });
    await res.body?.cancel();
    assertEquals(res.status, 401, `failure ${i}`);
  }
  const throttled = await proxy.fetch("/api/entries");
  assertEquals(throttled.status, 429);
  assertEquals(await throttled.text(), "too many authentication attempts\n");
  const retryAfter = Number(throttled.headers.get("retry-after"));
  assert(retryAfter >= 1 && retryAfter <= 60, `Retry-After: ${retryAfter}`);
  assertEquals(throttled.headers.get("www-authenticate"), null);
  const stillRefused = await proxy.fetch("/api/v1/info");
  assertEquals(stillRefused.status, 429);
  await stillRefused.body?.cancel();
  const passes = await proxy.fetchWith(TOKEN, "/api/v1/info");
  assertEquals(passes.status, 200, "the right token passes while throttled");
  assertEquals(objectOf(await passes.json(), "info").auth, true);

  // The stream with the token delivers; the token is in a header, never in a URL or the log.
  const last = (await readLog(proxy.logPath)).records.at(-1)!.seq;
  await using stream = await SseReader.open(proxy.origin, `/api/v1/stream?after=${last}`, AUTH);
  assertEquals(stream.response.status, 200);
  await client.callTool({ name: "echo", arguments: { message: "second" } });
  await stream.waitFor(
    (events) => events.some((e) => e.event === "record" && e.data?.includes('"tools/call"')),
    "the second call's records on the stream",
  );
  await client.close();
  await proxy.finished();
  assert(!proxy.stderr.text().includes(TOKEN), "the token is not in the proxy's stderr");
  assert(!/authorization/i.test(proxy.stderr.text()), "nor is the Authorization header");
});

Deno.test("headers on the page, an asset, data and errors; 404 and 405; a foreign Host or Origin is 403", async () => {
  await using dir = await tempDir("dashboard-headers");
  await using proxy = await DashboardProxy.start({ cwd: dir.path });
  const cases: [string, RequestInit, number, string][] = [
    ["/", {}, 200, "no-store"],
    ["/assets/vendor/uplot/uPlot.min.css", {}, 200, "no-cache"],
    ["/api/v1/info", {}, 200, "no-store"],
    ["/api/entries", {}, 200, "no-store"],
    ["/api/v1/records/999999", {}, 404, "no-store"],
    ["/api/v1/records/zero", {}, 400, "no-store"],
    ["/api/v1/nothing-here", {}, 404, "no-store"],
    ["/no-such-page", {}, 404, "no-store"],
    ["/assets/../deno.json", {}, 404, "no-store"],
    ["/assets/vendor/", {}, 404, "no-store"],
    ["/api/v1/records", { method: "POST", body: "{}" }, 405, "no-store"],
    ["/", { method: "DELETE" }, 405, "no-store"],
    ["/api/entries", { method: "PUT", body: "[]" }, 405, "no-store"],
  ];
  for (const [path, init, status, cache] of cases) {
    const res = await proxy.fetch(path, init);
    const body = await res.text();
    const where = `${init.method ?? "GET"} ${path}`;
    assertEquals(res.status, status, `${where}: ${body.slice(0, 200)}`);
    assertSecurityHeaders(res.headers, where);
    assertEquals(res.headers.get("cache-control"), cache, where);
    if (status === 405) assertEquals(res.headers.get("allow"), "GET, HEAD", where);
    if (status === 404 && path.startsWith("/api/")) {
      assert(typeof objectOf(JSON.parse(body), where).error === "string", where);
      assert(res.headers.get("content-type")?.startsWith("application/json"), where);
    }
    if (status === 404 && !path.startsWith("/api/")) assertEquals(body, "not found\n", where);
  }
  // An asset is revalidated by its hash.
  const css = await proxy.fetch("/assets/vendor/uplot/uPlot.min.css");
  await css.body?.cancel();
  const etag = css.headers.get("etag");
  assert(etag !== null && /^"[0-9a-f]{64}"$/.test(etag), `ETag ${etag}`);
  const again = await proxy.fetch("/assets/vendor/uplot/uPlot.min.css", {
    headers: { "if-none-match": etag },
  });
  assertEquals(again.status, 304);
  assertEquals(await again.text(), "");
  // HEAD: the GET answer's headers without a body.
  const head = await proxy.fetch("/api/v1/info", { method: "HEAD" });
  assertEquals([head.status, await head.text()], [200, ""]);
  assertSecurityHeaders(head.headers, "HEAD");

  const port = proxy.port;
  const rebinding = await rawHttp(
    port,
    "GET /api/v1/info HTTP/1.1\r\nHost: attacker.example:" + port,
    undefined,
    deadline(10_000),
  );
  assertEquals(rebinding.status, 403, "a name rebound to 127.0.0.1 is refused");
  const crossSite = await rawHttp(
    port,
    `GET /api/v1/records HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nOrigin: http://attacker.example`,
    undefined,
    deadline(10_000),
  );
  assertEquals(crossSite.status, 403, "another origin is refused");
  for (const response of [rebinding, crossSite]) {
    const headers = new Headers(response.headers);
    assertSecurityHeaders(headers, "a 403");
  }
  const sameOrigin = await rawHttp(
    port,
    `GET /api/v1/info HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nOrigin: http://127.0.0.1:${port}`,
    undefined,
    deadline(10_000),
  );
  assertEquals(sameOrigin.status, 200, "the page's own origin is served");
  const localhost = await rawHttp(
    port,
    `GET /api/v1/info HTTP/1.1\r\nHost: localhost:${port}`,
    undefined,
    deadline(10_000),
  );
  assertEquals(localhost.status, 200, "a loopback name is served");
});

Deno.test("Go API after real tools/call traffic: /api/entries is the Go entry array, /api/stats counts the completed calls", async () => {
  await using dir = await tempDir("dashboard-go");
  await using proxy = await DashboardProxy.start({ cwd: dir.path });
  const client = await proxy.client();
  await client.callTool({ name: "echo", arguments: { message: "one" } });
  await client.callTool({ name: "echo", arguments: { message: "two" } });
  await client.callTool({ name: "get-sum", arguments: { a: 2, b: 40 } });

  const entriesRes = await proxy.fetch("/api/entries?limit=100&method=tools/call");
  assertEquals(entriesRes.status, 200);
  assertEquals(entriesRes.headers.get("content-type"), "application/json");
  const entries: unknown = await entriesRes.json();
  assert(Array.isArray(entries), "a bare JSON array");
  const calls = entries.map((e, i) => objectOf(e, `entry ${i}`));
  assertEquals(calls.map((e) => e.tool_name), ["get-sum", "echo", "echo"], "newest first");
  for (const e of calls) {
    const keys = Object.keys(e);
    assertEquals(keys, GO_ENTRY_ORDER.filter((k) => keys.includes(k)), "Go key order");
    assertEquals(e.direction, "server→client", "a completed call is stored as its answer");
    assertEquals(e.transport, "stdio");
    assertEquals(e.method, "tools/call");
    assert(typeof e.duration_ms === "number", "duration_ms");
    assert(typeof e.signature === "string", "signature");
    assert(typeof e.request_id === "string", "request_id as a string");
    assert(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(String(e.timestamp)), "RFC 3339 UTC");
    assert("result" in e && !("error" in e), "an answered call carries its result");
  }
  const empty = await proxy.fetch("/api/entries?tool_name=no-such-tool");
  assertEquals(await empty.text(), "[]\n", "[] rather than null");
  const bad = await proxy.fetch("/api/entries?limit=ten");
  assertEquals([bad.status, await bad.text()], [400, "dashboard: invalid limit\n"]);
  const badFrom = await proxy.fetch("/api/entries?from=yesterday");
  assertEquals([badFrom.status, await badFrom.text()], [
    400,
    "dashboard: invalid from timestamp\n",
  ]);

  const stats = objectOf(await (await proxy.fetch("/api/stats")).json(), "stats");
  assertEquals(Object.keys(stats), ["total_today", "error_rate", "top_tools"]);
  assert(typeof stats.total_today === "number" && stats.total_today >= 3, "calls today");
  assert(typeof stats.error_rate === "number", "error_rate");
  const top = stats.top_tools;
  assert(Array.isArray(top), "top_tools is an array");
  assertEquals(top.map((t) => objectOf(t, "top tool")), [
    { name: "echo", count: 2 },
    { name: "get-sum", count: 1 },
  ]);
});

Deno.test("the stream delivers a new call's records as they are stored; Last-Event-ID resumes with exactly the records after it", async () => {
  await using dir = await tempDir("dashboard-stream");
  await using proxy = await DashboardProxy.start({ cwd: dir.path });
  const client = await proxy.client();
  await client.listTools();
  const before = (await readLog(proxy.logPath)).records.at(-1)!.seq;

  await using live = await SseReader.open(proxy.origin, `/api/v1/stream?after=${before}`);
  assertEquals(live.response.status, 200);
  assertEquals(live.response.headers.get("content-type"), "text/event-stream");
  assertEquals(live.response.headers.get("cache-control"), "no-store");
  assertEquals(live.response.headers.get("x-accel-buffering"), "no");
  await client.callTool({ name: "echo", arguments: { message: "live" } });
  const events = await live.waitFor(
    (es) =>
      es.some((e) =>
        e.event === "record" && /"kind":"response"/.test(e.data ?? "") &&
        /"tool_name":"echo"/.test(e.data ?? "")
      ),
    "the echo call's answer on the stream",
  );
  const seqs = events.filter((e) => e.event === "record").map((e) => Number(e.id));
  assertEquals(seqs, seqs.map((_, i) => before + 1 + i), "every record after the cursor, in order");
  const items = live.records().map((r, i) => objectOf(r, `item ${i}`));
  const request = items.find((r) => r.kind === "request" && r.tool_name === "echo");
  assert(request !== undefined, "the request is on the stream");
  assertEquals(request.direction, "client_to_server");

  // A reconnect from the request's seq gets exactly what followed it, without a gap or a repeat.
  const resumeAt = Number(request.seq);
  await client.callTool({ name: "echo", arguments: { message: "after" } });
  const stored = (await readLog(proxy.logPath)).records.filter((r) => r.seq > resumeAt);
  await using resumed = await SseReader.open(proxy.origin, "/api/v1/stream?after=1&full=1", {
    "last-event-id": String(resumeAt),
  });
  const got = await resumed.waitFor(
    (es) => es.filter((e) => e.event === "record").length >= stored.length,
    `the ${stored.length} records after seq ${resumeAt}`,
  );
  const records = got.filter((e) => e.event === "record");
  assertEquals(records.map((e) => Number(e.id)), stored.map((r) => r.seq));
  // `full=1`: each event's data is the stored line itself.
  const lines = (await readLog(proxy.logPath)).lines.map((l) => l.text);
  for (const e of records) assert(lines.includes(e.data ?? ""), `seq ${e.id} is its stored line`);
});

Deno.test({
  name:
    "mcp-audit dashboard serves a log alone, read-only, with its token; exits 0 on SIGTERM, 1 on a taken port",
  // The command reads both backends alike (its unit tests cover both); a second pass adds nothing.
  ignore: STORAGE === "sqlite",
  fn: async () => {
    await using dir = await tempDir("dashboard-standalone");
    const logPath = `${dir.path}/${LOG_NAME}`;
    {
      await using proxy = await DashboardProxy.start({ cwd: dir.path, logPath });
      const client = await proxy.client();
      await client.callTool({ name: "echo", arguments: { message: "kept" } });
      await client.close();
      assertEquals((await proxy.finished()).code, 0);
    }
    const stored = (await readLog(logPath)).records;
    await using dashboard = await StandaloneDashboard.start({
      cwd: dir.path,
      logPath,
      token: TOKEN,
    });
    const refused = await dashboard.fetch("/api/v1/records");
    assertEquals(refused.status, 401);
    await refused.body?.cancel();
    const info = objectOf(await (await dashboard.fetchWith(TOKEN, "/api/v1/info")).json(), "info");
    assertEquals([info.live, info.auth, info.log], [false, true, LOG_NAME]);
    const page = objectOf(
      await (await dashboard.fetchWith(TOKEN, "/api/v1/records?limit=1000")).json(),
      "records",
    );
    assert(Array.isArray(page.items), "items");
    assertEquals(
      page.items.map((r) => objectOf(r, "record").seq),
      stored.map((r) => r.seq).reverse(),
      "every stored record, newest first",
    );
    // Read-only: no method but GET and HEAD, and the log is unchanged by serving it.
    const post = await dashboard.fetchWith(TOKEN, "/api/v1/records", {
      method: "POST",
      body: "{}",
    });
    assertEquals(post.status, 405);
    await post.body?.cancel();
    {
      // A second dashboard on the same port cannot listen: exit 1 with one line saying what to do.
      await using second = StandaloneDashboard.spawn({
        cwd: dir.path,
        logPath,
        args: ["--port", String(dashboard.port)],
      });
      const status = await second.finished();
      assertEquals(status.code, 1);
      assert(
        /cannot listen on .*dashboard\.port/.test(second.stderr.text()),
        second.stderr.text().slice(-2000),
      );
    }
    assertEquals((await dashboard.stop("SIGTERM")).code, 0);
    assertEquals((await readLog(logPath)).records.length, stored.length, "nothing was written");
    assert(!dashboard.stderr.text().includes(TOKEN), "the token is not logged");
  },
});
