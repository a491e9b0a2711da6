/**
 * JSON-RPC error codes the proxy itself returns (SPEC §4). One place, with a golden test.
 *
 * @module
 */

/** Error codes on the wire. */
export const ErrorCode = {
  /** Invalid JSON was received. */
  ParseError: -32700,
  /** Not a valid request object; also used for a message over `proxy.max_message_bytes`. */
  InvalidRequest: -32600,
  /** The upstream cannot be reached or has gone. */
  InternalError: -32603,
  /** A guardrail rejected the request (Go-compatible). */
  PolicyDenied: -32030,
  /** The caller's rate budget is spent (Go-compatible). */
  RateLimited: -32029,
} as const;

/** Messages paired with the codes above. */
export const ErrorMessage = {
  /** A message refused unread: not one message every MCP SDK reads alike, or too deep. */
  InvalidRequest: "invalid request",
  PolicyDenied: "policy denied",
  RateLimited: "rate limit exceeded",
  TooLarge: "message too large",
  UpstreamUnavailable: "upstream unavailable",
} as const;
