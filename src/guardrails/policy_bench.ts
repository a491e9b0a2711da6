/**
 * What the guardrails cost per call, in the configuration `deno task bench` compares with them
 * off: the 50-rule policy of `scripts/bench/guardrails.ts` (default deny) judging the benches'
 * `tools/call` of `search_issues` — checked against every rule, seven rules' conditions evaluated,
 * allowed by the last rule — alone and through a {@link Guard} with that configuration's rate limit
 * (too high to refuse) and pinning in warn mode; the rate limiter's check alone; and two calls the
 * policy decides early (a denied tool, the default deny). The call's `params` are parsed from the
 * benches' own request line, as the proxy parses them. Run: `deno bench src/guardrails/policy_bench.ts`.
 *
 * @module
 */
import { ALLOWING_RULE, POLICY_RULES, UNREACHABLE_RATE } from "../../scripts/bench/guardrails.ts";
import { toolCall } from "../../scripts/bench/common.ts";
import { parseText } from "../jsonrpc/message.ts";
import { isJsonObject, type JsonValue } from "../jsonrpc/json.ts";
import { Guard } from "./guard.ts";
import { compilePolicy } from "./policy.ts";
import { RateLimiter, type RateLimiterOptions } from "./rate_limiter.ts";

function paramsOf(line: string): JsonValue {
  const parsed = parseText(line);
  if (!("value" in parsed) || !isJsonObject(parsed.value)) throw new Error("not a request");
  const params = parsed.value.params;
  if (params === undefined) throw new Error("no params");
  return params;
}

// As `guardrailsConfig("on")` writes them.
const policy = compilePolicy(POLICY_RULES, { default_action: "deny", mode: "enforce" });
const rateOptions: RateLimiterOptions = {
  requests_per_minute: UNREACHABLE_RATE,
  tools: {
    "delete_*": { requests_per_minute: 5 },
    "search_*": { requests_per_minute: UNREACHABLE_RATE },
  },
  methods: { "resources/read": { requests_per_minute: 600 } },
};

const call = paramsOf(toolCall(7));
const denied = { name: "delete_repository", arguments: { repo: "acme/widgets" } };
const unknown = { name: "summon_demon", arguments: { repo: "acme/widgets" } };
const request = { client_id: "bench-client", server_id: "bench-server", method: "tools/call" };

// The benches credit the last rule with every call: a bench that judged otherwise measures nothing.
const outcome = policy.evaluate({ ...request, params: call });
if (outcome.kind !== "decision" || outcome.decision.rule !== ALLOWING_RULE) {
  throw new Error(`the bench's call is not allowed by rule ${ALLOWING_RULE}`);
}

Deno.bench("policy: the benches' search_issues call, allowed by rule 49", {
  group: "policy",
  baseline: true,
}, () => {
  policy.evaluate({ ...request, params: call });
});
Deno.bench("policy: delete_repository, denied by rule 0", { group: "policy" }, () => {
  policy.evaluate({ ...request, params: denied });
});
Deno.bench("policy: an unknown tool, the default deny", { group: "policy" }, () => {
  policy.evaluate({ ...request, params: unknown });
});

let now = 0;
const limiter = new RateLimiter(rateOptions, () => now);
Deno.bench("rate limiter: one check of a caller's search_issues bucket", () => {
  now += 1;
  limiter.check("session:bench", "tools/call", "search_issues");
});

const guard = new Guard({
  policy,
  denyAs: "error",
  filterTools: true,
  limiter: new RateLimiter(rateOptions, () => now),
  limiterKey: "caller",
  pins: null,
  pinMode: "warn",
  clientId: "bench-client",
  serverId: "bench-server",
});
const caller = { session: "bench" };
Deno.bench("guard: judge the benches' call (policy, then the rate limit)", () => {
  now += 1;
  guard.judge("tools/call", call, caller);
});
