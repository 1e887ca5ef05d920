/**
 * The remote data nodes of a running cluster, on rank 0: which are connected, and taking in those
 * that join over the node port, one at a time: before start-up recovery (they are scanned with the
 * others) and after it (each is reconciled, as a restarted Worker is, before it is up).
 *
 * @module
 */

import type { Comm } from "../comm/comm.ts";
import type { RoutedTransport } from "../comm/routed_transport.ts";
import type { TcpTransport } from "../comm/tcp_transport.ts";
import type { KnownNode } from "../common/join.ts";
import type { Clock, Log } from "../env/env.ts";
import type { NodeInfo } from "./membership.ts";
import type { JoinedNode } from "./node_port.ts";
import type { NodeTable } from "./node_table.ts";
import type { DfsStore } from "./store.ts";
import { awaitReady } from "./supervisor.ts";

/** While start-up waits for remote nodes, it says which every this often. */
export const NODE_WAIT_REPORT_MS = 10_000;

/**
 * The remote data nodes of a running cluster: which are connected, taking in those that join
 * (one at a time), before start-up recovery and after it.
 */
export class Remotes {
  comm: Comm | undefined;
  store: DfsStore | undefined;
  #table: NodeTable;
  #tcp: TcpTransport;
  #transport: RoutedTransport;
  #log: Log;
  /** Node ids between a welcome and being taken in. */
  #reserved = new Set<string>();
  /** Ranks connected and ready before start-up recovery. */
  #present = new Set<number>();
  #started = false;
  #queue: Promise<void> = Promise.resolve();
  #changed: (() => void) | undefined;

  constructor(parts: {
    table: NodeTable;
    tcp: TcpTransport;
    transport: RoutedTransport;
    log: Log;
  }) {
    this.#table = parts.table;
    this.#tcp = parts.tcp;
    this.#transport = parts.transport;
    this.#log = parts.log;
  }

  isConnected(nodeId: string): boolean {
    if (this.#reserved.has(nodeId)) return true;
    const known = this.#table.nodes.find((n) => n.nodeId === nodeId);
    return known !== undefined && this.#tcp.hasLink(known.rank);
  }

  /** Records the node (durably, if new or its zone changed) and holds its id until taken in. */
  async reserve(node: KnownNode): Promise<void> {
    this.#reserved.add(node.nodeId);
    const known = this.#table.nodes.find((n) => n.nodeId === node.nodeId);
    // A drained node that is back is no longer drained: it holds data again once reconciled.
    if (known?.rank === node.rank && known.zone === node.zone && !known.drained) return;
    try {
      await this.#table.remember(node);
    } catch (error) {
      this.#reserved.delete(node.nodeId);
      throw error;
    }
  }

  /** Takes a welcomed node in, after those before it. */
  admit(node: JoinedNode): void {
    this.#queue = this.#queue.then(() => this.#takeIn(node));
  }

  /** A remote node's link failed before start-up recovery: it is waited for again. */
  lostBeforeStart(rank: number, error: unknown): void {
    if (this.#present.delete(rank)) {
      this.#log.error(`dfs: rank ${rank} went away before start-up finished: ${String(error)}`);
      this.#changed?.();
    }
  }

  /**
   * Resolves once every remote node of the table is connected and ready, except those drained
   * (they hold nothing the store needs: they stay down until they rejoin).
   */
  async allPresent(env: { clock: Clock }): Promise<void> {
    const drained = this.#table.nodes.filter((n) => n.drained && !this.#present.has(n.rank));
    if (drained.length > 0) {
      const names = drained.map((n) => `rank ${n.rank}`).join(", ");
      this.#log.error(
        `dfs: not waiting for ${names}: everything it held was copied to other nodes while it ` +
          "was away; it is reconciled if it comes back",
      );
    }
    while (true) {
      const away = this.#table.nodes.filter((n) => !n.drained && !this.#present.has(n.rank));
      if (away.length === 0) return;
      const names = away.map((n) => `rank ${n.rank} (zone ${n.zone})`).join(", ");
      this.#log.error(`dfs: waiting for remote data nodes before recovery: ${names}`);
      await new Promise<void>((resolve) => {
        this.#changed = resolve;
        env.clock.setTimeout(resolve, NODE_WAIT_REPORT_MS);
      });
      this.#changed = undefined;
    }
  }

  /** Start-up recovery is done: the nodes present were part of it and are up. */
  started(): void {
    this.#started = true;
  }

  async #takeIn(node: JoinedNode): Promise<void> {
    const { rank, join, address } = node;
    const comm = this.comm!;
    const store = this.store!;
    const membership = store.nodes.membership;
    try {
      this.#tcp.attach(rank, node.conn, { reader: node.reader });
      this.#transport.route(rank, this.#tcp);
      this.#reserved.delete(join.nodeId);
      await awaitReady(comm, rank);
      const info: NodeInfo = { kind: "remote", zone: join.zone, address };
      if (join.data !== undefined) info.dataAddress = join.data;
      if (join.dataTls) info.dataTls = true;
      if (membership.infoOf(rank) === undefined) store.addNode(rank, info);
      else membership.setInfo(rank, info);
      if (!this.#started) {
        // Start-up recovery has yet to run: it will scan this node with the others.
        membership.markUp(rank);
        this.#present.add(rank);
        this.#log.error(
          `dfs: rank ${rank} (${join.host}, zone ${join.zone}) joined from ${address}`,
        );
        this.#changed?.();
        return;
      }
      membership.markJoining(rank, "reconciling", 0);
      const { dropped, restored, fast } = await store.recovery.reconcile(rank);
      store.recovery.markUp(rank);
      const how = fast ? ", checked against its summary" : "";
      this.#log.error(
        `dfs: rank ${rank} (${join.host}, zone ${join.zone}) joined from ${address} ` +
          `(${dropped} stale chunks dropped, ${restored} restored${how})`,
      );
    } catch (error) {
      this.#reserved.delete(join.nodeId);
      const why = error instanceof Error ? error.message : String(error);
      this.#log.error(`dfs: cannot take in rank ${rank} from ${address}: ${why}`);
      this.#tcp.detach(rank);
      comm.failPeer(rank, why);
      if (membership.infoOf(rank) !== undefined && membership.isDown(rank)) {
        membership.restartFailed(rank, why);
      }
    }
  }
}
