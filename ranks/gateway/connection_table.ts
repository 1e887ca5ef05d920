/**
 * Who holds the gateway's connections: the open ones by client address, the rule that makes room
 * for a new one (`--connections-max`, `--connections-per-address-max`: close the idlest
 * connection with no request in flight, one that has not finished its handshake first, and refuse
 * only when every candidate is busy), and each address's share of the uploads in progress
 * (`--uploads-per-address-max`). Pure: the listener closes what it says to close.
 *
 * @module
 */

import { DfsError } from "../../protocol/errors.ts";
import { Semaphore } from "../common/semaphore.ts";
import type { ServerLimits } from "../config.ts";

/** What the table needs to know of an open connection to pick one to close. */
export interface Occupant {
  /** Whether it finished the handshake (and the shared secret's challenge, if any). */
  readonly greeted: boolean;
  /** Whether it has a request in flight: an upload, a put waiting for its share, a call. */
  readonly busy: boolean;
  /** When it last read a frame (or was accepted), on the monotonic clock, in ms. */
  readonly activeAt: number;
}

/**
 * What to do with a new connection: serve it, closing `evict.connection` first (telling its
 * client `evict.reason`) if given; or refuse it with `error`.
 */
export type Admission<T> =
  | { admit: true; evict?: { connection: T; reason: DfsError } }
  | { admit: false; error: DfsError };

/** One client address's connections and its share of the uploads in progress. */
interface AddressEntry<T> {
  readonly connections: Set<T>;
  readonly uploads: Semaphore;
}

/** The open connections, by address; see the module doc. */
export class ConnectionTable<T extends Occupant> {
  #limits: Pick<
    ServerLimits,
    "connectionsMax" | "connectionsPerAddressMax" | "uploadsPerAddressMax"
  >;
  #byAddress = new Map<string, AddressEntry<T>>();
  #addressOf = new Map<T, string>();

  constructor(
    limits: Pick<
      ServerLimits,
      "connectionsMax" | "connectionsPerAddressMax" | "uploadsPerAddressMax"
    >,
  ) {
    this.#limits = limits;
  }

  /** Open connections. */
  get size(): number {
    return this.#addressOf.size;
  }

  /** Open connections from `address`. */
  countOf(address: string): number {
    return this.#byAddress.get(address)?.connections.size ?? 0;
  }

  /**
   * Decides for a new connection from `address` (it is not added): the address's own idlest
   * connection makes room when the address is at its limit, else the server's idlest when the
   * server is at its limit. Refuses with `UNAVAILABLE` when no candidate is free of requests.
   */
  admit(address: string): Admission<T> {
    const { connectionsMax, connectionsPerAddressMax } = this.#limits;
    const own = this.#byAddress.get(address)?.connections;
    if (own && own.size >= connectionsPerAddressMax) {
      const limit = `client address ${address} is at its limit of ${connectionsPerAddressMax} ` +
        "connections";
      return this.#makeRoom(own, limit);
    }
    if (this.size >= connectionsMax) {
      return this.#makeRoom(
        this.#addressOf.keys(),
        `server is at its limit of ${connectionsMax} connections`,
      );
    }
    return { admit: true };
  }

  /**
   * Adds the connection `open` makes from `address`, given the address's upload share; it holds a
   * place until `delete`. Returns it.
   */
  add(address: string, open: (addressUploadShare: Semaphore) => T): T {
    let entry = this.#byAddress.get(address);
    if (!entry) {
      entry = {
        connections: new Set(),
        uploads: new Semaphore(this.#limits.uploadsPerAddressMax),
      };
      this.#byAddress.set(address, entry);
    }
    const occupant = open(entry.uploads);
    entry.connections.add(occupant);
    this.#addressOf.set(occupant, address);
    return occupant;
  }

  /** Removes a connection (again: nothing); an address with none left is forgotten. */
  delete(occupant: T): void {
    const address = this.#addressOf.get(occupant);
    if (address === undefined) return;
    this.#addressOf.delete(occupant);
    const entry = this.#byAddress.get(address)!;
    entry.connections.delete(occupant);
    // Its connections are gone, and with them every upload that held a slot of its share.
    if (entry.connections.size === 0) this.#byAddress.delete(address);
  }

  #makeRoom(candidates: Iterable<T>, limit: string): Admission<T> {
    const connection = idlest(candidates);
    if (!connection) {
      return {
        admit: false,
        error: new DfsError("UNAVAILABLE", `${capitalize(limit)}, each with a request in flight`),
      };
    }
    const reason = new DfsError(
      "UNAVAILABLE",
      `Connection closed to make room for a new one: ${limit} and this one was the idlest`,
    );
    return { admit: true, evict: { connection, reason } };
  }
}

/**
 * The connection to close first among `candidates`: none with a request in flight; one that has
 * not finished its handshake before one that has; then the one quiet the longest.
 */
export function idlest<T extends Occupant>(candidates: Iterable<T>): T | undefined {
  let best: T | undefined;
  for (const c of candidates) {
    if (c.busy) continue;
    if (
      best === undefined ||
      (c.greeted === best.greeted ? c.activeAt < best.activeAt : !c.greeted)
    ) {
      best = c;
    }
  }
  return best;
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
