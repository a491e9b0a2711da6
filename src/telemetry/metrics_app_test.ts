import assert from "node:assert/strict";
import { Logger } from "../log.ts";
import { createMetricsApp, metricsHosts } from "./metrics_app.ts";
import { Metrics } from "./metrics.ts";
import { ProxyStats } from "./proxy_stats.ts";
import { METRICS_OPTIONS } from "./testdata/metrics_options.ts";

function setup() {
  const lines: string[] = [];
  const logger = new Logger("debug", (l) => lines.push(l));
  const metrics = new Metrics(
    { ...METRICS_OPTIONS },
    { log: { queued: 0, queueCapacity: 0, backpressure: 0 }, stats: new ProxyStats() },
    logger,
  );
  const app = createMetricsApp(metrics, "/metrics", logger);
  return {
    app,
    metrics,
    lines,
    logger,
    async [Symbol.asyncDispose]() {
      await metrics.shutdown().catch(() => {});
    },
  };
}

Deno.test("GET the path: text 0.0.4, never cached, varying on Accept and Accept-Encoding", async () => {
  await using s = setup();
  const res = await s.app.request("/metrics");
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  assert.equal(res.headers.get("cache-control"), "no-store");
  assert.equal(res.headers.get("vary"), "Accept, Accept-Encoding");
  assert.equal(res.headers.get("content-encoding"), null);
  const body = await res.text();
  assert.match(body, /^# TYPE mcp_audit_async_batches_total counter$/m);
});

Deno.test("OpenMetrics for Prometheus's Accept header", async () => {
  await using s = setup();
  const res = await s.app.request("/metrics", {
    headers: {
      accept:
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    },
  });
  assert.equal(
    res.headers.get("content-type"),
    "application/openmetrics-text; version=1.0.0; charset=utf-8",
  );
  const body = await res.text();
  assert.ok(body.endsWith("# EOF\n"));
  assert.match(body, /^# TYPE mcp_audit_async_batches counter$/m);
});

Deno.test("gzip when asked: the same text, compressed", async () => {
  await using s = setup();
  const res = await s.app.request("/metrics", { headers: { "accept-encoding": "gzip, deflate" } });
  assert.equal(res.headers.get("content-encoding"), "gzip");
  const bytes = new Uint8Array(await res.arrayBuffer());
  assert.deepEqual([...bytes.subarray(0, 2)], [0x1f, 0x8b]);
  const text = await new Response(
    new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip")),
  ).text();
  assert.match(text, /^mcp_audit_async_batches_total 0$/m);
});

Deno.test("HEAD: the headers of GET and no body", async () => {
  await using s = setup();
  const res = await s.app.request("/metrics", { method: "HEAD" });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  assert.equal(await res.text(), "");
});

Deno.test("other methods are 405 with Allow; other paths 404", async () => {
  await using s = setup();
  for (const method of ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]) {
    const res = await s.app.request("/metrics", { method });
    assert.equal(res.status, 405, method);
    assert.equal(res.headers.get("allow"), "GET, HEAD");
    await res.body?.cancel();
  }
  for (const path of ["/", "/metrics/", "/metricsx", "/api/stats"]) {
    const res = await s.app.request(path);
    assert.equal(res.status, 404, path);
    await res.body?.cancel();
  }
});

Deno.test("a collection that fails is a 500 with one line, and logged", async () => {
  await using s = setup();
  await s.metrics.shutdown();
  const res = await s.app.request("/metrics");
  assert.equal(res.status, 500);
  assert.equal(await res.text(), "cannot collect metrics\n");
  const logged = s.lines.map((l) => JSON.parse(l));
  assert.equal(logged.length, 1);
  assert.equal(logged[0].level, "error");
  assert.equal(logged[0].msg, "cannot collect metrics");
});

Deno.test("a configured path is the only one served", async () => {
  await using s = setup();
  const app = createMetricsApp(s.metrics, "/internal/prom", new Logger("error", () => {}));
  assert.equal((await app.request("/internal/prom")).status, 200);
  const res = await app.request("/metrics");
  assert.equal(res.status, 404);
});

Deno.test("bound to loopback: a Host that is not a loopback name or the bound address is refused (DNS rebinding)", async () => {
  await using s = setup();
  const app = createMetricsApp(s.metrics, "/metrics", s.logger, {
    allowedHosts: metricsHosts("127.0.0.1"),
  });
  const get = (host?: string) =>
    app.request("/metrics", { headers: host === undefined ? {} : { host } });
  for (const host of ["127.0.0.1:9091", "localhost:9091", "LOCALHOST", "[::1]:9091", "127.0.0.1"]) {
    const res = await get(host);
    assert.equal(res.status, 200, host);
    await res.body?.cancel();
  }
  for (const host of ["evil.example:9091", "evil.example", "127.0.0.2", "localhost.evil.example"]) {
    const res = await get(host);
    assert.equal(res.status, 403, host);
    assert.doesNotMatch(await res.text(), /mcp_audit/, host);
  }
  for (const host of [undefined, "", "a b", "[::1", "127.0.0.1:x", "u@127.0.0.1"]) {
    const res = await get(host);
    assert.equal(res.status, 400, String(host));
    await res.body?.cancel();
  }
  // Other paths are refused as well, before any 404.
  assert.equal((await app.request("/x", { headers: { host: "evil.example" } })).status, 403);
  // Logged once (then once a 10 s at most), without the client's Host.
  const refusals = s.lines.map((l) => JSON.parse(l)).filter((l) =>
    l.msg === "the metrics listener refused a request for another host"
  );
  assert.equal(refusals.length, 1);
  assert.ok(!JSON.stringify(refusals).includes("evil"));
});

Deno.test("metricsHosts: loopback binds accept loopback names and the address; others any Host", () => {
  assert.deepEqual(metricsHosts("127.0.0.1"), new Set(["localhost", "127.0.0.1", "[::1]"]));
  assert.deepEqual(
    metricsHosts("127.0.0.5"),
    new Set(["localhost", "127.0.0.1", "[::1]", "127.0.0.5"]),
  );
  assert.deepEqual(metricsHosts("::1"), new Set(["localhost", "127.0.0.1", "[::1]"]));
  assert.deepEqual(metricsHosts("localhost"), new Set(["localhost", "127.0.0.1", "[::1]"]));
  for (const bind of ["0.0.0.0", "::", "10.0.0.5", "metrics.internal"]) {
    assert.equal(metricsHosts(bind), undefined, bind);
  }
});

Deno.test("bound for a network (no allowed hosts): any Host is served", async () => {
  await using s = setup();
  const res = await s.app.request("/metrics", { headers: { host: "prometheus-target:9091" } });
  assert.equal(res.status, 200);
  await res.body?.cancel();
});
