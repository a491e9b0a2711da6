import assert from "node:assert/strict";
import {
  CUSTOM_OVERLAP,
  CUSTOM_WINDOW,
  DETECTOR_NAMES,
  DetectorConfigError,
  type DetectorName,
  nextTokenPrefix,
  TOKEN_PREFIXES,
  ValueRedactor,
} from "./detectors.ts";
import { isRawNumber, type JsonValue, parseLossless } from "../jsonrpc/json.ts";
import {
  ADVERSARIAL_CUSTOM,
  ADVERSARIAL_INPUTS,
  fill,
  flat,
  JWT_HEADER as HEADER,
  JWT_PAYLOAD as PAYLOAD,
} from "./testdata/adversarial_inputs.ts";

const all = new ValueRedactor();
const only = (name: DetectorName) => new ValueRedactor({ detectors: [name] });

const b64url = (s: string) => btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const JWT = `${HEADER}.${PAYLOAD}.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c`;

/** Appends the Luhn check digit to `body`. */
function withCheckDigit(body: string): string {
  let sum = 0;
  for (let i = body.length - 1, double = true; i >= 0; i--, double = !double) {
    let d = Number(body[i]) * (double ? 2 : 1);
    if (d > 9) d -= 9;
    sum += d;
  }
  return body + String((10 - sum % 10) % 10);
}

const PEM_BODY = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n" +
  "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK";
const AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const GHP = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8";
const R = (type: string) => `[REDACTED:${type}]`;

/** [detector, input, expected output with every detector on]. */
const TRUE_POSITIVES: [DetectorName, string, string][] = [
  ["email", "mail ana@example.com now", `mail ${R("email")} now`],
  ["email", "first.last+tag@mail.example.co.uk", R("email")],
  ["email", "Contact: <bob_smith@sub-domain.example.org>.", `Contact: <${R("email")}>.`],
  ["email", "a@b.io, c@d.io", `${R("email")}, ${R("email")}`],
  ["email", "ends a sentence: x@example.com.", `ends a sentence: ${R("email")}.`],
  ["email", "UPPER@EXAMPLE.COM", R("email")],
  ["card_number", "pay with 4111 1111 1111 1111 today", `pay with ${R("card_number")} today`],
  ["card_number", "4111-1111-1111-1111", R("card_number")],
  ["card_number", "card:5555555555554444;", `card:${R("card_number")};`],
  ["card_number", "amex 3782 822463 10005", `amex ${R("card_number")}`],
  ["card_number", "6011111111111117", R("card_number")],
  ["card_number", "2223003122003222", R("card_number")],
  ["card_number", "visa13 4222222222222", `visa13 ${R("card_number")}`],
  ["card_number", `long ${withCheckDigit("621234567890123456")}`, `long ${R("card_number")}`],
  ["card_number", '{"pan":"4111111111111111"}', `{"pan":"${R("card_number")}"}`],
  ["jwt", `token ${JWT} here`, `token ${R("jwt")} here`],
  ["jwt", `ends a sentence ${JWT}.`, `ends a sentence ${R("jwt")}.`],
  ["jwt", `unsigned ${HEADER}.${PAYLOAD}.`, `unsigned ${R("jwt")}`],
  [
    "jwt",
    `https://x.test/cb?id_token=${JWT}&state=1`,
    `https://x.test/cb?id_token=${R("jwt")}&state=1`,
  ],
  ["jwt", `Bearer ${JWT}`, `Bearer ${R("jwt")}`],
  [
    "bearer_token",
    "Authorization: Bearer abc123def456",
    `Authorization: Bearer ${R("bearer_token")}`,
  ],
  [
    "bearer_token",
    "authorization: bearer\tmF_9.B5f-4.1JqM",
    `authorization: bearer\t${R("bearer_token")}`,
  ],
  ["bearer_token", "BEARER Zm9vYmFyYmF6cXV4cXV1eA== end", `BEARER ${R("bearer_token")} end`],
  ["bearer_token", "Bearer AbCdEfGhIjKlMnOpQr", `Bearer ${R("bearer_token")}`],
  ["aws_access_key", "id AKIAIOSFODNN7EXAMPLE ok", `id ${R("aws_access_key")} ok`],
  ["aws_access_key", "ASIAY34FZKBOKMUTVV7A", R("aws_access_key")],
  ["aws_access_key", "key=AKIAIOSFODNN7EXAMPLE&x", `key=${R("aws_access_key")}&x`],
  [
    "aws_secret_key",
    `AWS_SECRET_ACCESS_KEY=${AWS_SECRET}\n`,
    `AWS_SECRET_ACCESS_KEY=${R("aws_secret_key")}\n`,
  ],
  [
    "aws_secret_key",
    `{"SecretAccessKey": "${AWS_SECRET}"}`,
    `{"SecretAccessKey": "${R("aws_secret_key")}"}`,
  ],
  ["aws_secret_key", `aws_secret_key: ${AWS_SECRET}`, `aws_secret_key: ${R("aws_secret_key")}`],
  [
    "aws_secret_key",
    `--aws-secret-access-key ${AWS_SECRET}`,
    `--aws-secret-access-key ${R("aws_secret_key")}`,
  ],
  [
    "aws_secret_key",
    `{\\"secret_access_key\\" => \\"${AWS_SECRET}\\"}`,
    `{\\"secret_access_key\\" => \\"${R("aws_secret_key")}\\"}`,
  ],
  ["github_token", `use ${GHP} now`, `use ${R("github_token")} now`],
  ["github_token", GHP.replace("ghp_", "gho_"), R("github_token")],
  ["github_token", GHP.replace("ghp_", "ghu_"), R("github_token")],
  ["github_token", GHP.replace("ghp_", "ghs_"), R("github_token")],
  ["github_token", GHP.replace("ghp_", "ghr_"), R("github_token")],
  [
    "github_token",
    "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVW",
    R("github_token"),
  ],
  ["slack_token", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", R("slack_token")],
  ["slack_token", "xoxp-1234567890-abcdef", R("slack_token")],
  ["slack_token", "xoxa-2-1234567890", R("slack_token")],
  ["slack_token", "xoxr-1234567890-x", R("slack_token")],
  ["slack_token", "xoxs-1234567890-x", R("slack_token")],
  [
    "slack_webhook",
    "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
    `https://${R("slack_webhook")}`,
  ],
  [
    "slack_webhook",
    "post to https://hooks.slack.com/workflows/T0123/A0456/789/abcDEF now",
    `post to https://${R("slack_webhook")} now`,
  ],
  ["openai_key", "sk-proj-abc123DEF456ghi789JKL012", R("openai_key")],
  ["openai_key", `OPENAI_API_KEY=sk-${"a1B2".repeat(12)}`, `OPENAI_API_KEY=${R("openai_key")}`],
  [
    "anthropic_key",
    "key: sk-ant-api03-abcDEF123456789012345678-xyzAA",
    `key: ${R("anthropic_key")}`,
  ],
  ["stripe_key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", R("stripe_key")],
  ["stripe_key", "rk_live_51H8abcDEFghiJKLmnoPQR", R("stripe_key")],
  ["google_api_key", "AIzaSyD-abcdefghijklmnopqrstuvwxyz01234", R("google_api_key")],
  [
    "google_api_key",
    "?key=AIzaSyA_1234567890abcdefghijklmnopqrstu&q",
    `?key=${R("google_api_key")}&q`,
  ],
  [
    "private_key",
    `x -----BEGIN RSA PRIVATE KEY-----\n${PEM_BODY}\n-----END RSA PRIVATE KEY----- y`,
    `x ${R("private_key")} y`,
  ],
  [
    "private_key",
    `-----BEGIN PRIVATE KEY-----\n${PEM_BODY}\n-----END PRIVATE KEY-----\n`,
    `${R("private_key")}\n`,
  ],
  [
    "private_key",
    `-----BEGIN OPENSSH PRIVATE KEY-----\\n${PEM_BODY}\\n-----END OPENSSH PRIVATE KEY-----`,
    R("private_key"),
  ],
  [
    "private_key",
    `-----BEGIN ENCRYPTED PRIVATE KEY-----\n${PEM_BODY}\n-----END ENCRYPTED PRIVATE KEY-----`,
    R("private_key"),
  ],
  [
    "private_key",
    `-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n${PEM_BODY}\n-----END PGP PRIVATE KEY BLOCK-----`,
    R("private_key"),
  ],
  [
    "private_key",
    `cut: -----BEGIN EC PRIVATE KEY-----\n${PEM_BODY}\n… (truncated)`,
    `cut: ${R("private_key")}\n… (truncated)`,
  ],
];

/** [detector it might be mistaken for, input that every detector leaves alone]. */
const FALSE_POSITIVES: [DetectorName, string][] = [
  ["email", "user@localhost"],
  ["email", "admin@server"],
  ["email", "thanks @mention"],
  ["email", "lodash@4.17.21 and npm:@scope/pkg@^2.0.0"],
  ["email", "a@b.c"],
  ["email", "foo@bar.123"],
  ["email", "name@-example.com"],
  ["email", "name@example..com"],
  ["email", `x@${"a".repeat(250)}.com`],
  ["email", `${"a".repeat(65)}@example.com`],
  ["email", "git@ :) @ @@ @."],
  ["card_number", "4111 1111 1111 1112"],
  ["card_number", "4111111111111112"],
  ["card_number", "1700000000000 ms since epoch"],
  ["card_number", "phone +1 415 555 2671"],
  ["card_number", "+4111111111111111"],
  ["card_number", "550e8400-e29b-41d4-a716-446655440000"],
  ["card_number", "12345678-1234-1234-1234-123456789012"],
  ["card_number", "version 4.1111111111111111 and 0.4111111111111111"],
  ["card_number", "4111111111111111.5"],
  ["card_number", "ORD4111111111111111 and 4111111111111111x"],
  ["card_number", "4111 1111-1111 1111"],
  ["card_number", "41111111111111111113"],
  ["card_number", "2024-01-15 10:30:00 and 1.2.3.4"],
  ["card_number", "sha 0000000000000000000000000000000000000000"],
  ["jwt", "eyJmb28iOiJiYXIifQ"],
  ["jwt", `eyJmb28iOiJiYXIifQ.${PAYLOAD}.c2ln`],
  ["jwt", `${JWT}.extra`],
  ["jwt", `${HEADER}..c2ln`],
  ["jwt", `${b64url('{"not json')}.${PAYLOAD}.c2ln`],
  ["jwt", `x${JWT}`],
  ["jwt", "eyJ!!!.a.b and eyJ. and eyJ"],
  ["jwt", btoa(JSON.stringify({ alg: "HS256", payload: "x".repeat(40) }))],
  ["bearer_token", "the Bearer scheme and Bearer authentication"],
  ["bearer_token", "Bearer tokens are short-lived"],
  ["bearer_token", "Authorization: Bearer <token>"],
  ["bearer_token", "Bearer abcdefg"],
  ["bearer_token", "Bearer Authentication"],
  ["bearer_token", "Bearer internationalization"],
  ["bearer_token", "Bearer"],
  ["bearer_token", "cross-bearer abc123def456 and xbearer abc123def456"],
  ["aws_access_key", "AKIAIOSFODNN7EXAMPL"],
  ["aws_access_key", "AKIAIOSFODNN7EXAMPLE1"],
  ["aws_access_key", "xAKIAIOSFODNN7EXAMPLE"],
  ["aws_access_key", "AKIAiosfodnn7example"],
  ["aws_access_key", "AIDAIOSFODNN7EXAMPLE"],
  ["aws_secret_key", AWS_SECRET],
  ["aws_secret_key", `client_secret_key = ${AWS_SECRET}`],
  ["aws_secret_key", `aws_secret_access_key = ${AWS_SECRET}x`],
  ["aws_secret_key", "aws_secret_access_key = tooShort123"],
  ["aws_secret_key", `mysecretkey: ${AWS_SECRET}`],
  ["github_token", "ghp_short"],
  ["github_token", `x${GHP}`],
  ["github_token", GHP.replace("ghp_", "ghx_")],
  ["github_token", "github_pat_short"],
  ["slack_token", "xoxb-example"],
  ["slack_token", "xoxz-1234567890abc"],
  ["slack_token", "xoxb-1234"],
  ["slack_webhook", "https://hooks.slack.com/apps/12345678901234567890"],
  ["slack_webhook", "https://api.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXX"],
  ["slack_webhook", "https://evilhooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXX"],
  ["openai_key", "sk-learn and sk-1234"],
  ["openai_key", "task-1234567890abcdefghij"],
  ["openai_key", "sk-this-is-a-very-long-kebab-case-name"],
  ["openai_key", "risk-assessment-2024-quarterly-report-v2"],
  ["anthropic_key", "sk-ant-short1 and sk-ant-api-key-goes-here-in-this-field"],
  ["stripe_key", "sk_test_4eC39HqLyjWDarjtT1zdp7dc"],
  ["stripe_key", "sk_live_short1"],
  ["stripe_key", "pk_live_4eC39HqLyjWDarjtT1zdp7dc"],
  ["google_api_key", "AIzaSyD-abcdefghijklmnopqrstuvwxyz0123"],
  ["google_api_key", "AIzaSyD-abcdefghijklmnopqrstuvwxyz012345"],
  ["private_key", `-----BEGIN PUBLIC KEY-----\n${PEM_BODY}\n-----END PUBLIC KEY-----`],
  ["private_key", `-----BEGIN CERTIFICATE-----\n${PEM_BODY}\n-----END CERTIFICATE-----`],
  ["private_key", "-----BEGIN PRIVATE KEY-----"],
  ["private_key", "paste your -----BEGIN RSA PRIVATE KEY----- block here"],
  ["private_key", "BEGIN PRIVATE KEY ... END PRIVATE KEY"],
];

Deno.test("every detector has true and false positives in the tables", () => {
  for (const name of DETECTOR_NAMES) {
    assert.ok(TRUE_POSITIVES.some(([d]) => d === name), `no true positive for ${name}`);
    assert.ok(FALSE_POSITIVES.some(([d]) => d === name), `no false positive for ${name}`);
  }
});

Deno.test("each detector redacts its true positives, alone and with all the others", () => {
  for (const [name, input, want] of TRUE_POSITIVES) {
    const got = all.redactString(input);
    assert.equal(got.text, want, `${name}: ${JSON.stringify(input)}`);
    assert.ok(got.types.length > 0);
    // A JWT after `Bearer` is labelled as the JWT it is, by either detector alone.
    const alone = only(name).redactString(input).text;
    assert.equal(alone, want.replaceAll(R("jwt"), R(name)), `${name} alone: ${input}`);
  }
});

Deno.test("no detector redacts its false positives", () => {
  for (const [name, input] of FALSE_POSITIVES) {
    const got = all.redactString(input);
    assert.equal(got.text, input, `${name}: ${JSON.stringify(input)} became ${got.text}`);
    assert.deepEqual(got.types, []);
  }
});

Deno.test("redactString reports each type once, in order of first appearance", () => {
  const got = all.redactString(`a@b.io ${GHP} c@d.io ${GHP} 4111111111111111`);
  assert.equal(
    got.text,
    `${R("email")} ${R("github_token")} ${R("email")} ${R("github_token")} ${R("card_number")}`,
  );
  assert.deepEqual(got.types, ["email", "github_token", "card_number"]);
});

Deno.test("only the detectors named are enabled; none when the list is empty", () => {
  const text = `ana@example.com ${GHP} 4111111111111111`;
  assert.equal(
    new ValueRedactor({ detectors: ["email", "card_number"] }).redactString(text).text,
    `${R("email")} ${GHP} ${R("card_number")}`,
  );
  const anthropicOnly = new ValueRedactor({ detectors: ["anthropic_key"] });
  const keys = "sk-proj-abc123DEF456ghi789JKL012 sk-ant-api03-abcDEF123456789012345678";
  assert.equal(
    anthropicOnly.redactString(keys).text,
    `sk-proj-abc123DEF456ghi789JKL012 ${R("anthropic_key")}`,
  );
  const none = new ValueRedactor({ detectors: [] });
  assert.equal(none.redactString(text).text, text);
  assert.deepEqual(none.detectors, []);
  assert.deepEqual(all.detectors, [...DETECTOR_NAMES]);
});

Deno.test("overlapping matches merge so that no part of either is left", () => {
  // The custom match starts first and runs into the e-mail address.
  const r = new ValueRedactor({ custom: [{ name: "ref", pattern: "REF:[a-z]+" }] });
  assert.deepEqual(r.redactString("REF:ana@example.com! ok@example.com"), {
    text: `${R("ref")}! ${R("email")}`,
    types: ["ref", "email"],
  });
  // Same start: the longer match wins.
  const long = new ValueRedactor({
    custom: [{ name: "mailbox", pattern: "ana@example\\.com/inbox" }],
  });
  assert.equal(long.redactString("ana@example.com/inbox").text, R("mailbox"));
});

Deno.test("an unknown detector, a bad name or an invalid custom pattern is refused by name", () => {
  const refused = (
    options: ConstructorParameters<typeof ValueRedactor>[0],
    code: string,
    who: string,
  ) =>
    assert.throws(() => new ValueRedactor(options), (e: unknown) => {
      assert.ok(e instanceof DetectorConfigError);
      assert.equal(e.code, code);
      assert.equal(e.detector, who);
      assert.ok(e.message.includes(JSON.stringify(who)), e.message);
      return true;
    });
  refused({ detectors: ["email", "ssn"] }, "unknown_detector", "ssn");
  refused({ custom: [{ name: "ticket", pattern: "TCK-(" }] }, "invalid_pattern", "ticket");
  refused({ custom: [{ name: "bad name!", pattern: "x" }] }, "invalid_name", "bad name!");
  refused({ custom: [{ name: "", pattern: "x" }] }, "invalid_name", "");
  refused({ custom: [{ name: "email", pattern: "x" }] }, "duplicate_name", "email");
  refused(
    { custom: [{ name: "t", pattern: "a" }, { name: "t", pattern: "b" }] },
    "duplicate_name",
    "t",
  );
  try {
    new ValueRedactor({ custom: [{ name: "ticket", pattern: "TCK-[0-9" }] });
    assert.fail("accepted an invalid pattern");
  } catch (e) {
    assert.ok(e instanceof DetectorConfigError);
    assert.ok(e.message.includes('"TCK-[0-9"'), e.message);
  }
});

Deno.test("custom patterns replace whole matches and skip empty ones", () => {
  const r = new ValueRedactor({
    detectors: [],
    custom: [{ name: "ticket", pattern: "TCK-[0-9]{6}" }, { name: "xs", pattern: "x*" }],
  });
  assert.deepEqual(r.redactString("see TCK-123456 and TCK-12 and xx."), {
    text: `see ${R("ticket")} and TCK-12 and ${R("xs")}.`,
    types: ["ticket", "xs"],
  });
  assert.deepEqual(r.redactString("ab"), { text: "ab", types: [] });
});

Deno.test("custom patterns find matches on every side of a window edge in long strings", () => {
  const r = new ValueRedactor({ detectors: [], custom: [{ name: "t", pattern: "TCK-[0-9]{6}" }] });
  const size = CUSTOM_WINDOW * 5;
  const offsets: number[] = [];
  for (let edge = CUSTOM_WINDOW; edge < size - CUSTOM_WINDOW; edge += CUSTOM_WINDOW) {
    offsets.push(edge - 30, edge - 5, edge + 20, edge + CUSTOM_OVERLAP - 5, edge + 400);
  }
  const chars = Array.from({ length: size }, () => ".");
  for (const at of offsets) chars.splice(at, 10, ..."TCK-123456");
  const text = chars.join("");
  assert.ok(text.length > CUSTOM_WINDOW + CUSTOM_OVERLAP);
  const got = r.redactString(text).text;
  assert.equal(got.split(R("t")).length - 1, offsets.length);
  assert.ok(!got.includes("TCK-"));
});

Deno.test("redact walks objects and arrays and reports the path of each string changed", () => {
  const value = parseLossless(JSON.stringify({
    arguments: {
      note: "mail ana@example.com",
      list: ["plain", `token ${GHP}`, { deep: ["4111 1111 1111 1111"] }],
      "x-y": "a@b.io",
      count: 3,
      ok: true,
      none: null,
      same: "nothing here",
    },
  }));
  const { value: out, paths } = all.redact(value, "params");
  assert.deepEqual(paths, [
    "params.arguments.note",
    "params.arguments.list[1]",
    "params.arguments.list[2].deep[0]",
    'params.arguments["x-y"]',
  ]);
  assert.deepEqual(out, {
    arguments: {
      note: `mail ${R("email")}`,
      list: ["plain", `token ${R("github_token")}`, { deep: [R("card_number")] }],
      "x-y": R("email"),
      count: 3,
      ok: true,
      none: null,
      same: "nothing here",
    },
  });
  // The input is not changed; untouched subtrees are shared.
  const args = (value as { arguments: Record<string, JsonValue> }).arguments;
  assert.equal(args["note"], "mail ana@example.com");
  const outArgs = (out as { arguments: Record<string, JsonValue> }).arguments;
  assert.equal(outArgs["same"], args["same"]);
});

Deno.test("redact returns the same value when nothing matched, and strings at the top level", () => {
  const value = parseLossless('{"a":[1,"two",{"b":"three"}]}');
  const got = all.redact(value, "result");
  assert.equal(got.value, value);
  assert.deepEqual(got.paths, []);
  assert.deepEqual(all.redact("ana@example.com", "error.message"), {
    value: R("email"),
    paths: ["error.message"],
  });
});

Deno.test("big integers kept as digits are left intact, card-like or not", () => {
  const text = '{"id":41111111111111111111,"pan":4111111111111111,"n":12345678901234567890,' +
    '"s":"4111111111111111"}';
  const value = parseLossless(text);
  const { value: out, paths } = all.redact(value, "result");
  assert.deepEqual(paths, ["result.s"]);
  const o = out as Record<string, JsonValue>;
  const v = value as Record<string, JsonValue>;
  assert.ok(isRawNumber(o["id"]));
  assert.equal(o["id"], v["id"]);
  assert.equal(o["n"], v["n"]);
  assert.equal(
    JSON.stringify(out),
    '{"id":41111111111111111111,"pan":4111111111111111,"n":12345678901234567890,' +
      `"s":"${R("card_number")}"}`,
  );
});

Deno.test("a member named __proto__ is redacted as a member", () => {
  const value = parseLossless('{"__proto__":"ana@example.com"}');
  const { value: out, paths } = all.redact(value, "params");
  assert.deepEqual(paths, ["params.__proto__"]);
  assert.equal(Object.getPrototypeOf(out), Object.prototype);
  assert.equal(JSON.stringify(out), `{"__proto__":"${R("email")}"}`);
});

// ---------------------------------------------------------------------------------------------
// Adversarial input
//
// What the detectors make of strings built to slow them down. How long they take is measured by
// `scripts/bench/detectors.ts` (`deno task bench --only detectors`) on the same inputs, at 1 MiB and 2 MiB:
// a time asserted here would fail on a busy machine, and pass a slow detector on a fast one.

const KiB = 1024;
const MiB = 1024 * KiB;

/** The families in which all detectors together find something; none find anything in the rest. */
const FOUND: Record<string, { types: DetectorName[]; matches: "one" | "per repeat" }> = {
  "email: many matches": { types: ["email"], matches: "per repeat" },
  "card: many matches": { types: ["card_number"], matches: "per repeat" },
  "jwt: headers and dots": { types: ["jwt"], matches: "per repeat" },
  "bearer: many matches": { types: ["bearer_token"], matches: "per repeat" },
  "private: key, one long body": { types: ["private_key"], matches: "one" },
  "all: mixed prefixes": { types: ["email", "bearer_token"], matches: "per repeat" },
};

const markers = (text: string): number => text.match(/\[REDACTED:[a-z_]+\]/g)?.length ?? 0;

/**
 * Redacts `make(size / 2)` and `make(size)` and checks the outcome: the types `expected`, nothing
 * changed when none; as many matches again in twice the text (give or take the one cut at the
 * end) or one whole match; and nothing left for a second pass to find.
 */
function assertFinds(
  label: string,
  redactor: ValueRedactor,
  make: (n: number) => string,
  expected: { types: readonly string[]; matches: "one" | "per repeat" } | undefined,
  size = MiB,
): void {
  const counts: number[] = [];
  for (const n of [size / 2, size]) {
    const text = flat(make(n));
    assert.equal(text.length, n, label);
    const out = redactor.redactString(text);
    assert.deepEqual(out.types, expected?.types ?? [], `${label}: types at ${n} characters`);
    if (expected === undefined) {
      assert.equal(out.text, text, `${label}: unchanged at ${n} characters`);
      continue;
    }
    counts.push(markers(out.text));
    assert.equal(redactor.redactString(out.text).text, out.text, `${label}: a second pass`);
  }
  if (expected === undefined) return;
  const [half, whole] = counts as [number, number];
  if (expected.matches === "one") {
    assert.deepEqual(counts, [1, 1], `${label}: one match`);
  } else {
    assert.ok(half > 0 && Math.abs(whole - 2 * half) <= 1, `${label}: ${half} then ${whole}`);
  }
}

Deno.test("all detectors together on adversarial 1 MiB strings find every match and nothing else", () => {
  for (const { label, make } of ADVERSARIAL_INPUTS) assertFinds(label, all, make, FOUND[label]);
});

Deno.test("each detector alone finds in the strings aimed at it what all of them find of its kind", () => {
  for (const name of DETECTOR_NAMES) {
    const r = only(name);
    const aimed = ADVERSARIAL_INPUTS.filter((input) => input.aimedAt.includes(name));
    assert.ok(aimed.length > 1, name);
    for (const { label, make } of aimed) {
      const found = FOUND[label];
      const types = found?.types.filter((t) => t === name) ?? [];
      const expected = types.length === 0 ? undefined : { types, matches: found!.matches };
      assertFinds(`${name} on ${label}`, r, make, expected);
    }
  }
});

Deno.test("a simple custom pattern finds every match in adversarial 1 MiB strings and nothing else", () => {
  for (const c of ADVERSARIAL_CUSTOM.filter((c) => c.sizes === "full")) {
    const r = new ValueRedactor({
      ...(c.builtIns ? {} : { detectors: [] }),
      custom: [{ name: "acme", pattern: c.pattern }],
    });
    const found = c.label.endsWith("many matches")
      ? { types: ["acme"], matches: "per repeat" as const }
      : undefined;
    assertFinds(c.label, r, c.make, found);
  }
});

Deno.test("a quadratic custom pattern is searched in windows, which cut only matches longer than the overlap", () => {
  const q = ADVERSARIAL_CUSTOM.find((c) => c.sizes === "reduced")!;
  const r = new ValueRedactor({ detectors: [], custom: [{ name: "corp", pattern: q.pattern }] });
  assert.equal(r.customLinear, false);
  assertFinds(q.label, r, q.make, undefined, 256 * KiB);
  // The price: a match longer than the overlap is cut at a window's start.
  const text = fill("a", 3 * CUSTOM_WINDOW) + "@corp";
  assert.equal(r.redactString(text).text, text.slice(0, 2 * CUSTOM_WINDOW) + R("corp"));
});

Deno.test("with V8's linear engine enabled, custom patterns run on it, catastrophic ones too", async () => {
  const module = new URL("./detectors.ts", import.meta.url).href;
  // The catastrophic pattern is run only once it is known to be on the linear engine: on the
  // backtracking one it would not end, and this test would hang instead of failing.
  const code = `
    import { ValueRedactor } from ${JSON.stringify(module)};
    const r = new ValueRedactor({ detectors: [], custom: [{ name: "evil", pattern: "(a+)+$" }] });
    const back = new ValueRedactor({ custom: [{ name: "ref", pattern: "(a)\\\\1" }] });
    const out = r.customLinear ? r.redactString("a".repeat(${MiB}) + "!") : undefined;
    console.log(JSON.stringify({
      linear: r.customLinear,
      changed: out === undefined || out.text.length !== ${MiB} + 1,
      backreference: back.customLinear,
      works: back.redactString("xaay").text,
    }));
  `;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--v8-flags=--enable-experimental-regexp-engine", code],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  const got = JSON.parse(new TextDecoder().decode(output.stdout));
  assert.equal(got.linear, true);
  assert.equal(got.changed, false);
  // A backreference needs the backtracking engine, which still takes it.
  assert.equal(got.backreference, false);
  assert.equal(got.works, `x${R("ref")}y`);
});

Deno.test("a secret exactly as short as its detector can match is found, alone and with all", () => {
  // Strings shorter than the shortest match of every detector enabled are not searched: these
  // are the shortest matches, so a bound set too high fails here.
  const header = b64url('{"alg":""}');
  const shortest: [DetectorName, string][] = [
    ["email", "a@b.co"],
    ["card_number", "4222222222222"],
    ["bearer_token", "bearer abcdefg1"],
    ["slack_token", "xoxb-1234567890"],
    ["aws_access_key", "AKIA" + "A".repeat(16)],
    ["jwt", `${header}.e.`],
    ["private_key", "-----BEGIN PRIVATE KEY----------END PRIVATE KEY-----"],
    ["aws_secret_key", "awssecretkey=" + AWS_SECRET],
  ];
  for (const [name, text] of shortest) {
    for (const r of [only(name), all]) {
      const got = r.redactString(text);
      assert.deepEqual(got.types, [name], `${name}: ${text} (${text.length} characters)`);
      assert.equal(r.redactText(text), got.text);
    }
    // One character fewer: too short for it, found by nothing.
    assert.deepEqual(only(name).redactString(text.slice(1)).types, [], `${name}: ${text.slice(1)}`);
  }
});

Deno.test("strings too short for any detector are passed over, unless a custom pattern is on", () => {
  const custom = new ValueRedactor({ custom: [{ name: "pin", pattern: "\\b\\d{4}\\b" }] });
  assert.equal(all.redactText("1234"), "1234");
  assert.equal(custom.redactText("1234"), "[REDACTED:pin]");
  assert.equal(only("card_number").redactText("a@b.co"), "a@b.co");
});

Deno.test("token prefixes are found where a search for the alternation of all of them finds them", () => {
  const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  const alternation = new RegExp(TOKEN_PREFIXES.map(escape).join("|"), "g");
  // Prefixes whole and in part, overlapping, the rare characters alone, and prose around them.
  const pieces = [
    ...TOKEN_PREFIXES,
    ...TOKEN_PREFIXES.map((p) => p.slice(0, -1)),
    ...TOKEN_PREFIXES.map((p) => p.slice(1)),
    "AKIASIA",
    "sk-sk_live_",
    "xoxb-xoxp-",
    "-",
    "_",
    "A",
    "/",
    ".",
    " ",
    "the ",
    "sks",
    "abc123",
    "hooks.slack.com",
    "hooks.hooks.slack.com/",
  ];
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let i = 0; i < 2000; i++) {
    let text = "";
    for (let n = Math.floor(next() * 12); n > 0; n--) {
      text += pieces[Math.floor(next() * pieces.length)];
    }
    for (let from = 0; from <= text.length; from++) {
      alternation.lastIndex = from;
      const m = alternation.exec(text);
      const want = m === null ? null : { at: m.index, prefix: m[0] };
      assert.deepEqual(nextTokenPrefix(text, from), want, `${JSON.stringify(text)} from ${from}`);
    }
  }
});
