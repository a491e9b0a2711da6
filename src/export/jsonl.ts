/**
 * Records as JSONL: each record's stored line, byte for byte. The line is the evidence: its
 * SHA-256 is the next record's `prev` and its signature covers it, so an exported file of a whole
 * log verifies as the log does, and any exported line can be checked against the chain.
 *
 * @module
 */
import type { ReadRecord } from "../audit/storage/query.ts";

/** The stored line (no newline). */
export function jsonlLine(read: ReadRecord): string {
  return read.line;
}
