import assert from "node:assert/strict";
import { cefLine, extensionValue, headerField, truncate } from "./cef.ts";
import { exactRecord } from "./exact_record.ts";
import { replaceControls } from "./controls.ts";
import {
  ANY_LINE_BREAK,
  chain,
  CONTROL_TEXTS,
  fields,
  RAW_CONTROL,
  sample,
  sampleLog,
} from "./testdata/records.ts";
import type { Decision } from "../audit/record.ts";
import { VERSION } from "../version.ts";

/**
 * A CEF reader written from the format's description (HPE "Implementing ArcSight CEF", v23),
 * not from the encoder: `CEF:Version|Vendor|Product|Version|Class|Name|Severity|Extension`;
 * in the header `\|` and `\\` are escapes and an unescaped `|` ends a field; in the extension,
 * keys are alphanumeric and a pair starts where ` key=` appears with an unescaped `=`, and values
 * unescape `\\`, `\=`, `\n`, `\r`. Any other backslash sequence is malformed.
 */
function parseCef(line: string): { header: string[]; ext: Map<string, string> } {
  assert.ok(line.startsWith("CEF:"), "starts with CEF:");
  assert.ok(!/[\r\n]/.test(line), "one line");
  const header: string[] = [];
  let field = "";
  let i = 4;
  while (header.length < 7) {
    assert.ok(i < line.length, "header has 7 fields and an extension");
    const c = line[i]!;
    if (c === "\\") {
      const next = line[i + 1];
      assert.ok(next === "\\" || next === "|", `bad header escape \\${next}`);
      field += next;
      i += 2;
    } else if (c === "|") {
      header.push(field);
      field = "";
      i++;
    } else {
      field += c;
      i++;
    }
  }
  const ext = new Map<string, string>();
  const rest = line.slice(i);
  const keys = [...rest.matchAll(/(?:^| )([A-Za-z0-9_]+)=/g)];
  keys.forEach((m, k) => {
    const start = m.index! + m[0].length;
    const end = k + 1 < keys.length ? keys[k + 1]!.index! : rest.length;
    const raw = rest.slice(start, end);
    let value = "";
    for (let j = 0; j < raw.length; j++) {
      if (raw[j] !== "\\") {
        value += raw[j];
        continue;
      }
      const next = raw[++j];
      const plain = ({ "\\": "\\", "=": "=", n: "\n", r: "\r" } as Record<string, string>)[
        next ?? ""
      ];
      assert.ok(plain !== undefined, `bad extension escape \\${next} in ${m[1]}`);
      value += plain;
    }
    assert.ok(!ext.has(m[1]!), `key ${m[1]} twice`);
    ext.set(m[1]!, value);
  });
  return { header, ext };
}

const GOLDEN_DENIED =
  `CEF:0|mcp-audit|mcp-audit|${VERSION}|policy-deny|tools/call delete_file denied by policy|7|rt=1795578582219 externalId=01KB0000000000000000000007 cat=request act=deny outcome=failure reason=Destructive filesystem operations are blocked suser=claude-desktop requestClientApplication=claude-ai/0.1.0 destinationServiceName=filesystem app=MCP deviceDirection=0 deviceProcessName=mcp-audit cs1Label=mcpMethod cs1=tools/call cs2Label=toolName cs2=delete_file cs3Label=mcpSession cs3=s-1 cs4Label=jsonrpcId cs4=7 cs5Label=policyRule cs5=rules[0] cs6Label=recordSig cs6=hmac-sha256:74c52629:790b2e0b7262e035c784f3f80f52ecfd8dce49e9c4e534e6ec52011b42fe4f4d cn3Label=seq cn3=7 msg=tools/call delete_file denied by policy: Destructive filesystem operations are blocked`;

Deno.test("a denied tools/call maps to the golden CEF line", () => {
  assert.equal(cefLine(exactRecord(sample("denied"))), GOLDEN_DENIED);
});

Deno.test("every record's line parses: 7 header fields, seq and the record id present, the severity in range", () => {
  for (const read of sampleLog()) {
    const { header, ext } = parseCef(cefLine(exactRecord(read)));
    assert.deepEqual(header.slice(0, 4), ["0", "mcp-audit", "mcp-audit", VERSION]);
    const severity = Number(header[6]);
    assert.ok(Number.isInteger(severity) && severity >= 0 && severity <= 10);
    assert.equal(ext.get("cn3Label"), "seq");
    assert.equal(ext.get("cn3"), String(read.record.seq));
    assert.equal(ext.get("externalId"), read.record.id);
    assert.equal(ext.get("rt"), String(Date.parse(read.record.ts)));
    assert.equal(ext.get("cat"), read.record.kind);
    assert.equal(ext.get("cs6"), read.record.sig);
  }
});

Deno.test("class id and severity: policy-deny 7, rate-limited 5, error and tool error 3, ok 1", () => {
  const want: Record<string, [string, string, string | undefined]> = {
    "denied": ["policy-deny", "7", "failure"],
    "pinning denial": ["policy-deny", "7", "failure"],
    "rate limited": ["rate-limited", "5", "failure"],
    "denied answer": ["error", "3", "failure"],
    "tool error": ["response", "3", "failure"],
    "initialize answered": ["response", "1", "success"],
    "tools/call allowed": ["request", "1", undefined],
    "notification": ["notification", "1", undefined],
    "start": ["event", "1", undefined],
  };
  for (const [name, [cls, severity, outcome]] of Object.entries(want)) {
    const { header, ext } = parseCef(cefLine(exactRecord(sample(name))));
    assert.equal(header[4], cls, name);
    assert.equal(header[6], severity, name);
    assert.equal(ext.get("outcome"), outcome, name);
  }
});

Deno.test("HTTP upstreams give dhost or dst and dpt, and proto TCP; stdio gives neither", () => {
  const named = parseCef(cefLine(exactRecord(sample("resources/read over http")))).ext;
  assert.equal(named.get("dhost"), "mcp.example.com");
  assert.equal(named.get("dpt"), "443");
  assert.equal(named.get("proto"), "TCP");
  const v6 = parseCef(cefLine(exactRecord(sample("resources/subscribe to an IPv6 upstream")))).ext;
  assert.equal(v6.get("dst"), "::1");
  assert.equal(v6.get("dpt"), "8443");
  const stdio = parseCef(cefLine(exactRecord(sample("denied")))).ext;
  assert.equal(stdio.has("proto") || stdio.has("dhost") || stdio.has("dst"), false);
  assert.equal(stdio.get("app"), "MCP");
});

const NASTY = "a|b=c\\d\ne\r\nf \\= \\n |= 😀 é \u202e \u0000 end";

function hostile(over: { reason?: string; tool?: string; session?: string; client?: string }) {
  const decision: Decision = { action: "deny", rule: 2, reason: over.reason ?? NASTY };
  const [read] = chain([{
    name: "hostile",
    fields: fields({
      jsonrpc_id: "id|=\\\n",
      method: "tools/call",
      tool_name: over.tool ?? NASTY,
      session: over.session ?? NASTY,
      decision,
    }),
  }], over.client === undefined ? {} : { clientId: over.client });
  return read!;
}

Deno.test("hostile values (|, =, \\, LF, CR, unicode) round-trip through a CEF reader", () => {
  const read = hostile({ client: NASTY });
  const line = cefLine(read.record);
  const { header, ext } = parseCef(line);
  assert.equal(header.length, 7);
  // The NUL is no CEF character: it reads back as U+FFFD, all else as it was.
  const nasty = NASTY.replace("\u0000", "\ufffd");
  // The header has no line breaks: they became spaces.
  assert.equal(
    header[5],
    `tools/call ${nasty.replace(/\r\n|[\r\n]/g, " ")} denied by policy`,
  );
  assert.equal(ext.get("reason"), nasty);
  assert.equal(ext.get("cs2"), nasty);
  assert.equal(ext.get("cs3"), nasty);
  assert.equal(ext.get("suser"), nasty);
  assert.equal(ext.get("cs4"), JSON.stringify("id|=\\\n"));
  assert.equal(ext.get("msg"), `tools/call ${nasty} denied by policy: ${nasty}`);
  // Nothing a value held became a key of its own.
  assert.deepEqual(
    [...ext.keys()].filter((k) => !/^(?:cs\d(?:Label)?|cn\d(?:Label)?)$/.test(k)).sort(),
    [
      "act",
      "app",
      "cat",
      "destinationServiceName",
      "deviceDirection",
      "deviceProcessName",
      "externalId",
      "msg",
      "outcome",
      "reason",
      "requestClientApplication",
      "rt",
      "suser",
    ],
  );
});

Deno.test("control characters never reach the line raw: one event a line for every reader, U+FFFD in their place", () => {
  for (const text of CONTROL_TEXTS) {
    const read = hostile({ reason: text, tool: text, session: text, client: text });
    const line = cefLine({ ...read.record, jsonrpc_id: text });
    assert.ok(!RAW_CONTROL.test(line), `${JSON.stringify(text)}: ${JSON.stringify(line)}`);
    assert.equal(line.split(ANY_LINE_BREAK).length, 1, JSON.stringify(text));
    const { header, ext } = parseCef(line);
    // CR and LF are CEF escapes in the extension and spaces in the header; the rest U+FFFD.
    const shown = replaceControls(text);
    for (const key of ["reason", "cs2", "cs3", "suser"]) {
      assert.equal(ext.get(key), shown.replace(/ +$/, ""), `${key} of ${JSON.stringify(text)}`);
    }
    assert.equal(header[5], `tools/call ${shown.replace(/\r\n|[\r\n]/g, " ")} denied by policy`);
    // The id is JSON text: its escapes keep the string exact.
    assert.equal(JSON.parse(ext.get("cs4")!), text);
  }
  const { ext } = parseCef(cefLine(hostile({ reason: "\u001b[2J\u001b[31mRED" }).record));
  assert.equal(ext.get("reason"), "\ufffd[2J\ufffd[31mRED");
});

Deno.test("a value that looks like more pairs stays one value", () => {
  const read = hostile({ reason: "x act=allow outcome=success cn3=1" });
  const { ext } = parseCef(cefLine(read.record));
  assert.equal(ext.get("act"), "deny");
  assert.equal(ext.get("outcome"), "failure");
  assert.equal(ext.get("cn3"), "1");
  assert.equal(ext.get("reason"), "x act=allow outcome=success cn3=1");
  const slash = hostile({ reason: "ends with \\", tool: "also\\" });
  const parsed = parseCef(cefLine(slash.record));
  assert.equal(parsed.ext.get("reason"), "ends with \\");
  assert.equal(parsed.ext.get("suser"), "claude-desktop");
  assert.equal(parsed.header[5], "tools/call also\\ denied by policy");
});

Deno.test("a 10 KB reason is cut to 1023 characters, msg too, and the Name to 512", () => {
  const reason = "r".repeat(10_000) + " tail";
  const read = hostile({ reason, tool: "t".repeat(600) });
  const { header, ext } = parseCef(cefLine(read.record));
  assert.equal(ext.get("reason"), "r".repeat(1023));
  assert.equal(ext.get("msg")!.length, 1023);
  assert.equal(header[5]!.length, 512);
  assert.equal(ext.get("cs2"), "t".repeat(600));
});

Deno.test("a cut never splits an escape: 2000 '=' give 1023 of them, each escaped", () => {
  const read = hostile({ reason: "=".repeat(2000) });
  const line = cefLine(read.record);
  assert.ok(line.includes(" reason=" + "\\=".repeat(1023) + " "), "1023 escaped =");
  assert.equal(parseCef(line).ext.get("reason"), "=".repeat(1023));
  const slashes = hostile({ reason: "\\".repeat(1500) });
  assert.equal(parseCef(cefLine(slashes.record)).ext.get("reason"), "\\".repeat(1023));
});

Deno.test("a cut never splits a surrogate pair", () => {
  // The pair would straddle the 1023rd code unit: it is left out whole.
  const read = hostile({ reason: "a".repeat(1022) + "😀" + "b" });
  const reason = parseCef(cefLine(read.record)).ext.get("reason")!;
  assert.equal(reason, "a".repeat(1022));
  assert.ok(!/[\ud800-\udbff]$/.test(reason));
  const fits = hostile({ reason: "a".repeat(1021) + "😀" + "b" });
  assert.equal(parseCef(cefLine(fits.record)).ext.get("reason"), "a".repeat(1021) + "😀");
  assert.equal(truncate("😀😀", 3), "😀");
  assert.equal(truncate("😀😀", 4), "😀😀");
});

Deno.test("trailing spaces leave a value, since a reader cannot tell them from the separator", () => {
  const read = hostile({ reason: "padded   " });
  const line = cefLine(read.record);
  assert.ok(line.includes(" reason=padded suser="), line);
  assert.equal(parseCef(line).ext.get("reason"), "padded");
});

Deno.test("header and extension escaping differ as the format says", () => {
  assert.equal(headerField("a|b\\c=d\r\ne\nf", 100), "a\\|b\\\\c=d e f");
  assert.equal(extensionValue("a|b\\c=d\r\ne", 100), "a|b\\\\c\\=d\\r\\ne");
  assert.equal(headerField("a\u0000b\u2028c\u0085d\te", 100), "a\ufffdb\ufffdc\ufffdd\te");
  assert.equal(
    extensionValue("a\u0000b\u2028c\u0085d\te\u001b", 100),
    "a\ufffdb\ufffdc\ufffdd\te\ufffd",
  );
});
