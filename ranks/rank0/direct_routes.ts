/**
 * Which reads go to the data nodes directly (`protocol/direct.ts`): rank 0 offers a route for a
 * read of at least `DIRECT_READ_BYTES_MIN` whose every chunk is in a blob (not in a log record)
 * and has a live replica on a node with a data port, and signs a grant for the file's blobs.
 * Everything else is read through rank 0, as before. Pure but for the clock.
 *
 * @module
 */

import {
  type DirectRoute,
  GRANT_BLOBS_MAX,
  grantLifeMs,
  ROUTE_RUNS_MAX,
  runsOf,
  signGrant,
} from "../../protocol/direct.ts";
import { CHUNK_SIZE_BYTES } from "../../protocol/limits.ts";
import { chunkSpans } from "../../protocol/spans.ts";
import { isKeptInLog } from "../common/chunk_id.ts";
import type { Manifest } from "../common/manifest.ts";
import type { Clock } from "../env/env.ts";
import type { Membership } from "./membership.ts";

/**
 * Smallest read offered a direct route: below it, one round trip to rank 0 (which may have the
 * bytes cached) costs less than a second one to a node.
 */
export const DIRECT_READ_BYTES_MIN = CHUNK_SIZE_BYTES;

/** Signs direct routes for reads (see the module's description). */
export class DirectRoutes {
  #membership: Membership;
  #key: Uint8Array;
  #clock: Pick<Clock, "now">;

  constructor(parts: { membership: Membership; key: Uint8Array; clock: Pick<Clock, "now"> }) {
    this.#membership = parts.membership;
    this.#key = parts.key;
    this.#clock = parts.clock;
  }

  /** A route for reading bytes `start` to `end` of `m` from the nodes, or undefined. */
  routeOf(m: Manifest, start: number, end: number): DirectRoute | undefined {
    if (end - start < DIRECT_READ_BYTES_MIN) return undefined;
    const nodes: Record<string, string> = {};
    for (const { index } of chunkSpans(m.chunks, start, end)) {
      const chunk = m.chunks[index];
      if (isKeptInLog(chunk.id, chunk.size)) return undefined;
      let reachable = false;
      for (const rank of chunk.ranks) {
        const address = this.#membership.dataPortOf(rank);
        if (address === undefined || this.#membership.isDown(rank)) continue;
        nodes[rank] = address;
        reachable = true;
      }
      if (!reachable) return undefined;
    }
    const runs = runsOf(m.chunks.map((c) => c.id), m.chunks.map((c) => c.size));
    if (runs === undefined || runs.length > ROUTE_RUNS_MAX) return undefined;
    const blobs = [...new Set(runs.map((run) => run.blob))];
    if (blobs.length > GRANT_BLOBS_MAX) return undefined;
    const grant = signGrant(this.#key, blobs, this.#clock.now() + grantLifeMs(end - start));
    return { runs, nodes, grant };
  }
}
