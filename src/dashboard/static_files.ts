/**
 * The page's files (`dashboard/` beside `src/`): read once at start into memory, each with its
 * SHA-256, and served from there. Resolved from this module's URL, so that a binary built with
 * `deno compile --include dashboard` serves the very bytes a checkout does.
 *
 * Only what was read at start is ever served: a request names a key of that map or gets nothing,
 * so `..`, a directory, or a file added later cannot be reached. Symbolic links are not followed
 * (one could point anywhere), hidden files and `README.md` (notes for people, not the page) are
 * left out, and the whole is bounded: 64 files, 4 MiB each.
 *
 * @module
 */
import { fileURLToPath } from "node:url";

/** Most files served. */
export const MAX_FILES = 64;
/** Largest file served. */
export const MAX_FILE_BYTES = 4 << 20;
/** How deep below `dashboard/` files are looked for. */
const MAX_DEPTH = 8;

/** The page's files where this module expects them: `dashboard/` at the repository's root. */
export const DASHBOARD_DIR: URL = new URL("../../dashboard/", import.meta.url);

/** The page's files cannot be read or are not what the page needs: the dashboard cannot start. */
export class StaticFilesError extends Error {
  override name = "StaticFilesError";
}

/** One file of the page. */
export interface StaticFile {
  /** Its path below `dashboard/`, `/`-separated (`vendor/uplot/uPlot.min.css`). */
  path: string;
  body: Uint8Array<ArrayBuffer>;
  /** Lower-case hex SHA-256 of the body. */
  sha256: string;
  contentType: string;
}

const TYPES: Readonly<Record<string, string>> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  mjs: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  json: "application/json",
  webmanifest: "application/manifest+json",
  svg: "image/svg+xml",
  png: "image/png",
  ico: "image/x-icon",
  woff2: "font/woff2",
  txt: "text/plain; charset=utf-8",
  md: "text/plain; charset=utf-8",
};

/** The content type of a file by its name; `LICENSE` and the like are text. */
export function contentTypeOf(path: string): string {
  const name = path.slice(path.lastIndexOf("/") + 1);
  const dot = name.lastIndexOf(".");
  if (dot === -1) return /^[A-Z][A-Z0-9_-]*$/.test(name) ? TYPES.txt! : "application/octet-stream";
  return TYPES[name.slice(dot + 1).toLowerCase()] ?? "application/octet-stream";
}

function hex(bytes: ArrayBuffer): string {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Whether an `If-None-Match` value names `etag` (weak comparison, as RFC 9110 §13.1.2 asks). */
export function etagMatches(ifNoneMatch: string | null | undefined, etag: string): boolean {
  if (ifNoneMatch === null || ifNoneMatch === undefined) return false;
  const value = ifNoneMatch.trim();
  if (value === "*") return true;
  return value.split(",").some((tag) => tag.trim().replace(/^W\//, "") === etag);
}

/** The page's files, read once. */
export class StaticFiles {
  readonly #files: ReadonlyMap<string, StaticFile>;
  /** Where they were read from (a path, for messages). */
  readonly root: string;

  private constructor(root: string, files: ReadonlyMap<string, StaticFile>) {
    this.root = root;
    this.#files = files;
  }

  /**
   * Reads every file below `root` (`dashboard/` by default).
   * @throws {StaticFilesError} with one line saying what to allow or include, when the directory
   *   or a file cannot be read, there is no `index.html`, or a bound is passed
   *
   * @example
   * ```ts ignore
   * const files = await StaticFiles.load();
   * files.get("index.html")?.sha256;
   * ```
   */
  static async load(root: URL = DASHBOARD_DIR): Promise<StaticFiles> {
    const dir = fileURLToPath(root).replace(/\/?$/, "/");
    const files = new Map<string, StaticFile>();
    try {
      await walk(dir, "", 0, files);
    } catch (e) {
      if (e instanceof StaticFilesError) throw e;
      if (e instanceof Deno.errors.NotFound) {
        throw new StaticFilesError(
          `the dashboard's files are not at ${dir}: run from a checkout that has them, build with ` +
            `deno compile --include dashboard, or turn the dashboard off (--no-dashboard)`,
        );
      }
      if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
        throw new StaticFilesError(
          `cannot read the dashboard's files at ${dir}: allow it (--allow-read=${dir}) or turn ` +
            `the dashboard off (--no-dashboard)`,
        );
      }
      throw new StaticFilesError(`cannot read the dashboard's files at ${dir}: ${describe(e)}`);
    }
    if (!files.has("index.html")) {
      throw new StaticFilesError(
        `the dashboard's files at ${dir} have no index.html: the page is missing from this build`,
      );
    }
    return new StaticFiles(dir, files);
  }

  /** A file by its path below `dashboard/`, or undefined. */
  get(path: string): StaticFile | undefined {
    return this.#files.get(path);
  }

  /** Every file's SHA-256, by path. */
  hashes(): Record<string, string> {
    return Object.fromEntries([...this.#files.values()].map((f) => [f.path, f.sha256]));
  }

  /** How many files there are. */
  get size(): number {
    return this.#files.size;
  }
}

async function walk(
  dir: string,
  prefix: string,
  depth: number,
  files: Map<string, StaticFile>,
): Promise<void> {
  const entries: Deno.DirEntry[] = [];
  for await (const entry of Deno.readDir(dir)) entries.push(entry);
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    // Links are not followed: one could lead out of the directory. Hidden files and notes for
    // people are not the page's.
    if (entry.isSymlink || entry.name.startsWith(".") || entry.name === "README.md") continue;
    const path = `${prefix}${entry.name}`;
    if (entry.isDirectory) {
      if (depth < MAX_DEPTH) await walk(`${dir}${entry.name}/`, `${path}/`, depth + 1, files);
      continue;
    }
    if (!entry.isFile) continue;
    if (files.size >= MAX_FILES) {
      throw new StaticFilesError(
        `the dashboard's files at ${dir} are more than ${MAX_FILES}: not a dashboard directory?`,
      );
    }
    let body: Uint8Array<ArrayBuffer>;
    try {
      // lstat again: a file swapped for a link since the listing is not followed either.
      const info = await Deno.lstat(`${dir}${entry.name}`);
      if (!info.isFile) continue;
      if (info.size > MAX_FILE_BYTES) {
        throw new StaticFilesError(
          `the dashboard's file ${path} is larger than ${MAX_FILE_BYTES} bytes`,
        );
      }
      body = await Deno.readFile(`${dir}${entry.name}`);
    } catch (e) {
      if (e instanceof StaticFilesError) throw e;
      throw new StaticFilesError(
        `cannot read the dashboard's file ${dir}${entry.name}: ${
          e instanceof Deno.errors.NotCapable ? "not covered by --allow-read" : describe(e)
        }`,
      );
    }
    if (body.length > MAX_FILE_BYTES) {
      throw new StaticFilesError(
        `the dashboard's file ${path} is larger than ${MAX_FILE_BYTES} bytes`,
      );
    }
    files.set(path, {
      path,
      body,
      sha256: hex(await crypto.subtle.digest("SHA-256", body)),
      contentType: contentTypeOf(path),
    });
  }
}

/**
 * The asset at `path` (below `/assets/`, as the client wrote it), or null when there is none of
 * that name. `ETag` is the file's SHA-256 and `Cache-Control: no-cache` makes the browser ask
 * again each time: a matching `If-None-Match` is a 304 without the body.
 */
export function assetResponse(
  files: StaticFiles,
  path: string,
  ifNoneMatch: string | null | undefined,
  head: boolean,
): Response | null {
  // Only names read at start exist; these are refused before the lookup all the same.
  if (path === "" || path.includes("\\") || path.includes("\0")) return null;
  if (path.split("/").some((s) => s === "" || s === "." || s === "..")) return null;
  const file = files.get(path);
  if (file === undefined) return null;
  const etag = `"${file.sha256}"`;
  const headers = { ETag: etag, "Cache-Control": "no-cache" };
  if (etagMatches(ifNoneMatch, etag)) return new Response(null, { status: 304, headers });
  return new Response(head ? null : file.body, {
    status: 200,
    headers: {
      ...headers,
      "Content-Type": file.contentType,
      "Content-Length": String(file.body.length),
    },
  });
}

/** The page itself: never cached, so that a new build's page (naming new assets) is always read. */
export function indexResponse(files: StaticFiles, head: boolean): Response {
  const file = files.get("index.html");
  if (file === undefined) throw new StaticFilesError("no index.html");
  return new Response(head ? null : file.body, {
    status: 200,
    headers: {
      "Content-Type": file.contentType,
      "Content-Length": String(file.body.length),
      "Cache-Control": "no-store",
    },
  });
}
