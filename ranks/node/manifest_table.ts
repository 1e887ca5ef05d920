/**
 * A data node's manifests in memory, rebuilt from its log and kept in step with every record it
 * appends. Pure: no I/O.
 *
 * @module
 */

import { type ListingPage, listingPageOf, type Manifest } from "../common/manifest.ts";
import { ManifestColumns } from "../common/manifest_columns.ts";
import { NODE_LIST_ENTRIES_MAX } from "../common/node_protocol.ts";
import { DfsError } from "../../protocol/errors.ts";
import { composeTombstones, type LogRecord, renamedFrom } from "./log_record.ts";

/**
 * A data node's manifests, rebuilt from its log. Several versions of a name may coexist until the
 * older ones are released (a reader may still be reading them): the newest of each name is held
 * in columns (`ManifestColumns`, ~125 bytes a small file instead of ~500 as objects), the others,
 * few and short-lived, as objects beside them. Manifests handed out are copies.
 */
export class ManifestTable {
  /** Each name's newest version held. */
  #newest = new ManifestColumns();
  /** Older versions of a name still held (until released), if any. */
  #older = new Map<string, Manifest[]>();

  apply(record: LogRecord): void {
    switch (record.kind) {
      case "commit":
        return this.#add(record.manifest);
      case "release":
        return this.#remove(record.name, record.version);
      case "rename":
        this.#remove(renamedFrom(record), record.fromVersion);
        if (record.tombstone) this.#add(record.tombstone);
        return this.#add(record.manifest);
      case "compose":
        for (const source of record.sources) this.#remove(source.name, source.version);
        for (const tombstone of composeTombstones(record)) this.#add(tombstone);
        return this.#add(record.manifest);
      case "data":
        return; // bytes, not metadata: the data node tracks where they are
    }
  }

  #add(manifest: Manifest): void {
    // The usual case, a name not held yet, takes one lookup.
    if (this.#newest.insert(manifest) >= 0) return;
    const { name, version } = manifest;
    const newest = this.#newest.versionOf(name)!;
    if (newest === version) return void this.#newest.set(manifest);
    if (version > newest) {
      this.#keepOlder(this.#newest.get(name)!); // already a copy
      return void this.#newest.set(manifest);
    }
    this.#keepOlder(structuredClone(manifest));
  }

  /** Holds `m` (which it takes) among its name's older versions, replacing the same version. */
  #keepOlder(m: Manifest): void {
    const versions = (this.#older.get(m.name) ?? []).filter((o) => o.version !== m.version);
    versions.push(m);
    this.#older.set(m.name, versions);
  }

  #remove(name: string, version: number): void {
    if (this.#newest.versionOf(name) === version) {
      this.#newest.delete(name);
      const older = this.#older.get(name);
      if (older === undefined) return;
      // The highest older version becomes the newest.
      const next = older.reduce((a, b) => (b.version > a.version ? b : a));
      this.#dropOlder(name, next.version);
      this.#newest.set(next);
      return;
    }
    this.#dropOlder(name, version);
  }

  #dropOlder(name: string, version: number): void {
    const older = this.#older.get(name);
    if (older === undefined) return;
    const left = older.filter((m) => m.version !== version);
    if (left.length === 0) this.#older.delete(name);
    else this.#older.set(name, left);
  }

  /** The changes that take back `record` (applied already), should its append fail. */
  undoOf(record: LogRecord): LogRecord[] {
    const releaseOf = (m: { name: string; version: number }): LogRecord => ({
      kind: "release",
      name: m.name,
      version: m.version,
    });
    switch (record.kind) {
      case "commit":
        return [releaseOf(record.manifest)];
      case "release": {
        const released = this.get(record.name, record.version);
        return released ? [{ kind: "commit", manifest: released }] : [];
      }
      case "rename": {
        const renamed = this.get(renamedFrom(record), record.fromVersion);
        const undo = [releaseOf(record.manifest)];
        if (record.tombstone) undo.push(releaseOf(record.tombstone));
        return renamed ? [...undo, { kind: "commit", manifest: renamed }] : undo;
      }
      case "compose": {
        const undo = [record.manifest, ...composeTombstones(record)].map(releaseOf);
        for (const source of record.sources) {
          const composed = this.get(source.name, source.version);
          if (composed) undo.push({ kind: "commit", manifest: composed });
        }
        return undo;
      }
      case "data":
        return [];
    }
  }

  /** Version `version` of `name`, as a copy; undefined if not held. */
  get(name: string, version: number): Manifest | undefined {
    if (this.#newest.versionOf(name) === version) return this.#newest.get(name);
    const m = this.#older.get(name)?.find((o) => o.version === version);
    return m && structuredClone(m);
  }

  /** Every manifest held, all versions, as copies. */
  *all(): Iterable<Manifest> {
    yield* this.#newest.values();
    for (const versions of this.#older.values()) {
      for (const m of versions) yield structuredClone(m);
    }
  }

  /**
   * A page of the newest version held of each name starting with `prefix`, as list entries with
   * versions, in UTF-16 code unit order after `after` (exclusive), at most `limit`, and whether
   * more remain; tombstones included (with `deleted`), so that merging hides older versions held
   * elsewhere. The first page sorts every name; later ones cost a page (`ManifestColumns`).
   *
   * @throws {DfsError} `INVALID_REQUEST` for a limit that is not 1 to `NODE_LIST_ENTRIES_MAX`.
   */
  page(prefix: string, options: { after?: string; limit: number }): ListingPage {
    const { after, limit } = options;
    if (!Number.isInteger(limit) || limit < 1 || limit > NODE_LIST_ENTRIES_MAX) {
      throw new DfsError(
        "INVALID_REQUEST",
        `Cannot list ${limit} names at once: a page is 1 to ${NODE_LIST_ENTRIES_MAX} names`,
      );
    }
    return listingPageOf((add) =>
      this.#newest.forEachSummaryInOrder(add, { prefix, after, limit })
    );
  }
}
