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
import { createPublicKey } from "node:crypto";
import type { Config } from "../config/config.ts";

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
    // An empty variable is not set (as for every variable the proxy reads).
    const name = (env["MCP_AUDIT_SIGNING_SECRET"] ?? "") !== ""
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

/**
 * The key a configuration signs with, to verify by: `audit.signing.public_key_file`, else the
 * public half of `audit.signing.private_key_file`, else the HMAC `audit.secret` (the environment's
 * secret is already in it); null when it names none or signing is off. Throws {@link KeyError}
 * (and the key file errors) when a key cannot be read.
 */
export function configKeys(audit: Config["audit"]): KeyRing | null {
  if (!audit.sign) return null;
  const keyId = audit.key_id === "" ? undefined : audit.key_id;
  const { public_key_file: publicFile, private_key_file: privateFile } = audit.signing;
  if (publicFile !== "") {
    const source = `audit.signing.public_key_file ${publicFile}`;
    try {
      return new KeyRing([ed25519Entry(readPemFile(publicFile), keyId, source)]);
    } catch (e) {
      throw new KeyError(`${source}: ${(e as Error).message}`);
    }
  }
  if (privateFile !== "") {
    const source = `the public half of audit.signing.private_key_file ${privateFile}`;
    try {
      const pem = createPublicKey(readPemFile(privateFile)).export({ type: "spki", format: "pem" });
      return new KeyRing([ed25519Entry(String(pem), keyId, source)]);
    } catch (e) {
      throw new KeyError(`${source}: ${(e as Error).message}`);
    }
  }
  if (audit.secret !== "") return new KeyRing([hmacEntry(audit.secret, keyId, "audit.secret")]);
  return null;
}
