import assert from "node:assert/strict";
import { ErrorCode, ErrorMessage } from "./errors.ts";

// The proxy's own answers are a contract (SPEC §4): scripts match on these. Changing one is a
// CHANGELOG entry.
Deno.test("the proxy's JSON-RPC error codes and messages are the golden ones", () => {
  assert.deepEqual(ErrorCode, {
    ParseError: -32700,
    InvalidRequest: -32600,
    InternalError: -32603,
    PolicyDenied: -32030,
    RateLimited: -32029,
  });
  assert.deepEqual(ErrorMessage, {
    InvalidRequest: "invalid request",
    PolicyDenied: "policy denied",
    RateLimited: "rate limit exceeded",
    TooLarge: "message too large",
    UpstreamUnavailable: "upstream unavailable",
  });
});
