/**
 * Serves a data node on a `Comm`: answers rank 0's point-to-point calls and its collective
 * (`scan` broadcasts, answered by a gather), over any transport, so a data node can run
 * in its own Worker (`worker.ts`) or beside others in one thread.
 *
 * @module
 */

import type { BufferPool } from "../../protocol/buffer_pool.ts";
import { LOG_FILE_BYTES_MAX, SMALL_READ_BYTES_MAX } from "../common/chunk_id.ts";
import type { NodeCall, NodeCollective, ScanAnswer, SummaryPage } from "../common/node_protocol.ts";
import type { Comm } from "../comm/comm.ts";
import { reply } from "../comm/reply.ts";
import { HEADROOM_BYTES } from "../comm/tcp_transport.ts";
import { stderrLog } from "../env/system.ts";
import type { Log } from "../env/env.ts";
import type { DataNode } from "./data_node.ts";

/** Options of `serveNode()`. */
export interface ServeNodeOptions {
  /** Where a collective the node cannot answer is reported; default stderr. */
  log?: Log;
  /**
   * Over a transport that serializes: the buffers large reads are read into, given back by the
   * transport once written (`TcpTransportOptions.recycle`). Without it, each gets a new buffer.
   */
  pool?: BufferPool;
}

/**
 * Answers rank 0's calls to `node` and its collectives until `comm` closes; resolves once the
 * calls it had begun are done too (their answers go nowhere), so that a node that rejoins is
 * reconciled with nothing of the old link still changing its disk. Buffers move only
 * when `comm.movesBuffersTo(0)`: then a write's answer hands the chunk's buffer back, a read fills the
 * buffer rank 0 lent (`into`) and its answer moves the bytes; otherwise a write answers `true`,
 * `into` is ignored and nothing is echoed (it would only double the bytes on the wire). Errors go
 * back to the caller as `Comm.serve` sends them.
 */
export async function serveNode(
  comm: Comm,
  node: DataNode,
  options: ServeNodeOptions = {},
): Promise<void> {
  const { log = stderrLog } = options;
  void answerCollectives(comm, node, log);
  /** Calls being answered: a node whose link to rank 0 dropped finishes them before it rejoins. */
  const inflight = new Set<Promise<unknown>>();
  await comm.serve(({ body }) => {
    const call = body as NodeCall;
    const answer = answerCall(comm, node, call, options.pool);
    inflight.add(answer);
    answer.then(() => inflight.delete(answer), () => inflight.delete(answer));
    return answer;
  });
  await Promise.allSettled(inflight);
}

/** Answers one call, with buffers moved as `comm.movesBuffersTo(0)` allows. */
async function answerCall(
  comm: Comm,
  node: DataNode,
  call: NodeCall,
  pool: BufferPool | undefined,
): Promise<unknown> {
  if (call.op === "ping") return node.ping();
  const moves = comm.movesBuffersTo(0);
  if (call.op === "scan") {
    const scan = await node.scan();
    return moves ? reply(scan, scanBuffers(scan)) : scan;
  }
  if (!moves && call.op === "read") return await answerRead(node, call, pool);
  if (call.op === "summary" || call.op === "summaryPage") {
    const page = call.op === "summary" ? await node.summary(call.seed) : node.summaryPage();
    return moves ? reply(page, [page.manifests.buffer as ArrayBuffer]) : page;
  }
  if (call.op === "scanPage") {
    const piece = await node.scanPage();
    return moves ? reply(piece, [piece.manifests.buffer as ArrayBuffer]) : piece;
  }
  const result = await node.handle(call);
  if (!moves) return result;
  // Buffers go back to rank 0 (moved, not copied): a written chunk's buffer for reuse, a read
  // chunk's bytes as the answer. Bytes of a small read in a buffer of their own (none was lent)
  // are copied: cheaper than a transfer, which also posts at once instead of with the turn's
  // other answers.
  if (call.op === "write") {
    // Bytes in memory shared with rank 0 stay where they are: rank 0 reuses them when answered.
    if (call.bytes.buffer instanceof SharedArrayBuffer) return result;
    return reply(call.bytes.buffer, [call.bytes.buffer as ArrayBuffer]);
  }
  if (!(result instanceof Uint8Array)) return result;
  if (call.op === "read" && !call.into && result.byteLength <= LOG_FILE_BYTES_MAX) return result;
  return reply(result, [result.buffer as ArrayBuffer]);
}

/**
 * A read over a transport that serializes: a large chunk is read into a pooled buffer (or one of
 * its own) and given up with the answer, so the socket writes it from where it is and the pool
 * gets it back.
 */
async function answerRead(
  node: DataNode,
  call: Extract<NodeCall, { op: "read" }>,
  pool: BufferPool | undefined,
): Promise<unknown> {
  const large = call.size > SMALL_READ_BYTES_MAX;
  const fits = pool && HEADROOM_BYTES + call.size <= pool.bufferBytes;
  // Read past the headroom, where the transport writes the frame's header: one write per chunk.
  const into = large && fits ? pool.take().subarray(HEADROOM_BYTES) : undefined;
  let result: unknown;
  try {
    result = await node.handle({ ...call, into });
  } catch (error) {
    pool?.give(into?.buffer);
    throw error;
  }
  if (!(result instanceof Uint8Array) || result.byteLength <= LOG_FILE_BYTES_MAX) {
    pool?.give(into?.buffer);
    return result;
  }
  if (into !== undefined && result.buffer !== into.buffer) pool?.give(into.buffer);
  return reply(result, [result.buffer as ArrayBuffer]);
}

/** Takes rank 0's broadcasts in order and answers each with a gather on the tag it names. */
async function answerCollectives(comm: Comm, node: DataNode, log: Log): Promise<void> {
  while (true) {
    let question: NodeCollective;
    try {
      question = await comm.bcast<NodeCollective>(0, undefined);
    } catch {
      return; // the Comm closed
    }
    const answer: Promise<ScanAnswer | SummaryPage> = question.op === "summary"
      ? node.summary(question.seed)
      : node.scan();
    const moves = comm.movesBuffersTo(0);
    void answer.then(
      (value) => {
        const transfer = !moves
          ? []
          : "inLog" in value
          ? scanBuffers(value)
          : [value.manifests.buffer as ArrayBuffer];
        return comm.gather(0, value, { tag: question.tag, transfer });
      },
      (error) => {
        log.error(`dfs: rank ${comm.rank} cannot answer ${question.op}:`, error);
        return comm.gather(0, undefined, { tag: question.tag });
      },
    );
  }
}

/** The buffers of a scan answer, which go to rank 0 moved rather than copied. */
function scanBuffers(scan: ScanAnswer): ArrayBuffer[] {
  return [scan.manifests.buffer as ArrayBuffer, scan.inLog.buffer as ArrayBuffer];
}
