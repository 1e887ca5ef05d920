/**
 * dfs across hosts: rank 0 and three `dfs node` processes, each in a network namespace of its own
 * (`_netns.ts`), the nodes in two zones (h1 in zone a, h2 and h3 in zone b). A host's cable is
 * pulled at the switch mid-get, mid-put, while files are overwritten and removed, and for good:
 * every get still returns the right bytes, a put commits whole or not at all, nothing removed or
 * overwritten during a partition comes back, and a host that stays away has its replicas copied to
 * the live ones. Skipped, with the reason printed once, when the machine cannot build namespaces
 * (not root, no `iproute2`).
 *
 * The test process stays in the root namespace, which cannot reach the hosts: the client is a small
 * script (`CLIENT_SCRIPT`) run in rank 0's host and driven over its stdin, one JSON line each way.
 * All traffic stays between the test's own namespace addresses. Timings are printed.
 *
 * @module
 */

import { firstReplica } from "../protocol/direct.ts";
import assert from "node:assert/strict";
import { pseudoRandomBytes, sha256 } from "./_bytes.ts";
import { createNetwork, netnsAvailable, type Network } from "./_netns.ts";
import { writeSecret } from "./_nodes.ts";
import { DENO, ROOT, SERVER_MALLOC_ENV, SERVER_V8_FLAGS } from "./_server.ts";
import { sleep, withTimeout } from "./_wait.ts";

const available = await netnsAvailable();
if (!available.ok) console.warn(`Skipping the multi-host tests: ${available.why}`);

const MiB = 1024 * 1024;
/** Rank 0's host, where the client runs too (its traffic to rank 0 never crosses a cut). */
const RANK0_HOST = "r0";
/** The data node hosts and their zones: each chunk has one replica in zone a and one in zone b. */
const NODE_ZONES = { h1: "a", h2: "b", h3: "b" } as const;
type NodeHost = keyof typeof NODE_ZONES;
const NODE_HOSTS = Object.keys(NODE_ZONES) as NodeHost[];
/** Fixed ports are safe: each host is a namespace of its own. */
const CLIENT_PORT = 7070;
const NODE_PORT = 7071;
const REPLICAS = 2;

/** How long rank 0 may take to print its ready line, and a node its first `joined` line. */
const START_TIMEOUT_MS = 30_000;
/** Pause between two looks at a condition being waited for. */
const POLL_MS = 200;
/**
 * How long a node may take to be marked down after its cut (a heartbeat a second, unanswered for
 * 5 s), or to be up again after its heal (its old link is taken for dead after 10 s of silence,
 * then it joins again and is reconciled); with slack for a busy machine.
 */
const STATE_TIMEOUT_MS = 30_000;
/** How long one client request may take, a get or put across a cut included. */
const REQUEST_TIMEOUT_MS = 40_000;
/**
 * The longest a get may stall on a cut host: the heartbeat marks it down within about 6 s and the
 * read fails over (the 60 s call timeout must not be what ends it); with slack.
 */
const GET_STALL_MAX_MS = 15_000;
/** Scenario "re-replication": a node down this long has its replicas copied to live nodes. */
const REREPLICATE_AFTER_MS = 3_000;
/** From the cut until every chunk has two replicas on live nodes again (about 9 s expected). */
const REREPLICATION_TIMEOUT_MS = 20_000;
/** How long a stopped process may take to exit. */
const STOP_TIMEOUT_MS = 10_000;

const CLIENT_URL = new URL("../client.ts", import.meta.url).href;
const BYTES_URL = new URL("./_bytes.ts", import.meta.url).href;

/**
 * Runs in rank 0's host: answers each JSON request line (`{ id, op, ... }`) with one JSON line
 * (`{ id, ok, result }` or `{ id, ok: false, error: { code, message } }`), several at a time, each
 * on a connection of its own. A put (`pauseAt` bytes) or a get (`pauseAfterFirst`) may pause: it
 * says `{ id, event: "paused" }` and goes on at `{ op: "resume", target: id }`. Puts make their
 * bytes from a seed (`pseudoRandomBytes`); gets answer the SHA-256 of what they read, the longest
 * wait between two pieces after the pause, and the time from the resume to the end.
 */
const CLIENT_SCRIPT = `
import { DfsClient } from ${JSON.stringify(CLIENT_URL)};
import { pseudoRandomBytes } from ${JSON.stringify(BYTES_URL)};
import { createHash } from "node:crypto";

const server = Deno.args[0];
const PIECE_BYTES = 1024 * 1024;
const resumes = new Map();

function say(message) {
  console.log(JSON.stringify(message));
}
function pause(id) {
  const { promise, resolve } = Promise.withResolvers();
  resumes.set(id, resolve);
  say({ id, event: "paused" });
  return promise;
}
async function connected(work) {
  const client = await DfsClient.connect(server);
  try {
    return await work(client);
  } finally {
    client.close();
  }
}
function put(request) {
  const bytes = pseudoRandomBytes(request.size, request.seed);
  if (request.pauseAt === undefined) return connected((client) => client.put(request.name, bytes));
  let sent = 0;
  const source = new ReadableStream({
    async pull(controller) {
      if (sent === request.pauseAt) await pause(request.id);
      const piece = bytes.slice(sent, Math.min(sent + PIECE_BYTES, bytes.length));
      controller.enqueue(piece);
      sent += piece.length;
      if (sent === bytes.length) controller.close();
    },
  });
  return connected((client) => client.put(request.name, source, { size: bytes.length }));
}
function get(request) {
  return connected(async (client) => {
    const { meta, stream } = await client.open(request.name);
    const hash = createHash("sha256");
    let bytes = 0;
    let pieces = 0;
    let resumed = performance.now();
    let last = resumed;
    let maxGapMs = 0;
    for await (const piece of stream) {
      const now = performance.now();
      if (pieces > 0) maxGapMs = Math.max(maxGapMs, now - last);
      hash.update(piece);
      bytes += piece.length;
      pieces++;
      if (pieces === 1 && request.pauseAfterFirst) {
        await pause(request.id);
        resumed = performance.now();
      }
      last = performance.now();
    }
    return {
      sha256: hash.digest("hex"),
      bytes,
      version: meta.version,
      maxGapMs,
      afterResumeMs: performance.now() - resumed,
    };
  });
}
const OPS = {
  put,
  get,
  meta: (r) => connected((client) => client.meta(r.name)),
  list: (r) => connected((client) => client.list(r.prefix ?? "")),
  remove: (r) => connected((client) => client.remove(r.name)).then(() => ({})),
  rename: (r) => connected((client) => client.rename(r.from, r.to)),
  status: () => connected((client) => client.status()),
  fsck: () => connected((client) => client.fsck()),
};
let buffered = "";
for await (const text of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
  buffered += text;
  for (let at = buffered.indexOf("\\n"); at >= 0; at = buffered.indexOf("\\n")) {
    const request = JSON.parse(buffered.slice(0, at));
    buffered = buffered.slice(at + 1);
    if (request.op === "resume") {
      resumes.get(request.target)?.();
      resumes.delete(request.target);
      continue;
    }
    const op = OPS[request.op];
    const work = op ? op(request) : Promise.reject(new Error("unknown op " + request.op));
    work.then(
      (result) => say({ id: request.id, ok: true, result }),
      (error) => say({
        id: request.id,
        ok: false,
        error: { code: error?.code ?? "", message: String(error?.message ?? error) },
      }),
    );
  }
}
Deno.exit(0);
`;

/** What the client answers to one request. */
type Reply<T> = { ok: true; result: T } | { ok: false; error: { code: string; message: string } };

interface FileMetaReply {
  name: string;
  size: number;
  sha256: string;
  version: number;
  chunks: { size: number; ranks: number[]; zones?: string[] }[];
}
interface GetReply {
  sha256: string;
  bytes: number;
  version: number;
  maxGapMs: number;
  afterResumeMs: number;
}
interface StatusReply {
  ranks: {
    rank: number;
    kind?: string;
    zone?: string;
    address?: string;
    state: string;
    chunks: number;
  }[];
  underReplicatedChunks: number;
}
interface FsckReply {
  files: number;
  lost: string[];
  underReplicated: string[];
  repaired: string[];
}

/** Every line the processes of one test wrote, with the time since the test started. */
class LogBook {
  readonly startedMs = performance.now();
  readonly lines: { atMs: number; source: string; line: string }[] = [];

  add(source: string, line: string): void {
    this.lines.push({ atMs: this.now(), source, line });
  }

  /** Milliseconds since the test started. */
  now(): number {
    return performance.now() - this.startedMs;
  }

  /** When `source` first wrote a line matching `pattern` at or after `sinceMs`, if it did. */
  firstAfter(source: string, pattern: RegExp, sinceMs: number): number | undefined {
    return this.lines.find((l) => l.source === source && l.atMs >= sinceMs && pattern.test(l.line))
      ?.atMs;
  }

  dump(): string {
    return this.lines.map((l) => `${(l.atMs / 1000).toFixed(3).padStart(8)} ${l.source}: ${l.line}`)
      .join("\n");
  }
}

/** A process in a host whose stdout and stderr go to the log book, line by line. */
class HostProcess {
  readonly name: string;
  readonly process: Deno.ChildProcess;
  /** Everything it wrote so far, both streams. */
  text = "";
  exited = false;
  #log: LogBook;

  constructor(
    network: Network,
    host: string,
    options: { name: string; cmd: string[]; log: LogBook },
  ) {
    this.name = options.name;
    this.#log = options.log;
    this.process = network.spawn(host, options.cmd, { cwd: ROOT, env: SERVER_MALLOC_ENV });
    void this.#drain(this.process.stdout).catch(() => {});
    void this.#drain(this.process.stderr).catch(() => {});
    void this.process.status.then(() => this.exited = true);
  }

  /** How many times it has written a line matching `pattern` (which must be global). */
  count(pattern: RegExp): number {
    return [...this.text.matchAll(pattern)].length;
  }

  /** Waits for a line matching `pattern`; fails if the process exits first. */
  async waitFor(pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
    for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(20)) {
      const match = pattern.exec(this.text);
      if (match) return match;
      if (this.exited) assert.fail(`${this.name} exited before it wrote ${pattern}`);
    }
    return assert.fail(`${this.name} did not write ${pattern} within ${timeoutMs} ms`);
  }

  /** Sends SIGTERM and waits for the exit. */
  async stop(): Promise<void> {
    try {
      this.process.kill("SIGTERM");
    } catch { /* exited already */ }
    await withTimeout(this.process.status, { timeoutMs: STOP_TIMEOUT_MS, what: this.name });
  }

  async #drain(stream: ReadableStream<Uint8Array>): Promise<void> {
    let partial = "";
    for await (const piece of stream.pipeThrough(new TextDecoderStream())) {
      this.text += piece;
      partial += piece;
      const lines = partial.split("\n");
      partial = lines.pop()!;
      for (const line of lines) this.#log.add(this.name, line);
    }
    if (partial !== "") this.#log.add(this.name, partial);
  }
}

/** A request in progress: its reply, and when it paused (if it was asked to). */
interface Pending<T> {
  id: number;
  paused: Promise<void>;
  reply: Promise<Reply<T>>;
}

/** The client script in a host, requests in flight at once. */
class Client {
  #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #replies = new Map<number, (reply: Reply<unknown>) => void>();
  #pauses = new Map<number, () => void>();
  #nextId = 1;
  #ended: Promise<void>;

  constructor(network: Network, options: { host: string; server: string; log: LogBook }) {
    const cmd = [DENO, "eval", "--quiet", "--ext=ts", CLIENT_SCRIPT, options.server];
    const child = network.spawn(options.host, cmd, { cwd: ROOT, stdin: "piped" });
    this.#stdin = child.stdin.getWriter();
    const stderr = { text: "" };
    void (async () => {
      for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) {
        stderr.text += text;
        options.log.add("client", text.trimEnd());
      }
    })().catch(() => {});
    this.#ended = this.#readReplies(child.stdout, stderr);
  }

  /** Sends a request; the reply and the pause come later. */
  start<T>(op: string, args: Record<string, unknown> = {}): Pending<T> {
    const id = this.#nextId++;
    const paused = new Promise<void>((resolve) => this.#pauses.set(id, resolve));
    const reply = new Promise<Reply<T>>((resolve) => {
      this.#replies.set(id, resolve as (reply: Reply<unknown>) => void);
    });
    void this.#send({ ...args, op, id });
    return { id, paused, reply };
  }

  /** Sends a request and waits up to REQUEST_TIMEOUT_MS for its reply. */
  call<T>(op: string, args: Record<string, unknown> = {}): Promise<Reply<T>> {
    return withTimeout(this.start<T>(op, args).reply, {
      timeoutMs: REQUEST_TIMEOUT_MS,
      what: `the client's answer to ${op} ${JSON.stringify(args)}`,
    });
  }

  /** Like `call`, and fails the test unless the request succeeded. */
  async must<T>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    const reply = await this.call<T>(op, args);
    if (!reply.ok) assert.fail(`${op} ${JSON.stringify(args)} failed: ${reply.error.message}`);
    return reply.result;
  }

  /** Lets a paused request go on. */
  resume(id: number): void {
    void this.#send({ op: "resume", target: id });
  }

  async close(): Promise<void> {
    await this.#stdin.close().catch(() => {});
    await withTimeout(this.#ended, { timeoutMs: STOP_TIMEOUT_MS, what: "the client to exit" })
      .catch(() => {});
  }

  async #send(message: Record<string, unknown>): Promise<void> {
    await this.#stdin.write(new TextEncoder().encode(JSON.stringify(message) + "\n"));
  }

  async #readReplies(stdout: ReadableStream<Uint8Array>, stderr: { text: string }) {
    let buffered = "";
    for await (const text of stdout.pipeThrough(new TextDecoderStream())) {
      buffered += text;
      for (let at = buffered.indexOf("\n"); at >= 0; at = buffered.indexOf("\n")) {
        const message = JSON.parse(buffered.slice(0, at));
        buffered = buffered.slice(at + 1);
        if (message.event === "paused") this.#pauses.get(message.id)?.();
        else {
          this.#replies.get(message.id)?.(message);
          this.#replies.delete(message.id);
          this.#pauses.delete(message.id);
        }
      }
    }
    const ended = { ok: false as const, error: { code: "", message: `exited: ${stderr.text}` } };
    for (const resolve of this.#replies.values()) resolve(ended);
  }
}

/** Rank 0, its three nodes and a client, in a network of their own. */
class Cluster {
  readonly network: Network;
  readonly log: LogBook;
  readonly dir: string;
  readonly secretFile: string;
  readonly rereplicateAfterMs: number | undefined;
  rank0!: HostProcess;
  readonly nodes = new Map<NodeHost, HostProcess>();
  /** Each node host's rank, from its `joined` line. */
  readonly ranks = new Map<NodeHost, number>();
  client!: Client;

  private constructor(
    network: Network,
    options: { log: LogBook; dir: string; secretFile: string; rereplicateAfterMs?: number },
  ) {
    this.network = network;
    this.log = options.log;
    this.dir = options.dir;
    this.secretFile = options.secretFile;
    this.rereplicateAfterMs = options.rereplicateAfterMs;
  }

  /** Starts rank 0, then the three nodes, and waits until every node is up. */
  static async start(
    network: Network,
    options: { log: LogBook; dir: string; rereplicateAfterMs?: number; nodesAtOnce?: boolean },
  ): Promise<Cluster> {
    const secretFile = await writeSecret(options.dir);
    const cluster = new Cluster(network, { ...options, secretFile });
    await cluster.startRank0();
    if (options.nodesAtOnce) {
      await Promise.all(NODE_HOSTS.map((host) => cluster.#startNode(host)));
    } else {
      // One at a time, so that h1, h2 and h3 are ranks 1, 2 and 3 (joins at once: the last test).
      for (const host of NODE_HOSTS) await cluster.#startNode(host);
    }
    cluster.client = new Client(network, {
      host: RANK0_HOST,
      server: cluster.server,
      log: options.log,
    });
    await cluster.waitForHealthy();
    return cluster;
  }

  /** Rank 0's client address. */
  get server(): string {
    return `${this.network.address(RANK0_HOST)}:${CLIENT_PORT}`;
  }

  /** Starts rank 0 on its folder and waits for its ready line. */
  async startRank0(): Promise<void> {
    const address = this.network.address(RANK0_HOST);
    const cmd = [
      ...[DENO, "run", "-A", "--quiet", SERVER_V8_FLAGS, `${ROOT}main.ts`, "serve"],
      ...["--ranks", "1", "--replicas", String(REPLICAS), "--data", `${this.dir}/r0`],
      ...["--host", address, "--port", String(CLIENT_PORT)],
      ...["--node-host", address, "--node-port", String(NODE_PORT)],
      ...["--cluster-secret-file", this.secretFile],
      ...(this.rereplicateAfterMs === undefined
        ? []
        : ["--rereplicate-after-ms", String(this.rereplicateAfterMs)]),
    ];
    this.rank0 = new HostProcess(this.network, RANK0_HOST, { name: "r0", cmd, log: this.log });
    const ready = await this.rank0.waitFor(/listening on (\S+) .*nodes on (\S+)/, START_TIMEOUT_MS);
    assert.equal(ready[1], this.server);
    assert.equal(ready[2], `${address}:${NODE_PORT}`);
  }

  async #startNode(host: NodeHost): Promise<void> {
    const cmd = [
      ...[DENO, "run", "-A", "--quiet", SERVER_V8_FLAGS, `${ROOT}main.ts`, "node"],
      ...["--join", `${this.network.address(RANK0_HOST)}:${NODE_PORT}`],
      ...["--data", `${this.dir}/${host}`, "--cluster-secret-file", this.secretFile],
      ...["--zone", NODE_ZONES[host], "--host", host],
    ];
    const node = new HostProcess(this.network, host, { name: host, cmd, log: this.log });
    this.nodes.set(host, node);
    const joined = await node.waitFor(/joined \S+ as rank (\d+)/, START_TIMEOUT_MS);
    this.ranks.set(host, Number(joined[1]));
  }

  rankOf(host: NodeHost): number {
    return this.ranks.get(host)!;
  }

  /** The node host of a rank. */
  hostOf(rank: number): NodeHost {
    return NODE_HOSTS.find((host) => this.ranks.get(host) === rank)!;
  }

  /** How many times the node on `host` has joined so far. */
  joins(host: NodeHost): number {
    return this.nodes.get(host)!.count(/joined \S+ as rank \d+/g);
  }

  /** Polls status until every node is up and no chunk is under-replicated. */
  waitForHealthy(timeoutMs = STATE_TIMEOUT_MS): Promise<StatusReply> {
    return waitUntil("every node up, nothing under-replicated", timeoutMs, async () => {
      const status = await this.client.call<StatusReply>("status");
      if (!status.ok) return { seen: status.error.message };
      const { ranks, underReplicatedChunks } = status.result;
      const done = ranks.length === NODE_HOSTS.length &&
        ranks.every((r) => r.state === "up") && underReplicatedChunks === 0;
      const seen = JSON.stringify({ states: ranks.map((r) => r.state), underReplicatedChunks });
      return { value: done ? status.result : undefined, seen };
    });
  }

  /** Pulls `host`'s cable out at the switch. */
  async cut(host: NodeHost): Promise<Outage> {
    const joins = this.joins(host);
    await this.network.cut(host);
    return { host, cutAtMs: this.log.now(), joins };
  }

  /**
   * Waits until rank 0 says it marked the cut host's node down, then checks that status shows it
   * down with its replicas counted as missing; returns when it was marked, in ms after the cut.
   * (Status alone would not do: it shows a node down as soon as one 2 s ping goes unanswered.)
   */
  async waitForMarkedDown(outage: Outage): Promise<number> {
    const rank = this.rankOf(outage.host);
    const line = new RegExp(`rank ${rank} is down`);
    const markedAt = await waitUntil(
      `rank 0 to mark ${outage.host} down`,
      STATE_TIMEOUT_MS,
      () =>
        Promise.resolve({
          value: this.log.firstAfter("r0", line, outage.cutAtMs),
          seen: "no such line",
        }),
    );
    const status = await this.client.must<StatusReply>("status");
    assert.equal(status.ranks.find((r) => r.rank === rank)?.state, "down", outage.host);
    assert.ok(status.underReplicatedChunks > 0, `${outage.host}'s replicas count as missing`);
    return markedAt - outage.cutAtMs;
  }

  /**
   * Plugs the cut host back in and waits until its node has joined again (one more `joined`
   * line) and every node is up with nothing under-replicated. Returns, in ms after the heal, when
   * the node found its old link dead (negative if before the heal) and when it joined again.
   */
  async heal(outage: Outage): Promise<{ cutMs: number; lostMs: number; joinedMs: number }> {
    const { host } = outage;
    await this.network.heal(host);
    const healedAt = this.log.now();
    await waitUntil(`${host} to join again`, STATE_TIMEOUT_MS, () =>
      Promise.resolve({
        value: this.joins(host) > outage.joins ? true : undefined,
        seen: `${this.joins(host)} joins`,
      }));
    const joinedMs = this.log.now() - healedAt;
    await this.waitForHealthy();
    const lostAt = this.log.firstAfter(host, /lost rank 0/, outage.cutAtMs);
    assert.ok(lostAt !== undefined, `${host} says it lost rank 0`);
    return { cutMs: healedAt - outage.cutAtMs, lostMs: lostAt - healedAt, joinedMs };
  }
}

/** A host cut off: when (ms since the test started), and how many times its node had joined. */
interface Outage {
  host: NodeHost;
  cutAtMs: number;
  joins: number;
}

function describeHeal(healed: { cutMs: number; lostMs: number; joinedMs: number }): string {
  return `healed after ${seconds(healed.cutMs)} of cut, the node found its old link dead ` +
    `${seconds(healed.lostMs)} after the heal and joined again ${seconds(healed.joinedMs)} ` +
    "after it";
}

/**
 * Polls `probe` every POLL_MS until it gives a value; fails after `timeoutMs` with what it saw
 * last.
 */
async function waitUntil<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<{ value?: T; seen: string }>,
): Promise<T> {
  let seen = "nothing yet";
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(POLL_MS)) {
    const look = await probe();
    if (look.value !== undefined) return look.value;
    seen = look.seen;
  }
  return assert.fail(`Timed out after ${timeoutMs} ms waiting for ${what}; last seen: ${seen}`);
}

/** A test file: its name, size and seed, and the SHA-256 of its bytes. */
interface TestFile {
  name: string;
  size: number;
  seed: number;
  sha256: string;
}

function testFile(name: string, size: number, seed: number): TestFile {
  return { name, size, seed, sha256: sha256(pseudoRandomBytes(size, seed)) };
}

async function putFile(client: Client, file: TestFile): Promise<FileMetaReply> {
  const meta = await client.must<FileMetaReply>("put", {
    name: file.name,
    size: file.size,
    seed: file.seed,
  });
  assert.equal(meta.sha256, file.sha256, `${file.name}: the SHA-256 rank 0 recorded`);
  return meta;
}

async function assertContent(client: Client, file: TestFile): Promise<void> {
  const got = await client.must<GetReply>("get", { name: file.name });
  assert.equal(got.bytes, file.size, `${file.name}: bytes read`);
  assert.equal(got.sha256, file.sha256, `${file.name}: content read`);
}

async function assertNotFound(client: Client, name: string): Promise<void> {
  const reply = await client.call("meta", { name });
  assert.ok(!reply.ok && reply.error.code === "NOT_FOUND", `${name}: ${JSON.stringify(reply)}`);
}

/** Every chunk has REPLICAS replicas, one in each zone, none on `notOn`. */
function assertPlacement(meta: FileMetaReply, notOn?: number): void {
  meta.chunks.forEach((chunk, index) => {
    const where = `${meta.name} chunk ${index} on ranks ${chunk.ranks}`;
    assert.equal(new Set(chunk.ranks).size, REPLICAS, where);
    assert.deepEqual([...chunk.zones!].sort(), ["a", "b"], `${where}: one replica in each zone`);
    if (notOn !== undefined) assert.ok(!chunk.ranks.includes(notOn), `${where}: not ${notOn}`);
  });
}

/** A temp folder removed at disposal. */
async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "dfs-multi-host-" });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }).catch(() => {}),
  };
}

/** Runs `fn`; when it fails, prints every process's log (with times) before rethrowing. */
async function withLogs(log: LogBook, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (error) {
    console.error(`--- process logs (seconds since the test started) ---\n${log.dump()}`);
    throw error;
  }
}

function seconds(ms: number | undefined): string {
  return ms === undefined ? "-" : `${(ms / 1000).toFixed(1)} s`;
}

Deno.test({
  name:
    "nodes on three hosts in two zones: a get and a put survive a host cut under them, a healed partition brings nothing back",
  ignore: !available.ok,
  async fn() {
    await using dir = await tempDir();
    await using network = await createNetwork({ hosts: [RANK0_HOST, ...NODE_HOSTS] });
    const log = new LogBook();
    await withLogs(log, async () => {
      const cluster = await Cluster.start(network, { log, dir: dir.path });
      const { client } = cluster;
      try {
        console.log(`cluster up after ${seconds(log.now())}`);
        await joinAndServe(cluster);
        await getAcrossCut(cluster);
        await putAcrossCut(cluster);
        await healedPartition(cluster);
      } finally {
        await client.close();
      }
    });
  },
});

/** Scenario 1: every node joined from its own host, in its zone; files go and come back whole. */
async function joinAndServe(cluster: Cluster): Promise<void> {
  const { client, network } = cluster;
  const status = await client.must<StatusReply>("status");
  assert.deepEqual(
    status.ranks.map((r) => [cluster.hostOf(r.rank), r.kind, r.zone, r.state]),
    NODE_HOSTS.map((host) => [host, "remote", NODE_ZONES[host], "up"]),
  );
  for (const r of status.ranks) {
    const host = cluster.hostOf(r.rank);
    assert.match(r.address ?? "", new RegExp(`^${network.address(host)}:\\d+$`), host);
  }
  const files = [
    testFile("mh/empty", 0, 1),
    testFile("mh/small.txt", 1000, 2),
    testFile("mh/big.bin", 16 * MiB + 5, 3),
  ];
  const started = performance.now();
  for (const file of files) assertPlacement(await putFile(client, file));
  for (const file of files) await assertContent(client, file);
  assert.deepEqual(
    (await client.must<{ name: string }[]>("list", { prefix: "mh/" })).map((e) => e.name),
    files.map((f) => f.name).sort(),
  );
  console.log(
    `scenario 1: nodes ${NODE_HOSTS.map((h) => `${h}=rank ${cluster.rankOf(h)}`).join(", ")}; ` +
      `put and get of ${files.length} files (16 MiB) in ${seconds(performance.now() - started)}`,
  );
}

/**
 * Scenario 2: a get paused after its first piece, the zone-b host its later chunks are read from
 * first is cut, the get goes on: it stalls until the host is marked down, then fails over.
 */
async function getAcrossCut(cluster: Cluster): Promise<void> {
  const { client } = cluster;
  const file = testFile("mh/read.bin", 24 * MiB, 4);
  const blobsBefore = new Set(
    (await Promise.all(NODE_HOSTS.map((h) => blobFiles(cluster, h)))).flat(),
  );
  const meta = await putFile(client, file);
  // The upload's blob: the one blob file the put added (its chunks' ids are `<blob>-<offset>`).
  const added = new Set(
    (await Promise.all(NODE_HOSTS.map((h) => blobFiles(cluster, h)))).flat()
      .filter((name) => !blobsBefore.has(name)),
  );
  assert.equal(added.size, 1, "the put wrote one blob");
  const [blob] = added;
  // A chunk is read first from the replica a hash of its id picks (`firstReplica`): count, per
  // zone-b host, the chunks in the second half (past the read-ahead of 8 chunks and what the
  // sockets hold when the client pauses) that it is read from first. With placement by load that
  // may be only one of h2 and h3.
  const lateFirst = (host: NodeHost) =>
    meta.chunks.filter((chunk, index) => {
      const id = `${blob}-${(index * MiB).toString(16)}`;
      return index >= meta.chunks.length / 2 &&
        chunk.ranks[firstReplica(id, chunk.ranks.length)] === cluster.rankOf(host);
    }).length;
  const victim: NodeHost = lateFirst("h2") > 0 ? "h2" : "h3";
  assert.ok(lateFirst(victim) > 0, "some chunk of the second half is read from h2 or h3 first");

  const get = client.start<GetReply>("get", { name: file.name, pauseAfterFirst: true });
  await withTimeout(get.paused, { timeoutMs: REQUEST_TIMEOUT_MS, what: "the get's first piece" });
  const outage = await cluster.cut(victim);
  client.resume(get.id);
  const reply = await withTimeout(get.reply, { timeoutMs: REQUEST_TIMEOUT_MS, what: "the get" });
  assert.ok(reply.ok, `the get across the cut: ${JSON.stringify(reply)}`);
  assert.equal(reply.result.bytes, file.size);
  assert.equal(reply.result.sha256, file.sha256, "the get failed over to the other replicas");
  assert.ok(
    reply.result.maxGapMs < GET_STALL_MAX_MS,
    `the get stalled ${reply.result.maxGapMs} ms, over ${GET_STALL_MAX_MS}`,
  );
  const downMs = await cluster.waitForMarkedDown(outage);
  const healed = await cluster.heal(outage);
  await assertContent(client, file);
  console.log(
    `scenario 2: cut ${victim} (rank ${cluster.rankOf(victim)}, read first for ` +
      `${lateFirst(victim)} chunks of the second half) mid-get: the get stalled ` +
      `${seconds(reply.result.maxGapMs)} at most and ended ${
        seconds(reply.result.afterResumeMs)
      } ` +
      `after the cut, bytes right; rank 0 marked the node down ${seconds(downMs)} after the ` +
      `cut; ${describeHeal(healed)}`,
  );
}

/**
 * Scenario 3: a put paused half-way, h3 cut, the put goes on: it commits whole, or fails with
 * UNAVAILABLE and commits nothing.
 */
async function putAcrossCut(cluster: Cluster): Promise<void> {
  const { client, log } = cluster;
  const file = testFile("mh/during.bin", 24 * MiB, 5);
  const victim: NodeHost = "h3";
  const put = client.start<FileMetaReply>("put", {
    name: file.name,
    size: file.size,
    seed: file.seed,
    pauseAt: 12 * MiB,
  });
  await withTimeout(put.paused, { timeoutMs: REQUEST_TIMEOUT_MS, what: "the put's first half" });
  const outage = await cluster.cut(victim);
  client.resume(put.id);
  const reply = await withTimeout(put.reply, { timeoutMs: REQUEST_TIMEOUT_MS, what: "the put" });
  const putMs = log.now() - outage.cutAtMs;
  const assertOutcome = reply.ok
    ? () => assertContent(client, file)
    : () => assertNotFound(client, file.name);
  if (reply.ok) assert.equal(reply.result.sha256, file.sha256);
  else assert.equal(reply.error.code, "UNAVAILABLE", reply.error.message);
  await assertOutcome();
  await assertContent(client, testFile("mh/read.bin", 24 * MiB, 4));
  const downMs = await cluster.waitForMarkedDown(outage);
  const healed = await cluster.heal(outage);
  await assertOutcome();
  const fsck = await client.must<FsckReply>("fsck");
  assert.deepEqual([fsck.lost, fsck.underReplicated], [[], []]);
  const outcome = reply.ok
    ? `committed (version ${reply.result.version}, same SHA-256 on get)`
    : `failed with UNAVAILABLE, nothing committed (${reply.error.message})`;
  console.log(
    `scenario 3: cut ${victim} (rank ${cluster.rankOf(victim)}) mid-put: the put ${outcome} ` +
      `${seconds(putMs)} after the cut; rank 0 marked the node down ${seconds(downMs)} after ` +
      `the cut; ${describeHeal(healed)}; fsck: ${fsck.files} files, nothing lost`,
  );
}

/**
 * Scenario 4: h1 (all of zone a) cut while files are overwritten, removed and renamed; healed, it
 * joins again and nothing removed or overwritten meanwhile comes back, not even after rank 0
 * restarts and rebuilds its index from the nodes' logs.
 */
async function healedPartition(cluster: Cluster): Promise<void> {
  const { client, log } = cluster;
  const before = {
    keep: testFile("p/keep", 3 * MiB, 10),
    overBig: testFile("p/over-big", 6 * MiB + 1, 11),
    overSmall: testFile("p/over-small", 2000, 12),
    goneBig: testFile("p/gone-big", 5 * MiB, 13),
    goneSmall: testFile("p/gone-small", 100, 14),
    moved: testFile("p/moved-from", 2 * MiB, 15),
  };
  for (const file of Object.values(before)) await putFile(client, file);
  const after = {
    keep: before.keep,
    overBig: testFile("p/over-big", 4 * MiB, 21),
    overSmall: testFile("p/over-small", 3000, 22),
    moved: { ...before.moved, name: "p/moved-to" },
  };
  const outage = await cluster.cut("h1");
  // The first change waits for h1 to be marked down; the others find it down.
  await putFile(client, after.overBig);
  const firstChangeMs = log.now() - outage.cutAtMs;
  await client.must("remove", { name: before.goneBig.name });
  await putFile(client, after.overSmall);
  await client.must("remove", { name: before.goneSmall.name });
  await client.must("rename", { from: before.moved.name, to: after.moved.name });
  const changesMs = log.now() - outage.cutAtMs;
  const downMs = await cluster.waitForMarkedDown(outage);
  const healed = await cluster.heal(outage);

  const expected = Object.values(after).sort((x, y) => x.name < y.name ? -1 : 1);
  const assertState = async (when: string) => {
    const list = await client.must<{ name: string }[]>("list", { prefix: "p/" });
    assert.deepEqual(list.map((e) => e.name), expected.map((f) => f.name), `list ${when}`);
    for (const file of expected) await assertContent(client, file);
    for (const file of [before.goneBig, before.goneSmall, before.moved]) {
      await assertNotFound(client, file.name);
    }
  };
  await assertState("after the heal");

  // Rank 0's index is rebuilt from every node's log at start: h1's old records must lose.
  const stoppedAt = log.now();
  await cluster.rank0.stop();
  await cluster.startRank0();
  await cluster.waitForHealthy();
  const restartMs = log.now() - stoppedAt;
  await assertState("after rank 0 restarted");
  const fsck = await client.must<FsckReply>("fsck");
  assert.deepEqual([fsck.lost, fsck.underReplicated], [[], []]);
  console.log(
    `scenario 4: cut h1 (zone a): the first overwrite took ${seconds(firstChangeMs)} (rank 0 ` +
      `marked h1 down ${seconds(downMs)} after the cut), all 5 changes ${seconds(changesMs)}; ` +
      `${describeHeal(healed)}; nothing came back, nor after rank 0 restarted (all up again ` +
      `${seconds(restartMs)} after the stop)`,
  );
}

Deno.test({
  name:
    "a host that stays away has its replicas copied to live hosts; healed, its node joins again and drops them",
  ignore: !available.ok,
  async fn() {
    await using dir = await tempDir();
    await using network = await createNetwork({ hosts: [RANK0_HOST, ...NODE_HOSTS] });
    const log = new LogBook();
    await withLogs(log, async () => {
      const cluster = await Cluster.start(network, {
        log,
        dir: dir.path,
        rereplicateAfterMs: REREPLICATE_AFTER_MS,
      });
      try {
        await rereplication(cluster);
      } finally {
        await cluster.client.close();
      }
    });
  },
});

/** Blob files in the chunk folder of the node on `host` (small files live in its log). */
async function blobFiles(cluster: Cluster, host: NodeHost): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(`${cluster.dir}/${host}/store/chunks`)) {
    if (entry.isFile) names.push(entry.name);
  }
  return names;
}

/**
 * Scenario 5: h2 cut and left cut; after `--rereplicate-after-ms` its replicas are copied to live
 * nodes (one per zone still), nothing is lost; healed, it joins again and its stale replicas go.
 */
async function rereplication(cluster: Cluster): Promise<void> {
  const { client, log } = cluster;
  const files = [
    testFile("r/one", 12 * MiB, 31),
    testFile("r/two", 9 * MiB + 3, 32),
    testFile("r/small", 500, 33),
  ];
  for (const file of files) await putFile(client, file);
  const victim: NodeHost = "h2";
  const rank = cluster.rankOf(victim);
  const held = (await client.must<StatusReply>("status")).ranks.find((r) => r.rank === rank)!;
  assert.ok(held.chunks > 0, `${victim} holds replicas before the cut`);
  assert.ok((await blobFiles(cluster, victim)).length > 0, `${victim} holds blob files`);

  const outage = await cluster.cut(victim);
  const downMs = await cluster.waitForMarkedDown(outage);
  await waitUntil("every chunk on two live nodes", REREPLICATION_TIMEOUT_MS, async () => {
    const status = await client.must<StatusReply>("status");
    if (status.underReplicatedChunks !== 0) {
      return { seen: `${status.underReplicatedChunks} chunks under-replicated` };
    }
    for (const file of files) {
      const meta = await client.must<FileMetaReply>("meta", { name: file.name });
      if (meta.chunks.some((c) => c.ranks.includes(rank))) {
        return { seen: `${file.name} still has a replica on rank ${rank}` };
      }
    }
    return { value: true, seen: "" };
  });
  const rereplicatedMs = log.now() - outage.cutAtMs;
  assert.ok(rereplicatedMs < REREPLICATION_TIMEOUT_MS);
  for (const file of files) {
    assertPlacement(await client.must<FileMetaReply>("meta", { name: file.name }), rank);
    await assertContent(client, file);
  }
  const fsck = await client.must<FsckReply>("fsck");
  assert.deepEqual(fsck.lost, []);
  assert.equal(fsck.files, files.length);
  const copied = log.lines.find((l) => l.source === "r0" && /stays away/.test(l.line));
  assert.ok(copied, "rank 0 says it re-replicated the node");

  const healedAt = log.now();
  const healed = await cluster.heal(outage);
  const joined = new RegExp(`rank ${rank} .*joined from .*\\((\\d+) stale chunks dropped`, "g");
  const dropped = Number([...cluster.rank0.text.matchAll(joined)].at(-1)?.[1]);
  assert.ok(dropped > 0, `rank 0 dropped the stale replicas: ${cluster.rank0.text}`);
  await waitUntil(`${victim}'s stale blob files to go`, STATE_TIMEOUT_MS, async () => {
    const left = await blobFiles(cluster, victim);
    return { value: left.length === 0 ? true : undefined, seen: left.join(", ") };
  });
  const status = await client.must<StatusReply>("status");
  assert.equal(status.ranks.find((r) => r.rank === rank)!.chunks, 0, `${victim} holds nothing`);
  for (const file of files) await assertContent(client, file);
  const after = await client.must<FsckReply>("fsck");
  assert.deepEqual([after.lost, after.underReplicated], [[], []]);
  const complaints = log.lines.filter((l) =>
    l.atMs >= healedAt && (l.source === "r0" || l.source === victim) && /cannot/i.test(l.line)
  );
  assert.deepEqual(complaints, [], "no failure logged after the heal");
  console.log(
    `scenario 5: cut ${victim} (rank ${rank}, ${held.chunks} replicas) for good: rank 0 marked ` +
      `it down ${seconds(downMs)} after the cut; every chunk on two live nodes in two zones ` +
      `${seconds(rereplicatedMs)} after the cut ("${copied.line.replace(/^dfs: /, "")}"); ` +
      `${describeHeal(healed)}; ${dropped} stale replicas dropped`,
  );
}

Deno.test({
  name: "new nodes joining at the same moment get distinct ranks and are all up",
  // Before commit 922f0da ("Joins decided one at a time") this failed about 2 runs in 10: two
  // nodes were welcomed as the same rank ("h2: joined ... as rank 2", then "h3: joined ... as
  // rank 2" 7 ms later), or a join failed on two cluster.json saves racing on one .tmp file; the
  // node left out was then refused for good as "connected already".
  ignore: !available.ok,
  async fn() {
    await using dir = await tempDir();
    await using network = await createNetwork({ hosts: [RANK0_HOST, ...NODE_HOSTS] });
    const log = new LogBook();
    await withLogs(log, async () => {
      const cluster = await Cluster.start(network, { log, dir: dir.path, nodesAtOnce: true });
      try {
        assert.deepEqual([...cluster.ranks.values()].sort(), [1, 2, 3], "distinct ranks");
        const status = await cluster.client.must<StatusReply>("status");
        assert.deepEqual(
          status.ranks.map((r) => [cluster.hostOf(r.rank), r.zone, r.state]).sort(),
          NODE_HOSTS.map((host) => [host, NODE_ZONES[host], "up"]),
        );
      } finally {
        await cluster.client.close();
      }
    });
  },
});
