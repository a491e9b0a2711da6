/**
 * The pins file as the dashboard shows it (`GET /api/v1/pins`): every pinned tool and every
 * pending change, read-only. Reading never creates, locks or changes the file; a file that cannot
 * be read or is not a pins file is an `error` in the view, never a thrown error.
 *
 * @example
 * ```ts
 * import { readPinsView } from "./pins_view.ts";
 *
 * const view = await readPinsView("audit.pins.json");
 * // { path: "audit.pins.json", pins: [...], pending: [...], error: null }
 * ```
 *
 * @module
 */
import { PinError, PinStore } from "../guardrails/pins.ts";
import type { PinsView } from "./api.ts";

/**
 * Reads the pins file at `path` (null: pinning is off, or no file is known). A missing file is
 * an empty view: nothing was pinned yet.
 */
export function readPinsView(path: string | null): Promise<PinsView> {
  if (path === null) return Promise.resolve({ path, pins: [], pending: [], error: null });
  try {
    // Opening reads the file once; only observing or approving would write it.
    const store = PinStore.open(path, () => new Date());
    return Promise.resolve({ path, pins: store.pins(), pending: store.pending(), error: null });
  } catch (e) {
    const error = e instanceof PinError
      ? e.problem
      : `cannot read: ${e instanceof Error ? e.message : String(e)}`;
    return Promise.resolve({ path, pins: [], pending: [], error });
  }
}
