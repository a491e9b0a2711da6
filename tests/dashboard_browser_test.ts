/**
 * The dashboard in a real browser: Debian's Chromium driven by playwright-core, looking at a real
 * proxy (`deno run main.ts`) in front of a real MCP server, driven by the real MCP SDK client.
 *
 * - live: calls made while the page is open appear without a reload; filters narrow the table and
 *   live in the URL; the detail pane, the charts, the sessions view and the chain badge show what
 *   the log holds; a tampered copy of the log served by a second, standalone dashboard turns the
 *   badge to "problems" at the right seq.
 * - auth: the token dialog, a wrong token, the right one, the throttle's 429; the token never in a
 *   URL or the proxy's log.
 * - XSS: a hostile server and client put markup probes in every field; nothing executes, nothing
 *   loads, the CSP is never violated, the probes read as text.
 * - accessibility (axe-core, both themes, desktop and phone) and the keyboard.
 *
 * With `DASHBOARD_SCREENSHOTS=1` the tests also write the README's screenshots to
 * `docs/screenshots/` (never in CI, so the committed files stay as they are).
 *
 * Page-side code is given to the browser as expression strings: Deno's type library has no DOM,
 * and what runs in the page is the page's business, checked by what it returns.
 *
 * @module
 */
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import axe from "axe-core";
import { DatabaseSync } from "node:sqlite";
import { EmptyResultSchema } from "@modelcontextprotocol/sdk/types.js";
import {
  assert,
  assertEquals,
  type AuditRecord,
  fixture,
  readLog,
  REPO,
  SECRET,
  STORAGE,
  tempDir,
} from "./helpers.ts";
import { DashboardProxy, StandaloneDashboard } from "./dashboard_helpers.ts";
import { writeTraffic } from "./fixtures/dashboard_traffic.ts";
import { JsonlStore } from "../src/audit/storage/jsonl.ts";
import { SqliteStore } from "../src/audit/storage/sqlite.ts";
import {
  LONG_PROBE,
  PROBE_ADDED_TOOL,
  PROBE_CLIENT,
  PROBE_DENIED_TOOL,
  PROBE_METHOD,
  PROBE_REASON,
  PROBE_TOOLS,
  probeAnswer,
  probeOutcome,
  PROBES,
} from "./fixtures/dashboard_probes.ts";

/** How long a page gets to show what the test waits for (the README's goal is 1 s). */
const WAIT_MS = 10_000;
/** Charts and cards refresh at most every 5 s, the chain badge every 10 s. */
const SLOW_WAIT_MS = 25_000;
const SCREENSHOTS = Deno.env.get("DASHBOARD_SCREENSHOTS") === "1";
const SCREENSHOT_DIR = `${REPO}docs/screenshots/`;
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

// ----------------------------------------------------------------------------------------------
// The browser

/** Chromium, as feasibility row 4 measured it. */
function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
    ],
  });
}

/**
 * Set before any page script runs: CSP violations are collected, `window.__pwned` is left alone
 * (a probe that runs sets it).
 */
const WATCH_SCRIPT = `
  window.__csp = [];
  document.addEventListener("securitypolicyviolation", (e) => {
    window.__csp.push(e.violatedDirective + " " + e.blockedURI + " " + (e.sample || ""));
  });
`;

/** A page with its console errors, page errors and requests recorded. */
interface Watched {
  page: Page;
  errors: string[];
  requests: { url: string; authorization: string | null }[];
}

/** A new page in `context`, watched from its first script on. */
async function watchedPage(context: BrowserContext): Promise<Watched> {
  const page = await context.newPage();
  await page.addInitScript({ content: WATCH_SCRIPT });
  const errors: string[] = [];
  const requests: Watched["requests"] = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
  page.on("request", (r) => {
    requests.push({ url: r.url(), authorization: r.headers()["authorization"] ?? null });
  });
  return { page, errors, requests };
}

/** Opens the dashboard and waits until its first table page and stats have rendered. */
async function openDashboard(page: Page, url: string): Promise<void> {
  await page.goto(url);
  await until(page, `document.body.dataset.ready === "1"`, "the page to be ready");
}

/**
 * Waits until `expression` (page JavaScript) is truthy: checked in the page after every change of
 * the DOM and every 50 ms (a URL changes without one). Not `page.waitForFunction`: it evaluates
 * its string with `eval`, which the page's CSP forbids.
 */
async function until(page: Page, expression: string, what: string, ms = WAIT_MS): Promise<void> {
  const ok: unknown = await page.evaluate(`new Promise((resolve) => {
    const started = performance.now();
    const test = () => {
      try {
        return Boolean(${expression});
      } catch {
        return false;
      }
    };
    const observer = new MutationObserver(() => check());
    let timer = 0;
    const check = () => {
      const done = test();
      if (!done && performance.now() - started < ${ms}) return;
      observer.disconnect();
      clearInterval(timer);
      resolve(done);
    };
    observer.observe(document, { subtree: true, childList: true, attributes: true,
      characterData: true });
    timer = setInterval(check, 50);
    check();
  })`);
  if (ok === true) return;
  const state = await page.evaluate(PAGE_STATE).catch(() => "(page gone)");
  throw new Error(
    `timed out after ${ms} ms waiting for ${what}\npage state: ${
      typeof state === "string" ? state : JSON.stringify(state)
    }`,
  );
}

/** What a failed wait prints: the page's hooks as they are. */
const PAGE_STATE = `JSON.stringify({
  url: location.href,
  ready: document.body.dataset.ready,
  live: document.querySelector('[data-testid="live-status"]')?.dataset.state,
  chain: document.querySelector('[data-testid="chain-badge"]')?.textContent,
  rows: Array.from(document.querySelectorAll('[data-testid="exchange-row"]')).slice(0, 30)
    .map((r) => r.dataset.state + " " + r.textContent.slice(0, 120)),
})`;

/** A string as a JavaScript literal inside page code. */
function js(value: string | number): string {
  return JSON.stringify(value);
}

const ROWS = `Array.from(document.querySelectorAll(
  '[data-testid="exchange-table"] [data-testid="exchange-row"]'))`;

/** One table row as the page shows it. */
interface Row {
  key: string;
  state: string;
  time: string;
  direction: string;
  method: string;
  tool: string;
  client: string;
  duration: string;
  status: string;
}

const COLUMNS = [
  "time",
  "direction",
  "method",
  "tool",
  "client",
  "duration",
  "status",
] as const;

/** The table's rows, top to bottom. */
async function rows(page: Page): Promise<Row[]> {
  const value: unknown = await page.evaluate(`${ROWS}.map((r) => {
    const cell = (c) => r.querySelector('[data-col="' + c + '"]')?.textContent ?? "";
    return {
      key: r.dataset.key ?? "", state: r.dataset.state ?? "",
      ${COLUMNS.map((c) => `${c}: cell(${js(c)})`).join(", ")}
    };
  })`);
  assert(Array.isArray(value), "the rows are a list");
  return value.map((v: unknown) => {
    assert(typeof v === "object" && v !== null, "a row is an object");
    const text = (name: string): string => {
      const field: unknown = Reflect.get(v, name);
      assert(typeof field === "string", `a row's ${name} is text`);
      return field;
    };
    return {
      key: text("key"),
      state: text("state"),
      time: text("time"),
      direction: text("direction"),
      method: text("method"),
      tool: text("tool"),
      client: text("client"),
      duration: text("duration"),
      status: text("status"),
    };
  });
}

/** Page JavaScript: the number of rows whose `col` reads `text`. */
function rowsWith(col: (typeof COLUMNS)[number], text: string): string {
  return `${ROWS}.filter((r) => r.querySelector('[data-col="${col}"]')?.textContent.trim() === ${
    js(text)
  }).length`;
}

/** A test id's element's text. */
async function textOf(page: Page, testId: string): Promise<string> {
  return (await page.getByTestId(testId).first().textContent()) ?? "";
}

/** The selected view's URL parameters. */
function params(page: Page): URLSearchParams {
  return new URL(page.url()).searchParams;
}

/** Applies the filter form as it is filled, and waits for the table to be reloaded. */
async function applyFilters(page: Page, check: string, what: string): Promise<void> {
  await page.getByTestId("filter-apply").click();
  await until(page, check, what);
}

/** Clears every filter. */
async function clearFilters(page: Page): Promise<void> {
  await page.getByTestId("filter-clear").click();
  await until(page, `!location.search.match(/[?&](tool|q|errors|method)=/)`, "filters cleared");
}

/** A string as the detail pane's JSON tree shows a string value: JSON-escaped, unquoted. */
function asJsonText(text: string): string {
  return JSON.stringify(text).slice(1, -1);
}

/** A pattern matching exactly `text` (spaces around it aside). */
function exactly(text: string): RegExp {
  return new RegExp(`^\\s*${text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\s*$`);
}

/**
 * Opens the detail of the newest row whose `col` cell matches `tool`, closing an open detail
 * first (at 1280 px the pane lies over the table's right half).
 */
async function openRow(
  page: Page,
  tool: RegExp,
  col: (typeof COLUMNS)[number] = "tool",
): Promise<void> {
  if (await page.getByTestId("detail-pane").isVisible()) {
    await page.getByTestId("detail-close").click();
    await page.getByTestId("detail-pane").waitFor({ state: "hidden", timeout: WAIT_MS });
  }
  await page.getByTestId("exchange-row").filter({
    has: page.locator(`[data-col="${col}"]`, { hasText: tool }),
  }).first().click();
  await page.getByTestId("detail-pane").waitFor({ state: "visible", timeout: WAIT_MS });
}

/** What nothing on the page may have done: run a probe, violate the CSP, log an error. */
async function assertClean(w: Watched, what: string): Promise<void> {
  const pwned: unknown = await w.page.evaluate(`typeof window.__pwned`);
  assertEquals(pwned, "undefined", `${what}: no probe ran (window.__pwned)`);
  const csp: unknown = await w.page.evaluate(`window.__csp`);
  assertEquals(csp, [], `${what}: no securitypolicyviolation`);
  assertEquals(w.errors, [], `${what}: no console or page error`);
}

/** Writes a screenshot for the README when `DASHBOARD_SCREENSHOTS=1`. */
async function screenshot(page: Page, name: string): Promise<void> {
  if (!SCREENSHOTS) return;
  await Deno.mkdir(SCREENSHOT_DIR, { recursive: true });
  // Animations and the caret would make two runs differ for nothing.
  await page.screenshot({
    path: `${SCREENSHOT_DIR}${name}.png`,
    animations: "disabled",
    caret: "hide",
  });
}

// ----------------------------------------------------------------------------------------------
// The log

/** A request record and its answer, read from the log. */
interface Exchange {
  request: AuditRecord;
  answer: AuditRecord;
}

/** The request whose params mention `marker`, with its answer. */
async function exchangeIn(path: string, marker: string): Promise<Exchange> {
  const { records } = await readLog(path);
  const request = records.find((r) =>
    r.kind === "request" && JSON.stringify(r.params).includes(marker)
  );
  assert(request !== undefined, `a request mentioning ${marker} is in the log`);
  const answer = records.find((r) =>
    r.seq > request.seq && (r.kind === "response" || r.kind === "error") &&
    r.session === request.session && r.jsonrpc_id === request.jsonrpc_id &&
    r.direction !== request.direction
  );
  assert(answer !== undefined, `the answer to seq ${request.seq} is in the log`);
  return { request, answer };
}

/**
 * Copies the log (stopped) to `copy` and changes one byte of the record with seq `seq` (a letter
 * of its `id`): the record still parses, its signature and the next record's `prev` no longer
 * hold. SQLite: the row's `line` is changed after dropping the trigger that forbids updates.
 */
async function tamperedCopy(log: string, copy: string, seq: number): Promise<void> {
  const change = (line: string): string => {
    const m = /"id":"([0-9A-Z]{26})"/.exec(line);
    assert(m !== null && m.index !== undefined, `seq ${seq} has an id`);
    const at = m.index + m[0].length - 2;
    const swapped = line[at] === "A" ? "B" : "A";
    return line.slice(0, at) + swapped + line.slice(at + 1);
  };
  if (STORAGE === "jsonl") {
    const text = await Deno.readTextFile(log);
    const lines = text.split("\n");
    const index = lines.findIndex((l) => l.startsWith("{") && JSON.parse(l).seq === seq);
    assert(index >= 0, `seq ${seq} is a line of ${log}`);
    lines[index] = change(lines[index]!);
    await Deno.writeTextFile(copy, lines.join("\n"));
    return;
  }
  for (const suffix of ["", "-wal", "-shm"]) {
    await Deno.copyFile(log + suffix, copy + suffix).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound) || suffix === "") throw e;
    });
  }
  const db = new DatabaseSync(copy);
  try {
    for (const t of db.prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'").all()) {
      db.exec(`DROP TRIGGER "${String(t.name).replaceAll('"', '""')}"`);
    }
    const row = db.prepare("SELECT line FROM records WHERE seq = ?").get(seq);
    assert(row !== undefined && typeof row.line === "string", `seq ${seq} is a row of ${log}`);
    const changed = db.prepare("UPDATE records SET line = ? WHERE seq = ?").run(
      change(row.line),
      seq,
    );
    assertEquals(changed.changes, 1, "one row changed");
  } finally {
    db.close();
  }
}

// ----------------------------------------------------------------------------------------------
// Live

Deno.test("the page shows calls as they happen, filters them in the URL, details them, charts them, lists sessions, and a tampered copy turns the chain badge to problems", async () => {
  await using dir = await tempDir("dash-live");
  const run = crypto.randomUUID().slice(0, 8);
  await using proxy = await DashboardProxy.start({ cwd: dir.path });
  const client = await proxy.client();
  await using browser = await launch();
  await using context = await browser.newContext({ viewport: DESKTOP, colorScheme: "dark" });
  const w = await watchedPage(context);
  const { page } = w;
  await openDashboard(page, proxy.origin);
  assertEquals(await page.getByTestId("live-status").getAttribute("data-state"), "live");
  // Gone if the page reloads: every row below must arrive without one.
  await page.evaluate(`window.__loadedOnce = true`);

  // Each call appears without a reload.
  const messages: string[] = [];
  for (let i = 1; i <= 4; i++) {
    const message = `live-${i}-${run}`;
    messages.push(message);
    await client.callTool({ name: "echo", arguments: { message } });
    await until(page, `${rowsWith("tool", "echo")} === ${i}`, `echo call ${i} to appear`);
  }
  await client.callTool({ name: "get-sum", arguments: { a: 2, b: 3 } });
  await until(page, `${rowsWith("tool", "get-sum")} === 1`, "the get-sum call to appear");
  await client.callTool({ name: "no-such-tool", arguments: {} }).catch(() => {});
  await until(
    page,
    `${ROWS}.some((r) => r.dataset.state === "error" &&
      r.querySelector('[data-col="tool"]')?.textContent.trim() === "no-such-tool")`,
    "the failed call to appear as an error",
  );
  const all = await rows(page);
  assert(
    all.filter((r) => r.tool === "echo").every((r) => r.state === "ok"),
    `echo calls are ok: ${JSON.stringify(all)}`,
  );

  // Filters narrow the table, live in the URL, and a fresh page on that URL shows the same rows.
  await page.getByTestId("filter-tool").fill("echo");
  await applyFilters(
    page,
    `${ROWS}.length === 4 && ${rowsWith("tool", "echo")} === 4`,
    "only the echo calls",
  );
  assertEquals(params(page).get("tool"), "echo");
  const echoKeys = (await rows(page)).map((r) => r.key);
  {
    const again = await watchedPage(context);
    await openDashboard(again.page, page.url());
    await until(again.page, `${ROWS}.length === 4`, "the shared view's rows");
    assertEquals((await rows(again.page)).map((r) => r.key), echoKeys, "the same rows");
    await assertClean(again, "the shared view");
    await again.page.close();
  }
  await clearFilters(page);
  await page.getByTestId("filter-errors").check();
  await applyFilters(
    page,
    `${ROWS}.length >= 1 && ${ROWS}.every((r) => r.dataset.state === "error")`,
    "only the failed calls",
  );
  assertEquals(params(page).get("errors"), "1");
  await clearFilters(page);
  await page.getByTestId("filter-q").fill(messages[1]!);
  await applyFilters(page, `${ROWS}.length === 1`, "the one call mentioning the text");
  assertEquals(params(page).get("q"), messages[1]);

  // The detail pane: request and answer, seq, wire hash, signature, the commands.
  const second = await exchangeIn(proxy.logPath, messages[1]!);
  await page.getByTestId("exchange-row").first().click();
  await page.getByTestId("detail-pane").waitFor({ state: "visible", timeout: WAIT_MS });
  assert((await textOf(page, "detail-request")).includes(messages[1]!), "the request's text");
  assert(
    (await textOf(page, "detail-answer")).includes(`Echo: ${messages[1]}`),
    "the answer's text",
  );
  assert(
    (await textOf(page, "detail-seq")).includes(String(second.request.seq)),
    `the request's seq ${second.request.seq}: ${await textOf(page, "detail-seq")}`,
  );
  assert(
    (await textOf(page, "detail-wire")).includes(second.request.wire_sha256 ?? "(none)"),
    "the request's wire_sha256",
  );
  assert(
    (await textOf(page, "detail-sig")).includes(second.request.sig ?? "(none)"),
    "the request's signature",
  );
  const command = await textOf(page, "detail-command");
  const logName = proxy.logPath.slice(proxy.logPath.lastIndexOf("/") + 1);
  assert(command.includes(`mcp-audit verify ${logName}`), `a verify command: ${command}`);
  assert(
    command.includes("mcp-audit export ") && command.includes(second.request.session ?? "(none)"),
    `an export command for the exchange's session: ${command}`,
  );
  assertEquals(params(page).get("ex"), (await rows(page))[0]!.key, "the selection in the URL");
  await page.getByTestId("detail-close").click();
  await page.getByTestId("detail-pane").waitFor({ state: "hidden", timeout: WAIT_MS });
  await clearFilters(page);

  // Charts and cards: the window's calls, counted from the log.
  const { records } = await readLog(proxy.logPath);
  const calls = records.filter((r) => r.kind === "request" && r.direction === "client_to_server");
  await until(
    page,
    `new RegExp("(^|\\\\D)${calls.length}(\\\\D|$)")
      .test(document.querySelector('[data-testid="card-calls"]')?.textContent ?? "")`,
    `the calls card to say ${calls.length}`,
    SLOW_WAIT_MS,
  );
  for (const chart of ["chart-calls", "chart-latency"]) {
    await until(
      page,
      `document.querySelector('[data-testid="${chart}"] canvas') !== null`,
      `${chart} drawn`,
    );
  }
  await until(
    page,
    `(document.querySelector('[data-testid="top-tools"]')?.textContent ?? "").includes("echo")`,
    "echo among the top tools",
    SLOW_WAIT_MS,
  );
  await until(
    page,
    `document.querySelector('[data-testid="chain-badge"]')?.dataset.state === "intact"`,
    "the chain badge to say intact",
    SLOW_WAIT_MS,
  );

  // The screenshots: the live table with an exchange open, dark and light, and the phone.
  const echoRow = page.getByTestId("exchange-row").filter({ hasText: "echo" }).first();
  await echoRow.click();
  await page.getByTestId("detail-pane").waitFor({ state: "visible", timeout: WAIT_MS });
  await screenshot(page, "live-dark");
  const selected = page.url();
  for (
    const [name, options] of [
      ["live-light", { viewport: DESKTOP, colorScheme: "light" }],
      ["phone", { viewport: PHONE, colorScheme: "dark" }],
    ] as const
  ) {
    if (!SCREENSHOTS) break;
    await using other = await browser.newContext(options);
    const o = await watchedPage(other);
    // The phone shows the table; its detail pane would fill the screen.
    await openDashboard(o.page, name === "phone" ? proxy.origin : selected);
    if (name !== "phone") {
      await o.page.getByTestId("detail-pane").waitFor({ state: "visible", timeout: WAIT_MS });
    }
    await screenshot(o.page, name);
    await assertClean(o, name);
  }

  // Paused while a row is selected: a new call waits behind the "n new" marker until the
  // detail is closed; paused while the pointer is over the table, until the marker is clicked.
  const marked = `(() => {
    const marker = document.querySelector('[data-testid="new-marker"]');
    return marker !== null && !marker.hidden && /\\b1\\b/.test(marker.textContent);
  })()`;
  const liveState = (state: string): string =>
    `document.querySelector('[data-testid="live-status"]')?.dataset.state === ${js(state)}`;
  await until(page, liveState("paused"), "the table to pause while a row is selected");
  await client.callTool({ name: "echo", arguments: { message: `held-1-${run}` } });
  await until(page, marked, "the 1 new marker");
  assertEquals((await rows(page)).filter((r) => r.tool === "echo").length, 4, "the row is held");
  await page.getByTestId("detail-close").click();
  await until(page, `${rowsWith("tool", "echo")} === 5`, "the held row, once the detail closed");
  await until(page, liveState("live"), "the table live again");
  await page.getByTestId("exchange-row").nth(2).hover();
  await until(page, liveState("paused"), "the table to pause under the pointer");
  await client.callTool({ name: "echo", arguments: { message: `held-2-${run}` } });
  await until(page, marked, "the 1 new marker again");
  await page.getByTestId("new-marker").click();
  await until(page, `${rowsWith("tool", "echo")} === 6`, "the held row, once the marker clicked");
  await page.mouse.move(0, 0);
  assertEquals(await page.evaluate(`window.__loadedOnce`), true, "the page was never reloaded");

  // The sessions view: the session and its timeline.
  const session = calls.find((r) => r.method === "tools/call")?.session;
  assert(typeof session === "string", "the calls have a session");
  await page.getByTestId("nav-sessions").click();
  await page.getByTestId("view-sessions").waitFor({ state: "visible", timeout: WAIT_MS });
  const sessionRow = page.locator(
    `[data-testid="session-row"][data-session=${js(session)}]`,
  );
  await sessionRow.waitFor({ state: "visible", timeout: WAIT_MS });
  await sessionRow.getByRole("button").first().click();
  await page.getByTestId("session-timeline").waitFor({ state: "visible", timeout: WAIT_MS });
  await until(
    page,
    `document.querySelectorAll('[data-testid="session-timeline"] [data-testid="timeline-item"]')
      .length >= ${calls.filter((r) => r.session === session).length}`,
    "a timeline item for each of the session's requests",
  );
  const timeline = await textOf(page, "session-timeline");
  assert(timeline.includes("get-sum") && timeline.includes("echo"), `timeline: ${timeline}`);
  await screenshot(page, "sessions");
  await assertClean(w, "the live page");
  await page.close();

  // A tampered copy of the log, served by a second, standalone dashboard.
  await client.close();
  await proxy.finished();
  const { records: stored } = await readLog(proxy.logPath);
  const middle = stored[Math.floor(stored.length / 2)]!;
  const copy = `${dir.path}/tampered.${STORAGE === "sqlite" ? "db" : "jsonl"}`;
  await tamperedCopy(proxy.logPath, copy, middle.seq);
  await using standalone = await StandaloneDashboard.start({ cwd: dir.path, logPath: copy });
  const t = await watchedPage(context);
  await openDashboard(t.page, standalone.origin);
  await until(
    t.page,
    `document.querySelector('[data-testid="chain-badge"]')?.dataset.state === "problems"`,
    "the chain badge to say problems",
    SLOW_WAIT_MS,
  );
  const badge = await textOf(t.page, "chain-badge");
  assert(
    new RegExp(`\\b${middle.seq}\\b`).test(badge),
    `the badge names seq ${middle.seq}: ${badge}`,
  );
  await assertClean(t, "the tampered log's page");
});

// ----------------------------------------------------------------------------------------------
// An hour of traffic

/** The first number in a card's text ("Errors 12 (3.1%)" → 12), thousands separators read. */
async function cardNumber(page: Page, testId: string): Promise<number | null> {
  const m = /\d[\d,]*/.exec(await textOf(page, testId));
  return m === null ? null : Number(m[0].replaceAll(",", ""));
}

/** What the cards of a window over `records` must say, counted here from the records. */
function expectedCards(records: readonly AuditRecord[]): Record<string, number> {
  const requests = records.filter((r) =>
    r.kind === "request" && r.direction === "client_to_server"
  );
  const answers = new Map<string, AuditRecord>();
  for (const r of records) {
    if (r.kind === "response" || r.kind === "error") answers.set(`${r.session} ${r.jsonrpc_id}`, r);
  }
  const action = (r: AuditRecord): unknown =>
    typeof r.decision === "object" && r.decision !== null && !Array.isArray(r.decision)
      ? r.decision.action
      : null;
  const failed = requests.filter((r) => {
    if (action(r) === "deny" || action(r) === "rate_limited") return false;
    const answer = answers.get(`${r.session} ${r.jsonrpc_id}`);
    if (answer === undefined) return false;
    const result = answer.result;
    return answer.kind === "error" ||
      (typeof result === "object" && result !== null && !Array.isArray(result) &&
        result.isError === true);
  });
  return {
    "card-calls": requests.length,
    "card-errors": failed.length,
    "card-denied": requests.filter((r) => action(r) === "deny").length,
    "card-rate-limited": requests.filter((r) => action(r) === "rate_limited").length,
  };
}

Deno.test("over an hour of traffic the cards count what the log holds, the charts draw it, and clicking the top tool filters the table by it", async () => {
  await using dir = await tempDir("dash-hour");
  const path = `${dir.path}/traffic.${STORAGE === "sqlite" ? "db" : "jsonl"}`;
  const now = Date.now();
  writeTraffic({
    store: STORAGE === "sqlite"
      ? new SqliteStore(path, { durability: "none", busyTimeoutMs: 5000 })
      : new JsonlStore(path, { durability: "none" }),
    records: 3000,
    from: now - 55 * 60_000,
    to: now - 60_000,
    secret: SECRET,
    sessionRecords: 400,
  });
  const { records } = await readLog(path);
  const expected = expectedCards(records);
  const calls = new Map<string, number>();
  for (const r of records) {
    if (r.kind === "request" && r.tool_name !== null) {
      calls.set(r.tool_name, (calls.get(r.tool_name) ?? 0) + 1);
    }
  }
  const top = [...calls].sort((a, b) => b[1] - a[1])[0]![0];

  await using dashboard = await StandaloneDashboard.start({ cwd: dir.path, logPath: path });
  await using browser = await launch();
  await using context = await browser.newContext({ viewport: DESKTOP, colorScheme: "dark" });
  const w = await watchedPage(context);
  const { page } = w;
  await openDashboard(page, dashboard.origin);
  const shown: Record<string, number | null> = {};
  for (const card of Object.keys(expected)) shown[card] = await cardNumber(page, card);
  assertEquals(shown, expected, "the 1 hour window's cards");
  for (const chart of ["chart-calls", "chart-latency"]) {
    await until(
      page,
      `document.querySelector('[data-testid="${chart}"] canvas') !== null`,
      `${chart} drawn`,
    );
  }
  const firstTool = page.getByTestId("top-tools").getByRole("button").first();
  assert((await firstTool.textContent() ?? "").includes(top), `${top} is the top tool`);
  if (SCREENSHOTS) {
    // The badge is polled every 10 s: only the picture waits for it (the live test checks it).
    await until(
      page,
      `document.querySelector('[data-testid="chain-badge"]')?.dataset.state === "intact"`,
      "the chain badge to say intact",
      SLOW_WAIT_MS,
    );
    await screenshot(page, "charts");
  }
  await firstTool.click();
  await until(
    page,
    `new URLSearchParams(location.search).get("tool") === ${js(top)} && ${ROWS}.length > 0 &&
      ${ROWS}.length === ${rowsWith("tool", top)}`,
    `the table showing only ${top}`,
  );
  await assertClean(w, "the hour's page");
});

// ----------------------------------------------------------------------------------------------
// Auth

Deno.test({
  name:
    "with a token set the page asks for it, says a wrong one is wrong, works with the right one including the stream, shows the 429 after 11 failures, and the token is in no URL and no log line",
  ignore: STORAGE === "sqlite",
  fn: async () => {
    await using dir = await tempDir("dash-auth");
    const token = `tok-${crypto.randomUUID()}`;
    await using proxy = await DashboardProxy.start({ cwd: dir.path, token });
    const client = await proxy.client();
    await client.callTool({ name: "echo", arguments: { message: "before the page" } });
    await using browser = await launch();

    await using first = await browser.newContext({ viewport: DESKTOP, colorScheme: "dark" });
    const a = await watchedPage(first);
    await a.page.goto(proxy.origin);
    await a.page.getByTestId("token-dialog").waitFor({ state: "visible", timeout: WAIT_MS });
    await screenshot(a.page, "auth");
    await a.page.getByTestId("token-input").fill("not-the-token");
    await a.page.getByTestId("token-submit").click();
    await a.page.getByTestId("auth-error").waitFor({ state: "visible", timeout: WAIT_MS });
    assert(/wrong/i.test(await textOf(a.page, "auth-error")), "a wrong token is called wrong");
    await a.page.getByTestId("token-input").fill(token);
    await a.page.getByTestId("token-submit").click();
    await until(a.page, `document.body.dataset.ready === "1"`, "the page with the token");
    await a.page.getByTestId("token-dialog").waitFor({ state: "hidden", timeout: WAIT_MS });
    await until(a.page, `${rowsWith("tool", "echo")} === 1`, "the call made before");
    await client.callTool({ name: "echo", arguments: { message: "while the page is open" } });
    await until(a.page, `${rowsWith("tool", "echo")} === 2`, "the call arriving on the stream");
    const stream = a.requests.find((r) => new URL(r.url).pathname === "/api/v1/stream");
    assertEquals(stream?.authorization, `Bearer ${token}`, "the stream carries the token");

    // Another tab starts without the token; wrong tokens until the throttle answers 429.
    await using second = await browser.newContext({ viewport: DESKTOP, colorScheme: "light" });
    const b = await watchedPage(second);
    const statuses: number[] = [];
    b.page.on("response", (r) => {
      if (new URL(r.url()).pathname.startsWith("/api/")) statuses.push(r.status());
    });
    await b.page.goto(proxy.origin);
    await b.page.getByTestId("token-dialog").waitFor({ state: "visible", timeout: WAIT_MS });
    for (let attempt = 1; attempt <= 12 && !statuses.includes(429); attempt++) {
      await b.page.getByTestId("token-input").fill(`wrong-${attempt}`);
      const answered = b.page.waitForResponse(
        (r) => new URL(r.url()).pathname.startsWith("/api/"),
        { timeout: WAIT_MS },
      );
      await b.page.getByTestId("token-submit").click();
      await answered;
    }
    assert(statuses.includes(401), `401 before the throttle: ${statuses}`);
    assertEquals(statuses.indexOf(429), statuses.lastIndexOf(429), "one 429: submit is off");
    assert(statuses.length <= 11, `the 11th failure is refused with 429: ${statuses}`);
    await until(
      b.page,
      `/too many attempts/i.test(document.querySelector('[data-testid="auth-error"]')
        ?.textContent ?? "")`,
      "the too-many-attempts message",
    );
    assert(await b.page.getByTestId("token-submit").isDisabled(), "submit waits out the 429");

    for (const r of [...a.requests, ...b.requests]) {
      assert(!r.url.includes(token), `no token in ${r.url}`);
      assert(!decodeURIComponent(r.url).includes(token), `no token in ${r.url}, decoded`);
    }
    const api = a.requests.filter((r) =>
      new URL(r.url).pathname.startsWith("/api/") && r.authorization !== null
    );
    assert(api.length > 3, "the page sent its calls with the token");
    // The 401s and 429s are the console's errors of this tab; the other has none.
    await assertClean({ ...a, errors: a.errors.filter((e) => !/\b401\b/.test(e)) }, "the tab");
    await client.close();
    await proxy.finished();
    assert(!proxy.stderr.text().includes(token), "the token is not in the proxy's log");
  },
});

// ----------------------------------------------------------------------------------------------
// XSS

Deno.test({
  name:
    "markup in tool names, descriptions, methods, client names, arguments, results and error messages is shown as text and never runs, loads or breaks the CSP",
  ignore: STORAGE === "sqlite",
  fn: async () => {
    await using dir = await tempDir("dash-xss");
    await Deno.writeTextFile(
      `${dir.path}/config.yaml`,
      JSON.stringify({
        policy: {
          enabled: true,
          rules: [{ action: "deny", tool_name: PROBE_DENIED_TOOL, reason: PROBE_REASON }],
        },
      }),
    );
    await using proxy = await DashboardProxy.start({
      cwd: dir.path,
      upstream: fixture("dashboard_xss_server.ts"),
    });
    await using browser = await launch();
    await using context = await browser.newContext({ viewport: DESKTOP, colorScheme: "dark" });
    const w = await watchedPage(context);
    const { page } = w;
    await openDashboard(page, proxy.origin);

    const client = await proxy.client(PROBE_CLIENT);
    await client.listTools();
    for (const [i, name] of PROBE_TOOLS.entries()) {
      await client.callTool({ name, arguments: { [PROBES[i % PROBES.length]!]: name } })
        .catch(() => {});
    }
    await client.listTools();
    await client.request({ method: PROBE_METHOD, params: { probe: PROBES[0] } }, EmptyResultSchema)
      .catch(() => {});
    await client.notification({ method: PROBE_METHOD, params: { probe: PROBES[1] } });
    await until(page, `${rowsWith("method", PROBE_METHOD)} === 2`, "the probe method's rows");
    await until(
      page,
      `${rowsWith("method", "tools/call")} === ${PROBE_TOOLS.length}`,
      "every probe tool's call",
    );

    // The table shows each probe as text.
    const table = await rows(page);
    const tools = table.map((r) => r.tool.trim());
    for (const probe of PROBES) assert(tools.includes(probe), `tool ${probe} shown as text`);
    assert(
      tools.some((t) => t.startsWith("LLLLLLLLLL")),
      "the long name is shown (perhaps shortened)",
    );
    assert(table.some((r) => r.client.includes(PROBE_CLIENT)), "the client's name as text");
    assertEquals(
      table.find((r) => r.tool.trim() === PROBE_DENIED_TOOL)?.state,
      "denied",
      "the refused probe tool",
    );

    // Every exchange's detail.
    for (const [i, name] of PROBE_TOOLS.entries()) {
      if (name === LONG_PROBE) continue;
      await openRow(page, exactly(name));
      await until(
        page,
        `(document.querySelector('[data-testid="detail-request"]')?.textContent ?? "")
          .includes(${js(asJsonText(name))})`,
        `the detail of ${name}`,
      );
      const answer = await textOf(page, "detail-answer");
      const expected = name === PROBE_DENIED_TOOL ? "policy denied" : probeAnswer(i);
      assert(answer.includes(asJsonText(expected)), `${probeOutcome(i)} of ${name}: ${answer}`);
      if (name === PROBE_DENIED_TOOL) {
        assert(
          (await textOf(page, "detail-pane")).includes(asJsonText(PROBE_REASON)),
          "the rule's reason",
        );
      }
    }
    // The second listing's answer: the changed description and the added tool, as text.
    await openRow(page, exactly("tools/list"), "method");
    const listing = await textOf(page, "detail-answer");
    for (const text of [`changed: ${PROBES[1]}`, PROBE_ADDED_TOOL, PROBES[5]]) {
      assert(listing.includes(asJsonText(text)), `the listing shows ${text.slice(0, 60)}`);
    }
    await openRow(page, /^\s*LLLLLLLLLL/);
    await until(
      page,
      `(document.querySelector('[data-testid="detail-pane"]')?.textContent ?? "")
        .includes("LLLLLLLLLL")`,
      "the long name's detail",
    );
    await page.getByTestId("detail-close").click();

    // The sessions view and its timeline.
    await page.getByTestId("nav-sessions").click();
    await page.getByTestId("session-row").first().getByRole("button").first().click();
    await until(
      page,
      `document.querySelectorAll('[data-testid="timeline-item"]').length >= ${PROBE_TOOLS.length}`,
      "the hostile session's timeline",
    );
    const timeline = await textOf(page, "session-timeline");
    assert(timeline.includes(PROBES[1]), `the timeline shows the probes as text: ${timeline}`);

    // The guardrails view: the refusal, the pin change, the pins.
    await page.getByTestId("nav-guardrails").click();
    await page.getByTestId("view-guardrails").waitFor({ state: "visible", timeout: WAIT_MS });
    await until(
      page,
      `document.querySelectorAll('[data-testid="refusal-row"]').length >= 1 &&
        document.querySelectorAll('[data-testid="pin-change-row"]').length >= 1`,
      "the refusal and the pin change",
    );
    assert((await textOf(page, "refusal-row")).includes(PROBE_DENIED_TOOL), "the refused tool");
    assert(
      (await textOf(page, "pin-change-row")).includes(PROBE_ADDED_TOOL),
      "the added tool's name",
    );
    assert((await textOf(page, "pins-table")).includes(PROBES[1]), "the pinned tools' names");

    // Nothing ran, loaded or restyled the page.
    await assertClean(w, "the hostile log's page");
    const dom: unknown = await page.evaluate(`({
      iframes: document.querySelectorAll("iframe").length,
      images: document.querySelectorAll('img[src="x"]').length,
      styles: document.querySelectorAll("style").length,
      hidden: getComputedStyle(document.body).display === "none",
    })`);
    assertEquals(dom, { iframes: 0, images: 0, styles: 0, hidden: false }, "no markup from data");
    const foreign = w.requests.filter((r) => !r.url.startsWith(proxy.origin));
    assertEquals(foreign.map((r) => r.url), [], "nothing loaded from elsewhere");
    await client.close();
    await proxy.finished();
  },
});

// ----------------------------------------------------------------------------------------------
// Accessibility and keyboard

/** axe-core's serious and critical violations on the page as it is. */
async function axeViolations(page: Page): Promise<string[]> {
  if (await page.evaluate(`typeof axe`) === "undefined") {
    await page.addScriptTag({ content: axe.source });
  }
  const found: unknown = await page.evaluate(`axe.run(document, { resultTypes: ["violations"] })
    .then((r) => r.violations
      .filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => v.impact + " " + v.id + ": " + v.help + " — " +
        v.nodes.slice(0, 5).map((n) => n.target.join(" ")).join(", ")))`);
  assert(Array.isArray(found), "axe answers a list");
  return found.map(String);
}

Deno.test({
  name:
    "axe-core finds no serious or critical violation in either theme at 1280×800 and 390×844, and j/k, / and Esc work",
  ignore: STORAGE === "sqlite",
  fn: async () => {
    await using dir = await tempDir("dash-a11y");
    await using proxy = await DashboardProxy.start({ cwd: dir.path });
    const client = await proxy.client();
    for (const message of ["one", "two", "three"]) {
      await client.callTool({ name: "echo", arguments: { message } });
    }
    await client.callTool({ name: "get-sum", arguments: { a: 1, b: 2 } });
    await client.callTool({ name: "no-such-tool", arguments: {} }).catch(() => {});
    await using browser = await launch();

    const violations: string[] = [];
    for (const viewport of [DESKTOP, PHONE]) {
      for (const colorScheme of ["dark", "light"] as const) {
        const where = `${viewport.width}×${viewport.height} ${colorScheme}`;
        // The page's CSP forbids injecting axe; this context is used for nothing else.
        await using context = await browser.newContext({ bypassCSP: true, viewport, colorScheme });
        const page = await context.newPage();
        await openDashboard(page, proxy.origin);
        const check = async (view: string): Promise<void> => {
          for (const v of await axeViolations(page)) violations.push(`${where}, ${view}: ${v}`);
        };
        await check("live");
        await page.getByTestId("exchange-row").first().click();
        await page.getByTestId("detail-pane").waitFor({ state: "visible", timeout: WAIT_MS });
        await check("detail");
        await page.getByTestId("detail-close").click();
        await page.getByTestId("nav-sessions").click();
        await page.getByTestId("session-row").first().getByRole("button").first().click();
        await page.getByTestId("session-timeline").waitFor({ state: "visible", timeout: WAIT_MS });
        await check("sessions");
        await page.getByTestId("nav-guardrails").click();
        await page.getByTestId("view-guardrails").waitFor({ state: "visible", timeout: WAIT_MS });
        await check("guardrails");
      }
    }
    assertEquals(violations, [], "axe-core: serious or critical violations");

    // The keyboard, with the CSP on.
    await using context = await browser.newContext({ viewport: DESKTOP, colorScheme: "dark" });
    const w = await watchedPage(context);
    const { page } = w;
    await openDashboard(page, proxy.origin);
    const keys = (await rows(page)).map((r) => r.key);
    assert(keys.length >= 3, "rows to move through");
    const selectedKey = () => params(page).get("ex");
    await page.keyboard.press("j");
    await page.getByTestId("detail-pane").waitFor({ state: "visible", timeout: WAIT_MS });
    assertEquals(selectedKey(), keys[0], "j selects the first row");
    await page.keyboard.press("j");
    await until(page, `new URLSearchParams(location.search).get("ex") === ${js(keys[1]!)}`, "j");
    await page.keyboard.press("k");
    await until(page, `new URLSearchParams(location.search).get("ex") === ${js(keys[0]!)}`, "k");
    await page.keyboard.press("Escape");
    await page.getByTestId("detail-pane").waitFor({ state: "hidden", timeout: WAIT_MS });
    await page.keyboard.press("/");
    await until(
      page,
      `document.activeElement?.dataset.testid === "filter-q"`,
      "/ to focus the search",
    );
    await page.keyboard.press("Escape");
    await until(
      page,
      `document.activeElement?.dataset.testid !== "filter-q"`,
      "Esc to leave the search",
    );
    await assertClean(w, "the keyboard page");
    await client.close();
    await proxy.finished();
  },
});
