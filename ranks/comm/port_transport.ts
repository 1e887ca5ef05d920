/**
 * A transport over postMessage-capable ports: a `Worker` (seen from its owner), a worker's global
 * `self`, or a `MessagePort`. Each peer rank has its own port; a star (rank 0 holds one port per
 * worker, each worker holds rank 0's) or a full mesh of MessageChannels both work.
 *
 * On the wire a packet is the plain object `{ s: source, t: tag, b: body }`. Packets sent to one
 * peer in the same turn of the event loop travel together in one message, an array of them: each
 * postMessage wakes the receiving thread, and with 16 clients of small files at once rank 0 spent
 * 17% of its time in postMessage, about 90 microseconds a call. A packet that transfers buffers
 * goes at once, with those pending before it, so that its buffers are detached when `send()`
 * returns.
 *
 * @module
 */

import { assert, DfsError } from "../../protocol/errors.ts";
import type { Packet, Transport } from "./transport.ts";

/** The part of `Worker`, `MessagePort` and a worker's `self` that PortTransport uses. */
export interface PortLike {
  postMessage(message: unknown, transfer: Transferable[]): void;
  onmessage: ((event: MessageEvent) => void) | null;
  onerror?: ((event: ErrorEvent) => void) | null;
  onmessageerror?: ((event: MessageEvent) => void) | null;
}

interface WirePacket {
  s: number;
  t: number;
  b: unknown;
}

/** A Transport that posts packets to one port per peer rank. */
export class PortTransport implements Transport {
  readonly rank: number;
  readonly size: number;
  onPacket: ((packet: Packet) => void) | null = null;
  onPeerError: ((rank: number, error: unknown) => void) | null = null;
  #ports = new Map<number, PortLike>();
  /** Packets not yet posted, per peer, with their port and the buffers they transfer. */
  #pending = new Map<number, { port: PortLike; packets: WirePacket[]; transfer: ArrayBuffer[] }>();
  #closed = false;

  /** Attaches to `ports` (peer rank to port); takes over their `onmessage` handlers. */
  constructor(rank: number, size: number, ports: Map<number, PortLike>) {
    assert(Number.isSafeInteger(size) && size >= 1, `size ${size} must be a positive integer`);
    assert(Number.isSafeInteger(rank) && rank >= 0 && rank < size, `rank ${rank} out of range`);
    this.rank = rank;
    this.size = size;
    for (const [peer, port] of ports) this.setPort(peer, port);
  }

  /**
   * Makes `port` the route to `peer`, detaching the previous one (e.g. when the owner replaces a
   * crashed Worker); `null` removes the route. Never terminates a Worker: its owner does that.
   */
  setPort(peer: number, port: PortLike | null): void {
    assert(
      Number.isSafeInteger(peer) && peer >= 0 && peer < this.size,
      `peer ${peer} out of range`,
    );
    assert(peer !== this.rank, `rank ${peer} cannot have a port to itself`);
    assert(!this.#closed, "setPort() on a closed transport");
    const old = this.#ports.get(peer);
    if (old !== undefined) detach(old);
    this.#ports.delete(peer);
    if (port === null) return;
    this.#ports.set(peer, port);
    port.onmessage = (event) => this.#receive(peer, event.data);
    port.onmessageerror = () => {
      this.#peerError(peer, new DfsError("CORRUPTED", `Cannot read a message from rank ${peer}`));
    };
    // A worker's own `self.onerror` reports the worker's own errors, not its peer's.
    if (hasPeerErrors(port)) {
      port.onerror = (event) => {
        if (this.onPeerError === null) return; // let the error propagate as it would unhandled
        event.preventDefault();
        this.onPeerError(peer, event.error ?? new Error(event.message));
      };
    }
  }

  /** Always: postMessage moves the buffers it transfers. */
  movesBuffers(_dest: number): boolean {
    return true;
  }

  /** Posts a packet to `dest`'s port. Throws DfsError UNAVAILABLE if there is none or after close(). */
  send(dest: number, tag: number, body: unknown, transfer: ArrayBuffer[] = []): void {
    const port = this.#ports.get(dest);
    if (port === undefined) {
      const why = this.#closed ? "the transport is closed" : "no port leads there";
      throw new DfsError("UNAVAILABLE", `Cannot send to rank ${dest}: ${why}`);
    }
    const packet: WirePacket = { s: this.rank, t: tag, b: body };
    let pending = this.#pending.get(dest);
    if (pending?.port !== port) {
      if (pending) this.#flush(dest); // the port was replaced: what was meant for the old one goes
      pending = { port, packets: [], transfer: [] };
      this.#pending.set(dest, pending);
      queueMicrotask(() => this.#flush(dest));
    }
    pending.packets.push(packet);
    pending.transfer.push(...transfer);
    if (transfer.length > 0) this.#flush(dest);
  }

  /** Posts the packets pending for `dest`: one alone, several as an array. */
  #flush(dest: number): void {
    const pending = this.#pending.get(dest);
    if (!pending) return;
    this.#pending.delete(dest);
    const { port, packets, transfer } = pending;
    port.postMessage(packets.length === 1 ? packets[0] : packets, transfer);
  }

  /** Detaches every handler and closes MessagePorts; Workers are left to their owner. */
  close(): void {
    if (this.#closed) return;
    for (const dest of [...this.#pending.keys()]) this.#flush(dest);
    this.#closed = true;
    for (const port of this.#ports.values()) {
      detach(port);
      if (port instanceof MessagePort) port.close();
    }
    this.#ports.clear();
    this.onPacket = null;
    this.onPeerError = null;
  }

  #receive(peer: number, data: unknown): void {
    if (Array.isArray(data)) {
      for (const packet of data) this.#receive(peer, packet);
      return;
    }
    if (!isWirePacket(data) || data.s !== peer) {
      this.#peerError(
        peer,
        new DfsError("CORRUPTED", `Dropped a malformed packet from rank ${peer}`),
      );
      return;
    }
    this.onPacket?.({ source: data.s, tag: data.t, body: data.b });
  }

  #peerError(peer: number, error: DfsError): void {
    if (this.onPeerError !== null) this.onPeerError(peer, error);
    else console.error(error.message);
  }
}

function isWirePacket(data: unknown): data is WirePacket {
  if (typeof data !== "object" || data === null || !("b" in data)) return false;
  const { s, t } = data as Partial<WirePacket>;
  return Number.isSafeInteger(s) && Number.isSafeInteger(t);
}

function hasPeerErrors(port: PortLike): boolean {
  return port !== (globalThis as unknown) && "onerror" in port;
}

function detach(port: PortLike): void {
  port.onmessage = null;
  port.onmessageerror = null;
  if (hasPeerErrors(port)) port.onerror = null;
}
