// @ts-check
/// <reference lib="dom" />
/**
 * The token dialog: asks for the dashboard's token, checks it against `/api/v1/info` before
 * keeping it, says "wrong token" on a 401, and on a 429 counts down the `Retry-After` seconds with
 * the submit button disabled.
 *
 * @module
 */
import { retryAfterSeconds } from "./api.js";
import { byId } from "./dom.js";

/** @typedef {import("./api.js").Api} Api */
/** @typedef {import("./api.js").AuthReason} AuthReason */

/**
 * Wires the dialog in index.html and returns the function that asks for the token.
 * @param {Api} api
 * @returns {import("./api.js").AskToken}
 */
export function tokenDialog(api) {
  const dialog = byId("token-dialog", HTMLDialogElement);
  const form = byId("token-form", HTMLFormElement);
  const input = byId("token-input", HTMLInputElement);
  const submit = byId("token-submit", HTMLButtonElement);
  const error = byId("auth-error", HTMLParagraphElement);

  /** @type {(() => void) | null} */
  let resolve = null;
  /** @type {ReturnType<typeof setInterval> | null} */
  let countdown = null;

  /** @param {string | null} text */
  const showError = (text) => {
    error.textContent = text ?? "";
    error.hidden = text === null;
  };

  /** @param {number} seconds */
  const throttle = (seconds) => {
    if (countdown !== null) clearInterval(countdown);
    const until = Date.now() + seconds * 1000;
    const tick = () => {
      const left = Math.ceil((until - Date.now()) / 1000);
      if (left <= 0) {
        if (countdown !== null) clearInterval(countdown);
        countdown = null;
        submit.disabled = false;
        showError("You may try again now.");
        return;
      }
      submit.disabled = true;
      showError(`too many attempts, try again in ${left} s`);
    };
    tick();
    countdown = setInterval(tick, 1000);
  };

  /** @param {AuthReason} reason */
  const explain = (reason) => {
    switch (reason.kind) {
      case "missing":
        showError(null);
        break;
      case "wrong":
        showError("wrong token");
        break;
      case "throttled":
        throttle(reason.retryAfter);
        break;
      default: {
        /** @type {never} */
        const unknownReason = reason;
        throw new Error(`unknown reason ${JSON.stringify(unknownReason)}`);
      }
    }
  };

  const open = () => {
    if (!dialog.open) dialog.showModal();
    input.focus();
  };

  // The page is useless without the token: Esc does not dismiss the dialog while one is needed.
  dialog.addEventListener("cancel", (e) => {
    if (resolve !== null) e.preventDefault();
  });
  dialog.addEventListener("close", () => {
    if (resolve !== null) queueMicrotask(open);
  });

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (submit.disabled) return;
    const token = input.value.trim();
    if (token === "") {
      showError("enter the token");
      return;
    }
    submit.disabled = true;
    /** @type {Response} */
    let res;
    try {
      res = await api.probe(token);
      await res.body?.cancel();
    } catch {
      submit.disabled = false;
      showError("cannot reach the dashboard");
      return;
    }
    submit.disabled = false;
    if (res.status === 401) {
      input.value = "";
      showError("wrong token");
      input.focus();
      return;
    }
    if (res.status === 429) {
      input.value = "";
      throttle(retryAfterSeconds(res.headers) ?? 60);
      return;
    }
    if (!res.ok) {
      showError(`the dashboard answered HTTP ${res.status}`);
      return;
    }
    input.value = "";
    showError(null);
    const done = resolve;
    resolve = null;
    dialog.close();
    api.setToken(token);
    done?.();
  });

  return (reason) =>
    new Promise((res) => {
      resolve = res;
      explain(reason);
      open();
    });
}
