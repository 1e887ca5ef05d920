/**
 * Rank 0's index: the committed manifest of every name, tombstones of removed names, and the
 * version counter. Rebuilt at every start from the data nodes' manifests. Pure: no I/O.
 *
 * The manifests are held in columns (`ManifestColumns`: ~125 bytes a small file instead of ~510 as
 * objects in a Map), so every manifest it gives out is a new copy, equal to the one installed but
 * never the same object. Compare versions, not objects; to change a file, install a new version.
 *
 * @module
 */

import { type ListingPage, listingPageOf, type Manifest } from "../common/manifest.ts";
import { RANKS_MAX } from "../common/node_protocol.ts";
import { ManifestColumns, type ManifestSummary } from "../common/manifest_columns.ts";
import { assert } from "../../protocol/errors.ts";

/** Rank 0's view: the committed manifest of every name, and tombstones of removed names. */
export class FileIndex {
  #files = new ManifestColumns();
  #tombstones = 0;
  #version = 0;
  /** Per rank, chunks installs placed on it or took away (`changesOn()`). */
  #changesOn = new Float64Array(RANKS_MAX);

  /** Files present (tombstones not counted). */
  get size(): number {
    return this.#files.size - this.#tombstones;
  }

  /** A copy of the current version of `name`; undefined if there is none or it was removed. */
  get(name: string): Manifest | undefined {
    const m = this.#files.get(name);
    return m?.deleted ? undefined : m;
  }

  /** The next version number; versions grow across the whole store, so later commits win. */
  nextVersion(): number {
    return ++this.#version;
  }

  /**
   * Takes `files` (which it keeps: the caller lets go of it) as the whole index, in place of what
   * it held: start-up recovery's winners (`planRecovery`), tombstones included if any. The version
   * counter goes past every version in it.
   */
  load(files: ManifestColumns): void {
    let tombstones = 0;
    let version = this.#version;
    files.forEachSummary((summary) => {
      if (summary.deleted) tombstones++;
      version = Math.max(version, summary.version);
    });
    this.#files = files;
    this.#tombstones = tombstones;
    this.#version = version;
  }

  /**
   * Installs (a copy of) a committed manifest unless a higher version of the name is already
   * installed. Returns the manifest no longer current (a copy of the previous one, or `m` itself
   * if it lost).
   */
  install(m: Manifest): { installed: boolean; superseded?: Manifest } {
    this.#version = Math.max(this.#version, m.version);
    const version = this.#files.versionOf(m.name);
    if (version !== undefined && version >= m.version) return { installed: false, superseded: m };
    const current = version === undefined ? undefined : this.#files.get(m.name);
    this.#files.set(m);
    this.#tombstones += (m.deleted ? 1 : 0) - (current?.deleted ? 1 : 0);
    this.#countChanges(m);
    if (current) this.#countChanges(current);
    return { installed: true, superseded: current?.deleted ? undefined : current };
  }

  /**
   * A count that grows with every install placing a chunk on `rank` or taking a file with one
   * there away: what the index says `rank` should hold changed unless this did.
   */
  changesOn(rank: number): number {
    return this.#changesOn[rank] ?? 0;
  }

  /** Counts the ranks of `m`'s chunks in (on every put: no set made). */
  #countChanges(m: Manifest): void {
    for (const c of m.chunks) for (const rank of c.ranks) this.#changesOn[rank]++;
  }

  /**
   * A copy of every present file (no tombstones) whose name starts with `prefix`, made as it is
   * visited: each file present throughout is seen once, as it is then; files installed meanwhile
   * may or may not be. The order is neither the names' nor the installs'.
   */
  *values(prefix = ""): Iterable<Manifest> {
    yield* this.#files.values({ prefix, tombstones: false });
  }

  /** The name of every present file starting with `prefix` (in the order of `values()`). */
  *names(prefix = ""): Iterable<string> {
    yield* this.#files.names({ prefix, tombstones: false });
  }

  /**
   * The names of `names(prefix)` (same order, same promise) in pages of at most `limit`, each
   * made when it is asked for: a walk that awaits between pages holds one page of names, not
   * every name (made in one go, two million names held the thread 0.8 s). A file present
   * throughout is in one page; a file removed before its page is made is not in it; one installed
   * meanwhile may or may not be.
   */
  *namePages(limit: number, prefix = ""): Generator<string[]> {
    assert(Number.isInteger(limit) && limit > 0, `a page of ${limit} names`);
    let page: string[] = [];
    for (const name of this.names(prefix)) {
      page.push(name);
      if (page.length < limit) continue;
      yield page;
      page = [];
    }
    if (page.length > 0) yield page;
  }

  /** Calls `fn` with the summary of every present file starting with `prefix`, making no copy. */
  forEachSummary(fn: (summary: ManifestSummary) => void, prefix = ""): void {
    this.#files.forEachSummary(fn, { prefix, tombstones: false });
  }

  /**
   * Sorts the names for `page()` unless they are, `SORT_STEP_NAMES` at a time, awaiting `giveWay`
   * between steps (`SortedSlots.build`): sorting millions of names in one go takes seconds (~2 us
   * a name), in which rank 0 would answer no client and send no heartbeat. Files installed
   * meanwhile join the order once it is built.
   */
  sortNames(giveWay: () => Promise<void>): Promise<void> {
    return this.#files.sortNames(giveWay);
  }

  /**
   * A page of the names starting with `prefix` in UTF-16 code unit order after `after`
   * (exclusive), at most `limit`, tombstones too (with `deleted`), and whether more remain: what a
   * data node answers `list` with, from the index. The first page sorts every name in one go
   * unless `sortNames()` has (await it first); later ones cost a page, and rank 0 keeps the order
   * (about 5 bytes a name) from then on.
   */
  page(prefix: string, options: { after?: string; limit: number }): ListingPage {
    const visit = { prefix, after: options.after, limit: options.limit };
    return listingPageOf((add) => this.#files.forEachSummaryInOrder(add, visit));
  }
}
