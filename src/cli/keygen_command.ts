/**
 * `mcp-audit keygen [--out PREFIX]`: writes an Ed25519 key pair as PREFIX.key (PKCS#8, mode 0600)
 * and PREFIX.pub (SPKI), refusing to overwrite either.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { generateEd25519 } from "../audit/signing.ts";
import { UsageError } from "./errors.ts";

/** Runs the command; returns the exit code. */
export function keygenCommand(args: string[], out: (line: string) => void): number {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: { out: { type: "string" }, help: { type: "boolean", short: "h" } },
      strict: true,
    });
  } catch (e) {
    throw new UsageError(`keygen: ${(e as Error).message}`);
  }
  if (parsed.values.help) {
    out("usage: mcp-audit keygen [--out PREFIX]   (default PREFIX: mcp-audit-signing)");
    return 0;
  }
  const prefix = parsed.values.out ?? "mcp-audit-signing";
  const pair = generateEd25519();
  try {
    Deno.writeTextFileSync(`${prefix}.key`, pair.privatePem, { createNew: true, mode: 0o600 });
    Deno.writeTextFileSync(`${prefix}.pub`, pair.publicPem, { createNew: true, mode: 0o644 });
  } catch (e) {
    out(`mcp-audit keygen: ${(e as Error).message}`);
    return 1;
  }
  out(`wrote ${prefix}.key (private, keep it secret) and ${prefix}.pub; key id ${pair.keyId}`);
  out(`config.yaml:  audit.signing.private_key_file: ${prefix}.key`);
  out(`verify with:  mcp-audit verify --public-key ${prefix}.pub audit.jsonl`);
  return 0;
}
