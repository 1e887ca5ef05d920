/**
 * A connection's answers to direct uploads (`rank0/direct_uploads.ts`): the plan a put asked for,
 * and another node for a chunk a node would not take. Each is answered from a promise of its
 * own, so the frame loop reads on meanwhile.
 *
 * @module
 */

import type { FrameWriter } from "../../protocol/conn.ts";
import type { RequestOf } from "./ops.ts";
import type { SharedUpload } from "./_shared_upload.ts";

/**
 * Answers put `id`, which asked for a direct plan: `ok {plan}` once the nodes have opened the
 * upload, or `ok` at once when it has none (the client then sends its bytes to rank 0). When the
 * nodes could not open it, the upload is aborted and `failed` tells the client why.
 */
export function answerPlan(
  writer: FrameWriter,
  id: number,
  upload: SharedUpload,
  failed: (id: number, error: unknown) => Promise<void>,
): void {
  const plan = upload.plan;
  void (async () => {
    try {
      await writer.send({ op: "ok", id, ...(plan ? { plan: await plan } : {}) });
    } catch (error) {
      await upload.abort();
      await failed(id, error);
    }
  })();
}

/** Answers `replace`: `ok {result: {rank, address}}`, or the error through `failed`. */
export function answerReplace(
  writer: FrameWriter,
  request: RequestOf<"replace">,
  upload: SharedUpload,
  failed: (id: number, error: unknown) => Promise<void>,
): void {
  const { id, index, rank } = request;
  void upload.replace(index, rank)
    .then((result) => writer.send({ op: "ok", id, result }))
    .catch((error) => failed(id, error));
}
