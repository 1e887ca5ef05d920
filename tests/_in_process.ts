/**
 * A real server (Web Worker ranks, real files, a real socket on 127.0.0.1) run inside the test's
 * own process, so a test reaches its seams: ranks are launched by a `FaultyLauncher` that crashes,
 * hangs or kills them on demand, and what the server logs is captured.
 *
 * @module
 */

import { denoEnv } from "../ranks/env/deno_env.ts";
import { type Server, startServer } from "../ranks/server.ts";
import { FaultyLauncher } from "../ranks/testing/faulty_launcher.ts";

export interface InProcessOptions {
  ranks?: number;
  replicas?: number;
  /** Reuse a data directory (for restarts); a fresh temp one otherwise. */
  dataDir?: string;
  rereplicateAfterMs?: number;
  /** Background scrub rate (default 0: off, so tests see only the repairs they cause). */
  scrubBytesPerSec?: number;
}

/** A server in this process, with its launcher and its log. */
export class InProcessServer implements AsyncDisposable {
  readonly dataDir: string;
  readonly launcher: FaultyLauncher;
  readonly server: Server;
  #logged: string[];
  #ownsDir: boolean;

  private constructor(
    parts: { dataDir: string; launcher: FaultyLauncher; server: Server; logged: string[] },
    ownsDir: boolean,
  ) {
    this.dataDir = parts.dataDir;
    this.launcher = parts.launcher;
    this.server = parts.server;
    this.#logged = parts.logged;
    this.#ownsDir = ownsDir;
  }

  static async start(options: InProcessOptions = {}): Promise<InProcessServer> {
    const dataDir = options.dataDir ?? await Deno.makeTempDir({ prefix: "dfs-test-" });
    const logged: string[] = [];
    const log = {
      error: (message: string, ...details: unknown[]) => {
        logged.push([message, ...details.map(String)].join(" "));
      },
    };
    const launcher = new FaultyLauncher();
    const server = await startServer({
      ranks: options.ranks ?? 4,
      replicas: options.replicas ?? 2,
      dataDir,
      launcher,
      env: denoEnv({ log }),
      rereplicateAfterMs: options.rereplicateAfterMs,
      hostname: "127.0.0.1",
      port: 0,
      scrub: { bytesPerSec: options.scrubBytesPerSec ?? 0, pauseMs: 60_000 },
    });
    return new InProcessServer(
      { dataDir, launcher, server, logged },
      options.dataDir === undefined,
    );
  }

  get address(): string {
    return `127.0.0.1:${this.server.gateway.port}`;
  }

  /** What the server has logged so far, one line per message. */
  get log(): string {
    return this.#logged.join("\n");
  }

  /** Stops the server as SIGTERM would; the data directory stays for `restart()`. */
  async stop(): Promise<void> {
    await this.server.close();
  }

  /** Starts a new server on the same data directory (after `stop()`); it owns the folder then. */
  async restart(options: Omit<InProcessOptions, "dataDir"> = {}): Promise<InProcessServer> {
    this.#ownsDir = false;
    const again = await InProcessServer.start({ ...options, dataDir: this.dataDir });
    again.#ownsDir = true;
    return again;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.server.close();
    if (this.#ownsDir) await Deno.remove(this.dataDir, { recursive: true }).catch(() => {});
  }
}
