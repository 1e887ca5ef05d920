/**
 * Process entry of the comm suite over TCP: `deno run --allow-net _comm_test_tcp_peer.ts PORT RANK
 * SIZE` connects to rank 0 on 127.0.0.1:PORT, says which rank it is in its first packet, then runs
 * the peer program until rank 0 closes the connection (or "die" kills the process).
 *
 * @module
 */

import { Comm } from "./comm.ts";
import { TcpTransport } from "./tcp_transport.ts";
import { runPeer } from "./_comm_test_peer.ts";

const [port, rank, size] = Deno.args.map(Number);
const conn = await Deno.connect({ hostname: "127.0.0.1", port });
conn.setNoDelay(true);
const transport = new TcpTransport(rank, size);
transport.attach(0, conn);
const comm = new Comm(transport, { onPeerError: () => comm.close() });
comm.send(0, 0, "hello");
await runPeer(comm);
