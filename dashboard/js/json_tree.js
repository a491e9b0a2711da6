// @ts-check
/// <reference lib="dom" />
/**
 * A JSON value as a collapsible tree of `<details>`, text only. Paths are written the way the
 * redactor writes them (`params.arguments.token`, `params.items[0]`, `params["x-y"]`), so a node
 * whose path the record lists in `redacted` carries a badge.
 *
 * Large values stay cheap: a closed node builds its children when first opened, a container
 * shows its first 500 members, and long strings are cut with a "show all" toggle.
 *
 * @module
 */
import { el } from "./dom.js";

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
/** Strings longer than this are cut (the toggle shows the rest). */
const CUT_AT = 240;
const MAX_MEMBERS = 500;
const MAX_DEPTH = 64;

/**
 * A member's path, as `src/audit/redact.ts` writes it.
 * @param {string} parent "" for the root
 * @param {string | number} key
 * @returns {string}
 */
export function memberPath(parent, key) {
  if (typeof key === "number") return `${parent}[${key}]`;
  if (parent === "") return IDENTIFIER.test(key) ? key : `[${JSON.stringify(key)}]`;
  return IDENTIFIER.test(key) ? `${parent}.${key}` : `${parent}[${JSON.stringify(key)}]`;
}

/**
 * @typedef {object} TreeOptions
 * @property {ReadonlySet<string>} redacted paths to mark
 * @property {number} openDepth containers shallower than this start open
 */

/**
 * The tree of an object's members (a record's fields at the top).
 * @param {unknown} value
 * @param {TreeOptions} options
 * @returns {HTMLElement}
 */
export function jsonTree(value, options) {
  const root = el("div", { cls: "json-tree" });
  if (isContainer(value)) {
    root.append(members(value, "", 0, options));
  } else {
    root.append(leaf(value));
  }
  return root;
}

/**
 * @param {unknown} v
 * @returns {v is unknown[] | Record<string, unknown>}
 */
function isContainer(v) {
  return typeof v === "object" && v !== null;
}

/**
 * @param {unknown[] | Record<string, unknown>} value
 * @returns {[string | number, unknown][]}
 */
function entries(value) {
  if (Array.isArray(value)) return value.map((v, i) => [i, v]);
  return Object.entries(value);
}

/**
 * @param {unknown[] | Record<string, unknown>} value
 * @param {string} path
 * @param {number} depth
 * @param {TreeOptions} options
 * @returns {HTMLUListElement}
 */
function members(value, path, depth, options) {
  const list = el("ul", { cls: "json-members" });
  const all = entries(value);
  for (const [key, child] of all.slice(0, MAX_MEMBERS)) {
    list.append(member(key, child, memberPath(path, key), depth + 1, options));
  }
  if (all.length > MAX_MEMBERS) {
    list.append(
      el("li", { cls: "json-more", text: `… ${all.length - MAX_MEMBERS} more not shown` }),
    );
  }
  return list;
}

/**
 * @param {string | number} key
 * @param {unknown} value
 * @param {string} path
 * @param {number} depth
 * @param {TreeOptions} options
 * @returns {HTMLLIElement}
 */
function member(key, value, path, depth, options) {
  const isRedacted = options.redacted.has(path);
  const label = el("span", { cls: "json-key", text: typeof key === "number" ? `${key}` : key });
  const badge = isRedacted
    ? el("span", { cls: "badge badge-redacted", text: "redacted", attrs: { title: path } })
    : null;
  const item = el("li", { cls: isRedacted ? "json-member is-redacted" : "json-member" });
  if (isRedacted) item.dataset.redactedPath = path;
  if (!isContainer(value) || depth >= MAX_DEPTH) {
    item.append(label, el("span", { cls: "json-colon", text: ": " }), leaf(value), badge ?? "");
    return item;
  }
  const size = Array.isArray(value) ? value.length : Object.keys(value).length;
  if (size === 0) {
    item.append(
      label,
      el("span", { cls: "json-colon", text: ": " }),
      el("span", { cls: "json-punct", text: Array.isArray(value) ? "[]" : "{}" }),
      badge ?? "",
    );
    return item;
  }
  const summary = el(
    "summary",
    {},
    label,
    el("span", {
      cls: "json-punct",
      text: Array.isArray(value) ? ` [${size}]` : ` {${size}}`,
    }),
    badge ?? "",
  );
  const details = el("details", {}, summary);
  let built = false;
  const build = () => {
    if (built) return;
    built = true;
    details.append(members(value, path, depth, options));
  };
  if (depth < options.openDepth) {
    details.open = true;
    build();
  } else {
    details.addEventListener("toggle", build);
  }
  item.append(details);
  return item;
}

/**
 * A primitive as text; a long string cut with a toggle.
 * @param {unknown} value
 * @returns {HTMLElement}
 */
function leaf(value) {
  if (typeof value === "string") {
    const full = JSON.stringify(value);
    if (full.length <= CUT_AT) return el("span", { cls: "json-string", text: full });
    const text = el("span", { cls: "json-string", text: `${full.slice(0, CUT_AT)}…` });
    const toggle = el("button", {
      cls: "link-button",
      text: "show all",
      attrs: { type: "button", "aria-expanded": "false" },
    });
    toggle.addEventListener("click", () => {
      const expanded = toggle.getAttribute("aria-expanded") === "true";
      text.textContent = expanded ? `${full.slice(0, CUT_AT)}…` : full;
      toggle.textContent = expanded ? "show all" : "show less";
      toggle.setAttribute("aria-expanded", expanded ? "false" : "true");
    });
    return el(
      "span",
      { cls: "json-long" },
      text,
      " ",
      toggle,
      el("span", { cls: "json-note", text: ` (${full.length} characters)` }),
    );
  }
  if (typeof value === "number") return el("span", { cls: "json-number", text: String(value) });
  if (typeof value === "boolean") return el("span", { cls: "json-bool", text: String(value) });
  if (value === null || value === undefined) return el("span", { cls: "json-null", text: "null" });
  // Deeper than MAX_DEPTH: the rest as (cut) JSON text.
  const text = JSON.stringify(value) ?? "";
  return el("span", {
    cls: "json-string",
    text: text.length > CUT_AT ? `${text.slice(0, CUT_AT)}…` : text,
  });
}
