/**
 * A real audit log for in-process tests of a transport: JSONL at `path`, durability `none`, HMAC
 * signing, a fixed clock and numbered ids, so that what a test finds in the file is what the
 * transport stored; and a reader of the records stored so far.
 *
 * @module
 */
import { parseJson } from "../../jsonrpc/json.ts";
import { AuditLog } from "../chain.ts";
import type { TransportName } from "../record.ts";
import { hmacSigner } from "../signing.ts";
import { JsonlStore } from "../storage/jsonl.ts";

/** An audit log writing JSONL at `path` for the transport named. */
export function testAuditLog(path: string, transport: TransportName): AuditLog {
  let n = 0;
  return new AuditLog({
    store: new JsonlStore(path, { durability: "none" }),
    signer: hmacSigner("0123456789abcdef0123456789abcdef"),
    now: () => Date.UTC(2026, 0, 1),
    newId: () => "01JD" + String(++n).padStart(22, "0"),
    clientId: "c",
    serverId: "s",
    transport,
  });
}

/** The records stored at `path` so far; none while the file does not exist. */
export function storedRecords(path: string): Record<string, unknown>[] {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch {
    return [];
  }
  return text.split("\n").filter((l) => l !== "").map((l) => {
    const v = parseJson(l);
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      throw new Error(`${path}: a line that is not a record: ${l.slice(0, 200)}`);
    }
    return v as Record<string, unknown>;
  });
}
