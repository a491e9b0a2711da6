/**
 * Value-based redaction of the audit copy: secrets and personal data found inside string values,
 * wherever they sit, are replaced by `[REDACTED:<type>]` and the rest of the string is kept.
 * Key-based redaction (`redact.ts`) hides whole values by their key's name; this finds what no key
 * names — a token pasted into a prompt, a card number in a tool result, a key file read from disk.
 * Like key redaction it works on parsed values, returns new ones sharing every subtree it did not
 * change, and never touches the wire. Object keys are left as they are: renaming a key could merge
 * two members.
 *
 * ## Detectors
 * | name | what it matches |
 * | --- | --- |
 * | `email` | `local@domain.tld`: local part `[A-Za-z0-9._%+-]{1,64}`, labels `[A-Za-z0-9-]{1,63}`, a letters-only TLD of 2+, at most 253 |
 * | `card_number` | 13–19 digits, first 2–6, Luhn-valid; or groups of 3+ digits joined by single spaces or dashes (one kind) |
 * | `jwt` | `eyJ…` three base64url segments (the third may be empty) whose header decodes to JSON with a string `alg` |
 * | `bearer_token` | the token after `Bearer ` (any case): 8+ of `[A-Za-z0-9._~+/-]` then `=`s, with a digit, or 16+ mixing case |
 * | `aws_access_key` | `AKIA` or `ASIA` + 16 `[A-Z0-9]` |
 * | `aws_secret_key` | 40 `[A-Za-z0-9/+]` after a label: `aws_secret_access_key`, `SecretAccessKey`, `aws-secret-key`, … then `:`, `=`, `=>` or a space |
 * | `github_token` | `ghp_` `gho_` `ghu_` `ghs_` `ghr_` + 30–251 `[A-Za-z0-9]`; `github_pat_` + 22–244 `[A-Za-z0-9_]` |
 * | `slack_token` | `xoxb-` `xoxp-` `xoxa-` `xoxr-` `xoxs-` + 10–255 `[A-Za-z0-9-]` with a digit |
 * | `slack_webhook` | `hooks.slack.com/` + `services/`, `workflows/` or `triggers/` and 11+ more `[A-Za-z0-9/_-]` |
 * | `openai_key` | `sk-` + 20–255 `[A-Za-z0-9_-]` with a digit and a letter (`sk-proj-…`, `sk-svcacct-…`) |
 * | `anthropic_key` | the same beginning `sk-ant-` |
 * | `stripe_key` | `sk_live_` or `rk_live_` + 16–255 `[A-Za-z0-9]` with a digit |
 * | `google_api_key` | `AIza` + 35 `[A-Za-z0-9_-]` |
 * | `private_key` | `-----BEGIN <label>PRIVATE KEY[ BLOCK]-----` through the matching `-----END …-----`; without one, the base64 body that follows |
 *
 * Every token must start at a boundary: the character before it is not a letter, digit, `_` or
 * `-` (nor `.` before a webhook's host), so `task-…` holds no `sk-` key and `xAKIA…` no AWS key. Where matches overlap (a JWT
 * inside a bearer token) they are merged into one, labelled by the one that starts first.
 *
 * ## Linear time
 * Every string a client or server sends runs through these detectors, so none may take more than
 * linear time on any input. No built-in detector gives an open-ended pattern to the backtracking
 * regex engine. Each finds a literal (`@`, `eyJ`, `bearer`, `-----BEGIN `, `ghp_`, …) with
 * `indexOf`, a regular expression that is a literal or a character class, or (vendor tokens) a
 * character class for the rare character each prefix holds and a comparison of the prefixes around
 * it, then examines the text at that hit, in one of two ways:
 * - within a constant bound: 64 characters left and 254 right of an `@`; 64 characters of PEM
 *   label; an AWS secret's label and separator regex, a fixed-length sticky pattern with only
 *   bounded quantifiers over disjoint classes;
 * - along a run of token characters, after which the search resumes at the run's end, or where a
 *   run can only start after a character outside its class (the boundary rule), so that no two
 *   runs of one detector overlap. Card digits, JWT segments, bearer tokens, vendor tokens and a
 *   PEM body are runs; the end of each PEM block is found by one forward `indexOf` shared by all
 *   its `BEGIN`s.
 *
 * So each detector reads each character a constant number of times. Each detector's matches come
 * out in order, and merging the lists of a dozen detectors is linear in the number of matches.
 *
 * ## Custom patterns
 * Patterns from the configuration are JavaScript regular expressions (compiled with the `g` flag
 * only; for case-insensitive parts write `(?i:…)`), and the whole match is replaced. Nothing can
 * make an arbitrary pattern safe on V8's backtracking engine: `(a+)+$` takes exponential time on
 * 30 characters, and even `[a-z]+@corp` is quadratic — 2.5 s on 64 KiB of letters. Two limits:
 * - When the runtime offers V8's linear-time engine (`deno run
 *   --v8-flags=--enable-experimental-regexp-engine`), each pattern it accepts — anything without
 *   backreferences, lookaround or modifiers — is compiled with it and runs on the whole string.
 * - Otherwise a string longer than {@link CUSTOM_WINDOW} + {@link CUSTOM_OVERLAP} characters is
 *   searched in windows of {@link CUSTOM_WINDOW} characters that each see
 *   {@link CUSTOM_OVERLAP} more, so a polynomial pattern costs time linear in the string's length
 *   rather than its square: `[a-z]+@corp` takes about 0.8 s on a MiB of letters, where the whole
 *   string would take ten minutes. The price: `^`, `$`, `\b` and lookbehind see window edges as
 *   string edges, and a match longer than the overlap may be found only in part. An exponential
 *   pattern is saved by neither; keep custom patterns simple, beginning with a literal.
 *
 * @example
 * ```ts
 * import { ValueRedactor } from "./detectors.ts";
 *
 * const r = new ValueRedactor({ custom: [{ name: "ticket", pattern: "TCK-[0-9]{6}" }] });
 * r.redactString("mail ana@example.com, TCK-123456");
 * // { text: "mail [REDACTED:email], [REDACTED:ticket]", types: ["email", "ticket"] }
 * r.redact({ args: ["token ghp_" + "a1".repeat(18)] }, "params");
 * // { value: { args: ["token [REDACTED:github_token]"] }, paths: ["params.args[0]"] }
 * ```
 *
 * @module
 */
import { type JsonValue, parseJson } from "../jsonrpc/json.ts";
import { Redaction } from "./redact.ts";

/** The built-in detectors, in the order they run; the first of two overlapping matches wins. */
export const DETECTOR_NAMES = [
  "private_key",
  "jwt",
  "bearer_token",
  "aws_secret_key",
  "aws_access_key",
  "github_token",
  "slack_token",
  "slack_webhook",
  "anthropic_key",
  "openai_key",
  "stripe_key",
  "google_api_key",
  "card_number",
  "email",
] as const;

/** The name of a built-in detector, which is also the `<type>` in its replacement text. */
export type DetectorName = typeof DETECTOR_NAMES[number];

/** A pattern from the configuration. */
export interface CustomPattern {
  /** The `<type>` of its replacement: 1–64 of `[A-Za-z0-9_.-]`, not a built-in name. */
  name: string;
  /** A JavaScript regular expression's source, without slashes or flags. */
  pattern: string;
}

/** What a {@link ValueRedactor} looks for. */
export interface ValueRedactorOptions {
  /** Built-in detectors to enable, by name; all when absent, none when empty. */
  detectors?: readonly string[] | undefined;
  /** Patterns from the configuration, always enabled. */
  custom?: readonly CustomPattern[] | undefined;
}

/** Why a {@link ValueRedactorOptions} was refused. */
export type DetectorErrorCode =
  | "unknown_detector"
  | "invalid_name"
  | "duplicate_name"
  | "invalid_pattern";

/** A detector configuration that cannot be used; names the detector or custom pattern at fault. */
export class DetectorConfigError extends Error {
  override name = "DetectorConfigError";
  constructor(
    readonly code: DetectorErrorCode,
    /** The detector or custom pattern name. */
    readonly detector: string,
    problem: string,
  ) {
    super(`redaction detector ${JSON.stringify(detector)}: ${problem}`);
  }
}

/** Result of redacting one string. */
export interface RedactedText {
  text: string;
  /** Types of the replacements made, each once, in order of first appearance. */
  types: string[];
}

/** Result of redacting one value. */
export interface RedactedValue {
  value: JsonValue;
  /** Paths of the strings changed, e.g. `params.arguments.note`. */
  paths: string[];
}

/** Custom patterns on the backtracking engine see at most this much of a string at a time… */
export const CUSTOM_WINDOW = 1024;
/** …plus this much of the next window, so matches up to this long are never cut. */
export const CUSTOM_OVERLAP = 256;

/**
 * Matches of one scanner, in order of start and not overlapping, as parallel arrays: a text with
 * a hundred thousand e-mail addresses should not cost a hundred thousand objects.
 */
class Spans {
  starts: number[] = [];
  ends: number[] = [];
  types: string[] = [];
  /** `enabled`: the types kept, or null for all. */
  constructor(readonly enabled: ReadonlySet<string> | null) {}

  add(start: number, end: number, type: string): void {
    if (this.enabled !== null && !this.enabled.has(type)) return;
    this.starts.push(start);
    this.ends.push(end);
    this.types.push(type);
  }
}

// ---------------------------------------------------------------------------------------------
// Characters

const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
const isUpper = (c: number): boolean => c >= 0x41 && c <= 0x5a;
const isLower = (c: number): boolean => c >= 0x61 && c <= 0x7a;
const isAlnum = (c: number): boolean => isDigit(c) || isUpper(c) || isLower(c);
const UNDERSCORE = 0x5f;
const DASH = 0x2d;
const DOT = 0x2e;
const SLASH = 0x2f;
const SPACE = 0x20;
const TAB = 0x09;
/** Letters, digits, `_` and `-`: what may not come right before a token. */
const isWordish = (c: number): boolean => isAlnum(c) || c === UNDERSCORE || c === DASH;
const isAlnumUnderscore = (c: number): boolean => isAlnum(c) || c === UNDERSCORE;
const isAlnumDash = (c: number): boolean => isAlnum(c) || c === DASH;
const isUpperOrDigit = (c: number): boolean => isUpper(c) || isDigit(c);
/** base64url. */
const isB64Url = isWordish;

/** The end of the run of `cls` characters starting at `from`. */
function runEnd(text: string, from: number, cls: (c: number) => boolean): number {
  let i = from;
  while (i < text.length && cls(text.charCodeAt(i))) i++;
  return i;
}

function some(text: string, cls: (c: number) => boolean): boolean {
  for (let i = 0; i < text.length; i++) if (cls(text.charCodeAt(i))) return true;
  return false;
}

function every(text: string, cls: (c: number) => boolean): boolean {
  for (let i = 0; i < text.length; i++) if (!cls(text.charCodeAt(i))) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Vendor tokens: a literal prefix, then a run of one character class.

interface TokenRule {
  /** Characters of the token after its prefix. */
  body: (c: number) => boolean;
  min: number;
  max: number;
  /** The token's type given its body (already within min..max), or undefined when it is not one. */
  classify: (body: string) => DetectorName | undefined;
  /** Characters that may not come right before the prefix. */
  notAfter: (c: number) => boolean;
}

const githubClassic: TokenRule = {
  body: isAlnum,
  min: 30,
  max: 251,
  classify: () => "github_token",
  notAfter: isWordish,
};
const slackToken: TokenRule = {
  body: isAlnumDash,
  min: 10,
  max: 255,
  classify: (b) => (some(b, isDigit) ? "slack_token" : undefined),
  notAfter: isWordish,
};
const awsAccessKey: TokenRule = {
  body: isAlnum,
  min: 16,
  max: 16,
  classify: (b) => (every(b, isUpperOrDigit) ? "aws_access_key" : undefined),
  notAfter: isWordish,
};
const stripe: TokenRule = {
  body: isAlnum,
  min: 16,
  max: 255,
  classify: (b) => (some(b, isDigit) ? "stripe_key" : undefined),
  notAfter: isWordish,
};
const WEBHOOK_KINDS = ["services/", "workflows/", "triggers/"];

/** Token rules by their literal prefix. */
const TOKEN_RULES = new Map<string, TokenRule>([
  ["AKIA", awsAccessKey],
  ["ASIA", awsAccessKey],
  ["ghp_", githubClassic],
  ["gho_", githubClassic],
  ["ghu_", githubClassic],
  ["ghs_", githubClassic],
  ["ghr_", githubClassic],
  ["github_pat_", {
    body: isAlnumUnderscore,
    min: 22,
    max: 244,
    classify: () => "github_token",
    notAfter: isWordish,
  }],
  ["xoxb-", slackToken],
  ["xoxp-", slackToken],
  ["xoxa-", slackToken],
  ["xoxr-", slackToken],
  ["xoxs-", slackToken],
  ["hooks.slack.com/", {
    body: (c) => isWordish(c) || c === SLASH,
    min: 20,
    max: 255,
    classify: (b) => (WEBHOOK_KINDS.some((k) => b.startsWith(k)) ? "slack_webhook" : undefined),
    notAfter: (c) => isWordish(c) || c === DOT,
  }],
  ["sk-", {
    body: isWordish,
    min: 20,
    max: 255,
    classify: (b) =>
      some(b, isDigit) && some(b, (c) => isUpper(c) || isLower(c))
        ? (b.startsWith("ant-") ? "anthropic_key" : "openai_key")
        : undefined,
    notAfter: isWordish,
  }],
  ["sk_live_", stripe],
  ["rk_live_", stripe],
  ["AIza", {
    body: isWordish,
    min: 35,
    max: 35,
    classify: () => "google_api_key",
    notAfter: isWordish,
  }],
]);

/** The literal prefixes of vendor tokens. */
export const TOKEN_PREFIXES: readonly string[] = [...TOKEN_RULES.keys()];

/**
 * Every prefix, found by the engine at one character of it, its anchor: the `_` of `ghp_`,
 * `github_pat_`, `sk_live_` and `rk_live_`, the `k` of `sk-`, the first `.` of the webhook's host,
 * the first letter of the others. Each branch begins at a character rare in prose (`_`, `x`, `k`,
 * `A`, `.`), so the engine skips prose in its own loop, several times faster than trying the
 * alternation of the prefixes, whose first letters (`s`, `r`, `h`, `g`) are common, at every
 * place; what comes before an anchor is looked at behind it.
 */
const TOKEN_ANCHOR =
  /(?<=gh[pousr]|github(?=_pat_)|[sr]k(?=_live_))_|xox[bpars]-|(?<=s)k-|A(?:KIA|SIA|Iza)|(?<=hooks)\.(?=slack\.com\/)/g;

/** A prefix, by its anchor, at `offset` in it. */
interface Anchored {
  prefix: string;
  offset: number;
}

function anchorOffset(prefix: string): number {
  if (prefix.includes("_")) return prefix.indexOf("_");
  if (prefix === "sk-") return 1;
  if (prefix.startsWith("hooks.")) return prefix.indexOf(".");
  return 0;
}

const BY_ANCHOR = new Map<string, Anchored[]>();
for (const prefix of TOKEN_PREFIXES) {
  const offset = anchorOffset(prefix);
  const c = prefix[offset]!;
  const list = BY_ANCHOR.get(c) ?? [];
  list.push({ prefix, offset });
  BY_ANCHOR.set(c, list);
}
const MAX_OFFSET = Math.max(...TOKEN_PREFIXES.map(anchorOffset));

/**
 * The first token prefix at or after `from`, as a search for the alternation of all of them
 * would find it (no two can start at one place), or null. Anchors come in order, and a prefix
 * starts at most {@link MAX_OFFSET} (6) before its anchor: the anchors less than that far past the
 * first prefix found are looked at for one that starts before it. So each character is read a
 * constant number of times over a scan.
 */
export function nextTokenPrefix(
  text: string,
  from: number,
): { at: number; prefix: string } | null {
  let at = -1;
  let prefix = "";
  const re = TOKEN_ANCHOR;
  re.lastIndex = from;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const h = m.index;
    // A prefix starting before `at` has its anchor less than MAX_OFFSET after `at`.
    if (at >= 0 && h >= at + MAX_OFFSET) break;
    for (const k of BY_ANCHOR.get(m[0][0]!)!) {
      const q = h - k.offset;
      if (q >= from && (at < 0 || q < at) && text.startsWith(k.prefix, q)) {
        at = q;
        prefix = k.prefix;
      }
    }
  }
  return at < 0 ? null : { at, prefix };
}

function scanTokens(text: string, out: Spans): void {
  let from = 0;
  for (let m = nextTokenPrefix(text, 0); m !== null; m = nextTokenPrefix(text, from)) {
    const p = m.at;
    const rule = TOKEN_RULES.get(m.prefix)!;
    const start = p + m.prefix.length;
    from = start;
    if (p > 0 && rule.notAfter(text.charCodeAt(p - 1))) continue;
    // A body run can begin only after a character its rule refuses before a prefix, and every
    // body class is within that set but for the webhook's `/`, whose runs hold no `.` and so no
    // second webhook: runs of one rule never overlap, and each character is read by few runs.
    const end = runEnd(text, start, rule.body);
    const length = end - start;
    if (length < rule.min || length > rule.max) continue;
    const type = rule.classify(text.slice(start, end));
    if (type === undefined) continue;
    out.add(p, end, type);
    from = end;
  }
}

// ---------------------------------------------------------------------------------------------
// E-mail addresses

const isLocal = (c: number): boolean =>
  isAlnum(c) || c === DOT || c === UNDERSCORE || c === 0x25 || c === 0x2b || c === DASH;
const isDomain = (c: number): boolean => isAlnum(c) || c === DOT || c === DASH;
const MAX_LOCAL = 64;
const MAX_DOMAIN = 253;

/** Labels of 1–63 characters, not starting or ending with `-`; a TLD of 2+ letters. */
function validDomain(text: string, from: number, to: number): boolean {
  let labels = 0;
  let labelStart = from;
  let letters = true;
  for (let i = from; i <= to; i++) {
    const c = i < to ? text.charCodeAt(i) : DOT;
    if (c !== DOT) {
      if (!isUpper(c) && !isLower(c)) letters = false;
      continue;
    }
    const length = i - labelStart;
    if (length === 0 || length > 63) return false;
    if (text.charCodeAt(labelStart) === DASH || text.charCodeAt(i - 1) === DASH) return false;
    labels++;
    if (i === to) return labels >= 2 && length >= 2 && letters;
    labelStart = i + 1;
    letters = true;
  }
  return false;
}

function scanEmails(text: string, out: Spans): void {
  // The scans stop at the neighbouring `@`s (neither class holds it) and at fixed bounds.
  for (let at = text.indexOf("@"); at >= 0; at = text.indexOf("@", at + 1)) {
    let start = at;
    while (start > 0 && at - start <= MAX_LOCAL && isLocal(text.charCodeAt(start - 1))) start--;
    if (at - start > MAX_LOCAL) continue;
    while (start < at && text.charCodeAt(start) === DOT) start++;
    if (start === at) continue;
    let end = at + 1;
    while (end < text.length && end - at - 1 <= MAX_DOMAIN && isDomain(text.charCodeAt(end))) end++;
    if (end - at - 1 > MAX_DOMAIN) continue;
    // A sentence's full stop, or a dash after the address, is not part of it.
    while (
      end > at + 1 && (text.charCodeAt(end - 1) === DOT || text.charCodeAt(end - 1) === DASH)
    ) {
      end--;
    }
    if (!validDomain(text, at + 1, end)) continue;
    out.add(start, end, "email");
  }
}

// ---------------------------------------------------------------------------------------------
// Payment card numbers

/** The Luhn check over the digits of text[from, to), skipping separators. */
function luhn(text: string, from: number, to: number): boolean {
  let sum = 0;
  let double = false;
  for (let i = to - 1; i >= from; i--) {
    const c = text.charCodeAt(i);
    if (!isDigit(c)) continue;
    let d = c - 0x30;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

/** Not right before a card number: part of a word, a decimal, or a phone number's `+`. */
const notBeforeCard = (c: number): boolean => isAlnumUnderscore(c) || c === DOT || c === 0x2b;

/** Not right after one: part of a word, or followed by decimals. */
function badAfterCard(text: string, at: number): boolean {
  if (at >= text.length) return false;
  const c = text.charCodeAt(at);
  if (isAlnumUnderscore(c)) return true;
  return (c === DOT || c === 0x2c) && at + 1 < text.length && isDigit(text.charCodeAt(at + 1));
}

const isSeparator = (c: number): boolean => c === SPACE || c === DASH;

/** The next digit; the engine's own loop skips prose much faster than a loop in script. */
const DIGIT = /[0-9]/g;

function scanCards(text: string, out: Spans): void {
  const re = DIGIT;
  re.lastIndex = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const i = m.index;
    const end = cardAt(text, i);
    if (end >= 0) out.add(i, end, "card_number");
    re.lastIndex = end >= 0 ? end : runEnd(text, i, isDigit);
  }
}

/**
 * The end of the card number starting at the group of digits at `start`, or -1. Groups are joined
 * by single spaces or dashes (one kind) and have 3 or more digits — so `exp 12 4111 1111 1111 1111`
 * still yields its card; the longest run of 13–19 digits that passes wins. At most six groups of
 * at most 19 digits are read: constant work per group.
 */
function cardAt(text: string, start: number): number {
  const first = text.charCodeAt(start);
  if (first < 0x32 || first > 0x36) return -1;
  // The group after a separator continues a sequence; otherwise the character before must not.
  const joined = start >= 2 && isSeparator(text.charCodeAt(start - 1)) &&
    isDigit(text.charCodeAt(start - 2));
  if (!joined && start > 0 && notBeforeCard(text.charCodeAt(start - 1))) return -1;
  let best = -1;
  let digits = 0;
  let separator = -1;
  for (let j = start;;) {
    let end = j;
    while (end < text.length && end - j < 20 && isDigit(text.charCodeAt(end))) end++;
    const size = end - j;
    digits += size;
    if (size < 3 || digits > 19) break;
    const c = text.charCodeAt(end);
    const more = isSeparator(c) && isDigit(text.charCodeAt(end + 1));
    if (digits >= 13 && (more || !badAfterCard(text, end)) && luhn(text, start, end)) best = end;
    if (!more || (separator !== -1 && c !== separator)) break;
    separator = c;
    j = end + 1;
  }
  return best;
}

// ---------------------------------------------------------------------------------------------
// JWTs

const isJwtChar = (c: number): boolean => isB64Url(c) || c === DOT;
const MAX_JWT_HEADER = 8192;

function decodesToHeader(segment: string): boolean {
  if (segment.length > MAX_JWT_HEADER) return false;
  const b64 = segment.replace(/-/g, "+").replace(/_/g, "/");
  try {
    const header = parseJson(atob(b64 + "=".repeat((4 - b64.length % 4) % 4)));
    return typeof header === "object" && header !== null && !Array.isArray(header) &&
      "alg" in header && typeof header.alg === "string";
  } catch {
    return false;
  }
}

/** Positions of the first four dots in text[from, to). */
function dotsIn(text: string, from: number, to: number): number[] {
  const dots: number[] = [];
  for (let i = from; i < to && dots.length < 4; i++) if (text.charCodeAt(i) === DOT) dots.push(i);
  return dots;
}

/**
 * The next `eyJ` at or after `from`, or -1. Found by its `J`: a search for `eyJ` stops at every
 * `e`, the commonest letter of prose, and costs ten times a search for a rare character.
 */
function nextEyJ(text: string, from: number): number {
  for (let j = text.indexOf("J", from + 2); j >= 0; j = text.indexOf("J", j + 1)) {
    if (text.charCodeAt(j - 1) === 0x79 && text.charCodeAt(j - 2) === 0x65) return j - 2;
  }
  return -1;
}

function scanJwts(text: string, out: Spans): void {
  let from = 0;
  for (let p = nextEyJ(text, 0); p >= 0; p = nextEyJ(text, from)) {
    if (p > 0 && isB64Url(text.charCodeAt(p - 1))) {
      from = p + 1;
      continue;
    }
    // The whole run of base64url and dots, read once: the search goes on after it.
    let end = runEnd(text, p, isJwtChar);
    from = end;
    const dots = dotsIn(text, p, end);
    // `h.p.s.` is a token and a full stop, `h.p.` an unsigned token, `h.p.s.x` no token.
    if (dots.length === 3 && dots[2] === end - 1) {
      dots.pop();
      end--;
    }
    if (dots.length !== 2 || dots[1] === dots[0]! + 1) continue;
    const dot1 = dots[0]!;
    if (!decodesToHeader(text.slice(p, dot1))) continue;
    out.add(p, end, "jwt");
  }
}

// ---------------------------------------------------------------------------------------------
// Bearer tokens

/** RFC 6750 `b64token` characters, before the trailing `=`s. */
const isB64Token = (c: number): boolean =>
  isAlnum(c) || c === DASH || c === DOT || c === UNDERSCORE || c === 0x7e || c === 0x2b ||
  c === SLASH;

function looksLikeToken(token: string): boolean {
  if (token.length < 8) return false;
  if (some(token, isDigit)) return true;
  return token.length >= 16 && some(token.slice(1), isUpper) && some(token, isLower);
}

const isBlank = (c: number): boolean => c === SPACE || c === TAB;
const isPad = (c: number): boolean => c === 0x3d;
const BEARER = /bearer/gi;

function scanBearer(text: string, out: Spans): void {
  const re = BEARER;
  re.lastIndex = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const p = m.index;
    if (p > 0 && isWordish(text.charCodeAt(p - 1))) continue;
    const ws = p + 6;
    const start = runEnd(text, ws, isBlank);
    if (start === ws) continue;
    // The token run holds no space, so the runs after two accepted `bearer`s never overlap; the
    // search resumes at the token, which may itself be the word `Bearer`.
    let end = runEnd(text, start, isB64Token);
    const body = end;
    end = runEnd(text, end, isPad);
    re.lastIndex = start;
    if (!looksLikeToken(text.slice(start, body))) continue;
    out.add(start, end, "bearer_token");
    re.lastIndex = end;
  }
}

// ---------------------------------------------------------------------------------------------
// AWS secret access keys, when labelled

/** `secret_access_key`, `SecretAccessKey`, `secret-key`, … (literal `secret` first, bounded). */
const AWS_SECRET_LABEL = /secret[_\-. ]?(access[_\-. ]?)?key/gi;
const AWS_PREFIX = /aws[_\-. ]?$/i;
/** Closing quote, separator, opening quote, then exactly 40 characters: all bounded. */
const AWS_SECRET_VALUE =
  /\\?["']?[ \t]{0,16}(?:=>|[:= \t])[ \t]{0,16}\\?["']?[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])/y;

function scanAwsSecrets(text: string, out: Spans): void {
  const label = AWS_SECRET_LABEL;
  const value = AWS_SECRET_VALUE;
  label.lastIndex = 0;
  for (let m = label.exec(text); m !== null; m = label.exec(text)) {
    // `aws` before the label, or `access` in it; and `secret` begins a word unless `aws` precedes.
    const aws = AWS_PREFIX.test(text.slice(Math.max(0, m.index - 4), m.index));
    if (!aws && (m[1] === undefined || (m.index > 0 && isAlnum(text.charCodeAt(m.index - 1))))) {
      continue;
    }
    value.lastIndex = label.lastIndex;
    const v = value.exec(text);
    if (v === null) continue;
    const end = value.lastIndex;
    out.add(end - 40, end, "aws_secret_key");
    label.lastIndex = end;
  }
}

// ---------------------------------------------------------------------------------------------
// PEM private keys

const BEGIN = "-----BEGIN ";
const END = "-----END ";
const DASHES = "-----";
const MAX_PEM_LABEL = 64;
const isPemLabel = (c: number): boolean => isUpper(c) || isDigit(c) || c === SPACE;
/** A PEM body: base64 lines, their breaks also as escaped text (`\n`); no spaces, as prose has. */
const isPemBody = (c: number): boolean =>
  isAlnum(c) || c === 0x2b || c === SLASH || c === 0x3d || c === 0x5c || c === 0x0a || c === 0x0d;
/** A key cut short (no END) is redacted only with this much body, so a lone BEGIN line is kept. */
const MIN_TRUNCATED_BODY = 32;

function scanPrivateKeys(text: string, out: Spans): void {
  // The next END at or after a position: one forward search shared by every BEGIN, since BEGINs
  // are met in order and a cached position is reused until a BEGIN passes it.
  let nextEnd = -2;
  const endAfter = (from: number): number => {
    if (nextEnd === -1 || nextEnd >= from) return nextEnd;
    nextEnd = text.indexOf(END, from);
    return nextEnd;
  };
  let from = 0;
  for (let p = text.indexOf(BEGIN); p >= 0; p = text.indexOf(BEGIN, from)) {
    from = p + 1;
    const labelStart = p + BEGIN.length;
    const labelEnd = runEnd(text, labelStart, isPemLabel);
    if (labelEnd - labelStart > MAX_PEM_LABEL || !text.startsWith(DASHES, labelEnd)) continue;
    const label = text.slice(labelStart, labelEnd);
    if (!label.endsWith("PRIVATE KEY") && !label.endsWith("PRIVATE KEY BLOCK")) continue;
    const headerEnd = labelEnd + DASHES.length;
    const e = endAfter(headerEnd);
    const closing = label + DASHES;
    if (e >= 0 && text.startsWith(closing, e + END.length)) {
      const end = e + END.length + closing.length;
      out.add(p, end, "private_key");
      from = end;
      continue;
    }
    // No END of its own: a key cut short. Its body is a run, searched past.
    let end = runEnd(text, headerEnd, isPemBody);
    from = Math.max(from, end);
    let solid = 0;
    for (let i = headerEnd; i < end; i++) if (isAlnum(text.charCodeAt(i))) solid++;
    if (solid < MIN_TRUNCATED_BODY) continue;
    while (end > headerEnd && !isAlnum(text.charCodeAt(end - 1)) && text[end - 1] !== "=") end--;
    out.add(p, end, "private_key");
  }
}

// ---------------------------------------------------------------------------------------------
// The built-ins together

interface Scanner {
  types: readonly DetectorName[];
  scan: (text: string, out: Spans) => void;
  /**
   * The length of the shortest text it can match in (a lower bound): shorter strings, which most
   * values are, are not searched by it.
   */
  shortest: number;
  /**
   * Whether it can match only in a string holding `bearer` or `secret` (any case): one search
   * for both, whose two literals the engine looks for together, passes over most strings for
   * the two scanners at a third of what either scan costs alone.
   */
  word?: true;
}

/** The words of {@link Scanner.word}. */
const WORDS = /bearer|secret/i;

const SCANNERS: readonly Scanner[] = [
  // `-----BEGIN PRIVATE KEY-----` and its END line (cut short, 32 characters of body instead).
  { types: ["private_key"], scan: scanPrivateKeys, shortest: 52 },
  // A header of at least `{"alg":""}`, 14 characters of base64, a dot, a payload, a dot.
  { types: ["jwt"], scan: scanJwts, shortest: 17 },
  // `bearer`, a blank, 8 characters.
  { types: ["bearer_token"], scan: scanBearer, shortest: 15, word: true },
  // `awssecretkey` (or `secretaccesskey`), a separator, 40 characters.
  { types: ["aws_secret_key"], scan: scanAwsSecrets, shortest: 53, word: true },
  {
    types: [
      "aws_access_key",
      "github_token",
      "slack_token",
      "slack_webhook",
      "anthropic_key",
      "openai_key",
      "stripe_key",
      "google_api_key",
    ],
    scan: scanTokens,
    // The shortest prefix and body: `xoxb-` and 10 characters.
    shortest: 15,
  },
  { types: ["card_number"], scan: scanCards, shortest: 13 },
  // `a@b.co`.
  { types: ["email"], scan: scanEmails, shortest: 6 },
];

const KNOWN = new Set<string>(DETECTOR_NAMES);

// ---------------------------------------------------------------------------------------------
// Custom patterns

const CUSTOM_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

interface Custom {
  name: string;
  re: RegExp;
  /** Compiled for V8's linear-time engine, so the whole string is searched at once. */
  linear: boolean;
}

function compileCustom(custom: CustomPattern, taken: Set<string>): Custom {
  const { name, pattern } = custom;
  if (!CUSTOM_NAME.test(name)) {
    throw new DetectorConfigError("invalid_name", name, "a name is 1–64 of A-Z a-z 0-9 _ . -");
  }
  if (taken.has(name)) {
    throw new DetectorConfigError("duplicate_name", name, "the name is already in use");
  }
  taken.add(name);
  try {
    // Only where the runtime was started with V8's experimental engine, and only for patterns it
    // accepts; otherwise this throws and the backtracking engine takes the pattern.
    return { name, re: new RegExp(pattern, "gl"), linear: true };
  } catch {
    // fall through
  }
  try {
    return { name, re: new RegExp(pattern, "g"), linear: false };
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new DetectorConfigError(
      "invalid_pattern",
      name,
      `pattern ${JSON.stringify(pattern)} is not a valid regular expression: ${why}`,
    );
  }
}

function scanCustom(text: string, custom: Custom, out: Spans): void {
  const whole = custom.linear || text.length <= CUSTOM_WINDOW + CUSTOM_OVERLAP;
  for (let base = 0; base < text.length; base += CUSTOM_WINDOW) {
    const last = whole || base + CUSTOM_WINDOW + CUSTOM_OVERLAP >= text.length;
    const chunk = whole ? text : text.slice(base, base + CUSTOM_WINDOW + CUSTOM_OVERLAP);
    const re = custom.re;
    re.lastIndex = 0;
    for (let m = re.exec(chunk); m !== null; m = re.exec(chunk)) {
      // Matches starting in the overlap belong to the next window, which sees them whole.
      if (!last && m.index >= CUSTOM_WINDOW) break;
      if (m[0].length === 0) {
        re.lastIndex++;
        continue;
      }
      out.add(base + m.index, base + m.index + m[0].length, custom.name);
    }
    if (last) break;
  }
}

// ---------------------------------------------------------------------------------------------

/**
 * Replaces secrets and personal data found inside strings with `[REDACTED:<type>]`.
 *
 * @example
 * ```ts
 * import { ValueRedactor } from "./detectors.ts";
 *
 * const cards = new ValueRedactor({ detectors: ["card_number"] });
 * cards.redactString("pay with 4111 1111 1111 1111 today").text;
 * // "pay with [REDACTED:card_number] today"
 * ```
 */
export class ValueRedactor {
  #scanners: readonly Scanner[];
  /** An empty list for each scanner to fill. */
  #scratch: Spans[];
  #enabled: ReadonlySet<string>;
  #custom: readonly Custom[];
  /** No string shorter than this holds a match: the least `shortest` of the scanners, or 0. */
  #shortest: number;
  /** One walk for `redact`. */
  #walk: Redaction;

  /** Throws {@link DetectorConfigError} for an unknown detector, a bad name or a bad pattern. */
  constructor(options: ValueRedactorOptions = {}) {
    const names = options.detectors ?? DETECTOR_NAMES;
    for (const name of names) {
      if (!KNOWN.has(name)) {
        throw new DetectorConfigError(
          "unknown_detector",
          name,
          `no such detector; known: ${DETECTOR_NAMES.join(", ")}`,
        );
      }
    }
    this.#enabled = new Set(names);
    this.#scanners = SCANNERS.filter((s) => s.types.some((t) => this.#enabled.has(t)));
    this.#scratch = this.#scanners.map(() => new Spans(this.#enabled));
    const taken = new Set<string>(DETECTOR_NAMES);
    this.#custom = (options.custom ?? []).map((c) => compileCustom(c, taken));
    this.#shortest = this.#custom.length > 0
      ? 0
      : Math.min(...this.#scanners.map((s) => s.shortest));
    this.#walk = new Redaction(null, this);
  }

  /** The built-in detectors enabled, in their order. */
  get detectors(): DetectorName[] {
    return DETECTOR_NAMES.filter((n) => this.#enabled.has(n));
  }

  /**
   * True when every custom pattern runs on V8's linear-time engine (or there are none); false
   * means some run on the backtracking engine, in windows.
   */
  get customLinear(): boolean {
    return this.#custom.every((c) => c.linear);
  }

  /** Replaces every match in `text`; returns `text` itself, and no types, when nothing matched. */
  redactString(text: string): RedactedText {
    const lists = this.#find(text);
    return lists === undefined ? { text, types: [] } : replace(text, lists);
  }

  /** Replaces every match in `text`; returns `text` itself when nothing matched. */
  redactText(text: string): string {
    const lists = this.#find(text);
    return lists === undefined ? text : replace(text, lists).text;
  }

  /** The matches of each scanner and custom pattern that found any; undefined when none did. */
  #find(text: string): Spans[] | undefined {
    if (text.length < this.#shortest) return undefined;
    let lists: Spans[] | undefined;
    let words: boolean | undefined;
    const scanners = this.#scanners;
    for (let i = 0; i < scanners.length; i++) {
      const scanner = scanners[i]!;
      if (text.length < scanner.shortest) continue;
      if (scanner.word === true && !(words ??= WORDS.test(text))) continue;
      // Most strings hold nothing: one scratch list a scanner, replaced only when it is kept.
      const out = this.#scratch[i]!;
      scanner.scan(text, out);
      if (out.starts.length === 0) continue;
      (lists ??= []).push(out);
      this.#scratch[i] = new Spans(this.#enabled);
    }
    for (const c of this.#custom) {
      const out = new Spans(null);
      scanCustom(text, c, out);
      if (out.starts.length > 0) (lists ??= []).push(out);
    }
    return lists;
  }

  /** Redacts every string in `value`, found at `path`. Returns the same object when nothing matched. */
  redact(value: JsonValue, path: string): RedactedValue {
    return this.#walk.redact(value, path);
  }
}

const MARKERS = new Map<string, string>();

/** `[REDACTED:<type>]`, made once per type. */
function marker(type: string): string {
  let m = MARKERS.get(type);
  if (m === undefined) {
    m = `[REDACTED:${type}]`;
    // Custom names come from configuration, which reloads: keep the cache bounded.
    if (MARKERS.size >= 1024) MARKERS.clear();
    MARKERS.set(type, m);
  }
  return m;
}

/**
 * Replaces the matches of every list. The lists are merged by start — each is in order already, so
 * this is linear — and overlapping matches become one: the earliest start labels the whole (a
 * longer match, then an earlier list, breaking ties), so no part of a secret any detector found is
 * left in the text.
 */
function replace(text: string, lists: Spans[]): RedactedText {
  const heads = lists.map(() => 0);
  const types = new Set<string>();
  // One flat string at the end: a rope of `+=` pieces would cost the collector per piece.
  const out: string[] = [];
  let copied = 0;
  let label: string | undefined;
  let groupStart = 0;
  let groupEnd = 0;
  for (;;) {
    let pick = -1;
    let start = Infinity;
    let end = -1;
    for (let l = 0; l < lists.length; l++) {
      const h = heads[l]!;
      const list = lists[l]!;
      if (h >= list.starts.length) continue;
      const s = list.starts[h]!;
      const e = list.ends[h]!;
      if (s < start || (s === start && e > end)) {
        pick = l;
        start = s;
        end = e;
      }
    }
    if (pick < 0) break;
    const type = lists[pick]!.types[heads[pick]!]!;
    heads[pick]!++;
    if (label !== undefined && start < groupEnd) {
      groupEnd = Math.max(groupEnd, end);
      continue;
    }
    if (label !== undefined) {
      out.push(text.slice(copied, groupStart), marker(label));
      copied = groupEnd;
    }
    label = type;
    groupStart = start;
    groupEnd = end;
    types.add(type);
  }
  if (label !== undefined) {
    out.push(text.slice(copied, groupStart), marker(label));
    copied = groupEnd;
  }
  out.push(text.slice(copied));
  return { text: out.join(""), types: [...types] };
}
