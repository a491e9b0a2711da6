import assert from "node:assert/strict";
import {
  ALL_METRICS,
  GO,
  labelsOf,
  OTEL_LOGS,
  OTEL_TRACES,
  PROCESS,
  RUNTIME,
} from "./metric_names.ts";
import { PROCESS_METRIC_NAMES } from "./testdata/process_metric_names.ts";

Deno.test("metric names are unique and valid Prometheus names", () => {
  const names = ALL_METRICS.map((s) => s.name);
  assert.equal(new Set(names).size, names.length);
  for (const n of names) assert.match(n, /^[a-zA-Z_:][a-zA-Z0-9_:]*$/);
});

Deno.test("counters end in _total, nothing else does; histograms have ascending buckets", () => {
  for (const s of ALL_METRICS) {
    assert.equal(s.name.endsWith("_total"), s.type === "counter", s.name);
    if (s.type === "histogram") {
      assert.ok(s.buckets !== undefined && s.buckets.length > 0, s.name);
      for (let i = 1; i < s.buckets.length; i++) {
        assert.ok(s.buckets[i]! > s.buckets[i - 1]!, s.name);
      }
    } else {
      assert.equal(s.buckets, undefined, s.name);
    }
    assert.ok(s.help.length > 0 && !s.help.includes("\n"), s.name);
  }
});

Deno.test("the Go tool's 18 metrics, the log export's 6, the process set's 9", () => {
  assert.equal(Object.keys(GO).length, 12);
  assert.equal(Object.keys(OTEL_TRACES).length, 6);
  assert.equal(Object.keys(OTEL_LOGS).length, 6);
  assert.equal(ALL_METRICS.filter((s) => s.origin === "go").length, 18);
  assert.deepEqual(Object.values(PROCESS).map((s) => s.name), PROCESS_METRIC_NAMES);
  for (const s of Object.values(RUNTIME)) assert.ok(s.name.startsWith("deno_"));
});

Deno.test("without tool labels, only tool_name goes", () => {
  assert.deepEqual(labelsOf(GO.toolCalls, false), ["transport", "status"]);
  assert.deepEqual(labelsOf(GO.rateLimitRejections, false), ["client_id"]);
  assert.deepEqual(labelsOf(GO.entries, false), GO.entries.labels);
  assert.deepEqual(labelsOf(GO.toolCalls, true), ["transport", "tool_name", "status"]);
});
