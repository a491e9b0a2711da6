/**
 * `deno task test`: every test once with the audit log in JSONL (the default), then the
 * end-to-end tests again with `TEST_STORAGE=sqlite`, so that each of them runs against both
 * storage backends (see `tests/helpers.ts`, `STORAGE` and `auditEnv`).
 *
 * Both passes run even when the first fails, so that one run names every failure; the exit code
 * is the first pass's that failed, else 0. Arguments are handed to both `deno test` runs, after
 * the paths (`deno task test --filter anchor`). To run one backend alone:
 * `TEST_STORAGE=sqlite deno test --allow-all --no-check=remote tests/`.
 *
 * @module
 */
import { fileURLToPath } from "node:url";

/** One `deno test` run: the backend its proxies write, and what it tests. */
interface Pass {
  storage: "jsonl" | "sqlite";
  paths: string[];
}

/** The unit tests start no proxy; they run once. */
const PASSES: readonly Pass[] = [
  { storage: "jsonl", paths: ["tests/", "src/"] },
  { storage: "sqlite", paths: ["tests/"] },
];

async function run(pass: Pass, extra: readonly string[]): Promise<number> {
  // `.ci/run` reads this line to say which pass a failed test is from.
  console.log(`\n== deno test, TEST_STORAGE=${pass.storage}: ${pass.paths.join(" ")} ==`);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["test", "--allow-all", "--no-check=remote", ...pass.paths, ...extra],
    cwd: fileURLToPath(new URL("../", import.meta.url)),
    env: { TEST_STORAGE: pass.storage },
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  return (await child.status).code;
}

if (import.meta.main) {
  let code = 0;
  for (const pass of PASSES) {
    const passCode = await run(pass, Deno.args);
    if (code === 0) code = passCode;
  }
  Deno.exit(code);
}
