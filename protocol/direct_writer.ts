/**
 * The client's side of direct uploads (`direct.ts`): each chunk of the source written to every
 * node rank 0's plan names for it, a few chunks at a time, with its CRC32 (which the node checks
 * and rank 0 will make it confirm at the commit). A node that fails a write is replaced: rank 0
 * names another, and the chunk is written there instead.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { crc32 } from "node:zlib";
import type { WritePlan } from "./direct.ts";
import type { DataLinks } from "./direct_reader.ts";
import { DIRECT_CHUNKS_INFLIGHT_MAX } from "./direct_reader.ts";
import { DfsError } from "./errors.ts";
import { CHUNK_SIZE_BYTES } from "./limits.ts";
import { rechunk } from "./pieces.ts";
import type { ByteSource } from "../ranks/common/file_store.ts";
import { chunkIdOf } from "../ranks/common/chunk_id.ts";

/** Nodes tried for one replica of a chunk (the first, then the ones rank 0 names instead). */
export const DIRECT_WRITE_ATTEMPTS_MAX = 3;
/** How often a direct upload tells rank 0 it is still writing. */
export const DIRECT_PROGRESS_INTERVAL_MS = 1_000;

/** What a direct upload asks of rank 0 while it writes. */
export interface PlanKeeper {
  /** Another node for chunk `index`, whose write to `rank` failed. */
  replace(index: number, rank: number): Promise<{ rank: number; address: string }>;
  /** Tells rank 0 the upload is still going. */
  progress(): Promise<void>;
}

/**
 * Writes `source` (exactly `size` bytes) along `plan`; returns what the commit names: the file's
 * SHA-256 and each chunk's CRC32.
 *
 * @throws {DfsError} `INVALID_REQUEST` if the source has another size; the last node's error
 *   when a chunk could not be written.
 */
export async function writeDirect(
  source: ByteSource,
  size: number,
  plan: WritePlan,
  links: DataLinks,
  rank0: PlanKeeper,
): Promise<{ sha256: string; crc32s: number[] }> {
  const hash = createHash("sha256");
  const crc32s: number[] = [];
  const inflight: Promise<void>[] = [];
  let sent = 0;
  // Rank 0 fails an upload it hears nothing of: say it goes on, even while the nodes are slow.
  const progress = setInterval(
    () => void rank0.progress().catch(() => {}),
    DIRECT_PROGRESS_INTERVAL_MS,
  );
  const writeReplica = async (index: number, rank: number, bytes: Uint8Array, crc: number) => {
    const chunk = chunkIdOf(plan.blob, index * CHUNK_SIZE_BYTES);
    let address = plan.nodes[rank];
    for (let attempt = 1;; attempt++) {
      try {
        return await links.write(address, { chunk, crc32: crc, grant: plan.grant }, bytes);
      } catch (error) {
        if (attempt >= DIRECT_WRITE_ATTEMPTS_MAX || error instanceof DfsError && !retried(error)) {
          throw error;
        }
        ({ rank, address } = await rank0.replace(index, rank));
      }
    }
  };
  try {
    let index = 0;
    for await (const piece of rechunk(source, CHUNK_SIZE_BYTES)) {
      if (sent + piece.length > size || index >= plan.ranks.length) {
        throw new DfsError(
          "INVALID_REQUEST",
          `The source gave more than its declared ${size} bytes`,
        );
      }
      hash.update(piece);
      const crc = crc32(piece);
      crc32s.push(crc);
      while (inflight.length >= DIRECT_CHUNKS_INFLIGHT_MAX) await inflight.shift();
      const written = Promise.all(
        plan.ranks[index].map((rank) => writeReplica(index, rank, piece, crc)),
      ).then(() => {});
      written.catch(() => {}); // awaited in order
      inflight.push(written);
      sent += piece.length;
      index++;
    }
    if (sent !== size || crc32s.length !== plan.ranks.length) {
      throw new DfsError(
        "INVALID_REQUEST",
        `The source gave ${sent} of its declared ${size} bytes`,
      );
    }
    while (inflight.length > 0) await inflight.shift();
  } finally {
    clearInterval(progress);
    await Promise.allSettled(inflight);
  }
  return { sha256: hash.digest("hex"), crc32s };
}

/**
 * Errors a write to another node may get past: the node failed, or lost the upload (restarted:
 * `UNAUTHORIZED`), not the request.
 */
function retried(error: DfsError): boolean {
  return ["UNAVAILABLE", "CORRUPTED", "INTERNAL", "UNAUTHORIZED", "NODE_FAILED"].includes(
    error.code,
  );
}
