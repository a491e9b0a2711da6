import assert from "node:assert/strict";
import {
  acceptsGzip,
  CONTENT_TYPE,
  ExpositionError,
  negotiate,
  toOpenMetrics,
} from "./exposition.ts";

Deno.test("negotiation: Prometheus 2.42's Accept gets OpenMetrics", () => {
  assert.equal(
    negotiate(
      "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    ),
    "openmetrics",
  );
});

Deno.test("negotiation: q-values decide, then specificity, text when nothing matches", () => {
  assert.equal(negotiate(null), "text");
  assert.equal(negotiate(""), "text");
  assert.equal(negotiate("*/*"), "text");
  assert.equal(negotiate("text/plain"), "text");
  assert.equal(negotiate("application/json"), "text");
  assert.equal(negotiate("application/openmetrics-text"), "openmetrics");
  assert.equal(negotiate("Application/OpenMetrics-Text; Version=1.0.0"), "openmetrics");
  assert.equal(negotiate("application/openmetrics-text;version=0.0.1"), "openmetrics");
  // A version we do not write is not accepted.
  assert.equal(negotiate("application/openmetrics-text;version=2.0.0"), "text");
  assert.equal(
    negotiate("text/plain;version=1.0.0,application/openmetrics-text;q=0.2"),
    "openmetrics",
  );
  assert.equal(negotiate("text/plain;q=0.9,application/openmetrics-text;q=0.8"), "text");
  assert.equal(negotiate("application/openmetrics-text;q=0.5,text/plain;q=0.5"), "openmetrics");
  assert.equal(negotiate("text/plain;q=0.5,application/openmetrics-text;q=0.5"), "text");
  assert.equal(negotiate("*/*;q=0.9,application/openmetrics-text;q=0.9"), "openmetrics");
  assert.equal(negotiate("application/openmetrics-text;q=0"), "text");
  assert.equal(negotiate("application/openmetrics-text;q=bogus"), "text");
  assert.equal(negotiate(`application/openmetrics-text;q="0.7"`), "openmetrics");
  assert.equal(negotiate(",,;;=,application/openmetrics-text"), "openmetrics");
});

Deno.test("gzip only when Accept-Encoding takes it", () => {
  assert.ok(acceptsGzip("gzip"));
  assert.ok(acceptsGzip("deflate, gzip;q=1.0, *;q=0.5"));
  assert.ok(acceptsGzip("*"));
  assert.ok(acceptsGzip("x-gzip"));
  assert.ok(!acceptsGzip(null));
  assert.ok(!acceptsGzip("identity"));
  assert.ok(!acceptsGzip("gzip;q=0"));
  assert.ok(!acceptsGzip("gzip;q=0, *"));
  assert.ok(!acceptsGzip("br"));
});

Deno.test("content types name their versions", () => {
  assert.equal(CONTENT_TYPE.text, "text/plain; version=0.0.4; charset=utf-8");
  assert.equal(
    CONTENT_TYPE.openmetrics,
    "application/openmetrics-text; version=1.0.0; charset=utf-8",
  );
});

const TEXT = `# HELP mcp_audit_entries_total Total audit entries recorded.
# TYPE mcp_audit_entries_total counter
mcp_audit_entries_total{transport="stdio",method="tools/call"} 3
# HELP odd_gauge A "quoted" help\\nwith a newline and a \\\\ backslash.
# TYPE odd_gauge gauge
odd_gauge{v="a\\"b\\\\c\\nd"} 1.5
# HELP d_seconds Durations.
# TYPE d_seconds histogram
d_seconds_count{s="ok"} 2
d_seconds_sum{s="ok"} 0.75
d_seconds_bucket{s="ok",le="0.5"} 1
d_seconds_bucket{s="ok",le="1"} 2
d_seconds_bucket{s="ok",le="+Inf"} 2
d_seconds_count{s="le=\\"1\\""} 0
d_seconds_sum{s="le=\\"1\\""} 0
d_seconds_bucket{s="le=\\"1\\"",le="0.5"} 0
d_seconds_bucket{s="le=\\"1\\"",le="1"} 0
d_seconds_bucket{s="le=\\"1\\"",le="+Inf"} 0
# HELP n_total Plain.
# TYPE n_total counter
n_total 1e+21
`;

const OPENMETRICS = `# HELP mcp_audit_entries Total audit entries recorded.
# TYPE mcp_audit_entries counter
mcp_audit_entries_total{transport="stdio",method="tools/call"} 3
# HELP odd_gauge A \\"quoted\\" help\\nwith a newline and a \\\\ backslash.
# TYPE odd_gauge gauge
odd_gauge{v="a\\"b\\\\c\\nd"} 1.5
# HELP d_seconds Durations.
# TYPE d_seconds histogram
d_seconds_bucket{s="ok",le="0.5"} 1
d_seconds_bucket{s="ok",le="1"} 2
d_seconds_bucket{s="ok",le="+Inf"} 2
d_seconds_sum{s="ok"} 0.75
d_seconds_count{s="ok"} 2
d_seconds_bucket{s="le=\\"1\\"",le="0.5"} 0
d_seconds_bucket{s="le=\\"1\\"",le="1"} 0
d_seconds_bucket{s="le=\\"1\\"",le="+Inf"} 0
d_seconds_sum{s="le=\\"1\\""} 0
d_seconds_count{s="le=\\"1\\""} 0
# HELP n Plain.
# TYPE n counter
n_total 1e+21
# EOF
`;

Deno.test("OpenMetrics from text 0.0.4: counter families lose _total, help escapes quotes, histograms in order, # EOF", () => {
  assert.equal(toOpenMetrics(TEXT), OPENMETRICS);
});

Deno.test("OpenMetrics of no metrics is just # EOF", () => {
  assert.equal(toOpenMetrics("# no registered metrics"), "# EOF\n");
  assert.equal(toOpenMetrics(""), "# EOF\n");
});

Deno.test("OpenMetrics refuses a sample outside its family", () => {
  assert.throws(
    () => toOpenMetrics("# HELP a A.\n# TYPE a gauge\nb 1\n"),
    ExpositionError,
  );
  assert.throws(() => toOpenMetrics("{} 1\n"), ExpositionError);
});
