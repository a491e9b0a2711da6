/**
 * Check 5, `ports`: every listener the configuration turns on can bind its address and port:
 * the dashboard, the metrics, and the HTTP proxy's own port with `proxy.transport: http`. Each is
 * bound and closed again; all are held until the last is tried, so two listeners given the same
 * port are found too. Port 0 (any free port) always binds.
 *
 * @module
 */
import type { Config } from "../config/config.ts";
import { type CheckResult, message, result } from "./result.ts";

/** One listener the proxy would open. */
interface Wanted {
  name: string;
  hostname: string;
  port: number;
  /** The key that sets its port, and how to turn it off (if it can be). */
  portKey: string;
  off: string | undefined;
}

/** The listeners `config` turns on, in the order the proxy binds them. */
export function wantedListeners(config: Config): Wanted[] {
  const out: Wanted[] = [];
  if (config.metrics.enabled) {
    out.push({
      name: "metrics",
      hostname: config.metrics.bind_address,
      port: config.metrics.port,
      portKey: "metrics.port",
      off: "--no-metrics",
    });
  }
  if (config.dashboard.enabled) {
    out.push({
      name: "dashboard",
      hostname: config.dashboard.bind_address,
      port: config.dashboard.port,
      portKey: "dashboard.port",
      off: "--no-dashboard",
    });
  }
  if (config.proxy.transport === "http") {
    out.push({
      name: "proxy",
      hostname: config.proxy.bind_address,
      port: config.proxy.port,
      portKey: "proxy.port (--port)",
      off: undefined,
    });
  }
  return out;
}

function address(w: Wanted): string {
  const host = w.hostname === "" ? "0.0.0.0" : w.hostname;
  return `${host.includes(":") ? `[${host}]` : host}:${w.port}`;
}

/**
 * Binds and closes each listener `config` turns on.
 *
 * @example
 * ```ts
 * const r = checkPorts(config);
 * if (r.status === "fail") console.log(r.detail, r.fix);
 * ```
 */
export function checkPorts(config: Config): CheckResult {
  const wanted = wantedListeners(config);
  if (wanted.length === 0) {
    return result("ports", "ok", "no listeners (stdio, dashboard and metrics off)");
  }
  const held: Deno.Listener[] = [];
  const free: string[] = [];
  const taken: { w: Wanted; why: string }[] = [];
  try {
    for (const w of wanted) {
      try {
        held.push(
          Deno.listen({ hostname: w.hostname === "" ? "0.0.0.0" : w.hostname, port: w.port }),
        );
        free.push(`${w.name} ${address(w)}${w.port === 0 ? " (any free port)" : ""}`);
      } catch (e) {
        const why = e instanceof Deno.errors.AddrInUse
          ? "is taken"
          : e instanceof Deno.errors.PermissionDenied
          ? "cannot be bound by this user (ports below 1024 need privileges)"
          : `cannot be bound: ${message(e)}`;
        taken.push({ w, why });
      }
    }
  } finally {
    for (const l of held) l.close();
  }
  if (taken.length === 0) return result("ports", "ok", `free: ${free.join(", ")}`);
  const first = taken[0]!;
  const others = taken.slice(1).map((t) => `${t.w.name} ${address(t.w)} ${t.why}`);
  const off = first.w.off === undefined ? "" : `, ${first.w.off}`;
  return result("ports", "fail", `${first.w.name} ${address(first.w)} ${first.why}`, {
    fix: `set ${first.w.portKey} to another port, or 0 for any free one${off}` +
      " (another mcp-audit with this configuration may be running)",
    notes: others,
  });
}
