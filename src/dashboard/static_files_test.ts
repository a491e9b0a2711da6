import assert from "node:assert/strict";
import { pathToFileURL } from "node:url";
import {
  assetResponse,
  contentTypeOf,
  DASHBOARD_DIR,
  etagMatches,
  indexResponse,
  MAX_FILE_BYTES,
  MAX_FILES,
  StaticFiles,
  StaticFilesError,
} from "./static_files.ts";

const encoder = new TextEncoder();

async function sha256(text: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", encoder.encode(text));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A dashboard directory in a temporary directory, with an outside file beside it. */
async function pageDir(): Promise<{ root: URL; base: string } & AsyncDisposable> {
  const base = await Deno.makeTempDir({ prefix: "mcp-audit-static-" });
  const dir = `${base}/dashboard`;
  await Deno.mkdir(`${dir}/vendor/lib`, { recursive: true });
  await Deno.writeTextFile(`${dir}/index.html`, "<!doctype html><title>t</title>");
  await Deno.writeTextFile(`${dir}/app.js`, "export const x = 1;\n");
  await Deno.writeTextFile(`${dir}/vendor/lib/lib.css`, "body{}");
  await Deno.writeTextFile(`${dir}/vendor/lib/LICENSE`, "MIT");
  await Deno.writeTextFile(`${dir}/README.md`, "notes");
  await Deno.writeTextFile(`${dir}/.hidden`, "no");
  await Deno.writeTextFile(`${base}/secret.txt`, "outside");
  await Deno.symlink(`${base}/secret.txt`, `${dir}/secret.txt`);
  await Deno.symlink(`${base}`, `${dir}/up`);
  return {
    root: pathToFileURL(`${dir}/`),
    base,
    async [Symbol.asyncDispose]() {
      await Deno.remove(base, { recursive: true });
    },
  };
}

Deno.test("the page's files are read with their SHA-256; links, hidden files and README.md are not", async () => {
  await using d = await pageDir();
  const files = await StaticFiles.load(d.root);
  assert.deepEqual(Object.keys(files.hashes()).sort(), [
    "app.js",
    "index.html",
    "vendor/lib/LICENSE",
    "vendor/lib/lib.css",
  ]);
  assert.equal(files.get("app.js")?.sha256, await sha256("export const x = 1;\n"));
  assert.equal(files.get("app.js")?.contentType, "text/javascript; charset=utf-8");
  assert.equal(files.get("vendor/lib/LICENSE")?.contentType, "text/plain; charset=utf-8");
});

Deno.test("an asset is served with its ETag and no-cache; a matching If-None-Match is a 304 without body", async () => {
  await using d = await pageDir();
  const files = await StaticFiles.load(d.root);
  const res = assetResponse(files, "vendor/lib/lib.css", null, false);
  assert.ok(res !== null);
  assert.equal(res.status, 200);
  const etag = `"${await sha256("body{}")}"`;
  assert.equal(res.headers.get("etag"), etag);
  assert.equal(res.headers.get("cache-control"), "no-cache");
  assert.equal(res.headers.get("content-type"), "text/css; charset=utf-8");
  assert.equal(await res.text(), "body{}");
  for (const inm of [etag, `W/${etag}`, `"other", ${etag}`, "*"]) {
    const again = assetResponse(files, "vendor/lib/lib.css", inm, false);
    assert.equal(again?.status, 304, inm);
    assert.equal(again?.body, null);
    assert.equal(again?.headers.get("etag"), etag);
  }
  assert.equal(assetResponse(files, "vendor/lib/lib.css", '"other"', false)?.status, 200);
  const head = assetResponse(files, "app.js", null, true);
  assert.equal(head?.body, null);
  assert.equal(head?.headers.get("content-length"), "20");
});

Deno.test("nothing but the files read is served: traversal, directories, links and hidden files are not found", async () => {
  await using d = await pageDir();
  const files = await StaticFiles.load(d.root);
  for (
    const path of [
      "",
      "vendor",
      "vendor/",
      "vendor/lib",
      "../secret.txt",
      "secret.txt",
      "up/secret.txt",
      "vendor/../app.js",
      "./app.js",
      "vendor//lib/lib.css",
      "vendor\\lib\\lib.css",
      "app.js\0",
      "/etc/passwd",
      "README.md",
      ".hidden",
      "%2e%2e/secret.txt",
    ]
  ) {
    assert.equal(assetResponse(files, path, null, false), null, JSON.stringify(path));
  }
});

Deno.test("the page is index.html, never cached", async () => {
  await using d = await pageDir();
  const files = await StaticFiles.load(d.root);
  const res = indexResponse(files, false);
  assert.equal(res.headers.get("content-type"), "text/html; charset=utf-8");
  assert.equal(res.headers.get("cache-control"), "no-store");
  assert.equal(await res.text(), "<!doctype html><title>t</title>");
});

Deno.test("a missing directory, a missing index.html, too many or too large files: one clear error at start", async () => {
  await using d = await pageDir();
  await assert.rejects(
    StaticFiles.load(pathToFileURL(`${d.base}/nowhere/`)),
    (e: unknown) =>
      e instanceof StaticFilesError && /are not at .*nowhere.*--include dashboard/.test(e.message),
  );
  await Deno.remove(new URL("index.html", d.root));
  await assert.rejects(StaticFiles.load(d.root), /have no index\.html/);
  await Deno.writeTextFile(new URL("index.html", d.root), "<!doctype html>");
  await Deno.writeFile(new URL("big.png", d.root), new Uint8Array(MAX_FILE_BYTES + 1));
  await assert.rejects(StaticFiles.load(d.root), /big\.png is larger than/);
  await Deno.remove(new URL("big.png", d.root));
  for (let i = 0; i < MAX_FILES; i++) await Deno.writeTextFile(new URL(`f${i}.txt`, d.root), "x");
  await assert.rejects(StaticFiles.load(d.root), /more than 64/);
});

Deno.test("the files are looked for in dashboard/ at the repository's root, whatever the working directory", () => {
  assert.equal(DASHBOARD_DIR.href, new URL("../../dashboard/", import.meta.url).href);
  assert.ok(Deno.statSync(DASHBOARD_DIR).isDirectory);
});

Deno.test("content types by name; unknown ones are octet-stream (with nosniff, never run)", () => {
  assert.equal(contentTypeOf("a/b.svg"), "image/svg+xml");
  assert.equal(contentTypeOf("x.PNG"), "image/png");
  assert.equal(contentTypeOf("LICENSE"), "text/plain; charset=utf-8");
  assert.equal(contentTypeOf("x.exe"), "application/octet-stream");
  assert.equal(contentTypeOf("Makefile"), "application/octet-stream");
});

Deno.test("etagMatches: exact, weak, listed and * match; nothing else does", () => {
  assert.ok(etagMatches('"a"', '"a"'));
  assert.ok(etagMatches('W/"a"', '"a"'));
  assert.ok(etagMatches(' "b" , "a" ', '"a"'));
  assert.ok(etagMatches("*", '"a"'));
  assert.ok(!etagMatches(null, '"a"'));
  assert.ok(!etagMatches('"ab"', '"a"'));
  assert.ok(!etagMatches("a", '"a"'));
});
