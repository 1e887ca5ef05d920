/**
 * A connection's direct reads (`protocol/direct.ts`): a get answered with a route holds its
 * reader, and so the version it opened, while the client reads the chunks from the data nodes;
 * it serves the client's `fetch` of a chunk no node gave, and lets go at `done`, when the
 * connection closes, or once its grant has expired (`holdMsOf`).
 *
 * @module
 */

import type { FrameWriter } from "../../protocol/conn.ts";
import { type Grant, GRANT_CLOCK_SKEW_MS } from "../../protocol/direct.ts";
import { DfsError } from "../../protocol/errors.ts";
import type { FileReader } from "../common/file_store.ts";
import type { Clock } from "../env/env.ts";
import type { Semaphore } from "../common/semaphore.ts";

/**
 * How long a direct read holds its version past `nowMs`: while its grant holds, with the clock
 * skew a node allows (a grant lives `grantLifeMs` of the read's bytes).
 */
export function holdMsOf(grant: Grant, nowMs: number): number {
  return Math.max(0, grant.expires - nowMs) + GRANT_CLOCK_SKEW_MS;
}

interface Held {
  reader: FileReader;
  finish: () => void;
  fetching: boolean;
}

/** The direct reads of one connection. */
export class DirectReads {
  #writer: FrameWriter;
  #clock: Clock;
  #budget: Semaphore;
  #held = new Map<number, Held>();
  #closed = false;

  /**
   * `budget` bounds the chunks the connection's reads hold at once: a fetch takes one of its
   * permits while it reads and sends its chunk, as a get through rank 0 does.
   */
  constructor(writer: FrameWriter, clock: Clock, budget: Semaphore) {
    this.#writer = writer;
    this.#clock = clock;
    this.#budget = budget;
  }

  /**
   * Answers get `id` with its metadata and `reader.route`, then holds `reader` open until the
   * read is over (see the module's description). The caller closes the reader after.
   */
  async serve(id: number, reader: FileReader): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    if (this.#closed) return;
    const holdMs = holdMsOf(reader.route!.grant, this.#clock.now());
    const timer = this.#clock.setTimeout(resolve, holdMs);
    this.#held.set(id, { reader, finish: resolve, fetching: false });
    try {
      await this.#writer.send({ op: "ok", id, result: reader.meta, direct: reader.route });
      await promise;
    } finally {
      this.#clock.clearTimeout(timer);
      this.#held.delete(id);
    }
  }

  /**
   * Sends chunk `index` of read `id` as a `data` frame, or an `error` frame with the read's id
   * (the read stays open). Not awaited by the frame loop.
   *
   * @throws {DfsError} `INVALID_REQUEST` if `id` is no direct read or already fetching.
   */
  fetch(id: number, index: number): void {
    const held = this.#heldOf(id);
    if (held.fetching) {
      throw new DfsError("INVALID_REQUEST", `Direct read ${id} is fetching a chunk already`);
    }
    const { reader } = held;
    if (reader.fetch === undefined) throw new DfsError("INVALID_REQUEST", "No chunk to fetch");
    held.fetching = true;
    const fetch = reader.fetch;
    this.#budget.acquire()
      .then(() =>
        fetch(index, (bytes) => this.#writer.sendData(id, bytes)).finally(() =>
          this.#budget.release()
        )
      )
      .catch((error) => {
        if (this.#closed) return;
        return this.#writer.send({ op: "error", id, ...DfsError.wireOf(error) });
      })
      .catch(() => {}) // the client is gone
      .finally(() => held.fetching = false);
  }

  /** Ends direct read `id`. @throws {DfsError} `INVALID_REQUEST` if there is none. */
  done(id: number): void {
    this.#heldOf(id).finish();
  }

  /** Ends every direct read: the connection is closing. */
  close(): void {
    this.#closed = true;
    for (const held of this.#held.values()) held.finish();
  }

  #heldOf(id: number): Held {
    const held = this.#held.get(id);
    if (held === undefined) throw new DfsError("INVALID_REQUEST", `No direct read ${id} is open`);
    return held;
  }
}
