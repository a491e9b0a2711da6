/**
 * The record as its stored line says, to the digit. A query may read lines with `JSON.parse`,
 * which turns a number no double holds (an id of 2^64, `1e400` in params) into another value, or
 * into `Infinity`; exported JSON text and ids must be what the signed line says.
 *
 * @module
 */
import type { AuditRecord } from "../audit/record.ts";
import type { ReadRecord } from "../audit/storage/query.ts";
import { isJsonObject, isRawNumber, parseLossless } from "../jsonrpc/json.ts";

/** `read.record` with `jsonrpc_id`, `params` and `result` parsed losslessly from `read.line`. */
export function exactRecord(read: ReadRecord): AuditRecord {
  let value;
  try {
    value = parseLossless(read.line);
  } catch {
    return read.record;
  }
  if (!isJsonObject(value)) return read.record;
  const id = value["jsonrpc_id"];
  return {
    ...read.record,
    jsonrpc_id: id === null || typeof id === "string" || typeof id === "number" || isRawNumber(id)
      ? id
      : read.record.jsonrpc_id,
    params: value["params"] ?? null,
    result: value["result"] ?? null,
  };
}
