import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { type AnchorToCheck, ChainVerifier, type Problem, type Report } from "./verify.ts";
import { KeyRing, parseKeyFile } from "./key_file.ts";
import { recordText } from "./record_text.ts";
import { type AuditFields, eventFields, EventMethod, GENESIS } from "./record.ts";
import {
  ed25519Signer,
  ed25519Verifier,
  generateEd25519,
  hmacSigner,
  type SignatureVerifier,
  type Signer,
} from "./signing.ts";
import { isJsonObject, type JsonObject, parseLossless } from "../jsonrpc/json.ts";

const KEY = hmacSigner("0123456789abcdef0123456789abcdef");
const enc = new TextEncoder();
const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

function request(i: number): AuditFields {
  return {
    kind: "request",
    direction: "client_to_server",
    transport: "stdio",
    session: "s1",
    jsonrpc_id: i,
    method: "tools/call",
    tool_name: "read_file",
    params: { name: "read_file", arguments: { i } },
    result: null,
    error: null,
    redacted: [],
    duration_ms: null,
    decision: null,
    client_info: null,
    wire_sha256: null,
    upstream: null,
  };
}

/**
 * Writes a chain as the proxy stores it: numbered, linked, signed with the real `recordText` and
 * signers. The signer may change between records (a key rotation).
 */
class Chain {
  seq = 0;
  prev = GENESIS;
  constructor(public signer: Signer | null = KEY) {}

  record(fields: AuditFields): string {
    const seq = ++this.seq;
    const text = recordText({
      v: 1,
      seq,
      id: "01JD" + String(seq).padStart(22, "0"),
      ts: new Date(Date.UTC(2026, 0, 1) + seq).toISOString(),
      ...fields,
      client_id: "c",
      server_id: "s",
      prev: this.prev,
    });
    const line = text.signed(this.signer === null ? null : this.signer.sign(text.unsigned));
    this.prev = sha256(line);
    return line;
  }

  event(method: string, params: JsonObject = {}): string {
    return this.record(eventFields(method, params, "stdio", null));
  }

  request(): string {
    return this.record(request(this.seq + 1));
  }

  /** The first record of a file after rotation, as the chain writes it. */
  rotate(archive: string, deleted: JsonObject[] = []): string {
    return this.event(EventMethod.Rotate, {
      reason: "size",
      archive,
      cause: "size",
      deleted_archives: deleted,
      continues_after_seq: this.seq,
      new_file: true,
    });
  }
}

/** start, five requests (seq 2-6), stop: seq n is on line n. */
function session(signer: Signer | null = KEY): string[] {
  const c = new Chain(signer);
  const lines = [c.event(EventMethod.Start, { version: "test" })];
  for (let i = 2; i <= 6; i++) lines.push(c.request());
  lines.push(c.event(EventMethod.Stop, { last_seq: 7 }));
  return lines;
}

interface FileLines {
  name: string;
  lines: string[];
  /** The last line has a newline (default true). */
  terminated?: boolean;
}

/** Feeds files, in order, as `verify` reads them. */
function checkFiles(
  files: FileLines[],
  key: SignatureVerifier | KeyRing | null = KEY,
  options: ConstructorParameters<typeof ChainVerifier>[1] = {},
): Report {
  const v = new ChainVerifier(key, options);
  for (const f of files) {
    let offset = 0;
    f.lines.forEach((text, i) => {
      const terminated = i < f.lines.length - 1 || (f.terminated ?? true);
      v.line(text, f.name, i + 1, offset, terminated);
      offset += enc.encode(text).length + (terminated ? 1 : 0);
    });
  }
  return v.finish();
}

function check(
  lines: string[],
  key: SignatureVerifier | KeyRing | null = KEY,
  lastTerminated = true,
): Report {
  return checkFiles([{ name: "audit.jsonl", lines, terminated: lastTerminated }], key);
}

const brief = (p: Problem) => ({ kind: p.kind, seq: p.seq, seqEnd: p.seqEnd });
const modify = (line: string) => {
  const out = line.replace('"name":"read_file"', '"name":"delete_all"');
  assert.notEqual(out, line);
  return out;
};

Deno.test("ChainVerifier finds nothing wrong with an intact, signed chain", () => {
  const r = check(session());
  assert.deepEqual(r.problems, []);
  assert.equal(r.records, 7);
  assert.equal(r.firstSeq, 1);
  assert.equal(r.lastSeq, 7);
  assert.equal(r.endsWith, EventMethod.Stop);
  assert.equal(r.endsClean, true);
  assert.deepEqual(r.lastClean, { seq: 7, method: EventMethod.Stop });
  assert.equal(r.uncovered, 0);
  assert.equal(r.signaturesChecked, true);
  assert.deepEqual(r.keysUsed, [{ scheme: "hmac-sha256", keyId: KEY.keyId, records: 7 }]);
  assert.deepEqual(r.notes, []);
  assert.equal(r.moreProblems, 0);
  assert.equal(r.files, 1);
});

Deno.test("ChainVerifier checks Ed25519 signatures", () => {
  const pair = generateEd25519();
  const lines = session(ed25519Signer(pair.privatePem));
  assert.deepEqual(check(lines, ed25519Verifier(pair.publicPem)).problems, []);
  const other = generateEd25519();
  assert.deepEqual(check(lines, ed25519Verifier(other.publicPem)).problems.map(brief), [
    { kind: "wrong key", seq: 1, seqEnd: 7 },
  ]);
});

Deno.test("ChainVerifier without a key still checks the chain and says signatures went unchecked", () => {
  const r = check(session(), null);
  assert.deepEqual(r.problems, []);
  assert.equal(r.signaturesChecked, false);
  assert.ok(r.notes.some((n) => n.includes("signatures were not checked")));
});

Deno.test("ChainVerifier reports a modified record once, at its seq and line", () => {
  const lines = session();
  lines[3] = modify(lines[3]!);
  const r = check(lines);
  assert.deepEqual(r.problems.map(brief), [{ kind: "modified", seq: 4, seqEnd: 4 }]);
  assert.equal(r.problems[0]!.line, 4);
});

Deno.test("ChainVerifier without a key finds a modified record through the next prev link", () => {
  const lines = session();
  lines[3] = modify(lines[3]!);
  const r = check(lines, null);
  assert.deepEqual(r.problems.map(brief), [{ kind: "modified", seq: 4, seqEnd: 4 }]);
  assert.equal(r.problems[0]!.line, 4, "the line of the record whose bytes changed");
});

Deno.test("ChainVerifier reports a removed record as missing", () => {
  const lines = session();
  lines.splice(3, 1);
  const r = check(lines);
  assert.deepEqual(r.problems.map(brief), [{ kind: "missing", seq: 4, seqEnd: 4 }]);
  assert.equal(r.problems[0]!.detail, "record is missing");
});

Deno.test("ChainVerifier reports swapped records as reordered", () => {
  const lines = session();
  [lines[3], lines[4]] = [lines[4]!, lines[3]!];
  const r = check(lines);
  assert.deepEqual(r.problems.map(brief), [{ kind: "reordered", seq: 4, seqEnd: 4 }]);
  assert.equal(r.problems[0]!.line, 5, "seq 4 now stands on line 5");
});

Deno.test("ChainVerifier reports a repeated record as reordered", () => {
  const lines = session();
  lines.splice(4, 0, lines[3]!);
  const r = check(lines);
  assert.deepEqual(r.problems.map((p) => p.kind), ["reordered"]);
  assert.equal(r.problems[0]!.seq, 4);
});

Deno.test("ChainVerifier reports a record come back into the middle of a long gap, and the rest of the gap", () => {
  const lines = session();
  const four = lines[3]!;
  lines.splice(2, 4); // seq 3-6 gone
  lines.push(four); // seq 4 comes back at the end
  const r = check(lines);
  assert.deepEqual(r.problems.map(brief), [
    { kind: "reordered", seq: 4, seqEnd: 4 },
    { kind: "missing", seq: 3, seqEnd: 3 },
    { kind: "missing", seq: 5, seqEnd: 6 },
    { kind: "missing", seq: null, seqEnd: null },
  ]);
});

Deno.test("ChainVerifier reports a torn last line and the missing clean end", () => {
  const lines = session().slice(0, 5);
  lines.push('{"client_id":"c","dir');
  const r = check(lines, KEY, false);
  assert.deepEqual(r.problems.map((p) => [p.kind, p.seq, p.line]), [
    ["torn", null, 6],
    ["missing", null, 0],
  ]);
  assert.ok(r.problems[0]!.detail.includes("after seq 5"));
});

Deno.test("ChainVerifier calls an incomplete last line a writer mid-write when told so, else torn", () => {
  const lines = session();
  lines.push('{"client_id":"c","dir');
  const feed = (v: ChainVerifier, files: FileLines[]) => {
    for (const f of files) {
      f.lines.forEach((text, i) => {
        const terminated = i < f.lines.length - 1 || (f.terminated ?? true);
        v.line(text, f.name, i + 1, 0, terminated);
      });
    }
  };
  const live = new ChainVerifier(KEY);
  feed(live, [{ name: "audit.jsonl", lines, terminated: false }]);
  live.midWrite();
  const r = live.finish();
  assert.deepEqual(r.problems, [], "the log ends cleanly with the stop before it");
  assert.ok(
    r.notes.some((n) => n.startsWith("last line incomplete (a writer may be mid-write)")),
    r.notes.join("\n"),
  );
  assert.ok(r.notes.some((n) => n.includes("after seq 7")), r.notes.join("\n"));

  // Not said to be mid-write: torn.
  const torn = checkFiles([{ name: "audit.jsonl", lines, terminated: false }]);
  assert.deepEqual(torn.problems.map((p) => p.kind), ["torn"]);
  // Said so, but the incomplete line is not the last one fed (an archive's end): torn.
  const c = new Chain();
  const first = [c.event(EventMethod.Start), c.request(), '{"client_id":"c","dir'];
  const second = [c.rotate("audit.jsonl.1"), c.event(EventMethod.Stop)];
  const archive = new ChainVerifier(KEY, { scope: "log" });
  feed(archive, [{ name: "audit.jsonl.1", lines: first, terminated: false }, {
    name: "audit.jsonl",
    lines: second,
  }]);
  archive.midWrite();
  assert.deepEqual(archive.finish().problems.map((p) => [p.kind, p.file, p.line]), [
    ["torn", "audit.jsonl.1", 3],
  ]);
});

Deno.test("ChainVerifier reports a recovered torn line as torn, with the recovery as a note", () => {
  const c = new Chain();
  const lines = [c.event(EventMethod.Start), c.request(), c.request()];
  const offset = lines.reduce((n, l) => n + enc.encode(l).length + 1, 0);
  lines.push('{"client_id":"c","dir');
  lines.push(c.event(EventMethod.Recover, {
    reason: "torn record(s) found at start; kept in place and closed with a newline",
    cause: "torn",
    torn: [{ file: "/var/log/audit.jsonl", offset, length: 21 }],
    continues_after_seq: 3,
    new_file: false,
  }));
  lines.push(c.event(EventMethod.Start), c.event(EventMethod.Stop));
  const r = check(lines);
  assert.deepEqual(r.problems.map((p) => [p.kind, p.seq, p.line]), [["torn", null, 4]]);
  assert.ok(r.notes.some((n) => n.includes("recovery")), r.notes.join("\n"));
});

Deno.test("ChainVerifier reports an unlisted bad line in the middle as modified", () => {
  const lines = session();
  lines.splice(3, 0, "this is not a record");
  const r = check(lines);
  assert.deepEqual(r.problems.map((p) => [p.kind, p.seq, p.line]), [["modified", null, 4]]);
});

Deno.test("ChainVerifier reports an unsigned log as one run of unsigned records", () => {
  const r = check(session(null));
  assert.deepEqual(r.problems.map(brief), [{ kind: "unsigned", seq: 1, seqEnd: 7 }]);
});

Deno.test("ChainVerifier reports a log signed with another key as one run of wrong key", () => {
  const r = check(session(), hmacSigner("another secret entirely, 32 bytes"));
  assert.deepEqual(r.problems.map(brief), [{ kind: "wrong key", seq: 1, seqEnd: 7 }]);
});

Deno.test("ChainVerifier collapses consecutive modified or missing records into one problem", () => {
  const modified = session();
  for (const i of [2, 3, 4]) modified[i] = modify(modified[i]!);
  assert.deepEqual(check(modified).problems.map(brief), [{ kind: "modified", seq: 3, seqEnd: 5 }]);
  assert.deepEqual(check(modified, null).problems.map(brief), [
    { kind: "modified", seq: 3, seqEnd: 5 },
  ]);

  const missing = session();
  missing.splice(2, 3);
  assert.deepEqual(check(missing).problems.map(brief), [{ kind: "missing", seq: 3, seqEnd: 5 }]);
});

Deno.test("ChainVerifier keeps separate runs apart", () => {
  const lines = session();
  lines[1] = modify(lines[1]!);
  lines[4] = modify(lines[4]!);
  assert.deepEqual(check(lines).problems.map(brief), [
    { kind: "modified", seq: 2, seqEnd: 2 },
    { kind: "modified", seq: 5, seqEnd: 5 },
  ]);
});

Deno.test("ChainVerifier reports a log that does not end in audit/stop", () => {
  const lines = session().slice(0, 6);
  const r = check(lines);
  assert.equal(r.problems.length, 1);
  assert.equal(r.problems[0]!.kind, "missing");
  assert.equal(r.problems[0]!.seq, null);
  assert.equal(
    r.problems[0]!.detail,
    "log ends at seq 6 without audit/stop (proxy still running, crashed, or records removed from the end)",
  );
  assert.equal(r.endsWith, null);
  assert.equal(r.endsClean, false);
  assert.equal(r.endMissing, true);
  assert.equal(r.lastClean, null);
  assert.equal(r.uncovered, 6);
});

Deno.test("ChainVerifier does not take a checkpoint for the end of a log: one cut right after it is missing its end", () => {
  const c = new Chain();
  const lines = [c.event(EventMethod.Start), c.request(), c.request()];
  lines.push(c.event(EventMethod.Checkpoint, {
    reason: "periodic",
    head_seq: c.seq,
    head_hash: c.prev,
    records_since_last: 3,
  }));
  const cut = check(lines);
  assert.deepEqual(cut.problems.map(brief), [{ kind: "missing", seq: null, seqEnd: null }]);
  assert.equal(
    cut.problems[0]!.detail,
    "log ends at seq 4 with audit/checkpoint, not audit/stop: a checkpoint vouches for the records " +
      "before it, not that none came after it (proxy still running, crashed, or records removed from the end)",
  );
  assert.equal(cut.endsWith, EventMethod.Checkpoint);
  assert.equal(cut.endsClean, false);
  assert.equal(cut.endMissing, true);
  assert.deepEqual(cut.lastClean, { seq: 4, method: EventMethod.Checkpoint });
  assert.equal(cut.uncovered, 0);

  // The same log going on to its audit/stop ends cleanly.
  lines.push(c.request(), c.event(EventMethod.Stop));
  const whole = check(lines);
  assert.deepEqual(whole.problems, []);
  assert.equal(whole.endsClean, true);

  // An archive checked alone may still end anywhere, a checkpoint included: a note.
  const archive = checkFiles([{ name: "audit.jsonl.1", lines: lines.slice(0, 4) }], KEY, {
    scope: "archive",
  });
  assert.deepEqual(archive.problems, []);
  assert.equal(archive.endMissing, false);
});

Deno.test("ChainVerifier says how far a running log is covered: up to its last checkpoint", () => {
  const c = new Chain();
  const lines = [c.event(EventMethod.Start), c.request(), c.request()];
  lines.push(c.event(EventMethod.Checkpoint, {
    reason: "periodic",
    head_seq: c.seq,
    head_hash: c.prev,
    records_since_last: 3,
  }));
  lines.push(c.request(), c.request());
  const r = check(lines);
  assert.deepEqual(r.lastClean, { seq: 4, method: EventMethod.Checkpoint });
  assert.equal(r.uncovered, 2);
  assert.deepEqual(r.problems.map(brief), [{ kind: "missing", seq: null, seqEnd: null }]);
  assert.match(
    r.problems[0]!.detail,
    /^log ends at seq 6 without audit\/stop: the 2 records after the last audit\/checkpoint at seq 4 are not yet covered/,
  );
});

Deno.test("ChainVerifier reports a checkpoint that names another head than the record before it", () => {
  const c = new Chain();
  const lines = [c.event(EventMethod.Start), c.request()];
  lines.push(
    c.event(EventMethod.Checkpoint, { reason: "periodic", head_seq: 5, head_hash: c.prev }),
    c.event(EventMethod.Stop),
  );
  const r = check(lines);
  assert.deepEqual(r.problems.map(brief), [{ kind: "modified", seq: 3, seqEnd: 3 }]);
  assert.match(r.problems[0]!.detail, /names head seq 5 but stands at seq 3/);

  const d = new Chain();
  const other = [d.event(EventMethod.Start), d.request()];
  other.push(
    d.event(EventMethod.Checkpoint, {
      reason: "periodic",
      head_seq: 2,
      head_hash: "ab".repeat(32),
    }),
    d.event(EventMethod.Stop),
  );
  assert.deepEqual(check(other).problems.map(brief), [{ kind: "modified", seq: 3, seqEnd: 3 }]);
});

Deno.test("ChainVerifier notes an audit/start with no audit/stop before it, but not after rotation's events", () => {
  const c = new Chain();
  const lines = [c.event(EventMethod.Start), c.request(), c.event(EventMethod.Start)];
  lines.push(c.event(EventMethod.Stop), c.event(EventMethod.Stop));
  const r = check(lines);
  assert.deepEqual(r.problems, []);
  assert.ok(
    r.notes.some((n) =>
      n.startsWith("seq 3: audit/start while an earlier run had written no audit/stop")
    ),
    r.notes.join("\n"),
  );

  const d = new Chain();
  const clean = [d.event(EventMethod.Start), d.event(EventMethod.Stop)];
  clean.push(d.event(EventMethod.Retention, { reason: "max_files", deleted_archives: [] }));
  clean.push(d.event(EventMethod.Start), d.event(EventMethod.Stop));
  assert.deepEqual(check(clean).notes, []);
});

Deno.test("ChainVerifier reports an empty log as missing its records", () => {
  const r = check([], KEY);
  assert.deepEqual(r.problems.map((p) => p.kind), ["missing"]);
  assert.equal(r.records, 0);
  assert.equal(r.firstSeq, null);
  assert.equal(r.lastSeq, null);
});

Deno.test("ChainVerifier with signatures left unchecked does not call unsigned records unsigned", () => {
  const r = check(session(null), null);
  assert.deepEqual(r.problems, []);
  assert.equal(r.signaturesChecked, false);
});

Deno.test("ChainVerifier reports a log mixing unsigned and signed records by run", () => {
  // A proxy run without a key, then one with it, then one without, on the same log.
  const c = new Chain(null);
  const lines: string[] = [];
  for (const signer of [null, KEY, null]) {
    c.signer = signer;
    lines.push(c.event(EventMethod.Start), c.event(EventMethod.Stop));
  }
  assert.deepEqual(check(lines).problems.map(brief), [
    { kind: "unsigned", seq: 1, seqEnd: 2 },
    { kind: "unsigned", seq: 5, seqEnd: 6 },
  ]);
  const other = generateEd25519();
  assert.deepEqual(
    check(lines, ed25519Verifier(other.publicPem)).problems.map(brief),
    [
      { kind: "unsigned", seq: 1, seqEnd: 2 },
      { kind: "wrong key", seq: 3, seqEnd: 4 },
      { kind: "unsigned", seq: 5, seqEnd: 6 },
    ],
    "an HMAC signature checked with an Ed25519 key is a wrong key, not a modification",
  );
});

/**
 * Lines of a file that the proxy started after the log was deleted (or moved, or replaced) at seq
 * 2, and the lines before.
 */
function continuedAfterDeletion(cause = "deleted"): { lines: string[]; before: string[] } {
  const c = new Chain();
  const before = [c.event(EventMethod.Start), c.request()];
  const lines = [
    c.event(EventMethod.Recover, {
      reason: `the audit log was ${cause}`,
      cause,
      continues_after_seq: 2,
      new_file: true,
    }),
    c.request(),
    c.event(EventMethod.Stop),
  ];
  return { lines, before };
}

Deno.test("ChainVerifier reports the records before a new file's audit/recover as missing, saying where they went", () => {
  const said: Record<string, string> = {
    deleted: "the records before seq 3 were in a file that was deleted while the proxy ran " +
      "(the audit/recover at seq 3 says so): they are gone unless a copy of that file exists, " +
      "and nothing here vouches for them",
    moved: "the records before seq 3 are in the file that was moved away while the proxy ran " +
      "(the audit/recover at seq 3 says so): they are not checked here (verify that file too)",
    replaced: "the records before seq 3 were in a file that something else replaced while the " +
      "proxy ran (the audit/recover at seq 3 says so): they are not checked here",
  };
  for (const [cause, detail] of Object.entries(said)) {
    const { lines } = continuedAfterDeletion(cause);
    for (const scope of ["file", "log", "archive"] as const) {
      const r = checkFiles([{ name: "audit.jsonl", lines }], KEY, { scope });
      assert.deepEqual(r.problems.map(brief), [{ kind: "missing", seq: 1, seqEnd: 2 }], scope);
      assert.equal(r.problems[0]!.detail, detail);
      assert.equal(r.continuesAfter, 2);
      assert.equal(r.continuesBecause, cause);
      assert.equal(r.firstSeq, 3);
      assert.ok(!r.notes.some((n) => n.includes("starts mid-chain")), r.notes.join("\n"));
      assert.ok(
        r.notes.some((n) => n.startsWith("seq 3: the proxy found its log")),
        r.notes.join("\n"),
      );
    }
  }
});

Deno.test("ChainVerifier finds no record missing when the file a new file continues is read before it", () => {
  const { lines, before } = continuedAfterDeletion("moved");
  const r = checkFiles(
    [{ name: "audit.jsonl.moved", lines: before }, {
      name: "audit.jsonl",
      lines,
    }],
    KEY,
    { scope: "log" },
  );
  assert.deepEqual(r.problems, []);
  assert.equal(r.continuesAfter, null);

  // A file of the log before it, ending early: what the new file's recovery says is missing.
  const short = checkFiles(
    [{ name: "audit.jsonl.1", lines: before.slice(0, 1) }, {
      name: "audit.jsonl",
      lines,
    }],
    KEY,
    { scope: "log" },
  );
  assert.deepEqual(short.problems.map(brief), [{ kind: "missing", seq: 2, seqEnd: 2 }]);
  assert.match(
    short.problems[0]!.detail,
    /^the records before seq 3 are in the file that was moved/,
  );
});

Deno.test("ChainVerifier notes a file that ends with the checkpoint the proxy wrote on moving on to a new file", () => {
  const c = new Chain();
  const lines = [c.event(EventMethod.Start), c.request()];
  lines.push(c.event(EventMethod.Checkpoint, {
    reason: "the audit log was moved away",
    cause: "moved",
    last_seq: 3,
  }));
  const r = check(lines);
  assert.deepEqual(r.problems, []);
  assert.equal(r.endMissing, false);
  assert.equal(r.endsMovedOn, "moved");
  assert.ok(
    r.notes.includes(
      "the file ends at seq 3 with the audit/checkpoint the proxy wrote on finding it moved away " +
        "while it ran: the chain goes on in a new file at the log's path, which holds the records " +
        "after it (verify that file too)",
    ),
    r.notes.join("\n"),
  );
  // A periodic checkpoint at the end says nothing of the kind.
  const d = new Chain();
  const periodic = [d.event(EventMethod.Start), d.event(EventMethod.Checkpoint, { cause: "x" })];
  const p = check(periodic);
  assert.equal(p.endsMovedOn, null);
  assert.equal(p.endMissing, true);
});

Deno.test("ChainVerifier reports the records before a log that starts mid-chain without saying so", () => {
  const r = check(session().slice(3));
  assert.deepEqual(r.problems.map(brief), [{ kind: "missing", seq: 1, seqEnd: 3 }]);
  assert.equal(r.continuesAfter, null);

  // A recovery after a crash is not a new file: cutting the log there shows.
  const c = new Chain();
  c.event(EventMethod.Start);
  const cut = [
    c.event(EventMethod.Recover, { cause: "torn", continues_after_seq: 1, new_file: false }),
    c.event(EventMethod.Stop),
  ];
  assert.deepEqual(check(cut).problems.map(brief), [{ kind: "missing", seq: 1, seqEnd: 1 }]);
});

Deno.test("ChainVerifier reports a line it cannot check as a problem of that line and goes on", () => {
  const lines = session();
  const deep = "[".repeat(200_000) + "]".repeat(200_000);
  lines.splice(3, 0, lines[3]!.replace('"arguments":{"i":4}', `"arguments":{"i":${deep}}`));
  const r = check(lines);
  assert.ok(r.problems.some((p) => p.line === 4), JSON.stringify(r.problems.map(brief)));
  assert.equal(r.records >= 6, true, "the lines after it were checked");
});

/** An anchor naming the record stored as `text`. */
function anchorOf(text: string): AnchorToCheck {
  const p = JSON.parse(text);
  return { seq: p.seq, hash: sha256(text), id: p.id, ts: p.ts, file: "audit.anchor" };
}

function checkAgainst(lines: string[], anchor: AnchorToCheck): Report {
  return checkFiles([{ name: "audit.jsonl", lines }], KEY, { anchor });
}

Deno.test("ChainVerifier with an anchor reports a log cut back to an earlier clean stop", () => {
  const c = new Chain();
  const two = [c.event(EventMethod.Start), c.event(EventMethod.Stop)];
  two.push(c.event(EventMethod.Start), c.request(), c.event(EventMethod.Stop));
  const anchor = anchorOf(two[4]!);
  const whole = checkAgainst(two, anchor);
  assert.deepEqual(whole.problems, []);
  assert.ok(whole.notes.some((n) => n.includes("reaches seq 5")));

  const cut = two.slice(0, 2);
  assert.deepEqual(check(cut).problems, [], "the chain alone cannot see the cut");
  const r = checkAgainst(cut, anchor);
  assert.deepEqual(r.problems.map(brief), [{ kind: "missing", seq: 3, seqEnd: 5 }]);
  assert.ok(r.problems[0]!.detail.includes("audit.anchor"));
});

Deno.test("ChainVerifier with an anchor reports another record at the anchored seq as modified", () => {
  const c = new Chain();
  const other = [c.event(EventMethod.Start, { version: "other" })];
  for (let i = 2; i <= 6; i++) other.push(c.request());
  other.push(c.event(EventMethod.Stop, { last_seq: 7 }));
  const r = checkAgainst(session(), anchorOf(other[6]!));
  assert.deepEqual(r.problems.map(brief), [{ kind: "modified", seq: 7, seqEnd: 7 }]);
});

Deno.test("ChainVerifier with an anchor checks the prev of a log that starts just after it", () => {
  const { lines, before } = continuedAfterDeletion();
  const good = { ...anchorOf(before.at(-1)!), file: "audit.anchor" };
  const gone = { kind: "missing", seq: 1, seqEnd: 2 };
  assert.deepEqual(checkAgainst(lines, good).problems.map(brief), [gone]);
  const bad = { ...good, hash: "0".repeat(64) };
  assert.deepEqual(checkAgainst(lines, bad).problems.map(brief), [
    { kind: "modified", seq: 3, seqEnd: 3 },
    gone,
  ]);
  const older = { ...good, seq: 1 };
  assert.ok(checkAgainst(lines, older).notes.some((n) => n.includes("before this log's first")));
});

Deno.test("ChainVerifier notes what a run-time audit/recover says happened, not a crash", () => {
  const c = new Chain();
  const lines = [c.event(EventMethod.Start), c.request(), "junk"];
  lines.push(c.event(EventMethod.Recover, {
    reason: "bytes no writer of ours wrote",
    cause: "extended",
    continues_after_seq: 2,
    new_file: false,
  }));
  lines.push(c.request(), c.event(EventMethod.Stop));
  const r = check(lines);
  assert.deepEqual(r.problems.map((p) => [p.kind, p.line]), [["modified", 3]], "the junk line");
  assert.ok(
    r.notes.some((n) =>
      n === "seq 3: the proxy found its log written into by another program while it ran"
    ),
    r.notes.join("\n"),
  );
  assert.ok(!r.notes.some((n) => n.includes("crash")));
});

// ---- files: archives and the active file as one chain ----

/**
 * A log rotated twice: archives A (seq 1-4) and B (seq 5-8, starting with audit/rotate), and the
 * active file (seq 9-11, audit/rotate first, audit/stop last).
 */
function rotated(deletedAtSecond: JsonObject[] = []): FileLines[] {
  const c = new Chain();
  const a = [c.event(EventMethod.Start), c.request(), c.request(), c.request()];
  const b = [c.rotate("audit.jsonl.20260101T000000Z"), c.request(), c.request(), c.request()];
  const active = [
    c.rotate("audit.jsonl.20260102T000000Z", deletedAtSecond),
    c.request(),
    c.event(EventMethod.Stop),
  ];
  return [
    { name: "audit.jsonl.20260101T000000Z", lines: a },
    { name: "audit.jsonl.20260102T000000Z", lines: b },
    { name: "audit.jsonl", lines: active },
  ];
}

const whole = { scope: "log" } as const;

Deno.test("ChainVerifier checks archives and the active file as one chain", () => {
  const r = checkFiles(rotated(), KEY, whole);
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.notes, []);
  assert.equal(r.records, 11);
  assert.equal(r.files, 3);
  assert.equal(r.continuesAfter, null);
});

Deno.test("ChainVerifier names the file and line of a problem in an archive", () => {
  const files = rotated();
  files[1]!.lines[2] = modify(files[1]!.lines[2]!);
  const r = checkFiles(files, KEY, whole);
  assert.deepEqual(r.problems.map((p) => [p.kind, p.seq, p.file, p.line]), [
    ["modified", 7, "audit.jsonl.20260102T000000Z", 3],
  ]);
});

Deno.test("ChainVerifier reports a deleted middle archive as missing between the files around it", () => {
  const files = rotated();
  files.splice(1, 1);
  const r = checkFiles(files, KEY, whole);
  assert.deepEqual(r.problems.map(brief), [{ kind: "missing", seq: 5, seqEnd: 8 }]);
  assert.match(
    r.problems[0]!.detail,
    /audit\.jsonl\.20260101T000000Z ends before it and audit\.jsonl starts after it/,
  );
});

Deno.test("ChainVerifier reports archives read out of order as reordered, with every link checked", () => {
  const files = rotated();
  [files[0], files[1]] = [files[1]!, files[0]!];
  const r = checkFiles(files, KEY, whole);
  assert.deepEqual(r.problems.map(brief), [{ kind: "reordered", seq: 1, seqEnd: 4 }]);

  // Without a key, the link from seq 5 back to seq 4 is checked though seq 5 came first.
  const tampered = rotated();
  tampered[0]!.lines[3] = modify(tampered[0]!.lines[3]!);
  [tampered[0], tampered[1]] = [tampered[1]!, tampered[0]!];
  const t = checkFiles(tampered, null, whole);
  assert.deepEqual(t.problems.map(brief), [
    { kind: "reordered", seq: 1, seqEnd: 4 },
    { kind: "modified", seq: 4, seqEnd: 4 },
  ]);
});

Deno.test("ChainVerifier in a whole log reports the first file starting with audit/rotate as missing what came before", () => {
  const files = rotated().slice(1);
  const r = checkFiles(files, KEY, whole);
  assert.deepEqual(r.problems.map(brief), [{ kind: "missing", seq: 1, seqEnd: 4 }]);
  assert.match(r.problems[0]!.detail, /no audit\/rotate or audit\/retention event says/);
});

Deno.test("ChainVerifier accepts the oldest archives deleted by retention, as its events list them", () => {
  const deleted = [{
    name: "audit.jsonl.20260101T000000Z",
    rule: "max_files",
    first_seq: 1,
    last_seq: 4,
  }];
  const files = rotated(deleted).slice(1);
  const r = checkFiles(files, KEY, whole);
  assert.deepEqual(r.problems, []);
  assert.equal(r.continuesAfter, 4);
  assert.equal(r.continuesBecause, "retention");
  assert.ok(
    r.notes.some((n) =>
      n.startsWith("seq 1-4 were in archives retention deleted: audit.jsonl.20260101T000000Z")
    ),
    r.notes.join("\n"),
  );

  // Retention deleted the first archive; someone deleted the second too: that one is missing.
  const both = rotated(deleted).slice(2);
  assert.deepEqual(checkFiles(both, KEY, whole).problems.map(brief), [
    { kind: "missing", seq: 5, seqEnd: 8 },
  ]);
});

Deno.test("ChainVerifier accepts what an audit/retention event says it deleted, wherever it stands", () => {
  const c = new Chain();
  for (let i = 0; i < 4; i++) c.request();
  const files = [{
    name: "audit.jsonl",
    lines: [
      c.rotate("audit.jsonl.20260101T000000Z"),
      c.event(EventMethod.Retention, {
        reason: "max_age_days",
        deleted_archives: [{ name: "x", rule: "max_age_days", first_seq: 1, last_seq: 4 }],
      }),
      c.event(EventMethod.Start),
      c.event(EventMethod.Stop),
    ],
  }];
  assert.deepEqual(checkFiles(files, KEY, whole).problems, []);
});

Deno.test("ChainVerifier checks one archive alone: it may start and end mid-chain (notes)", () => {
  const [, b] = rotated();
  const r = checkFiles([b!], KEY, { scope: "archive" });
  assert.deepEqual(r.problems, []);
  assert.equal(r.continuesBecause, "rotated");
  assert.ok(r.notes.some((n) => n.includes("starts mid-chain")), r.notes.join("\n"));
  assert.ok(r.notes.some((n) => n.startsWith("the archive ends at seq 8")), r.notes.join("\n"));
  assert.equal(r.endMissing, false, "the next file vouches for an archive's end");
  // The same lines as a file of their own: the end is missing.
  assert.deepEqual(
    checkFiles([b!], KEY, { scope: "file" }).problems.map((p) => p.kind),
    ["missing"],
  );
});

Deno.test("ChainVerifier notes a file boundary the chain runs across without audit/rotate, or naming another archive", () => {
  const files = rotated();
  files[1]!.name = "audit.jsonl.20260103T000000Z";
  // Split the active file in two by hand: the chain runs on, but no rotation made the second.
  const active = files[2]!;
  files.splice(2, 1, { name: "audit.jsonl.part", lines: active.lines.slice(0, 1) }, {
    name: "audit.jsonl",
    lines: active.lines.slice(1),
  });
  const r = checkFiles(files, KEY, whole);
  assert.deepEqual(r.problems, []);
  assert.ok(
    r.notes.some((n) => n.startsWith("seq 10: audit.jsonl starts without an audit/rotate event")),
    r.notes.join("\n"),
  );
  assert.ok(
    r.notes.some((n) =>
      n.startsWith(
        "seq 9: audit/rotate says the records before it went to audit.jsonl.20260102T000000Z, " +
          "but the file before audit.jsonl.part is audit.jsonl.20260103T000000Z",
      )
    ),
    r.notes.join("\n"),
  );
});

// ---- several keys ----

Deno.test("ChainVerifier with a key ring checks a log that spans a key rotation", () => {
  const first = hmacSigner("the first secret, of thirty-two bytes", "k1");
  const second = hmacSigner("the second secret, of thirty-two bytes", "k2");
  const c = new Chain(first);
  const lines = [c.event(EventMethod.Start), c.request(), c.request()];
  c.signer = second;
  lines.push(c.request(), c.request(), c.event(EventMethod.Stop));
  const ring = new KeyRing(parseKeyFile(
    "# keys over time\nhmac k1 the first secret, of thirty-two bytes\n" +
      "hmac k2 the second secret, of thirty-two bytes\n",
    "keys.txt",
  ));
  const r = check(lines, ring);
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.keysUsed, [
    { scheme: "hmac-sha256", keyId: "k1", records: 3 },
    { scheme: "hmac-sha256", keyId: "k2", records: 3 },
  ]);

  const onlyFirst = new KeyRing(
    parseKeyFile("hmac k1 the first secret, of thirty-two bytes\n", "keys.txt"),
  );
  const one = check(lines, onlyFirst);
  assert.deepEqual(one.problems.map(brief), [{ kind: "wrong key", seq: 4, seqEnd: 6 }]);
  assert.match(one.problems[0]!.detail, /signed with key id k2, checked with k1/);

  const pair = generateEd25519();
  const withEd = new KeyRing([
    ...parseKeyFile("hmac k1 the first secret, of thirty-two bytes\n", "keys.txt"),
    ...parseKeyFile(`ed25519 e1\n${pair.publicPem}`, "keys.txt"),
  ]);
  const two = check(lines, withEd);
  assert.deepEqual(two.problems.map(brief), [{ kind: "wrong key", seq: 4, seqEnd: 6 }]);
  assert.match(
    two.problems[0]!.detail,
    /signed with hmac-sha256 key id k2, which none of the keys/,
  );

  // A key that names k2 but is another secret: the signatures do not match.
  const forged = new KeyRing(parseKeyFile(
    "hmac k1 the first secret, of thirty-two bytes\nhmac k2 not the second secret at all\n",
    "keys.txt",
  ));
  assert.deepEqual(check(lines, forged).problems.map(brief), [
    { kind: "modified", seq: 4, seqEnd: 6 },
  ]);
});

// ---- rows of a database ----

Deno.test("ChainVerifier reports a row whose columns disagree with its line as modified at that seq", () => {
  const lines = session();
  const v = new ChainVerifier(KEY, { scope: "log" });
  lines.forEach((text, i) => {
    v.line(text, "audit.db", i + 1, 0, true);
    if (i === 2) {
      v.disagrees("audit.db", i + 1, i + 1, "tool_name is delete_all, the line says read_file");
    }
  });
  const r = v.finish();
  assert.deepEqual(r.problems.map(brief), [{ kind: "modified", seq: 3, seqEnd: 3 }]);
  assert.match(r.problems[0]!.detail, /a column disagrees with the stored line \(tool_name/);
});

// ---- every line is its record's canonical form ----

Deno.test("ChainVerifier reports a line that is not its record's canonical JSON as modified, though its signature holds", () => {
  const canonicalOnly = "the stored line is not its record's canonical JSON (a member repeated " +
    "or out of order, blanks, or a value spelled another way): not as the proxy writes it";
  const variants: [string, (line: string) => string][] = [
    // JSON.parse keeps the last of a repeated member; another reader may keep the first.
    [
      "members repeated",
      (l) =>
        l.replace(
          '{"client_id":"',
          '{"kind":"request","method":"tools/call","tool_name":"rm_rf","client_id":"',
        ),
    ],
    ["a blank", (l) => l.replace('"client_id":"c"', '"client_id": "c"')],
    ["members out of order", (l) => '{"v":1,' + l.slice(1).replace(',"v":1', "")],
    ["a number spelled another way", (l) => l.replace('"seq":7', '"seq":7.0')],
    ["a string escaped another way", (l) => l.replace('"client_id":"c"', '"client_id":"\\u0063"')],
  ];
  for (const [what, change] of variants) {
    const lines = session();
    const last = change(lines[6]!);
    assert.notEqual(last, lines[6], what);
    assert.deepEqual(JSON.parse(last).sig, JSON.parse(lines[6]!).sig, what);
    lines[6] = last;
    const r = check(lines);
    assert.deepEqual(r.problems.map(brief), [{ kind: "modified", seq: 7, seqEnd: 7 }], what);
    assert.equal(r.problems[0]!.detail, canonicalOnly, what);
    assert.deepEqual(check(lines, null).problems.map(brief), r.problems.map(brief), what);
  }
});

Deno.test("ChainVerifier takes the numbers a lossless parse keeps, and any member name, as canonical", () => {
  const c = new Chain();
  const lines = [c.event(EventMethod.Start)];
  const params = parseLossless(
    '{"big":12345678901234567890,"tiny":1E-400,"huge":1e400,"negzero":-0,"long":0.10000000000000000000000001,' +
      '"half":1.5,"__proto__":{"x":[-0,1e21]},"\\u2028":"\\ud800","sig":"not the record\'s"}',
  );
  assert.ok(isJsonObject(params));
  lines.push(c.record({ ...request(2), params }));
  lines.push(c.event(EventMethod.Stop));
  assert.match(lines[1]!, /"big":12345678901234567890,/);
  const r = check(lines);
  assert.deepEqual(r.problems, []);
  assert.deepEqual(check(lines, null).problems, []);

  // Members named like array indexes: JavaScript holds them in numeric order, RFC 8785 sorts
  // them as text.
  const d = new Chain();
  const indexed = [d.event(EventMethod.Start)];
  indexed.push(
    d.record({ ...request(2), params: { "9": "nine", "10": "ten", "a": [{ "2": 0 }] } }),
  );
  indexed.push(d.event(EventMethod.Stop));
  assert.match(indexed[1]!, /"params":\{"10":"ten","9":"nine","a"/);
  assert.deepEqual(check(indexed).problems, []);
  // In numeric order, as JSON.stringify would write them: the signature holds, the line is not
  // canonical.
  indexed[1] = indexed[1]!.replace('{"10":"ten","9":"nine"', '{"9":"nine","10":"ten"');
  const swapped = check(indexed);
  assert.deepEqual(swapped.problems.map(brief), [{ kind: "modified", seq: 2, seqEnd: 2 }]);
  assert.match(swapped.problems[0]!.detail, /^the stored line is not its record's canonical JSON/);
});

// ---- keys limited to the seqs they signed ----

Deno.test("ChainVerifier reports a record signed by a key outside the seqs its key file gives it as a wrong key", () => {
  const first = hmacSigner("the first secret, of thirty-two bytes", "k1");
  const second = hmacSigner("the second secret, of thirty-two bytes", "k2");
  const keys = "hmac k1 the first secret, of thirty-two bytes\n" +
    "hmac k2 the second secret, of thirty-two bytes\n";
  const limited = new KeyRing(
    parseKeyFile(`${keys}valid hmac k1 1-3\nvalid hmac k2 4-\n`, "keys.txt"),
  );
  const log = (signers: Signer[]) => {
    const c = new Chain();
    const lines: string[] = [];
    for (const [i, s] of signers.entries()) {
      c.signer = s;
      lines.push(i === 0 ? c.event(EventMethod.Start) : c.request());
    }
    c.signer = signers.at(-1)!;
    lines.push(c.event(EventMethod.Stop));
    return lines;
  };
  const honest = log([first, first, first, second, second]);
  assert.deepEqual(check(honest, limited).problems, []);

  // Whoever holds the retired key re-signs every record after its retirement.
  const forged = log([first, first, first, first, first]);
  const r = check(forged, limited);
  assert.deepEqual(r.problems.map(brief), [{ kind: "wrong key", seq: 4, seqEnd: 6 }]);
  assert.equal(
    r.problems[0]!.detail,
    "signed with hmac-sha256 key id k1, valid only for seq 1-3 (keys.txt:3)",
  );
  assert.deepEqual(r.keysUsed, [{ scheme: "hmac-sha256", keyId: "k1", records: 3 }]);
  // The same key file without valid lines cannot tell.
  assert.deepEqual(check(forged, new KeyRing(parseKeyFile(keys, "keys.txt"))).problems, []);

  // A new key before it came into use is as wrong.
  const early = check(log([first, second, first, second, second]), limited);
  assert.deepEqual(early.problems.map(brief), [
    { kind: "wrong key", seq: 2, seqEnd: 2 },
  ]);
  assert.equal(
    early.problems[0]!.detail,
    "signed with hmac-sha256 key id k2, valid only for seq 4 on (keys.txt:4)",
  );
});

// ---- problems so far, while lines may still follow ----

Deno.test("ChainVerifier.soFar: a log still being written has no problem so far; finish still reports the missing end", () => {
  const c = new Chain();
  const v = new ChainVerifier(KEY, { scope: "log" });
  v.line(c.event(EventMethod.Start), "audit.jsonl", 1, 0, true);
  for (let i = 2; i <= 4; i++) v.line(c.request(), "audit.jsonl", i, 0, true);
  const now = v.soFar();
  assert.deepEqual(now.problems, []);
  assert.equal(now.moreProblems, 0);
  assert.equal(now.records, 4);
  assert.equal(now.lastSeq, 4);
  assert.equal(now.endsClean, false);
  assert.equal(now.uncovered, 4);
  assert.equal(v.records, 4);
  assert.equal(v.lastSeq, 4);
  v.line(c.event(EventMethod.Stop), "audit.jsonl", 5, 0, true);
  assert.equal(v.soFar().endsClean, true);
  assert.equal(v.soFar().lastClean?.seq, 5);
  v.line(c.request(), "audit.jsonl", 6, 0, true);
  const after = v.soFar();
  assert.deepEqual(after.problems, []);
  assert.equal(after.uncovered, 1);
  assert.deepEqual(v.finish().problems.map(brief), [{ kind: "missing", seq: null, seqEnd: null }]);
});

Deno.test("ChainVerifier.soFar names a gap and a line that is no record, and leaves out a last line with no newline", () => {
  const c = new Chain();
  const lines = [c.event(EventMethod.Start), c.request(), c.request(), c.request(), c.request()];
  const v = new ChainVerifier(KEY, { scope: "log" });
  const feed = (text: string, terminated = true) => v.line(text, "audit.jsonl", 0, 0, terminated);
  feed(lines[0]!);
  feed(lines[1]!);
  // seq 3 replaced by a line that is no record (as finish names it: the seq after 2); seq 4 deleted.
  feed("not a record");
  feed(lines[4]!);
  feed('{"client_id":"c","cli', false);
  assert.deepEqual(v.soFar().problems.map(brief), [
    { kind: "modified", seq: 3, seqEnd: 3 },
    { kind: "missing", seq: 4, seqEnd: 4 },
  ]);
  // A line after it: the line with no newline was cut short.
  feed(c.request());
  assert.deepEqual(v.soFar().problems.map(brief), [
    { kind: "modified", seq: 3, seqEnd: 3 },
    { kind: "torn", seq: null, seqEnd: null },
    { kind: "missing", seq: 4, seqEnd: 4 },
  ]);
});

Deno.test("ChainVerifier.soFar changes nothing: finish reports what it would have without it", () => {
  const c = new Chain();
  const lines = [c.event(EventMethod.Start), c.request(), c.request(), c.request()];
  lines.push(modify(c.request()), c.request(), "garbage", c.request());
  lines.splice(2, 1);
  const plain = new ChainVerifier(KEY, { scope: "log" });
  const asked = new ChainVerifier(KEY, { scope: "log" });
  lines.forEach((text, i) => {
    plain.line(text, "audit.jsonl", i + 1, 0, true);
    asked.line(text, "audit.jsonl", i + 1, 0, true);
    asked.soFar();
  });
  const report = asked.finish();
  assert.deepEqual(report, plain.finish());
  assert.ok(report.problems.length >= 3);
});
