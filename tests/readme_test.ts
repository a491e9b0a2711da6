/**
 * The documentation's promises, run as written: the Claude Desktop entry with its permission flags
 * (docs/stdio.md), and the standard-library Python verifier (docs/audit-log.md).
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { auditEnv, deadline, OWN_PORTS, readLog, StdioCommand, STORAGE } from "./helpers.ts";

const root = new URL("..", import.meta.url).pathname;

/** The first `lang` code block of the page that holds `marker`. */
function block(page: string, lang: string, marker: string): string {
  const text = Deno.readTextFileSync(`${root}${page}`);
  const re = new RegExp("```" + lang + "\\n([\\s\\S]*?)```", "g");
  for (const m of text.matchAll(re)) if (m[1]!.includes(marker)) return m[1]!;
  throw new Error(`no ${lang} block with ${marker} in ${page}`);
}

interface DesktopEntry {
  command: string;
  args: string[];
  env: Record<string, string>;
}

function desktopEntry(): DesktopEntry {
  const parsed = JSON.parse(block("docs/stdio.md", "json", "mcpServers")) as {
    mcpServers: Record<string, DesktopEntry>;
  };
  const entry = Object.values(parsed.mcpServers)[0];
  if (entry === undefined) throw new Error("docs/stdio.md's mcpServers block is empty");
  return entry;
}

Deno.test("the documented Claude Desktop entry runs the proxy with exactly its permission flags", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-readme-" });
  try {
    const entry = desktopEntry();
    const dashdash = entry.args.indexOf("--");
    assert(dashdash > 0, "the entry gives the upstream after --");
    const deno = Deno.execPath();
    // Same flags and layout; only the folder and the upstream are this test's own.
    // In the docs the log's folder is the checkout, which the proxy reads its own modules from
    // (the telemetry worker's among them); here they are two: both are readable, as there.
    const args = entry.args.slice(0, dashdash).map((a) =>
      a.replaceAll("/Users/you/mcp-audit/main.ts", `${root}main.ts`)
        .replace("--allow-read=/Users/you/mcp-audit", `--allow-read=/Users/you/mcp-audit,${root}`)
        .replaceAll("/Users/you/mcp-audit", dir)
        .replace("--allow-run=npx", `--allow-run=${deno}`)
    );
    assert(
      !args.includes("--allow-all") && !args.includes("-A"),
      "the entry does not allow everything",
    );
    args.push("--", deno, "run", "--allow-read", "--allow-env", `${root}scripts/demo_server.ts`);
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(entry.env)) {
      env[k] = v.replaceAll("/Users/you/mcp-audit", dir);
    }
    // The entry's log path, with the backend under test (under jsonl, the entry's own setting).
    Object.assign(env, auditEnv(`${dir}/audit.jsonl`));
    // Claude Desktop gives the entry's env and little else, and starts it outside the repository.
    await using proxy = new StdioCommand(entry.command === "deno" ? deno : entry.command, args, {
      env: { PATH: Deno.env.get("PATH") ?? "", HOME: Deno.env.get("HOME") ?? dir, ...env },
      cwd: "/",
    });
    const client = new Client({ name: "readme-test", version: "1.0.0" });
    await client.connect(proxy.transport());
    const result = await client.callTool({ name: "add", arguments: { a: 1, b: 2 } });
    assertEquals(result.content, [{ type: "text", text: "3" }]);
    await client.close();
    assertEquals((await proxy.finished(deadline(60_000))).code, 0, proxy.stderr.text());
    const log = (await readLog(`${dir}/audit.jsonl`)).records;
    assertEquals(log[0]?.method, "audit/start");
    assertEquals(log.at(-1)?.method, "audit/stop");
    assert(
      log.some((r) => r.tool_name === "add" && r.kind === "response"),
      "the call's response is recorded",
    );
    assert(
      log.every((r) => typeof r.sig === "string" && r.sig.startsWith("hmac-sha256:")),
      "every record is signed",
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

async function python(
  script: string,
  log: string,
  secret: string,
): Promise<{ code: number; out: string }> {
  const out = await new Deno.Command("python3", {
    args: ["-c", script, log],
    env: { AUDIT_SECRET: secret },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    out: new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr),
  };
}

Deno.test({
  name: "the documented Python verifier accepts an intact log and rejects an edited one",
  // The script reads a JSONL file, and the test edits the file's text.
  ignore: STORAGE === "sqlite",
}, async () => {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-readme-" });
  try {
    const secret = "readme-test-secret-0123456789abcdef";
    const log = `${dir}/audit.jsonl`;
    const proxy = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        `${root}main.ts`,
        "--log-level",
        "error",
        "--",
        Deno.execPath(),
        "run",
        "-A",
        `${root}scripts/demo_server.ts`,
      ],
      env: { ...OWN_PORTS, AUDIT_SECRET: secret, MCP_AUDIT_AUDIT_PATH: log },
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const w = proxy.stdin.getWriter();
    await w.write(new TextEncoder().encode(
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":12345678901234567890123,"s":"é\\u2028"}}}\n',
    ));
    await w.close();
    const done = await proxy.output();
    assertEquals(done.code, 0);
    const script = block("docs/audit-log.md", "python", "hashlib");
    assertEquals(
      script,
      Deno.readTextFileSync(`${root}scripts/verify_log.py`).split("\n").slice(2).join("\n"),
    );
    const intact = await python(script, log, secret);
    assertEquals(intact.code, 0, intact.out);
    assert(intact.out.includes("4 records, 0 problems"), intact.out);

    const wrong = await python(script, log, "another-secret");
    assertEquals(wrong.code, 1, wrong.out);

    const text = Deno.readTextFileSync(log);
    Deno.writeTextFileSync(log, text.replace('"a":1,', '"a":2,'));
    const edited = await python(script, log, secret);
    assertEquals(edited.code, 1, edited.out);
    assert(edited.out.includes("seq 3: PROBLEM"), edited.out);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
