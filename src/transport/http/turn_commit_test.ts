import assert from "node:assert/strict";
import { setImmediate } from "node:timers";
import { TurnCommit } from "./turn_commit.ts";

/** Resolves after the pending `setImmediate` callbacks have run. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

Deno.test("the waits of one turn share one commit, made before any of them resumes", async () => {
  const events: string[] = [];
  let stored = 0;
  const turns = new TurnCommit(() => {
    stored++;
    events.push("commit");
  });
  const waits = ["a", "b", "c"].map((name) => turns.wait().then(() => void events.push(name)));
  await Promise.all(waits);
  assert.deepEqual(stored, 1);
  assert.deepEqual(events, ["commit", "a", "b", "c"]);
});

Deno.test("a wait made in a later turn gets a commit of its own", async () => {
  let stored = 0;
  const turns = new TurnCommit(() => stored++);
  await turns.wait();
  await turns.wait();
  assert.deepEqual(stored, 2);
});

Deno.test("a wait made while the commit runs is not settled by it, but by the next one", async () => {
  const order: string[] = [];
  let inner: Promise<void> | undefined;
  let commits = 0;
  const turns = new TurnCommit(() => {
    commits++;
    order.push(`commit ${commits}`);
    if (commits === 1) {
      inner = turns.wait().then(() => {
        order.push("inner");
      });
    }
  });
  await turns.wait();
  order.push("outer");
  await inner;
  assert.deepEqual(order, ["commit 1", "outer", "commit 2", "inner"]);
});

Deno.test("a failed commit rejects every wait of its turn with its error; a later turn tries again", async () => {
  const failure = new Error("busy");
  let calls = 0;
  const turns = new TurnCommit(() => {
    calls++;
    if (calls === 1) throw failure;
  });
  const results = await Promise.allSettled([turns.wait(), turns.wait(), turns.wait()]);
  for (const r of results) {
    assert.deepEqual(r.status, "rejected");
    if (r.status === "rejected") assert.equal(r.reason, failure);
  }
  await turns.wait();
  assert.deepEqual(calls, 2, "one commit for the failed turn, one for the next");
});

Deno.test("no wait is left unsettled: each one settles within a turn, whatever the commit does", async () => {
  let fail = false;
  const turns = new TurnCommit(() => {
    if (fail) throw new Error("now failing");
  });
  const outcomes: string[] = [];
  const note = (p: Promise<void>): void => {
    p.then(() => outcomes.push("resolved"), () => outcomes.push("rejected"));
  };
  note(turns.wait());
  await nextTurn();
  fail = true;
  note(turns.wait());
  note(turns.wait());
  await nextTurn();
  note(turns.wait());
  // The handlers above run in the microtasks after the commit: one more turn has let them run.
  await nextTurn();
  assert.deepEqual(outcomes, ["resolved", "rejected", "rejected", "rejected"]);
});
