import assert from "node:assert/strict";
import {
  applyEdits,
  insertMember,
  removeMember,
  renderJson,
  replaceMemberValue,
  withBom,
} from "./edit.ts";
import { type JsoncDocument, type JsoncMember, memberOf, parseJsonc, toPlain } from "./jsonc.ts";
import { seededRandom } from "../testdata/seeded_random.ts";

/** A VS Code style file: BOM, CRLF, comments everywhere, trailing commas. */
const VSCODE = '\uFEFF// Workspace MCP servers\r\n{\r\n\t"inputs": [],\r\n\t"servers": {\r\n' +
  '\t\t// the files one\r\n\t\t"fs": {\r\n\t\t\t"command": "npx", /* pinned */\r\n' +
  '\t\t\t"args": ["-y", "@modelcontextprotocol/server-filesystem", "${workspaceFolder}"],\r\n' +
  '\t\t\t"env": { "DEBUG": "1" },\r\n\t\t}, // end fs\r\n' +
  '\t\t"remote": { "type": "http", "url": "https://example.com/mcp" },\r\n\t},\r\n}\r\n';

/** A Claude Desktop style file: plain JSON, two spaces, LF, no final newline. */
const CLAUDE = '{\n  "mcpServers": {\n    "everything": {\n      "command": "npx",\n' +
  '      "args": [\n        "-y",\n        "@modelcontextprotocol/server-everything"\n      ]\n' +
  '    },\n    "weather": {\n      "command": "uv",\n      "args": ["run", "weather.py"]\n    }\n  },\n' +
  '  "globalShortcut": "Ctrl+Space"\n}';

function object(
  doc: JsoncDocument,
  ...path: string[]
): { member: JsoncMember; doc: JsoncDocument } {
  let node = doc.root;
  let member: JsoncMember | undefined;
  for (const key of path) {
    member = memberOf(node, key);
    assert.ok(member, `no ${key}`);
    node = member.value;
  }
  assert.ok(member);
  return { member, doc };
}

function reparse(text: string): JsoncDocument {
  return parseJsonc(text);
}

Deno.test("applyEdits: no edits is the input; edits apply in any order; overlaps and bad spans throw", () => {
  assert.equal(applyEdits(VSCODE, []), VSCODE);
  const text = "abcdef";
  const edits = [
    { span: { start: 4, end: 6 }, text: "EF" },
    { span: { start: 0, end: 1 }, text: "A" },
    { span: { start: 2, end: 2 }, text: "+" },
    { span: { start: 1, end: 2 }, text: "" },
  ];
  assert.equal(applyEdits(text, edits), "A+cdEF");
  assert.throws(
    () =>
      applyEdits(text, [{ span: { start: 0, end: 3 }, text: "" }, {
        span: { start: 2, end: 4 },
        text: "",
      }]),
    /edits overlap: 0..3 and 2..4/,
  );
  assert.throws(
    () =>
      applyEdits(text, [{ span: { start: 2, end: 2 }, text: "x" }, {
        span: { start: 2, end: 2 },
        text: "y",
      }]),
    RangeError,
  );
  assert.throws(
    () => applyEdits(text, [{ span: { start: 3, end: 9 }, text: "" }]),
    /not within the text/,
  );
  assert.throws(() => applyEdits(text, [{ span: { start: 3, end: 2 }, text: "" }]), RangeError);
});

Deno.test("replacing a value in a BOM, CRLF, commented file changes only that value's bytes, and replacing it back restores every byte", () => {
  const doc = parseJsonc(VSCODE);
  const { member } = object(doc, "servers", "fs");
  const wrapped = { command: "mcp-audit", args: ["--server-id", "fs", "--", "npx", "-y", "pkg"] };
  const edit = replaceMemberValue(doc, member, wrapped, 2);
  const edited = applyEdits(doc.text, [edit]);
  assert.equal(
    edited.slice(0, member.value.span.start),
    doc.text.slice(0, member.value.span.start),
  );
  assert.equal(
    edited.slice(edited.length - (doc.text.length - member.value.span.end)),
    doc.text.slice(member.value.span.end),
  );
  assert.ok(!/(?<!\r)\n/.test(edited), "every line ending stays CRLF");
  assert.equal(
    edit.text,
    '{\r\n\t\t\t"command": "mcp-audit",\r\n\t\t\t"args": ["--server-id", "fs", "--", "npx", "-y", "pkg"]\r\n\t\t}',
  );
  const again = reparse(edited);
  assert.deepEqual(toPlain(object(again, "servers", "fs").member.value), wrapped);
  for (const comment of ["// Workspace MCP servers", "// the files one", "// end fs"]) {
    assert.ok(edited.includes(comment));
  }

  const back = object(again, "servers", "fs").member;
  const original = doc.text.slice(member.value.span.start, member.value.span.end);
  const restored = applyEdits(again.text, [{ span: back.value.span, text: original }]);
  assert.equal(restored, doc.text);
  assert.equal(withBom(doc, restored), VSCODE);
  assert.equal(withBom(again, restored), VSCODE.slice(1), "a text without a BOM gets none");
});

Deno.test("replacing a value follows the file's indent and short-array style", () => {
  const doc = parseJsonc(CLAUDE);
  assert.equal(doc.indent, "  ");
  const { member } = object(doc, "mcpServers", "weather");
  const edit = replaceMemberValue(doc, member, { command: "x", args: ["a"], env: {} }, 2);
  // Two arrays over lines and one on a line: a tie is written over lines, as JSON.stringify does.
  assert.equal(
    edit.text,
    '{\n      "command": "x",\n      "args": [\n        "a"\n      ],\n      "env": {}\n    }',
  );
  const inline = parseJsonc('{\n    "a": ["x", "y"],\n    "b": 1\n}');
  const b = object(inline, "b").member;
  assert.equal(
    replaceMemberValue(inline, b, { c: [1, 2], d: [{ e: [] }] }, 1).text,
    '{\n        "c": [1, 2],\n        "d": [\n            {\n                "e": []\n            }\n        ]\n    }',
  );
});

Deno.test("renderJson writes text that parses back to the value, in the document's style", () => {
  const r = seededRandom(99);
  const pieces = ["a", '"', "\\", "\n", "\u0000", "é", "😀", "\u2028", "__proto__"];
  const randomValue = (depth: number): unknown => {
    const pick = Math.floor(r() * (depth > 3 ? 4 : 6));
    if (pick === 0) {
      return Array.from(
        { length: Math.floor(r() * 4) },
        () => pieces[Math.floor(r() * pieces.length)],
      ).join("");
    }
    if (pick === 1) return (r() - 0.5) * 10 ** Math.floor(r() * 40 - 20);
    if (pick === 2) return r() < 0.5;
    if (pick === 3) return null;
    if (pick === 4) {
      return Array.from({ length: Math.floor(r() * 4) }, () => randomValue(depth + 1));
    }
    const out: Record<string, unknown> = {};
    for (let i = Math.floor(r() * 4); i > 0; i--) {
      Object.defineProperty(out, String(randomValue(4)), {
        value: randomValue(depth + 1),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  };
  const docs = [
    parseJsonc("{}"),
    parseJsonc('{\r\n\t"a": [\r\n\t\t1\r\n\t]\r\n}'),
    parseJsonc('{\n    "a": ["x"]\n}'),
    parseJsonc('{"a":{"b":1}}'),
  ];
  for (let i = 0; i < 1500; i++) {
    const value = randomValue(0);
    const doc = docs[i % docs.length]!;
    const depth = i % 3;
    const text = renderJson(value, doc, depth);
    assert.deepEqual(toPlain(parseJsonc(text).root), value, text);
    if (doc.newline === "\r\n") assert.ok(!/(?<!\r)\n/.test(text), text);
    if (i % docs.length === 3) {
      assert.ok(!text.includes("\n") || /\\n|\u2028/.test(JSON.stringify(value)), text);
    }
  }
  assert.equal(renderJson({ a: 1, b: undefined }, docs[0]!, 0), '{\n  "a": 1\n}');
  assert.equal(
    renderJson({ a: [1, "x"] }, docs[1]!, 1),
    '{\r\n\t\t"a": [\r\n\t\t\t1,\r\n\t\t\t"x"\r\n\t\t]\r\n\t}',
  );
  assert.equal(renderJson('\u2028"\\', docs[0]!, 0), JSON.stringify('\u2028"\\'));
});

Deno.test("renderJson refuses what JSON cannot hold", () => {
  const doc = parseJsonc("{}");
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  const cases: Array<[unknown, RegExp]> = [
    [undefined, /undefined/],
    [[1, undefined], /array item 1/],
    [NaN, /NaN/],
    [{ a: Infinity }, /Infinity/],
    [10n, /bigint/],
    [() => 1, /function/],
    [Symbol("s"), /symbol/],
    [new Date(0), /Date/],
    [new Map(), /Map/],
    ["\ud800", /lone surrogate/],
    [{ "\udc00": 1 }, /lone surrogate/],
    [cyclic, /deeper than 64 levels/],
  ];
  for (const [value, reason] of cases) {
    assert.throws(
      () => renderJson(value, doc, 0),
      (e) => e instanceof TypeError && reason.test(e.message),
    );
  }
});

Deno.test("insertMember appends in the file's style, and removeMember of it gives back the original bytes", () => {
  const cases: Array<[string, string[], string]> = [
    // Claude: the last server has no trailing comma.
    [
      CLAUDE,
      ["mcpServers"],
      '    "weather": {\n      "command": "uv",\n      "args": ["run", "weather.py"]\n    },\n    "new": {\n      "command": "mcp-audit",\n      "args": [\n        "--"\n      ]\n    }\n  },',
    ],
    // VS Code: trailing commas and comments after the last member.
    [
      VSCODE.slice(1),
      ["servers"],
      '\t\t"remote": { "type": "http", "url": "https://example.com/mcp" },\r\n\t\t"new": {\r\n\t\t\t"command": "mcp-audit",\r\n\t\t\t"args": ["--"]\r\n\t\t},\r\n\t},',
    ],
    // An empty object gets the member on its own line at the given depth.
    [
      '{\n  "mcpServers": {}\n}\n',
      ["mcpServers"],
      '  "mcpServers": {\n    "new": {\n      "command": "mcp-audit",\n      "args": [\n        "--"\n      ]\n    }\n  }\n}\n',
    ],
    // A comment after the last member stays after it, and the comma goes before the comment.
    [
      '{\n  "mcpServers": {\n    "a": {} // the a server\n  }\n}',
      ["mcpServers"],
      '    "a": {}, // the a server\n    "new": {',
    ],
    // An object on one line stays on one line.
    [
      '{\n  "mcpServers": {"a": 1, "b": 2}\n}',
      ["mcpServers"],
      '  "mcpServers": {"a": 1, "b": 2, "new": {"command": "mcp-audit", "args": ["--"]}}\n',
    ],
    // A file on one line stays on one line.
    [
      '{"mcpServers":{"a":{"command":"x"}}}',
      ["mcpServers"],
      '{"mcpServers":{"a":{"command":"x"},"new":{"command":"mcp-audit","args":["--"]}}}',
    ],
    // Comments in an empty object stay.
    [
      '{\n  "mcpServers": {\n    // none yet\n  }\n}',
      ["mcpServers"],
      '    // none yet\n    "new": {',
    ],
    // The root object.
    ["{}", [], '{\n  "new": {'],
  ];
  const value = { command: "mcp-audit", args: ["--"] };
  for (const [source, path, expected] of cases) {
    const doc = parseJsonc(source);
    const target = path.length === 0 ? doc.root : object(doc, ...path).member.value;
    const edit = insertMember(doc, target, "new", value, path.length);
    const inserted = applyEdits(doc.text, [edit]);
    assert.ok(inserted.includes(expected), `${JSON.stringify(source)} became\n${inserted}`);
    const again = parseJsonc(inserted);
    const object2 = path.length === 0 ? again.root : object(again, ...path).member.value;
    assert.deepEqual(toPlain(memberOf(object2, "new")!.value), value);
    const before = toPlain(doc.root);
    const removed = applyEdits(again.text, [
      removeMember(again, object2, memberOf(object2, "new")!),
    ]);
    assert.equal(removed, doc.text, `${JSON.stringify(source)}: insert then remove`);
    assert.deepEqual(toPlain(parseJsonc(removed).root), before);
  }
});

Deno.test("insertMember refuses a key already there and a target that is not an object", () => {
  const doc = parseJsonc('{"a": 1, "b": []}');
  assert.throws(() => insertMember(doc, doc.root, "a", 2, 0), /already has a member "a"/);
  assert.throws(() => insertMember(doc, memberOf(doc.root, "b")!.value, "x", 2, 1), /to a array/);
});

Deno.test("removeMember takes the member, one comma and its own line, and keeps every comment", () => {
  const source =
    '{\r\n  // head\r\n  "a": 1, // about a\r\n  /* before b */\r\n  "b": {\r\n    "c": 2\r\n  },\r\n  "c": 3 // last\r\n}\r\n';
  const doc = parseJsonc(source);
  const remove = (key: string) => {
    const edited = applyEdits(doc.text, [removeMember(doc, doc.root, memberOf(doc.root, key)!)]);
    const plain = toPlain(parseJsonc(edited).root);
    for (const comment of ["// head", "// about a", "/* before b */", "// last"]) {
      assert.ok(edited.includes(comment), `${comment} kept when removing ${key}:\n${edited}`);
    }
    return { edited, plain };
  };
  assert.deepEqual(remove("b"), {
    edited:
      '{\r\n  // head\r\n  "a": 1, // about a\r\n  /* before b */\r\n  "c": 3 // last\r\n}\r\n',
    plain: { a: 1, c: 3 },
  });
  assert.deepEqual(remove("c"), {
    edited:
      '{\r\n  // head\r\n  "a": 1, // about a\r\n  /* before b */\r\n  "b": {\r\n    "c": 2\r\n  }\r\n  // last\r\n}\r\n',
    plain: { a: 1, b: { c: 2 } },
  });
  assert.deepEqual(remove("a").plain, { b: { c: 2 }, c: 3 });
  assert.ok(
    remove("a").edited.startsWith('{\r\n  // head\r\n  // about a\r\n  /* before b */\r\n  "b"'),
  );

  const inline = parseJsonc('{"a": 1, "b": 2, "c": 3}');
  const drop = (key: string) =>
    applyEdits(inline.text, [removeMember(inline, inline.root, memberOf(inline.root, key)!)]);
  assert.equal(drop("a"), '{"b": 2, "c": 3}');
  assert.equal(drop("b"), '{"a": 1, "c": 3}');
  assert.equal(drop("c"), '{"a": 1, "b": 2}');
  const only = parseJsonc('{\n  "servers": {\n    "a": 1\n  }\n}');
  const servers = object(only, "servers").member.value;
  assert.equal(
    applyEdits(only.text, [removeMember(only, servers, memberOf(servers, "a")!)]),
    '{\n  "servers": {}\n}',
  );
  const trailing = parseJsonc('{\n  "a": 1,\n  "b": 2,\n}');
  assert.equal(
    applyEdits(trailing.text, [
      removeMember(trailing, trailing.root, memberOf(trailing.root, "b")!),
    ]),
    '{\n  "a": 1,\n}',
  );
  const stranger = parseJsonc('{"x": 1}');
  assert.throws(() => removeMember(doc, doc.root, memberOf(stranger.root, "x")!), /not a member/);
});

Deno.test("random insertions and removals in generated files keep every other member and parse", () => {
  const r = seededRandom(4242);
  const layouts = [2, 4, "\t", undefined];
  for (let i = 0; i < 400; i++) {
    const servers: Record<string, unknown> = {};
    const count = Math.floor(r() * 4);
    for (let s = 0; s < count; s++) {
      servers[`s${s}`] = { command: "npx", args: ["-y", `p${s}`], env: { K: String(s) } };
    }
    let text = JSON.stringify(
      { mcpServers: servers, other: [1, 2] },
      null,
      layouts[i % layouts.length],
    );
    if (i % 3 === 0) text = text.replaceAll("\n", "\r\n");
    if (i % 5 === 0) text = text.replace(/(\n\s*"s\d": \{)/g, "\n// a comment$1");
    const doc = parseJsonc(text);
    const target = object(doc, "mcpServers").member.value;
    assert.ok(target.kind === "object");
    const expected = structuredClone(servers);
    let edit;
    if (count > 0 && r() < 0.5) {
      const victim = target.members[Math.floor(r() * count)]!;
      delete expected[victim.key];
      edit = removeMember(doc, target, victim);
    } else {
      expected.added = { command: "mcp-audit", args: ["--"] };
      edit = insertMember(doc, target, "added", expected.added, 1);
    }
    const edited = applyEdits(doc.text, [edit]);
    const again = parseJsonc(edited);
    assert.deepEqual(toPlain(again.root), { mcpServers: expected, other: [1, 2] }, edited);
    assert.equal(again.newline, doc.newline);
    if (text.includes("// a comment")) {
      assert.ok(edited.includes("// a comment"), edited);
    }
  }
});
