/**
 * `deno task bench --multi-host`: aggregate put and get throughput across hosts whose links are
 * limited. For each count N of node hosts (`--hosts 2,4,8`), a network of Linux namespaces
 * (`tests/_netns.ts`): rank 0 in host `r0`, one `dfs node` in each of `h1`..`hN` (zone `z1` to
 * `zN`, each with a data port: clients read and write chunks there directly; with
 * `--through-rank0`, none, and every byte crosses rank 0), client processes in `c1` and `c2`.
 * Every node host's link is limited to 1 Gbit/s each way with `tc`; rank 0's and the clients' are
 * not, so the limit under test is the N node links. Concurrent clients put `--size-mib`
 * in all, then get it back; each figure comes with its ideal (N x 125 MB/s for a get, half that
 * for a put, whose bytes cross two node links for 2 replicas), and with the CPU of rank 0 (its
 * process and its main thread), of the nodes, of the clients and of the whole machine (and the
 * machine's share in the kernel: socket copies, veth, bridge, tc) over the phase. One TCP stream
 * into a limited host and one into rank 0's host are the bare limits of the same network.
 *
 * The processes inside the hosts run `_multi_host_host.ts`.
 *
 * Skipped, with a note and no figures, when namespaces cannot be built (not root, no `ip`) or `tc`
 * is missing.
 *
 * @module
 */

import { createNetwork, netnsAvailable, type Network, tcAvailable } from "../tests/_netns.ts";
import { writeSecret } from "../tests/_nodes.ts";
import { DENO, ROOT, SERVER_MALLOC_ENV, SERVER_V8_FLAGS } from "../tests/_server.ts";
import { sleep } from "../tests/_wait.ts";
import type { BenchContext } from "./_config.ts";
import { TRANSFER_TIMEOUT_MS } from "./_large_file.ts";
import { type Figure, figureOf } from "./_stats.ts";
import { CLOCK_TICKS_PER_SECOND, cpuSeconds, progress } from "./_timing.ts";

const MiB = 1024 * 1024;
/** Every node host's link, each way. */
export const NODE_HOST_RATE_MBIT = 1000;
/** The same in MB/s (10^6 bytes) on the wire: 125. */
export const NODE_HOST_LIMIT_MB_PER_S = NODE_HOST_RATE_MBIT / 8;
const REPLICAS = 2;
const RANK0_HOST = "r0";
/** Client processes, each in a host of its own, sharing the `--clients` connections. */
export const CLIENT_HOSTS_MAX = 2;
/** Each node's data port (unless `--through-rank0`). */
const DATA_PORT = 7073;
/** Port of the bare TCP receivers (each host is a namespace of its own: a fixed port is safe). */
const SINK_PORT = 7099;
/** How long rank 0 may take to print its ready line, a node to join, a script to connect. */
const START_TIMEOUT_MS = 60_000;
/** How long the nodes may take to show as up in `status` once they joined. */
const UP_TIMEOUT_MS = 60_000;
/** Pause between two looks at `status`. */
const POLL_MS = 200;
/** Characters of a process's output kept, for the error of a failed run. */
const OUTPUT_CHARS_MAX = 16_000;
/** Characters of each process's output put in that error. */
const ERROR_TAIL_CHARS_MAX = 2_000;
/** Most bytes of one bare stream (half of `--size-mib` otherwise): 2 s through a limiter. */
const BARE_BYTES_MAX = 256 * MiB;
/** Data folders go to this tmpfs when it exists (see `dataRoot`). */
const TMPFS = "/dev/shm";

type Phase = "put" | "get";

/** CPU seconds used so far, read from `/proc`, and when. */
interface CpuSnapshot {
  atMs: number;
  rank0: number;
  rank0MainThread: number;
  nodes: number;
  clients: number;
  machine: number;
  machineKernel: number;
}

/** Runs every setup of `--hosts`; returns no figures (and a note) when the machine cannot. */
export async function runMultiHost(bench: BenchContext): Promise<Figure[]> {
  const { config, notes } = bench;
  for (const available of [await netnsAvailable(), await tcAvailable()]) {
    if (!available.ok) {
      progress(`skipping the multi-host suite: ${available.why}`);
      notes.push(`skipped, no figures: ${available.why}`);
      return [];
    }
  }
  const root = await dataRoot();
  notes.push(
    `data folders in ${root}` +
      (root === TMPFS
        ? " (tmpfs): N real hosts have N disks, this machine one shared virtual disk, which " +
          "would be the limit otherwise; fdatasync is then free"
        : ""),
    "rank 0's and the client hosts' links are not limited; only the node hosts' are",
    "the bare rows are one TCP stream from a client host, through one limiter and through none: " +
      "what the network itself gives, one sample per run of every setup",
    "the scrubber is off (--scrub-bytes-per-sec 0), so it takes nothing from the links",
    config.throughRank0
      ? "the nodes have no data port: every byte passes through rank 0 (--through-rank0)"
      : "each node has a data port: clients read and write chunks on the nodes directly",
  );
  const samples = new Map<string, number[]>();
  const add = (key: string, value: number) =>
    samples.set(key, [...(samples.get(key) ?? []), value]);
  for (const nodes of config.hosts) await measureSetup(bench, { nodes, root, add });
  const bareLast = (key: string) => key.startsWith(BARE) ? 1 : 0;
  return [...samples].sort(([a], [b]) => bareLast(a) - bareLast(b))
    .map(([key, values]) => figureOf(key, values, { unit: unitOf(key) }));
}

/** `/dev/shm` when it is a directory, else `$TMPDIR` or `/tmp`. */
async function dataRoot(): Promise<string> {
  try {
    if ((await Deno.stat(TMPFS)).isDirectory) return TMPFS;
  } catch { /* no tmpfs there */ }
  return Deno.env.get("TMPDIR") ?? "/tmp";
}

const COLUMNS = {
  throughput: "throughput",
  ideal: "ideal",
  ofIdeal: "of ideal",
  rank0: "rank 0 CPU",
  rank0MainThread: "rank 0 main thread",
  nodes: "nodes CPU, all",
  clients: "clients CPU",
  machine: "machine CPU",
  machineKernel: "of which kernel",
} as const;

function unitOf(key: string): string {
  const column = key.slice(key.indexOf(": ") + 2);
  if (column === COLUMNS.throughput || column === COLUMNS.ideal) return "MB/s";
  if (column === COLUMNS.ofIdeal) return "%";
  return "% of a core";
}

/** The figure name of a setup's phase and column: `SETUP: COLUMN`, as `gridTable` reads it. */
function keyOf(nodes: number, phase: Phase, column: string): string {
  return `${nodes} node hosts, ${phase}: ${column}`;
}

const BARE = "bare, 1 TCP stream";
const BARE_LIMITED = `${BARE} into a limited host: ${COLUMNS.throughput}`;
const BARE_OPEN = `${BARE} into rank 0's host (not limited): ${COLUMNS.throughput}`;

/** One network with N node hosts: starts it, measures every run, tears it down. */
async function measureSetup(
  bench: BenchContext,
  setup: { nodes: number; root: string; add: (key: string, value: number) => void },
): Promise<void> {
  const { config } = bench;
  const { nodes, add } = setup;
  const nodeHosts = Array.from({ length: nodes }, (_, i) => `h${i + 1}`);
  const clientHosts = Array.from(
    { length: Math.min(CLIENT_HOSTS_MAX, config.clients) },
    (_, i) => `c${i + 1}`,
  );
  progress(`${nodes} node hosts: building the network, starting rank 0 and ${nodes} nodes`);
  const dir = await Deno.makeTempDir({ dir: setup.root, prefix: "dfs-bench-multi-host-" });
  const processes: HostProcess[] = [];
  try {
    await using network = await createNetwork({
      hosts: [RANK0_HOST, ...clientHosts, ...nodeHosts],
      prefix: "dfsbench",
    });
    try {
      for (const host of nodeHosts) {
        const limited = await network.limit(host, { rateMbit: NODE_HOST_RATE_MBIT });
        if (!limited.ok) throw new Error(`Cannot limit host "${host}": ${limited.why}`);
      }
      const cluster = await startCluster(network, {
        nodeHosts,
        clientHosts,
        dir,
        config,
        started: processes,
      });
      await waitUntilUp(cluster.clients[0], nodes);
      const fileBytes = Math.ceil(config.sizeBytes / config.clients);
      const bareBytes = Math.min(BARE_BYTES_MAX, Math.max(MiB, Math.floor(config.sizeBytes / 2)));
      for (let run = 0; run < config.runs; run++) {
        progress(
          `${nodes} node hosts, run ${run + 1}: put then get of ${config.clients} x ` +
            `${(fileBytes / MiB).toFixed(1)} MiB, then bare TCP streams`,
        );
        for (const phase of ["put", "get"] as const) {
          const measured = await measurePhase(cluster, { phase, run, fileBytes });
          const ideal = nodes * NODE_HOST_LIMIT_MB_PER_S / (phase === "put" ? REPLICAS : 1);
          const record = (column: string, value: number) => add(keyOf(nodes, phase, column), value);
          record(COLUMNS.throughput, measured.mbPerS);
          if (run === 0) record(COLUMNS.ideal, ideal);
          record(COLUMNS.ofIdeal, 100 * measured.mbPerS / ideal);
          for (const [column, value] of Object.entries(measured.cpu)) record(column, value);
        }
        const client = cluster.clients[0];
        // The run's files go, so that the tmpfs holds one run's replicas at most.
        await client.request({ op: "rm", prefix: `bench/r${run}/` }, START_TIMEOUT_MS);
        add(BARE_LIMITED, await bareStream(client, cluster.sinks.limited, bareBytes));
        add(BARE_OPEN, await bareStream(client, cluster.sinks.open, bareBytes));
      }
      for (const process of cluster.all) await process.closeStdin();
    } catch (error) {
      throw withOutputOf(error, processes);
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Rank 0, the nodes, the client scripts and the bare receivers of one network. */
interface Cluster {
  rank0: HostProcess;
  nodes: HostProcess[];
  clients: HostProcess[];
  /** Bare receivers in the first node host (limited) and in rank 0's host (not limited). */
  sinks: {
    limited: { host: string; process: HostProcess };
    open: { host: string; process: HostProcess };
  };
  /** Every process above. */
  all: HostProcess[];
}

async function startCluster(
  network: Network,
  options: {
    nodeHosts: string[];
    clientHosts: string[];
    dir: string;
    config: BenchContext["config"];
    /** Each process is added here as it starts, for the error of a failed start. */
    started: HostProcess[];
  },
): Promise<Cluster> {
  const { nodeHosts, clientHosts, dir, config, started } = options;
  const spawn = (host: string, spawned: { name: string; cmd: string[]; stdin?: boolean }) => {
    const process = new HostProcess(network, host, spawned);
    started.push(process);
    return process;
  };
  const secretFile = await writeSecret(dir);
  const address = network.address(RANK0_HOST);
  const dfs = [DENO, "run", "-A", "--quiet", SERVER_V8_FLAGS, `${ROOT}main.ts`];
  const rank0 = spawn(RANK0_HOST, {
    name: "rank 0",
    cmd: [
      ...dfs,
      ...["serve", "--ranks", "1", "--replicas", String(REPLICAS), "--data", `${dir}/r0`],
      ...["--host", address, "--port", "0", "--node-host", address, "--node-port", "0"],
      ...["--cluster-secret-file", secretFile, "--scrub-bytes-per-sec", "0"],
    ],
  });
  const ready = await rank0.waitFor(/listening on (\S+) .*nodes on (\S+)/, START_TIMEOUT_MS);
  const [server, join] = [ready[1], ready[2]];
  const script = [DENO, "run", "-A", "--quiet", `${ROOT}bench/_multi_host_host.ts`];
  const clients = clientHosts.map((host, i) =>
    spawn(host, {
      name: `client ${host}`,
      cmd: [...script, "client", server, String(shareOf(config.clients, clientHosts.length, i))],
      stdin: true,
    })
  );
  const sinkIn = (host: string) => ({
    host,
    process: spawn(host, { name: `sink ${host}`, cmd: [...script, "sink", String(SINK_PORT)] }),
  });
  const sinks = { limited: sinkIn(nodeHosts[0]), open: sinkIn(RANK0_HOST) };
  // One node at a time: rank 0 takes two nodes joining at once for one (both get the same rank,
  // both write cluster.json.tmp, the second rename fails and that node is refused from then on as
  // "connected already").
  const nodes: HostProcess[] = [];
  for (const [i, host] of nodeHosts.entries()) {
    const node = spawn(host, {
      name: `node ${host}`,
      cmd: [
        ...dfs,
        ...["node", "--join", join, "--data", `${dir}/${host}`],
        ...["--cluster-secret-file", secretFile, "--zone", `z${i + 1}`, "--host", host],
        ...(config.throughRank0 ? [] : ["--data-port", String(DATA_PORT)]),
      ],
    });
    nodes.push(node);
    await node.waitFor(/joined \S+ as rank \d+/, START_TIMEOUT_MS);
  }
  await Promise.all(
    [...clients, sinks.limited.process, sinks.open.process].map((p) =>
      p.nextLine(START_TIMEOUT_MS, "its ready line")
    ),
  );
  return { rank0, nodes, clients, sinks, all: [...started] };
}

/** Connections of client process `index` when `total` are shared by `processes` processes. */
function shareOf(total: number, processes: number, index: number): number {
  return Math.floor(total / processes) + (index < total % processes ? 1 : 0);
}

/** Polls `status` through a client until `nodes` data nodes are up. */
async function waitUntilUp(client: HostProcess, nodes: number): Promise<void> {
  const deadline = Date.now() + UP_TIMEOUT_MS;
  let states: string[] = [];
  while (Date.now() < deadline) {
    states = await client.request<string[]>({ op: "status" }, START_TIMEOUT_MS);
    if (states.filter((state) => state === "up").length === nodes) return;
    await sleep(POLL_MS);
  }
  throw new Error(
    `Timed out after ${UP_TIMEOUT_MS} ms waiting for ${nodes} nodes up: states ${states}`,
  );
}

/**
 * One put or get phase: every client process moves its files at once; returns the aggregate MB/s
 * of file data (wall time from the first request sent to the last answer) and the CPU used.
 */
async function measurePhase(
  cluster: Cluster,
  options: { phase: Phase; run: number; fileBytes: number },
): Promise<{ mbPerS: number; cpu: Record<string, number> }> {
  const { phase, run, fileBytes } = options;
  const before = await cpuSnapshot(cluster);
  const answers = await Promise.all(
    cluster.clients.map((client, i) =>
      client.request<{ files: number }>({
        op: phase,
        prefix: `bench/r${run}/c${i + 1}/`,
        sizeBytes: fileBytes,
      }, TRANSFER_TIMEOUT_MS)
    ),
  );
  const after = await cpuSnapshot(cluster);
  const seconds = (after.atMs - before.atMs) / 1000;
  const files = answers.reduce((sum, answer) => sum + answer.files, 0);
  const percent = (field: Exclude<keyof CpuSnapshot, "atMs">) =>
    100 * (after[field] - before[field]) / seconds;
  return {
    mbPerS: files * fileBytes / 1e6 / seconds,
    cpu: {
      [COLUMNS.rank0]: percent("rank0"),
      [COLUMNS.rank0MainThread]: percent("rank0MainThread"),
      [COLUMNS.nodes]: percent("nodes"),
      [COLUMNS.clients]: percent("clients"),
      [COLUMNS.machine]: percent("machine"),
      [COLUMNS.machineKernel]: percent("machineKernel"),
    },
  };
}

async function cpuSnapshot(cluster: Cluster): Promise<CpuSnapshot> {
  const sum = async (processes: HostProcess[]) =>
    (await Promise.all(processes.map((p) => cpuSeconds(p.pid)))).reduce((a, b) => a + b, 0);
  const pid = cluster.rank0.pid;
  const [rank0, rank0MainThread, nodes, clients, machine] = await Promise.all([
    cpuSeconds(pid),
    threadCpuSeconds(pid, pid),
    sum(cluster.nodes),
    sum(cluster.clients),
    machineCpuSeconds(),
  ]);
  return {
    atMs: performance.now(),
    rank0,
    rank0MainThread,
    nodes,
    clients,
    machine: machine.busy,
    machineKernel: machine.kernel,
  };
}

/** CPU seconds (user + system) one thread of a process has used so far. Linux only. */
async function threadCpuSeconds(pid: number, tid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/task/${tid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

/**
 * CPU seconds all the machine's cores have spent busy (`/proc/stat`), and of those in the kernel
 * (system, interrupts and softirqs: socket copies, veth, bridge and tc among them).
 */
async function machineCpuSeconds(): Promise<{ busy: number; kernel: number }> {
  const line = (await Deno.readTextFile("/proc/stat")).split("\n")[0];
  // cpu user nice system idle iowait irq softirq steal ...: all but idle and iowait are busy.
  const [user, nice, system, _idle, _iowait, irq, softirq, steal] = line.trim().split(/\s+/)
    .slice(1, 9).map(Number);
  const kernel = system + irq + softirq;
  return {
    busy: (user + nice + kernel + steal) / CLOCK_TICKS_PER_SECOND,
    kernel: kernel / CLOCK_TICKS_PER_SECOND,
  };
}

/** One TCP stream of `bytes` from a client host into a sink; returns MB/s as the sink saw it. */
async function bareStream(
  client: HostProcess,
  sink: { host: string; process: HostProcess },
  bytes: number,
): Promise<number> {
  const address = `${client.network.address(sink.host)}:${SINK_PORT}`;
  await client.request({ op: "send", address, bytes }, TRANSFER_TIMEOUT_MS);
  const line = await sink.process.nextLine(TRANSFER_TIMEOUT_MS, "the bare stream's end");
  const received = JSON.parse(line) as { bytes: number; seconds: number };
  if (received.bytes !== bytes) {
    throw new Error(`The bare stream into ${sink.host} got ${received.bytes} of ${bytes} bytes`);
  }
  return bytes / 1e6 / received.seconds;
}

/** `error` with the end of each process's output, where the cause often is. */
function withOutputOf(error: unknown, processes: readonly HostProcess[]): unknown {
  const tails = processes.map((p) => p.tail(ERROR_TAIL_CHARS_MAX)).filter((t) => t !== "");
  if (tails.length === 0) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new Error(`${message}\n${tails.join("\n")}`, { cause: error });
}

/**
 * A process in a host: its stdout split into lines to be taken one by one, both streams kept (the
 * last OUTPUT_CHARS_MAX characters), and JSON requests over its stdin when it was started with it.
 */
class HostProcess {
  readonly name: string;
  readonly pid: number;
  readonly network: Network;
  #process: Deno.ChildProcess;
  #stdin: WritableStreamDefaultWriter<Uint8Array> | undefined;
  #output = "";
  #lines: string[] = [];
  #exited = false;
  #wakers: (() => void)[] = [];

  constructor(network: Network, host: string, options: {
    name: string;
    cmd: string[];
    stdin?: boolean;
  }) {
    this.name = options.name;
    this.network = network;
    this.#process = network.spawn(host, options.cmd, {
      cwd: ROOT,
      env: SERVER_MALLOC_ENV,
      stdin: options.stdin ? "piped" : "null",
    });
    this.pid = this.#process.pid;
    if (options.stdin) this.#stdin = this.#process.stdin.getWriter();
    void this.#drain(this.#process.stdout, { lines: true }).catch(() => {});
    void this.#drain(this.#process.stderr, { lines: false }).catch(() => {});
    void this.#process.status.then(() => {
      this.#exited = true;
      this.#wake();
    });
  }

  /** Waits for output (either stream) matching `pattern`; fails if the process exits first. */
  async waitFor(pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const match = pattern.exec(this.#output);
      if (match) return match;
      this.#check(deadline, `${pattern}`, timeoutMs);
      await this.#change(deadline);
    }
  }

  /** The next stdout line not taken yet; fails if the process exits first. */
  async nextLine(timeoutMs: number, what: string): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (this.#lines.length === 0) {
      this.#check(deadline, what, timeoutMs);
      await this.#change(deadline);
    }
    return this.#lines.shift()!;
  }

  /**
   * Sends one JSON request line and returns the result of the JSON line answering it.
   *
   * @throws {Error} with the script's message when it answers `ok: false`.
   */
  async request<T>(
    message: { op: string } & Record<string, unknown>,
    timeoutMs: number,
  ): Promise<T> {
    await this.#stdin!.write(new TextEncoder().encode(JSON.stringify(message) + "\n"));
    const line = await this.nextLine(timeoutMs, `the answer to ${message.op}`);
    const answer = JSON.parse(line) as { ok: true; result: T } | { ok: false; error: string };
    if (!answer.ok) throw new Error(`${this.name}: ${message.op} failed: ${answer.error}`);
    return answer.result;
  }

  /** Ends its stdin (a client script then closes its connections and exits). */
  async closeStdin(): Promise<void> {
    await this.#stdin?.close().catch(() => {});
  }

  /** The last `chars` characters of its output, named, or "" if it wrote nothing. */
  tail(chars: number): string {
    const text = this.#output.slice(-chars).trim();
    return text === "" ? "" : `--- ${this.name}${this.#exited ? " (exited)" : ""}:\n${text}`;
  }

  #check(deadline: number, what: string, timeoutMs: number): void {
    if (this.#exited) throw new Error(`${this.name} exited before ${what}`);
    if (Date.now() >= deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${this.name}: ${what}`);
    }
  }

  /** Resolves at the next output or exit, or at `deadline`. */
  async #change(deadline: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await new Promise<void>((resolve) => {
      this.#wakers.push(resolve);
      timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
    });
    clearTimeout(timer);
  }

  #wake(): void {
    const wakers = this.#wakers;
    this.#wakers = [];
    for (const wake of wakers) wake();
  }

  async #drain(stream: ReadableStream<Uint8Array>, options: { lines: boolean }): Promise<void> {
    let partial = "";
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      this.#output = (this.#output + text).slice(-OUTPUT_CHARS_MAX);
      if (options.lines) {
        const lines = (partial + text).split("\n");
        partial = lines.pop()!;
        this.#lines.push(...lines);
      }
      this.#wake();
    }
  }
}
