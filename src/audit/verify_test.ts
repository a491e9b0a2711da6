import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { type AnchorToCheck, ChainVerifier, type Problem, type Report } from "./verify.ts";
import { AuditLog } from "./chain.ts";
import { JsonlStore } from "./storage/jsonl.ts";
import { type AuditFields, EventMethod } from "./record.ts";
import {
  ed25519Signer,
  ed25519Verifier,
  generateEd25519,
  hmacSigner,
  type SignatureVerifier,
  type Signer,
} from "./signing.ts";

const KEY = hmacSigner("0123456789abcdef0123456789abcdef");
const enc = new TextEncoder();

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
 * Runs each step against a real JSONL log in a temp dir, reopening the log between steps (as a
 * restarted proxy would), and returns the stored lines.
 */
function build(
  signer: Signer | null,
  ...steps: ((log: AuditLog, path: string) => void)[]
): string[] {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-verify-" });
  try {
    const path = `${dir}/audit.jsonl`;
    let t = Date.UTC(2026, 0, 1);
    let n = 0;
    for (const step of steps) {
      const log = new AuditLog({
        store: new JsonlStore(path, false),
        signer,
        now: () => t++,
        newId: () => "01JD" + String(++n).padStart(22, "0"),
        clientId: "c",
        serverId: "s",
        transport: "stdio",
      });
      step(log, path);
      log.close();
    }
    return Deno.readTextFileSync(path).replace(/\n$/, "").split("\n");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

/** start, five requests (seq 2-6), stop: seq n is on line n. */
function session(signer: Signer | null = KEY): string[] {
  return build(signer, (log) => {
    log.event(EventMethod.Start, { version: "test" });
    for (let i = 2; i <= 6; i++) log.append(request(i));
    log.event(EventMethod.Stop, { last_seq: 7 });
  });
}

function check(
  lines: string[],
  key: SignatureVerifier | null = KEY,
  lastTerminated = true,
): Report {
  const v = new ChainVerifier(key);
  let offset = 0;
  lines.forEach((text, i) => {
    const terminated = i < lines.length - 1 || lastTerminated;
    v.line(text, "audit.jsonl", i + 1, offset, terminated);
    offset += enc.encode(text).length + (terminated ? 1 : 0);
  });
  return v.finish();
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
  assert.equal(r.signaturesChecked, true);
  assert.deepEqual(r.notes, []);
  assert.equal(r.moreProblems, 0);
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
});

Deno.test("ChainVerifier names the line of the record whose bytes changed, not the next one", () => {
  const lines = session();
  lines[3] = modify(lines[3]!);
  const [p] = check(lines, null).problems;
  assert.ok(p);
  assert.equal(p.seq, 4);
  assert.equal(p.line, 4, "seq 4 is on line 4");
});

Deno.test("ChainVerifier reports a removed record as missing", () => {
  const lines = session();
  lines.splice(3, 1);
  const r = check(lines);
  assert.deepEqual(r.problems.map(brief), [{ kind: "missing", seq: 4, seqEnd: 4 }]);
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

Deno.test("ChainVerifier reports a recovered torn line as torn, with the recovery as a note", () => {
  const lines = build(
    KEY,
    (log, path) => {
      log.event(EventMethod.Start, {});
      log.append(request(2));
      log.append(request(3));
      log.close();
      Deno.writeTextFileSync(path, '{"client_id":"c","dir', { append: true });
    },
    // The restarted proxy writes audit/recover on open, then runs and stops cleanly.
    (log) => {
      log.event(EventMethod.Start, {});
      log.event(EventMethod.Stop, {});
    },
  );
  assert.equal(lines.length, 7);
  assert.ok(lines[4]!.includes(EventMethod.Recover));
  const r = check(lines);
  assert.deepEqual(r.problems.map((p) => [p.kind, p.seq, p.line]), [["torn", null, 4]]);
  assert.ok(r.notes.some((n) => n.includes("recovery")));
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

  const missing = session();
  missing.splice(2, 3);
  assert.deepEqual(check(missing).problems.map(brief), [{ kind: "missing", seq: 3, seqEnd: 5 }]);
});

Deno.test("ChainVerifier without a key collapses modified records found through prev links", () => {
  const modified = session();
  for (const i of [2, 3, 4]) modified[i] = modify(modified[i]!);
  assert.deepEqual(check(modified, null).problems.map(brief), [
    { kind: "modified", seq: 3, seqEnd: 5 },
  ]);
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

Deno.test("ChainVerifier reports a log that does not end in audit/stop or a checkpoint", () => {
  const lines = session().slice(0, 6);
  const r = check(lines);
  assert.equal(r.problems.length, 1);
  assert.equal(r.problems[0]!.kind, "missing");
  assert.equal(r.problems[0]!.seq, null);
  assert.ok(r.problems[0]!.detail.includes("without audit/stop"), r.problems[0]!.detail);
  assert.equal(r.endsWith, null);

  const checkpoint = build(KEY, (log) => {
    log.event(EventMethod.Start, {});
    log.append(request(2));
    log.event(EventMethod.Checkpoint, {});
  });
  const ok = check(checkpoint);
  assert.deepEqual(ok.problems, []);
  assert.equal(ok.endsWith, EventMethod.Checkpoint);
});

Deno.test("ChainVerifier notes a restart that had no clean audit/stop before it", () => {
  const lines = build(KEY, (log) => {
    log.event(EventMethod.Start, {});
    log.append(request(2));
    log.event(EventMethod.Start, {});
    log.event(EventMethod.Stop, {});
  });
  const r = check(lines);
  assert.deepEqual(r.problems, []);
  assert.ok(r.notes.some((n) => n.startsWith("seq 3:") && n.includes("restarted")), r.notes.join());

  const clean = build(KEY, (log) => {
    log.event(EventMethod.Start, {});
    log.event(EventMethod.Stop, {});
    log.event(EventMethod.Start, {});
    log.event(EventMethod.Stop, {});
  });
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
  // A proxy run without a key, then one with it, on the same log.
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-verify-" });
  try {
    const path = `${dir}/audit.jsonl`;
    let n = 0;
    for (const signer of [null, KEY, null]) {
      const log = new AuditLog({
        store: new JsonlStore(path, false),
        signer,
        now: () => Date.UTC(2026, 0, 1) + n,
        newId: () => "01JD" + String(++n).padStart(22, "0"),
        clientId: "c",
        serverId: "s",
        transport: "stdio",
      });
      log.event(EventMethod.Start, {});
      log.event(EventMethod.Stop, {});
      log.close();
    }
    const lines = Deno.readTextFileSync(path).trimEnd().split("\n");
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
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

/** A log whose file was deleted after seq 2: the lines of the new file. */
function continuedAfterDeletion(): string[] {
  return build(KEY, (log, path) => {
    log.event(EventMethod.Start, {});
    log.append(request(2));
    log.flush();
    Deno.removeSync(path);
    log.append(request(3));
    log.stop({});
  });
}

Deno.test({
  name: "ChainVerifier accepts a log that starts mid-chain with the audit/recover of a new file",
  ignore: Deno.build.os === "windows",
  fn() {
    const lines = continuedAfterDeletion();
    assert.ok(lines[0]!.includes(EventMethod.Recover));
    const r = check(lines);
    assert.deepEqual(r.problems, []);
    assert.equal(r.continuesAfter, 2);
    assert.equal(r.continuesBecause, "deleted");
    assert.equal(r.firstSeq, 3);
    assert.ok(r.notes.some((n) => n.includes("starts mid-chain") && n.includes("deleted")));
  },
});

Deno.test("ChainVerifier reports the records before a log that starts mid-chain without saying so", () => {
  const r = check(session().slice(3));
  assert.deepEqual(r.problems.map(brief), [{ kind: "missing", seq: 1, seqEnd: 3 }]);
  assert.equal(r.continuesAfter, null);

  // A recovery after a crash is not a new file: cutting the log there shows.
  const lines = build(
    KEY,
    (log, path) => {
      log.event(EventMethod.Start, {});
      log.close();
      Deno.writeTextFileSync(path, '{"client_id":"c","dir', { append: true });
    },
    (log) => log.event(EventMethod.Stop, {}),
  );
  const cut = lines.slice(2);
  assert.ok(cut[0]!.includes(EventMethod.Recover));
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
  return {
    seq: p.seq,
    hash: createHash("sha256").update(text).digest("hex"),
    id: p.id,
    ts: p.ts,
    file: "audit.anchor",
  };
}

function checkAgainst(lines: string[], anchor: AnchorToCheck): Report {
  const v = new ChainVerifier(KEY, { anchor });
  lines.forEach((l, i) => v.line(l, "audit.jsonl", i + 1, 0, true));
  return v.finish();
}

Deno.test("ChainVerifier with an anchor reports a log cut back to an earlier clean stop", () => {
  const two = build(
    KEY,
    (log) => {
      log.event(EventMethod.Start, {});
      log.event(EventMethod.Stop, {});
    },
    (log) => {
      log.event(EventMethod.Start, {});
      log.append(request(4));
      log.event(EventMethod.Stop, {});
    },
  );
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
  const other = build(KEY, (log) => {
    log.event(EventMethod.Start, { version: "other" });
    for (let i = 2; i <= 6; i++) log.append(request(i));
    log.event(EventMethod.Stop, { last_seq: 7 });
  });
  const r = checkAgainst(session(), anchorOf(other[6]!));
  assert.deepEqual(r.problems.map(brief), [{ kind: "modified", seq: 7, seqEnd: 7 }]);
});

Deno.test({
  name: "ChainVerifier with an anchor checks the prev of a log that starts just after it",
  ignore: Deno.build.os === "windows",
  fn() {
    const lines = continuedAfterDeletion();
    const first = JSON.parse(lines[0]!);
    const good = { seq: 2, hash: first.prev, id: "x", ts: "t", file: "audit.anchor" };
    assert.deepEqual(checkAgainst(lines, good).problems, []);
    const bad = { ...good, hash: "0".repeat(64) };
    assert.deepEqual(checkAgainst(lines, bad).problems.map(brief), [
      { kind: "modified", seq: 3, seqEnd: 3 },
    ]);
    const older = { ...good, seq: 1 };
    assert.ok(checkAgainst(lines, older).notes.some((n) => n.includes("before this log's first")));
  },
});

Deno.test("ChainVerifier notes what a run-time audit/recover says happened, not a crash", () => {
  const lines = build(KEY, (log, path) => {
    log.event(EventMethod.Start, {});
    log.append(request(2));
    log.flush();
    Deno.writeTextFileSync(path, "junk\n", { append: true });
    log.append(request(3));
    log.stop({});
  });
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
