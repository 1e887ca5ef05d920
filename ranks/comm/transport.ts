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

/**
 * Moves packets between ranks. Implementations: PortTransport (Workers, MessagePorts),
 * TcpTransport (sockets between processes and hosts), RoutedTransport (some peers over one,
 * some over another) and LoopbackNetwork's (one thread, with faults).
 *
 * Backpressure: `send()` never blocks. A transport that queues bytes (a socket) says through
 * `whenWritable(dest)` when its queue toward `dest` is past its high-water mark; `Comm` waits on
 * it before each call and each answer, so bulk transfers to a slow peer wait for that peer only.
 * Sends that do not wait (plain messages, collectives) are small; a transport still bounds its
 * queue and fails the peer's link rather than grow past its limit.
 */
export interface Transport {
  readonly rank: number;
  readonly size: number;
  /**
   * True when `send()` to `dest` moves the `transfer` buffers to the receiver (postMessage
   * between threads): handing a buffer back, or lending an empty one to be filled, then costs
   * nothing. False when bodies are serialized (a socket): then both would only double the bytes
   * on the wire, and a sent body may be reused as soon as `send()` returns.
   */
  movesBuffers(dest: number): boolean;
  /**
   * Sends a packet to `dest`; `transfer` lists ArrayBuffers moved without copying (detached at the
   * sender). Throws DfsError UNAVAILABLE if dest is unknown/closed.
   */
  send(dest: number, tag: number, body: unknown, transfer?: ArrayBuffer[]): void;
  /**
   * Resolves once the queue toward `dest` is below its high-water mark; undefined when it is
   * already (and always, for a transport that never queues). Rejects or resolves when the link
   * closes: the next `send()` then throws.
   */
  whenWritable?(dest: number): Promise<void> | undefined;
  /** Set by Comm; called for each arriving packet, in arrival order per sender. */
  onPacket: ((packet: Packet) => void) | null;
  /** Called when a peer port reports an error (e.g. a Worker's uncaught error) — source rank and error. */
  onPeerError: ((rank: number, error: unknown) => void) | null;
  /** Stops delivering packets and releases the transport's resources; idempotent. */
  close(): void;
}
