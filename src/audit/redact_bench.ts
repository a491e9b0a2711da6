/**
 * Redaction of the audit copy: key redaction, value redaction with every detector, and both in
 * one walk as the exchange applies them, on the params of a typical tool call and on a large
 * tool result.
 * Run with `deno bench src/audit/redact_bench.ts`.
 *
 * @module
 */
import { DEFAULT_KEY_PATTERNS, KeyRedactor, Redaction } from "./redact.ts";
import { ValueRedactor } from "./detectors.ts";
import type { JsonValue } from "../jsonrpc/json.ts";

const PROSE = "Summarise the quarterly report for the board and list the open risks. " +
  "Keep it under three hundred words, cite the sections you used, and flag anything that " +
  "changed since the last meeting; the finance team wants the draft by Friday afternoon.";

/** A tools/call's params: a few hundred bytes of prose, numbers, a nested object, a secret key. */
const params: JsonValue = {
  name: "search_documents",
  arguments: {
    query: PROSE,
    limit: 10,
    include_archived: false,
    filters: { lang: "en", tags: ["q3", "board", "finance"], owner: "team-7" },
    api_key: "not-a-real-key-0123456789",
  },
  _meta: { progressToken: 17 },
};

/** A large tool result: 200 search hits of prose, about 90 KB. */
const large: JsonValue = {
  content: Array.from({ length: 200 }, (_, i) => ({
    type: "text",
    text: `hit ${i}: ${PROSE} Contact the author at the usual address.`,
    annotations: { priority: 0.5, audience: ["user"] },
  })),
  structuredContent: { total: 200, page: 1 },
  isError: false,
};

const keys = new KeyRedactor(DEFAULT_KEY_PATTERNS);
const values = new ValueRedactor();

/** Both, as the exchange applies them: one walk. */
const both = new Redaction(keys, values);

Deno.bench("key redaction: tools/call params", { group: "params" }, () => {
  keys.redact(params, "params");
});
Deno.bench("value redaction: tools/call params", { group: "params" }, () => {
  values.redact(params, "params");
});
Deno.bench("key and value redaction, one walk: tools/call params", { group: "params" }, () => {
  both.redact(params, "params");
});

Deno.bench("key redaction: large result", { group: "large" }, () => {
  keys.redact(large, "result");
});
Deno.bench("value redaction: large result", { group: "large" }, () => {
  values.redact(large, "result");
});
Deno.bench("key and value redaction, one walk: large result", { group: "large" }, () => {
  both.redact(large, "result");
});
