/**
 * What one doctor check found: a status, one line of detail, and for a failure (or a warning) what
 * to do about it.
 *
 * @module
 */

/** How a check came out. `skip`: it could not run because a check it needs failed. */
export type CheckStatus = "ok" | "warn" | "fail" | "skip";

/** One check's outcome. */
export interface CheckResult {
  /** The check's short name: `config`, `log`, `chain`, `signing`, `ports`, `upstream`, `clients`. */
  name: string;
  status: CheckStatus;
  /** One line: what was checked and what was found. Never a secret or key bytes. */
  detail: string;
  /** What to do, for a failure or a warning. */
  fix?: string;
  /** More lines worth showing under the detail (each warning of the configuration, …). */
  notes?: string[];
}

/** A result, with `fix` and `notes` only when given (exact optional properties). */
export function result(
  name: string,
  status: CheckStatus,
  detail: string,
  more: { fix?: string | undefined; notes?: string[] | undefined } = {},
): CheckResult {
  const out: CheckResult = { name, status, detail };
  if (more.fix !== undefined) out.fix = more.fix;
  if (more.notes !== undefined && more.notes.length > 0) out.notes = more.notes;
  return out;
}

/** The message of anything thrown. */
export function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
