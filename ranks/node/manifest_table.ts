/**
 * A data node's manifests in memory, rebuilt from its log and kept in step with every record it
 * appends. Pure: no I/O.
 *
 * @module
 */

import {
  type Listing,
  type Manifest,
  replicasOf,
  toListing,
  type VersionedEntry,
} from "../common/manifest.ts";
import { composeTombstones, type LogRecord, renamedFrom } from "./log_record.ts";

/** A data node's manifests, rebuilt from its log. Several versions of a name may coexist until the
 * older ones are released (a reader may still be reading them). */
export class ManifestTable {
  /**
   * Each name's versions: the manifest itself when there is one (nearly always; a Map per name
   * cost ~200 bytes a file), an array of them while several coexist.
   */
  #byName = new Map<string, Manifest | Manifest[]>();

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
    const held = this.#byName.get(manifest.name);
    if (held === undefined || (!Array.isArray(held) && held.version === manifest.version)) {
      this.#byName.set(manifest.name, manifest);
      return;
    }
    const versions = Array.isArray(held) ? held : [held];
    const at = versions.findIndex((m) => m.version === manifest.version);
    if (at >= 0) versions[at] = manifest;
    else versions.push(manifest);
    this.#byName.set(manifest.name, versions);
  }

  #remove(name: string, version: number): void {
    const held = this.#byName.get(name);
    if (held === undefined) return;
    if (!Array.isArray(held)) {
      if (held.version === version) this.#byName.delete(name);
      return;
    }
    const left = held.filter((m) => m.version !== version);
    if (left.length === 0) this.#byName.delete(name);
    else this.#byName.set(name, left.length === 1 ? left[0] : left);
  }

  get(name: string, version: number): Manifest | undefined {
    const held = this.#byName.get(name);
    if (held === undefined) return undefined;
    if (!Array.isArray(held)) return held.version === version ? held : undefined;
    return held.find((m) => m.version === version);
  }

  /** Every manifest held, all versions. */
  *all(): Iterable<Manifest> {
    for (const held of this.#byName.values()) {
      if (Array.isArray(held)) yield* held;
      else yield held;
    }
  }

  /**
   * The newest version held of each name starting with `prefix`, as list entries with versions;
   * tombstones included (with `deleted`), so that merging hides older versions held elsewhere.
   */
  latest(prefix: string): Listing {
    const out: VersionedEntry[] = [];
    for (const [name, held] of this.#byName) {
      if (!name.startsWith(prefix)) continue;
      let best: Manifest | undefined;
      for (const m of Array.isArray(held) ? held : [held]) {
        if (!best || m.version > best.version) best = m;
      }
      if (!best) continue;
      const { size, modified, version } = best;
      const entry: VersionedEntry = { name, size, modified, version, replicas: replicasOf(best) };
      if (best.deleted) entry.deleted = true;
      out.push(entry);
    }
    return toListing(out);
  }
}
