/**
 * A unified diff of two texts, as `diff -u` writes it and `patch` applies it: for showing what an
 * edit to a file would change before it is made.
 *
 * @module
 */

/** Most edits (lines added plus lines removed) the diff searches for before giving up. */
const MAX_EDITS = 1000;
/** Most line comparisons the search makes before giving up. */
const MAX_WORK = 20_000_000;

type Op = "equal" | "delete" | "insert";

/**
 * The unified diff turning `oldText` into `newText`, with `context` unchanged lines around each
 * change (default 3); "" when the texts are equal. Lines are compared with their line endings, so a
 * changed line ending is a changed line, and a last line without one is marked
 * `\ No newline at end of file` as `diff` does.
 *
 * Work is bounded: past {@link MAX_EDITS} differing lines (or {@link MAX_WORK} comparisons), the
 * lines between the common head and tail are shown as one replacement, which is still a correct
 * patch.
 *
 * @example
 * ```ts
 * unifiedDiff("a\nb\n", "a\nc\n", "config.json", "config.json");
 * // "--- config.json\n+++ config.json\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n"
 * ```
 */
export function unifiedDiff(
  oldText: string,
  newText: string,
  oldName: string,
  newName: string,
  context = 3,
): string {
  if (oldText === newText) return "";
  if (!Number.isSafeInteger(context) || context < 0) {
    throw new RangeError("context must be a non-negative integer");
  }
  const a = splitLines(oldText);
  const b = splitLines(newText);
  const ops = diffLines(a, b);
  return `--- ${oldName}\n+++ ${newName}\n` + hunks(ops, a, b, context);
}

/** Lines with their endings ("\n" or "\r\n"); the last may have none. */
function splitLines(text: string): string[] {
  const lines: string[] = [];
  let start = 0;
  for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", start)) {
    lines.push(text.slice(start, i + 1));
    start = i + 1;
  }
  if (start < text.length) lines.push(text.slice(start));
  return lines;
}

/** The edit script turning `a` into `b`: a shortest one when it is within the bounds. */
function diffLines(a: readonly string[], b: readonly string[]): Op[] {
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (
    tail < a.length - head && tail < b.length - head &&
    a[a.length - 1 - tail] === b[b.length - 1 - tail]
  ) tail++;
  const ids = new Map<string, number>();
  const intern = (line: string): number => {
    let id = ids.get(line);
    if (id === undefined) {
      id = ids.size;
      ids.set(line, id);
    }
    return id;
  };
  const midA = Int32Array.from(a.slice(head, a.length - tail), intern);
  const midB = Int32Array.from(b.slice(head, b.length - tail), intern);
  const middle = myers(midA, midB) ?? [
    ...new Array<Op>(midA.length).fill("delete"),
    ...new Array<Op>(midB.length).fill("insert"),
  ];
  return [
    ...new Array<Op>(head).fill("equal"),
    ...middle,
    ...new Array<Op>(tail).fill("equal"),
  ];
}

/**
 * Myers' O(ND) shortest edit script, keeping each round's frontier to walk back through; undefined
 * when the script would be longer than {@link MAX_EDITS} or the search passes {@link MAX_WORK}.
 */
function myers(a: Int32Array, b: Int32Array): Op[] | undefined {
  const n = a.length;
  const m = b.length;
  if (n === 0 || m === 0) {
    return [...new Array<Op>(n).fill("delete"), ...new Array<Op>(m).fill("insert")];
  }
  const maxD = Math.min(n + m, MAX_EDITS);
  const offset = maxD + 1;
  const v = new Int32Array(2 * maxD + 3);
  const trace: Int32Array[] = [];
  let work = 0;
  for (let d = 0; d <= maxD; d++) {
    trace.push(v.slice(offset - d - 1, offset + d + 2));
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && v[offset + k - 1]! < v[offset + k + 1]!)
        ? v[offset + k + 1]!
        : v[offset + k - 1]! + 1;
      let y = x - k;
      const from = x;
      while (x < n && y < m && a[x] === b[y]) {
        x++;
        y++;
      }
      work += x - from + 1;
      v[offset + k] = x;
      if (x >= n && y >= m) return walkBack(trace, n, m);
    }
    if (work > MAX_WORK) return undefined;
  }
  return undefined;
}

/** Rebuilds the edit script from the saved frontiers (each trace[d] spans k = -d-1 … d+1). */
function walkBack(trace: readonly Int32Array[], n: number, m: number): Op[] {
  const ops: Op[] = [];
  let x = n;
  let y = m;
  for (let d = trace.length - 1; d > 0; d--) {
    const v = trace[d]!;
    const at = (k: number): number => v[k + d + 1]!;
    const k = x - y;
    const down = k === -d || (k !== d && at(k - 1) < at(k + 1));
    const prevK = down ? k + 1 : k - 1;
    const prevX = at(prevK);
    const prevY = prevX - prevK;
    while (x > prevX && y > prevY) {
      ops.push("equal");
      x--;
      y--;
    }
    ops.push(down ? "insert" : "delete");
    x = prevX;
    y = prevY;
  }
  for (; x > 0 && y > 0; x--, y--) ops.push("equal");
  return ops.reverse();
}

/** The hunks of an edit script, each change with up to `context` equal lines on either side. */
function hunks(
  ops: readonly Op[],
  a: readonly string[],
  b: readonly string[],
  context: number,
): string {
  // Old and new line indexes before each op.
  const oldAt = new Int32Array(ops.length + 1);
  const newAt = new Int32Array(ops.length + 1);
  for (let i = 0; i < ops.length; i++) {
    oldAt[i + 1] = oldAt[i]! + (ops[i] === "insert" ? 0 : 1);
    newAt[i + 1] = newAt[i]! + (ops[i] === "delete" ? 0 : 1);
  }
  const out: string[] = [];
  let i = 0;
  while (i < ops.length) {
    while (i < ops.length && ops[i] === "equal") i++;
    if (i >= ops.length) break;
    const start = Math.max(0, i - context);
    let end = i;
    while (true) {
      while (end < ops.length && ops[end] !== "equal") end++;
      let run = end;
      while (run < ops.length && ops[run] === "equal") run++;
      if (run >= ops.length || run - end > 2 * context) {
        end = Math.min(end + context, ops.length);
        break;
      }
      end = run;
    }
    const oldCount = oldAt[end]! - oldAt[start]!;
    const newCount = newAt[end]! - newAt[start]!;
    out.push(
      `@@ -${range(oldAt[start]!, oldCount)} +${range(newAt[start]!, newCount)} @@\n`,
    );
    for (let j = start; j < end; j++) {
      const op = ops[j]!;
      const line = op === "insert" ? b[newAt[j]!]! : a[oldAt[j]!]!;
      out.push(op === "equal" ? " " : op === "delete" ? "-" : "+", line);
      if (!line.endsWith("\n")) out.push("\n\\ No newline at end of file\n");
    }
    i = end;
  }
  return out.join("");
}

/** A hunk's range as `diff -u` writes it: the count left out when 1, the line before when 0. */
function range(before: number, count: number): string {
  if (count === 0) return `${before},0`;
  if (count === 1) return `${before + 1}`;
  return `${before + 1},${count}`;
}
