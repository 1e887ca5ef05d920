/**
 * An upload in progress on one connection, as the session keeps it: the store's upload, the
 * slots it holds of its connection's and its address's upload shares (given back once, when it
 * commits or aborts), and when it last received data. Private to the gateway (used by
 * `session.ts`).
 *
 * @module
 */

import type { WritePlan } from "../../protocol/direct.ts";
import { DfsError } from "../../protocol/errors.ts";
import type { FileMeta } from "../../protocol/messages.ts";
import type { Upload } from "../common/file_store.ts";

export class SharedUpload implements Upload {
  /** The name being uploaded, for the error of a stalled upload. */
  readonly name: string;
  /** When its last data frame arrived, on the session's clock of client time (ms). */
  activeAt: number;
  #upload: Upload;
  #release: (() => void) | null;

  /** Wraps `upload`, which holds slots that `release` gives back; `activeAt` starts now. */
  constructor(upload: Upload, options: { name: string; release: () => void; activeAt: number }) {
    this.#upload = upload;
    this.name = options.name;
    this.#release = options.release;
    this.activeAt = options.activeAt;
  }

  get receivedBytes(): number {
    return this.#upload.receivedBytes;
  }

  write(bytes: Uint8Array, crc32?: number): Promise<void> {
    return this.#upload.write(bytes, crc32);
  }

  get plan(): Promise<WritePlan> | undefined {
    return this.#upload.plan;
  }

  replace(index: number, rank: number): Promise<{ rank: number; address: string }> {
    if (!this.#upload.replace) {
      return Promise.reject(new DfsError("INVALID_REQUEST", "The upload is not a direct one"));
    }
    return this.#upload.replace(index, rank);
  }

  async commit(options?: { sha256?: string; crc32s?: number[] }): Promise<FileMeta> {
    try {
      return await this.#upload.commit(options);
    } finally {
      this.#giveBack();
    }
  }

  async abort(): Promise<void> {
    try {
      await this.#upload.abort();
    } finally {
      this.#giveBack();
    }
  }

  #giveBack(): void {
    const release = this.#release;
    this.#release = null;
    release?.();
  }
}
