/**
 * The network namespace helper (`_netns.ts`): hosts reach each other by address, a cut link stops
 * traffic without breaking connections, a healed one carries them again, a rate limit slows a host
 * in both directions, and disposal leaves no namespace or process behind. Skipped, with the reason
 * printed once, when the machine cannot build namespaces (not root, no `iproute2`).
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  createNetwork,
  listNamespaces,
  netnsAvailable,
  type Network,
  tcAvailable,
} from "./_netns.ts";
import { sleep, withTimeout } from "./_wait.ts";

const available = await netnsAvailable();
if (!available.ok) console.warn(`Skipping the network namespace tests: ${available.why}`);
const tc = available.ok ? await tcAvailable() : available;
if (available.ok && !tc.ok) console.warn(`Skipping the rate limit test: ${tc.why}`);

const DENO = Deno.execPath();
const ECHO_PORT = 7000;
const SOURCE_PORT = 7001;
const SINK_PORT = 7002;
const MiB = 1024 * 1024;
/** Bytes of each timed transfer: 4 MiB take about 0.34 s at 100 Mbit/s. */
const TRANSFER_BYTES = 4 * MiB;
/** How long a connect or a transfer on a working link may take. */
const CONNECT_TIMEOUT_MS = 2_000;
const TRANSFER_TIMEOUT_MS = 5_000;
/** How long a connect across a cut link is given to (wrongly) succeed. */
const CUT_CONNECT_TIMEOUT_MS = 1_000;
/** How long a held connection is watched for a (wrong) reply while its link is cut. */
const CUT_READ_WAIT_MS = 500;
/**
 * How long a held connection may take to deliver after the heal: TCP retransmits at about 0.2,
 * 0.6, 1.4, 3.0 and 6.2 s after the send, and the cut lasts about 1.5 s.
 */
const HEAL_DELIVERY_TIMEOUT_MS = 8_000;
/** How long the client process may take to answer one request beyond the request's own limit. */
const REQUEST_SLACK_MS = 5_000;
/** How long a killed process may take to be gone. */
const DEATH_TIMEOUT_MS = 2_000;
/** How long a process may take to start listening. */
const LISTEN_TIMEOUT_MS = 10_000;

/**
 * Runs in a host: an echo service, a source that sends its byte count to whoever connects, and a
 * sink that reads to the end and answers with the count it read.
 */
const SERVER_SCRIPT = `
const [hostname, echoPort, sourcePort, sinkPort, sourceBytes] = Deno.args;
function serve(port, handle) {
  const listener = Deno.listen({ hostname, port: Number(port) });
  (async () => {
    for await (const conn of listener) {
      handle(conn).catch(() => {}).finally(() => { try { conn.close(); } catch {} });
    }
  })();
}
serve(echoPort, (conn) => conn.readable.pipeTo(conn.writable));
serve(sourcePort, async (conn) => {
  const block = new Uint8Array(64 * 1024);
  for (let left = Number(sourceBytes); left > 0;) {
    left -= await conn.write(block.subarray(0, Math.min(left, block.length)));
  }
});
serve(sinkPort, async (conn) => {
  // conn.read, not conn.readable: the readable closes the connection at the end of input.
  const buffer = new Uint8Array(64 * 1024);
  let count = 0;
  for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) count += n;
  await conn.write(new TextEncoder().encode(count + "\\n"));
});
`;

/**
 * Runs in a host: answers one JSON request per stdin line with one JSON line on stdout. Requests:
 * connect (keeps the connection as id), send (a line on it), read (the next echoed line, within a
 * limit), download (from a source) and upload (to a sink), each timed from the connect.
 */
const CLIENT_SCRIPT = `
const connections = new Map();
function within(promise, ms, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error("timed out after " + ms + " ms: " + what)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}
function connect(request) {
  const pending = Deno.connect({ hostname: request.hostname, port: request.port });
  let abandoned = false;
  pending.then((conn) => { if (abandoned) conn.close(); }, () => {});
  return within(pending, request.timeoutMs, "connect").catch((error) => {
    abandoned = true;
    throw error;
  });
}
function lineReader(conn) {
  const lines = [];
  let waiter = null;
  let buffered = "";
  (async () => {
    for await (const text of conn.readable.pipeThrough(new TextDecoderStream())) {
      buffered += text;
      for (let at = buffered.indexOf("\\n"); at >= 0; at = buffered.indexOf("\\n")) {
        const line = buffered.slice(0, at);
        buffered = buffered.slice(at + 1);
        if (waiter) { const take = waiter; waiter = null; take(line); } else lines.push(line);
      }
    }
  })().catch(() => {});
  return (ms) => {
    if (lines.length > 0) return Promise.resolve(lines.shift());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiter = null;
        reject(new Error("no line within " + ms + " ms"));
      }, ms);
      waiter = (line) => { clearTimeout(timer); resolve(line); };
    });
  };
}
async function download(request) {
  const started = performance.now();
  const conn = await connect(request);
  let bytes = 0;
  for await (const piece of conn.readable) bytes += piece.length;
  return { bytes, ms: performance.now() - started };
}
async function upload(request) {
  const started = performance.now();
  const conn = await connect(request);
  const block = new Uint8Array(64 * 1024);
  for (let left = request.bytes; left > 0;) {
    left -= await conn.write(block.subarray(0, Math.min(left, block.length)));
  }
  await conn.closeWrite();
  let answer = "";
  for await (const text of conn.readable.pipeThrough(new TextDecoderStream())) answer += text;
  return { bytes: Number(answer.trim()), ms: performance.now() - started };
}
async function handle(request) {
  switch (request.op) {
    case "connect": {
      const conn = await connect(request);
      connections.set(request.id, { conn, next: lineReader(conn) });
      return {};
    }
    case "send":
      await connections.get(request.id).conn.write(new TextEncoder().encode(request.text + "\\n"));
      return {};
    case "read":
      return { line: await connections.get(request.id).next(request.timeoutMs) };
    case "download":
      return await within(download(request), request.timeoutMs, "download");
    case "upload":
      return await within(upload(request), request.timeoutMs, "upload");
  }
  throw new Error("unknown op " + request.op);
}
let buffered = "";
for await (const text of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
  buffered += text;
  for (let at = buffered.indexOf("\\n"); at >= 0; at = buffered.indexOf("\\n")) {
    const request = JSON.parse(buffered.slice(0, at));
    buffered = buffered.slice(at + 1);
    const reply = await handle(request).then(
      (result) => ({ ok: true, ...result }),
      (error) => ({ ok: false, error: String(error) }),
    );
    console.log(JSON.stringify(reply));
  }
}
Deno.exit(0);
`;

interface Reply {
  ok: boolean;
  error?: string;
  line?: string;
  bytes?: number;
  ms?: number;
}

/** The client script running in a host, driven one request at a time. */
class Client implements AsyncDisposable {
  #process: Deno.ChildProcess;
  #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #replies: ReadableStreamDefaultReader<string>;
  #buffered = "";
  #stderr: Promise<string>;

  constructor(network: Network, host: string) {
    this.#process = network.spawn(host, [DENO, "eval", "--ext=js", CLIENT_SCRIPT], {
      stdin: "piped",
    });
    this.#stdin = this.#process.stdin.getWriter();
    this.#replies = this.#process.stdout.pipeThrough(new TextDecoderStream()).getReader();
    this.#stderr = new Response(this.#process.stderr).text();
  }

  /** Sends one request and waits for its reply, for its own limit plus REQUEST_SLACK_MS. */
  async request(request: Record<string, unknown>, timeoutMs: number): Promise<Reply> {
    await this.#stdin.write(new TextEncoder().encode(JSON.stringify(request) + "\n"));
    return await withTimeout(this.#nextReply(), {
      timeoutMs: timeoutMs + REQUEST_SLACK_MS,
      what: `the client's reply to ${request.op}`,
    });
  }

  async #nextReply(): Promise<Reply> {
    while (!this.#buffered.includes("\n")) {
      const { value, done } = await this.#replies.read();
      if (done) throw new Error(`The client exited: ${await this.#stderr}`);
      this.#buffered += value;
    }
    const at = this.#buffered.indexOf("\n");
    const line = this.#buffered.slice(0, at);
    this.#buffered = this.#buffered.slice(at + 1);
    return JSON.parse(line);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#stdin.close().catch(() => {});
    const status = await withTimeout(this.#process.status, {
      timeoutMs: REQUEST_SLACK_MS,
      what: "the client to exit",
    }).catch(() => {
      this.#process.kill("SIGKILL");
      return this.#process.status;
    });
    while (!(await this.#replies.read()).done) { /* drain */ }
    await this.#stderr;
    assert.ok(status.success, `the client exits cleanly: ${await this.#stderr}`);
  }
}

/** Starts the server script in `host` and waits until its last port listens. */
async function startServer(network: Network, host: string): Promise<void> {
  const server = network.spawn(host, [
    ...[DENO, "eval", "--ext=js", SERVER_SCRIPT, "--", network.address(host)],
    ...[String(ECHO_PORT), String(SOURCE_PORT), String(SINK_PORT), String(TRANSFER_BYTES)],
  ]);
  // Drain its output so it never blocks; disposal of the network kills it and ends both.
  void server.stdout.pipeTo(new WritableStream()).catch(() => {});
  void server.stderr.pipeTo(new WritableStream()).catch(() => {});
  await network.waitForListening(host, SINK_PORT, { timeoutMs: LISTEN_TIMEOUT_MS });
}

async function echoOnce(client: Client, id: number, hostname: string): Promise<void> {
  const timeoutMs = CONNECT_TIMEOUT_MS;
  const connected = await client.request(
    { op: "connect", id, hostname, port: ECHO_PORT, timeoutMs },
    timeoutMs,
  );
  assert.ok(connected.ok, `connect to ${hostname}: ${connected.error}`);
  assert.ok((await client.request({ op: "send", id, text: `hello ${id}` }, 0)).ok);
  const echoed = await client.request({ op: "read", id, timeoutMs }, timeoutMs);
  assert.deepEqual(echoed, { ok: true, line: `hello ${id}` });
}

async function transfer(
  client: Client,
  op: "download" | "upload",
  hostname: string,
): Promise<number> {
  const port = op === "download" ? SOURCE_PORT : SINK_PORT;
  const reply = await client.request(
    { op, hostname, port, bytes: TRANSFER_BYTES, timeoutMs: TRANSFER_TIMEOUT_MS },
    TRANSFER_TIMEOUT_MS,
  );
  assert.ok(reply.ok, `${op}: ${reply.error}`);
  assert.equal(reply.bytes, TRANSFER_BYTES);
  return reply.ms!;
}

/** Waits up to DEATH_TIMEOUT_MS for `pid` to be gone or a zombie (SIGKILL lands asynchronously). */
async function assertDies(pid: number): Promise<void> {
  let state = "";
  for (const deadline = Date.now() + DEATH_TIMEOUT_MS; Date.now() < deadline; await sleep(20)) {
    state = await Deno.readTextFile(`/proc/${pid}/stat`).catch(() => "gone");
    if (state === "gone" || /^\d+ \(.*\) [ZX] /.test(state)) return;
  }
  assert.fail(`process ${pid} still runs: ${state}`);
}

function mbit(ms: number): string {
  return (TRANSFER_BYTES * 8 / 1000 / ms).toFixed(0);
}

Deno.test({
  name: "createNetwork() joins hosts by address; cut() holds their traffic and heal() resumes it",
  ignore: !available.ok,
  async fn() {
    await using network = await createNetwork({ hosts: ["a", "b", "c"] });
    assert.deepEqual(network.hosts, ["a", "b", "c"]);
    assert.equal(network.address("c"), "10.77.0.3");
    await startServer(network, "a");
    await using client = new Client(network, "b");
    const a = network.address("a");
    await echoOnce(client, 1, a);

    await network.cut("a");
    // A held connection gets no answer, and the process holding it is not disturbed.
    assert.ok((await client.request({ op: "send", id: 1, text: "held" }, 0)).ok);
    const held = await client.request(
      { op: "read", id: 1, timeoutMs: CUT_READ_WAIT_MS },
      CUT_READ_WAIT_MS,
    );
    assert.equal(held.ok, false, `no reply across the cut, got ${JSON.stringify(held)}`);
    const started = performance.now();
    const refused = await client.request(
      { op: "connect", id: 2, hostname: a, port: ECHO_PORT, timeoutMs: CUT_CONNECT_TIMEOUT_MS },
      CUT_CONNECT_TIMEOUT_MS,
    );
    const refusedMs = performance.now() - started;
    assert.equal(refused.ok, false, "a connect across the cut fails");
    assert.ok(refusedMs < CUT_CONNECT_TIMEOUT_MS + REQUEST_SLACK_MS);

    await network.heal("a");
    const healed = performance.now();
    await echoOnce(client, 3, a);
    const delivered = await client.request(
      { op: "read", id: 1, timeoutMs: HEAL_DELIVERY_TIMEOUT_MS },
      HEAL_DELIVERY_TIMEOUT_MS,
    );
    assert.deepEqual(delivered, { ok: true, line: "held" }, "the held connection resumes");
    console.log(
      `connect across the cut: ${refused.error} after ${refusedMs.toFixed(0)} ms; ` +
        `held line delivered ${(performance.now() - healed).toFixed(0)} ms after the heal`,
    );
  },
});

Deno.test({
  name: "limit() slows a host's downloads and uploads to about the rate, unlimit() lifts it",
  ignore: !available.ok || !tc.ok,
  async fn() {
    await using network = await createNetwork({ hosts: ["a", "b", "c"] });
    await startServer(network, "a");
    await using client = new Client(network, "b");
    const a = network.address("a");
    const free = {
      download: await transfer(client, "download", a),
      upload: await transfer(client, "upload", a),
    };
    assert.deepEqual(await network.limit("b", { rateMbit: 100 }), { ok: true });
    const limited = {
      download: await transfer(client, "download", a),
      upload: await transfer(client, "upload", a),
    };
    await network.unlimit("b");
    const lifted = await transfer(client, "download", a);
    console.log(
      `4 MiB free: down ${free.download.toFixed(0)} ms, up ${free.upload.toFixed(0)} ms; ` +
        `at 100 Mbit/s: down ${limited.download.toFixed(0)} ms (${mbit(limited.download)} ` +
        `Mbit/s), up ${limited.upload.toFixed(0)} ms (${mbit(limited.upload)} Mbit/s); ` +
        `lifted: down ${lifted.toFixed(0)} ms`,
    );
    for (const op of ["download", "upload"] as const) {
      assert.ok(limited[op] > free[op] * 1.4, `${op} is at least 40% slower when limited`);
      assert.ok(Number(mbit(limited[op])) < 150, `${op} stays near 100 Mbit/s`);
    }
    assert.ok(lifted * 1.4 < limited.download, "the download is fast again after unlimit()");
  },
});

Deno.test({
  name: "disposal kills what the network spawned and deletes its namespaces after a failed test",
  ignore: !available.ok,
  async fn() {
    let namespaces: readonly string[] = [];
    const pids: number[] = [];
    await assert.rejects(async () => {
      await using network = await createNetwork({ hosts: ["a", "b"], prefix: "dfs-dispose" });
      namespaces = network.namespaces;
      assert.ok((await listNamespaces()).includes(network.namespace("a")));
      // A shell that ignores SIGTERM and leaves a grandchild behind in the namespace.
      const shell = network.spawn("a", ["sh", "-c", "trap '' TERM; sleep 60 & echo $!; wait"]);
      const reader = shell.stdout.pipeThrough(new TextDecoderStream()).getReader();
      pids.push(shell.pid, Number((await reader.read()).value));
      reader.releaseLock();
      throw new Error("the test failed");
    }, /the test failed/);
    const left = await listNamespaces();
    for (const namespace of namespaces) assert.ok(!left.includes(namespace), namespace);
    for (const pid of pids) await assertDies(pid);
  },
});

Deno.test("createNetwork() rejects a repeated, reserved or malformed host name", async () => {
  const cases: [string[], RegExp][] = [
    [["a", "a"], /^Cannot create host "a": the name is repeated$/],
    [["switch"], /^Cannot create host "switch": the name is reserved for the bridge$/],
    [["A"], /^Cannot create host "A": a name is 1-16 of \[a-z0-9\]$/],
    [[], /^Cannot create a network of 0 hosts: it needs 1 to 64$/],
  ];
  for (const [hosts, message] of cases) {
    await assert.rejects(createNetwork({ hosts }), (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.match(e.message, message);
      return true;
    });
  }
  await assert.rejects(
    createNetwork({ hosts: ["a"], subnet: "10.1.2.0/16" }),
    /^Error: Cannot create a network: subnet "10.1.2.0\/16" is not of the form A.B.C.0\/24$/,
  );
});
