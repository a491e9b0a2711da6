/**
 * The guardrails in one fixed order, for one request at a time: the policy, then tool pinning,
 * then the rate limit. The first refusal wins, and a refused request spends no rate budget. Each
 * gate returns a value; nothing here does I/O except the pin store's file.
 *
 * The same guard serves every transport and every session. Its parts are swapped whole on a
 * reload ({@linkcode Guard.replace}), so a request is judged by one consistent set of settings.
 *
 * @example
 * ```ts
 * import { Guard } from "./guard.ts";
 * import { compilePolicy } from "./policy.ts";
 *
 * const guard = new Guard({
 *   policy: compilePolicy([{ action: "deny", tool_name: "delete_*" }]),
 *   denyAs: "error",
 *   filterTools: true,
 *   limiter: null,
 *   limiterKey: "caller",
 *   pins: null,
 *   pinMode: "warn",
 *   clientId: "claude-desktop",
 *   serverId: "filesystem",
 * });
 * guard.judge("tools/call", { name: "delete_file" }, { session: "s1" });
 * // { kind: "refuse", decision: { action: "deny", rule: 0, reason: "blocked by policy" }, … }
 * ```
 *
 * @module
 */
import type { Decision } from "../audit/record.ts";
import { isJsonObject, type JsonObject, type JsonValue } from "../jsonrpc/json.ts";
import { ErrorCode, ErrorMessage } from "../jsonrpc/errors.ts";
import { calledTool, type RpcError } from "../jsonrpc/message.ts";
import type { Observation, PinStore } from "./pins.ts";
import { type Policy, type PolicyDecision, policyErrorData } from "./policy.ts";
import type { RateLimiter } from "./rate_limiter.ts";

/** Everything a guard judges by. Swapped whole on reload. */
export interface GuardParts {
  /** Null when `policy.enabled` is false. */
  readonly policy: Policy | null;
  /** How a policy denial of a `tools/call` is answered. */
  readonly denyAs: "error" | "tool_result";
  /** Hide from `tools/list` the tools the policy would refuse every call to (pinning hides its own). */
  readonly filterTools: boolean;
  /** Null when `middleware.rate_limit.enabled` is false. */
  readonly limiter: RateLimiter | null;
  /** Whose budget a call spends. */
  readonly limiterKey: "caller" | "client_id";
  /** Null when `pinning.enabled` is false. */
  readonly pins: PinStore | null;
  readonly pinMode: "warn" | "block";
  readonly clientId: string;
  readonly serverId: string;
}

/** Who sends a request, as far as the proxy can vouch for it. */
export interface Caller {
  /**
   * A session the proxy or the upstream server named (the stdio session, an `Mcp-Session-Id`
   * the server issued); null when the only word for it is the client's own.
   */
  readonly session: string | null;
}

/** A request's `decision` in the audit record (SPEC §3). */
export type AuditDecision = Decision;

/** What the proxy answers in place of the server. */
export type Answer =
  | { readonly kind: "error"; readonly error: RpcError }
  | { readonly kind: "result"; readonly result: JsonObject };

/** The guard's verdict on one request. */
export type Verdict =
  /** Not judged by anything: forward it, record no decision. */
  | { readonly kind: "pass" }
  /** Forward it, and record the decision (an allow, or a deny that monitor mode let through). */
  | { readonly kind: "allow"; readonly decision: AuditDecision }
  /** Do not forward it: answer the caller and record the decision. */
  | { readonly kind: "refuse"; readonly decision: AuditDecision; readonly answer: Answer };

/** A tool taken out of a `tools/list` result, and why. */
export interface HiddenTool {
  readonly name: string;
  readonly reason: string;
}

/** One request of a batch, as judged. */
export interface JudgedRequest {
  readonly method: string;
  readonly params: JsonValue | undefined;
}

/** What a `tools/list` result became. */
export interface ToolListing {
  /** The result to forward, when it differs from the server's. */
  readonly result: JsonObject | null;
  readonly hidden: HiddenTool[];
  /** What pinning saw, when pinning is on. */
  readonly observation: Observation | null;
}

const PASS: Verdict = { kind: "pass" };
const TOOLS_CALL = "tools/call";
const NOT_APPROVED =
  "tool definition differs from the pinned one; approve it with `mcp-audit pins approve`";
const NOT_PINNED =
  "tool was not in the pinned tools/list; approve it with `mcp-audit pins approve`";

function decisionOf(d: PolicyDecision): AuditDecision {
  return d.enforced
    ? { action: d.action, rule: d.rule, reason: d.reason }
    : { action: d.action, rule: d.rule, reason: d.reason, enforced: false };
}

function toolNameOf(params: JsonValue | undefined): string {
  return calledTool(params) ?? "";
}

/** The guardrails of one proxy. */
export class Guard {
  #parts: GuardParts;
  #toolChanges = 0;
  /** The last rate-bucket key and what it was made of, so that a caller's calls share one string. */
  #lastName: string | null = null;
  #lastByClientId = false;
  #lastKey = "";

  constructor(parts: GuardParts) {
    this.#parts = parts;
  }

  /** The parts in force. */
  get parts(): GuardParts {
    return this.#parts;
  }

  /** Puts new settings in force for every request judged from now on. */
  replace(parts: GuardParts): void {
    this.#parts = parts;
  }

  /**
   * Whether a guardrail judges requests by what they say (the policy, or pinning in block mode).
   * While one does, a message that cannot be read, or can be read two ways, must not be
   * forwarded: the server might read it as a call the guardrail would refuse.
   */
  get judgesContent(): boolean {
    const p = this.#parts;
    return p.policy !== null || (p.pins !== null && p.pinMode === "block");
  }

  /** Counts changed tool definitions seen; returns the total so far. */
  countToolChanges(n: number): number {
    this.#toolChanges += n;
    return this.#toolChanges;
  }

  /** Judges one client request: policy, then pinning, then the rate limit. */
  judge(method: string, params: JsonValue | undefined, caller: Caller): Verdict {
    return this.judgeAll([{ method, params }], caller)[0]!;
  }

  /**
   * Judges the requests of one batch, which stand or fall together: the rate limit is charged
   * only when no request is refused by the policy or pinning, and a batch that a rate limit
   * refuses gets back the tokens its other requests took. Nothing refused spends budget.
   */
  judgeAll(requests: readonly JudgedRequest[], caller: Caller): Verdict[] {
    const parts = this.#parts;
    const admitted: Verdict[] = [];
    let refused = false;
    for (let i = 0; i < requests.length; i++) {
      const r = requests[i]!;
      const verdict = this.#admit(parts, r.method, r.params);
      if (verdict.kind === "refuse") refused = true;
      admitted.push(verdict);
    }
    if (refused || parts.limiter === null) return admitted;
    const limiter = parts.limiter;
    const key = this.#callerKey(caller, parts);
    const charged: JudgedRequest[] = [];
    for (let i = 0; i < requests.length; i++) {
      const r = requests[i]!;
      const tool = r.method === TOOLS_CALL ? toolNameOf(r.params) : null;
      const outcome = limiter.check(key, r.method, tool);
      if (outcome.allowed) {
        charged.push(r);
        continue;
      }
      for (const c of charged) {
        limiter.refund(key, c.method, c.method === TOOLS_CALL ? toolNameOf(c.params) : null);
      }
      const limit = outcome.limit;
      admitted[i] = {
        kind: "refuse",
        decision: {
          action: "rate_limited",
          rule: null,
          reason:
            `over ${limit.requests_per_minute} requests per minute (burst ${limit.burst}); retry after ${outcome.retryAfterMs} ms`,
        },
        answer: {
          kind: "error",
          error: {
            code: ErrorCode.RateLimited,
            message: ErrorMessage.RateLimited,
            data: { retry_after_ms: outcome.retryAfterMs },
          },
        },
      };
      break;
    }
    return admitted;
  }

  /**
   * The caller's rate bucket: a vouched-for session, else the configured client id. Nothing the
   * client merely claims (a session id the server never issued, a `clientInfo` name) picks a
   * bucket: a client could claim a new one for every call.
   */
  #callerKey(caller: Caller, parts: GuardParts): string {
    const byClientId = parts.limiterKey !== "caller" || caller.session === null;
    const name = byClientId ? parts.clientId : caller.session;
    if (name !== this.#lastName || byClientId !== this.#lastByClientId) {
      this.#lastName = name;
      this.#lastByClientId = byClientId;
      this.#lastKey = byClientId ? `id:${name}` : `session:${name}`;
    }
    return this.#lastKey;
  }

  /** The policy, then pinning: a refusal, or what to record of a request let through. */
  #admit(parts: GuardParts, method: string, params: JsonValue | undefined): Verdict {
    let verdict: Verdict = PASS;
    // 1. Policy: a rule or the default decides; monitor mode records a deny and goes on.
    if (parts.policy !== null) {
      const outcome = parts.policy.evaluate({
        client_id: parts.clientId,
        server_id: parts.serverId,
        method,
        params,
      });
      if (outcome.kind === "decision") {
        const d = outcome.decision;
        const decision = decisionOf(d);
        if (d.action === "deny" && d.enforced) {
          return { kind: "refuse", decision, answer: this.#denial(method, d) };
        }
        verdict = { kind: "allow", decision };
      }
    }
    // 2. Pinning: in block mode, a tool whose latest definition nobody approved is not called.
    if (method === TOOLS_CALL && parts.pins !== null && parts.pinMode === "block") {
      const status = parts.pins.status(parts.serverId, toolNameOf(params));
      if (status === "changed" || status === "unpinned") {
        const reason = status === "changed" ? NOT_APPROVED : NOT_PINNED;
        return {
          kind: "refuse",
          decision: { action: "deny", rule: null, reason, by: "pinning" },
          answer: {
            kind: "error",
            error: {
              code: ErrorCode.PolicyDenied,
              message: ErrorMessage.PolicyDenied,
              data: { action: "deny", reason, rule_index: -1 },
            },
          },
        };
      }
    }
    // 3. The rate limit comes last, in judgeAll, so that a refused request spends nothing.
    return verdict;
  }

  #denial(method: string, d: PolicyDecision): Answer {
    if (method === TOOLS_CALL && this.#parts.denyAs === "tool_result") {
      // A result the model can read and act on, rather than an error its client may hide.
      return {
        kind: "result",
        result: {
          content: [{ type: "text", text: `policy denied: ${d.reason}` }],
          isError: true,
        },
      };
    }
    return {
      kind: "error",
      error: {
        code: ErrorCode.PolicyDenied,
        message: ErrorMessage.PolicyDenied,
        data: policyErrorData(d),
      },
    };
  }

  /**
   * Looks at a server's `tools/list` result: pins or compares its definitions, and takes out the
   * tools this caller could never call (policy) or must not (unapproved, in block mode).
   * @param page whether the request had no cursor (`first`) and the result has no `nextCursor`
   */
  toolsListed(result: JsonValue, page: { first: boolean; last: boolean }): ToolListing {
    const parts = this.#parts;
    if (!isJsonObject(result) || !Array.isArray(result.tools)) {
      return { result: null, hidden: [], observation: null };
    }
    const tools: JsonValue[] = result.tools;
    const observation = parts.pins === null
      ? null
      : parts.pins.observe(parts.serverId, tools, page);
    const hidden: HiddenTool[] = [];
    let visible = tools;
    if (parts.policy !== null && parts.filterTools) {
      const split = parts.policy.visibleTools(visible, {
        client_id: parts.clientId,
        server_id: parts.serverId,
      });
      visible = split.visible;
      for (const name of split.hidden) hidden.push({ name, reason: "refused by policy" });
    }
    if (parts.pins !== null && parts.pinMode === "block") {
      const pins = parts.pins;
      visible = visible.filter((tool) => {
        if (!isJsonObject(tool) || typeof tool.name !== "string") return true;
        const status = pins.status(parts.serverId, tool.name);
        if (status !== "changed" && status !== "unpinned") return true;
        hidden.push({ name: tool.name, reason: status === "changed" ? NOT_APPROVED : NOT_PINNED });
        return false;
      });
    }
    if (hidden.length === 0) return { result: null, hidden, observation };
    return { result: { ...result, tools: visible }, hidden, observation };
  }
}
