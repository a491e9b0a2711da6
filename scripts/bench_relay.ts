/**
 * The bench's bare stdio relay: the floor of what a Deno process in the middle costs. It starts
 * the command after `--` and pipes its own stdin to the child's stdin and the child's stdout to its
 * own stdout, with nothing in between (no framing, no audit). `deno task bench` measures it beside
 * the direct upstream and the proxy.
 *
 * Usage: `deno run --allow-run scripts/bench_relay.ts -- COMMAND ARGS...`
 *
 * @module
 */

const dash = Deno.args.indexOf("--");
const [command, ...args] = dash === -1 ? [] : Deno.args.slice(dash + 1);
if (command === undefined) {
  console.error("usage: deno run --allow-run scripts/bench_relay.ts -- COMMAND ARGS...");
  Deno.exit(2);
}
const child = new Deno.Command(command, {
  args,
  stdin: "piped",
  stdout: "piped",
  stderr: "inherit",
}).spawn();
// Either pipe ends when its side closes: the client's EOF closes the child's stdin, and the
// child's exit ends its stdout.
await Promise.all([
  Deno.stdin.readable.pipeTo(child.stdin).catch(() => {}),
  child.stdout.pipeTo(Deno.stdout.writable).catch(() => {}),
]);
Deno.exit((await child.status).code);
