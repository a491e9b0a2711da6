/**
 * Check 3, `chain`: the log's chain verifies, checked by `mcp-audit verify` itself (the same
 * reader of JSONL with its archives or SQLite, streamed, so memory stays bounded however big the
 * log) with the key the configuration signs with.
 *
 * The key: the HMAC secret; or for Ed25519 `audit.signing.public_key_file`, else the public half
 * of the private key, written to a temporary file for verify and removed. With signing off, or a
 * key that cannot be read (the `signing` check says why), the chain is checked without
 * signatures, which is a warning at best.
 *
 * @module
 */
import { createPublicKey } from "node:crypto";
import { readPemFile } from "../audit/key_file.ts";
import type { Config } from "../config/config.ts";
import { auditStorePath } from "../config/config.ts";
import { EXIT_INCOMPLETE, EXIT_UNVOUCHED, verifyCommand } from "../cli/verify_command.ts";
import { type CheckResult, message, result } from "./result.ts";

/** verify's line for a log whose only problem is its end: no `audit/stop` after the last record. */
const ENDS_WITHOUT_STOP = /^log: missing: log ends at seq \d+ without audit\/stop /;

/** What the check needs besides the configuration. */
export interface ChainCheckDeps {
  /** A monotonic clock in milliseconds, for the time the check took. */
  mono: () => number;
  /** Whether the signing key is usable (the `signing` check did not fail). */
  keyUsable: boolean;
}

/** The arguments and environment that make verify check with the configured key. */
interface VerifyKeys {
  args: string[];
  env: Record<string, string>;
  /** A temporary public key file to remove afterwards. */
  temp: string | undefined;
  /** Why signatures are not checked, when they are not. */
  unchecked: string | undefined;
}

function verifyKeys(audit: Config["audit"], keyUsable: boolean): VerifyKeys {
  const none = (why: string): VerifyKeys => ({
    args: ["--no-signatures"],
    env: {},
    temp: undefined,
    unchecked: why,
  });
  if (!audit.sign) return none("audit.sign is false");
  if (!keyUsable) return none("the signing key is not usable (see signing)");
  const keyId = audit.key_id === "" ? [] : ["--key-id", audit.key_id];
  const signing = audit.signing;
  if (signing.private_key_file !== "") {
    if (signing.public_key_file !== "") {
      return {
        args: ["--public-key", signing.public_key_file, ...keyId],
        env: {},
        temp: undefined,
        unchecked: undefined,
      };
    }
    const pem = createPublicKey(readPemFile(signing.private_key_file))
      .export({ type: "spki", format: "pem" }).toString();
    const temp = Deno.makeTempFileSync({ prefix: "mcp-audit-doctor-", suffix: ".pub.pem" });
    Deno.writeTextFileSync(temp, pem);
    return { args: ["--public-key", temp, ...keyId], env: {}, temp, unchecked: undefined };
  }
  if (audit.secret === "") return none("no signing key is configured");
  return {
    args: keyId,
    env: { MCP_AUDIT_SIGNING_SECRET: audit.secret },
    temp: undefined,
    unchecked: undefined,
  };
}

/**
 * Verifies the configured log's chain.
 *
 * @example
 * ```ts
 * const r = await checkChain(config.audit, { mono: () => performance.now(), keyUsable: true });
 * console.log(r.status, r.detail);
 * ```
 */
export async function checkChain(
  audit: Config["audit"],
  deps: ChainCheckDeps,
): Promise<CheckResult> {
  const path = auditStorePath(audit);
  const fix = `mcp-audit verify ${path} for details; a break means edited or cut records — ` +
    "keep the file as evidence";
  if (audit.storage === "sqlite") {
    try {
      Deno.lstatSync(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        return result("chain", "ok", `${path}: no database yet, nothing to verify`);
      }
    }
  }
  let keys: VerifyKeys;
  try {
    keys = verifyKeys(audit, deps.keyUsable);
  } catch (e) {
    keys = { args: ["--no-signatures"], env: {}, temp: undefined, unchecked: message(e) };
  }
  const lines: string[] = [];
  const started = deps.mono();
  let code: number;
  try {
    code = await verifyCommand([...keys.args, path], {
      env: keys.env,
      out: (line) => {
        if (lines.length < 8) lines.push(line);
      },
      progress: undefined,
    });
  } finally {
    if (keys.temp !== undefined) Deno.removeSync(keys.temp);
  }
  const ms = Math.round(deps.mono() - started);
  const summary = (lines[0] ?? "").replace(/^mcp-audit verify: /, "");
  const problems = lines.slice(1).filter((l) => !l.startsWith("note: ")).slice(0, 3);
  const timed = `${summary} (${ms} ms)`;
  if (
    /^(?:OK|UNVOUCHED|INCOMPLETE): no records/.test(summary) ||
    (code === 2 && summary.includes("no log at"))
  ) {
    return result("chain", "ok", `${path}: no records yet, nothing to verify`);
  }
  switch (code) {
    case 0:
      return result("chain", "ok", timed);
    case EXIT_UNVOUCHED:
      return result("chain", "warn", `${timed}; signatures not checked: ${keys.unchecked}`, {
        fix: "sign the log (see signing); without signatures the chain proves order, not content",
      });
    case EXIT_INCOMPLETE:
      return result("chain", "warn", timed, {
        fix: "fine while a proxy writes the log (audit.checkpoint.* bounds what is not yet " +
          `covered); a proxy that stopped should have ended it with audit/stop — ${fix}`,
      });
    case 1:
      // The end alone missing, before any checkpoint: as INCOMPLETE, a running log looks so.
      if (
        problems.length === 1 && ENDS_WITHOUT_STOP.test(problems[0]!) &&
        /^FAILED: 1 problem /.test(summary)
      ) {
        return result("chain", "warn", `${timed}; ${problems[0]!.replace(/^log: missing: /, "")}`, {
          fix: "fine while a proxy writes the log (audit.checkpoint.* bounds what is not yet " +
            `covered); a proxy that stopped should have ended it with audit/stop — ${fix}`,
        });
      }
      return result("chain", "fail", timed, { fix, notes: problems });
    default:
      return result("chain", "fail", `cannot verify: ${summary}`, {
        fix:
          `check that ${path} is an mcp-audit log readable by this user (mcp-audit verify ${path})`,
      });
  }
}
