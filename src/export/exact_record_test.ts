import assert from "node:assert/strict";
import { exactRecord } from "./exact_record.ts";
import { sample } from "./testdata/records.ts";
import { canonicalize } from "../audit/canonical.ts";
import { isRawNumber } from "../jsonrpc/json.ts";

Deno.test("a record read with JSON.parse gets back the numbers its line holds", () => {
  const read = sample("big numbers");
  const parsed = { record: JSON.parse(read.line), line: read.line };
  // What JSON.parse made of them: another id, and Infinity.
  assert.equal(parsed.record.jsonrpc_id, 18446744073709552000);
  const exact = exactRecord(parsed);
  assert.ok(isRawNumber(exact.jsonrpc_id));
  assert.equal(canonicalize(exact.jsonrpc_id), "18446744073709551616");
  assert.equal(canonicalize(exact.params), '{"arguments":{"x":1e400,"y":-0.5},"name":"calc"}');
  assert.equal(exact.seq, read.record.seq);
});

Deno.test("a line that does not parse leaves the record as the query read it", () => {
  const read = sample("denied");
  const torn = { record: read.record, line: read.line.slice(0, 40) };
  assert.equal(exactRecord(torn), read.record);
});
