/**
 * The two Prometheus exposition formats and how a scraper chooses one. The OpenTelemetry
 * serializer writes text format 0.0.4 only; OpenMetrics 1.0.0 is made from that text here, since
 * the two differ in a few rules: a counter family is named without `_total` in its `# HELP` and
 * `# TYPE` lines, help text escapes `"` too, a histogram's buckets come before its `_sum` and
 * `_count`, and the exposition ends with `# EOF`. Prometheus asks for OpenMetrics first.
 *
 * `le` values stay as the text format writes them (`1`, not OpenMetrics' canonical `1.0`): the
 * Go tool serves `le="1"`, and Prometheus 2 keeps the value as scraped, so a bucket's series stays
 * the same whichever format is negotiated (Prometheus 3 normalizes both to `1.0` itself).
 *
 * @module
 */

/** An exposition format. */
export type Format = "text" | "openmetrics";

/** The `Content-Type` of each format. */
export const CONTENT_TYPE: Readonly<Record<Format, string>> = {
  text: "text/plain; version=0.0.4; charset=utf-8",
  openmetrics: "application/openmetrics-text; version=1.0.0; charset=utf-8",
};

/** One media range of an `Accept` or `Accept-Encoding` header. */
interface Range {
  type: string;
  params: Map<string, string>;
  q: number;
  /** Position in the header, for ties. */
  at: number;
}

function parseRanges(header: string): Range[] {
  const out: Range[] = [];
  // A header longer than this is not from a scraper; what fits is enough to choose.
  const parts = header.slice(0, 4096).split(",");
  parts.forEach((part, at) => {
    const [head = "", ...rest] = part.split(";");
    const type = head.trim().toLowerCase();
    if (type === "") return;
    const params = new Map<string, string>();
    let q = 1;
    for (const p of rest) {
      const eq = p.indexOf("=");
      if (eq === -1) continue;
      const key = p.slice(0, eq).trim().toLowerCase();
      const value = p.slice(eq + 1).trim().replace(/^"(.*)"$/, "$1");
      if (key === "q") {
        const n = Number(value);
        q = value !== "" && Number.isFinite(n) ? Math.min(Math.max(n, 0), 1) : 0;
      } else {
        params.set(key, value);
      }
    }
    out.push({ type, params, q, at });
  });
  return out;
}

/** What a media range accepts of ours, and how specifically (higher wins a tie in q). */
function matchFormat(r: Range): { format: Format; specificity: number } | null {
  const version = r.params.get("version");
  switch (r.type) {
    case "application/openmetrics-text":
      // 0.0.1 is the draft 1.0.0 came from; what we write is valid as either.
      if (version === undefined || version === "1.0.0" || version === "0.0.1") {
        return { format: "openmetrics", specificity: 3 };
      }
      return null;
    case "text/plain":
      return version === undefined || version === "0.0.4"
        ? { format: "text", specificity: 3 }
        : null;
    case "text/*":
      return { format: "text", specificity: 2 };
    case "*/*":
      return { format: "text", specificity: 1 };
    default:
      return null;
  }
}

/**
 * The format to answer an `Accept` header with: the acceptable one of highest q, the more
 * specific range on a tie, then the earlier. Text 0.0.4 when nothing matches (as client_golang:
 * a scraper that cannot read it would read nothing else of ours either).
 *
 * @example
 * ```ts
 * import { negotiate } from "./exposition.ts";
 * negotiate("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"); // "openmetrics"
 * negotiate(null); // "text"
 * ```
 */
export function negotiate(accept: string | null): Format {
  if (accept === null) return "text";
  let best: { format: Format; q: number; specificity: number; at: number } | null = null;
  for (const r of parseRanges(accept)) {
    if (r.q <= 0) continue;
    const m = matchFormat(r);
    if (m === null) continue;
    if (
      best === null || r.q > best.q ||
      (r.q === best.q && m.specificity > best.specificity)
    ) {
      best = { format: m.format, q: r.q, specificity: m.specificity, at: r.at };
    }
  }
  return best?.format ?? "text";
}

/** Whether an `Accept-Encoding` header accepts gzip (`gzip` or `*` with q > 0, not refused). */
export function acceptsGzip(acceptEncoding: string | null): boolean {
  if (acceptEncoding === null) return false;
  let gzip: number | undefined;
  let star: number | undefined;
  for (const r of parseRanges(acceptEncoding)) {
    if (r.type === "gzip" || r.type === "x-gzip") gzip = Math.max(gzip ?? 0, r.q);
    else if (r.type === "*") star = r.q;
  }
  return (gzip ?? star ?? 0) > 0;
}

/** Raised when text that should be format 0.0.4 is not. */
export class ExpositionError extends Error {
  override name = "ExpositionError";
}

/** `# HELP` text of format 0.0.4 (escapes `\\` and `\n`), unescaped. */
function unescapeHelp(text: string): string {
  return text.replace(/\\(\\|n)/g, (_, c: string) => (c === "n" ? "\n" : "\\"));
}

/** Text escaped as OpenMetrics escapes help and label values. */
function escapeOpenMetrics(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

/** A histogram sample's suffix, for ordering buckets, then `_sum`, then `_count`. */
const HISTOGRAM_ORDER: Readonly<Record<string, number>> = { _bucket: 0, _sum: 1, _count: 2 };

interface Family {
  name: string;
  help: string | undefined;
  type: string | undefined;
  samples: string[];
}

function parseFamilies(text: string): Family[] {
  const families: Family[] = [];
  let current: Family | undefined;
  const family = (name: string): Family => {
    if (current?.name !== name) {
      current = { name, help: undefined, type: undefined, samples: [] };
      families.push(current);
    }
    return current;
  };
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*)(?: (.*))?$/.exec(line);
    if (meta !== null) {
      const [, what, name = "", rest = ""] = meta;
      const f = family(name);
      if (what === "HELP") f.help = unescapeHelp(rest);
      else f.type = rest;
      continue;
    }
    if (line.startsWith("#")) continue;
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
    if (sample === null) throw new ExpositionError(`not a sample line: ${line.slice(0, 200)}`);
    const name = sample[1]!;
    if (current === undefined || !belongsTo(name, current)) {
      throw new ExpositionError(`sample ${name} outside its family`);
    }
    current.samples.push(line);
  }
  return families;
}

function belongsTo(sample: string, f: Family): boolean {
  if (sample === f.name) return true;
  if (f.type !== "histogram") return false;
  return sample === `${f.name}_bucket` || sample === `${f.name}_sum` ||
    sample === `${f.name}_count`;
}

/**
 * A sample line's name and labels (without braces). Labels end at the last `}`: values are
 * escaped, and what follows the labels (value, timestamp) holds none.
 */
function splitSample(line: string): { name: string; labels: string } {
  const open = line.indexOf("{");
  const space = line.indexOf(" ");
  if (open === -1 || (space !== -1 && space < open)) {
    return { name: line.slice(0, space), labels: "" };
  }
  return { name: line.slice(0, open), labels: line.slice(open + 1, line.lastIndexOf("}")) };
}

// The serializer writes `le` last; the quote before it is never escaped, one in a value always is.
const LE = /(^|,)le="[^"\\]*"$/;

function histogramOrder(name: string, samples: string[]): string[] {
  const groups = new Map<string, { rank: number; i: number; line: string }[]>();
  samples.forEach((line, i) => {
    const s = splitSample(line);
    const le = LE.exec(s.labels);
    const labels = le === null ? s.labels : s.labels.slice(0, le.index);
    const rank = HISTOGRAM_ORDER[s.name.slice(name.length)] ?? 3;
    const g = groups.get(labels);
    if (g === undefined) groups.set(labels, [{ rank, i, line }]);
    else g.push({ rank, i, line });
  });
  const out: string[] = [];
  for (const g of groups.values()) {
    // Stable: buckets keep their ascending order.
    out.push(...g.sort((a, b) => a.rank - b.rank || a.i - b.i).map((x) => x.line));
  }
  return out;
}

/**
 * Text format 0.0.4, as the OpenTelemetry serializer writes it, in OpenMetrics 1.0.0.
 * @throws {ExpositionError} when a sample line is not where a family's samples may be
 *
 * @example
 * ```ts
 * import { toOpenMetrics } from "./exposition.ts";
 * toOpenMetrics("# HELP a_total A.\n# TYPE a_total counter\na_total 1\n");
 * // "# HELP a A.\n# TYPE a counter\na_total 1\n# EOF\n"
 * ```
 */
export function toOpenMetrics(text: string): string {
  let out = "";
  for (const f of parseFamilies(text)) {
    const name = f.type === "counter" && f.name.endsWith("_total")
      ? f.name.slice(0, -"_total".length)
      : f.name;
    if (f.help !== undefined) out += `# HELP ${name} ${escapeOpenMetrics(f.help)}\n`;
    if (f.type !== undefined) out += `# TYPE ${name} ${f.type}\n`;
    const samples = f.type === "histogram" ? histogramOrder(f.name, f.samples) : f.samples;
    for (const s of samples) out += s + "\n";
  }
  return out + "# EOF\n";
}
