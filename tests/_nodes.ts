/**
 * Test helpers for remote data nodes: a real `dfs node` process joined to a test server's node
 * port, stopped with a signal and started again on its folder; and a cluster secret file.
 *
 * @module
 */

import {
  DENO,
  ROOT,
  SERVER_MALLOC_ENV,
  SERVER_START_TIMEOUT_MS,
  SERVER_V8_FLAGS,
} from "./_server.ts";

/** A `dfs node` process. */
export class TestNode implements AsyncDisposable {
  readonly dataDir: string;
  readonly rank: number;
  readonly process: Deno.ChildProcess;
  readonly output: { text: string };
  #status: Promise<Deno.CommandStatus>;

  private constructor(
    dataDir: string,
    rank: number,
    process: Deno.ChildProcess,
    output: { text: string },
  ) {
    this.dataDir = dataDir;
    this.rank = rank;
    this.process = process;
    this.output = output;
    this.#status = process.status;
  }

  /**
   * Runs `dfs node --join JOIN --data DIR --cluster-secret-file SECRET [args]` (through `./dfs`
   * with `launcher`) and waits for its `joined ... as rank R` line.
   */
  static async start(
    join: string,
    options: { dataDir: string; secretFile: string; args?: string[]; launcher?: boolean },
  ): Promise<TestNode> {
    const { process, output } = TestNode.spawn(join, options);
    const deadline = Date.now() + SERVER_START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      const match = /joined \S+ as rank (\d+)/.exec(output.text);
      if (match) return new TestNode(options.dataDir, Number(match[1]), process, output);
      if (output.exited) throw new Error(`dfs node exited before it joined: ${output.text}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    process.kill("SIGKILL");
    throw new Error(`dfs node did not join within ${SERVER_START_TIMEOUT_MS} ms: ${output.text}`);
  }

  /** Runs `dfs node` without waiting for anything (for one expected to be refused). */
  static spawn(
    join: string,
    options: { dataDir: string; secretFile: string; args?: string[]; launcher?: boolean },
  ): {
    process: Deno.ChildProcess;
    output: { text: string; exited: boolean };
    /** The exit status, once the process exited and all its output was read. */
    finished: Promise<Deno.CommandStatus>;
  } {
    // Through `./dfs`: with the permissions it narrows `dfs node` to.
    const command = options.launcher ? `${ROOT}dfs` : DENO;
    const args = [
      ...(options.launcher ? [] : ["run", "-A", "--quiet", SERVER_V8_FLAGS, `${ROOT}main.ts`]),
      "node",
      "--join",
      join,
      "--data",
      options.dataDir,
      "--cluster-secret-file",
      options.secretFile,
      ...(options.args ?? []),
    ];
    const process = new Deno.Command(command, {
      args,
      env: SERVER_MALLOC_ENV,
      stdout: "piped",
      stderr: "piped",
      cwd: ROOT,
    }).spawn();
    const output = { text: "", exited: false };
    const drain = async (stream: ReadableStream<Uint8Array>) => {
      for await (const piece of stream.pipeThrough(new TextDecoderStream())) output.text += piece;
    };
    const drained = Promise.all([drain(process.stdout), drain(process.stderr)]).catch(() => {});
    void process.status.then(() => output.exited = true);
    const finished = Promise.all([process.status, drained]).then(([status]) => status);
    return { process, output, finished };
  }

  /** Sends a signal and waits for the process to exit. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
    try {
      this.process.kill(signal);
    } catch { /* already exited */ }
    return await this.#status;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop("SIGKILL");
  }
}

/** Writes a fresh cluster secret to a file in `dir`; returns its path. */
export async function writeSecret(dir: string, name = "cluster-secret"): Promise<string> {
  const path = `${dir}/${name}`;
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  await Deno.writeTextFile(path, btoa(String.fromCharCode(...bytes)));
  return path;
}
