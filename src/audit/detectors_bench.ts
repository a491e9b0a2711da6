/**
 * The value detectors on one string (`redactText`, which the redaction walk calls): each family
 * alone, then all of them, on prose that holds no secret (most strings) and on prose that holds
 * some; and short strings, which most values are. Run with
 * `deno bench src/audit/detectors_bench.ts`. (`scripts/bench/detectors.ts` measures how time
 * grows on adversarial megabytes; this is the everyday cost.)
 *
 * @module
 */
import { DETECTOR_NAMES, ValueRedactor } from "./detectors.ts";

const PROSE = "Summarise the quarterly report for the board and list the open risks. " +
  "Keep it under three hundred words, cite the sections you used, and flag anything that " +
  "changed since the last meeting; the finance team wants the draft by Friday afternoon.";
const SECRETS = PROSE + " Mail ana@example.com, card 4111 1111 1111 1111, token ghp_" +
  "a1".repeat(18) + ", header Authorization: Bearer abcdef0123456789.";
const SHORT = ["en", "q3", "board", "finance", "team-7", "text", "user", "search_documents"];

const all = new ValueRedactor();
for (const name of DETECTOR_NAMES) {
  const one = new ValueRedactor({ detectors: [name] });
  Deno.bench(`detector ${name}: prose, no secret`, { group: "family" }, () => {
    one.redactText(PROSE);
  });
}
Deno.bench("all detectors: prose, no secret", { group: "all" }, () => {
  all.redactText(PROSE);
});
Deno.bench("all detectors: prose with four secrets", { group: "all" }, () => {
  all.redactText(SECRETS);
});
Deno.bench(`all detectors: ${SHORT.length} short strings`, { group: "all" }, () => {
  for (const s of SHORT) all.redactText(s);
});
