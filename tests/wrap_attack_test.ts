/**
 * `mcp-audit wrap` / `unwrap` under attack: odd but legal client files (comments everywhere, BOM,
 * CRLF, escapes, one-line files), hostile server names, entries that only look wrapped, entries
 * edited after wrapping, remote URLs carrying credentials, file-system oddities (links, FIFOs,
 * devices, read-only folders, backup names taken, two runs at once) and the shared configuration
 * (missing, without signing, a folder, its log folder missing, two first runs at once).
 *
 * Each test states a promise of docs/clients.md (or of the issue): a client's file is the user's,
 * so it is never lost or corrupted; a server is never left unaudited while wrap says it is
 * wrapped; a wrapped entry runs with no more permission than stated, and starts.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { wrapCommand, type WrapIo } from "../src/cli/wrap_command.ts";
import { parseCommand } from "../src/cli/args.ts";
import { parseJsonc, toPlain } from "../src/clients/jsonc.ts";
import { parseWrapped, type WrappedArgv } from "../src/clients/wrap.ts";
import { cleanEnv, tempDir } from "./helpers.ts";

const REPO = new URL("../", import.meta.url).pathname;
const MAIN = `${REPO}main.ts`;
/** A release binary's path: its wrapped entries carry no permission flags. */
const BINARY = "/usr/local/bin/mcp-audit";

/** What one run of the command said and did. */
interface Run {
  code: number;
  out: string[];
  err: string[];
  text: string;
}

/** A user with a home under `root` and a shared configuration whose log folder exists. */
class User {
  readonly config: string;
  readonly logDir: string;
  constructor(readonly root: string, readonly execPath = BINARY) {
    this.config = `${root}/shared.yaml`;
    this.logDir = `${root}/log`;
    Deno.mkdirSync(this.logDir, { recursive: true });
    Deno.writeTextFileSync(this.config, `audit:\n  path: ${this.logDir}/audit.jsonl\n`);
  }

  io(out: string[], err: string[], env: Record<string, string> = {}): WrapIo {
    return {
      env: { HOME: `${this.root}/home`, ...env },
      os: "linux",
      cwd: this.root,
      launcher: { execPath: this.execPath, mainPath: MAIN },
      out: (line) => out.push(line),
      err: (line) => err.push(line),
    };
  }

  /** Writes `text` to a new file under the root (named `name`); returns its path. */
  file(text: string | Uint8Array, name = "mcp.json"): string {
    const dir = `${this.root}/${crypto.randomUUID()}`;
    Deno.mkdirSync(dir);
    const path = `${dir}/${name}`;
    if (typeof text === "string") Deno.writeTextFileSync(path, text);
    else Deno.writeFileSync(path, text);
    return path;
  }

  async run(kind: "wrap" | "unwrap", path: string, extra: string[] = []): Promise<Run> {
    const out: string[] = [];
    const err: string[] = [];
    const args = ["--file", path, ...(kind === "wrap" ? ["--config", this.config] : []), ...extra];
    const code = await wrapCommand(kind, args, this.io(out, err));
    return { code, out, err, text: readText(path) };
  }
}

function readText(path: string): string {
  try {
    if (!Deno.statSync(path).isFile) return "<not a file>";
    return new TextDecoder("utf-8", { ignoreBOM: true }).decode(Deno.readFileSync(path));
  } catch {
    return "<unreadable>";
  }
}

function bytesAndTime(path: string): [Uint8Array, number | undefined] {
  return [Deno.readFileSync(path), Deno.statSync(path).mtime?.getTime()];
}

function dirOf(path: string): string {
  return path.slice(0, path.lastIndexOf("/"));
}

function names(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The plain entry `name` under `key` (`mcpServers` or `servers`) of a file's text. */
function entry(text: string, name: string, key = "mcpServers"): Record<string, unknown> {
  const root = toPlain(parseJsonc(text).root);
  const list = isRecord(root) ? root[key] : undefined;
  const e = isRecord(list) ? list[name] : undefined;
  assert(isRecord(e), `no entry ${name} in ${text}`);
  return e;
}

function stringsOf(v: unknown): string[] {
  assert(Array.isArray(v) && v.every((s) => typeof s === "string"), `not strings: ${v}`);
  return v;
}

/** The wrapped form of an entry, read back from its args (fails when it is not ours). */
function wrappedOf(text: string, name: string, key = "mcpServers"): WrappedArgv {
  const w = parseWrapped(stringsOf(entry(text, name, key).args));
  assert(w !== undefined, `${name} is not wrapped in ${text}`);
  return w;
}

/**
 * Wrap, wrap again, unwrap: the second wrap changes nothing, unwrap gives the original bytes, and
 * the dry run's diff, applied by `patch`, gives what wrap wrote.
 */
async function roundTrip(user: User, label: string, original: string | Uint8Array): Promise<Run> {
  const path = user.file(original);
  const before = Deno.readFileSync(path);
  const dry = await user.run("wrap", path, ["--dry-run"]);
  assertEquals(dry.code, 0, `${label}: dry run: ${dry.err.join("\n")}`);
  assertEquals(Deno.readFileSync(path), before, `${label}: the dry run wrote`);
  const wrapped = await user.run("wrap", path);
  assertEquals(wrapped.code, 0, `${label}: ${wrapped.err.join("\n")}`);
  const wrappedBytes = Deno.readFileSync(path);
  const diff = dry.out.find((l) => l.startsWith("--- "));
  if (diff !== undefined) {
    const copy = `${dirOf(path)}/copy`;
    Deno.writeFileSync(copy, before);
    Deno.writeTextFileSync(`${dirOf(path)}/diff`, diff);
    const patched = await new Deno.Command("patch", {
      args: ["--binary", "-s", copy, `${dirOf(path)}/diff`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(patched.code, 0, `${label}: ${new TextDecoder().decode(patched.stdout)}`);
    assertEquals(Deno.readFileSync(copy), wrappedBytes, `${label}: patch gives wrap's file`);
  }
  const again = await user.run("wrap", path);
  assertEquals(again.code, 0, label);
  assertEquals(Deno.readFileSync(path), wrappedBytes, `${label}: wrapping twice changed it`);
  const back = await user.run("unwrap", path);
  assertEquals(back.code, 0, `${label}: ${back.err.join("\n")}`);
  assertEquals(
    new TextDecoder("utf-8", { ignoreBOM: true }).decode(Deno.readFileSync(path)),
    new TextDecoder("utf-8", { ignoreBOM: true }).decode(before),
    `${label}: unwrap is not byte-identical`,
  );
  assertEquals(Deno.readFileSync(path), before, `${label}: unwrap is not byte-identical`);
  return wrapped;
}

function wrappedNames(run: Run): string[] {
  return run.out.filter((l) => l.startsWith("wrapped ")).map((l) => l.slice(8));
}

const S = (members: string): string => `{"mcpServers": {${members}}}`;

// ---------------------------------------------------------------------------------------------
// JSONC: odd but legal files round-trip exactly.

Deno.test("odd but legal JSONC files wrap every server, wrap again unchanged, unwrap byte for byte, and the dry run's diff patches to wrap's output", async () => {
  await using dir = await tempDir("wrap-attack-jsonc");
  const user = new User(dir.path);
  const cases: [string, string | Uint8Array, string[]][] = [
    [
      "comments in every position",
      `/* head */ {"mcpServers" /*k*/ : /*v*/ {"fs" /*c*/ : /*d*/ {"command" /*e*/ : "npx", ` +
      `"args": [/*f*/ "-y", // g\n "x" /*h*/, ]/*i*/,} /* after last */ ,}}// eof, no newline`,
      ["fs"],
    ],
    [
      "a line comment before the first arg",
      `{"mcpServers": {"fs": {"command": "npx", "args": [ // first\n  "-y", "x"]}}}`,
      ["fs"],
    ],
    [
      "a block comment spanning lines between members",
      `{"mcpServers": {"fs": {"command": "npx", /* a\n b */ "args": ["-y"]}}}\n`,
      ["fs"],
    ],
    [
      "BOM and CRLF, tabs, no args",
      '\uFEFF{\r\n\t"mcpServers": {\r\n\t\t"fs": {\r\n\t\t\t"command": "npx"\r\n\t\t}\r\n\t}\r\n}\r\n',
      ["fs"],
    ],
    [
      "mixed line endings, no final newline",
      '{\r\n  "mcpServers": {\n    "fs": {\r\n      "command": "npx"\n    }\r\n  }\n}',
      ["fs"],
    ],
    [
      "trailing commas everywhere (VS Code)",
      `{\n\t"servers": {\n\t\t"a": {\n\t\t\t"type": "stdio",\n\t\t\t"command": "x",\n\t\t\t"args": ["1",],\n\t\t},\n\t\t"b": {\n\t\t\t"command": "y", // no args\n\t\t},\n\t},\n}\n`,
      ["a", "b"],
    ],
    [
      "minified, one line",
      `{"mcpServers":{"a":{"command":"x"},"b":{"command":"y","args":["1","2"]}}}`,
      ["a", "b"],
    ],
    [
      "an escaped server name",
      S(`"\\u0066s": {"command": "npx", "args": ["a"]}`),
      ["fs"],
    ],
    [
      "non-string env values and numbers with exponents elsewhere",
      S(`"a": {"command": "x", "env": {"N": 1e5, "B": true, "Z": null}, "timeout": 6E+4}`),
      ["a"],
    ],
    [
      "args that hold our own flags",
      S(`"a": {"command": "x", "args": ["--", "--server-id", "z", "--upstream", "http://h"]}`),
      ["a"],
    ],
    [
      "deeply nested unrelated members",
      `{"x": ${"[".repeat(40)}1${"]".repeat(40)}, "mcpServers": {"a": {"command": "x"}}}`,
      ["a"],
    ],
    [
      "unicode in names, commands and args",
      S(`"日本": {"command": "/opt/サーバー/bin", "args": ["é", "\\ud83d\\ude00", "😀"]}`),
      ["日本"],
    ],
    [
      "a multi-line array of args, one per line",
      `{\n  "mcpServers": {\n    "a": {\n      "command": "x",\n      "args": [\n        "1",\n        "2"\n      ]\n    },\n    "b": {\n      "command": "y"\n    }\n  }\n}\n`,
      ["a", "b"],
    ],
    [
      "~/.claude.json projects whose paths hold quotes, dots and unicode",
      JSON.stringify(
        {
          numStartups: 3,
          projects: {
            '/home/u/"q"': { mcpServers: { a: { command: "x" } } },
            "/home/ü/p.x": { history: [], mcpServers: { b: { command: "y", args: ["1"] } } },
            "/home/u/none": { mcpServers: {} },
          },
        },
        null,
        2,
      ),
      ['a (projects./home/u/"q".mcpServers)', "b (projects./home/ü/p.x.mcpServers)"],
    ],
  ];
  for (const [label, text, servers] of cases) {
    const run = await roundTrip(user, label, text);
    assertEquals(wrappedNames(run).sort(), [...servers].sort(), `${label}: ${run.out.join("\n")}`);
  }
});

Deno.test("an entry with an empty args list is wrapped, and unwrap gives the empty list back byte for byte", async () => {
  // `"args": []` is a common shape (Claude Desktop entries running a binary). Today both
  // "no args" and "args []" unwrap candidates wrap back to the same text, so wrap skips the entry
  // ("unwrap would not give it back byte for byte") and the server stays unaudited.
  await using dir = await tempDir("wrap-attack-empty-args");
  const user = new User(dir.path);
  for (
    const text of [
      S(`"bin": {"command": "/opt/server", "args": []}`),
      `{\n  "mcpServers": {\n    "bin": {\n      "command": "/opt/server",\n      "args": []\n    }\n  }\n}\n`,
    ]
  ) {
    const run = await roundTrip(user, text, text);
    assertEquals(wrappedNames(run), ["bin"], run.out.join("\n"));
  }
});

Deno.test("a one-line entry whose only member has a trailing comma is wrapped and unwrapped exactly", async () => {
  await using dir = await tempDir("wrap-attack-one-line-comma");
  const user = new User(dir.path);
  const text = S(`"a": {"command": "x",},`);
  const run = await roundTrip(user, text, text);
  assertEquals(wrappedNames(run), ["a"], run.out.join("\n"));
});

Deno.test("a file mixing one-line and multi-line entries without args unwraps byte for byte", async () => {
  // Wrap checks each entry's round trip with only that entry wrapped; the style the file's arrays
  // vote for changes once every entry is, so unwrap no longer finds the exact original of the
  // multi-line entry and leaves `"args": []` in it ("the entry changed after it was wrapped").
  await using dir = await tempDir("wrap-attack-mixed-layout");
  const user = new User(dir.path);
  for (
    const text of [
      `{\n  "mcpServers": {\n    "one": {"command": "c0"},\n    "multi": {\n      "command": "c1"\n    }\n  }\n}\n`,
      `{\r\n\t"servers": {\r\n\t\t"multi": {\r\n\t\t\t"command": "c1",\r\n\t\t},\r\n\t\t"one": {"command": "c0"},\r\n\t},\r\n}`,
    ]
  ) {
    const run = await roundTrip(user, JSON.stringify(text), text);
    assertEquals(wrappedNames(run).sort(), ["multi", "one"], run.out.join("\n"));
  }
});

Deno.test("keys equal once unescaped are duplicates: the file is refused with the line, untouched", async () => {
  await using dir = await tempDir("wrap-attack-dup");
  const user = new User(dir.path);
  const path = user.file(
    S(`\n"\\u0066s": {"command": "npx"},\n"fs": {"command": "y"}`),
  );
  const before = bytesAndTime(path);
  const run = await user.run("wrap", path);
  assertEquals(run.code, 1);
  assert(run.err.some((l) => l.includes(':3:1: duplicate key "fs"')), run.err.join("\n"));
  assertEquals(bytesAndTime(path), before);
});

// ---------------------------------------------------------------------------------------------
// Argv: names and commands that look like flags.

Deno.test("hostile server names end up as the proxy's --server-id, never as its flags, and never change the permissions", async () => {
  await using dir = await tempDir("wrap-attack-names");
  const user = new User(dir.path, Deno.execPath());
  const hostile = [
    "-A",
    "--allow-all",
    "--config=/etc/passwd",
    "--server-id",
    "--upstream",
    "--help",
    "--version",
    "a,b",
    'quote"s',
    "new\nline",
    "nul\u0000byte",
    "../../etc",
    "__proto__",
    "verify",
  ];
  const members = hostile.map((n) => `${JSON.stringify(n)}: {"command": "x", "args": ["y"]}`);
  const path = user.file(S(members.join(", ")));
  const run = await user.run("wrap", path);
  assertEquals(run.code, 0, run.err.join("\n"));
  let flags: string[] | undefined;
  for (const name of hostile) {
    const w = wrappedOf(run.text, name);
    flags ??= w.launcherArgs;
    assertEquals(w.launcherArgs, flags, `${name} changed the permissions`);
    const command = parseCommand(stringsOf(entry(run.text, name).args).slice(flags.length));
    assert(command.kind === "proxy", `${JSON.stringify(name)} parsed as ${command.kind}`);
    assertEquals(command.flags.get("proxy.server_id")?.value, name);
    assertEquals(command.configPath, user.config);
    assertEquals(command.upstreamArgv, ["x", "y"]);
  }
  const back = await user.run("unwrap", path);
  assertEquals(entry(back.text, "-A"), { command: "x", args: ["y"] });
});

Deno.test('a server named "--" is wrapped into an entry the proxy can start (or skipped with the reason)', async () => {
  // Today: "wrapped --", and the proxy refuses its argv ("flag needs a value: --server-id"),
  // since parseCommand splits at the first "--" even when it is a flag's value.
  await using dir = await tempDir("wrap-attack-dashdash");
  const user = new User(dir.path);
  const path = user.file(S(`"--": {"command": "npx", "args": ["srv"]}`));
  const run = await user.run("wrap", path);
  assertEquals(run.code, 0, run.err.join("\n"));
  if (!wrappedNames(run).includes("--")) {
    assert(run.out.some((l) => l.startsWith("skipped --: ")), run.out.join("\n"));
    return;
  }
  const args = stringsOf(entry(run.text, "--").args);
  let command;
  try {
    command = parseCommand(args);
  } catch (e) {
    assert(false, `the wrapped entry does not start: ${(e as Error).message}`);
  }
  assert(command.kind === "proxy");
  assertEquals(command.flags.get("proxy.server_id")?.value, "--");
  assertEquals(command.upstreamArgv, ["npx", "srv"]);
});

Deno.test("an entry that only looks wrapped (another program with our arguments) is not reported as already wrapped, and unwrap leaves its command alone", async () => {
  // A project's .mcp.json can hold such an entry: wrap then says "already wrapped evil" and the
  // server runs unaudited; unwrap replaces its command with what follows "--".
  await using dir = await tempDir("wrap-attack-lookalike");
  const user = new User(dir.path);
  const ours = (config: string) => [
    "--server-id",
    "evil",
    "--client-id",
    "cursor",
    "--config",
    config,
    "--no-dashboard",
    "--no-metrics",
  ];
  for (
    const lookalike of [
      { command: "/tmp/evil", args: [...ours(user.config), "--", "npx", "srv"] },
      {
        command: "python3",
        args: ["run", "x", "main.ts", ...ours("/x"), "--upstream", "http://h"],
      },
    ]
  ) {
    const text = JSON.stringify({ mcpServers: { evil: lookalike } }, null, 2);
    const path = user.file(text);
    const run = await user.run("wrap", path);
    assert(!run.out.includes("already wrapped evil"), `${lookalike.command}: ${run.out}`);
    Deno.writeTextFileSync(path, text);
    const back = await user.run("unwrap", path);
    assertEquals(entry(back.text, "evil").command, lookalike.command, back.out.join("\n"));
  }
});

Deno.test("a wrapped entry the user edited (a flag removed, added or moved) is neither wrapped a second time nor reported as not wrapped", async () => {
  // Today: unwrap says "not wrapped fs" (exit 0) and leaves mcp-audit in place; wrap then nests
  // a second mcp-audit around the first.
  await using dir = await tempDir("wrap-attack-edited");
  const user = new User(dir.path);
  const original =
    `{\n  "mcpServers": {\n    "fs": {\n      "command": "npx",\n      "args": ["-y", "srv"]\n    }\n  }\n}\n`;
  const edits: [string, (t: string) => string][] = [
    ["--no-metrics removed", (t) => t.replace(`"--no-metrics", `, "")],
    [
      "a flag added",
      (t) => t.replace(`"--no-metrics", `, `"--no-metrics", "--log-level", "debug", `),
    ],
    [
      "--client-id moved first",
      (t) =>
        t.replace(
          `"--server-id", "fs", "--client-id", "mcp-client"`,
          `"--client-id", "mcp-client", "--server-id", "fs"`,
        ),
    ],
  ];
  for (const [label, edit] of edits) {
    const path = user.file(original);
    const wrapped = await user.run("wrap", path);
    const edited = edit(wrapped.text);
    assert(edited !== wrapped.text, label);
    Deno.writeTextFileSync(path, edited);
    const back = await user.run("unwrap", path);
    const restored = entry(back.text, "fs").command === "npx";
    assert(
      restored || (!back.out.includes("not wrapped fs") && back.code !== 0),
      `${label}: unwrap neither restores nor refuses: ${back.out.join(" | ")}`,
    );
    Deno.writeTextFileSync(path, edited);
    const again = await user.run("wrap", path);
    const args = stringsOf(entry(again.text, "fs").args);
    assertEquals(
      args.filter((a) => a === "--server-id").length,
      1,
      `${label}: wrapped a second time: ${again.out.join(" | ")}`,
    );
  }
});

Deno.test("a wrapped entry edited in ways that keep our argv (config changed, args appended, members added, reformatted) unwraps to its original values", async () => {
  await using dir = await tempDir("wrap-attack-edited-ok");
  const user = new User(dir.path);
  const original =
    `{\n  "mcpServers": {\n    "fs": {\n      "command": "npx",\n      "args": ["-y", "srv"]\n    },\n    "r": {\n      "url": "https://h.example/mcp"\n    }\n  }\n}\n`;
  const edits: [string, (t: string) => string, Record<string, unknown>][] = [
    ["--config changed", (t) => t.replace(user.config, "/other.yaml"), {
      command: "npx",
      args: ["-y", "srv"],
    }],
    ["an arg appended", (t) => t.replace(`"srv"]`, `"srv", "/more"]`), {
      command: "npx",
      args: ["-y", "srv", "/more"],
    }],
    [
      "a member added",
      (t) => t.replace(`"command": "/usr`, `"disabled": false, "command": "/usr`),
      {
        disabled: false,
        command: "npx",
        args: ["-y", "srv"],
      },
    ],
    [
      "args reformatted one per line",
      (t) =>
        t.replace(
          /"args": \["--server-id", "fs"([^\]]*)\]/,
          (_m, rest: string) =>
            `"args": [\n        "--server-id",\n        "fs"${
              rest.split(", ").join(",\n        ")
            }\n      ]`,
        ),
      { command: "npx", args: ["-y", "srv"] },
    ],
  ];
  for (const [label, edit, expected] of edits) {
    const path = user.file(original);
    const wrapped = await user.run("wrap", path);
    Deno.writeTextFileSync(path, edit(wrapped.text));
    const back = await user.run("unwrap", path);
    assertEquals(back.code, 0, label);
    assertEquals(entry(back.text, "fs"), expected, label);
    assertEquals(entry(back.text, "r"), { url: "https://h.example/mcp" }, label);
  }
});

// ---------------------------------------------------------------------------------------------
// Permissions: what a wrapped entry may do, and that it starts.

Deno.test("from source, each wrapped entry gets exactly the derived flags: no -A, the one command, the one host (IPv6 and default ports too)", async () => {
  await using dir = await tempDir("wrap-attack-flags");
  const user = new User(dir.path, Deno.execPath());
  const path = user.file(JSON.stringify(
    {
      mcpServers: {
        local: { command: "/opt/srv", args: ["-A", "--allow-all"] },
        relative: { command: "./server", cwd: "/opt/project" },
        v6: { url: "http://[::1]:8080/mcp" },
        https: { url: "https://mcp.example.com/mcp" },
        http: { url: "http://mcp.example.com/mcp" },
        emptyHeaders: { url: "https://e.example/mcp", headers: {} },
      },
    },
    null,
    2,
  ));
  const run = await user.run("wrap", path);
  assertEquals(run.code, 0, run.err.join("\n"));
  const read = `--allow-read=${user.config},${user.logDir}`;
  const write = `--allow-write=${user.logDir}`;
  const base = ["run", read, write, "--allow-env"];
  const expected: Record<string, string[]> = {
    local: [...base, "--allow-run=/opt/srv,kill", MAIN],
    relative: [...base, "--allow-run=./server,kill", MAIN],
    v6: [...base, "--allow-net=[::1]:8080", MAIN],
    https: [...base, "--allow-net=mcp.example.com:443", MAIN],
    http: [...base, "--allow-net=mcp.example.com:80", MAIN],
    emptyHeaders: [...base, "--allow-net=e.example:443", MAIN],
  };
  for (const [name, flags] of Object.entries(expected)) {
    assertEquals(wrappedOf(run.text, name).launcherArgs, flags, name);
    assertEquals(entry(run.text, name).command, Deno.execPath());
  }
  assertEquals(entry(run.text, "relative").cwd, "/opt/project");
});

Deno.test("a command or a shared config path holding a comma is refused (Deno's lists are comma separated); the file is untouched", async () => {
  await using dir = await tempDir("wrap-attack-comma");
  const user = new User(dir.path, Deno.execPath());
  const path = user.file(S(`"a": {"command": "/opt/a,--allow-all/srv"}, "b": {"command": "x"}`));
  const before = bytesAndTime(path);
  const run = await user.run("wrap", path);
  assertEquals(run.code, 1);
  assert(run.err.some((l) => l.includes("holds a comma")), run.err.join("\n"));
  assertEquals(bytesAndTime(path), before);
});

Deno.test("an entry with an empty command is skipped with the reason, not wrapped into an entry Deno refuses to start", async () => {
  // Today: "wrapped a" with --allow-run=,kill, which Deno refuses ("Empty command name not
  // allowed in --allow-run").
  await using dir = await tempDir("wrap-attack-empty-command");
  const user = new User(dir.path, Deno.execPath());
  const path = user.file(S(`"a": {"command": ""}`));
  const run = await user.run("wrap", path);
  if (run.out.some((l) => l.startsWith("skipped a: ") && l.includes("empty"))) {
    assertEquals(run.text, S(`"a": {"command": ""}`));
    return;
  }
  for (const item of wrappedOf(run.text, "a").launcherArgs) {
    assert(!/^--allow-run=(,|$)/.test(item), `wrapped with ${item}: ${run.out.join(" | ")}`);
  }
});

/** Starts a wrapped entry as a client does, sends one line, and returns what came back. */
async function launch(e: Record<string, unknown>): Promise<{ stdout: string; stderr: string }> {
  const env = isRecord(e.env) ? e.env : {};
  const stringEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (typeof v === "string") stringEnv[k] = v;
  assert(typeof e.command === "string");
  const child = new Deno.Command(e.command, {
    args: stringsOf(e.args),
    env: { ...cleanEnv(), ...stringEnv },
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    // A safety net only: the child ends when its stdin does.
    signal: AbortSignal.timeout(60_000),
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode('{"jsonrpc":"2.0","id":1,"method":"ping"}\n'));
  await writer.close();
  const o = await child.output();
  return { stdout: new TextDecoder().decode(o.stdout), stderr: new TextDecoder().decode(o.stderr) };
}

Deno.test("a wrapped entry whose env sets LD_LIBRARY_PATH starts its server from source (or is skipped with the reason)", async () => {
  // Deno refuses to spawn a child with LD_* / DYLD_* variables unless --allow-run is unrestricted;
  // today the entry is "wrapped", and the proxy answers every call "upstream unavailable".
  await using dir = await tempDir("wrap-attack-ld");
  const user = new User(dir.path, Deno.execPath());
  const path = user.file(JSON.stringify({
    mcpServers: { cat: { command: "/bin/cat", env: { LD_LIBRARY_PATH: "/opt/lib" } } },
  }));
  const run = await user.run("wrap", path);
  assertEquals(run.code, 0, run.err.join("\n"));
  if (!wrappedNames(run).includes("cat")) {
    assert(run.out.some((l) => l.startsWith("skipped cat: ") && l.includes("LD_")));
    return;
  }
  const { stdout, stderr } = await launch(entry(run.text, "cat"));
  // /bin/cat sends the ping back: it reached the server and came back through the proxy.
  assert(stdout.includes('"method":"ping"'), `the server did not start: ${stdout}\n${stderr}`);
});

Deno.test("every wrapped entry can start: wrap does not leave a shared config whose log folder is missing", async () => {
  // Today: with an existing --config whose audit.path folder does not exist, wrap says "wrapped"
  // and every server fails at start ("its directory ... is missing").
  await using dir = await tempDir("wrap-attack-log-dir");
  const user = new User(dir.path, Deno.execPath());
  const missing = `${dir.path}/not-yet/logs`;
  Deno.writeTextFileSync(user.config, `audit:\n  path: ${missing}/audit.jsonl\n`);
  const path = user.file(JSON.stringify({ mcpServers: { cat: { command: "/bin/cat" } } }));
  const run = await user.run("wrap", path);
  if (run.code !== 0) {
    assert(run.err.some((l) => l.includes(missing)), run.err.join("\n"));
    return;
  }
  const { stdout, stderr } = await launch(entry(run.text, "cat"));
  assert(stdout.includes('"method":"ping"'), `the server did not start: ${stdout}\n${stderr}`);
});

// ---------------------------------------------------------------------------------------------
// Remote entries.

Deno.test("remote entries: non-http schemes and unparsable hosts are skipped with the reason; the file keeps them as they were", async () => {
  await using dir = await tempDir("wrap-attack-remote");
  const user = new User(dir.path, Deno.execPath());
  const servers = {
    file: { url: "file:///etc/passwd" },
    ws: { url: "ws://h.example/mcp" },
    envHost: { url: "https://${env:HOST}/mcp" },
    headers: { url: "https://h.example/mcp", headers: { Authorization: "Bearer x" } },
    sse: { type: "sse", url: "https://h.example/sse" },
  };
  const text = JSON.stringify({ mcpServers: servers }, null, 2);
  const path = user.file(text);
  const run = await user.run("wrap", path);
  assertEquals(run.code, 0, run.err.join("\n"));
  for (const name of Object.keys(servers)) {
    assert(run.out.some((l) => l.startsWith(`skipped ${name}: `)), `${name}: ${run.out}`);
  }
  assertEquals(run.text, text);
});

Deno.test("a remote URL carrying credentials (user:password@, a token in the query) is not put on a command line, where every local user can read it", async () => {
  // Today the URL is written into args (`--upstream URL`), so the secret is in the proxy's
  // /proc/PID/cmdline for as long as it runs; the client kept it in its own memory.
  await using dir = await tempDir("wrap-attack-credentials");
  const user = new User(dir.path);
  const path = user.file(JSON.stringify(
    {
      mcpServers: {
        userinfo: { url: "https://alice:s3cret-pass@h.example/mcp" },
        query: { url: "https://h.example/mcp?token=s3cret-token" },
      },
    },
    null,
    2,
  ));
  const run = await user.run("wrap", path);
  assertEquals(run.code, 0, run.err.join("\n"));
  for (const name of ["userinfo", "query"]) {
    const e = entry(run.text, name);
    const args = Array.isArray(e.args) ? e.args.join(" ") : "";
    assert(!args.includes("s3cret"), `${name}: the secret is in argv: ${args}`);
  }
});

Deno.test("a remote URL with ${...} variables is skipped, as docs/clients.md says", async () => {
  await using dir = await tempDir("wrap-attack-placeholder");
  const user = new User(dir.path);
  const text = JSON.stringify(
    {
      servers: { r: { type: "http", url: "https://h.example/${input:tenant}/mcp" } },
    },
    null,
    2,
  );
  const path = user.file(text);
  const run = await user.run("wrap", path);
  assert(run.out.some((l) => l.startsWith("skipped r: ")), run.out.join("\n"));
  assertEquals(run.text, text);
});

Deno.test('a remote entry of another type is skipped with its type quoted once (type "streamable-http")', async () => {
  await using dir = await tempDir("wrap-attack-type");
  const user = new User(dir.path);
  const path = user.file(S(`"r": {"type": "streamable-http", "url": "https://h.example/mcp"}`));
  const run = await user.run("wrap", path);
  const line = run.out.find((l) => l.startsWith("skipped r: "));
  assert(line?.includes('type "streamable-http"'), String(line));
});

Deno.test("--file tells Windsurf from the file's members, not from a comment that mentions serverUrl", async () => {
  // Today a comment holding `"serverUrl":` makes the whole file Windsurf's: its stdio servers are
  // logged with client id "windsurf", and its `url` entries are skipped (left unaudited).
  await using dir = await tempDir("wrap-attack-detect");
  const user = new User(dir.path);
  const path = user.file(
    `{\n  // copied from Windsurf: "serverUrl": "https://x"\n  "mcpServers": {"a": {"command": "x"}, "r": {"url": "https://h.example/mcp"}}\n}`,
  );
  const run = await user.run("wrap", path);
  assertEquals(run.code, 0, run.err.join("\n"));
  assert(wrappedOf(run.text, "a").clientId !== "windsurf", run.out.join("\n"));
  assertEquals(wrappedNames(run).sort(), ["a", "r"], run.out.join("\n"));
});

// ---------------------------------------------------------------------------------------------
// The file system.

Deno.test("a symlinked config stays a link, its target is edited (backup beside the target), and unwrap restores the target", async () => {
  await using dir = await tempDir("wrap-attack-link");
  const user = new User(dir.path);
  const text = S(`"a": {"command": "x"}`);
  const target = user.file(text, "real.json");
  const link = `${dirOf(target)}/link.json`;
  Deno.symlinkSync(target, link);
  const run = await user.run("wrap", link);
  assertEquals(run.code, 0, run.err.join("\n"));
  assert(Deno.lstatSync(link).isSymlink);
  assert(readText(target).includes("--server-id"));
  const backup = names(dirOf(target)).find((n) => n.startsWith("real.json.mcp-audit-backup-"));
  assert(backup !== undefined, names(dirOf(target)).join(" "));
  assertEquals(readText(`${dirOf(target)}/${backup}`), text);
  assertEquals((await user.run("unwrap", link)).code, 0);
  assertEquals(readText(target), text);
  assert(Deno.lstatSync(link).isSymlink);
});

Deno.test("a dangling link, a folder, a FIFO and /dev/null are refused without reading or creating anything", async () => {
  await using dir = await tempDir("wrap-attack-special");
  const user = new User(dir.path);
  const folder = `${dir.path}/special`;
  Deno.mkdirSync(folder);
  Deno.symlinkSync(`${folder}/none.json`, `${folder}/dangling.json`);
  Deno.mkdirSync(`${folder}/dir.json`);
  const fifo = await new Deno.Command("mkfifo", { args: [`${folder}/fifo.json`] }).output();
  assertEquals(fifo.code, 0);
  const before = names(folder);
  for (const path of ["dangling.json", "dir.json", "fifo.json"].map((n) => `${folder}/${n}`)) {
    for (const kind of ["wrap", "unwrap"] as const) {
      const out: string[] = [];
      const err: string[] = [];
      const code = await wrapCommand(kind, ["--file", path], user.io(out, err));
      assertEquals(code, 1, `${kind} ${path}`);
      assert(err.some((l) => l.startsWith(path)), err.join("\n"));
    }
  }
  const out: string[] = [];
  const err: string[] = [];
  assertEquals(await wrapCommand("wrap", ["--file", "/dev/null"], user.io(out, err)), 1);
  assertEquals(names(folder), before);
  assert(!names(dir.path).includes("home"), "nothing created in the home");
});

Deno.test("an empty file is refused (1:1: empty file), untouched", async () => {
  await using dir = await tempDir("wrap-attack-empty");
  const user = new User(dir.path);
  const path = user.file("");
  const run = await user.run("wrap", path);
  assertEquals(run.code, 1);
  assert(run.err.some((l) => l.includes(":1:1: empty file")), run.err.join("\n"));
  assertEquals(Deno.readFileSync(path).length, 0);
  assertEquals(names(dirOf(path)), ["mcp.json"]);
});

Deno.test("the file's mode is kept by wrap and unwrap, and the backup has it too", async () => {
  await using dir = await tempDir("wrap-attack-mode");
  const user = new User(dir.path);
  const path = user.file(S(`"a": {"command": "x"}`));
  Deno.chmodSync(path, 0o640);
  assertEquals((await user.run("wrap", path)).code, 0);
  assertEquals(Deno.statSync(path).mode! & 0o777, 0o640);
  const backup = names(dirOf(path)).find((n) => n.includes(".mcp-audit-backup-"));
  assert(backup !== undefined);
  assertEquals(Deno.statSync(`${dirOf(path)}/${backup}`).mode! & 0o777, 0o640);
  assertEquals((await user.run("unwrap", path)).code, 0);
  assertEquals(Deno.statSync(path).mode! & 0o777, 0o640);
});

Deno.test("backup names already taken are never overwritten", async () => {
  await using dir = await tempDir("wrap-attack-backup-names");
  const user = new User(dir.path);
  const path = user.file(S(`"a": {"command": "x"}`));
  // Every name the next seconds could give is taken already.
  const now = Date.now();
  const taken: string[] = [];
  for (let s = -2; s <= 120; s++) {
    const stamp = new Date(now + s * 1000).toISOString().replace(/\.\d+Z$/, "Z").replace(
      /[-:]/g,
      "",
    );
    const name = `${path}.mcp-audit-backup-${stamp}`;
    Deno.writeTextFileSync(name, `keep ${s}`);
    taken.push(name);
  }
  const run = await user.run("wrap", path);
  assertEquals(run.code, 0, run.err.join("\n"));
  for (const [i, name] of taken.entries()) assertEquals(readText(name), `keep ${i - 2}`);
  const line = run.out.find((l) => l.includes("; backup "));
  const backup = line?.slice(line.indexOf("; backup ") + 9);
  assert(backup !== undefined && !taken.includes(backup), String(line));
  assertEquals(readText(backup), S(`"a": {"command": "x"}`));
});

Deno.test("a read-only folder is refused: the file untouched, no temporary file or backup left", async () => {
  await using dir = await tempDir("wrap-attack-ro-dir");
  const user = new User(dir.path);
  const path = user.file(S(`"a": {"command": "x"}`));
  const before = bytesAndTime(path);
  Deno.chmodSync(dirOf(path), 0o555);
  try {
    const run = await user.run("wrap", path);
    assertEquals(run.code, 1);
    assert(run.err.some((l) => l.includes("read-only")), run.err.join("\n"));
  } finally {
    Deno.chmodSync(dirOf(path), 0o755);
  }
  assertEquals(bytesAndTime(path), before);
  assertEquals(names(dirOf(path)), ["mcp.json"]);
});

Deno.test("unwrap of a file never wrapped changes nothing: same bytes, same time, no backup", async () => {
  await using dir = await tempDir("wrap-attack-unwrap-noop");
  const user = new User(dir.path);
  const path = user.file(`{\n  // mine\n  "mcpServers": {"a": {"command": "x"},},\n}`);
  const before = bytesAndTime(path);
  const run = await user.run("unwrap", path);
  assertEquals(run.code, 0);
  assert(run.out.includes("not wrapped a"));
  assertEquals(bytesAndTime(path), before);
  assertEquals(names(dirOf(path)), ["mcp.json"]);
});

Deno.test("two wraps of one file at once never lose an update: each server a run reports wrapped is wrapped in the file (or a run refuses)", async () => {
  // Today replaceFileAtomically checks the file, then renames: two runs can both pass the check
  // and the second rename drops the first run's edit, while both exit 0 saying "wrapped".
  await using dir = await tempDir("wrap-attack-concurrent");
  const user = new User(dir.path);
  const text = S(`"a": {"command": "x"}, "b": {"command": "y"}`);
  for (let i = 0; i < 10; i++) {
    const path = user.file(text);
    const runs = await Promise.all([
      user.run("wrap", path, ["--only", "a"]),
      user.run("wrap", path, ["--only", "b"]),
    ]);
    const final = readText(path);
    for (const [j, name] of ["a", "b"].entries()) {
      const r = runs[j]!;
      if (r.code !== 0) continue;
      assert(r.out.includes(`wrapped ${name}`), r.out.join("\n"));
      assert(
        parseWrapped(stringsOf(entry(final, name).args ?? [])) !== undefined,
        `attempt ${i}: "${name}" was reported wrapped (exit 0) but the file has\n${final}`,
      );
    }
  }
});

// ---------------------------------------------------------------------------------------------
// The shared configuration.

/** A user whose shared configuration wrap makes (the default place, under its XDG folders). */
function freshIo(root: string, out: string[], err: string[]): WrapIo {
  return {
    env: {
      HOME: `${root}/home`,
      XDG_CONFIG_HOME: `${root}/home/.config`,
      XDG_DATA_HOME: `${root}/home/.local/share`,
    },
    os: "linux",
    cwd: root,
    launcher: { execPath: BINARY, mainPath: MAIN },
    out: (line) => out.push(line),
    err: (line) => err.push(line),
  };
}

Deno.test("the created shared config and key are private (0600, in a 0700 folder); the public key is not secret", async () => {
  await using dir = await tempDir("wrap-attack-created");
  const path = `${dir.path}/mcp.json`;
  Deno.writeTextFileSync(path, S(`"a": {"command": "x"}`));
  const out: string[] = [];
  const err: string[] = [];
  assertEquals(await wrapCommand("wrap", ["--file", path], freshIo(dir.path, out, err)), 0);
  const folder = `${dir.path}/home/.config/mcp-audit`;
  assertEquals(Deno.statSync(folder).mode! & 0o777, 0o700);
  assertEquals(Deno.statSync(`${folder}/config.yaml`).mode! & 0o777, 0o600);
  assertEquals(Deno.statSync(`${folder}/signing.key`).mode! & 0o777, 0o600);
  assertEquals(Deno.statSync(`${folder}/signing.pub`).mode! & 0o077, 0o044);
  assert(!readText(path).includes("PRIVATE KEY"), "no secret in the client's file");
  assertEquals(wrappedOf(readText(path), "a").config, `${folder}/config.yaml`);
});

Deno.test("an existing shared config without signing is referenced as it is: not rewritten, no key made", async () => {
  await using dir = await tempDir("wrap-attack-unsigned");
  const user = new User(dir.path);
  const before = bytesAndTime(user.config);
  const path = user.file(S(`"a": {"command": "x"}`));
  const run = await user.run("wrap", path);
  assertEquals(run.code, 0, run.err.join("\n"));
  assertEquals(bytesAndTime(user.config), before);
  assertEquals(names(dir.path).filter((n) => n.startsWith("signing")), []);
  assertEquals(wrappedOf(run.text, "a").config, user.config);
});

Deno.test("--config naming a folder, or a config that does not load, is refused with exit 2 and the client's file untouched", async () => {
  await using dir = await tempDir("wrap-attack-config-bad");
  const user = new User(dir.path);
  const path = user.file(S(`"a": {"command": "x"}`));
  const before = bytesAndTime(path);
  Deno.writeTextFileSync(`${dir.path}/bad.yaml`, "audit: [unclosed\n");
  for (const config of [dir.path, `${dir.path}/bad.yaml`]) {
    const out: string[] = [];
    const err: string[] = [];
    const code = await wrapCommand("wrap", ["--file", path, "--config", config], user.io(out, err));
    assertEquals(code, 2, `${config}: ${err.join("\n")}`);
    assert(err.some((l) => l.includes("shared config")), err.join("\n"));
    assertEquals(bytesAndTime(path), before);
  }
});

Deno.test("two first runs at once (two processes) make one shared config and one key, and each run that succeeds points at it", async () => {
  await using dir = await tempDir("wrap-attack-first-runs");
  const paths = [`${dir.path}/one.json`, `${dir.path}/two.json`];
  const text = S(`"a": {"command": "x"}`);
  for (const p of paths) Deno.writeTextFileSync(p, text);
  const env = {
    ...cleanEnv(),
    HOME: `${dir.path}/home`,
    XDG_CONFIG_HOME: `${dir.path}/home/.config`,
    XDG_DATA_HOME: `${dir.path}/home/.local/share`,
    DENO_DIR: Deno.env.get("DENO_DIR") ?? "/root/.cache/deno",
  };
  const runs = await Promise.all(paths.map((p) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, "wrap", "--file", p],
      env,
      clearEnv: true,
      cwd: dir.path,
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(120_000),
    }).output()
  ));
  const said = runs.map((r) =>
    new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr)
  );
  assert(runs.some((r) => r.code === 0), said.join("\n"));
  const made = said.join("\n").split("\n").filter((l) => l.startsWith("created signing key"));
  assert(made.length <= 1, made.join("\n"));
  const folder = `${dir.path}/home/.config/mcp-audit`;
  assertEquals(names(folder), ["config.yaml", "signing.key", "signing.pub"]);
  assert(readText(`${folder}/config.yaml`).includes(`${folder}/signing.key`));
  for (const [i, p] of paths.entries()) {
    if (runs[i]!.code !== 0) {
      assertEquals(runs[i]!.code, 2, said[i]);
      assertEquals(readText(p), text);
      continue;
    }
    assertEquals(wrappedOf(readText(p), "a").config, `${folder}/config.yaml`);
  }
});

Deno.test("--dry-run creates nothing anywhere: no config, no key, no log folder, no backup, no temporary file", async () => {
  await using dir = await tempDir("wrap-attack-dry");
  const client = `${dir.path}/client`;
  Deno.mkdirSync(client);
  const path = `${client}/mcp.json`;
  Deno.writeTextFileSync(path, '\uFEFF{\r\n  "mcpServers": {"a": {"command": "x"}}\r\n}');
  const before = bytesAndTime(path);
  const out: string[] = [];
  const err: string[] = [];
  const io = freshIo(dir.path, out, err);
  assertEquals(await wrapCommand("wrap", ["--file", path, "--dry-run"], io), 0, err.join("\n"));
  assertEquals(
    await wrapCommand(
      "wrap",
      ["--file", path, "--dry-run", "--config", `${dir.path}/elsewhere/c.yaml`],
      io,
    ),
    0,
  );
  assertEquals(bytesAndTime(path), before);
  assertEquals(names(client), ["mcp.json"]);
  assertEquals(names(dir.path), ["client"]);
});

Deno.test("from source, a shared configuration path holding a comma is refused before anything is created", async () => {
  await using dir = await tempDir("wrap-comma");
  const user = new User(dir.path, Deno.execPath());
  const path = user.file(`{"mcpServers": {"fs": {"command": "npx", "args": ["-y", "x"]}}}\n`);
  const before = readText(path);
  const config = `${dir.path}/a,b/config.yaml`;
  const out: string[] = [];
  const err: string[] = [];
  const code = await wrapCommand("wrap", ["--file", path, "--config", config], user.io(out, err));
  assertEquals(code, 2, err.join("\n"));
  assert(/holds a comma/.test(err.join("\n")), err.join("\n"));
  assertEquals(readText(path), before);
  assertEquals(existsPath(`${dir.path}/a,b`), false, "no config, key or folder left behind");
});

function existsPath(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
