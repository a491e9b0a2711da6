/**
 * Check 4, `signing`: the key the proxy would sign with is there and fit for it. Never shows a
 * secret or key bytes: only where the key comes from, its scheme, key id and length.
 *
 * - `audit.sign: false`: a warning (records unsigned; edits found by the chain alone);
 * - `audit.signing.private_key_file`: readable, an Ed25519 PKCS#8 PEM, not readable by group or
 *   others (a warning with `chmod 600`), and `audit.signing.public_key_file`, when set, its public
 *   half;
 * - else the HMAC secret (`MCP_AUDIT_SIGNING_SECRET`, `AUDIT_SECRET`, `audit.secret`): present
 *   (the proxy would write unsigned records without it: a failure), at least 32 bytes (a warning).
 *
 * @module
 */
import { createPublicKey } from "node:crypto";
import { readPemFile } from "../audit/key_file.ts";
import { defaultKeyId, ed25519Signer, hmacSigner } from "../audit/signing.ts";
import type { Config } from "../config/config.ts";
import { type CheckResult, message, result } from "./result.ts";

/** Shortest HMAC secret without a warning, in bytes (as the configuration loader warns). */
const MIN_SECRET_BYTES = 32;

const NEW_SECRET = "export AUDIT_SECRET=$(openssl rand -hex 32), or mcp-audit keygen and " +
  "audit.signing.private_key_file";

/**
 * Where the HMAC secret in force came from, by name: the variable the loader took it from
 * (`Loaded.setBy`: an empty one is not set and never named here), else the file's `audit.secret`.
 */
export function secretSource(setBy: ReadonlyMap<string, string>): string {
  return setBy.get("audit.secret") ?? "audit.secret";
}

function spkiDer(pem: string): Uint8Array {
  return new Uint8Array(createPublicKey(pem).export({ type: "spki", format: "der" }));
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function checkEd25519(audit: Config["audit"]): CheckResult {
  const file = audit.signing.private_key_file;
  const keyId = audit.key_id === "" ? undefined : audit.key_id;
  let pem: string;
  let id: string;
  try {
    pem = readPemFile(file);
    id = ed25519Signer(pem, keyId).keyId;
  } catch (e) {
    return result("signing", "fail", `audit.signing.private_key_file: ${message(e)}`, {
      fix: `mcp-audit keygen --out PREFIX, then set audit.signing.private_key_file to PREFIX's ` +
        "private key (the proxy refuses to start without it, exit 2)",
    });
  }
  const notes: string[] = [];
  const publicFile = audit.signing.public_key_file;
  if (publicFile !== "") {
    let matches: boolean;
    try {
      matches = sameBytes(spkiDer(readPemFile(publicFile)), spkiDer(pem));
    } catch (e) {
      return result("signing", "fail", `audit.signing.public_key_file: ${message(e)}`, {
        fix: `set audit.signing.public_key_file to the public key keygen wrote beside ${file}`,
      });
    }
    if (!matches) {
      return result(
        "signing",
        "fail",
        `audit.signing.public_key_file ${publicFile} is not the public half of ${file}`,
        {
          fix: "give the matching pair (mcp-audit keygen writes both); verifying with this " +
            "public key would call every record wrong key",
        },
      );
    }
    notes.push(`public key ${publicFile} matches`);
  }
  const what = `ed25519 key ${id} from ${file}`;
  const mode = Deno.statSync(file).mode;
  if (mode !== null && (mode & 0o077) !== 0) {
    return result(
      "signing",
      "warn",
      `${what}: readable by group or others (mode 0${(mode & 0o777).toString(8)})`,
      { fix: `chmod 600 ${file}`, notes },
    );
  }
  if (audit.secret !== "") notes.push("an HMAC secret is set too; records are signed with Ed25519");
  return result("signing", "ok", what, { notes });
}

/**
 * Checks the signing key the configuration names; `source` is where a secret came from
 * ({@link secretSource}).
 *
 * @example
 * ```ts
 * const r = checkSigning(loaded.config.audit, secretSource(loaded.setBy));
 * console.log(r.status, r.detail); // ok hmac-sha256 key 1a2b3c4d from AUDIT_SECRET (64 bytes)
 * ```
 */
export function checkSigning(audit: Config["audit"], source: string): CheckResult {
  if (!audit.sign) {
    return result("signing", "warn", "audit.sign is false: records are not signed", {
      fix: `set audit.sign: true with a key (${NEW_SECRET})`,
    });
  }
  if (audit.signing.private_key_file !== "") return checkEd25519(audit);
  if (audit.secret === "") {
    return result("signing", "fail", "no signing key: the proxy would write unsigned records", {
      fix: NEW_SECRET,
    });
  }
  const bytes = new TextEncoder().encode(audit.secret).length;
  const id = audit.key_id === ""
    ? defaultKeyId(audit.secret)
    : hmacSigner(audit.secret, audit.key_id).keyId;
  const what = `hmac-sha256 key ${id} from ${source} (${bytes} bytes)`;
  if (bytes < MIN_SECRET_BYTES) {
    return result("signing", "warn", `${what}: shorter than ${MIN_SECRET_BYTES} bytes`, {
      fix: `use at least 32 random bytes: export ${
        source === "audit.secret" ? "AUDIT_SECRET" : source
      }=$(openssl rand -hex 32)`,
    });
  }
  return result("signing", "ok", what);
}
