/**
 * How `DfsClient` (`client.ts`) follows rank 0's answers into the direct data path: a get's route
 * (`direct_reader.ts`) and a put's plan (`direct_writer.ts`), with the requests they make of rank
 * 0 on the way (`fetch`, `done`; `replace`, `progress`, `end`). Requests to rank 0 go one at a
 * time on its connection, which the operation holds throughout.
 *
 * @module
 */

import { CHUNK_SIZE_BYTES } from "./limits.ts";
import { type DirectRoute, parsePlan, parseRoute, type WritePlan } from "./direct.ts";
import { type DataLinks, readDirect } from "./direct_reader.ts";
import { writeDirect } from "./direct_writer.ts";
import { expectOk, type FileMeta, type Reply, resultOf, unexpected } from "./messages.ts";
import type { ByteSource } from "../ranks/common/file_store.ts";

/** The connection to rank 0, as an operation holds it. */
export interface Rank0Link {
  send(message: Record<string, unknown>): Promise<void>;
  reply(): Promise<Reply>;
}

/**
 * The bytes `range` of get `id`'s file, read along `route`; then tells rank 0 the read is done.
 * With `verify`, each chunk is checked whole (every chunk must have a CRC32).
 */
export async function* readRoute(
  rank0: Rank0Link,
  id: number,
  read: { meta: FileMeta; route: DirectRoute; range: { start: number; end: number } },
  links: DataLinks,
  options: { verify: boolean },
): AsyncGenerator<Uint8Array> {
  const { meta, range } = read;
  const route = parseRoute(read.route, meta.chunks.length);
  const asking = inTurn(rank0);
  const fetch = (index: number) =>
    asking.ask({ op: "fetch", id, index }).then((reply) => {
      if (reply.op !== "data") throw expectOk(reply) && unexpected(reply);
      return reply.bytes;
    });
  yield* readDirect(meta, route, range, links, fetch, options);
  await asking.idle();
  await rank0.send({ op: "done", id });
}

/**
 * Writes put `id`'s `size` bytes of `source` along `plan`, then ends the upload; resolves with
 * rank 0's answer.
 */
export async function writePlan(
  rank0: Rank0Link,
  id: number,
  upload: { plan: WritePlan; source: ByteSource; size: number },
  links: DataLinks,
): Promise<FileMeta> {
  const { source, size } = upload;
  const plan = parsePlan(upload.plan, Math.ceil(size / CHUNK_SIZE_BYTES));
  const asking = inTurn(rank0);
  const replace = (index: number, rank: number) =>
    asking.ask({ op: "replace", id, index, rank })
      .then((reply) => resultOf<{ rank: number; address: string }>(reply));
  const progress = () => rank0.send({ op: "progress", id });
  const end = await writeDirect(source, size, plan, links, { replace, progress });
  await asking.idle();
  await rank0.send({ op: "end", id, ...end });
  return resultOf<FileMeta>(await rank0.reply());
}

/**
 * Requests to rank 0 that each get one answer, asked one at a time: the answers come in order on
 * the connection, so each is read right after its request.
 */
function inTurn(rank0: Rank0Link): {
  ask(message: Record<string, unknown>): Promise<Reply>;
  /** Resolves once no request is waiting for its answer. */
  idle(): Promise<unknown>;
} {
  let last = Promise.resolve<unknown>(undefined);
  return {
    ask(message) {
      const asked = last.then(async () => {
        await rank0.send(message);
        return await rank0.reply();
      });
      last = asked.catch(() => {});
      return asked;
    },
    idle: () => last,
  };
}
