/**
 * Web Worker entry of a data node. The first message is a `NodeInit`; the worker opens its folder
 * on the real environment, says it is ready on `READY_TAG`, then serves rank 0 (`serveNode()`)
 * until terminated.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { DfsError } from "../../protocol/errors.ts";
import { Comm } from "../comm/comm.ts";
import { PortTransport } from "../comm/port_transport.ts";
import type { NodeInit } from "../common/node_protocol.ts";
import { READY_TAG } from "../common/node_protocol.ts";
import { denoEnv } from "../env/deno_env.ts";
import type { Env } from "../env/env.ts";
import type { DataNode } from "./data_node.ts";
import { openDataNode } from "./open_node.ts";
import { serveNode } from "./serve.ts";

self.onmessage = (event: MessageEvent<NodeInit>) => {
  const { rank, size, dir, create, device } = event.data.init;
  const env = denoEnv();
  // The transport takes over self.onmessage; rank 0 sends nothing more until we say we are ready.
  const comm = new Comm(new PortTransport(rank, size, new Map([[0, self]])), {
    clock: env.clock,
    log: env.log,
  });
  void start(comm, dir, { env, create, device });
};

async function start(
  comm: Comm,
  dir: string,
  options: { env: Env; create?: boolean; device?: number },
): Promise<void> {
  const { env } = options;
  let node: DataNode;
  try {
    node = await openDataNode(comm.rank, dir, options);
  } catch (error) {
    comm.send(0, READY_TAG, { error: DfsError.wireOf(error), detail: String(error) });
    return;
  }
  comm.send(0, READY_TAG, { ok: true });
  await serveNode(comm, node, { log: env.log });
}
