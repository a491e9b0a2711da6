// @ts-check
/// <reference lib="dom" />
/**
 * The filter form: reads and writes {@link Filters}. Times are `datetime-local` inputs (the
 * user's local time) and travel as RFC 3339 in UTC.
 *
 * @module
 */
import { byId, el } from "./dom.js";
import { fromLocalInput, toLocalInput } from "./url_state.js";

/** @typedef {import("./url_state.js").Filters} Filters */

const TEXT_FIELDS = /** @type {const} */ (["method", "tool", "client", "session", "server"]);
const SELECT_FIELDS = /** @type {const} */ (["kind", "direction", "decision"]);

export class FilterForm {
  #form = byId("filter-form", HTMLFormElement);
  #errors = byId("filter-errors", HTMLInputElement);
  #from = byId("filter-from", HTMLInputElement);
  #to = byId("filter-to", HTMLInputElement);
  #q = byId("filter-q", HTMLInputElement);
  #fromSeq = byId("filter-from-seq", HTMLInputElement);
  #toSeq = byId("filter-to-seq", HTMLInputElement);
  #problem = byId("filter-problem", HTMLParagraphElement);

  /**
   * @param {(filters: Filters) => void} onApply the form was submitted or cleared
   */
  constructor(onApply) {
    this.#form.addEventListener("submit", (e) => {
      e.preventDefault();
      const filters = this.read();
      if (filters !== null) onApply(filters);
    });
    byId("filter-clear", HTMLButtonElement).addEventListener("click", () => {
      this.write({});
      this.#say(null);
      onApply({});
    });
  }

  /**
   * @param {string} name
   * @returns {HTMLInputElement}
   */
  #text(name) {
    return byId(`filter-${name}`, HTMLInputElement);
  }

  /**
   * @param {string} name
   * @returns {HTMLSelectElement}
   */
  #select(name) {
    return byId(`filter-${name}`, HTMLSelectElement);
  }

  /** @param {string | null} text */
  #say(text) {
    this.#problem.textContent = text ?? "";
    this.#problem.hidden = text === null;
  }

  /**
   * The form's filters; null (and a message) when a value cannot be sent.
   * @returns {Filters | null}
   */
  read() {
    /** @type {Filters} */
    const f = {};
    for (const name of TEXT_FIELDS) {
      const v = this.#text(name).value.trim();
      if (v !== "") f[name] = v;
    }
    for (const name of SELECT_FIELDS) {
      const v = this.#select(name).value;
      if (v !== "") f[name] = v;
    }
    if (this.#errors.checked) f.errors = "1";
    const q = this.#q.value.trim();
    if (q.length > 0 && q.length < 3) {
      this.#say("Search needs at least 3 characters.");
      this.#q.focus();
      return null;
    }
    if (q !== "") f.q = q;
    const from = fromLocalInput(this.#from.value);
    const to = fromLocalInput(this.#to.value);
    if (from !== null) f.from = from;
    if (to !== null) f.to = to;
    if (from !== null && to !== null && from >= to) {
      this.#say("“To” must be after “From”.");
      return null;
    }
    for (
      const [name, input] of /** @type {const} */ ([
        ["from_seq", this.#fromSeq],
        ["to_seq", this.#toSeq],
      ])
    ) {
      const v = input.value.trim();
      if (v === "") continue;
      if (!/^[1-9]\d{0,15}$/.test(v)) {
        this.#say("A seq is a whole number from 1.");
        input.focus();
        return null;
      }
      f[name] = v;
    }
    this.#say(null);
    return f;
  }

  /**
   * Shows these filters in the form.
   * @param {Filters} f
   */
  write(f) {
    for (const name of TEXT_FIELDS) this.#text(name).value = f[name] ?? "";
    for (const name of SELECT_FIELDS) {
      const select = this.#select(name);
      const value = f[name] ?? "";
      if (![...select.options].some((o) => o.value === value)) {
        select.append(el("option", { text: value, attrs: { value } }));
      }
      select.value = value;
    }
    this.#errors.checked = f.errors === "1" || f.errors === "true";
    this.#q.value = f.q ?? "";
    this.#from.value = f.from === undefined ? "" : toLocalInput(f.from);
    this.#to.value = f.to === undefined ? "" : toLocalInput(f.to);
    this.#fromSeq.value = f.from_seq ?? "";
    this.#toSeq.value = f.to_seq ?? "";
  }

  /** Puts the keyboard focus in the free-text search. */
  focusSearch() {
    const details = this.#form.closest("details");
    if (details !== null) details.open = true;
    this.#q.focus();
    this.#q.select();
  }
}
