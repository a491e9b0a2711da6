/**
 * The keys a log may have been signed with over time, for `verify --key-file`: a small text
 * format, and the {@link KeyRing} that picks a record's key by the key id its signature names.
 *
 * The format (UTF-8, one entry a line; `\n` or `\r\n`):
 *
 * ```text
 * # a comment: a line whose first character that is not a blank is #
 * hmac    2026-q1   the HMAC secret, the rest of the line (trailing blanks dropped)
 * hmac    -         a secret whose key id is the default one (see below)
 * ed25519 ops-2026  keys/ops-2026.pub
 * ed25519 -
 * -----BEGIN PUBLIC KEY-----
 * MCowBQYDK2VwAyEA…
 * -----END PUBLIC KEY-----
 * # the seqs a key signed: FIRST-LAST once it is retired, FIRST- while it is in use
 * valid   hmac    2026-q1   1-1400
 * valid   ed25519 ops-2026  1401-
 * ```
 *
 * - Fields are separated by blanks (spaces or tabs); blanks before the first are ignored. A key's
 *   line starts with its scheme, `hmac` (signatures `hmac-sha256:…`) or `ed25519`; the second
 *   field is the key id the signatures name: no white space, no `:`, at most 128 characters, or
 *   `-` for the id the proxy uses when `audit.key_id` is not set (the first 8 hex characters of
 *   SHA-256 of the secret, or of the public key's SPKI DER).
 * - `hmac`: the rest of the line is the secret, exactly, but for blanks at its ends (a secret that
 *   starts or ends with a blank cannot be written here; `AUDIT_SECRET` can carry it).
 * - `ed25519`: the rest of the line is the path of an SPKI PEM public key (relative paths are
 *   taken from the key file's directory); or nothing, and the PEM block follows on the next lines.
 *   A private key is refused: verifying needs only the public one.
 * - `valid SCHEME KEY_ID FIRST-LAST` (or `FIRST-`, no end yet): the only seqs that key signs; a
 *   record at any other seq signed with it (or an anchor naming such a seq) is `wrong key`, so a
 *   retired key, which may have leaked since, cannot sign records after its retirement (nor a new
 *   key records before it came into use). It names a key of the same file by its scheme and the
 *   key id its signatures carry (not `-`: verify's summary prints the id), before or after that
 *   key's line; seqs are whole numbers from 1, LAST not below FIRST, nothing after them. Several
 *   `valid` lines for one key add up. A key with none signs any seq; where the same key is given
 *   again (another key file, `AUDIT_SECRET`), its ranges still hold. A line of its own keeps the
 *   secret what it has always been, the rest of its line, whatever it looks like.
 * - Anything else is an error naming the file and line; so is the same scheme and key id given
 *   twice with different keys (the same key twice is harmless and kept once).
 *
 * @example
 * ```ts
 * import { KeyRing, parseKeyFile } from "./key_file.ts";
 * const ring = new KeyRing(parseKeyFile("hmac k1 first secret\nhmac k2 second secret\n", "keys"));
 * console.assert(ring.size === 2);
 * ```
 *
 * @module
 */
import { createPublicKey, hash } from "node:crypto";
import { dirname, isAbsolute, join } from "node:path";
import {
  defaultKeyId,
  ed25519Verifier,
  hmacSigner,
  KeyError,
  type Scheme,
  type SignatureCheck,
  type SignatureVerifier,
} from "./signing.ts";

/** A key file (or a PEM it names) is not what the format allows; names the file and line. */
export class KeyFileError extends KeyError {
  override name = "KeyFileError";
  constructor(readonly file: string, readonly line: number, what: string) {
    super(line > 0 ? `${file}:${line}: ${what}` : `${file}: ${what}`);
  }
}

/** Seqs a key signed, from a key file's `valid` line. */
export interface SeqRange {
  from: number;
  /** Null: no end yet (the key in use). */
  to: number | null;
  /** For messages: `keys.txt:5`. */
  source: string;
}

/** One key to check signatures with, and where it was given. */
export interface KeyEntry {
  verifier: SignatureVerifier;
  /** For messages: `keys.txt:3`, `AUDIT_SECRET`, `--public-key ops.pub`. */
  source: string;
  /** SHA-256 of the key material, to tell the same key given twice from two keys. */
  fingerprint: string;
  /** The only seqs the key signs; absent: any. */
  seqs?: readonly SeqRange[];
}

// A key file lists keys, not data: anything larger is not one.
const MAX_KEY_FILE = 1 << 20;
const MAX_PEM_FILE = 64 << 10;
const MAX_PEM_LINES = 64;
const MAX_KEY_ID = 128;
const DEFAULT_ID = "-";

/** An HMAC key from its secret. */
export function hmacEntry(secret: string, keyId: string | undefined, source: string): KeyEntry {
  return {
    verifier: hmacSigner(secret, keyId ?? defaultKeyId(secret)),
    source,
    fingerprint: hash("sha256", `hmac\0${secret}`, "hex"),
  };
}

/**
 * An Ed25519 key from SPKI PEM text.
 * @throws {KeyError} when the PEM is not an Ed25519 public key
 */
export function ed25519Entry(pem: string, keyId: string | undefined, source: string): KeyEntry {
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw new KeyError("this is a private key: give the public key (SPKI PEM) to verify with");
  }
  const verifier = ed25519Verifier(pem, keyId);
  const der = new Uint8Array(createPublicKey(pem).export({ type: "spki", format: "der" }));
  return { verifier, source, fingerprint: hash("sha256", der, "hex") };
}

function readBounded(path: string, max: number): string {
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(path, { read: true });
  } catch (e) {
    throw new KeyError(`cannot read ${path}: ${(e as Error).message}`);
  }
  try {
    const info = file.statSync();
    if (!info.isFile) throw new KeyError(`${path} is not a file`);
    if (info.size > max) throw new KeyError(`${path} is over ${max} bytes: not a key file`);
    const buf = new Uint8Array(info.size + 1);
    let n = 0;
    for (;;) {
      const got = file.readSync(buf.subarray(n));
      if (got === null) break;
      n += got;
      if (n > max || n === buf.length) {
        throw new KeyError(`${path} is over ${max} bytes (it grew while read)`);
      }
    }
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(buf.subarray(0, n));
    } catch {
      throw new KeyError(`${path} is not UTF-8 text`);
    }
  } finally {
    file.close();
  }
}

/** Reads a PEM file a key file names. */
export function readPemFile(path: string): string {
  return readBounded(path, MAX_PEM_FILE);
}

function checkKeyId(id: string, file: string, line: number): string | undefined {
  if (id === DEFAULT_ID) return undefined;
  if (id.includes(":")) throw new KeyFileError(file, line, `key id ${id} contains ':'`);
  if (id.length > MAX_KEY_ID) {
    throw new KeyFileError(file, line, `key id is over ${MAX_KEY_ID} characters`);
  }
  return id;
}

const ENTRY = /^(\S+)[ \t]+(\S+)(?:[ \t]+(.*?))?[ \t]*$/;
const VALID = /^valid[ \t]+(\S+)[ \t]+(\S+)[ \t]+(\d{1,16})-(\d{0,16})$/;
const VALID_FORM = "expected `valid SCHEME KEY_ID FIRST-LAST` or `valid SCHEME KEY_ID FIRST-`";
const SCHEMES: Readonly<Record<string, Scheme>> = { hmac: "hmac-sha256", ed25519: "ed25519" };

/** A `valid` line: the key it names and its seqs. */
interface Valid {
  scheme: Scheme;
  keyId: string;
  range: SeqRange;
  line: number;
}

function parseValid(trimmed: string, file: string, lineNo: number): Valid {
  const m = VALID.exec(trimmed);
  if (m === null) throw new KeyFileError(file, lineNo, VALID_FORM);
  const scheme = SCHEMES[m[1]!];
  if (scheme === undefined) {
    throw new KeyFileError(
      file,
      lineNo,
      `valid: unknown scheme ${JSON.stringify(m[1])}: expected hmac or ed25519`,
    );
  }
  const keyId = checkKeyId(m[2]!, file, lineNo);
  if (keyId === undefined) {
    throw new KeyFileError(
      file,
      lineNo,
      "valid: name the key id the signatures carry (verify prints it), not -",
    );
  }
  const from = Number(m[3]);
  const to = m[4] === "" ? null : Number(m[4]);
  if (!Number.isSafeInteger(from) || from < 1 || (to !== null && !Number.isSafeInteger(to))) {
    throw new KeyFileError(file, lineNo, "valid: seqs are whole numbers from 1");
  }
  if (to !== null && to < from) {
    throw new KeyFileError(file, lineNo, `valid: the last seq ${to} is below the first ${from}`);
  }
  return { scheme, keyId, range: { from, to, source: `${file}:${lineNo}` }, line: lineNo };
}

/** Gives each key its `valid` ranges; a range naming no key of the file is an error. */
function applyValid(entries: KeyEntry[], valid: readonly Valid[], file: string): void {
  for (const v of valid) {
    let found = false;
    for (const [i, e] of entries.entries()) {
      if (e.verifier.scheme !== v.scheme || e.verifier.keyId !== v.keyId) continue;
      entries[i] = { ...e, seqs: [...(e.seqs ?? []), v.range] };
      found = true;
    }
    if (!found) {
      throw new KeyFileError(
        file,
        v.line,
        `valid: no ${v.scheme} key with key id ${v.keyId} in this file`,
      );
    }
  }
}

/**
 * Parses a key file's text.
 *
 * @param file the key file's path: named in errors; relative PEM paths are taken from its folder
 * @param readPem reads a PEM file an `ed25519` line names (default: from disk, at most 64 KiB)
 * @throws {KeyFileError} naming the line of the first thing that is not allowed
 */
export function parseKeyFile(
  text: string,
  file: string,
  readPem: (path: string) => string = readPemFile,
): KeyEntry[] {
  const lines = text.split("\n").map((l) => l.endsWith("\r") ? l.slice(0, -1) : l);
  if (lines.at(-1) === "") lines.pop();
  const entries: KeyEntry[] = [];
  const valid: Valid[] = [];
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = lines[i]!;
    const trimmed = line.trim();
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    if (/^valid(?:[ \t]|$)/.test(trimmed)) {
      valid.push(parseValid(trimmed, file, lineNo));
      continue;
    }
    const m = ENTRY.exec(trimmed);
    if (m === null) {
      throw new KeyFileError(
        file,
        lineNo,
        "expected `hmac KEY_ID SECRET`, `ed25519 KEY_ID PEM_PATH`, `ed25519 KEY_ID` before a PEM " +
          "block, or `valid SCHEME KEY_ID FIRST-LAST`",
      );
    }
    const scheme = m[1]!;
    const id = m[2]!;
    const rest = m[3] ?? "";
    const keyId = checkKeyId(id, file, lineNo);
    const source = `${file}:${lineNo}`;
    if (scheme === "hmac") {
      if (rest === "") throw new KeyFileError(file, lineNo, "hmac: no secret after the key id");
      entries.push(hmacEntry(rest, keyId, source));
    } else if (scheme === "ed25519") {
      let pem: string;
      if (rest === "") {
        const end = lines.findIndex((l, j) => j > i && l.trim() === "-----END PUBLIC KEY-----");
        if (lines[i + 1]?.trim() !== "-----BEGIN PUBLIC KEY-----") {
          throw new KeyFileError(
            file,
            lineNo,
            "ed25519: give a PEM path after the key id, or a -----BEGIN PUBLIC KEY----- block on the next line",
          );
        }
        if (end === -1 || end - i > MAX_PEM_LINES) {
          throw new KeyFileError(
            file,
            lineNo + 1,
            "the PEM block has no -----END PUBLIC KEY----- line (within 64 lines)",
          );
        }
        pem = lines.slice(i + 1, end + 1).map((l) => l.trim()).join("\n") + "\n";
        i = end;
      } else {
        const path = isAbsolute(rest) ? rest : join(dirname(file), rest);
        try {
          pem = readPem(path);
        } catch (e) {
          throw new KeyFileError(file, lineNo, (e as Error).message);
        }
      }
      try {
        entries.push(ed25519Entry(pem, keyId, source));
      } catch (e) {
        throw new KeyFileError(file, lineNo, (e as Error).message);
      }
    } else {
      throw new KeyFileError(
        file,
        lineNo,
        `unknown scheme ${JSON.stringify(scheme)}: expected hmac or ed25519 (or valid)`,
      );
    }
  }
  applyValid(entries, valid, file);
  // Checked here too, so the error names both lines of the file.
  new KeyRing(entries);
  return entries;
}

/**
 * Reads and parses a key file (at most 1 MiB).
 * @throws {KeyError} when it cannot be read, {@link KeyFileError} when it is not valid
 */
export function readKeyFile(path: string): KeyEntry[] {
  return parseKeyFile(readBounded(path, MAX_KEY_FILE), path);
}

/** The scheme and key id a signature names, or why it names none. */
function named(sig: string | null): { scheme: Scheme; keyId: string } | "unsigned" | "malformed" {
  if (sig === null) return "unsigned";
  const parts = sig.split(":");
  if (parts.length !== 3) return "malformed";
  const [scheme, keyId] = parts as [string, string, string];
  if (scheme !== "hmac-sha256" && scheme !== "ed25519") return "malformed";
  return { scheme, keyId };
}

/**
 * Several keys, each checking the signatures that name its scheme and key id. A signature naming
 * a key the ring does not hold is a `wrong key`.
 */
export class KeyRing {
  #byName = new Map<string, KeyEntry>();
  #entries: KeyEntry[] = [];
  /** The seqs each restricted key signs, from every entry of it that gives some. */
  #seqs = new Map<string, SeqRange[]>();

  /** @throws {KeyError} when two different keys have the same scheme and key id */
  constructor(entries: readonly KeyEntry[]) {
    for (const e of entries) {
      const name = `${e.verifier.scheme}:${e.verifier.keyId}`;
      const seen = this.#byName.get(name);
      if (e.seqs !== undefined && (seen === undefined || seen.fingerprint === e.fingerprint)) {
        // Restricted once, restricted everywhere: another copy of the key widens nothing.
        const ranges = this.#seqs.get(name) ?? [];
        for (const r of e.seqs) {
          const same = (q: SeqRange) => q.from === r.from && q.to === r.to && q.source === r.source;
          if (!ranges.some(same)) ranges.push(r);
        }
        this.#seqs.set(name, ranges);
      }
      if (seen === undefined) {
        this.#byName.set(name, e);
        this.#entries.push(e);
      } else if (seen.fingerprint !== e.fingerprint) {
        throw new KeyError(
          `${e.source}: another ${e.verifier.scheme} key with key id ${e.verifier.keyId} ` +
            `than the one from ${seen.source}: a signature could not tell which one it means`,
        );
      }
    }
  }

  /** How many distinct keys. */
  get size(): number {
    return this.#entries.length;
  }

  /** The keys, in the order given. */
  get keys(): readonly SignatureVerifier[] {
    return this.#entries.map((e) => e.verifier);
  }

  /** The key a signature names, when the ring holds it. */
  verifierFor(sig: string | null): SignatureVerifier | undefined {
    const n = named(sig);
    if (typeof n === "string") return undefined;
    return this.#byName.get(`${n.scheme}:${n.keyId}`)?.verifier;
  }

  /**
   * Null when the key `sig` names may sign `seq` (the ring holds no range for it, or one of its
   * ranges holds `seq`); otherwise its ranges for messages: `seq 1-14 (keys.txt:5)`.
   */
  outsideSeqs(sig: string | null, seq: number): string | null {
    const n = named(sig);
    if (typeof n === "string") return null;
    const ranges = this.#seqs.get(`${n.scheme}:${n.keyId}`);
    if (ranges === undefined) return null;
    if (ranges.some((r) => seq >= r.from && (r.to === null || seq <= r.to))) return null;
    return ranges.map((r) =>
      `${r.to === null ? `seq ${r.from} on` : `seq ${r.from}-${r.to}`} (${r.source})`
    ).join(", ");
  }

  /** Checks a signature with the key it names. */
  check(canonical: string, sig: string | null): SignatureCheck {
    const n = named(sig);
    if (typeof n === "string") return n;
    const key = this.#byName.get(`${n.scheme}:${n.keyId}`);
    return key === undefined ? "wrong key" : key.verifier.check(canonical, sig);
  }

  /** The keys for messages: `hmac-sha256 key k1` or `hmac-sha256 keys k1, k2; ed25519 key e1`. */
  describe(): string {
    const by = new Map<Scheme, string[]>();
    for (const k of this.keys) by.set(k.scheme, [...(by.get(k.scheme) ?? []), k.keyId]);
    return [...by].map(([scheme, ids]) =>
      `${scheme} key${ids.length === 1 ? "" : "s"} ${ids.join(", ")}`
    ).join("; ");
  }
}
