/**
 * An SPDX 2.3 SBOM (JSON) of a release: the npm packages the program actually loads, read from
 * Deno's module graph of its entry points and their versions and integrity hashes from
 * `deno.lock`.
 *
 * ```sh
 * deno run --allow-read --allow-write --allow-run --allow-env scripts/release/sbom.ts \
 *   --version 1.2.3 --date 2026-12-06T20:00:00Z --out dist/mcp-audit_1.2.3_sbom.spdx.json
 * ```
 *
 * "Actually loads" is what `deno info --json` finds from `main.ts` and the telemetry worker
 * (loaded by URL, so Deno cannot follow it from `main.ts`): npm modules and the npm specifiers
 * the graph resolved, then every dependency of those, transitively, as the lock file resolves
 * them. Packages only the tests or benchmarks use are not in it. Each package has its version,
 * a `pkg:npm/...` purl, the lock file's SHA-512 integrity as a checksum, its declared licence
 * when its `package.json` in Deno's cache states a plain SPDX expression, and DEPENDS_ON
 * relationships; the same inputs give the same bytes.
 *
 * @module
 */
import { isRecord, parseOptions, REFUSED, refused, usage, writeTextAtomic } from "./common.ts";
import { sbomName, VERSION_PATTERN } from "./targets.ts";

/** An SBOM that cannot be made; the message names the input and what is wrong. */
export class SbomError extends Error {
  override name = "SbomError";
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function stringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === "string");
}

/** One package of the lock file: its id (`name@version[_peers]`), integrity and dependencies. */
interface LockPackage {
  id: string;
  name: string;
  version: string;
  integrity: string;
  dependencies: string[];
}

/** What the SBOM is made from. */
export interface SbomInput {
  /** `deno.lock`, parsed. */
  lock: unknown;
  /** `deno info --json <root>` of each entry point, parsed. */
  graphs: readonly unknown[];
  version: string;
  /** The document's creation time: the release's commit time, so a rebuild gives the same bytes. */
  date: string;
  /** Where the program's source is (`git+https://…@sha`), or NOASSERTION. */
  downloadLocation: string;
  /** Declared licences by package `name@version`, where known. */
  licenses: ReadonlyMap<string, string>;
}

/** `name@version[_peers]` → name and version. */
export function splitId(id: string): { name: string; version: string } {
  const at = id.indexOf("@", 1);
  if (at <= 0) {
    throw new SbomError(`deno.lock: npm package id ${JSON.stringify(id)} has no version`);
  }
  return { name: id.slice(0, at), version: id.slice(at + 1).split("_")[0] ?? "" };
}

function readLock(
  lock: unknown,
): { packages: Map<string, LockPackage>; specifiers: Map<string, string> } {
  if (!isRecord(lock) || lock.version !== "5") {
    throw new SbomError(
      'deno.lock: expected a version "5" lock file; update scripts/release/sbom.ts for its format',
    );
  }
  const npm = lock.npm;
  const specs = lock.specifiers;
  if (!isRecord(npm) || !isRecord(specs)) {
    throw new SbomError('deno.lock: expected "npm" and "specifiers" objects');
  }
  const packages = new Map<string, LockPackage>();
  for (const [id, entry] of Object.entries(npm)) {
    if (!isRecord(entry) || typeof entry.integrity !== "string") {
      throw new SbomError(`deno.lock: npm.${id}: expected an object with an "integrity" string`);
    }
    const deps = entry.dependencies ?? [];
    if (!stringArray(deps)) {
      throw new SbomError(`deno.lock: npm.${id}.dependencies: expected strings`);
    }
    packages.set(id, { id, ...splitId(id), integrity: entry.integrity, dependencies: deps });
  }
  const specifiers = new Map<string, string>();
  for (const [spec, resolved] of Object.entries(specs)) {
    if (typeof resolved !== "string") {
      throw new SbomError(`deno.lock: specifiers.${spec}: expected a string`);
    }
    specifiers.set(spec, resolved);
  }
  return { packages, specifiers };
}

/** The lock ids a graph loads directly: npm modules and the npm specifiers it resolved. */
function directIds(
  graph: unknown,
  index: number,
  specifiers: ReadonlyMap<string, string>,
): string[] {
  const where = `deno info graph ${index + 1}`;
  if (!isRecord(graph) || !Array.isArray(graph.modules) || !isRecord(graph.redirects)) {
    throw new SbomError(
      `${where}: expected "modules" and "redirects" (the output of deno info --json)`,
    );
  }
  const ids: string[] = [];
  for (const module of graph.modules) {
    if (isRecord(module) && module.kind === "npm") {
      if (typeof module.npmPackage !== "string") {
        throw new SbomError(`${where}: npm module ${String(module.specifier)} has no npmPackage`);
      }
      ids.push(module.npmPackage);
    }
  }
  for (const from of Object.keys(graph.redirects)) {
    if (!from.startsWith("npm:")) continue;
    const resolved = specifiers.get(from);
    if (resolved === undefined) {
      throw new SbomError(
        `${where}: ${from} is not in deno.lock's specifiers: run deno install first`,
      );
    }
    ids.push(`${splitId(from.slice(4)).name}@${resolved}`);
  }
  return ids;
}

/** A dependency as the lock file writes it (a full id, or a name when one version is locked). */
function resolveDependency(
  dep: string,
  from: string,
  packages: ReadonlyMap<string, LockPackage>,
): string {
  if (packages.has(dep)) return dep;
  const matches = [...packages.values()].filter((p) => p.name === dep);
  if (matches.length !== 1 || matches[0] === undefined) {
    throw new SbomError(
      `deno.lock: ${from} depends on ${
        JSON.stringify(dep)
      }, which names ${matches.length} locked packages (expected 1)`,
    );
  }
  return matches[0].id;
}

function spdxId(name: string, version: string): string {
  return `SPDXRef-npm-${`${name}-${version}`.replace(/[^A-Za-z0-9.-]/g, "-")}`;
}

function purl(name: string, version: string): string {
  const [scope, bare] = name.startsWith("@") ? name.split("/", 2) : [undefined, name];
  const path = scope === undefined
    ? encodeURIComponent(name)
    : `${encodeURIComponent(scope)}/${encodeURIComponent(bare ?? "")}`;
  return `pkg:npm/${path}@${encodeURIComponent(version)}`;
}

function tarball(name: string, version: string): string {
  const bare = name.startsWith("@") ? name.split("/")[1] ?? name : name;
  return `https://registry.npmjs.org/${name}/-/${bare}-${version}.tgz`;
}

/** `sha512-<base64>` → the SPDX checksum (hex). */
function checksum(integrity: string, id: string): { algorithm: string; checksumValue: string } {
  const match = /^sha512-([A-Za-z0-9+/]+={0,2})$/.exec(integrity);
  if (match === null || match[1] === undefined) {
    throw new SbomError(
      `deno.lock: npm.${id}.integrity: expected sha512-<base64>, got ${JSON.stringify(integrity)}`,
    );
  }
  const bytes = Uint8Array.from(atob(match[1]), (c) => c.charCodeAt(0));
  if (bytes.length !== 64) throw new SbomError(`deno.lock: npm.${id}.integrity: not 64 bytes`);
  return {
    algorithm: "SHA512",
    checksumValue: [...bytes].map((b) => b.toString(16).padStart(2, "0")).join(""),
  };
}

/** A licence string worth stating: a plain SPDX expression (ids, WITH, AND, OR, parentheses). */
export function plainLicense(value: unknown): string | null {
  if (typeof value !== "string") return null;
  const text = value.trim();
  return /^\(?[A-Za-z0-9.+-]+(?:\)? (?:AND|OR|WITH) \(?[A-Za-z0-9.+-]+\)?)*\)?$/.test(text) &&
      !/^SEE|UNLICENSED/i.test(text)
    ? text
    : null;
}

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The SBOM document.
 *
 * @throws {SbomError} when the lock file or a graph is not as expected
 * @example
 * ```ts ignore
 * const doc = await buildSbom({ lock, graphs, version: "1.2.3", date, downloadLocation, licenses });
 * ```
 */
export async function buildSbom(input: SbomInput): Promise<Json> {
  if (!VERSION_PATTERN.test(input.version)) {
    throw new SbomError(
      `--version: expected a release version like 1.2.3, got ${JSON.stringify(input.version)}`,
    );
  }
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/.test(input.date)) {
    throw new SbomError(
      `--date: expected a UTC time like 2026-12-06T20:00:00Z, got ${JSON.stringify(input.date)}`,
    );
  }
  const { packages, specifiers } = readLock(input.lock);
  const direct = new Set<string>();
  input.graphs.forEach((graph, i) => {
    for (const id of directIds(graph, i, specifiers)) direct.add(id);
  });
  // Every package reached, by lock id; then one SPDX package per name@version (ids that differ
  // only by their peers are the same tarball).
  const reached = new Set<string>();
  const queue = [...direct];
  while (queue.length > 0) {
    const id = queue.pop();
    if (id === undefined || reached.has(id)) continue;
    const pkg = packages.get(id);
    if (pkg === undefined) {
      throw new SbomError(`deno.lock: the graph loads ${id}, which is not locked`);
    }
    reached.add(id);
    for (const dep of pkg.dependencies) queue.push(resolveDependency(dep, id, packages));
  }
  const ref = (id: string): string => {
    const { name, version } = splitId(id);
    return spdxId(name, version);
  };
  const byRef = new Map<string, LockPackage>();
  for (const id of reached) {
    const pkg = packages.get(id);
    if (pkg === undefined) continue;
    const key = ref(id);
    const seen = byRef.get(key);
    if (seen !== undefined && (seen.name !== pkg.name || seen.version !== pkg.version)) {
      throw new SbomError(`${seen.id} and ${id} would share the SPDX id ${key}`);
    }
    byRef.set(key, pkg);
  }
  const rootRef = "SPDXRef-Package-mcp-audit";
  const edges = new Set<string>();
  for (const id of direct) edges.add(`${rootRef} ${ref(id)}`);
  for (const id of reached) {
    for (const dep of packages.get(id)?.dependencies ?? []) {
      edges.add(`${ref(id)} ${ref(resolveDependency(dep, id, packages))}`);
    }
  }
  const npmPackages: Json[] = [...byRef.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, pkg]) => ({
      name: pkg.name,
      SPDXID: key,
      versionInfo: pkg.version,
      downloadLocation: tarball(pkg.name, pkg.version),
      filesAnalyzed: false,
      checksums: [checksum(pkg.integrity, pkg.id)],
      licenseConcluded: "NOASSERTION",
      licenseDeclared: input.licenses.get(`${pkg.name}@${pkg.version}`) ?? "NOASSERTION",
      copyrightText: "NOASSERTION",
      externalRefs: [{
        referenceCategory: "PACKAGE-MANAGER",
        referenceType: "purl",
        referenceLocator: purl(pkg.name, pkg.version),
      }],
    }));
  const relationships: Json[] = [
    {
      spdxElementId: "SPDXRef-DOCUMENT",
      relationshipType: "DESCRIBES",
      relatedSpdxElement: rootRef,
    },
    ...[...edges].sort().map((edge) => {
      const [from = "", to = ""] = edge.split(" ");
      return { spdxElementId: from, relationshipType: "DEPENDS_ON", relatedSpdxElement: to };
    }),
  ];
  const body = {
    packages: [
      {
        name: "mcp-audit",
        SPDXID: rootRef,
        versionInfo: input.version,
        downloadLocation: input.downloadLocation,
        filesAnalyzed: false,
        licenseConcluded: "NOASSERTION",
        licenseDeclared: "NOASSERTION",
        copyrightText: "NOASSERTION",
        primaryPackagePurpose: "APPLICATION",
      },
      ...npmPackages,
    ],
    relationships,
  };
  const name = `mcp-audit-${input.version}`;
  // Unique per content and the same for the same content, as SPDX asks of the namespace.
  const namespace = `https://spdx.org/spdxdocs/${name}-${
    (await sha256Hex(JSON.stringify(body))).slice(0, 32)
  }`;
  return {
    spdxVersion: "SPDX-2.3",
    dataLicense: "CC0-1.0",
    SPDXID: "SPDXRef-DOCUMENT",
    name,
    documentNamespace: namespace,
    creationInfo: { created: input.date, creators: ["Tool: mcp-audit-scripts-release-sbom"] },
    ...body,
  };
}

async function denoInfo(root: string): Promise<unknown> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", root],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new SbomError(
      `deno info --json ${root} failed: ${new TextDecoder().decode(out.stderr).slice(-2000)}`,
    );
  }
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

/** Declared licences from each package's `package.json` in Deno's cache (`localPath`). */
async function readLicenses(graphs: readonly unknown[]): Promise<Map<string, string>> {
  const licenses = new Map<string, string>();
  for (const graph of graphs) {
    if (!isRecord(graph) || !isRecord(graph.npmPackages)) continue;
    for (const entry of Object.values(graph.npmPackages)) {
      if (!isRecord(entry) || typeof entry.localPath !== "string") continue;
      if (typeof entry.name !== "string" || typeof entry.version !== "string") continue;
      const text = await Deno.readTextFile(`${entry.localPath}/package.json`).catch(() => null);
      if (text === null) continue;
      let manifest: unknown;
      try {
        manifest = JSON.parse(text);
      } catch {
        continue;
      }
      const license = isRecord(manifest) ? plainLicense(manifest.license) : null;
      if (license !== null) licenses.set(`${entry.name}@${entry.version}`, license);
    }
  }
  return licenses;
}

/** Runs the command line; returns the exit code (0 written, 2 refused). */
export async function main(args: string[]): Promise<number> {
  const values = parseOptions("sbom", args, {
    version: { type: "string" },
    date: { type: "string" },
    lock: { type: "string", default: "deno.lock" },
    root: {
      type: "string",
      multiple: true,
      default: ["main.ts", "src/telemetry/telemetry_worker.ts"],
    },
    "download-location": { type: "string", default: "NOASSERTION" },
    out: { type: "string" },
  });
  if (values === null) return REFUSED;
  if (values.version === undefined || values.date === undefined) {
    return usage(
      "sbom.ts --version 1.2.3 --date ISO [--lock deno.lock] [--root FILE]... [--out FILE]",
    );
  }
  try {
    let lock: unknown;
    try {
      lock = JSON.parse(await Deno.readTextFile(values.lock));
    } catch (e) {
      throw new SbomError(`${values.lock}: cannot read as JSON: ${(e as Error).message}`);
    }
    const graphs: unknown[] = [];
    for (const root of values.root) graphs.push(await denoInfo(root));
    const doc = await buildSbom({
      lock,
      graphs,
      version: values.version,
      date: values.date,
      downloadLocation: values["download-location"],
      licenses: await readLicenses(graphs),
    });
    const out = values.out ?? sbomName(values.version);
    await writeTextAtomic(out, JSON.stringify(doc, null, 2) + "\n");
    console.log(`sbom: ${out}`);
    return 0;
  } catch (e) {
    return refused("sbom", e, [SbomError]);
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
