/**
 * The official MCP Python SDK for the tests, in a virtual environment under `.tools/py` (git
 * ignored), made on first use: `python3 -m venv` and `pip install mcp`. An exclusive lock on
 * `.tools/py.lock` keeps test files that run at once from building it twice; a finished
 * environment is marked by `.tools/py/.ready`, so that one cut short is made again.
 *
 * @module
 */
import { REPO } from "./helpers.ts";

const TOOLS = `${REPO}.tools`;
const VENV = `${TOOLS}/py`;
const READY = `${VENV}/.ready`;

const exists = (path: string): Promise<boolean> => Deno.stat(path).then(() => true, () => false);

async function run(cmd: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
    throw new Error(`${cmd} ${args.join(" ")} failed (exit ${out.code}):\n${text.slice(-3000)}`);
  }
}

let made: Promise<string> | undefined;

/** The path of a Python interpreter that has the `mcp` package, making it when needed. */
export function pythonWithMcp(): Promise<string> {
  made ??= (async () => {
    const python = `${VENV}/bin/python`;
    if (await exists(READY)) return python;
    await Deno.mkdir(TOOLS, { recursive: true });
    using lock = await Deno.open(`${TOOLS}/py.lock`, { create: true, write: true });
    await lock.lock(true);
    try {
      if (await exists(READY)) return python;
      await Deno.remove(VENV, { recursive: true }).catch(() => {});
      // On Debian, `python3 -m venv` needs the python3-venv package (.ci/run installs it).
      await run("python3", ["-m", "venv", VENV]);
      await run(`${VENV}/bin/pip`, ["install", "--retries", "0", "--timeout", "3", "mcp"]);
      await Deno.writeTextFile(READY, "");
      return python;
    } finally {
      await lock.unlock();
    }
  })();
  return made;
}
