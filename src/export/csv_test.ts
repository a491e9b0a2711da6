import assert from "node:assert/strict";
import { CSV_COLUMNS, CSV_EOL, CSV_HEADER, csvCell, csvRow } from "./csv.ts";
import { exactRecord } from "./exact_record.ts";
import {
  ANY_LINE_BREAK,
  chain,
  CONTROL_TEXTS,
  fields,
  RAW_CONTROL,
  sample,
  sampleLog,
} from "./testdata/records.ts";

/**
 * An RFC 4180 reader, from the RFC: records end with CRLF; a field is either plain (no comma,
 * quote, CR or LF) or enclosed in quotes, with quotes inside doubled.
 */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let i = 0;
  for (;;) {
    let field = "";
    if (text[i] === '"') {
      i++;
      for (;;) {
        const close = text.indexOf('"', i);
        assert.ok(close >= 0, "unterminated quoted field");
        field += text.slice(i, close);
        if (text[close + 1] === '"') {
          field += '"';
          i = close + 2;
        } else {
          i = close + 1;
          break;
        }
      }
    } else {
      const m = /[^,"\r\n]*/y;
      m.lastIndex = i;
      field = m.exec(text)![0];
      i += field.length;
    }
    row.push(field);
    if (text[i] === ",") {
      i++;
      continue;
    }
    assert.equal(text.slice(i, i + 2), "\r\n", `record ends with CRLF at ${i}`);
    i += 2;
    rows.push(row);
    row = [];
    if (i === text.length) return rows;
  }
}

const GOLDEN_DENIED =
  `7,01KB0000000000000000000007,2026-11-25T03:49:42.219Z,request,client_to_server,stdio,s-1,7,tools/call,delete_file,deny,0,Destructive filesystem operations are blocked,,,,claude-desktop,filesystem,,abababababababababababababababababababababababababababababababab,2f9a5552fe7e9855a73b84d9a1d241341ff1b5c141d95c07983d0264871e4b00,hmac-sha256:74c52629:790b2e0b7262e035c784f3f80f52ecfd8dce49e9c4e534e6ec52011b42fe4f4d,"{""arguments"":{""path"":""/etc/passwd""},""name"":""delete_file""}",null`;

Deno.test("a denied tools/call maps to the golden CSV row under the header", () => {
  assert.equal(
    CSV_HEADER,
    "seq,id,ts,kind,direction,transport,session,jsonrpc_id,method,tool_name,decision_action," +
      "decision_rule,decision_reason,error_code,error_message,duration_ms,client_id,server_id," +
      "upstream,wire_sha256,prev,sig,params,result",
  );
  assert.equal(csvRow(exactRecord(sample("denied"))), GOLDEN_DENIED);
});

Deno.test("a whole log reads back through an RFC 4180 reader: one row per record, every column", () => {
  const log = sampleLog();
  const text = [CSV_HEADER, ...log.map((r) => csvRow(exactRecord(r)))].join(CSV_EOL) + CSV_EOL;
  const rows = parseCsv(text);
  assert.deepEqual(rows[0], [...CSV_COLUMNS]);
  assert.equal(rows.length, log.length + 1);
  rows.slice(1).forEach((row, i) => {
    const r = log[i]!.record;
    assert.equal(row.length, CSV_COLUMNS.length);
    const cell = (c: (typeof CSV_COLUMNS)[number]) => row[CSV_COLUMNS.indexOf(c)];
    assert.equal(cell("seq"), String(r.seq));
    assert.equal(cell("id"), r.id);
    assert.equal(cell("prev"), r.prev);
    assert.equal(cell("sig"), r.sig);
  });
});

Deno.test("params and result are the stored JSON text, numbers no double holds included", () => {
  const read = sample("big numbers");
  const reparsed = { record: JSON.parse(read.line), line: read.line };
  const [row] = parseCsv(csvRow(exactRecord(reparsed)) + CSV_EOL);
  const cell = (c: (typeof CSV_COLUMNS)[number]) => row![CSV_COLUMNS.indexOf(c)];
  assert.equal(cell("params"), '{"arguments":{"x":1e400,"y":-0.5},"name":"calc"}');
  assert.ok(read.line.includes(`"params":${cell("params")},`));
  assert.equal(cell("jsonrpc_id"), "18446744073709551616");
  assert.equal(cell("result"), "null");
});

Deno.test("formula injection is neutralised with a leading quote; numbers in numeric columns are not", () => {
  const hostile = sample("hostile");
  const [row] = parseCsv(csvRow(exactRecord(hostile)) + CSV_EOL);
  const cell = (c: (typeof CSV_COLUMNS)[number]) => row![CSV_COLUMNS.indexOf(c)];
  assert.equal(cell("method"), "'=cmd|' /C calc'!A0");
  // CR and LF are U+FFFD: each row stays one line.
  assert.equal(cell("tool_name"), "'@evil|name=x\\y\ufffdz");
  assert.equal(cell("session"), "'+SUM(1,2)");
  assert.equal(
    cell("decision_reason"),
    "'-bad\ufffd\ufffdreason | with = and \\ and 😀 and \u202e",
  );
  // A string id is its JSON text, so "-1" starts with a quote and stays apart from the number -1.
  assert.equal(cell("jsonrpc_id"), '"-1"');
  assert.equal(cell("params"), '{"10":1,"9":2,"a,b":"\\"quoted\\""}');

  const [error] = parseCsv(csvRow(exactRecord(sample("unknown error"))) + CSV_EOL);
  assert.equal(error![CSV_COLUMNS.indexOf("error_code")], "-32600");
  const [notification] = parseCsv(csvRow(exactRecord(sample("notification"))) + CSV_EOL);
  assert.equal(notification![CSV_COLUMNS.indexOf("params")], '{"progress":1,"total":-1}');

  assert.equal(csvCell("=1+1"), "'=1+1");
  assert.equal(csvCell("+1"), "'+1");
  assert.equal(csvCell("-1"), "'-1");
  assert.equal(csvCell("-1", true), "-1");
  assert.equal(csvCell("@x"), "'@x");
  assert.equal(csvCell("\tx"), "'\tx");
  assert.equal(csvCell("\rx"), "\ufffdx");
  assert.equal(csvCell("a=b"), "a=b");
  assert.equal(csvCell('say "hi", then\nleave'), '"say ""hi"", then\ufffdleave"');
});

Deno.test("empty cells for what a record does not have; duration and rule as numbers", () => {
  const [row] = parseCsv(csvRow(exactRecord(sample("initialize answered"))) + CSV_EOL);
  const cell = (c: (typeof CSV_COLUMNS)[number]) => row![CSV_COLUMNS.indexOf(c)];
  assert.equal(cell("duration_ms"), "12.345");
  assert.equal(cell("tool_name"), "");
  assert.equal(cell("decision_action"), "");
  assert.equal(cell("error_code"), "");
  assert.equal(cell("jsonrpc_id"), "0");
  const [allowed] = parseCsv(csvRow(exactRecord(sample("tools/call allowed"))) + CSV_EOL);
  assert.equal(allowed![CSV_COLUMNS.indexOf("decision_rule")], "1");
  const [filtered] = parseCsv(csvRow(exactRecord(sample("tools/list filtered"))) + CSV_EOL);
  assert.equal(filtered![CSV_COLUMNS.indexOf("decision_rule")], "");
});

Deno.test("control characters never reach a row raw: text cells hold U+FFFD in their place, JSON cells escapes", () => {
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
      params: { name: text, arguments: { [text]: text } },
    }),
  })));
  const text = [CSV_HEADER, ...reads.map((r) => csvRow(exactRecord(r)))].join(CSV_EOL) + CSV_EOL;
  assert.ok(!RAW_CONTROL.test(text.replaceAll(CSV_EOL, "")), JSON.stringify(text));
  // One line a row, whichever line breaks a reader splits on.
  assert.equal(text.split(ANY_LINE_BREAK).length, reads.length + 2);
  const rows = parseCsv(text);
  assert.equal(rows.length, reads.length + 1);
  rows.slice(1).forEach((row, i) => {
    const hostile = CONTROL_TEXTS[i]!;
    const cell = (c: (typeof CSV_COLUMNS)[number]) => row[CSV_COLUMNS.indexOf(c)];
    const shown = hostile.replace(new RegExp(RAW_CONTROL.source, "g"), "\ufffd");
    for (const c of ["tool_name", "session", "error_message", "decision_reason"] as const) {
      assert.equal(cell(c), shown, `${c} of ${JSON.stringify(hostile)}`);
    }
    // JSON text reads back as the exact value.
    assert.equal(JSON.parse(cell("jsonrpc_id")!), hostile);
    assert.deepEqual(JSON.parse(cell("params")!), {
      name: hostile,
      arguments: { [hostile]: hostile },
    });
  });
  // A line break first is no formula start once replaced, and needs no quotes.
  assert.equal(csvCell("\n=1+1"), "\ufffd=1+1");
  assert.equal(csvCell("\u0000@x"), "\ufffd@x");
});
