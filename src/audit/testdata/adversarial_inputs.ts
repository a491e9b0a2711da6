/**
 * Inputs built to make a naive detector slow: near-misses repeated, prefixes without an end, one
 * long token, matches back to back. `src/audit/detectors_test.ts` checks what the detectors make
 * of them; `scripts/bench/detectors.ts` times them at 1 MiB and 2 MiB, where the linear-time claim
 * is measured rather than asserted.
 *
 * @example
 * ```ts
 * import { ADVERSARIAL_INPUTS } from "./adversarial_inputs.ts";
 *
 * const first = ADVERSARIAL_INPUTS[0]!;
 * first.make(1024).length; // 1024
 * ```
 *
 * @module
 */
import { DETECTOR_NAMES, type DetectorName } from "../detectors.ts";

/** One family of adversarial strings. */
export interface AdversarialInput {
  /** The detector attacked, before the colon, and how. */
  label: string;
  /** The detectors the input is aimed at. */
  aimedAt: readonly DetectorName[];
  /** A string of exactly `n` characters (`n` at least 64). */
  make: (n: number) => string;
}

/** A custom pattern and adversarial strings for it. */
export interface AdversarialCustom {
  label: string;
  pattern: string;
  /** Whether the built-in detectors run too. */
  builtIns: boolean;
  make: (n: number) => string;
  /** Sizes to measure at: a pattern held to linear time by windows is slow per character. */
  sizes: "full" | "reduced";
}

const b64url = (s: string) => btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
/** A JWT header and payload, base64url. */
export const JWT_HEADER: string = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
export const JWT_PAYLOAD: string = b64url(JSON.stringify({ sub: "1234567890", name: "Ana" }));

/** Repeats `unit` to exactly `n` characters. */
export const fill = (unit: string, n: number): string =>
  unit.repeat(Math.ceil(n / unit.length)).slice(0, n);

/** The detectors each label's first word stands for. */
const AIMED_AT: Record<string, readonly DetectorName[]> = {
  email: ["email"],
  card: ["card_number"],
  jwt: ["jwt"],
  bearer: ["bearer_token"],
  aws: ["aws_access_key", "aws_secret_key"],
  github: ["github_token"],
  slack: ["slack_token", "slack_webhook"],
  openai: ["openai_key", "anthropic_key"],
  stripe: ["stripe_key"],
  google: ["google_api_key"],
  private: ["private_key"],
  all: DETECTOR_NAMES,
};

const RAW: [string, (n: number) => string][] = [
  ["email: a@ repeated", (n) => fill("a@", n)],
  ["email: long local parts", (n) => fill("a".repeat(64) + "@", n)],
  ["email: long domains", (n) => fill("@" + "a.".repeat(130), n)],
  ["email: local chars only", (n) => "@" + fill("a.", n - 2) + "@"],
  ["email: many matches", (n) => fill("a@b.io ", n)],
  ["card: digits with separators", (n) => fill("1 ", n)],
  ["card: dashed groups", (n) => fill("4111-", n)],
  ["card: digits only", (n) => fill("4", n)],
  ["card: many matches", (n) => fill("4111111111111111 ", n)],
  ["jwt: eyJ then dots", (n) => "eyJ" + fill(".", n - 3)],
  ["jwt: eyJ. repeated", (n) => fill("eyJ.", n)],
  ["jwt: eyJ without dots", (n) => fill("eyJ ", n)],
  ["jwt: headers and dots", (n) => fill(` ${JWT_HEADER}.${JWT_PAYLOAD}.`, n)],
  ["jwt: header without the end", (n) => fill(` ${JWT_HEADER}.`, n)],
  ["bearer: Bearer repeated", (n) => fill("Bearer ", n)],
  ["bearer: one long token", (n) => "Bearer " + fill("a", n - 7)],
  ["bearer: long white space", (n) => "Bearer" + fill(" ", n - 6)],
  ["bearer: many matches", (n) => fill("Bearer abc123def456 ", n)],
  ["aws: key, AKIA repeated", (n) => fill("AKIA", n)],
  ["aws: key, almost keys", (n) => fill("AKIA" + "A".repeat(15) + " ", n)],
  ["aws: secret, labels repeated", (n) => fill("aws_secret_access_key=", n)],
  ["aws: secret, almost values", (n) => fill(`aws_secret_access_key: ${"A".repeat(39)} `, n)],
  ["aws: secret, secret repeated", (n) => fill("secret", n)],
  ["github: ghp_ repeated", (n) => fill("ghp_", n)],
  ["github: one long token", (n) => " ghp_" + fill("a", n - 5)],
  ["github: github_pat_ repeated", (n) => fill("github_pat_", n)],
  ["slack: xoxb- repeated", (n) => fill("xoxb-", n)],
  ["slack: one long token", (n) => "xoxb-" + fill("1-", n - 5)],
  ["slack: webhook, host repeated", (n) => fill("hooks.slack.com/", n)],
  ["slack: webhook, long path", (n) => "hooks.slack.com/services/" + fill("a/", n - 25)],
  ["slack: webhook, path of prefixes", (n) => "hooks.slack.com/" + fill("/ghp_a/sk-b", n - 16)],
  ["openai: sk- repeated", (n) => fill("sk-", n)],
  ["openai: one long token", (n) => "sk-" + fill("a-", n - 3)],
  ["stripe: sk_live_ repeated", (n) => fill("sk_live_", n)],
  ["stripe: one long key", (n) => "rk_live_" + fill("a1", n - 8)],
  ["google: AIza repeated", (n) => fill("AIza", n)],
  ["google: one long key", (n) => "AIza" + fill("a_", n - 4)],
  ["private: key, BEGIN repeated", (n) => fill("-----BEGIN ", n)],
  ["private: key, BEGIN lines without END", (n) => fill("-----BEGIN RSA PRIVATE KEY-----\n", n)],
  [
    "private: key, mismatched ENDs",
    (n) => fill("-----BEGIN PRIVATE KEY-----\nQUJD\n-----END RSA PRIVATE KEY-----\n", n),
  ],
  ["private: key, one long label", (n) => "-----BEGIN " + fill("A", n - 11)],
  [
    "private: key, one long body",
    (n) => "-----BEGIN PRIVATE KEY-----\n" + fill("QUJD\n", n - 28),
  ],
  ["private: key, END repeated", (n) => fill("-----END PRIVATE KEY-----", n)],
  ["all: mixed prefixes", (n) => fill("a@eyJ.Bearer AKIAghp_xoxb-sk-AIza-----BEGIN 4-1 ", n)],
];

/** Every adversarial family of the built-in detectors. */
export const ADVERSARIAL_INPUTS: readonly AdversarialInput[] = RAW.map(([label, make]) => ({
  label,
  aimedAt: AIMED_AT[label.slice(0, label.indexOf(":"))]!,
  make,
}));

/** Custom patterns: a simple one, and one that backtracks quadratically on a run of letters. */
export const ADVERSARIAL_CUSTOM: readonly AdversarialCustom[] = [
  {
    label: "custom ACME-[0-9]{8}: ACME- repeated",
    pattern: "ACME-[0-9]{8}",
    builtIns: true,
    make: (n) => fill("ACME-", n),
    sizes: "full",
  },
  {
    label: "custom ACME-[0-9]{8}: many matches",
    pattern: "ACME-[0-9]{8}",
    builtIns: true,
    make: (n) => fill("ACME-12345678 ", n),
    sizes: "full",
  },
  {
    // `[a-z]+@corp` reads to the end of a run of letters from every start: quadratic on the whole
    // string, linear in windows.
    label: "custom [a-z]+@corp: one run of letters",
    pattern: "[a-z]+@corp",
    builtIns: false,
    make: (n) => fill("a", n),
    sizes: "reduced",
  },
];

/** A flat copy: `repeat` and `+` build ropes, and the first scan of a rope flattens it. */
export const flat = (s: string): string => JSON.parse(JSON.stringify(s));
