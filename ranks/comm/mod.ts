/**
 * The rank library: MPI-like communication between ranks (`Comm`) over a small `Transport`
 * interface, with its transports: `PortTransport` (Workers, MessagePorts), `TcpTransport`
 * (sockets between processes and hosts), `RoutedTransport` (each peer over its own) and `LoopbackNetwork`
 * (every rank in one thread, with fault injection, for tests and the simulator). It knows nothing
 * of files or stores.
 *
 * @module
 */

export {
  ANY_SOURCE,
  ANY_TAG,
  CALL_TIMEOUT_MS,
  COLLECTIVE_TAG,
  type CollectiveOptions,
  Comm,
  type CommOptions,
  type CommStats,
  type Envelope,
  MAILBOX_MESSAGES_MAX,
  SERVE_HANDLERS_MAX,
  TAG_MAX,
} from "./comm.ts";
export { Reply, reply } from "./reply.ts";
export type { Packet, Transport } from "./transport.ts";
export { type PortLike, PortTransport } from "./port_transport.ts";
export {
  LOOPBACK_PACKETS_QUEUED_MAX,
  LoopbackNetwork,
  type LoopbackOptions,
  type LoopbackPacket,
  type LoopbackTraceEntry,
} from "./loopback_transport.ts";
export { RoutedTransport } from "./routed_transport.ts";
export {
  decodePacket,
  encodePacket,
  type LinkStream,
  TCP_FRAME_BYTES_MAX,
  TCP_QUEUE_BYTES_HIGH,
  TCP_QUEUE_BYTES_MAX,
  TCP_WRITE_STALL_MS,
  TcpTransport,
  type TcpTransportOptions,
} from "./tcp_transport.ts";
