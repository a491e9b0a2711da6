/**
 * JSON-RPC 2.0 message classification: wire bytes in, typed messages out. The only place wire
 * input is narrowed from `unknown`.
 *
 * @module
 */
import { isUtf8 } from "node:buffer";
import {
  isJsonObject,
  isRawNumber,
  type JsonObject,
  type JsonValue,
  parseLossless,
} from "./json.ts";

/** A JSON-RPC id exactly as sent: number (possibly beyond 2^53), string, or null. */
export type JsonRpcId = number | string | null | { readonly rawJSON: string };

/** The `error` member of an error response. */
export type RpcError = {
  code: number;
  message: string;
  data?: JsonValue;
};

/** One classified message. */
export type Message =
  | { kind: "request"; id: JsonRpcId; method: string; params: JsonValue | undefined }
  | { kind: "notification"; method: string; params: JsonValue | undefined }
  | { kind: "response"; id: JsonRpcId; result: JsonValue }
  | { kind: "error"; id: JsonRpcId; error: RpcError }
  | { kind: "invalid"; reason: string; id: JsonRpcId | undefined };

/** A message the proxy can read as JSON-RPC 2.0: the only kind it ever forwards. */
export type WireMessage = Exclude<Message, { kind: "invalid" }>;

/** What one framed line held: one message, or the members of a batch array. */
export interface Classified {
  messages: Message[];
  batch: boolean;
  /** The parsed value of each message (undefined where the text did not parse). */
  values: (JsonValue | undefined)[];
}

// Bytes are checked by a native validation and then decoded without one: a decoder told to throw
// costs three to five times as much on a typical message. Valid UTF-8 decodes the same either way.
const utf8 = new TextDecoder("utf-8", { ignoreBOM: true });

function isId(value: JsonValue | undefined): value is number | string | null {
  return value === null || typeof value === "string" || typeof value === "number" ||
    isRawNumber(value);
}

function toRpcError(value: JsonValue | undefined): RpcError | undefined {
  if (!isJsonObject(value)) return undefined;
  const code = value.code;
  const message = value.message;
  if (typeof code !== "number" || !Number.isInteger(code) || typeof message !== "string") {
    return undefined;
  }
  const out: RpcError = { code, message };
  if (value.data !== undefined) out.data = value.data;
  return out;
}

/** Classifies one parsed JSON value as a JSON-RPC 2.0 message. */
export function classifyValue(value: JsonValue): Message {
  if (!isJsonObject(value)) {
    return { kind: "invalid", reason: "not a JSON-RPC object", id: undefined };
  }
  const id = value.id;
  const hasId = "id" in value;
  const knownId = isId(id) ? id : undefined;
  if (value.jsonrpc !== "2.0") {
    return { kind: "invalid", reason: 'jsonrpc is not "2.0"', id: knownId };
  }
  if (hasId && knownId === undefined) {
    return { kind: "invalid", reason: "id is not a string, number or null", id: undefined };
  }
  const params = value.params;
  if ("method" in value) {
    if (typeof value.method !== "string") {
      return { kind: "invalid", reason: "method is not a string", id: knownId };
    }
    if (
      params !== undefined && (typeof params !== "object" || params === null || isRawNumber(params))
    ) {
      return { kind: "invalid", reason: "params is not an object or array", id: knownId };
    }
    if (!hasId) return { kind: "notification", method: value.method, params };
    return { kind: "request", id: knownId ?? null, method: value.method, params };
  }
  if ("result" in value && !("error" in value) && hasId) {
    return { kind: "response", id: knownId ?? null, result: value.result ?? null };
  }
  if ("error" in value && !("result" in value) && hasId) {
    const error = toRpcError(value.error);
    if (error) return { kind: "error", id: knownId ?? null, error };
    return { kind: "invalid", reason: "error is not {code, message}", id: knownId };
  }
  return {
    kind: "invalid",
    reason: "neither a request, a notification nor a response",
    id: knownId,
  };
}

/** Why bytes are not one JSON text, as {@link decodeText} and {@link parseText} tell it. */
export type Unreadable =
  | { code: "invalid_utf8"; reason: "invalid UTF-8" }
  | { code: "blank"; reason: "blank line" }
  | { code: "not_json"; reason: "not JSON" }
  | { code: "too_deep_to_parse"; reason: "nested too deep to parse" };

/** Strict UTF-8 (a BOM kept as a character), or null where the bytes are not UTF-8. */
export function decodeText(bytes: Uint8Array): string | null {
  return isUtf8(bytes) ? utf8.decode(bytes) : null;
}

/**
 * Parses one JSON text, losslessly. Never throws: what cannot be read comes back as an
 * {@link Unreadable} reason.
 */
export function parseText(text: string): { value: JsonValue } | Unreadable {
  if (text.trim() === "") return { code: "blank", reason: "blank line" };
  try {
    return { value: parseLossless(text) };
  } catch (e) {
    // V8's parse is iterative, but a JSON.parse reviver recurses: should any step of the parse
    // ever recurse, input deeper than the stack is a reason, not a crash.
    if (e instanceof RangeError) {
      return { code: "too_deep_to_parse", reason: "nested too deep to parse" };
    }
    return { code: "not_json", reason: "not JSON" };
  }
}

/**
 * Classifies one framed line (without its terminator). Never throws: bad UTF-8, bad JSON and
 * non-JSON-RPC values come back as `invalid` messages.
 */
export function classifyLine(line: Uint8Array): Classified {
  const text = decodeText(line);
  const parsed: { value: JsonValue } | Unreadable = text === null
    ? { code: "invalid_utf8", reason: "invalid UTF-8" }
    : parseText(text);
  if (!("value" in parsed)) {
    return {
      messages: [{ kind: "invalid", reason: parsed.reason, id: undefined }],
      batch: false,
      values: [undefined],
    };
  }
  const value = parsed.value;
  if (Array.isArray(value)) {
    if (value.length === 0) {
      return {
        messages: [{ kind: "invalid", reason: "empty batch", id: undefined }],
        batch: true,
        values: [value],
      };
    }
    return { messages: value.map(classifyValue), batch: true, values: value };
  }
  return { messages: [classifyValue(value)], batch: false, values: [value] };
}

/** A key that tells ids apart by type: `1` and `"1"` are different requests. */
export function idKey(id: JsonRpcId): string {
  if (id === null) return "null";
  if (typeof id === "number") return "n" + id;
  if (typeof id === "string") return "s" + id;
  return "n" + id.rawJSON;
}

/** Serializes an error response for `id`, as the proxy sends it. */
export function errorResponse(id: JsonRpcId, error: RpcError): string {
  return JSON.stringify({ jsonrpc: "2.0", id, error });
}

/** `params` as an object, when it is one. */
export function paramsObject(params: JsonValue | undefined): JsonObject | undefined {
  return isJsonObject(params) ? params : undefined;
}

/**
 * The tool a `tools/call`'s `params` names: `name`, else the Go tool's fallback `tool_name`; null
 * when it names none. The one reading the guardrails and the record share.
 */
export function calledTool(params: unknown): string | null {
  if (typeof params !== "object" || params === null || Array.isArray(params)) return null;
  const name: unknown = Reflect.get(params, "name");
  const fallback: unknown = Reflect.get(params, "tool_name");
  if (typeof name === "string" && name !== "") return name;
  if (typeof fallback === "string") return fallback;
  return typeof name === "string" ? name : null;
}
