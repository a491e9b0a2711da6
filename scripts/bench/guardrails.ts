/**
 * The two proxy configurations the benches compare, written as `config.yaml` files that the
 * proxies read with `--config`:
 *
 * - guardrails off, the baseline: no policy, no rate limit, no value detectors, no pinning; key
 *   redaction (`middleware.redact.patterns`), signing and the JSONL log as before;
 * - guardrails on: a 50-rule policy with a default of deny, every value detector and a custom
 *   pattern, tool pinning, and a rate limit too high ever to refuse.
 *
 * The policy is a realistic mix — exact tool names, globs (`delete_*`), method rules
 * (`resources/*`), conditions on `arguments.*` with every kind of test — ordered so that the
 * bench's `tools/call` of `search_issues` is the worst case short of the default: it is checked
 * against every rule, has the conditions of seven of them evaluated (two regular expressions, two
 * globs, two numeric tests, a prefix, two absent paths), and is allowed by the last one. None
 * denies it, so every call still reaches the server; the benches check that each was answered by
 * the server and that the guarded proxy's log credits {@link ALLOWING_RULE} with every call.
 *
 * @module
 */
import { stringify } from "yaml";
import { DETECTOR_NAMES } from "../../src/audit/detectors.ts";
import { int, median, met, pct, type Series, signed } from "./common.ts";

/** Which of the two configurations. */
export type Guardrails = "off" | "on";

/** A condition of a rule, as in `config.yaml`. */
interface Condition {
  path: string;
  op: "equals" | "prefix" | "glob" | "regex" | "lt" | "lte" | "gt" | "gte" | "exists";
  value?: string | number;
  negate?: boolean;
}

/** A policy rule, as in `config.yaml`. */
interface Rule {
  action: "allow" | "deny";
  client_id?: string;
  server_id?: string;
  tool_name?: string;
  method?: string;
  reason?: string;
  when?: Condition[];
}

const deny = (fields: Omit<Rule, "action">): Rule => ({ action: "deny", ...fields });
const allow = (fields: Omit<Rule, "action">): Rule => ({ action: "allow", ...fields });

/** The guarded proxy's policy: 50 rules, default deny. */
export const POLICY_RULES: readonly Rule[] = [
  // Whole tools, clients and servers that agents do not get.
  deny({ tool_name: "delete_*", reason: "destructive tools are not for agents" }),
  deny({ tool_name: "drop_*" }),
  deny({ tool_name: "*_admin" }),
  deny({ tool_name: "exec_command", reason: "no shell access" }),
  deny({ tool_name: "run_shell", reason: "no shell access" }),
  deny({ tool_name: "run_*_script" }),
  deny({ client_id: "untrusted-*" }),
  deny({ server_id: "legacy-*", reason: "legacy servers are being retired" }),
  // Files: writes only under the scratch area, no secrets read.
  deny({
    tool_name: "write_file",
    reason: "writes only under /srv/scratch",
    when: [{ path: "arguments.path", op: "prefix", value: "/srv/scratch/", negate: true }],
  }),
  deny({
    tool_name: "edit_file",
    when: [{ path: "arguments.path", op: "prefix", value: "/srv/scratch/", negate: true }],
  }),
  deny({
    tool_name: "move_file",
    when: [{ path: "arguments.destination", op: "prefix", value: "/srv/scratch/", negate: true }],
  }),
  deny({
    tool_name: "read_file",
    when: [{ path: "arguments.path", op: "glob", value: "/etc/**" }],
  }),
  deny({
    tool_name: "read_file",
    when: [{ path: "arguments.path", op: "glob", value: "**/.ssh/**" }],
  }),
  deny({
    tool_name: "read_*_file",
    when: [{ path: "arguments.path", op: "regex", value: "(?i)\\.(pem|key|p12|pfx)$" }],
  }),
  deny({ tool_name: "*", when: [{ path: "arguments.path", op: "glob", value: "**/.env" }] }),
  // The network: no internal addresses, no plain HTTP.
  deny({
    tool_name: "fetch_url",
    reason: "no internal addresses",
    when: [{
      path: "arguments.url",
      op: "regex",
      value: "^https?://(localhost|127\\.|10\\.|192\\.168\\.|169\\.254\\.)",
    }],
  }),
  deny({ tool_name: "fetch_url", when: [{ path: "arguments.url", op: "prefix", value: "file:" }] }),
  deny({
    tool_name: "*",
    reason: "plain http",
    when: [{ path: "arguments.url", op: "prefix", value: "http://" }],
  }),
  deny({
    tool_name: "send_email",
    when: [{ path: "arguments.to", op: "regex", value: "(?i)@(gmail|yahoo|outlook)\\.com$" }],
  }),
  deny({
    tool_name: "send_*",
    when: [{ path: "arguments.attachments.*", op: "glob", value: "**/*.exe" }],
  }),
  // Source control: no merges or pushes to main.
  deny({
    tool_name: "create_pull_request",
    when: [{ path: "arguments.base", op: "equals", value: "main" }],
  }),
  deny({ tool_name: "merge_pull_request", reason: "merges need a human" }),
  deny({
    tool_name: "push_files",
    when: [{ path: "arguments.branch", op: "equals", value: "main" }],
  }),
  deny({
    tool_name: "update_issue",
    reason: "closing an issue needs a reason",
    when: [
      { path: "arguments.state", op: "equals", value: "closed" },
      { path: "arguments.state_reason", op: "exists", negate: true },
    ],
  }),
  // Money and data.
  deny({
    tool_name: "transfer_funds",
    when: [{ path: "arguments.amount", op: "gt", value: 1000 }],
  }),
  deny({ tool_name: "refund_*", when: [{ path: "arguments.amount", op: "gte", value: 500 }] }),
  deny({
    tool_name: "query_database",
    when: [{ path: "arguments.sql", op: "regex", value: "(?i)\\b(drop|truncate|alter|grant)\\b" }],
  }),
  deny({
    tool_name: "query_database",
    when: [{ path: "arguments.sql", op: "regex", value: "(?i)^\\s*(delete|update)\\s" }],
  }),
  deny({ tool_name: "list_*", when: [{ path: "arguments.limit", op: "gt", value: 1000 }] }),
  // Search: the bench's calls are checked against these, and pass them.
  deny({
    tool_name: "search_*",
    reason: "result pages of at most 500",
    when: [{ path: "arguments.limit", op: "gt", value: 500 }],
  }),
  deny({
    tool_name: "search_*",
    reason: "no searching for credentials",
    when: [{
      path: "arguments.query",
      op: "regex",
      value: "(?i)\\b(password|passwd|secret|api[_-]?key)\\b",
    }],
  }),
  deny({
    tool_name: "search_issues",
    reason: "acme repositories only",
    when: [{ path: "arguments.repo", op: "glob", value: "acme/*", negate: true }],
  }),
  deny({
    tool_name: "search_issues",
    when: [{ path: "arguments.repo", op: "regex", value: "^acme/(vault|internal-.*)$" }],
  }),
  // Text an agent writes for people.
  deny({
    tool_name: "add_comment",
    reason: "prompt injection",
    when: [{
      path: "arguments.body",
      op: "regex",
      value: "(?i)ignore (all )?(previous|prior|above) instructions",
    }],
  }),
  deny({
    tool_name: "create_issue",
    when: [{ path: "arguments.body", op: "regex", value: "(?i)(curl|wget)\\s+https?://" }],
  }),
  // Other methods.
  deny({
    method: "resources/read",
    when: [{ path: "uri", op: "prefix", value: "file:///etc/" }],
  }),
  deny({
    method: "resources/*",
    when: [{ path: "uri", op: "regex", value: "^file:///(root|home/[^/]+/\\.ssh)/" }],
  }),
  allow({ method: "resources/list" }),
  allow({ method: "resources/templates/list" }),
  deny({ method: "prompts/get", when: [{ path: "name", op: "equals", value: "jailbreak" }] }),
  allow({ method: "prompts/*" }),
  allow({ method: "completion/complete" }),
  deny({ method: "logging/setLevel", reason: "the operator sets the log level" }),
  // What agents may do.
  allow({ tool_name: "get_*" }),
  allow({ tool_name: "list_*" }),
  allow({
    tool_name: "read_file",
    when: [{ path: "arguments.path", op: "prefix", value: "/srv/" }],
  }),
  allow({
    tool_name: "create_issue",
    when: [
      { path: "arguments.repo", op: "prefix", value: "acme/" },
      { path: "arguments.title", op: "exists" },
    ],
  }),
  allow({
    tool_name: "update_issue",
    when: [{ path: "arguments.repo", op: "prefix", value: "acme/" }],
  }),
  allow({
    tool_name: "add_comment",
    when: [{ path: "arguments.body", op: "regex", value: "\\S" }],
  }),
  // The bench's calls.
  allow({
    tool_name: "search_*",
    when: [
      { path: "arguments.repo", op: "prefix", value: "acme/" },
      { path: "arguments.limit", op: "lte", value: 100 },
      { path: "arguments.query", op: "glob", value: "is:*" },
    ],
  }),
];

/** The index of the rule that allows every `tools/call` of the benches. */
export const ALLOWING_RULE: number = POLICY_RULES.length - 1;

/** The tools of the benches' upstreams that the policy hides from a client's `tools/list`. */
export const HIDDEN_TOOLS: readonly string[] = ["delete_repository"];

/** The guarded proxy's custom redaction pattern. */
export const CUSTOM_PATTERNS = [{ name: "employee_id", pattern: "EMP-[0-9]{6}" }] as const;

/** A rate that no bench reaches, so that the limiter counts every call and refuses none. */
export const UNREACHABLE_RATE = 100_000_000;

/** The configuration tree of `guardrails`. */
export function guardrailsConfig(guardrails: Guardrails): Record<string, unknown> {
  if (guardrails === "off") {
    return {
      policy: { enabled: false },
      middleware: {
        rate_limit: { enabled: false },
        redact: { enabled: true, detectors: [] },
      },
      pinning: { enabled: false },
    };
  }
  return {
    policy: {
      enabled: true,
      default_action: "deny",
      mode: "enforce",
      filter_tools: true,
      rules: POLICY_RULES,
    },
    middleware: {
      rate_limit: {
        enabled: true,
        requests_per_minute: UNREACHABLE_RATE,
        tools: {
          "delete_*": { requests_per_minute: 5 },
          "search_*": { requests_per_minute: UNREACHABLE_RATE },
        },
        methods: { "resources/read": { requests_per_minute: 600 } },
      },
      // All the detectors (the default), named so that a change of default does not change the
      // bench.
      redact: { enabled: true, detectors: [...DETECTOR_NAMES], custom_patterns: CUSTOM_PATTERNS },
    },
    pinning: { enabled: true, mode: "warn" },
  };
}

/** What each configuration is, in a few words, for the reports. */
export function describeGuardrails(guardrails: Guardrails): string {
  return guardrails === "off"
    ? "guardrails off: no policy, rate limit, value detectors or pinning"
    : `guardrails on: ${POLICY_RULES.length}-rule policy (default deny, calls allowed by rule ` +
      `${ALLOWING_RULE}), ${DETECTOR_NAMES.length} value detectors and ${CUSTOM_PATTERNS.length} ` +
      `custom pattern, pinning, a rate limit of ${int(UNREACHABLE_RATE)}/min`;
}

/** Writes the configuration file of `guardrails` into `dir`; returns its path. */
export async function writeGuardrailsConfig(dir: string, guardrails: Guardrails): Promise<string> {
  const path = `${dir}/guardrails-${guardrails}.yaml`;
  const text = `# Generated by scripts/bench/guardrails.ts: ${describeGuardrails(guardrails)}.\n` +
    stringify(guardrailsConfig(guardrails), { lineWidth: 0 });
  await Deno.writeTextFile(path, text);
  return path;
}

/** The requirement: with the guardrails on, the figures stay within 10% of those without them. */
export const GUARDRAIL_TARGET = {
  /** Throughput with the guardrails on, as a share of throughput with them off. */
  minThroughputRatio: 0.9,
  /** p50 round trip the proxy adds with the guardrails on, as a multiple of that with them off. */
  maxAddedP50Ratio: 1.1,
} as const;

/** One configuration's figures, as the cost of the guardrails is computed from them. */
export interface Figures {
  /** Messages or requests per second. */
  throughput: number;
  p50Us: number;
  p99Us: number;
}

/** The ratios of the guardrails' cost in one round, or the medians of the rounds'. */
export interface CostRatios {
  /** Throughput on / off. */
  throughputRatio: number;
  /** p50 added to direct's, on / off. */
  addedP50Ratio: number;
}

/** What turning the guardrails on costs: the figures off and on, and their ratios. */
export interface GuardrailCost {
  /** The figures of all the rounds (medians, or percentiles of all the samples). */
  off: Figures;
  on: Figures;
  /** Throughput on / off, of the figures of all the rounds. */
  throughputRatio: number;
  /** Throughput as a share of direct, off and on. */
  throughputOfDirect: { off: number; on: number };
  /** p50 added to direct's, off and on, in µs. */
  addedP50Us: { off: number; on: number };
  /** Added p50 on / off, of the figures of all the rounds. */
  addedP50Ratio: number;
  /** p50 on / off. */
  p50Ratio: number;
  /**
   * The ratios of each round, in which off and on are measured one right after the other, so
   * that a change in the machine's load from one round to the next (other work on a shared
   * machine) cancels out.
   */
  rounds: CostRatios[];
  /** The medians of the rounds' ratios: the "within 10%" figures. */
  paired: CostRatios;
  throughputMet: boolean;
  latencyMet: boolean;
}

/** The ratios of `on` to `off`, with `direct` for the added latency. */
function ratios(direct: Figures, off: Figures, on: Figures): CostRatios {
  return {
    throughputRatio: on.throughput / off.throughput,
    addedP50Ratio: (on.p50Us - direct.p50Us) / (off.p50Us - direct.p50Us),
  };
}

/**
 * The cost of the guardrails, from direct's figures and the proxy's with them off and on, overall
 * and in each round.
 */
export function guardrailCost(
  direct: Figures,
  off: Figures,
  on: Figures,
  rounds: readonly { direct: Figures; off: Figures; on: Figures }[],
): GuardrailCost {
  const overall = ratios(direct, off, on);
  const each = rounds.map((r) => ratios(r.direct, r.off, r.on));
  const paired = {
    throughputRatio: median(each.map((r) => r.throughputRatio)),
    addedP50Ratio: median(each.map((r) => r.addedP50Ratio)),
  };
  return {
    off,
    on,
    throughputRatio: overall.throughputRatio,
    throughputOfDirect: {
      off: off.throughput / direct.throughput,
      on: on.throughput / direct.throughput,
    },
    addedP50Us: { off: off.p50Us - direct.p50Us, on: on.p50Us - direct.p50Us },
    addedP50Ratio: overall.addedP50Ratio,
    p50Ratio: on.p50Us / off.p50Us,
    rounds: each,
    paired,
    throughputMet: paired.throughputRatio >= GUARDRAIL_TARGET.minThroughputRatio,
    latencyMet: paired.addedP50Ratio <= GUARDRAIL_TARGET.maxAddedP50Ratio,
  };
}

/** What the guardrails cost, from the three configurations' {@link Series}. */
export function guardrailCostOf(direct: Series, off: Series, on: Series): GuardrailCost {
  return guardrailCost(
    direct.overall,
    off.overall,
    on.overall,
    direct.rounds.map((d, i) => ({ direct: d, off: off.rounds[i]!, on: on.rounds[i]! })),
  );
}

/** The report's lines for a {@link GuardrailCost}. */
export function guardrailCostLines(
  c: GuardrailCost,
  names: { throughput: string; latency: string },
): string[] {
  const each = (pick: (r: CostRatios) => number): string =>
    c.rounds.map((r) => (pick(r) * 100).toFixed(0)).join(" / ");
  return [
    `  ${names.throughput}: ${int(c.off.throughput)} off, ${int(c.on.throughput)} on ` +
    `(${pct(c.throughputOfDirect.off)} and ${pct(c.throughputOfDirect.on)} of direct): ` +
    `${pct(c.throughputRatio)}; paired by round: ${pct(c.paired.throughputRatio)} ` +
    `(>= ${pct(GUARDRAIL_TARGET.minThroughputRatio)})  ${met(c.throughputMet)}`,
    `    each round, on/off %: ${each((r) => r.throughputRatio)}`,
    `  ${names.latency} p50 added: ${signed(c.addedP50Us.off)} µs off, ` +
    `${signed(c.addedP50Us.on)} µs on: ${pct(c.addedP50Ratio)}; paired by round: ` +
    `${pct(c.paired.addedP50Ratio)} (<= ${pct(GUARDRAIL_TARGET.maxAddedP50Ratio)})  ` +
    `${met(c.latencyMet)}`,
    `    each round, on/off %: ${each((r) => r.addedP50Ratio)}; p50 ${int(c.off.p50Us)} → ` +
    `${int(c.on.p50Us)} µs (${pct(c.p50Ratio)}), p99 ${int(c.off.p99Us)} → ` +
    `${int(c.on.p99Us)} µs`,
  ];
}
