import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { parseJsonc, toPlain } from "./jsonc.ts";
import { applyEdits } from "./edit.ts";
import {
  hasServerUrlEntries,
  type Outcome,
  parseWrapped,
  ShapeError,
  unwrapDocument,
  wrapDocument,
  type WrapOptions,
  wrappedArgs,
} from "./wrap.ts";

const CONFIG = "/home/me/.config/mcp-audit/config.yaml";
const BINARY: WrapOptions["launcher"] = () => ({ command: "/opt/bin/mcp-audit", args: [] });
const SOURCE: WrapOptions["launcher"] = (u) => ({
  command: "/usr/bin/deno",
  args: [
    "run",
    "--allow-read=/cfg",
    u.kind === "stdio" ? `--allow-run=${u.command},kill` : `--allow-net=${u.url.host}`,
    "/src/main.ts",
  ],
});

function wrap(
  text: string,
  options: Partial<WrapOptions> = {},
): { text: string; outcomes: Outcome[] } {
  const doc = parseJsonc(text);
  const out = wrapDocument(doc, {
    clientId: "cursor",
    sharedConfig: CONFIG,
    launcher: BINARY,
    ...options,
  });
  return { text: applyEdits(doc.text, out.edits), outcomes: out.outcomes };
}

function unwrap(text: string, only?: Set<string>): { text: string; outcomes: Outcome[] } {
  const doc = parseJsonc(text);
  const out = unwrapDocument(doc, { only });
  return { text: applyEdits(doc.text, out.edits), outcomes: out.outcomes };
}

function plain(text: string): unknown {
  return toPlain(parseJsonc(text).root);
}

function results(outcomes: Outcome[]): string[] {
  return outcomes.map((o) =>
    `${o.result} ${o.server}${o.reason === undefined ? "" : ": " + o.reason}`
  );
}

const STDIO = `{
  "mcpServers": {
    "fs": {
      "command": "npx",
      "args": [
        "-y",
        "@modelcontextprotocol/server-filesystem",
        "/tmp"
      ],
      "env": { "A": "1" },
      "cwd": "/work",
      "x-unknown": [1, 2]
    }
  }
}
`;

Deno.test("wrap rewrites a stdio entry's command and args and leaves every other member alone", () => {
  const { text, outcomes } = wrap(STDIO, { launcher: SOURCE });
  assertEquals(results(outcomes), ["wrapped fs"]);
  assertEquals(plain(text), {
    mcpServers: {
      fs: {
        command: "/usr/bin/deno",
        args: [
          "run",
          "--allow-read=/cfg",
          "--allow-run=npx,kill",
          "/src/main.ts",
          "--server-id",
          "fs",
          "--client-id",
          "cursor",
          "--config",
          CONFIG,
          "--no-dashboard",
          "--no-metrics",
          "--",
          "npx",
          "-y",
          "@modelcontextprotocol/server-filesystem",
          "/tmp",
        ],
        env: { A: "1" },
        cwd: "/work",
        "x-unknown": [1, 2],
      },
    },
  });
  // The original items keep their lines; ours are laid out the same way before them.
  assert(text.includes('        "--",\n        "npx",\n        "-y",\n'), text);
  assertEquals(unwrap(text).text, STDIO);
});

Deno.test("wrap then unwrap gives the same bytes for args on one line, absent, and empty", () => {
  for (
    const entry of [
      `{"command": "npx", "args": ["-y", "pkg"]}`,
      `{"command": "npx", "args": ["only"]}`,
      `{"command": "/bin/server"}`,
      `{\n      "command": "/bin/server"\n    }`,
      `{"command": "npx", "args": []}`,
      `{"args": ["-y", "pkg"], "command": "npx", "env": {}}`,
    ]
  ) {
    const text = `{\n  "mcpServers": {\n    "s": ${entry}\n  }\n}\n`;
    for (const launcher of [BINARY, SOURCE]) {
      const wrapped = wrap(text, { launcher });
      assertEquals(results(wrapped.outcomes), ["wrapped s"], entry);
      const args = (plain(wrapped.text) as { mcpServers: { s: { args: string[] } } }).mcpServers.s
        .args;
      assertEquals(parseWrapped(args)?.upstream.kind, "stdio");
      assertEquals(unwrap(wrapped.text).text, text, entry);
    }
  }
});

Deno.test("wrapping a wrapped entry changes nothing", () => {
  const once = wrap(STDIO).text;
  const twice = wrap(once, { launcher: SOURCE });
  assertEquals(twice.text, once);
  assertEquals(results(twice.outcomes), ["already wrapped fs"]);
});

Deno.test("a remote entry becomes the stdio-to-HTTP bridge in the URL's place, and comes back", () => {
  const text = `{
  "servers": {
    "gh": {
      "type": "http",
      "url": "https://api.example.com/mcp/",
      "note": "kept"
    }
  }
}`;
  const { text: wrapped, outcomes } = wrap(text, { clientId: "vscode", launcher: SOURCE });
  assertEquals(results(outcomes), ["wrapped gh"]);
  const entry = (plain(wrapped) as { servers: Record<string, Record<string, unknown>> }).servers
    .gh!;
  assertEquals(Object.keys(entry), ["type", "command", "args", "note"]);
  assertEquals(entry.type, "stdio");
  assertEquals((entry.args as string[]).slice(-2), ["--upstream", "https://api.example.com/mcp/"]);
  assert((entry.args as string[]).includes("--allow-net=api.example.com"));
  assertEquals(unwrap(wrapped).text, text);
});

Deno.test("Windsurf's serverUrl entries come back as serverUrl", () => {
  const text = `{"mcpServers": {"figma": {"serverUrl": "https://mcp.figma.com/mcp"}}}`;
  const wrapped = wrap(text, { clientId: "windsurf" });
  assertEquals(results(wrapped.outcomes), ["wrapped figma"]);
  assertEquals(unwrap(wrapped.text).text, text);
  // The same entry for a client that writes "url" would not come back as it was: skipped.
  assertEquals(wrap(text, { clientId: "cursor" }).outcomes[0]?.result, "skipped");
});

Deno.test("entries the bridge cannot carry, or that start nothing, are skipped with the reason", () => {
  const text = `{"mcpServers": {
    "auth": {"url": "https://x.example/mcp", "headers": {"Authorization": "Bearer t"}},
    "sse": {"type": "sse", "url": "https://x.example/sse"},
    "none": {"disabled": true},
    "both": {"command": "a", "url": "https://x.example/mcp"},
    "badargs": {"command": "a", "args": "b c"},
    "badurl": {"url": "not a url"},
    "ok": {"command": "a"}
  }}`;
  const { outcomes } = wrap(text);
  assertEquals(results(outcomes), [
    "skipped auth: its headers (Authorization) cannot be sent by the stdio-to-HTTP bridge; " +
    "wrapping it would drop them",
    'skipped sse: type "sse": the bridge speaks Streamable HTTP only (type "http")',
    "skipped none: neither command nor url",
    "skipped both: has both command and url",
    "skipped badargs: args is not a list of strings",
    "skipped badurl: url is not a URL the bridge can reach",
    "wrapped ok",
  ]);
});

Deno.test("an entry another tool wrapped is wrapped around, and unwrap gives it back", () => {
  const text = `{"mcpServers": {"remote": {"command": "npx", "args": ["-y", "mcp-remote", ` +
    `"https://x.example/sse"]}, "docker": {"command": "docker", "args": ["run", "-i", "--rm", "mcp/fetch"]}}}`;
  const wrapped = wrap(text, { launcher: SOURCE });
  assertEquals(results(wrapped.outcomes), ["wrapped remote", "wrapped docker"]);
  const servers = (plain(wrapped.text) as { mcpServers: Record<string, { args: string[] }> })
    .mcpServers;
  assertEquals(parseWrapped(servers.docker!.args)?.upstream, {
    kind: "stdio",
    argv: ["docker", "run", "-i", "--rm", "mcp/fetch"],
  });
  assertEquals(unwrap(wrapped.text).text, text);
});

Deno.test("argv that only looks like ours is not unwrapped", () => {
  const ours = wrappedArgs([], "s", "c", "/cfg", { kind: "stdio", argv: ["x"] });
  assertEquals(parseWrapped(ours)?.serverId, "s");
  assertEquals(parseWrapped(["run", "-i", "img", ...ours]), undefined, "inside docker run");
  assertEquals(parseWrapped(ours.slice(0, -1)), undefined, "nothing after --");
  assertEquals(parseWrapped([...ours.slice(0, 8), "--upstream", "u", "extra"]), undefined);
  const text = `{"mcpServers": {"d": {"command": "docker", "args": ${
    JSON.stringify(["run", "-i", "img", ...ours])
  }}}}`;
  assertEquals(results(unwrap(text).outcomes), ["not wrapped d"]);
  assertEquals(unwrap(text).text, text);
});

Deno.test("an entry edited after wrapping is still unwrapped, its values in the file's layout", () => {
  const wrapped = wrap(STDIO).text;
  const edited = wrapped.replace('"--server-id",\n        "fs"', '"--server-id", "fs"');
  assert(edited !== wrapped);
  const back = unwrap(edited);
  assertEquals(back.outcomes[0]?.result, "unwrapped");
  assert(back.outcomes[0]?.reason?.includes("changed after it was wrapped"));
  assertEquals(plain(back.text), plain(STDIO));
  // An argument added at the end after wrapping is kept, byte for byte elsewhere.
  const added = wrapped.replace('"/tmp"', '"/tmp",\n        "/srv"');
  assertEquals(unwrap(added).text, STDIO.replace('"/tmp"', '"/tmp",\n        "/srv"'));
});

Deno.test("--only picks servers by name, for wrap and unwrap", () => {
  const text = `{"mcpServers": {"a": {"command": "a"}, "b": {"command": "b"}}}`;
  const wrapped = wrap(text, { only: new Set(["b"]) });
  assertEquals(results(wrapped.outcomes), ["wrapped b"]);
  assert(wrapped.text.includes(`"a": {"command": "a"}`));
  const all = wrap(text).text;
  const half = unwrap(all, new Set(["a"]));
  assertEquals(results(half.outcomes), ["unwrapped a"]);
  assertEquals(unwrap(half.text).text, text);
});

Deno.test("Claude Code's user file: the top list and every project's list", () => {
  const text = `{
  "numStartups": 3,
  "mcpServers": {"top": {"type": "stdio", "command": "a", "args": [], "env": {}}},
  "projects": {
    "/p": {"mcpServers": {"inner": {"command": "b"}}, "allowedTools": []},
    "/q": {"allowedTools": []}
  }
}`;
  const wrapped = wrap(text, { clientId: "claude-code" });
  assertEquals(
    wrapped.outcomes.map((o) => `${o.result} ${o.server} ${o.where}`),
    ["wrapped top mcpServers", "wrapped inner projects./p.mcpServers"],
  );
  assertEquals(unwrap(wrapped.text).text, text);
});

Deno.test("comments, trailing commas, CRLF and a BOM survive the round trip", () => {
  const text = '\uFEFF{\r\n\t// servers\r\n\t"servers": {\r\n\t\t"m": {\r\n\t\t\t"type": "stdio",' +
    '\r\n\t\t\t"command": "npx", // the runner\r\n\t\t\t"args": [\r\n\t\t\t\t"-y", /* pkg */\r\n' +
    '\t\t\t\t"pkg",\r\n\t\t\t],\r\n\t\t},\r\n\t},\r\n}\r\n';
  const doc = parseJsonc(text);
  const out = wrapDocument(doc, { clientId: "vscode", sharedConfig: CONFIG, launcher: SOURCE });
  const wrapped = applyEdits(doc.text, out.edits);
  assert(!/[^\r]\n/.test(wrapped), "CRLF only");
  assert(wrapped.includes("// the runner") && wrapped.includes("/* pkg */"));
  const back = parseJsonc("\uFEFF" + wrapped);
  assertEquals("\uFEFF" + applyEdits(back.text, unwrapDocument(back).edits), text);
});

Deno.test("files that are not client configurations are refused with line and column", () => {
  const cases: [string, string][] = [
    ["[]", "1:1: the file holds a list, not a JSON object"],
    ['{"other": 1}', '1:1: no "mcpServers" or "servers" object at the top'],
    ['{\n  "mcpServers": []\n}', '2:17: "mcpServers" is a list, not an object'],
    [
      '{"mcpServers": {\n  "a": {"command": "a"},\n  "b": "npx b"\n}}',
      '3:8: server "b" is a string',
    ],
  ];
  for (const [text, message] of cases) {
    throws(() => wrap(text), (e) => e instanceof ShapeError && e.message.startsWith(message));
    throws(() => unwrap(text), ShapeError);
  }
});

Deno.test("an entry whose args only look like ours is someone else's: wrapped around, and unwrap leaves its command", () => {
  const ours = wrappedArgs([], "evil", "c", CONFIG, { kind: "stdio", argv: ["npx", "srv"] });
  const text = `{"mcpServers": {"evil": {"command": "/tmp/evil", "args": ${
    JSON.stringify(ours)
  }}}}`;
  const wrapped = wrap(text);
  assertEquals(results(wrapped.outcomes), ["wrapped evil"]);
  const args = (plain(wrapped.text) as { mcpServers: { evil: { args: string[] } } }).mcpServers
    .evil.args;
  assertEquals(parseWrapped(args)?.upstream, { kind: "stdio", argv: ["/tmp/evil", ...ours] });
  assertEquals(unwrap(wrapped.text).text, text);
  assertEquals(results(unwrap(text).outcomes), ["not wrapped evil"]);
});

Deno.test("a wrapped entry edited so it no longer reads as wrap wrote it is left alone by wrap and unwrap", () => {
  const once = wrap(STDIO).text;
  const edited = once.replace('"--no-metrics",\n', "");
  assert(edited !== once);
  const again = wrap(edited);
  assertEquals(again.text, edited);
  assertEquals(again.outcomes.map((o) => o.result), ["edited"]);
  const back = unwrap(edited);
  assertEquals(back.text, edited);
  assertEquals(back.outcomes.map((o) => o.result), ["edited"]);
  assert(back.outcomes[0]?.reason?.includes("not in the form wrap writes"));
  // mcp-audit set up by hand is behind mcp-audit already: never nested.
  const byHand = `{"mcpServers": {"h": {"command": "/usr/bin/mcp-audit", "args": ["--", "x"]}}}`;
  assertEquals(wrap(byHand).text, byHand);
  assert(results(wrap(byHand).outcomes)[0]?.startsWith("skipped h: it runs mcp-audit already"));
});

Deno.test("args [] and args absent wrap differently, and each unwraps to itself", () => {
  for (const entry of [`{"command": "x", "args": []}`, `{"command": "x"}`]) {
    const text = `{"mcpServers": {"s": ${entry}}}`;
    const wrapped = wrap(text);
    assertEquals(results(wrapped.outcomes), ["wrapped s"]);
    assertEquals(unwrap(wrapped.text).text, text);
  }
  assert(
    wrap(`{"mcpServers": {"s": {"command": "x", "args": []}}}`).text.includes(
      '"--no-metrics=true"',
    ),
  );
});

Deno.test("a file mixing one-line and multi-line entries round-trips whole; a new args follows its entry's layout", () => {
  const text =
    `{\n  "mcpServers": {\n    "one": {"command": "c0"},\n    "multi": {\n      "command": "c1"\n    },\n    "e": {"command": "c2", "args": []}\n  }\n}\n`;
  const wrapped = wrap(text);
  assertEquals(results(wrapped.outcomes), ["wrapped one", "wrapped multi", "wrapped e"]);
  const lines = wrapped.text.split("\n");
  assert(lines.some((l) => l.startsWith('    "one": {"command": "/opt/bin/mcp-audit", "args": [')));
  assert(lines.some((l) => l.startsWith('    "e": {"command": "/opt/bin/mcp-audit", "args": [')));
  assert(lines.includes('      "args": ['), "multi-line: one item per line");
  assertEquals(unwrap(wrapped.text).text, text);
});

Deno.test("remote URLs holding credentials, a query or ${...} are skipped with the reason; the type is quoted once", () => {
  const text = `{"mcpServers": {
    "user": {"url": "https://alice:pw@h.example/mcp"},
    "query": {"url": "https://h.example/mcp?token=t"},
    "vars": {"url": "https://h.example/\${input:tenant}/mcp"},
    "other": {"type": "streamable-http", "url": "https://h.example/mcp"},
    "typed": {"type": 3, "url": "https://h.example/mcp"},
    "empty": {"command": ""}
  }}`;
  const { text: out, outcomes } = wrap(text);
  assertEquals(out, text);
  assertEquals(results(outcomes), [
    "skipped user: its url holds a user name or password, which would sit on the proxy's " +
    "command line, readable by every local user",
    "skipped query: its url has a query (?...), which may carry a token; on the proxy's " +
    "command line every local user could read it",
    "skipped vars: its url holds ${...}, which the client fills in when it starts the server; " +
    "the bridge would be given the text as written",
    'skipped other: type "streamable-http": only "http" remote entries are wrapped',
    'skipped typed: type is a number: only "http" remote entries are wrapped',
    "skipped empty: command is empty: there is nothing to start",
  ]);
});

Deno.test("a launcher that cannot start an entry skips it with its reason", () => {
  const text =
    `{"mcpServers": {"a": {"command": "x", "env": {"LD_PRELOAD": "/l.so"}}, "b": {"command": "y"}}}`;
  const { outcomes } = wrap(text, {
    launcher: (u) =>
      u.kind === "stdio" && u.envNames.includes("LD_PRELOAD")
        ? { skip: "no LD_ here" }
        : { command: "/opt/bin/mcp-audit", args: [] },
  });
  assertEquals(results(outcomes), ["skipped a: no LD_ here", "wrapped b"]);
});

Deno.test("Windsurf is told by an entry's serverUrl member, not by text in a comment", () => {
  assertEquals(
    hasServerUrlEntries(parseJsonc(`{"mcpServers": {"f": {"serverUrl": "https://x"}}}`)),
    true,
  );
  assertEquals(
    hasServerUrlEntries(
      parseJsonc(`{// "serverUrl": "https://x"\n"mcpServers": {"f": {"url": "https://x"}}}`),
    ),
    false,
  );
});

Deno.test("strings written with escapes are skipped with a reason that says so", () => {
  const text = `{"mcpServers": {"s": {"command": "\\u0078"}}}`;
  assertEquals(results(wrap(text).outcomes), [
    "skipped s: its strings are written with escapes that wrap would not write the same way, " +
    "so unwrap could not give the file back byte for byte; left as it is",
  ]);
});
