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
import { DfsError, type WireError } from "./errors.ts";
import type { FileMeta, Reply } from "./messages.ts";
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
  let fetching = Promise.resolve<unknown>(undefined);
  const fetch = (index: number) => {
    const fetched = fetching.then(async () => {
      await rank0.send({ op: "fetch", id, index });
      const reply = await rank0.reply();
      if (reply.op !== "data") throw failureOf(reply);
      return reply.bytes;
    });
    fetching = fetched.catch(() => {});
    return fetched;
  };
  yield* readDirect(meta, route, range, links, fetch, options);
  await fetching;
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
  let asking = Promise.resolve<unknown>(undefined);
  const replace = (index: number, rank: number) => {
    const asked = asking.then(async () => {
      await rank0.send({ op: "replace", id, index, rank });
      const reply = await rank0.reply();
      if (reply.op !== "ok") throw failureOf(reply);
      return reply.result as { rank: number; address: string };
    });
    asking = asked.catch(() => {});
    return asked;
  };
  const progress = () => rank0.send({ op: "progress", id });
  const end = await writeDirect(source, size, plan, links, { replace, progress });
  await asking;
  await rank0.send({ op: "end", id, ...end });
  const reply = await rank0.reply();
  if (reply.op !== "ok") throw failureOf(reply);
  return reply.result as FileMeta;
}

/** The error a reply carries, or a protocol error for an unexpected one. */
function failureOf(reply: Reply): DfsError {
  if (reply.op === "error") return DfsError.fromWire(reply as WireError);
  return new DfsError("INTERNAL", `Unexpected reply "${String(reply.op).slice(0, 40)}"`);
}
