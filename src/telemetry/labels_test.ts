import assert from "node:assert/strict";
import {
  BoundedLabel,
  isPlainId,
  isToolName,
  MCP_METHODS,
  methodLabel,
  oneOf,
  OTHER,
  ToolLabels,
  UNKNOWN,
} from "./labels.ts";

Deno.test("method label: a specification method keeps its name, others are other, none is unknown", () => {
  assert.equal(methodLabel("tools/call"), "tools/call");
  assert.equal(methodLabel("tasks/result"), "tasks/result");
  assert.equal(methodLabel("notifications/tasks/status"), "notifications/tasks/status");
  assert.equal(
    methodLabel("notifications/elicitation/complete"),
    "notifications/elicitation/complete",
  );
  assert.equal(methodLabel("tools/CALL"), OTHER);
  assert.equal(methodLabel("x".repeat(10_000)), OTHER);
  assert.equal(methodLabel("audit/start"), OTHER);
  assert.equal(methodLabel(null), UNKNOWN);
  assert.equal(methodLabel(""), UNKNOWN);
});

Deno.test("the method list is the 2025-11-25 schema's 31 methods", () => {
  assert.equal(MCP_METHODS.size, 31);
  for (
    const m of [
      "initialize",
      "ping",
      "completion/complete",
      "elicitation/create",
      "logging/setLevel",
      "sampling/createMessage",
      "roots/list",
      "resources/templates/list",
      "tasks/get",
      "tasks/list",
      "tasks/cancel",
      "notifications/progress",
      "notifications/cancelled",
      "notifications/message",
    ]
  ) assert.ok(MCP_METHODS.has(m), m);
});

Deno.test("tool names follow the specification: 1-128 of A-Z a-z 0-9 _ - .", () => {
  assert.ok(isToolName("getUser"));
  assert.ok(isToolName("DATA_EXPORT_v2"));
  assert.ok(isToolName("admin.tools.list"));
  assert.ok(isToolName("a".repeat(128)));
  assert.ok(!isToolName("a".repeat(129)));
  assert.ok(!isToolName(""));
  assert.ok(!isToolName("with space"));
  assert.ok(!isToolName('quote"'));
  assert.ok(!isToolName("newline\n"));
  assert.ok(!isToolName("émoji"));
});

Deno.test("client ids: printable, at most 128 characters", () => {
  assert.ok(isPlainId("claude-desktop"));
  assert.ok(isPlainId('odd "but" printable {}'));
  assert.ok(!isPlainId("a\nb"));
  assert.ok(!isPlainId("x".repeat(129)));
});

Deno.test("a fixed-set label: in the set, unknown when empty, else other", () => {
  const set = new Set(["a", "b"]);
  assert.equal(oneOf("a", set), "a");
  assert.equal(oneOf("c", set), OTHER);
  assert.equal(oneOf("", set), UNKNOWN);
  assert.equal(oneOf(null, set), UNKNOWN);
  assert.equal(oneOf(undefined, set), UNKNOWN);
  assert.equal(oneOf(7, set), OTHER);
});

Deno.test("a bounded label keeps the first N distinct names, then other", () => {
  const l = new BoundedLabel(2, isToolName);
  assert.equal(l.label("echo"), "echo");
  assert.equal(l.label("bad name"), OTHER);
  assert.equal(l.label("add"), "add");
  assert.equal(l.label("third"), OTHER);
  assert.equal(l.label("echo"), "echo");
  assert.equal(l.label(null), UNKNOWN);
  assert.equal(l.label(""), UNKNOWN);
  assert.equal(l.size, 2);
});

Deno.test("10k distinct names take at most N + other (+ unknown) values, and N strings of memory", () => {
  const l = new BoundedLabel(200, isToolName);
  const values = new Set<string>();
  for (let i = 0; i < 10_000; i++) values.add(l.label(`tool_${i}`));
  values.add(l.label("not valid!"));
  values.add(l.label(null));
  assert.equal(values.size, 202);
  assert.equal(l.size, 200);
});

Deno.test("ToolLabels: listed names first; names only called hold at most half of the budget", () => {
  const t = new ToolLabels(4);
  assert.equal(t.label("made_up_1"), "made_up_1");
  assert.equal(t.label("made_up_2"), "made_up_2");
  assert.equal(t.label("made_up_3"), OTHER);
  t.listed(["echo", "made_up_1", "not valid!", "add", "sub"]);
  // made_up_1, now listed, freed a called-only place; echo and add filled the budget.
  assert.equal(t.size, 4);
  for (const name of ["echo", "add", "made_up_1", "made_up_2"]) assert.equal(t.label(name), name);
  for (const name of ["sub", "made_up_3", "made_up_4", "not valid!"]) {
    assert.equal(t.label(name), OTHER);
  }
  assert.equal(t.label(null), UNKNOWN);
  assert.equal(t.label(""), UNKNOWN);
});

Deno.test("ToolLabels: a client calling made-up names first leaves the server's tools their labels", () => {
  const t = new ToolLabels(200);
  for (let i = 0; i < 10_000; i++) t.label(`made_up_${i}`);
  assert.equal(t.size, 100);
  t.listed(Array.from({ length: 150 }, (_, i) => `tool_${i}`));
  for (let i = 0; i < 100; i++) assert.equal(t.label(`tool_${i}`), `tool_${i}`);
  assert.equal(t.label("tool_100"), OTHER);
  assert.equal(t.size, 200);
});

Deno.test("ToolLabels: a server listing 10k names holds at most N strings", () => {
  const t = new ToolLabels(200);
  t.listed(Array.from({ length: 10_000 }, (_, i) => `tool_${i}`));
  assert.equal(t.size, 200);
  assert.equal(t.label("tool_199"), "tool_199");
  assert.equal(t.label("tool_200"), OTHER);
  assert.equal(t.label("called"), OTHER);
});

Deno.test("ToolLabels: with a budget of 1 only a listed name gets a label", () => {
  const t = new ToolLabels(1);
  assert.equal(t.label("called"), OTHER);
  t.listed(["echo"]);
  assert.equal(t.label("echo"), "echo");
});
