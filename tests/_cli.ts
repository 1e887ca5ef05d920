/**
 * The `dfs` command as a user runs it: the `./dfs` launcher in a new process through
 * `Deno.Command`, with its exit code and output collected.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ROOT } from "./_server.ts";

/** What one `./dfs` run left: its exit code and what it wrote. */
export interface DfsRun {
  code: number;
  /** stdout decoded as UTF-8. */
  stdout: string;
  stderr: string;
  /** stdout as it came, for binary output. */
  bytes: Uint8Array;
}

export interface DfsRunOptions {
  /** The working directory; the test's own when absent. */
  cwd?: string;
  /** Bytes for stdin; stdin is closed (null) when absent. */
  stdin?: Uint8Array;
  /** Variables added to the test's environment. */
  env?: Record<string, string>;
}

/** Runs `./dfs ARGS` to its end and collects its exit code, stdout and stderr. */
export async function dfs(args: string[], options: DfsRunOptions = {}): Promise<DfsRun> {
  const child = new Deno.Command(`${ROOT}dfs`, {
    args,
    cwd: options.cwd,
    env: options.env,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = child.output();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(options.stdin);
    await writer.close();
  }
  const { code, stdout, stderr } = await output;
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code, stdout: text(stdout), stderr: text(stderr), bytes: stdout };
}

/**
 * Checks a usage error as a user sees it: exit 2, nothing on stdout, one `dfs: ` line matching
 * `pattern`, then the hint to the help of `command` (`dfs` for the top level), no stack trace.
 */
export function assertUsageError(result: DfsRun, pattern: RegExp, command = "dfs"): void {
  assert.equal(result.code, 2, `exit code (stderr: ${result.stderr})`);
  assert.equal(result.stdout, "");
  const lines = result.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 2, `error and hint lines, got:\n${result.stderr}`);
  assert.match(lines[0], /^dfs: /);
  assert.match(lines[0], pattern);
  assert.equal(lines[1], `Try "${command} --help".`);
}

/** Success: exit 0 and nothing on stderr. */
export function assertOk(result: DfsRun, what: string): void {
  assert.equal(result.stderr, "", `${what}: stderr`);
  assert.equal(result.code, 0, `${what}: exit code`);
}

/** An operational error: exit 1, nothing on stdout, exactly one `dfs: ...` line on stderr. */
export function assertOperationalError(result: DfsRun, pattern: RegExp): void {
  assert.equal(result.code, 1, `exit code (stderr: ${result.stderr})`);
  assert.equal(result.stdout, "");
  const message = result.stderr.trim();
  assert.ok(!message.includes("\n"), `one line on stderr, got:\n${result.stderr}`);
  assert.match(message, /^dfs: /);
  assert.match(message, pattern);
}
