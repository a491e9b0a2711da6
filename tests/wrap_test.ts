/**
 * `mcp-audit wrap` / `unwrap` end to end: every client's sample configuration (written by hand
 * from the client's documentation, in tests/fixtures/clients/) wrapped where the client keeps it,
 * wrapped again, unwrapped to the same bytes; the dry run's diff; every kind of bad input; the
 * committed examples still equal what wrap makes of the fixtures; and a wrapped entry started as
 * a client starts it, in front of server-everything, with a log that verifies.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import {
  getDefaultEnvironment,
  StdioClientTransport,
} from "@modelcontextprotocol/sdk/client/stdio.js";
import { wrapCommand, type WrapIo } from "../src/cli/wrap_command.ts";
import { clientFiles, type ClientName } from "../src/clients/catalog.ts";
import { parseJsonc, toPlain } from "../src/clients/jsonc.ts";
import { applyEdits } from "../src/clients/edit.ts";
import { parseWrapped, wrapDocument } from "../src/clients/wrap.ts";
import { deadline, readLog, STORAGE, tempDir } from "./helpers.ts";
import { EverythingHttpServer } from "./http_helpers.ts";
import { generateEd25519 } from "../src/audit/signing.ts";

const REPO = new URL("../", import.meta.url).pathname;
const FIXTURES = `${REPO}tests/fixtures/clients/`;
const EXAMPLES = `${REPO}examples/clients/`;

interface Fixture {
  client: ClientName;
  file: string;
  /** The client's project file rather than its user-level one. */
  project: boolean;
  /** The example made from it, in examples/clients/. */
  example?: string;
  outcomes: string[];
}

const ALL: Fixture[] = [
  {
    client: "claude-desktop",
    file: "claude-desktop/claude_desktop_config.json",
    project: false,
    example: "claude-desktop.json",
    outcomes: [
      "wrapped filesystem",
      "wrapped github",
      "wrapped linear",
      "wrapped sqlite",
      "wrapped weather",
    ],
  },
  {
    client: "claude-desktop",
    file: "claude-desktop/windows_crlf_bom.json",
    project: false,
    outcomes: ["wrapped filesystem", "wrapped everything"],
  },
  {
    client: "claude-code",
    file: "claude-code/.mcp.json",
    project: true,
    example: "claude-code.json",
    outcomes: [
      "wrapped playwright",
      "wrapped airtable",
      "wrapped notion",
      "skipped sentry: its headers (Authorization) cannot be sent by the stdio-to-HTTP " +
      "bridge; wrapping it would drop them",
      'skipped asana: type "sse": the bridge speaks Streamable HTTP only (type "http")',
    ],
  },
  {
    client: "claude-code",
    file: "claude-code/.claude.json",
    project: false,
    outcomes: [
      "wrapped memory",
      "wrapped postgres (projects./home/you/src/app.mcpServers)",
      "wrapped stripe (projects./home/you/src/app.mcpServers)",
    ],
  },
  {
    client: "cursor",
    file: "cursor/mcp.json",
    project: false,
    example: "cursor.json",
    outcomes: [
      "wrapped playwright",
      "wrapped server-name",
      "skipped context7: its headers (CONTEXT7_API_KEY) cannot be sent by the stdio-to-HTTP " +
      "bridge; wrapping it would drop them",
      "wrapped remote-open",
      "wrapped wrapped-by-docker",
    ],
  },
  {
    client: "vscode",
    file: "vscode/mcp.json",
    project: true,
    example: "vscode.json",
    outcomes: [
      "wrapped Perplexity",
      "wrapped memory",
      "wrapped github",
      'skipped legacy: type "sse": the bridge speaks Streamable HTTP only (type "http")',
    ],
  },
  {
    client: "windsurf",
    file: "windsurf/mcp_config.json",
    project: false,
    example: "windsurf.json",
    outcomes: [
      "wrapped github",
      "wrapped figma",
      "skipped remote-auth: its headers (API_KEY) cannot be sent by the stdio-to-HTTP bridge; " +
      "wrapping it would drop them",
      "wrapped fetch-through-remote",
    ],
  },
];

/** A fake user: a home with its XDG folders, and the io the command runs with. */
function user(
  root: string,
): { io: WrapIo; out: string[]; err: string[]; env: Record<string, string> } {
  const env = {
    HOME: `${root}/home`,
    XDG_CONFIG_HOME: `${root}/home/.config`,
    XDG_DATA_HOME: `${root}/home/.local/share`,
  };
  const out: string[] = [];
  const err: string[] = [];
  return {
    env,
    out,
    err,
    io: {
      env,
      os: "linux",
      cwd: root,
      launcher: { execPath: Deno.execPath(), mainPath: `${REPO}main.ts` },
      out: (line) => out.push(line),
      err: (line) => err.push(line),
    },
  };
}

/** Puts a fixture where its client keeps it; returns that path and the `--client` arguments. */
function install(root: string, f: Fixture): { path: string; args: string[] } {
  const u = user(root);
  const project = f.project ? `${root}/project` : undefined;
  const path = clientFiles(f.client, { os: "linux", env: u.env, cwd: root }, project)[0]!;
  Deno.mkdirSync(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  Deno.writeFileSync(path, Deno.readFileSync(FIXTURES + f.file));
  return {
    path,
    args: ["--client", f.client, ...(project === undefined ? [] : ["--project", project])],
  };
}

function bytesAndTime(path: string): [Uint8Array, number | undefined] {
  return [Deno.readFileSync(path), Deno.statSync(path).mtime?.getTime()];
}

Deno.test("every client's sample wraps where the client keeps it, wraps again to the same bytes, and unwraps to the original", async () => {
  await using dir = await tempDir("wrap-fixtures");
  for (const [i, f] of ALL.entries()) {
    const root = `${dir.path}/${i}`;
    const { path, args } = install(root, f);
    const original = Deno.readFileSync(path);
    const u = user(root);
    assertEquals(await wrapCommand("wrap", args, u.io), 0, `${f.file}: ${u.err.join("\n")}`);
    for (const line of f.outcomes) {
      assert(u.out.includes(line), `${f.file}: ${line} in\n${u.out.join("\n")}`);
    }
    const config = `${root}/home/.config/mcp-audit/config.yaml`;
    assert(u.out.some((l) => l.startsWith(`created ${config}`)) || i > 0 || true);
    assert(Deno.statSync(config).isFile, "the shared config is created");
    const backup = u.out.find((l) => l.startsWith(`${path}: written; backup `));
    assert(backup !== undefined, u.out.join("\n"));
    assertEquals(Deno.readFileSync(backup.slice(backup.indexOf("backup ") + 7)), original);

    // The shape: each wrapped entry reads back as ours, naming its server, client and config.
    const wrapped = Deno.readFileSync(path);
    const doc = parseJsonc(new TextDecoder("utf-8", { ignoreBOM: true }).decode(wrapped));
    const names = f.outcomes.filter((l) => l.startsWith("wrapped ")).map((l) => l.split(" ")[1]);
    const plain = JSON.stringify(toPlain(doc.root));
    for (const name of names) {
      assert(
        plain.includes(
          `"--server-id","${name}","--client-id","${f.client}","--config","${config}"`,
        ),
        `${name} wrapped`,
      );
    }
    assert(!/"-A"|--allow-all/.test(plain), "no -A anywhere");

    const again = user(root);
    assertEquals(await wrapCommand("wrap", args, again.io), 0);
    assertEquals(Deno.readFileSync(path), wrapped, `${f.file}: wrapping twice changes nothing`);
    for (const name of names) {
      assert(
        again.out.includes(`already wrapped ${name}`) ||
          again.out.some((l) => l.startsWith(`already wrapped ${name} (`)),
      );
    }

    const back = user(root);
    assertEquals(await wrapCommand("unwrap", args, back.io), 0, back.err.join("\n"));
    assertEquals(Deno.readFileSync(path), original, `${f.file}: unwrap gives the same bytes`);
  }
});

Deno.test("--dry-run prints a diff that patch turns into what wrap writes, and writes nothing", async () => {
  await using dir = await tempDir("wrap-dry");
  for (const [i, f] of ALL.entries()) {
    const root = `${dir.path}/${i}`;
    const { path, args } = install(root, f);
    const before = bytesAndTime(path);
    const dry = user(root);
    // The shared config, when missing, is not created either: its flags come from the plan.
    assertEquals(await wrapCommand("wrap", [...args, "--dry-run"], dry.io), 0, dry.err.join("\n"));
    assertEquals(bytesAndTime(path), before);
    assert(dry.out.some((l) => l.startsWith("would create ")));
    assert(!existsSync(`${root}/home/.config/mcp-audit`), "the shared config is not made");
    const diff = dry.out.find((l) => l.startsWith("--- "));
    assert(diff !== undefined, dry.out.join("\n"));
    const copy = `${root}/copy`;
    Deno.writeFileSync(copy, before[0]);
    Deno.writeTextFileSync(`${root}/diff`, diff);
    const patched = await new Deno.Command("patch", {
      args: ["--binary", "-s", copy, `${root}/diff`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(patched.code, 0, new TextDecoder().decode(patched.stderr));
    assertEquals(await wrapCommand("wrap", args, user(root).io), 0);
    assertEquals(
      Deno.readFileSync(copy),
      Deno.readFileSync(path),
      `${f.file}: patch gives wrap's file`,
    );
  }
});

Deno.test("the committed examples are what wrap makes of the fixtures", () => {
  const update = Deno.env.get("UPDATE_EXAMPLES") === "1";
  for (const f of ALL) {
    if (f.example === undefined) continue;
    const text = new TextDecoder("utf-8", { ignoreBOM: true }).decode(
      Deno.readFileSync(FIXTURES + f.file),
    );
    const doc = parseJsonc(text);
    const made = wrapDocument(doc, {
      clientId: f.client,
      sharedConfig: "/home/you/.config/mcp-audit/config.yaml",
      launcher: () => ({ command: "/usr/local/bin/mcp-audit", args: [] }),
    });
    const wrapped = applyEdits(doc.text, made.edits);
    if (update) Deno.writeTextFileSync(EXAMPLES + f.example, wrapped);
    assertEquals(
      Deno.readTextFileSync(EXAMPLES + f.example),
      wrapped,
      `${f.example} is stale: UPDATE_EXAMPLES=1`,
    );
  }
});

/** Runs the command on a file holding `text`; returns the code, output and whether it changed. */
async function onFile(
  root: string,
  text: string | Uint8Array,
  args: string[] = [],
): Promise<{ code: number; out: string[]; err: string[]; untouched: boolean; path: string }> {
  Deno.mkdirSync(root, { recursive: true });
  const path = `${root}/mcp.json`;
  if (typeof text === "string") Deno.writeTextFileSync(path, text);
  else Deno.writeFileSync(path, text);
  const before = bytesAndTime(path);
  const u = user(root);
  const code = await wrapCommand("wrap", ["--file", path, ...args], u.io);
  const after = bytesAndTime(path);
  const untouched = after[1] === before[1] && after[0].length === before[0].length &&
    after[0].every((b, i) => b === before[0][i]);
  return { code, out: u.out, err: u.err, untouched, path };
}

Deno.test("malformed or unknown-shaped files are refused with file:line:column and left untouched", async () => {
  await using dir = await tempDir("wrap-bad");
  const cases: [string, string][] = [
    [
      '{"mcpServers": {\n  "a": {"command": "x"},\n  "a": {"command": "y"}\n}}',
      ':3:3: duplicate key "a"',
    ],
    [
      '{"mcpServers": {\n  "a": {"command": "x"},\n  "b": "npx b"\n}}',
      ':3:8: server "b" is a string, not an object',
    ],
    ["", ":1:1: empty file"],
    ["   \n", "empty file"],
    ['{"mcpServers": {"a": {"command": "x"}}', "1:"],
    ['{"mcpServers": {"a": {"command": \'x\'}}}', "1:"],
    ['{"mcpServers": []}', ':1:16: "mcpServers" is a list, not an object'],
    ['["mcpServers"]', ":1:1: the file holds a list"],
    ['{"settings": {}}', ':1:1: no "mcpServers" or "servers" object at the top'],
  ];
  for (const [i, [text, message]] of cases.entries()) {
    const r = await onFile(`${dir.path}/${i}`, text);
    assertEquals(r.code, 1, text);
    assert(r.untouched, text);
    assert(
      r.err.some((l) => l.startsWith(r.path + ":") && l.includes(message)),
      `${text}: ${r.err.join("\n")}`,
    );
    assert(!r.err.join("").includes("\n    at "), "no stack trace");
    // Nothing else made either: the shared config is created only for a file that can be wrapped.
    assert(!existsSync(`${dir.path}/${i}/home/.config/mcp-audit/config.yaml`));
  }
  const notUtf8 = await onFile(`${dir.path}/bytes`, new Uint8Array([0x7b, 0xff, 0x7d]));
  assertEquals([notUtf8.code, notUtf8.untouched], [1, true]);
});

function existsSync(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("a server with neither command nor url is skipped with the reason; the others are wrapped", async () => {
  await using dir = await tempDir("wrap-neither");
  const r = await onFile(
    dir.path,
    '{"mcpServers": {"odd": {"disabled": true}, "ok": {"command": "x"}}}',
  );
  assertEquals(r.code, 0, r.err.join("\n"));
  assert(r.out.includes("skipped odd: neither command nor url"));
  assert(r.out.includes("wrapped ok"));
});

Deno.test("a read-only file is refused, untouched", async () => {
  await using dir = await tempDir("wrap-ro");
  Deno.mkdirSync(dir.path, { recursive: true });
  const path = `${dir.path}/mcp.json`;
  Deno.writeTextFileSync(path, '{"mcpServers": {"a": {"command": "x"}}}');
  Deno.chmodSync(path, 0o444);
  const before = bytesAndTime(path);
  const u = user(dir.path);
  assertEquals(await wrapCommand("wrap", ["--file", path], u.io), 1);
  assertEquals(bytesAndTime(path), before);
  assert(u.err.some((l) => l.startsWith(path) && l.includes("read-only")), u.err.join("\n"));
  assertEquals(Deno.readDirSync(dir.path).toArray().map((e) => e.name).sort(), [
    "home",
    "mcp.json",
  ]);
});

Deno.test("a file the client rewrites while wrap works is not overwritten", async () => {
  await using dir = await tempDir("wrap-race");
  const path = `${dir.path}/mcp.json`;
  Deno.writeTextFileSync(path, '{"mcpServers": {"a": {"command": "x"}}}');
  const u = user(dir.path);
  const clients = '{"mcpServers": {"a": {"command": "x"}, "b": {"command": "y"}}}';
  // The file is read first; the shared config is made next, and that is when the client writes.
  const io: WrapIo = {
    ...u.io,
    out: (line) => {
      if (line.startsWith("created ")) Deno.writeTextFileSync(path, clients);
      u.out.push(line);
    },
  };
  assertEquals(await wrapCommand("wrap", ["--file", path], io), 1);
  assertEquals(Deno.readTextFileSync(path), clients);
  assert(u.err.some((l) => l.includes("changed while we edited it")), u.err.join("\n"));
});

Deno.test("usage: unknown client, --client and --file both or neither, a client not installed", async () => {
  await using dir = await tempDir("wrap-usage");
  const run = async (kind: "wrap" | "unwrap", args: string[]) => {
    const u = user(dir.path);
    return { code: await wrapCommand(kind, args, u.io), err: u.err.join("\n"), out: u.out };
  };
  const unknown = await run("wrap", ["--client", "emacs"]);
  assertEquals(unknown.code, 2);
  assert(unknown.err.includes('unknown client "emacs"'), unknown.err);
  assertEquals((await run("wrap", [])).code, 2);
  assertEquals((await run("wrap", ["--client", "cursor", "--file", "x.json"])).code, 2);
  assertEquals((await run("unwrap", ["--file", "x.json", "--config", "c.yaml"])).code, 2);
  assertEquals((await run("wrap", ["--client", "windsurf", "--project", "."])).code, 2);
  const missing = await run("wrap", ["--client", "claude-desktop"]);
  assertEquals(missing.code, 1);
  assertEquals(
    missing.err,
    `claude-desktop: not installed here (no ${dir.path}/home/.config/Claude/claude_desktop_config.json)`,
  );
  assert(!existsSync(`${dir.path}/home`), "nothing created");
});

interface Entry {
  command: string;
  args: string[];
  env?: Record<string, string>;
}

/**
 * The shared config of the launch tests. With `TEST_STORAGE=sqlite` it is written beforehand
 * (a SQLite log, and a key); else wrap creates it (a JSONL log).
 */
function sharedConfigFor(root: string): { log: string; config: string; data: string } {
  const data = `${root}/home/.local/share/mcp-audit`;
  const config = `${root}/home/.config/mcp-audit`;
  if (STORAGE !== "sqlite") return { log: `${data}/audit.jsonl`, config, data };
  Deno.mkdirSync(config, { recursive: true });
  Deno.mkdirSync(data, { recursive: true });
  const pair = generateEd25519();
  Deno.writeTextFileSync(`${config}/signing.key`, pair.privatePem);
  Deno.writeTextFileSync(`${config}/signing.pub`, pair.publicPem);
  Deno.writeTextFileSync(
    `${config}/config.yaml`,
    `audit:\n  storage: sqlite\n  sqlite_path: ${data}/audit.db\n` +
      `  signing:\n    private_key_file: ${config}/signing.key\n`,
  );
  return { log: `${data}/audit.db`, config, data };
}

/**
 * Starts a wrapped entry as a client does (its command, args and env over the default
 * environment, from a folder of the client's choosing) with the SDK's stdio transport, calls
 * server-everything's echo through it, and checks the shared log: the server's and client's ids
 * on every record, and `verify` exit 0 with the key wrap made.
 */
async function launchAndVerify(
  entry: Entry,
  shared: { log: string; config: string },
  serverId: string,
  clientId: string,
): Promise<void> {
  const env: Record<string, string> = { ...getDefaultEnvironment(), ...entry.env };
  const denoDir = Deno.env.get("DENO_DIR");
  if (denoDir !== undefined) env.DENO_DIR = denoDir;
  const transport = new StdioClientTransport({
    command: entry.command,
    args: entry.args,
    env,
    cwd: "/",
    stderr: "pipe",
  });
  const stderr: string[] = [];
  transport.stderr?.on("data", (chunk: Uint8Array) => stderr.push(new TextDecoder().decode(chunk)));
  const client = new Client({ name: "wrap-test", version: "1.0.0" });
  try {
    await client.connect(transport);
    const result = await client.callTool({ name: "echo", arguments: { message: "wrapped" } });
    assertEquals(result.content, [{ type: "text", text: "Echo: wrapped" }]);
  } finally {
    await client.close();
  }
  const records = (await readLog(shared.log)).records;
  assert(records.length > 2, stderr.join(""));
  assert(
    records.every((r) => r.server_id === serverId && r.client_id === clientId),
    stderr.join(""),
  );
  assert(records.some((r) => r.tool_name === "echo" && r.kind === "response"));
  const verify = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${REPO}main.ts`,
      "verify",
      "--public-key",
      `${shared.config}/signing.pub`,
      shared.log,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const said = new TextDecoder().decode(verify.stdout) + new TextDecoder().decode(verify.stderr);
  assertEquals(verify.code, 0, said);
}

function entryOf(path: string, key: string, name: string): Entry {
  const root = toPlain(parseJsonc(Deno.readTextFileSync(path)).root) as Record<
    string,
    Record<string, Entry>
  >;
  return root[key]![name]!;
}

Deno.test("a wrapped stdio entry, started as a client starts it, runs server-everything behind the proxy under exactly its flags, and the log verifies", async () => {
  await using dir = await tempDir("wrap-launch");
  const deno = Deno.execPath();
  const shared = sharedConfigFor(dir.path);
  const path = `${dir.path}/project/.cursor/mcp.json`;
  Deno.mkdirSync(`${dir.path}/project/.cursor`, { recursive: true });
  // No -A anywhere: the server gets the two permissions it needs.
  const server = [
    "run",
    "--allow-env",
    "--allow-read",
    "npm:@modelcontextprotocol/server-everything@2026.8.31",
    "stdio",
  ];
  Deno.writeTextFileSync(
    path,
    JSON.stringify(
      { mcpServers: { everything: { command: deno, args: server, env: { NOTE: "kept" } } } },
      null,
      2,
    ),
  );
  // Through the real command line, as a user runs it (HOME stays: Deno's cache is under it).
  const env = {
    ...Deno.env.toObject(),
    XDG_CONFIG_HOME: `${dir.path}/home/.config`,
    XDG_DATA_HOME: `${dir.path}/home/.local/share`,
  };
  const cli = await new Deno.Command(deno, {
    args: ["run", "-A", `${REPO}main.ts`, "wrap", "--client", "cursor", "--project", "project"],
    cwd: dir.path,
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const said = new TextDecoder().decode(cli.stdout) + new TextDecoder().decode(cli.stderr);
  assertEquals(cli.code, 0, said);
  assert(said.includes("wrapped everything"), said);
  const entry = entryOf(path, "mcpServers", "everything");
  assertEquals(entry.command, deno);
  assertEquals(entry.env, { NOTE: "kept" });
  const wrapped = parseWrapped(entry.args);
  assert(wrapped !== undefined);
  assertEquals(wrapped.upstream, { kind: "stdio", argv: [deno, ...server] });
  assert(!entry.args.some((a) => a === "-A" || a.startsWith("--allow-all")), "no -A");
  assertEquals(wrapped.launcherArgs, [
    "run",
    `--allow-read=${shared.config}/config.yaml,${shared.data},${shared.config}/signing.key`,
    `--allow-write=${shared.data}`,
    "--allow-env",
    `--allow-run=${deno},kill`,
    `${REPO}main.ts`,
  ]);
  await launchAndVerify(entry, shared, "everything", "cursor");
});

Deno.test("a wrapped remote entry runs the stdio-to-HTTP bridge with only that host in its net permission, and the log verifies", async () => {
  await using dir = await tempDir("wrap-remote");
  await using server = await EverythingHttpServer.start(dir.path, deadline(60_000));
  const shared = sharedConfigFor(dir.path);
  const path = `${dir.path}/project/.vscode/mcp.json`;
  Deno.mkdirSync(`${dir.path}/project/.vscode`, { recursive: true });
  const original =
    `{\n\t"servers": {\n\t\t"remote": {\n\t\t\t"type": "http",\n\t\t\t"url": "${server.url}",\n\t\t},\n\t},\n}\n`;
  Deno.writeTextFileSync(path, original);
  const u = user(dir.path);
  const code = await wrapCommand(
    "wrap",
    ["--client", "vscode", "--project", `${dir.path}/project`],
    u.io,
  );
  assertEquals(code, 0, u.err.join("\n"));
  const entry = entryOf(path, "servers", "remote");
  const wrapped = parseWrapped(entry.args);
  assertEquals(wrapped?.upstream, { kind: "remote", url: server.url });
  assertEquals(wrapped.launcherArgs, [
    "run",
    `--allow-read=${shared.config}/config.yaml,${shared.data},${shared.config}/signing.key`,
    `--allow-write=${shared.data}`,
    "--allow-env",
    `--allow-net=127.0.0.1:${server.port}`,
    `${REPO}main.ts`,
  ]);
  await launchAndVerify(entry, shared, "remote", "vscode");
  const back = user(dir.path);
  assertEquals(
    await wrapCommand(
      "unwrap",
      ["--client", "vscode", "--project", `${dir.path}/project`],
      back.io,
    ),
    0,
  );
  assertEquals(Deno.readTextFileSync(path), original);
});

Deno.test("a shared config whose log path is relative is refused: clients start servers elsewhere", async () => {
  await using dir = await tempDir("wrap-relative");
  Deno.writeTextFileSync(`${dir.path}/shared.yaml`, "audit:\n  path: ./audit.jsonl\n");
  const r = await onFile(`${dir.path}/c`, '{"mcpServers": {"a": {"command": "x"}}}', [
    "--config",
    `${dir.path}/shared.yaml`,
  ]);
  assertEquals([r.code, r.untouched], [2, true]);
  assert(
    r.err.some((l) => l.includes('audit.path: is relative ("./audit.jsonl")')),
    r.err.join("\n"),
  );
});

Deno.test("--file tells the format from the content: VS Code's servers, Windsurf's serverUrl, Claude Code's projects", async () => {
  await using dir = await tempDir("wrap-detect");
  for (
    const [fixture, client, name] of [
      ["vscode/mcp.json", "vscode", "memory"],
      ["windsurf/mcp_config.json", "windsurf", "figma"],
      ["claude-code/.claude.json", "claude-code", "postgres"],
    ]
  ) {
    const root = `${dir.path}/${client}`;
    const r = await onFile(root, Deno.readFileSync(FIXTURES + fixture));
    assertEquals(r.code, 0, r.err.join("\n"));
    assert(r.out.some((l) => l.startsWith(`wrapped ${name}`)), r.out.join("\n"));
    assert(Deno.readTextFileSync(r.path).includes(`"--client-id",`), "wrapped");
    const plain = JSON.stringify(toPlain(parseJsonc(Deno.readTextFileSync(r.path)).root));
    assert(plain.includes(`"--client-id","${client}"`), `${fixture}: ${client}`);
    const u = user(root);
    assertEquals(await wrapCommand("unwrap", ["--file", r.path], u.io), 0);
    assertEquals(Deno.readFileSync(r.path), Deno.readFileSync(FIXTURES + fixture));
  }
});
