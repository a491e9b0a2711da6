// @ts-check
/// <reference lib="dom" />
/**
 * Building DOM from data. Every value is set as text (`textContent`) or as an attribute that
 * neither runs nor loads anything; no markup is ever parsed from a string.
 *
 * @module
 */

/**
 * @typedef {object} ElOptions
 * @property {string} [cls] class names
 * @property {string} [testid] `data-testid`
 * @property {Record<string, string>} [attrs] plain attributes (never `on*`, `href`, `src`, `style`)
 * @property {Record<string, string>} [data] `data-*` attributes
 * @property {string} [text] text content
 */

const FORBIDDEN_ATTR = /^(on|href$|src$|srcdoc$|style$|formaction$|action$|xlink:href$)/i;

/**
 * A new element with text and safe attributes, and children appended in order.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {ElOptions} [options]
 * @param {(Node | string | null | undefined)[]} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function el(tag, options = {}, ...children) {
  const node = document.createElement(tag);
  if (options.cls !== undefined) node.className = options.cls;
  if (options.testid !== undefined) node.dataset.testid = options.testid;
  for (const [name, value] of Object.entries(options.attrs ?? {})) {
    // A guard against a mistake in this code, not against data: names are always constants here.
    if (FORBIDDEN_ATTR.test(name)) throw new Error(`refusing to set attribute ${name}`);
    node.setAttribute(name, value);
  }
  for (const [name, value] of Object.entries(options.data ?? {})) node.dataset[name] = value;
  if (options.text !== undefined) node.textContent = options.text;
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child);
  }
  return node;
}

/**
 * The element with this id, of this class; throws when the page's markup lacks it.
 * @template {HTMLElement} T
 * @param {string} id
 * @param {new () => T} type
 * @returns {T}
 */
export function byId(id, type) {
  const node = document.getElementById(id);
  if (!(node instanceof type)) throw new Error(`index.html lacks #${id} (${type.name})`);
  return node;
}

/**
 * Removes every child of `node`.
 * @param {ParentNode} node
 */
export function clear(node) {
  node.replaceChildren();
}

/**
 * A time as the user reads it: local date and time with milliseconds.
 * @param {string} iso
 * @returns {string}
 */
export function formatTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const pad = (/** @type {number} */ n, /** @type {number} */ w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${
      pad(d.getMilliseconds(), 3)
    }`;
}

/**
 * A short time for a table row: `HH:MM:SS.mmm` today, the date before it otherwise.
 * @param {string} iso
 * @param {Date} [now]
 * @returns {string}
 */
export function formatRowTime(iso, now = new Date()) {
  const full = formatTime(iso);
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const sameDay = d.getFullYear() === now.getFullYear() && d.getMonth() === now.getMonth() &&
    d.getDate() === now.getDate();
  return sameDay ? full.slice(11) : full;
}

/**
 * Milliseconds for people: `850 ms`, `1.25 s`, `—` when unknown.
 * @param {number | null | undefined} ms
 * @returns {string}
 */
export function formatMs(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "—";
  if (ms === 0) return "0 ms";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms * 10) / 10} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)} s`;
  return `${(ms / 60_000).toFixed(1)} min`;
}

/**
 * A count with thousands separators.
 * @param {number} n
 * @returns {string}
 */
export function formatCount(n) {
  return n.toLocaleString("en-US");
}

/**
 * A JSON-RPC id as text: a string quoted, so `"1"` and `1` read differently.
 * @param {unknown} id
 * @returns {string}
 */
export function formatId(id) {
  if (id === null || id === undefined) return "—";
  if (typeof id === "string") return JSON.stringify(id);
  if (typeof id === "number") return String(id);
  return JSON.stringify(id) ?? "—";
}

/** Direction names as arrows with words (the words are what a screen reader says). */
const DIRECTIONS = {
  client_to_server: "client → server",
  server_to_client: "server → client",
  proxy: "proxy",
};

/**
 * @param {"client_to_server" | "server_to_client" | "proxy"} d
 * @returns {string}
 */
export function formatDirection(d) {
  return DIRECTIONS[d];
}

/**
 * Text cut to `max` characters with an ellipsis.
 * @param {string} text
 * @param {number} max
 * @returns {string}
 */
export function cut(text, max) {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/**
 * Whether the keyboard focus is somewhere the user types.
 * @param {EventTarget | null} target
 * @returns {boolean}
 */
export function isTyping(target) {
  if (!(target instanceof HTMLElement)) return false;
  if (target.isContentEditable) return true;
  if (target instanceof HTMLTextAreaElement || target instanceof HTMLSelectElement) return true;
  if (target instanceof HTMLInputElement) {
    return !["checkbox", "radio", "button", "submit", "reset"].includes(target.type);
  }
  return false;
}

/**
 * Copies text to the clipboard; where the clipboard API is not available (a page not served
 * from a secure context), selects the text so the user can copy it.
 * @param {string} text
 * @param {HTMLElement} shown the element showing the text
 * @returns {Promise<boolean>} whether it was copied
 */
export async function copyText(text, shown) {
  try {
    if (navigator.clipboard !== undefined) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // fall through to selecting it
  }
  const range = document.createRange();
  range.selectNodeContents(shown);
  const selection = getSelection();
  selection?.removeAllRanges();
  selection?.addRange(range);
  return false;
}
