import assert from "node:assert/strict";
import { MeterProvider } from "@opentelemetry/sdk-metrics";
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus";
import { RuntimeMetrics, type RuntimeSource } from "./runtime_metrics.ts";

async function render(exporter: PrometheusExporter): Promise<string> {
  const { resourceMetrics } = await exporter.collect();
  return new PrometheusSerializer("", false, undefined, true, true).serialize(resourceMetrics);
}

Deno.test("runtime metrics: memory, version, and the probe's lateness", async () => {
  let now = 1000;
  const src: RuntimeSource = {
    memoryUsage: () => ({ heapUsed: 10, heapTotal: 20, external: 5 }),
    version: { deno: "2.9.6", v8: "15.0" },
    now: () => now,
  };
  const exporter = new PrometheusExporter({ preventServerStart: true });
  const provider = new MeterProvider({ readers: [exporter] });
  // No timer: the test calls the probe itself.
  using runtime = new RuntimeMetrics(provider.getMeter("t"), src, 0);
  now += 500;
  runtime.probe(500); // on time
  now += 800;
  runtime.probe(500); // 300 ms late
  const text = await render(exporter);
  await provider.shutdown();
  assert.match(text, /^deno_memory_heap_used_bytes 10$/m);
  assert.match(text, /^deno_memory_heap_total_bytes 20$/m);
  assert.match(text, /^deno_memory_external_bytes 5$/m);
  assert.match(text, /^deno_info\{version="2\.9\.6",v8="15\.0"\} 1$/m);
  assert.match(text, /^deno_event_loop_lag_seconds 0\.3$/m);
  assert.match(text, /^deno_event_loop_delay_seconds_count 2$/m);
  assert.match(text, /^deno_event_loop_delay_seconds_bucket\{le="0\.001"\} 1$/m);
  assert.match(text, /^deno_event_loop_delay_seconds_bucket\{le="0\.5"\} 2$/m);
});

Deno.test("the probe timer runs, is unref'd, and stops on close", async () => {
  const exporter = new PrometheusExporter({ preventServerStart: true });
  const provider = new MeterProvider({ readers: [exporter] });
  const runtime = new RuntimeMetrics(provider.getMeter("t"), undefined, 5);
  // Wait for the probe's own observations, not for a time.
  for (let i = 0; i < 1000; i++) {
    if (/^deno_event_loop_delay_seconds_count [1-9]/m.test(await render(exporter))) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.match(await render(exporter), /^deno_event_loop_delay_seconds_count [1-9]/m);
  runtime.close();
  await provider.shutdown();
  // The test sanitizer fails the test if the interval were still pending.
});
