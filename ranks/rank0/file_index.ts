/**
 * Rank 0's index: the committed manifest of every name, tombstones of removed names, and the
 * version counter. Rebuilt at every start from the data nodes' manifests. Pure: no I/O.
 *
 * @module
 */

import type { Manifest } from "../common/manifest.ts";

/** Rank 0's view: the committed manifest of every name, and tombstones of removed names. */
export class FileIndex {
  #files = new Map<string, Manifest>();
  #tombstones = 0;
  #version = 0;

  /** Files present (tombstones not counted). */
  get size(): number {
    return this.#files.size - this.#tombstones;
  }

  /** The current version of `name`; undefined if there is none or it was removed. */
  get(name: string): Manifest | undefined {
    const m = this.#files.get(name);
    return m?.deleted ? undefined : m;
  }

  /** The next version number; versions grow across the whole store, so later commits win. */
  nextVersion(): number {
    return ++this.#version;
  }

  /**
   * Installs a committed manifest unless a higher version of the name is already installed.
   * Returns the manifest no longer current (the previous one, or `m` itself if it lost).
   */
  install(m: Manifest): { installed: boolean; superseded?: Manifest } {
    this.#version = Math.max(this.#version, m.version);
    const current = this.#files.get(m.name);
    if (current && current.version >= m.version) return { installed: false, superseded: m };
    this.#files.set(m.name, m);
    this.#tombstones += (m.deleted ? 1 : 0) - (current?.deleted ? 1 : 0);
    return { installed: true, superseded: current?.deleted ? undefined : current };
  }

  /** Every present file (no tombstones). */
  *values(): Iterable<Manifest> {
    for (const m of this.#files.values()) if (!m.deleted) yield m;
  }
}
