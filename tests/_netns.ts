/**
 * Test helper: a small network of "hosts" made of Linux network namespaces, for tests that run a
 * dfs server in one host and data nodes in others, then cut, heal or slow their links.
 *
 * Layout of one network (nothing touches the root namespace's interfaces or routes, and the test
 * process itself, which stays in the root namespace, cannot reach the hosts: clients run in a host):
 *
 *     PREFIX-PID-TOKEN-switch   bridge `br0`, and one port `pN` per host (N = host index)
 *     PREFIX-PID-TOKEN-HOST     loopback up, `eth0` with SUBNET.(N+1)/24
 *     one veth pair per host:   `eth0` in the host's namespace <-> `pN` on `br0`
 *
 * Names carry the test process's pid and a random token, so parallel tests, several networks in
 * one test, and leftovers of a crashed run never clash; addresses may repeat between networks
 * because each network is its own isolated segment.
 *
 * Needs root and the Debian package `iproute2` (`ip`, `ss`, and `tc` for {@linkcode Network.limit}).
 *
 * @module
 */

/** How long one `ip`, `tc` or {@linkcode Network.run} command may take. */
export const NETNS_COMMAND_TIMEOUT_MS = 10_000;
/** How long a spawned process has to exit after SIGTERM at disposal before it gets SIGKILL. */
export const NETNS_KILL_GRACE_MS = 1_000;
/** How long {@linkcode Network.waitForListening} waits by default. */
export const NETNS_LISTEN_TIMEOUT_MS = 10_000;
/** Pause between two looks at a host's listening sockets. */
export const NETNS_LISTEN_POLL_MS = 50;
/** Hosts in one network (the /24 has 253 addresses; tests need a handful). */
export const NETNS_HOSTS_MAX = 64;
/** Host names are short so that namespace names stay readable. */
export const NETNS_HOST_NAME_CHARS_MAX = 16;
/** The highest rate {@linkcode Network.limit} accepts. */
export const NETNS_RATE_MBIT_MAX = 100_000;
/** Bytes a token-bucket limiter may send at once: never under 64 KiB (one TSO/GSO packet). */
export const TBF_BURST_BYTES_MIN = 64 * 1024;
/** The burst also covers this much time at the full rate (10 ms, which suits 1 Gbit/s). */
export const TBF_BURST_MS = 10;
/** How long a packet may wait in a limiter's queue before it is dropped. */
export const TBF_LATENCY_MS = 50;

const DEFAULT_PREFIX = "dfs";
const DEFAULT_SUBNET = "10.77.0.0/24";
const SWITCH = "switch";
const BRIDGE = "br0";
const HOST_INTERFACE = "eth0";
const IPROUTE2 = "Debian package iproute2";

/** Whether the machine can do something, and if not, why. */
export type Availability = { ok: true } | { ok: false; why: string };

export interface NetworkOptions {
  /** Host names: lower-case letters and digits, unique, not `"switch"`. */
  hosts: string[];
  /** First part of every namespace name; `"dfs"` by default. */
  prefix?: string;
  /** An IPv4 /24 such as `"10.77.0.0/24"` (the default); host N gets `.N+1`. */
  subnet?: string;
}

export interface SpawnOptions {
  /** Added to the test process's environment. */
  env?: Record<string, string>;
  cwd?: string;
  /** `"null"` by default. */
  stdin?: "piped" | "null";
}

/** One host as {@linkcode planNetwork} lays it out. */
export interface HostPlan {
  name: string;
  namespace: string;
  address: string;
  /** The bridge-side end of the host's veth pair, in the switch namespace. */
  port: string;
}

/** What {@linkcode createNetwork} builds: names, addresses and the `ip` commands, in order. */
export interface NetworkPlan {
  switchNamespace: string;
  hosts: HostPlan[];
  /** Every namespace, hosts first and the switch last (the order to delete them in). */
  namespaces: string[];
  /** Arguments of each `ip` command that builds the network. */
  commands: string[][];
}

/**
 * Lays out a network without touching the system: validates the options and lists the `ip`
 * commands that build it.
 *
 * @throws {Error} when a host name is invalid, repeated or reserved, there are no or too many
 * hosts, or the prefix or subnet is malformed.
 */
export function planNetwork(
  options: NetworkOptions,
  identity: { pid: number; token: string },
): NetworkPlan {
  const prefix = options.prefix ?? DEFAULT_PREFIX;
  if (!/^[a-z0-9][a-z0-9-]{0,15}$/.test(prefix)) {
    throw new Error(`Cannot create a network: prefix "${prefix}" is not 1-16 of [a-z0-9-]`);
  }
  const subnet = parseSubnet(options.subnet ?? DEFAULT_SUBNET);
  validateHosts(options.hosts);
  const base = `${prefix}-${identity.pid}-${identity.token}`;
  const switchNamespace = `${base}-${SWITCH}`;
  const hosts = options.hosts.map((name, index) => ({
    name,
    namespace: `${base}-${name}`,
    address: `${subnet}.${index + 1}`,
    port: `p${index}`,
  }));
  const commands = [
    ["netns", "add", switchNamespace],
    ["-n", switchNamespace, "link", "add", BRIDGE, "type", "bridge"],
    ["-n", switchNamespace, "link", "set", BRIDGE, "up"],
  ];
  for (const host of hosts) {
    commands.push(
      ["netns", "add", host.namespace],
      ["-n", host.namespace, "link", "set", "lo", "up"],
      [
        ...["-n", switchNamespace, "link", "add", host.port, "type", "veth"],
        ...["peer", "name", HOST_INTERFACE, "netns", host.namespace],
      ],
      ["-n", switchNamespace, "link", "set", host.port, "master", BRIDGE],
      ["-n", switchNamespace, "link", "set", host.port, "up"],
      ["-n", host.namespace, "addr", "add", `${host.address}/24`, "dev", HOST_INTERFACE],
      ["-n", host.namespace, "link", "set", HOST_INTERFACE, "up"],
    );
  }
  const namespaces = [...hosts.map((host) => host.namespace), switchNamespace];
  return { switchNamespace, hosts, namespaces, commands };
}

/** The first three octets of a `A.B.C.0/24`, checked. */
function parseSubnet(subnet: string): string {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.0\/24$/.exec(subnet);
  if (!match || match.slice(1).some((octet) => Number(octet) > 255)) {
    throw new Error(`Cannot create a network: subnet "${subnet}" is not of the form A.B.C.0/24`);
  }
  return match.slice(1, 4).join(".");
}

function validateHosts(hosts: string[]): void {
  if (hosts.length === 0 || hosts.length > NETNS_HOSTS_MAX) {
    throw new Error(
      `Cannot create a network of ${hosts.length} hosts: it needs 1 to ${NETNS_HOSTS_MAX}`,
    );
  }
  const seen = new Set<string>();
  for (const host of hosts) {
    if (!new RegExp(`^[a-z0-9]{1,${NETNS_HOST_NAME_CHARS_MAX}}$`).test(host)) {
      throw new Error(
        `Cannot create host "${host}": a name is 1-${NETNS_HOST_NAME_CHARS_MAX} of [a-z0-9]`,
      );
    }
    if (host === SWITCH) {
      throw new Error(`Cannot create host "${host}": the name is reserved for the bridge`);
    }
    if (seen.has(host)) throw new Error(`Cannot create host "${host}": the name is repeated`);
    seen.add(host);
  }
}

/**
 * Whether this test run can build networks: Linux, root, `ip` installed, and a namespace with a
 * bridge and a veth pair can really be made (it is made and removed again).
 */
export async function netnsAvailable(): Promise<Availability> {
  if (Deno.build.os !== "linux") {
    return { ok: false, why: `network namespaces need Linux, this is ${Deno.build.os}` };
  }
  const uid = Deno.uid();
  if (uid !== 0) return { ok: false, why: `network namespaces need root, this is uid ${uid}` };
  if (!await installed("ip")) return { ok: false, why: `ip is not on PATH (${IPROUTE2})` };
  const probe = `${DEFAULT_PREFIX}-${Deno.pid}-${randomToken()}-probe`;
  try {
    await ip(["netns", "add", probe]);
    try {
      await ip(["-n", probe, "link", "add", BRIDGE, "type", "bridge"]);
      await ip(["-n", probe, "link", "add", "p0", "type", "veth", "peer", "name", HOST_INTERFACE]);
    } finally {
      await ip(["netns", "del", probe]);
    }
  } catch (error) {
    return { ok: false, why: `cannot build a test network: ${messageOf(error)}` };
  }
  return { ok: true };
}

/** Whether `tc` is installed, which {@linkcode Network.limit} needs. */
export async function tcAvailable(): Promise<Availability> {
  if (await installed("tc")) return { ok: true };
  return { ok: false, why: `tc is not on PATH (${IPROUTE2})` };
}

/** Names of the network namespaces that exist now (`ip netns list`). */
export async function listNamespaces(): Promise<string[]> {
  const output = await ip(["netns", "list"]);
  return output.split("\n").filter((line) => line !== "").map((line) => line.split(" ")[0]);
}

/**
 * Builds a network of one namespace per host joined by a bridge, each host reachable by
 * {@linkcode Network.address}. Dispose it with `await using`. If building fails half-way, what was
 * made is removed before the error is thrown.
 *
 * @throws {Error} for invalid options (see {@linkcode planNetwork}) or when an `ip` command fails.
 */
export async function createNetwork(options: NetworkOptions): Promise<Network> {
  const plan = planNetwork(options, { pid: Deno.pid, token: randomToken() });
  const created: string[] = [];
  try {
    for (const command of plan.commands) {
      await ip(command);
      if (command[0] === "netns" && command[1] === "add") created.push(command[2]);
    }
  } catch (error) {
    // Only what this call made: a namespace of the same name (a clash) is someone else's.
    report(plan.switchNamespace, await deleteNamespaces(created.reverse()));
    throw error;
  }
  return new Network(plan);
}

/** A network made by {@linkcode createNetwork}. */
export class Network implements AsyncDisposable {
  /** Host names, in the order given. */
  readonly hosts: readonly string[];
  /** Every namespace of the network, hosts first and the switch last. */
  readonly namespaces: readonly string[];
  #plan: NetworkPlan;
  #hosts: Map<string, HostPlan>;
  /** Every process spawned, exited or not: disposal also releases their unread pipes. */
  #children: Deno.ChildProcess[] = [];
  #limited = new Set<string>();
  #disposed = false;

  constructor(plan: NetworkPlan) {
    this.#plan = plan;
    this.#hosts = new Map(plan.hosts.map((host) => [host.name, host]));
    this.hosts = plan.hosts.map((host) => host.name);
    this.namespaces = [...plan.namespaces];
  }

  /** The host's IPv4 address. @throws {Error} for an unknown host. */
  address(host: string): string {
    return this.#host(host).address;
  }

  /** The host's namespace name (for `ip netns exec` by hand). @throws {Error} for an unknown host. */
  namespace(host: string): string {
    return this.#host(host).namespace;
  }

  /**
   * Unplugs the host's cable at the switch: its bridge port goes down. The host keeps its address,
   * routes and sockets and is told nothing (its `eth0` only loses carrier); every packet to or
   * from it is dropped, so its TCP connections hang and new ones time out, until
   * {@linkcode Network.heal}.
   */
  async cut(host: string): Promise<void> {
    await ip(["-n", this.#plan.switchNamespace, "link", "set", this.#host(host).port, "down"]);
  }

  /** Plugs the host's cable back in; held TCP connections resume at their next retransmission. */
  async heal(host: string): Promise<void> {
    await ip(["-n", this.#plan.switchNamespace, "link", "set", this.#host(host).port, "up"]);
  }

  /**
   * Limits the host's link to `rateMbit` in both directions with a token bucket (`tbf`): on the
   * host's `eth0` (what it sends) and on its bridge port (what it receives). Calling it again
   * changes the rate.
   *
   * @returns `{ ok: false, why }` without limiting anything when `tc` is not installed.
   * @throws {Error} for an unknown host, a rate outside 0 < rate <= NETNS_RATE_MBIT_MAX, or when
   * `tc` fails.
   */
  async limit(host: string, options: { rateMbit: number }): Promise<Availability> {
    const { rateMbit } = options;
    const entry = this.#host(host);
    if (!(rateMbit > 0 && rateMbit <= NETNS_RATE_MBIT_MAX)) {
      throw new Error(
        `Cannot limit host "${host}" to ${rateMbit} Mbit/s: the rate must be over 0 and at most ${NETNS_RATE_MBIT_MAX}`,
      );
    }
    const available = await tcAvailable();
    if (!available.ok) return available;
    const burstBytes = Math.max(TBF_BURST_BYTES_MIN, Math.ceil(rateMbit * 125 * TBF_BURST_MS));
    const tbf = [
      ...["root", "tbf", "rate", `${rateMbit}mbit`],
      ...["burst", String(burstBytes), "latency", `${TBF_LATENCY_MS}ms`],
    ];
    this.#limited.add(host);
    await tc(["-n", entry.namespace, "qdisc", "replace", "dev", HOST_INTERFACE, ...tbf]);
    await tc(["-n", this.#plan.switchNamespace, "qdisc", "replace", "dev", entry.port, ...tbf]);
    return { ok: true };
  }

  /** Removes a {@linkcode Network.limit}; does nothing for a host that is not limited. */
  async unlimit(host: string): Promise<void> {
    const entry = this.#host(host);
    if (!this.#limited.delete(host)) return;
    await tc(["-n", entry.namespace, "qdisc", "del", "dev", HOST_INTERFACE, "root"]);
    await tc(["-n", this.#plan.switchNamespace, "qdisc", "del", "dev", entry.port, "root"]);
  }

  /**
   * Starts `cmd` inside the host's namespace (`ip netns exec`), stdout and stderr piped. The caller
   * reads them; disposal kills the process if it still runs.
   *
   * @throws {Error} for an unknown host, an empty command, or after disposal.
   */
  spawn(host: string, cmd: string[], options: SpawnOptions = {}): Deno.ChildProcess {
    const entry = this.#host(host);
    if (this.#disposed) throw new Error(`Cannot spawn in host "${host}": the network is disposed`);
    if (cmd.length === 0) throw new Error(`Cannot spawn in host "${host}": the command is empty`);
    const child = new Deno.Command("ip", {
      args: ["netns", "exec", entry.namespace, ...cmd],
      env: options.env,
      cwd: options.cwd,
      stdin: options.stdin ?? "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#children.push(child);
    return child;
  }

  /**
   * Runs a short command inside the host's namespace and returns its stdout (held in memory).
   *
   * @throws {Error} for an unknown host, when the command exits non-zero (with its stderr), or
   * when it runs longer than `timeoutMs` (NETNS_COMMAND_TIMEOUT_MS by default; it is then killed).
   */
  async run(
    host: string,
    cmd: string[],
    options: { timeoutMs?: number } = {},
  ): Promise<string> {
    const entry = this.#host(host);
    return await checked("ip", ["netns", "exec", entry.namespace, ...cmd], {
      timeoutMs: options.timeoutMs ?? NETNS_COMMAND_TIMEOUT_MS,
      what: `in host "${host}"`,
    });
  }

  /**
   * Waits until something in the host listens on TCP `port` (seen with `ss`, from inside the host).
   *
   * @throws {Error} `"Timed out after N ms waiting for ..."` when nothing listens in time.
   */
  async waitForListening(
    host: string,
    port: number,
    options: { timeoutMs?: number } = {},
  ): Promise<void> {
    const timeoutMs = options.timeoutMs ?? NETNS_LISTEN_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const sockets = await this.run(host, ["ss", "-Hltn", `sport = :${port}`]);
      if (sockets.trim() !== "") return;
      if (Date.now() >= deadline) {
        throw new Error(
          `Timed out after ${timeoutMs} ms waiting for a listener on port ${port} in host "${host}"`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, NETNS_LISTEN_POLL_MS));
    }
  }

  /**
   * Kills what the network spawned (SIGTERM, then SIGKILL after NETNS_KILL_GRACE_MS), then anything
   * still inside its namespaces (only its spawns can have put it there), and deletes every
   * namespace, which removes the veth pairs and the bridge. Problems are written to stderr, never
   * thrown, so they do not hide the error of a failed test.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    const problems = await this.#stopChildren();
    problems.push(...await killInside(this.namespaces));
    problems.push(...await deleteNamespaces(this.namespaces));
    report(this.#plan.switchNamespace, problems);
  }

  #host(host: string): HostPlan {
    const entry = this.#hosts.get(host);
    if (!entry) {
      throw new Error(`Unknown host "${host}": the network has ${this.hosts.join(", ")}`);
    }
    return entry;
  }

  async #stopChildren(): Promise<string[]> {
    const children = this.#children;
    const problems: string[] = [];
    for (const child of children) signal(child, "SIGTERM");
    const statuses = Promise.all(children.map((child) => child.status));
    if (!await settlesWithin(statuses, NETNS_KILL_GRACE_MS)) {
      for (const child of children) signal(child, "SIGKILL");
      if (!await settlesWithin(statuses, NETNS_COMMAND_TIMEOUT_MS)) {
        problems.push(
          `a spawned process did not exit ${NETNS_COMMAND_TIMEOUT_MS} ms after SIGKILL`,
        );
      }
    }
    for (const child of children) {
      for (const stream of [child.stdout, child.stderr]) {
        if (!stream.locked) await stream.cancel().catch(() => {});
      }
    }
    return problems;
  }
}

/** SIGKILLs every process still inside the namespaces; returns what it found as problems. */
async function killInside(namespaces: readonly string[]): Promise<string[]> {
  const problems: string[] = [];
  for (const namespace of namespaces) {
    try {
      const pids = (await ip(["netns", "pids", namespace])).split("\n").filter((l) => l !== "");
      for (const pid of pids) {
        try {
          Deno.kill(Number(pid), "SIGKILL");
        } catch { /* exited meanwhile */ }
      }
      if (pids.length > 0) {
        problems.push(`killed ${pids.length} leftover process(es) in ${namespace}: ${pids}`);
      }
    } catch (error) {
      problems.push(`cannot list processes in ${namespace}: ${messageOf(error)}`);
    }
  }
  return problems;
}

/** Deletes each namespace, going on after a failure; returns the failures. */
async function deleteNamespaces(namespaces: readonly string[]): Promise<string[]> {
  const problems: string[] = [];
  for (const namespace of namespaces) {
    try {
      await ip(["netns", "del", namespace]);
    } catch (error) {
      problems.push(`cannot delete ${namespace}: ${messageOf(error)}`);
    }
  }
  return problems;
}

function report(network: string, problems: string[]): void {
  if (problems.length === 0) return;
  console.error(`Cleaning up network ${network}:\n  ${problems.join("\n  ")}`);
}

function signal(child: Deno.ChildProcess, name: Deno.Signal): void {
  try {
    child.kill(name);
  } catch { /* already exited */ }
}

/** Whether `promise` settles within `timeoutMs` (it is not cancelled otherwise). */
async function settlesWithin(promise: Promise<unknown>, timeoutMs: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    return await Promise.race([promise.then(() => true, () => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

function ip(args: string[]): Promise<string> {
  return checked("ip", args, { timeoutMs: NETNS_COMMAND_TIMEOUT_MS, what: "" });
}

function tc(args: string[]): Promise<string> {
  return checked("tc", args, { timeoutMs: NETNS_COMMAND_TIMEOUT_MS, what: "" });
}

/** Whether `command` can be started (`command -V` answers). */
async function installed(command: string): Promise<boolean> {
  try {
    await new Deno.Command(command, { args: ["-V"], stdout: "null", stderr: "null" }).output();
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/**
 * Runs `command` and returns its stdout.
 *
 * @throws {Error} when it exits non-zero or runs longer than `timeoutMs` (it is then killed).
 */
async function checked(
  command: string,
  args: string[],
  options: { timeoutMs: number; what: string },
): Promise<string> {
  const shown = [command, ...args].join(" ") + (options.what ? ` ${options.what}` : "");
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), options.timeoutMs);
  try {
    const output = await new Deno.Command(command, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: controller.signal,
    }).output();
    if (controller.signal.aborted) {
      throw new Error(`Command "${shown}" timed out after ${options.timeoutMs} ms`);
    }
    if (!output.success) {
      const stderr = new TextDecoder().decode(output.stderr).trim();
      throw new Error(`Command "${shown}" failed (exit ${output.code}): ${stderr}`);
    }
    return new TextDecoder().decode(output.stdout);
  } finally {
    clearTimeout(timer);
  }
}

function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(4));
  return [...bytes].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
