/**
 * One transport made of several: each peer is reached through the transport it is routed to.
 * Rank 0 reaches its Worker data nodes through a `PortTransport` and its remote ones through a
 * `TcpTransport`; `Comm` sees one transport, and asks it per peer whether buffers move.
 *
 * @module
 */

import { assert, DfsError } from "../../protocol/errors.ts";
import type { Packet, Transport } from "./transport.ts";

/** A Transport that forwards each send to the transport its destination is routed through. */
export class RoutedTransport implements Transport {
  readonly rank: number;
  readonly size: number;
  onPacket: ((packet: Packet) => void) | null = null;
  onPeerError: ((rank: number, error: unknown) => void) | null = null;
  #routes = new Map<number, Transport>();
  #parts = new Set<Transport>();
  #closed = false;

  /** Takes over the `onPacket` and `onPeerError` of each part; parts share rank and size. */
  constructor(rank: number, size: number, parts: Transport[]) {
    this.rank = rank;
    this.size = size;
    for (const part of parts) {
      assert(part.rank === rank && part.size === size, "every part has this rank and size");
      part.onPacket = (packet) => this.onPacket?.(packet);
      part.onPeerError = (peer, error) => this.onPeerError?.(peer, error);
      this.#parts.add(part);
    }
  }

  /** Routes `peer` through `part` (one of the constructor's), or nowhere with null. */
  route(peer: number, part: Transport | null): void {
    assert(part === null || this.#parts.has(part), "routes go through the parts given");
    if (part === null) this.#routes.delete(peer);
    else this.#routes.set(peer, part);
  }

  movesBuffers(dest: number): boolean {
    return this.#routes.get(dest)?.movesBuffers(dest) ?? false;
  }

  send(dest: number, tag: number, body: unknown, transfer?: ArrayBuffer[]): void {
    const part = this.#routes.get(dest);
    if (part === undefined) {
      const why = this.#closed ? "the transport is closed" : "no route leads there";
      throw new DfsError("UNAVAILABLE", `Cannot send to rank ${dest}: ${why}`);
    }
    part.send(dest, tag, body, transfer);
  }

  whenWritable(dest: number): Promise<void> | undefined {
    return this.#routes.get(dest)?.whenWritable?.(dest);
  }

  /** Closes every part; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#routes.clear();
    for (const part of this.#parts) part.close();
    this.onPacket = null;
    this.onPeerError = null;
  }
}
