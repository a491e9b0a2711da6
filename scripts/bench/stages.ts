/**
 * Where a proxy's CPU time goes, by stage of the per-message work: each sample of a V8 CPU profile
 * is given to the stage of the innermost frame on its stack that a stage claims (so the built-ins
 * and engine work a function calls count as that function's stage), its time taken from the
 * profile's own sample intervals, and the total divided by the messages forwarded while it was
 * taken. Idle samples are left out: what is left is the time the proxy's main thread was busy.
 * The stages follow the audit path as issue 12 names them; a frame no stage claims counts as
 * "other".
 *
 * @module
 */
import { type CpuProfile, shortUrl } from "./common.ts";

/** One stage of the per-message work, and the frames that are its own. */
export interface Stage {
  name: string;
  /** Tested against `functionName url` (the url as {@link shortUrl} gives it). */
  pattern: RegExp;
}

/**
 * The stages, innermost first in the sense that matters: a sample goes to the first stage in this
 * list that claims a frame, frames tried from the leaf outwards. The order only decides between
 * stages that claim the same frame.
 */
export const STAGES: readonly Stage[] = [
  { name: "GC", pattern: /^\(garbage collector\)/ },
  { name: "fsync", pattern: /fdatasync|fsync/i },
  {
    name: "SHA-256 / HMAC",
    pattern:
      /node:crypto|ext:deno_node\/internal\/crypto|op_node_hash|op_node_hmac|createHash|createHmac| src\/audit\/signing\.ts:/,
  },
  { name: "canonical text", pattern: / src\/audit\/(canonical|record_text)\.ts:/ },
  { name: "key redaction", pattern: / src\/audit\/redact\.ts:/ },
  { name: "value redaction / detectors", pattern: / src\/audit\/detectors\.ts:/ },
  { name: "policy / guardrails", pattern: / src\/guardrails\// },
  {
    name: "store write syscalls",
    pattern:
      /op_fs_write|op_write|writeSync|writeAll| src\/audit\/storage\/|src\/streams\/batch_writer/,
  },
  {
    name: "record assembly / ids / timestamps",
    pattern: / src\/audit\/(record|chain|writer_identity|anchor)\.ts:|npm:ulid|toISOString/,
  },
  { name: "line splitting / framing", pattern: / src\/(streams\/line_splitter|jsonrpc\/framing)/ },
  { name: "parse", pattern: /^(parse|JSON\.parse) | src\/jsonrpc\/json\.ts:/ },
  {
    name: "classification",
    pattern: / src\/jsonrpc\/(message|ambiguous|recover_id|errors)\.ts:/,
  },
  { name: "exchange logic (src/pipeline)", pattern: / src\/pipeline\// },
  {
    name: "transport glue / streams",
    pattern:
      / src\/(transport|streams)\/|ext:deno_web|ext:deno_io|ext:runtime|ext:core|ext:deno_node|ext:deno_http|ext:deno_fetch|npm:hono|^op_read|^op_write/,
  },
];

/** Time in one stage. */
export interface StageCost {
  stage: string;
  /** Share of the busy samples' time. */
  percent: number;
  /** µs of the main thread's CPU per message forwarded. */
  usPerMessage: number;
}

/** A profile broken down by {@link STAGES}. */
export interface StageTable {
  /** Messages forwarded while the profile was taken (a call is two: request and answer). */
  messages: number;
  /** Busy µs per message, all stages together. */
  busyUsPerMessage: number;
  /** Idle time, as a share of the profile's span. */
  idlePercent: number;
  stages: StageCost[];
}

/** {@link STAGES}' share of `profile`, per message of `messages` forwarded while it ran. */
export function stageTable(profile: CpuProfile, messages: number): StageTable {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const stageOf = new Map<number, string>();
  const classify = (id: number): string => {
    const known = stageOf.get(id);
    if (known !== undefined) return known;
    let found = "other";
    search: for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const f = byId.get(at)!.callFrame;
      const name = `${f.functionName || "(anonymous)"}${
        f.url === "" ? "" : ` ${shortUrl(f.url)}:`
      }`;
      if (f.functionName === "(idle)") {
        found = "(idle)";
        break;
      }
      for (const stage of STAGES) {
        if (stage.pattern.test(name)) {
          found = stage.name;
          break search;
        }
      }
    }
    stageOf.set(id, found);
    return found;
  };
  const deltas = profile.timeDeltas;
  const fallback = profile.samples.length === 0 || profile.endTime === undefined ||
      profile.startTime === undefined
    ? 0
    : (profile.endTime - profile.startTime) / profile.samples.length;
  const time = new Map<string, number>();
  let idle = 0;
  let busy = 0;
  profile.samples.forEach((id, i) => {
    // A sample's delta is the time since the previous one: the time the sampled state lasted.
    const us = deltas?.[i + 1] ?? fallback;
    const stage = classify(id);
    if (stage === "(idle)") {
      idle += us;
      return;
    }
    busy += us;
    time.set(stage, (time.get(stage) ?? 0) + us);
  });
  const names = [...STAGES.map((s) => s.name), "other"];
  return {
    messages,
    busyUsPerMessage: messages > 0 ? busy / messages : NaN,
    idlePercent: busy + idle > 0 ? (100 * idle) / (busy + idle) : 0,
    stages: names.map((stage) => ({
      stage,
      percent: busy > 0 ? (100 * (time.get(stage) ?? 0)) / busy : 0,
      usPerMessage: messages > 0 ? (time.get(stage) ?? 0) / messages : NaN,
    })),
  };
}

/** The report's lines of a {@link StageTable}: µs per message and per call (two messages). */
export function stageLines(t: StageTable): string[] {
  const rows = t.stages.filter((s) => s.percent >= 0.05);
  const width = Math.max(...rows.map((s) => s.stage.length), 5);
  return [
    `  ${"stage".padEnd(width)}  µs/message  µs/call  share`,
    ...rows.map((s) =>
      `  ${s.stage.padEnd(width)}  ${s.usPerMessage.toFixed(2).padStart(10)}  ` +
      `${(2 * s.usPerMessage).toFixed(2).padStart(7)}  ${s.percent.toFixed(1).padStart(4)}%`
    ),
    `  ${"all (busy)".padEnd(width)}  ${t.busyUsPerMessage.toFixed(2).padStart(10)}  ` +
    `${(2 * t.busyUsPerMessage).toFixed(2).padStart(7)}  (idle ${t.idlePercent.toFixed(0)}% ` +
    `of the profile; ${t.messages} messages forwarded)`,
  ];
}
