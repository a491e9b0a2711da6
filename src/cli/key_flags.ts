/**
 * The key flags `mcp-audit verify` and `mcp-audit dashboard` share (`--public-key FILE`,
 * `--key-file FILE`..., `--key-id ID`, else `MCP_AUDIT_SIGNING_SECRET` or `AUDIT_SECRET`), and the
 * key ring they make.
 *
 * @module
 */
import {
  ed25519Entry,
  hmacEntry,
  type KeyEntry,
  KeyRing,
  readKeyFile,
  readPemFile,
} from "../audit/key_file.ts";
import { KeyError } from "../audit/signing.ts";

/** The key flags as `parseArgs` options. */
export const KEY_FLAG_OPTIONS = {
  "key-file": { type: "string", multiple: true },
  "public-key": { type: "string" },
  "key-id": { type: "string" },
} as const;

/** The key flags as `parseArgs` gives them. */
export interface KeyFlags {
  "public-key"?: string | undefined;
  "key-id"?: string | undefined;
  "key-file"?: string[] | undefined;
}

/**
 * The keys given, or null when none was: every `--key-file`, then `--public-key` (Ed25519), else
 * the HMAC secret in `MCP_AUDIT_SIGNING_SECRET` or `AUDIT_SECRET`; `--key-id` names the key id of
 * the last two. Throws {@link KeyError} (and the key file errors) when a key cannot be read.
 */
export function keysFor(values: KeyFlags, env: Readonly<Record<string, string>>): KeyRing | null {
  const entries: KeyEntry[] = [];
  for (const file of values["key-file"] ?? []) entries.push(...readKeyFile(file));
  const keyId = values["key-id"];
  const publicKey = values["public-key"];
  if (publicKey !== undefined) {
    const source = `--public-key ${publicKey}`;
    try {
      entries.push(ed25519Entry(readPemFile(publicKey), keyId, source));
    } catch (e) {
      throw new KeyError(`${source}: ${(e as Error).message}`);
    }
  } else {
    const name = env["MCP_AUDIT_SIGNING_SECRET"] !== undefined
      ? "MCP_AUDIT_SIGNING_SECRET"
      : "AUDIT_SECRET";
    const secret = env[name];
    if (secret !== undefined && secret !== "") entries.push(hmacEntry(secret, keyId, name));
    else if (keyId !== undefined) {
      throw new KeyError("--key-id names the key id of AUDIT_SECRET or --public-key: give one");
    }
  }
  return entries.length === 0 ? null : new KeyRing(entries);
}
