/**
 * The remote data nodes rank 0 knows, kept in its data directory (`CLUSTER_FILE`): the cluster's
 * id, and each node's id, rank and zone. A returning node gets its rank back from it, and a
 * restarted rank 0 waits for every node in it before it rebuilds its index.
 *
 * @module
 */

import { join } from "node:path";
import { DfsError } from "../../protocol/errors.ts";
import { ID_PATTERN, type KnownNode, newId } from "../common/join.ts";
import { readJsonFile, writeFileDurably } from "../env/durable.ts";
import type { FileSystem } from "../env/env.ts";

/** The file in the data directory that holds the cluster id and the remote nodes. */
export const CLUSTER_FILE = "cluster.json";

/** The cluster's id and its remote nodes, as stored. */
export class NodeTable {
  readonly clusterId: string;
  #nodes: KnownNode[];
  #forgotten: KnownNode[];
  #path: string;
  #fs: FileSystem;
  #saving: Promise<void> = Promise.resolve();

  private constructor(
    path: string,
    fs: FileSystem,
    clusterId: string,
    tables: { nodes: KnownNode[]; forgotten: KnownNode[] },
  ) {
    this.#path = path;
    this.#fs = fs;
    this.clusterId = clusterId;
    this.#nodes = tables.nodes;
    this.#forgotten = tables.forgotten;
  }

  /**
   * Reads the table of `dataDir`, or makes a new cluster id (written durably) in a directory
   * without one.
   *
   * @throws {DfsError} `CORRUPTED` if the file cannot be read as a table.
   */
  static async open(dataDir: string, fs: FileSystem): Promise<NodeTable> {
    const path = join(dataDir, CLUSTER_FILE);
    let stored: unknown;
    try {
      stored = await readJsonFile(fs, path);
    } catch (error) {
      throw new DfsError("CORRUPTED", `Cannot read ${path}: ${(error as Error).message}`);
    }
    if (stored === undefined) {
      const table = new NodeTable(path, fs, newId(), { nodes: [], forgotten: [] });
      await table.#save();
      return table;
    }
    const { clusterId, nodes, forgotten = [] } = stored as {
      clusterId?: unknown;
      nodes?: unknown;
      forgotten?: unknown;
    };
    if (
      typeof clusterId !== "string" || !ID_PATTERN.test(clusterId) || !Array.isArray(nodes) ||
      !nodes.every(isKnownNode) || !Array.isArray(forgotten) ||
      !forgotten.every(isKnownNode)
    ) {
      throw new DfsError("CORRUPTED", `Cannot read ${path}: it is not a dfs cluster file`);
    }
    return new NodeTable(path, fs, clusterId, { nodes, forgotten });
  }

  /** The remote nodes, in rank order. */
  get nodes(): readonly KnownNode[] {
    return this.#nodes;
  }

  /** The nodes forgotten (refused if they come back; their ranks are not given again). */
  get forgotten(): readonly KnownNode[] {
    return this.#forgotten;
  }

  /**
   * Forgets the remote node of `rank` durably: rank 0 no longer waits for it, what it held counts
   * as gone (re-replicated from other replicas), and it is refused if it comes back. Returns its
   * id.
   *
   * @throws {DfsError} `INVALID_REQUEST` if no remote node has that rank.
   */
  async forget(rank: number): Promise<string> {
    const node = this.#nodes.find((n) => n.rank === rank);
    if (!node) {
      const known = this.#nodes.map((n) => n.rank).join(", ") || "none";
      throw new DfsError(
        "INVALID_REQUEST",
        `--forget-node ${rank}: no remote data node has rank ${rank} (remote ranks: ${known})`,
      );
    }
    const nodes = this.#nodes.filter((n) => n !== node);
    const forgotten = [...this.#forgotten, node];
    await this.#save(nodes, forgotten);
    this.#nodes = nodes;
    this.#forgotten = forgotten;
    return node.nodeId;
  }

  /**
   * Records durably that everything the node of `rank` held was copied elsewhere (`drained`), or
   * that it is back; nothing if it is not a remote node or already says so.
   */
  async setDrained(rank: number, drained: boolean): Promise<void> {
    const node = this.#nodes.find((n) => n.rank === rank);
    if (node === undefined || (node.drained === true) === drained) return;
    const { drained: _, ...rest } = node;
    await this.remember(drained ? { ...rest, drained } : rest);
  }

  /**
   * Records a node (new, or with a new zone) durably; the table changes only once the file has.
   * Saves run one at a time.
   */
  remember(node: KnownNode): Promise<void> {
    const done = this.#saving.then(async () => {
      const others = this.#nodes.filter((n) => n.nodeId !== node.nodeId);
      const nodes = [...others, node].sort((a, b) => a.rank - b.rank);
      await this.#save(nodes);
      this.#nodes = nodes;
    });
    this.#saving = done.catch(() => {});
    return done;
  }

  async #save(
    nodes: readonly KnownNode[] = this.#nodes,
    forgotten: readonly KnownNode[] = this.#forgotten,
  ): Promise<void> {
    const text = JSON.stringify({ clusterId: this.clusterId, nodes, forgotten }, null, 2);
    await writeFileDurably(this.#fs, this.#path, new TextEncoder().encode(`${text}\n`));
  }
}

function isKnownNode(value: unknown): value is KnownNode {
  const n = value as Partial<KnownNode>;
  return typeof n === "object" && n !== null && typeof n.nodeId === "string" &&
    ID_PATTERN.test(n.nodeId) && Number.isSafeInteger(n.rank) && n.rank! > 0 &&
    typeof n.zone === "string" && (n.drained === undefined || typeof n.drained === "boolean");
}
