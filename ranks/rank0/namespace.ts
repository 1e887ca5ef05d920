/**
 * The namespace: what makes a version current. Commits of uploads, removals and renames take a
 * per-name lock, take the next version, write one record to the data nodes, then switch the index
 * in one step; what they replace is retired (released once no reader has it).
 *
 * @module
 */

import { DfsError } from "../../protocol/errors.ts";
import type { FileMeta } from "../../protocol/messages.ts";
import { fileMetaOf, holdersOf, type Manifest, tombstoneOf } from "../common/manifest.ts";
import { forEachParallel } from "../common/parallel.ts";
import type { Clock, Log } from "../env/env.ts";
import type { FileIndex } from "./file_index.ts";
import type { NodeClient } from "./node_client.ts";
import type { Releases } from "./releases.ts";

/** Files `removePrefix` removes at a time. */
export const REMOVE_PARALLEL_MAX = 16;
/**
 * Names `removePrefix` takes from the index at a time (`FileIndex.namePages`), not every name
 * under the prefix at once (with an empty prefix, all ten million in one go): 256 removals per
 * lane between pages.
 */
export const REMOVE_PAGE_FILES = 4096;

/** A manifest before its commit gives it a version and a time. */
export type Draft = Omit<Manifest, "version" | "modified">;

/** Name-level changes, one name at a time. */
export class Namespace {
  readonly index: FileIndex;
  #nodes: NodeClient;
  #zoneOf = (rank: number) => this.#nodes.membership.zoneOf(rank);
  #releases: Releases;
  #clock: Clock;
  #log: Log;
  /** Per-name queues: metadata changes of one name happen one at a time. */
  #locks = new Map<string, Promise<void>>();

  constructor(
    parts: { index: FileIndex; nodes: NodeClient; releases: Releases; clock: Clock; log: Log },
  ) {
    this.index = parts.index;
    this.#nodes = parts.nodes;
    this.#releases = parts.releases;
    this.#clock = parts.clock;
    this.#log = parts.log;
  }

  /** @throws {DfsError} `NOT_FOUND` if no version of `name` is current. */
  lookup(name: string): Manifest {
    const m = this.index.get(name);
    if (!m) throw new DfsError("NOT_FOUND", `Cannot find "${name}": file does not exist`);
    return m;
  }

  /**
   * Commits an upload whose chunks are all written: every holder makes its chunks durable and
   * appends the manifest, then the index installs it. Committed once any holder has it durably
   * (recovery would pick it up; a holder whose commit failed is repaired like a damaged replica).
   * With `data`, the manifest's one chunk travels with it (a copy to each holder). With `ifAbsent`,
   * a current version of the name fails it (`ALREADY_EXISTS`), decided under the name's lock.
   */
  commit(draft: Draft, data?: Uint8Array, options: { ifAbsent?: boolean } = {}): Promise<FileMeta> {
    return this.exclusive([draft.name], async () => {
      if (options.ifAbsent && this.index.get(draft.name)) {
        throw new DfsError("ALREADY_EXISTS", `Cannot create "${draft.name}": it exists`);
      }
      const m: Manifest = {
        ...draft,
        version: this.index.nextVersion(),
        modified: this.#clock.now(),
      };
      const holders = [...holdersOf(m)];
      const results = await Promise.allSettled(
        holders.map((rank) => this.#nodes.commit(rank, m, data)),
      );
      const failed = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failed.length === holders.length) {
        throw new DfsError(
          "UNAVAILABLE",
          `Cannot commit "${m.name}": no data node stored its metadata`,
          { cause: failed[0].reason },
        );
      }
      this.#install(m);
      return fileMetaOf(m, this.#zoneOf);
    });
  }

  /**
   * Removes `name`: a tombstone goes to every data node, then the file's chunks are released once
   * no reader has it open. A later restart never brings it back.
   *
   * @throws {DfsError} `NOT_FOUND` if there is no such file.
   */
  remove(name: string): Promise<void> {
    return this.exclusive([name], async () => {
      this.lookup(name);
      const tombstone = tombstoneOf(name, this.index.nextVersion(), this.#clock.now());
      await this.onEveryNode(`remove "${name}"`, (rank) => this.#nodes.commit(rank, tombstone));
      this.#install(tombstone);
    });
  }

  /**
   * Removes every file whose name starts with `prefix`, a page of `REMOVE_PAGE_FILES` names at a
   * time (`FileIndex.namePages`): each file present throughout, once; returns how many.
   */
  async removePrefix(prefix: string): Promise<number> {
    let removed = 0;
    for (const names of this.index.namePages(REMOVE_PAGE_FILES, prefix)) {
      await forEachParallel(names, REMOVE_PARALLEL_MAX, async (name) => {
        try {
          await this.remove(name);
          removed++;
        } catch (error) {
          if (!(error instanceof DfsError && error.code === "NOT_FOUND")) throw error;
        }
      });
    }
    return removed;
  }

  /**
   * Renames `from` to `to` at once: one record on every data node moves the chunks to the new name
   * and leaves a tombstone on the old one, so no reader ever sees both names or neither.
   *
   * @throws {DfsError} `NOT_FOUND` for a missing `from`; `ALREADY_EXISTS` if `to` exists and
   *   `force` is not set (with it, the old `to` is replaced and released).
   */
  rename(from: string, to: string, options: { force?: boolean } = {}): Promise<FileMeta> {
    return this.exclusive([from, to], async () => {
      const m = this.lookup(from);
      if (from === to) return fileMetaOf(m, this.#zoneOf);
      if (this.index.get(to) && !options.force) {
        throw new DfsError(
          "ALREADY_EXISTS",
          `Cannot move "${from}" to "${to}": "${to}" exists (--force replaces it)`,
        );
      }
      const version = this.index.nextVersion();
      const moved: Manifest = { ...m, name: to, version };
      const tombstone = tombstoneOf(from, version, this.#clock.now());
      const change = { fromVersion: m.version, tombstone, manifest: moved };
      await this.onEveryNode(`move "${from}"`, (rank) => this.#nodes.rename(rank, change));
      this.index.install(tombstone); // `m` is not released: its chunks now belong to `moved`
      this.#install(moved);
      return fileMetaOf(moved, this.#zoneOf);
    });
  }

  /**
   * Makes `draft.name` a new file of the `sources`' chunks, in order, without copying a byte: one
   * record on every data node gives it their chunks and leaves a tombstone on each source's name,
   * so no reader ever sees a chunk in both. Chunks of no bytes are left out. Nothing is released
   * but the file `draft.name` replaces.
   *
   * @throws {DfsError} `VERSION_MISMATCH` if a source is no longer the current version of its
   *   name (overwritten or removed meanwhile); `INVALID_REQUEST` if `draft.name` is a source.
   */
  compose(
    draft: Omit<Draft, "chunks" | "size">,
    sources: readonly { name: string; version: number }[],
  ): Promise<FileMeta> {
    const names = sources.map((source) => source.name);
    return this.exclusive([draft.name, ...names], async () => {
      if (names.includes(draft.name) || new Set(names).size !== names.length) {
        throw new DfsError(
          "INVALID_REQUEST",
          `Cannot compose "${draft.name}": a file is named twice, or as its own source`,
        );
      }
      const parts = sources.map((source) => {
        const m = this.index.get(source.name);
        if (m?.version !== source.version) {
          throw new DfsError(
            "VERSION_MISMATCH",
            `Cannot compose "${draft.name}": version ${source.version} of "${source.name}" ` +
              "is no longer current",
          );
        }
        return m;
      });
      const chunks = parts.flatMap((m) => m.chunks.filter((c) => c.size > 0));
      const version = this.index.nextVersion();
      const m: Manifest = {
        ...draft,
        size: chunks.reduce((sum, c) => sum + c.size, 0),
        chunks: chunks.map((c) => ({ ...c, ranks: [...c.ranks] })),
        version,
        modified: this.#clock.now(),
      };
      if (m.chunks.length === 0) {
        throw new DfsError("INVALID_REQUEST", `Cannot compose "${m.name}" of no bytes`);
      }
      const change = {
        sources: sources.map(({ name, version }) => ({ name, version })),
        manifest: m,
      };
      await this.onEveryNode(`compose "${m.name}"`, (rank) => this.#nodes.compose(rank, change));
      // The sources are not released: their chunks now belong to `m`.
      for (const part of parts) this.index.install(tombstoneOf(part.name, version, m.modified));
      this.#install(m);
      return fileMetaOf(m, this.#zoneOf);
    });
  }

  /**
   * Replaces the current version of a file with `next`, the same data placed anew (re-replication):
   * one rename record per node; nothing is released.
   */
  async replace(current: Manifest, next: Manifest): Promise<void> {
    const change = { fromVersion: current.version, manifest: next };
    await this.onEveryNode(
      `re-replicate "${current.name}"`,
      (rank) => this.#nodes.rename(rank, change),
    );
    this.index.install(next);
  }

  /**
   * Runs `work` once every earlier metadata change of these names is done. All names are queued at
   * once, in one synchronous step, so two changes never wait for each other in a cycle.
   */
  exclusive<T>(names: string[], work: () => Promise<T>): Promise<T> {
    if (names.length === 1) return this.#exclusiveOne(names[0], work);
    return this.#exclusiveMany(names, work);
  }

  async #exclusiveMany<T>(names: string[], work: () => Promise<T>): Promise<T> {
    const keys = [...new Set(names)];
    const earlier = keys.map((key) => this.#locks.get(key));
    const done = Promise.withResolvers<void>();
    for (const key of keys) this.#locks.set(key, done.promise);
    try {
      await Promise.all(earlier);
      return await work();
    } finally {
      done.resolve();
      for (const key of keys) if (this.#locks.get(key) === done.promise) this.#locks.delete(key);
    }
  }

  /**
   * `exclusive` of one name, as every put, remove and repair is: the same queue without the set,
   * arrays and `Promise.all` of several names (rank 0 allocates ~35 KB a small put; what lives
   * across two scavenges grows the old generation).
   */
  async #exclusiveOne<T>(name: string, work: () => Promise<T>): Promise<T> {
    const earlier = this.#locks.get(name);
    const done = Promise.withResolvers<void>();
    this.#locks.set(name, done.promise);
    try {
      if (earlier) await earlier;
      return await work();
    } finally {
      done.resolve();
      if (this.#locks.get(name) === done.promise) this.#locks.delete(name);
    }
  }

  /**
   * Sends one record to every data node that is up; fine if at least one stored it durably. A node
   * that is down gets nothing: its reconcile brings it in line with the index when it is back.
   */
  async onEveryNode(what: string, send: (rank: number) => Promise<void>): Promise<void> {
    const membership = this.#nodes.membership;
    const ranks = this.#nodes.dataRanks.filter((rank) => !membership.isDown(rank));
    const results = await Promise.allSettled(ranks.map(send));
    const failed = results.flatMap((r, i) => r.status === "rejected" ? [[ranks[i], r.reason]] : []);
    if (failed.length === results.length) {
      throw new DfsError("UNAVAILABLE", `Cannot ${what}: no data node stored it`, {
        cause: failed[0]?.[1],
      });
    }
    for (const [rank, reason] of failed) {
      this.#log.error(`dfs: rank ${rank} could not ${what}: ${(reason as Error).message}`);
    }
  }

  #install(m: Manifest): void {
    const { superseded } = this.index.install(m);
    if (superseded) this.#releases.retire(superseded);
  }
}
