/**
 * The launch seam: how rank 0 starts a data node rank (`mpiexec`'s job). A `Launcher` starts a rank
 * and hands back its end of the connection; the supervisor and start-up use nothing else, so
 * tests launch ranks that crash or hang on demand (`ranks/testing/`) and a later launcher can
 * start nodes on other hosts.
 *
 * @module
 */

import type { PortLike } from "../comm/port_transport.ts";
import type { NodeInit } from "../common/node_protocol.ts";

/** A started data node rank, seen from rank 0. */
export interface LaunchedRank {
  /** Stops the rank at once. */
  terminate(): void;
}

/** A rank started in a thread of this process, reached through a port. */
export interface PortRank extends LaunchedRank {
  /** Its end of the connection, for a `PortTransport`. */
  readonly port: PortLike;
}

/** Starts data node ranks. */
export interface Launcher {
  /**
   * Starts data node `rank` on its folder. It says it is ready on `READY_TAG` once its storage
   * is open (or why it cannot start).
   *
   * @throws {DfsError} `UNAVAILABLE` if the rank cannot be started at all.
   */
  launch(init: NodeInit["init"]): PortRank;
}

/** Starts each data node as a Web Worker of this process (`ranks/node/worker.ts`). */
export class WorkerLauncher implements Launcher {
  launch(init: NodeInit["init"]): PortRank {
    const worker = new Worker(new URL("../node/worker.ts", import.meta.url).href, {
      type: "module",
      name: `rank-${init.rank}`,
    });
    worker.postMessage({ init } satisfies NodeInit);
    return { port: worker, terminate: () => worker.terminate() };
  }
}
