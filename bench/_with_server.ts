/**
 * Runs benchmark work against a real `dfs serve` process and stops it afterwards; when the work
 * fails, the error carries the end of the server's stderr, since the cause is often there.
 *
 * @module
 */

import { type ServerOptions, TestServer } from "../tests/_server.ts";
import { withTimeout } from "../tests/_wait.ts";

/** Characters of the server's stderr added to an error. */
export const STDERR_TAIL_CHARS_MAX = 4000;
/** Longest a server may take to stop after SIGTERM before it is killed. */
export const STOP_TIMEOUT_MS = 30_000;

/**
 * Starts a server with `options`, runs `work` on it, then stops it (SIGTERM, then SIGKILL) and
 * removes its data directory unless `options.dataDir` was given.
 *
 * @throws {Error} whatever `work` throws, with the end of the server's stderr in its message.
 */
export async function withServer<T>(
  options: ServerOptions,
  work: (server: TestServer) => Promise<T>,
): Promise<T> {
  await using server = await TestServer.start(options);
  try {
    const value = await work(server);
    await stopGently(server);
    return value;
  } catch (error) {
    await stopGently(server).catch(() => {});
    const stderr = (await server.stderr.catch(() => "")).slice(-STDERR_TAIL_CHARS_MAX).trim();
    if (stderr === "") throw error;
    throw new Error(`${(error as Error).message}\nserver stderr:\n${stderr}`, { cause: error });
  }
}

/** SIGTERM, and SIGKILL if the server has not stopped within `STOP_TIMEOUT_MS`. */
export async function stopGently(server: TestServer): Promise<void> {
  try {
    await withTimeout(server.stop("SIGTERM"), { timeoutMs: STOP_TIMEOUT_MS, what: "server stop" });
  } catch {
    await server.stop("SIGKILL");
  }
}
