// @ts-check
/**
 * The shell commands the detail pane offers. Session ids and methods come from traffic, so
 * every value is quoted for a POSIX shell: a pasted command runs what it shows, nothing more.
 *
 * @module
 */

const PLAIN = /^[A-Za-z0-9_./:@%+=,-]+$/;

/**
 * One shell word: as it is when it holds no special character, else in single quotes.
 * @param {string} value
 * @returns {string}
 */
export function shellQuote(value) {
  if (PLAIN.test(value)) return value;
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/**
 * A file argument that a leading `-` cannot turn into a flag.
 * @param {string} path
 * @returns {string}
 */
function pathArg(path) {
  return shellQuote(path.startsWith("-") ? `./${path}` : path);
}

/**
 * `mcp-audit verify <log>`.
 * @param {string} log
 * @returns {string}
 */
export function verifyCommand(log) {
  return `mcp-audit verify ${pathArg(log)}`;
}

/**
 * @typedef {object} ExportSpan
 * @property {string} firstTs the exchange's first record's time
 * @property {string} lastTs its last record's time
 * @property {string | null} method
 * @property {string | null} session
 */

/**
 * `mcp-audit export` for an exchange's records. The command selects by time, so the window is
 * from the first record's time to just after the last one's (`--to` is exclusive), narrowed by
 * the exchange's method and session; concurrent calls of the same method in the same session and
 * the same milliseconds come out with it.
 * @param {string} log
 * @param {ExportSpan} span
 * @returns {string}
 */
export function exportCommand(log, span) {
  const words = ["mcp-audit", "export"];
  const from = Date.parse(span.firstTs);
  const to = Date.parse(span.lastTs);
  if (!Number.isNaN(from)) words.push(`--from=${new Date(from).toISOString()}`);
  if (!Number.isNaN(to)) words.push(`--to=${new Date(to + 1).toISOString()}`);
  // `--flag=value`: a value starting with "-" stays a value.
  if (span.method !== null && span.method !== "") words.push(shellQuote(`--method=${span.method}`));
  if (span.session !== null && span.session !== "") {
    words.push(shellQuote(`--session=${span.session}`));
  }
  words.push(pathArg(log));
  return words.join(" ");
}
