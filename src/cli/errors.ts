/**
 * Errors that end the program with exit code 2 (bad usage), printed as one line.
 *
 * @module
 */

/** Bad command-line usage: a flag, an argument, a subcommand. */
export class UsageError extends Error {
  override name = "UsageError";
}
