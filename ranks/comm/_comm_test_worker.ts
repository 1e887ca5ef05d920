/**
 * Worker entry of the comm suite: waits for `{ init: { rank, size } }`, then runs the peer program
 * over a PortTransport whose only port is rank 0 (this worker's `self`).
 *
 * @module
 */

import { Comm } from "./comm.ts";
import { type PortLike, PortTransport } from "./port_transport.ts";
import { runPeer } from "./_comm_test_peer.ts";

const scope = self as unknown as PortLike;
scope.onmessage = (event: MessageEvent) => {
  const { rank, size } = (event.data as { init: { rank: number; size: number } }).init;
  void runPeer(new Comm(new PortTransport(rank, size, new Map([[0, scope]]))));
};
