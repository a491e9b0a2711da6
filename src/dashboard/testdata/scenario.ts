/**
 * One log with every kind of exchange the dashboard shows, for the read-model tests and the
 * Go API's golden files. Record n is stamped `T0 + n` seconds (2026-06-10T12:00:00Z + n s).
 *
 * @module
 */
import type { AuditRecord } from "../../audit/record.ts";
import { rawNumber } from "../../jsonrpc/json.ts";
import { answer, call, failure, type TestLog } from "./test_log.ts";

/** The records of the scenario, by what they are. */
export interface Scenario {
  start: AuditRecord;
  initialize: AuditRecord;
  initialized: AuditRecord;
  ok: AuditRecord;
  okAnswer: AuditRecord;
  toolError: AuditRecord;
  toolErrorAnswer: AuditRecord;
  denied: AuditRecord;
  deniedAnswer: AuditRecord;
  limited: AuditRecord;
  limitedAnswer: AuditRecord;
  sampling: AuditRecord;
  samplingAnswer: AuditRecord;
  stringId: AuditRecord;
  numberId: AuditRecord;
  numberIdAnswer: AuditRecord;
  otherSession: AuditRecord;
  otherSessionAnswer: AuditRecord;
  invalid: AuditRecord;
  pending: AuditRecord;
  orphan: AuditRecord;
  monitored: AuditRecord;
  monitoredAnswer: AuditRecord;
}

/** Writes the scenario (seq 1–24) to an empty test log. */
export function writeScenario(log: TestLog): Scenario {
  const start = log.add({
    kind: "event",
    direction: "proxy",
    session: null,
    jsonrpc_id: null,
    method: "audit/start",
    tool_name: null,
    params: { version: "0.1.0" },
    client_info: null,
  }); // 1
  const initialize = log.add(call(0, "", {
    method: "initialize",
    tool_name: null,
    params: { clientInfo: { name: "claude-ai", version: "0.1.0" }, protocolVersion: "2025-06-18" },
  })); // 2
  log.add(
    answer(initialize, { protocolVersion: "2025-06-18", serverInfo: { name: "everything" } }),
  );
  const initialized = log.add({
    kind: "notification",
    jsonrpc_id: null,
    method: "notifications/initialized",
    tool_name: null,
    params: null,
  }); // 4
  const ok = log.add(
    call(2, "echo", { params: { name: "echo", arguments: { text: "héllo <b>" } } }),
  );
  const okAnswer = log.add(
    answer(ok, { content: [{ type: "text", text: "Echo: héllo <b> & \u2028" }] }, {
      duration_ms: 3.4,
    }),
  ); // 6
  const toolError = log.add(call(3, "read_file", {
    params: { name: "read_file", arguments: { path: "/etc/shadow" } },
  }));
  const toolErrorAnswer = log.add(answer(toolError, {
    content: [{ type: "text", text: "EACCES: permission denied" }],
    isError: true,
  }, { duration_ms: 41.6 })); // 8
  const denied = log.add(call(4, "delete_file", {
    decision: { action: "deny", rule: 0, reason: "destructive tools are blocked" },
  }));
  const deniedAnswer = log.add(failure(denied, {
    code: -32030,
    message: "policy denied",
    data: { action: "deny", reason: "destructive tools are blocked", rule_index: 0 },
  }, { duration_ms: 0.2 })); // 10
  const limited = log.add(call(5, "echo", {
    decision: { action: "rate_limited", rule: null, reason: "60 calls a minute" },
  }));
  const limitedAnswer = log.add(failure(limited, {
    code: -32029,
    message: "rate limit exceeded",
  }, { duration_ms: 0.1 })); // 12
  const sampling = log.add({
    direction: "server_to_client",
    jsonrpc_id: "srv-1",
    method: "sampling/createMessage",
    tool_name: null,
    params: {
      messages: [{ role: "user", content: { type: "text", text: "summarize" } }],
      // An integer no double holds: stored as written, and given back so.
      maxTokens: rawNumber("12345678901234567890"),
    },
  }); // 13
  const samplingAnswer = log.add(answer(sampling, {
    role: "assistant",
    content: { type: "text", text: "a summary" },
  }, { duration_ms: 250 })); // 14
  // The answer to 7 follows a request "7": it is still 7's.
  const numberId = log.add(call(7, "echo")); // 15
  const stringId = log.add(call("7", "echo")); // 16
  const numberIdAnswer = log.add(answer(numberId, { content: [] }, { duration_ms: 7 })); // 17
  const otherSession = log.add(call(2, "echo", {
    session: "s2",
    client_id: "cursor",
    client_info: { name: "cursor-ide", version: "1.0" },
  })); // 18
  const otherSessionAnswer = log.add(failure(otherSession, {
    code: -32000,
    message: "boom: " + "x".repeat(300),
  }, { client_id: "cursor", client_info: otherSession.client_info, duration_ms: 99.5 })); // 19
  const invalid = log.add({
    kind: "invalid",
    jsonrpc_id: null,
    method: null,
    tool_name: null,
    params: null,
    error: { code: -32600, message: "not JSON-RPC" },
  }); // 20
  // Before the client said who it is.
  const pending = log.add(call(8, "slow", { client_info: null })); // 21
  const orphan = log.add({
    kind: "response",
    direction: "server_to_client",
    jsonrpc_id: 99,
    method: null,
    tool_name: null,
    params: null,
    result: { content: [{ type: "text", text: "late" }] },
  }); // 22
  const monitored = log.add(call(9, "delete_file", {
    decision: { action: "deny", rule: 0, reason: "monitor only", enforced: false },
  })); // 23
  const monitoredAnswer = log.add(answer(monitored, { content: [] }, { duration_ms: 5 })); // 24
  return {
    start,
    initialize,
    initialized,
    ok,
    okAnswer,
    toolError,
    toolErrorAnswer,
    denied,
    deniedAnswer,
    limited,
    limitedAnswer,
    sampling,
    samplingAnswer,
    stringId,
    numberId,
    numberIdAnswer,
    otherSession,
    otherSessionAnswer,
    invalid,
    pending,
    orphan,
    monitored,
    monitoredAnswer,
  };
}
