/**
 * N ranks in one thread, joined by a simulated network: `new LoopbackNetwork(size)` and one
 * `network.transport(rank)` per rank. No Workers, no MessagePorts, no real timers, so a whole
 * cluster runs in a test, and with a fake clock the same way every run.
 *
 * Delivery: every packet goes into one FIFO for the whole network and is cloned as it is sent (so
 * the sender may reuse what it sent). The FIFO is drained in a microtask: the packets queued when
 * the drain starts are delivered in order, one after another; packets sent meanwhile wait for the
 * next drain, one microtask later. So delivery never happens inside `send()`, each sender's packets
 * (in fact all packets) arrive in the order sent, and the order depends only on the program.
 *
 * Faults, for tests of a rank against failing peers: `cut(rank)` (a hung node or a partition: all
 * to and from it is silently dropped), `fail(rank, error)` (a crashed Worker: each other rank's
 * `onPeerError` hears of it, then packets are dropped as for a cut), `heal(rank)`, `restart(rank)`
 * (a new incarnation), and `drop(predicate)` for single packets. Whether a packet is delivered is
 * decided when it leaves the FIFO, by the links as they are then.
 *
 * @module
 */

import { assert, DfsError } from "../../protocol/errors.ts";
import type { Packet, Transport } from "./transport.ts";

/**
 * Packets and failure reports queued in one LoopbackNetwork at once. Reaching it asserts: a real
 * transport has no such error for the program to handle, and only a program that sends in a loop
 * without ever awaiting can queue this many, which is a bug.
 */
export const LOOPBACK_PACKETS_QUEUED_MAX = 100_000;

/** A packet on its way: what `drop()` predicates see. */
export interface LoopbackPacket extends Packet {
  dest: number;
}

/** What happened to one packet as it left the FIFO (see the `trace` option). */
export interface LoopbackTraceEntry {
  source: number;
  dest: number;
  tag: number;
  delivered: boolean;
}

/** Options of `new LoopbackNetwork()`. */
export interface LoopbackOptions {
  /**
   * True (default): bodies go through `structuredClone(body, { transfer })` as through postMessage,
   * and the `transfer` buffers are detached at the sender. False: bodies are copied as a
   * serializing transport would, and `transfer` lists are ignored. `Transport.movesBuffers()` says it.
   */
  movesBuffers?: boolean;
  /** Packets and failure reports queued at once; default LOOPBACK_PACKETS_QUEUED_MAX. */
  packetsQueuedMax?: number;
  /** Told of each packet as it leaves the FIFO, delivered or dropped, in that order. */
  trace?: (entry: LoopbackTraceEntry) => void;
}

type Link = "up" | "cut" | "failed";

interface QueuedPacket extends LoopbackPacket {
  /** Set by `restart()` of its source or dest: the packet belonged to the old incarnation. */
  lost?: true;
}

interface QueuedFailure {
  failed: number;
  error: unknown;
}

/** Ranks in one thread and the simulated network between them (see the module doc). */
export class LoopbackNetwork {
  readonly size: number;
  readonly movesBuffers: boolean;
  #packetsQueuedMax: number;
  #trace: ((entry: LoopbackTraceEntry) => void) | null;
  #links: Link[];
  #endpoints: (LoopbackTransport | null)[];
  #drops: ((packet: LoopbackPacket) => boolean)[] = [];
  /** The FIFO; entries before `#head` were delivered (cleared) in the drain that is running. */
  #queue: (QueuedPacket | QueuedFailure | undefined)[] = [];
  #head = 0;
  #draining = false;
  #sent = 0;
  #delivered = 0;
  #dropped = 0;

  /** A network of `size` ranks, every link up and no transport yet. */
  constructor(size: number, options: LoopbackOptions = {}) {
    assert(Number.isSafeInteger(size) && size >= 1, `size ${size} must be a positive integer`);
    const packetsQueuedMax = options.packetsQueuedMax ?? LOOPBACK_PACKETS_QUEUED_MAX;
    assert(packetsQueuedMax >= 1, `packetsQueuedMax ${packetsQueuedMax} must be positive`);
    this.size = size;
    this.movesBuffers = options.movesBuffers ?? true;
    this.#packetsQueuedMax = packetsQueuedMax;
    this.#trace = options.trace ?? null;
    this.#links = new Array<Link>(size).fill("up");
    this.#endpoints = new Array<LoopbackTransport | null>(size).fill(null);
  }

  /** Packets sent (accepted into the FIFO) so far. */
  get sent(): number {
    return this.#sent;
  }

  /** Packets handed to a rank's `onPacket` so far. */
  get delivered(): number {
    return this.#delivered;
  }

  /** Packets dropped so far: by a cut, failed or restarted link, a `drop()`, or no receiver. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Packets and failure reports waiting in the FIFO. */
  get queued(): number {
    return this.#queue.length - this.#head;
  }

  /**
   * The Transport of `rank`. Asserts `rank` is in range and has no open transport: after its
   * `close()` or `restart(rank)`, a new one may be made for the rank's next incarnation.
   */
  transport(rank: number): Transport {
    this.#assertRank(rank);
    assert(this.#endpoints[rank] === null, `rank ${rank} already has an open transport`);
    const endpoint = new LoopbackTransport(rank, this, {
      send: (dest, tag, body, transfer) => this.#enqueue(rank, dest, tag, body, transfer),
      close: () => {
        if (this.#endpoints[rank] === endpoint) this.#endpoints[rank] = null;
      },
    });
    this.#endpoints[rank] = endpoint;
    return endpoint;
  }

  /** Silently drops every packet to or from `rank` until `heal(rank)` (a hung node, a partition). */
  cut(rank: number): void {
    this.#assertRank(rank);
    if (this.#links[rank] === "up") this.#links[rank] = "cut";
  }

  /**
   * Crashes `rank` as a Worker crashes: each other rank's open transport has its `onPeerError`
   * called with `(rank, error)` (in rank order, when the report leaves the FIFO, whatever the
   * links), and packets to and from `rank` are dropped until `heal(rank)` or `restart(rank)`.
   * The rank's own transport is left open; it just no longer reaches anyone.
   */
  fail(rank: number, error: unknown): void {
    this.#assertRank(rank);
    this.#links[rank] = "failed";
    this.#push({ failed: rank, error });
  }

  /** Undoes `cut(rank)` and `fail(rank)`: packets to and from `rank` flow again, queued ones too. */
  heal(rank: number): void {
    this.#assertRank(rank);
    this.#links[rank] = "up";
  }

  /**
   * Starts a new incarnation of `rank`: closes its transport (its Comm can no longer send; close
   * that Comm too), drops every packet still queued to or from it, heals its links, and lets
   * `transport(rank)` be called again.
   */
  restart(rank: number): void {
    this.#assertRank(rank);
    this.#endpoints[rank]?.close();
    for (let i = this.#head; i < this.#queue.length; i++) {
      const entry = this.#queue[i];
      if (
        entry !== undefined && "dest" in entry && (entry.source === rank || entry.dest === rank)
      ) {
        entry.lost = true;
      }
    }
    this.#links[rank] = "up";
  }

  /**
   * Drops each packet for which `predicate` returns true as it leaves the FIFO (only packets the
   * links let through are shown to it). Returns a function that removes the predicate.
   */
  drop(predicate: (packet: LoopbackPacket) => boolean): () => void {
    this.#drops.push(predicate);
    return () => {
      const index = this.#drops.indexOf(predicate);
      if (index >= 0) this.#drops.splice(index, 1);
    };
  }

  #enqueue(source: number, dest: number, tag: number, body: unknown, transfer: ArrayBuffer[]) {
    this.#assertRoom(); // before cloning, so a refused packet moves no buffer
    const copy = this.movesBuffers ? structuredClone(body, { transfer }) : structuredClone(body);
    this.#push({ source, dest, tag, body: copy });
    this.#sent++;
  }

  #assertRoom(): void {
    assert(
      this.queued < this.#packetsQueuedMax,
      `the loopback network has ${this.#packetsQueuedMax} packets queued`,
    );
  }

  #push(entry: QueuedPacket | QueuedFailure): void {
    this.#assertRoom();
    this.#queue.push(entry);
    if (this.#draining) return;
    this.#draining = true;
    queueMicrotask(() => this.#drain());
  }

  /** Delivers the entries queued when it starts, in order; later ones wait for the next drain. */
  #drain(): void {
    const end = this.#queue.length;
    while (this.#head < end) {
      const entry = this.#queue[this.#head]!;
      this.#queue[this.#head++] = undefined;
      try {
        if ("failed" in entry) this.#reportFailure(entry);
        else this.#deliver(entry);
      } catch (error) {
        reportError(error); // as an exception in an onmessage handler: the next packet still goes
      }
    }
    this.#queue.splice(0, this.#head);
    this.#head = 0;
    this.#draining = this.#queue.length > 0;
    if (this.#draining) queueMicrotask(() => this.#drain());
  }

  #deliver(packet: QueuedPacket): void {
    const { source, dest, tag, body } = packet;
    const endpoint = this.#endpoints[dest];
    const delivered = packet.lost === undefined && this.#links[source] === "up" &&
      this.#links[dest] === "up" && endpoint !== null && endpoint.onPacket !== null &&
      !this.#drops.some((predicate) => predicate({ source, dest, tag, body }));
    this.#trace?.({ source, dest, tag, delivered });
    if (!delivered) return void this.#dropped++;
    this.#delivered++;
    endpoint!.onPacket!({ source, tag, body });
  }

  #reportFailure({ failed, error }: QueuedFailure): void {
    for (const endpoint of this.#endpoints) {
      if (endpoint !== null && endpoint.rank !== failed) endpoint.onPeerError?.(failed, error);
    }
  }

  #assertRank(rank: number): void {
    assert(
      Number.isSafeInteger(rank) && rank >= 0 && rank < this.size,
      `rank ${rank} out of range`,
    );
  }
}

interface Wiring {
  send(dest: number, tag: number, body: unknown, transfer: ArrayBuffer[]): void;
  close(): void;
}

/** One rank's end of a LoopbackNetwork. */
class LoopbackTransport implements Transport {
  readonly rank: number;
  readonly size: number;
  #movesBuffers: boolean;
  onPacket: ((packet: Packet) => void) | null = null;
  onPeerError: ((rank: number, error: unknown) => void) | null = null;
  #wiring: Wiring;
  #closed = false;

  constructor(rank: number, network: LoopbackNetwork, wiring: Wiring) {
    this.rank = rank;
    this.size = network.size;
    this.#movesBuffers = network.movesBuffers;
    this.#wiring = wiring;
  }

  /** As the network was made: moving buffers, or copying them as a socket would. */
  movesBuffers(_dest: number): boolean {
    return this.#movesBuffers;
  }

  /**
   * Queues a packet for `dest`, cloned now (moving `transfer` if the network moves buffers).
   * Throws DfsError UNAVAILABLE for a rank out of range or this one, and after close(); throws
   * DataCloneError for a body structuredClone cannot copy.
   */
  send(dest: number, tag: number, body: unknown, transfer: ArrayBuffer[] = []): void {
    if (this.#closed) {
      throw new DfsError("UNAVAILABLE", `Cannot send to rank ${dest}: the transport is closed`);
    }
    if (!Number.isSafeInteger(dest) || dest < 0 || dest >= this.size || dest === this.rank) {
      throw new DfsError("UNAVAILABLE", `Cannot send to rank ${dest}: no route leads there`);
    }
    this.#wiring.send(dest, tag, body, transfer);
  }

  /** Stops delivery to this rank; packets it already sent still go. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.onPacket = null;
    this.onPeerError = null;
    this.#wiring.close();
  }
}
