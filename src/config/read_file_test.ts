import assert from "node:assert/strict";
import { Logger } from "../log.ts";
import { ConfigError } from "./load.ts";
import { NotReadableFileError, readConfigFile, readRegularFile } from "./read_file.ts";

const quiet = new Logger("error", () => {});

function tempDir(): { dir: string; [Symbol.dispose](): void } {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-read-file-" });
  return { dir, [Symbol.dispose]: () => Deno.removeSync(dir, { recursive: true }) };
}

Deno.test("readRegularFile reads a file whole, through a link", () => {
  using tmp = tempDir();
  Deno.writeTextFileSync(`${tmp.dir}/c.yaml`, "proxy:\n  port: 5 # é\n");
  Deno.symlinkSync(`${tmp.dir}/c.yaml`, `${tmp.dir}/link.yaml`);
  assert.equal(readRegularFile(`${tmp.dir}/c.yaml`), "proxy:\n  port: 5 # é\n");
  assert.equal(readRegularFile(`${tmp.dir}/link.yaml`), "proxy:\n  port: 5 # é\n");
  const big = "x".repeat(200_000);
  Deno.writeTextFileSync(`${tmp.dir}/big.yaml`, big);
  assert.equal(readRegularFile(`${tmp.dir}/big.yaml`), big);
});

Deno.test("readRegularFile refuses a FIFO without opening it, a device, a directory, naming each", () => {
  using tmp = tempDir();
  const fifo = `${tmp.dir}/config.yaml`;
  assert.ok(new Deno.Command("mkfifo", { args: [fifo] }).outputSync().success);
  // A writer waiting on the FIFO would go on the moment a reader opened it: it must not.
  const cases: [string, RegExp][] = [
    [fifo, /is a named pipe \(FIFO\), not a file/],
    ["/dev/zero", /is a character device, not a file/],
    [tmp.dir, /is a directory, not a file/],
  ];
  for (const [path, kind] of cases) {
    assert.throws(
      () => readRegularFile(path),
      (e: unknown) => e instanceof NotReadableFileError && kind.test(e.message),
      path,
    );
  }
  // As ./config.yaml (no --config) it is an error too, never a wait.
  const cwd = Deno.cwd();
  Deno.chdir(tmp.dir);
  try {
    assert.throws(
      () => readConfigFile(undefined, quiet),
      (e: unknown) =>
        e instanceof ConfigError && e.key === "./config.yaml" && /named pipe/.test(e.message),
    );
  } finally {
    Deno.chdir(cwd);
  }
});

Deno.test("readRegularFile refuses a file over the bound with its size, before reading it", () => {
  using tmp = tempDir();
  Deno.writeTextFileSync(`${tmp.dir}/c.json`, "{}" + " ".repeat(100));
  assert.throws(
    () => readRegularFile(`${tmp.dir}/c.json`, 64),
    (e: unknown) =>
      e instanceof NotReadableFileError &&
      e.message === `${tmp.dir}/c.json is 102 bytes; a configuration file is at most 64 bytes`,
  );
  assert.equal(readRegularFile(`${tmp.dir}/c.json`, 102).length, 102);
});

Deno.test("readConfigFile: a missing default file is none; a missing named one is an error naming it", () => {
  using tmp = tempDir();
  const cwd = Deno.cwd();
  Deno.chdir(tmp.dir);
  try {
    assert.equal(readConfigFile(undefined, quiet), undefined);
  } finally {
    Deno.chdir(cwd);
  }
  assert.throws(
    () => readConfigFile(`${tmp.dir}/none.json`, quiet),
    (e: unknown) => e instanceof ConfigError && e.key === `--config ${tmp.dir}/none.json`,
  );
});
