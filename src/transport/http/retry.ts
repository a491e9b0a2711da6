/**
 * Conservative upstream retries (off by default): only reads that are safe to repeat, only on
 * 429, 503 or a failure to connect, with exponential backoff that honours `Retry-After`.
 * `tools/call` and `initialize` are never retried, and nothing is retried once a response has
 * begun to reach the client.
 *
 * @module
 */
import type { Message } from "../../jsonrpc/message.ts";

/** `proxy.retry.*`. */
export interface RetryPolicy {
  maxRetries: number;
  initialIntervalMs: number;
  maxIntervalMs: number;
}

/** JSON-RPC methods whose repetition changes nothing (the Go tool's list, less `initialize`). */
export const RETRY_SAFE_METHODS: ReadonlySet<string> = new Set([
  "ping",
  "tools/list",
  "resources/list",
  "resources/read",
  "resources/templates/list",
  "prompts/list",
  "prompts/get",
  "completion/complete",
]);

/** Whether a request may be sent again: safe HTTP methods, or a POST of safe requests only. */
export function mayRetry(httpMethod: string, messages: readonly Message[]): boolean {
  if (httpMethod === "GET" || httpMethod === "HEAD" || httpMethod === "OPTIONS") return true;
  if (httpMethod !== "POST" || messages.length === 0) return false;
  return messages.every((m) => m.kind === "request" && RETRY_SAFE_METHODS.has(m.method));
}

/** Milliseconds a `Retry-After` value asks for, when it can be read. */
export function retryAfterMs(value: string | null, now: number): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** Why an attempt is worth repeating, or undefined when it is not. */
export function retryReason(outcome: Response | Error): string | undefined {
  if (outcome instanceof Error) return "network";
  return outcome.status === 429 || outcome.status === 503 ? String(outcome.status) : undefined;
}

function wait(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Calls `attempt` until it gives an answer that is not worth repeating, or the retries run out.
 * A response that is retried has its body cancelled unread. `onRetry` hears each repeat.
 */
export async function withRetries(
  attempt: () => Promise<Response>,
  policy: RetryPolicy,
  signal: AbortSignal,
  onRetry: (reason: string, delayMs: number) => void,
  now: () => number = Date.now,
): Promise<Response> {
  for (let n = 0;; n++) {
    let outcome: Response | Error;
    try {
      outcome = await attempt();
    } catch (e) {
      if (signal.aborted) throw e;
      outcome = e instanceof Error ? e : new Error(String(e));
    }
    const reason = retryReason(outcome);
    if (reason === undefined || n >= policy.maxRetries) {
      if (outcome instanceof Error) throw outcome;
      return outcome;
    }
    const backoff = Math.min(policy.maxIntervalMs, policy.initialIntervalMs * 2 ** n);
    const asked = outcome instanceof Response
      ? retryAfterMs(outcome.headers.get("retry-after"), now())
      : undefined;
    const delay = Math.min(policy.maxIntervalMs, asked ?? backoff);
    if (outcome instanceof Response) await outcome.body?.cancel().catch(() => {});
    onRetry(reason, delay);
    await wait(delay, signal);
  }
}
