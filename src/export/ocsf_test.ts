import assert from "node:assert/strict";
import { exactRecord } from "./exact_record.ts";
import { OCSF_VERSION, ocsfEvent, ocsfLine } from "./ocsf.ts";
import { RecordMappingError } from "./describe.ts";
import {
  ANY_LINE_BREAK,
  chain,
  CONTROL_TEXTS,
  fields,
  RAW_CONTROL,
  sample,
  sampleLog,
  SAMPLES,
} from "./testdata/records.ts";
import { VERSION } from "../version.ts";

/** The facts vendored from the OCSF 1.1.0 schema (see its `source`). */
interface AttributeFacts {
  requirement: "required" | "recommended" | "optional";
  type: string;
  base_type?: string;
  object?: string;
  is_array?: boolean;
  enum?: number[];
}
interface ObjectFacts {
  attributes: Record<string, AttributeFacts>;
  constraints: { at_least_one?: string[]; just_one?: string[] };
}
interface SchemaFacts {
  version: string;
  class: ObjectFacts & { uid: number; category_uid: number };
  objects: Record<string, ObjectFacts>;
}

const SCHEMA: SchemaFacts = JSON.parse(
  Deno.readTextFileSync(new URL("./testdata/ocsf_1.1.0_required.json", import.meta.url)),
);

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Every way `value` breaks the schema's facts for `facts`, as `path: problem` lines. */
function violations(value: unknown, facts: ObjectFacts, path: string): string[] {
  if (!isPlainObject(value)) return [`${path}: not an object`];
  const out: string[] = [];
  for (const [name, a] of Object.entries(facts.attributes)) {
    if (a.requirement === "required" && (value[name] === undefined || value[name] === null)) {
      out.push(`${path}.${name}: required, missing`);
    }
  }
  for (const group of [facts.constraints.at_least_one ?? []]) {
    if (group.length > 0 && !group.some((n) => value[n] !== undefined && value[n] !== null)) {
      out.push(`${path}: needs at least one of ${group.join(", ")}`);
    }
  }
  for (const [name, v] of Object.entries(value)) {
    const a = facts.attributes[name];
    if (a === undefined) {
      out.push(`${path}.${name}: not an attribute of this object in OCSF ${SCHEMA.version}`);
      continue;
    }
    const items = a.is_array ? (Array.isArray(v) ? v : null) : [v];
    if (items === null) {
      out.push(`${path}.${name}: must be an array`);
      continue;
    }
    items.forEach((item, i) => {
      const at = a.is_array ? `${path}.${name}[${i}]` : `${path}.${name}`;
      out.push(...typeViolations(item, a, at));
    });
  }
  return out;
}

function typeViolations(v: unknown, a: AttributeFacts, at: string): string[] {
  if (a.object !== undefined) {
    if (a.object === "object") return isPlainObject(v) ? [] : [`${at}: must be an object`];
    const facts = SCHEMA.objects[a.object];
    if (facts === undefined) return [`${at}: object ${a.object} has no facts in the fixture`];
    return violations(v, facts, at);
  }
  const out: string[] = [];
  switch (a.base_type) {
    case "string_t":
      if (typeof v !== "string") out.push(`${at}: must be a string (${a.type})`);
      break;
    case "integer_t":
      if (!Number.isInteger(v) || Math.abs(v as number) > 2 ** 31) {
        out.push(`${at}: must be a 32-bit integer (${a.type}), got ${JSON.stringify(v)}`);
      }
      break;
    case "long_t":
      if (!Number.isSafeInteger(v)) out.push(`${at}: must be an integer (${a.type})`);
      break;
    case "boolean_t":
      if (typeof v !== "boolean") out.push(`${at}: must be a boolean`);
      break;
    case "float_t":
      if (typeof v !== "number") out.push(`${at}: must be a number`);
      break;
    case "json_t":
      break;
    default:
      out.push(`${at}: unknown type ${a.type}`);
  }
  if (
    a.type === "port_t" && !(Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 65535)
  ) {
    out.push(`${at}: must be a port`);
  }
  if (a.enum !== undefined && !a.enum.includes(v as number)) {
    out.push(`${at}: ${JSON.stringify(v)} is not one of ${a.enum.join(", ")}`);
  }
  return out;
}

/** An export as a SIEM reads it: the line parsed again. */
function exported(read: ReturnType<typeof sample>): Record<string, unknown> {
  const reparsed = { record: JSON.parse(read.line), line: read.line };
  return JSON.parse(ocsfLine(exactRecord(reparsed), { logName: "audit.jsonl" }));
}

Deno.test("every record of a varied log is an OCSF 1.1.0 API Activity event with every required attribute, typed", () => {
  const log = sampleLog();
  assert.equal(log.length, SAMPLES.length);
  for (const read of log) {
    const event = exported(read);
    const problems = violations(event, SCHEMA.class, `seq ${read.record.seq}`);
    assert.deepEqual(problems, [], `${SAMPLES[read.record.seq - 1]!.name}: ${problems.join("\n")}`);
    assert.equal(event["class_uid"], SCHEMA.class.uid);
    assert.equal(event["category_uid"], SCHEMA.class.category_uid);
    assert.equal(event["type_uid"], 6003 * 100 + (event["activity_id"] as number));
    const metadata = event["metadata"] as Record<string, unknown>;
    assert.equal(metadata["version"], SCHEMA.version);
    assert.deepEqual(metadata["product"], {
      name: "mcp-audit",
      vendor_name: "mcp-audit",
      version: VERSION,
    });
    assert.equal(event["time"], Date.parse(read.record.ts));
  }
});

Deno.test("the fixture is OCSF 1.1.0's own: base event, class and object requirements", () => {
  assert.equal(SCHEMA.version, OCSF_VERSION);
  const required = (facts: ObjectFacts) =>
    Object.entries(facts.attributes).filter(([, a]) => a.requirement === "required").map(([n]) => n)
      .sort();
  assert.deepEqual(required(SCHEMA.class), [
    "activity_id",
    "actor",
    "api",
    "category_uid",
    "class_uid",
    "metadata",
    "severity_id",
    "src_endpoint",
    "time",
    "type_uid",
  ]);
  assert.deepEqual(required(SCHEMA.objects["metadata"]!), ["product", "version"]);
  assert.deepEqual(required(SCHEMA.objects["api"]!), ["operation"]);
  assert.deepEqual(required(SCHEMA.objects["request"]!), ["uid"]);
  assert.deepEqual(required(SCHEMA.objects["product"]!), ["vendor_name"]);
  assert.equal(SCHEMA.class.attributes["time"]!.base_type, "long_t");
});

Deno.test("the validator fails an event that misses or mistypes what the schema requires", () => {
  const event = exported(sample("denied"));
  const broken = structuredClone(event);
  delete broken["src_endpoint"];
  broken["time"] = new Date(event["time"] as number).toISOString();
  (broken["metadata"] as Record<string, unknown>)["product"] = { name: "mcp-audit" };
  broken["actor"] = {};
  (broken["api"] as Record<string, unknown>)["request"] = {};
  broken["severity_id"] = 7;
  broken["colour"] = "red";
  const problems = violations(broken, SCHEMA.class, "e");
  for (
    const want of [
      "e.src_endpoint: required, missing",
      "e.time: must be an integer (timestamp_t)",
      "e.metadata.product.vendor_name: required, missing",
      "e.actor: needs at least one of process, user, invoked_by, session",
      "e.api.request.uid: required, missing",
      "e.severity_id: 7 is not one of 0, 1, 2, 3, 4, 5, 6, 99",
      "e.colour: not an attribute of this object in OCSF 1.1.0",
    ]
  ) {
    assert.ok(problems.includes(want), `${want} not among:\n${problems.join("\n")}`);
  }
});

// The README's example: a denied tools/call, as exported.
const GOLDEN_DENIED =
  `{"class_uid":6003,"class_name":"API Activity","category_uid":6,"category_name":"Application Activity","activity_id":99,"activity_name":"tools/call","type_uid":600399,"type_name":"API Activity: Other","time":1795578582219,"severity_id":3,"severity":"Medium","status_id":2,"status":"Failure","status_detail":"Destructive filesystem operations are blocked","message":"tools/call delete_file denied by policy","metadata":{"version":"1.1.0","uid":"01KB0000000000000000000007","original_time":"2026-11-25T03:49:42.219Z","correlation_uid":"s-1","sequence":7,"log_name":"audit.jsonl","product":{"name":"mcp-audit","vendor_name":"mcp-audit","version":"${VERSION}"}},"actor":{"user":{"uid":"claude-desktop","name":"claude-ai"},"session":{"uid":"s-1"},"invoked_by":"claude-ai/0.1.0","authorizations":[{"decision":"deny","policy":{"name":"rules[0]","desc":"Destructive filesystem operations are blocked"}}]},"api":{"operation":"tools/call","request":{"uid":"7"},"service":{"name":"filesystem"}},"src_endpoint":{"name":"claude-desktop"},"dst_endpoint":{"name":"filesystem","svc_name":"filesystem"},"resources":[{"type":"mcp.tool","name":"delete_file"}],"unmapped":{"v":1,"seq":7,"id":"01KB0000000000000000000007","kind":"request","direction":"client_to_server","transport":"stdio","upstream":null,"jsonrpc_id":7,"client_id":"claude-desktop","server_id":"filesystem","client_info":{"name":"claude-ai","version":"0.1.0"},"redacted":[],"wire_sha256":"abababababababababababababababababababababababababababababababab","prev":"2f9a5552fe7e9855a73b84d9a1d241341ff1b5c141d95c07983d0264871e4b00","sig":"hmac-sha256:74c52629:790b2e0b7262e035c784f3f80f52ecfd8dce49e9c4e534e6ec52011b42fe4f4d","decision":{"action":"deny","reason":"Destructive filesystem operations are blocked","rule":0}}}`;

Deno.test("a denied tools/call maps to the golden OCSF line", () => {
  const read = sample("denied");
  assert.equal(ocsfLine(exactRecord(read), { logName: "audit.jsonl" }), GOLDEN_DENIED);
});

Deno.test("activity follows the method: reads, subscribe/unsubscribe, Other for calls, notifications, server requests and events, Unknown without a method", () => {
  const want: Record<string, [number, string]> = {
    "start": [99, "audit/start"],
    "initialize": [2, "Read"],
    "initialize answered": [2, "Read"],
    "tools/list filtered": [2, "Read"],
    "tools/call allowed": [99, "tools/call"],
    "resources/read over http": [2, "Read"],
    "resources/subscribe to an IPv6 upstream": [1, "Create"],
    "resources/unsubscribe": [4, "Delete"],
    "server request": [99, "roots/list"],
    "client answers the server": [99, "roots/list"],
    "notification": [99, "notifications/progress"],
    "ping without a session": [2, "Read"],
    "invalid": [0, "Unknown"],
    "unknown error": [2, "Read"],
  };
  for (const [name, [id, activity]] of Object.entries(want)) {
    const e = ocsfEvent(exactRecord(sample(name)));
    assert.equal(e.activity_id, id, name);
    assert.equal(e.activity_name, activity, name);
    assert.equal(e.type_uid, 600300 + id, name);
  }
});

Deno.test("severity and status: denial Medium/Failure, rate limit and errors Low/Failure, a good answer Success, a request Unknown", () => {
  const want: Record<string, [number, number, string | undefined, string | undefined]> = {
    "denied": [3, 2, undefined, "Destructive filesystem operations are blocked"],
    "monitor-mode denial": [3, 0, undefined, "would be blocked"],
    "pinning denial": [3, 2, undefined, "definition changed"],
    "rate limited": [2, 2, undefined, "over 60 requests per minute"],
    "denied answer": [2, 2, "-32030", "policy denied"],
    "tool error": [2, 2, undefined, "tool_error"],
    "initialize answered": [1, 1, undefined, undefined],
    "tools/call allowed": [1, 0, undefined, undefined],
    "start": [1, 0, undefined, undefined],
  };
  for (const [name, [severity, status, code, detail]] of Object.entries(want)) {
    const e = ocsfEvent(exactRecord(sample(name)));
    assert.equal(e.severity_id, severity, name);
    assert.equal(e.status_id, status, name);
    assert.equal(e.status_code, code, name);
    assert.equal(e.status_detail, detail, name);
  }
});

Deno.test("an answer carries start, end and duration; an error its response code", () => {
  const e = ocsfEvent(exactRecord(sample("denied answer")));
  assert.equal(e.end_time, e.time);
  assert.equal(e.duration, 0);
  assert.deepEqual(e.api.response, {
    code: -32030,
    error: "-32030",
    error_message: "policy denied",
  });
  const ok = ocsfEvent(exactRecord(sample("tool error")));
  assert.equal(ok.duration, 41);
  assert.equal(ok.start_time, ok.time - 41);
});

Deno.test("endpoints: the server's side from the upstream URL; swapped when the server asks", () => {
  const http = ocsfEvent(exactRecord(sample("resources/read over http")));
  assert.deepEqual(http.dst_endpoint, {
    name: "filesystem",
    svc_name: "filesystem",
    hostname: "mcp.example.com",
    port: 443,
  });
  assert.deepEqual(http.resources, [{ type: "mcp.resource", uid: "file:///srv/readme.md" }]);
  const v6 = ocsfEvent(exactRecord(sample("resources/subscribe to an IPv6 upstream")));
  assert.deepEqual(v6.dst_endpoint, {
    name: "filesystem",
    svc_name: "filesystem",
    ip: "::1",
    port: 8443,
  });
  const asked = ocsfEvent(exactRecord(sample("server request")));
  assert.deepEqual(asked.src_endpoint, { name: "filesystem", svc_name: "filesystem" });
  assert.deepEqual(asked.dst_endpoint, { name: "claude-desktop" });
});

Deno.test("the evidence stays: seq, id, prev, sig and a jsonrpc_id beyond 2^53 to the digit", () => {
  const read = sample("big numbers");
  const reparsed = { record: JSON.parse(read.line), line: read.line };
  const line = ocsfLine(exactRecord(reparsed));
  assert.ok(line.includes('"jsonrpc_id":18446744073709551616'), line);
  assert.ok(line.includes('"request":{"uid":"18446744073709551616"}'), line);
  const e = JSON.parse(line);
  assert.equal(e.unmapped.seq, read.record.seq);
  assert.equal(e.unmapped.id, read.record.id);
  assert.equal(e.unmapped.prev, read.record.prev);
  assert.equal(e.unmapped.sig, read.record.sig);
  assert.equal(e.metadata.uid, read.record.id);
  assert.equal(e.metadata.sequence, read.record.seq);
  // Params are never exported.
  assert.ok(!line.includes("1e400"), line);
});

Deno.test("hostile values stay inside one JSON line and read back unchanged", () => {
  const read = sample("hostile");
  const line = ocsfLine(exactRecord(read));
  assert.ok(!/[\r\n]/.test(line));
  const e = JSON.parse(line);
  assert.equal(e.api.operation, read.record.method);
  assert.equal(e.status_detail, read.record.decision!.reason);
  assert.equal(e.actor.session.uid, "+SUM(1,2)");
  assert.equal(e.api.request.uid, "-1");
  assert.equal(e.unmapped.jsonrpc_id, "-1");
});

Deno.test("control characters are JSON escapes, U+2028, U+2029, NEL and DEL too: one event a line, every value exact", () => {
  const reads = chain(CONTROL_TEXTS.map((text) => ({
    name: text,
    fields: fields({
      kind: "error",
      direction: "server_to_client",
      jsonrpc_id: text,
      method: "tools/call",
      tool_name: text,
      session: text,
      error: { code: -32000, message: text },
      decision: { action: "deny", rule: 0, reason: text },
    }),
  })));
  reads.forEach((read, i) => {
    const text = CONTROL_TEXTS[i]!;
    const line = ocsfLine(exactRecord(read), { logName: text });
    assert.ok(!RAW_CONTROL.test(line), JSON.stringify(line));
    assert.equal(line.split(ANY_LINE_BREAK).length, 1);
    // The escapes read back as the very characters: OCSF keeps the values exact.
    assert.deepEqual(JSON.parse(line), ocsfEvent(exactRecord(read), { logName: text }));
    const e = JSON.parse(line);
    assert.equal(e.actor.session.uid, text);
    assert.equal(e.api.request.uid, text);
    assert.equal(e.metadata.log_name, text);
  });
  assert.ok(
    ocsfLine(exactRecord(reads[5]!)).includes('"uid":"ls\\u2028sep\\u2029x"'),
    "written as \\u2028",
  );
});

Deno.test("a record whose ts is not a time is refused, not exported with a wrong time", () => {
  const [read] = chain([{ name: "x", fields: fields({ method: "ping" }) }]);
  assert.throws(
    () => ocsfEvent({ ...read!.record, ts: "yesterday" }),
    RecordMappingError,
  );
});
