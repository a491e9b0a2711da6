/**
 * What the end-to-end telemetry tests share: waiting for a proxy's listener line, reading the
 * Prometheus text format back, scraping until the metrics show what the traffic did (there is no
 * event to wait for), and the real `promtool`.
 *
 * @module
 */
import { assert, assertEquals, type Collector } from "./helpers.ts";
import { jsonLines } from "./http_helpers.ts";

export { promtool } from "./fixtures/promtool.ts";

/**
 * Waits for the structured log line `msg` (`metrics listening`, `proxy listening`) on `stderr`
 * and returns the address it names (`http://HOST:PORT`).
 */
export async function listenAddress(
  stderr: Collector,
  msg: string,
  signal: AbortSignal,
): Promise<string> {
  const find = () => jsonLines(stderr.lines).find((l) => l.msg === msg);
  await stderr.waitFor(() => find() !== undefined, `log line "${msg}"`, signal);
  const address = find()?.address;
  assert(typeof address === "string", `the "${msg}" line names its address`);
  return address;
}

/** One sample of the text format. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
export type Samples = Sample[];

/** Label values as the text format escapes them (`\\`, `\"`, `\n`). */
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"/g;
/** One well-formed sample line. */
export const SAMPLE =
  /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*)\})? (\S+)$/;

function unescapeLabel(v: string): string {
  return v.replace(/\\([\\"n])/g, (_, c: string) => (c === "n" ? "\n" : c));
}

/** Parses the samples of an exposition (text 0.0.4 or OpenMetrics), strictly. */
export function parseMetrics(text: string): Samples {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = SAMPLE.exec(line);
    assert(m !== null, `a well-formed sample line: ${line.slice(0, 300)}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(LABEL)) labels[l[1]!] = unescapeLabel(l[2]!);
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** The sum of the samples named `name` whose labels include `labels`. */
export function sum(m: Samples, name: string, labels: Record<string, string> = {}): number {
  return m.filter((s) =>
    s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
  ).reduce((n, s) => n + s.value, 0);
}

/** The samples named `name`. */
export function series(m: Samples, name: string): Sample[] {
  return m.filter((s) => s.name === name);
}

/** The mcp-audit samples, buckets left out, for a failure message. */
export function dump(m: Samples | undefined): string {
  return (m ?? []).filter((s) => s.name.startsWith("mcp_audit_") && !s.name.endsWith("_bucket"))
    .map((s) => `${s.name}${JSON.stringify(s.labels)} ${s.value}`).join("\n").slice(0, 6000);
}

/**
 * Scrapes (text format) until `ready` holds, at most `tries` times back to back: metrics are
 * counted just after each stored batch and have no event of their own.
 */
export async function scrapeUntil(
  scrape: () => Promise<{ status: number; text: string }>,
  ready: (m: Samples) => boolean,
  what: string,
  tries = 500,
): Promise<Samples> {
  let last: Samples | undefined;
  for (let i = 0; i < tries; i++) {
    const s = await scrape();
    assertEquals(s.status, 200, s.text.slice(0, 500));
    last = parseMetrics(s.text);
    if (ready(last)) return last;
  }
  throw new Error(`metrics never showed ${what}; last scrape:\n${dump(last)}`);
}
