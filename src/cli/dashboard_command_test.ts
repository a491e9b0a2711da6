import assert from "node:assert/strict";
import { EventMethod } from "../audit/record.ts";
import {
  type BackendName,
  callFields,
  chainWriter,
  logName,
  resultFields,
} from "../dashboard/testdata/test_log.ts";
import { Logger } from "../log.ts";
import { dashboardCommand, type DashboardIo } from "./dashboard_command.ts";
import { UsageError } from "./errors.ts";

const SECRET = "dashboard-command-secret-7c2e91";
const TOKEN = "dashboard-command-token-4f0a";

/** Writes a small signed log through the real chain and store: start, one call, stop. */
function writeLog(dir: string, backend: BackendName): string {
  const path = `${dir}/${logName(backend)}`;
  const { log } = chainWriter(path, backend, { secret: SECRET });
  log.event(EventMethod.Start, { version: "test" }, "s1");
  log.append(callFields(1, "echo", { message: "hi" }));
  log.append(resultFields(1, "echo", "Echo: hi", 2));
  log.stop({ reason: "test", exit_code: 0 }, "s1");
  log.close();
  return path;
}

/** A run of the command in this process: its output, log lines, and the address it listens on. */
class Run {
  readonly out: string[] = [];
  readonly err: string[] = [];
  readonly lines: Record<string, unknown>[] = [];
  readonly stop = new AbortController();
  readonly exit: Promise<number>;
  readonly address: Promise<string>;

  constructor(args: string[], env: Record<string, string> = {}) {
    let listening: (address: string) => void = () => {};
    this.address = new Promise((resolve) => listening = resolve);
    const logger = new Logger("debug", (line) => {
      const parsed: unknown = JSON.parse(line);
      if (typeof parsed !== "object" || parsed === null) return;
      const fields = Object.fromEntries(Object.entries(parsed));
      this.lines.push(fields);
      if (fields.msg === "dashboard listening" && typeof fields.address === "string") {
        listening(fields.address);
      }
    });
    const io: DashboardIo = {
      env,
      out: (l) => this.out.push(l),
      err: (l) => this.err.push(l),
      logger,
      signal: this.stop.signal,
    };
    this.exit = dashboardCommand(args, io);
    // An exit before listening ends the wait for the address too.
    this.exit.then(() => listening(""), () => listening(""));
  }

  /** Waits for the listening line; fails with what the command said when it exited instead. */
  async origin(): Promise<string> {
    const address = await this.address;
    if (address === "") {
      throw new Error(`the command ended before listening: ${this.err.join("\n")}`);
    }
    return address;
  }
}

async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "mcp-audit-dashboard-cmd-" });
  return {
    path,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true });
    },
  };
}

/** Asks for the chain status until the first pass is over (a bounded number of tries). */
async function settledChain(origin: string, headers: HeadersInit = {}): Promise<unknown> {
  for (let i = 0; i < 500; i++) {
    const status: unknown = await (await fetch(`${origin}/api/v1/verify`, { headers })).json();
    if (
      typeof status === "object" && status !== null && "state" in status &&
      status.state !== "checking"
    ) {
      return status;
    }
  }
  throw new Error("the chain status never left checking");
}

for (const backend of ["jsonl", "sqlite"] as const) {
  Deno.test(`serves a ${backend} log read-only (live: false), checks its chain with AUDIT_SECRET, stops with exit 0`, async () => {
    await using dir = await tempDir();
    const path = writeLog(dir.path, backend);
    const run = new Run(["--log", path, "--port", "0"], { AUDIT_SECRET: SECRET });
    try {
      const origin = await run.origin();
      assert.match(origin, /^http:\/\/127\.0\.0\.1:\d+$/);
      const info = await (await fetch(`${origin}/api/v1/info`)).json();
      assert.deepEqual(
        { storage: info.storage, log: info.log, live: info.live, auth: info.auth },
        { storage: backend, log: path.slice(path.lastIndexOf("/") + 1), live: false, auth: false },
      );
      const chain = await settledChain(origin);
      assert.ok(typeof chain === "object" && chain !== null);
      assert.equal("state" in chain && chain.state, "intact");
      assert.equal("signatures_checked" in chain && chain.signatures_checked, true);
      const records = await (await fetch(`${origin}/api/v1/records?limit=10`)).json();
      assert.deepEqual(records.items.map((r: { seq: number }) => r.seq), [4, 3, 2, 1]);
      const write = await fetch(`${origin}/api/v1/records`, { method: "POST", body: "{}" });
      assert.equal(write.status, 405, "nothing is written through it");
      await write.body?.cancel();
    } finally {
      run.stop.abort();
    }
    assert.equal(await run.exit, 0);
    assert.deepEqual(run.err, []);
  });
}

Deno.test("the token comes from the environment (MCP_AUDIT_DASHBOARD_AUTH_TOKEN or --token-env NAME), never a flag", async () => {
  await using dir = await tempDir();
  const path = writeLog(dir.path, "jsonl");
  for (
    const [args, env] of [
      [[], { MCP_AUDIT_DASHBOARD_AUTH_TOKEN: TOKEN }],
      [["--token-env", "MY_DASHBOARD_TOKEN"], { MY_DASHBOARD_TOKEN: TOKEN }],
    ] as const
  ) {
    const run = new Run(["--log", path, "--port", "0", ...args], env);
    try {
      const origin = await run.origin();
      const refused = await fetch(`${origin}/api/v1/info`);
      assert.equal(refused.status, 401, args.join(" "));
      await refused.body?.cancel();
      const info = await fetch(`${origin}/api/v1/info`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      assert.equal((await info.json()).auth, true);
    } finally {
      run.stop.abort();
    }
    assert.equal(await run.exit, 0);
    assert.ok(!JSON.stringify(run.lines).includes(TOKEN), "the token is never logged");
  }
});

Deno.test("the log, the listener and the token may come from the configuration file", async () => {
  await using dir = await tempDir();
  const path = writeLog(dir.path, "jsonl");
  const file = `${dir.path}/config.yaml`;
  await Deno.writeTextFile(
    file,
    `audit:\n  path: ${path}\ndashboard:\n  bind_address: 127.0.0.1\n  auth:\n    token: ${TOKEN}\n`,
  );
  const run = new Run(["--config", file, "--port", "0"]);
  try {
    const origin = await run.origin();
    const info = await fetch(`${origin}/api/v1/info`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal((await info.json()).log, "audit.jsonl");
  } finally {
    run.stop.abort();
  }
  assert.equal(await run.exit, 0);
});

Deno.test("bad arguments are usage errors (exit 2), --help prints the usage", async () => {
  for (
    const args of [
      ["--nope"],
      ["extra-positional"],
      ["--port", "70000"],
      ["--port", "-1"],
      ["--port", "abc"],
      ["--log", ""],
      ["--token-env", "not a name"],
      ["--token", TOKEN],
    ]
  ) {
    await assert.rejects(
      dashboardCommand(args, { env: {}, out: () => {}, err: () => {} }),
      UsageError,
      args.join(" "),
    );
  }
  const out: string[] = [];
  assert.equal(
    await dashboardCommand(["--help"], { env: {}, out: (l) => out.push(l), err: () => {} }),
    0,
  );
  assert.match(out.join("\n"), /^usage: mcp-audit dashboard/);
});

Deno.test("what cannot be served is one line: no log (1), a taken port (1), an empty --token-env (2), a bad key (2)", async () => {
  await using dir = await tempDir();
  const path = writeLog(dir.path, "jsonl");
  const cases: [string[], Record<string, string>, number, RegExp][] = [
    [["--log", `${dir.path}/missing.jsonl`], {}, 1, /cannot read the audit log .*missing\.jsonl/],
    [
      ["--log", path, "--token-env", "UNSET_TOKEN_VAR"],
      {},
      2,
      /UNSET_TOKEN_VAR: the variable is not set/,
    ],
    [["--log", path, "--public-key", `${dir.path}/no.pem`], {}, 2, /--public-key .*no\.pem/],
  ];
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  cases.push([
    ["--log", path, "--port", String(taken.addr.port)],
    {},
    1,
    /dashboard: cannot listen on 127\.0\.0\.1:\d+.*dashboard\.port/,
  ]);
  for (const [args, env, code, message] of cases) {
    const err: string[] = [];
    const stop = new AbortController();
    const exit = await dashboardCommand(args, {
      env,
      out: () => {},
      err: (l) => err.push(l),
      logger: new Logger("error", () => {}),
      signal: stop.signal,
    });
    assert.equal(exit, code, args.join(" "));
    assert.equal(err.length, 1, err.join("\n"));
    assert.match(err[0]!, message);
  }
});

Deno.test("with no key given, the chain is checked with the key the configuration signs with", async () => {
  await using dir = await tempDir();
  const path = writeLog(dir.path, "jsonl");
  const file = `${dir.path}/config.yaml`;
  await Deno.writeTextFile(file, `audit:\n  path: ${path}\n  secret: ${SECRET}\n`);
  const run = new Run(["--config", file, "--port", "0"]);
  try {
    const chain = await settledChain(await run.origin());
    assert.ok(typeof chain === "object" && chain !== null);
    assert.equal("state" in chain && chain.state, "intact");
    assert.equal("signatures_checked" in chain && chain.signatures_checked, true);
  } finally {
    run.stop.abort();
  }
  assert.equal(await run.exit, 0);
});

Deno.test("a FIFO given as --config is refused without waiting for a writer", async () => {
  if (Deno.build.os === "windows") return;
  await using dir = await tempDir();
  const fifo = `${dir.path}/config.yaml`;
  assert.equal(new Deno.Command("mkfifo", { args: [fifo] }).outputSync().code, 0);
  const run = new Run(["--config", fifo, "--port", "0"]);
  await assert.rejects(run.exit, /named pipe \(FIFO\), not a file/);
});
