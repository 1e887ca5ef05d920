/**
 * Web Worker entry of a data node. The first message is a `NodeInit`; the worker opens its folder,
 * says it is ready on `READY_TAG`, then answers rank 0's calls and collectives until terminated.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { join } from "node:path";
import { DfsError } from "../../protocol/errors.ts";
import { LOG_FILE_BYTES_MAX } from "../common/chunk_id.ts";
import { openDiskChunkStore } from "./chunk_store.ts";
import { Comm, reply } from "../comm/comm.ts";
import { type DataNode, openDataNode } from "./data_node.ts";
import type { NodeCall, NodeCollective, NodeInit } from "../common/node_protocol.ts";
import { READY_TAG } from "../common/node_protocol.ts";
import { PortTransport } from "../comm/port_transport.ts";

self.onmessage = (event: MessageEvent<NodeInit>) => {
  const { rank, size, dir, testHooks } = event.data.init;
  // The transport takes over self.onmessage; rank 0 sends nothing more until we say we are ready.
  const comm = new Comm(new PortTransport(rank, size, new Map([[0, self]])));
  void start(comm, dir, testHooks === true);
};

async function start(comm: Comm, dir: string, testHooks: boolean): Promise<void> {
  let node: DataNode;
  try {
    const store = await openDiskChunkStore(join(dir, "chunks"));
    node = await openDataNode(comm.rank, { store, logPath: join(dir, "meta.log"), dir });
  } catch (error) {
    comm.send(0, READY_TAG, { error: DfsError.wireOf(error), detail: String(error) });
    return;
  }
  comm.send(0, READY_TAG, { ok: true });
  void answerCollectives(comm, node);
  let hung = false;
  await comm.serve(async ({ body }) => {
    const call = body as NodeCall;
    if (hung) return await new Promise(() => {}); // a hung node answers nothing, ever
    if (call.op === "ping") return true;
    if (call.op === "crash" || call.op === "hang") {
      if (!testHooks) throw new DfsError("INVALID_REQUEST", "Test hooks are off");
      if (call.op === "hang") hung = true;
      else {setTimeout(() => {
          throw new Error(`rank ${comm.rank} crashed on purpose (test hook)`);
        });}
      return true;
    }
    const result = call.op === "scan" ? await node.scan() : await node.handle(call);
    // Buffers go back to rank 0 (moved, not copied): a written chunk's buffer for reuse, a read
    // chunk's bytes as the answer. Bytes of a small read in a buffer of their own (none was lent)
    // are copied: cheaper than a transfer, which also posts at once instead of with the turn's
    // other answers.
    if (call.op === "write") return reply(call.bytes.buffer, [call.bytes.buffer as ArrayBuffer]);
    if (!(result instanceof Uint8Array)) return result;
    if (call.op === "read" && !call.into && result.byteLength <= LOG_FILE_BYTES_MAX) return result;
    return reply(result, [result.buffer as ArrayBuffer]);
  });
}

/** Takes rank 0's broadcasts in order and answers each with a gather on the tag it names. */
async function answerCollectives(comm: Comm, node: DataNode): Promise<void> {
  while (true) {
    let question: NodeCollective;
    try {
      question = await comm.bcast<NodeCollective>(0, undefined);
    } catch {
      return; // the Comm closed
    }
    const answer = question.op === "list"
      ? Promise.resolve(node.list(question.prefix))
      : node.scan();
    void answer.then(
      (value) => comm.gather(0, value, { tag: question.tag }),
      (error) => {
        console.error(`dfs: rank ${comm.rank} cannot answer ${question.op}:`, error);
        return comm.gather(0, undefined, { tag: question.tag });
      },
    );
  }
}
