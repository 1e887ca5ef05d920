/**
 * The small interface the rank library depends on. A transport moves packets between ranks and
 * knows nothing of matching, calls or collectives; `Comm` does that on top of any transport.
 *
 * @module
 */

/** One message between ranks, as a transport delivers it. */
export interface Packet {
  source: number;
  tag: number;
  body: unknown;
}

/** Moves packets between ranks. Implementations: PortTransport, LoopbackNetwork's; TCP later. */
export interface Transport {
  readonly rank: number;
  readonly size: number;
  /**
   * True when `send()` moves the `transfer` buffers to the receiver (postMessage between threads):
   * handing a buffer back, or lending an empty one to be filled, then costs nothing. False when
   * bodies are serialized (a socket): then both would only double the bytes on the wire.
   */
  readonly movesBuffers: boolean;
  /**
   * Sends a packet to `dest`; `transfer` lists ArrayBuffers moved without copying (detached at the
   * sender). Throws DfsError UNAVAILABLE if dest is unknown/closed.
   */
  send(dest: number, tag: number, body: unknown, transfer?: ArrayBuffer[]): void;
  /** Set by Comm; called for each arriving packet, in arrival order per sender. */
  onPacket: ((packet: Packet) => void) | null;
  /** Called when a peer port reports an error (e.g. a Worker's uncaught error) — source rank and error. */
  onPeerError: ((rank: number, error: unknown) => void) | null;
  /** Stops delivering packets and releases the transport's resources; idempotent. */
  close(): void;
}
