/**
 * HMAC-SHA256 signing of a canonical record, and the SHA-256 of a stored line.
 * Run: `deno bench src/audit/signing_bench.ts`.
 *
 * @module
 */
import { hmacSigner } from "./signing.ts";
import { sha256Hex } from "./chain.ts";

// A canonical request record is about 900 bytes.
const text = '{"client_id":"claude-desktop","params":' + JSON.stringify("p".repeat(820)) + "}";
const signer = hmacSigner("0123456789abcdef0123456789abcdef");

Deno.bench(`HMAC-SHA256 sign (${text.length} bytes)`, { group: "hash" }, () => {
  signer.sign(text);
});

Deno.bench(`sha256Hex of a line (${text.length} bytes)`, { group: "hash" }, () => {
  sha256Hex(text);
});
