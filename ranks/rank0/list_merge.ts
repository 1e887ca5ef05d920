/**
 * The k-way merge behind `list`: pulls pages of versioned entries in name order from each source
 * (a data node, or rank 0's index while a node is down) and yields merged pages in name order,
 * the highest version of each name winning and a name whose winner is a tombstone dropping out.
 * Only names up to the smallest last name fetched among the sources that have more can be
 * decided (a source that has more may still hold any name after its last); once they are, the
 * sources whose page is used up are asked for their next one. So rank 0 holds at most two pages
 * per source (one being merged, one asked for ahead) and a merged page, however long the listing.
 *
 * Every page asks for the names after the source's last one: a listing while puts go on is
 * consistent (sorted, no name twice, none skipped that existed throughout) though it may or may
 * not see names added meanwhile.
 *
 * @module
 */

import { DfsError } from "../../protocol/errors.ts";
import { freeIfWhole } from "../common/slot_table.ts";
import { LIST_PAGE_ENTRIES_MAX } from "../../protocol/limits.ts";
import type { ListEntry } from "../../protocol/messages.ts";
import { LISTING_FIELDS } from "../common/manifest.ts";
import { type ListAnswer, NODE_LIST_ENTRIES_MAX } from "../common/node_protocol.ts";

/**
 * Fewest entries asked of a source at once however few the listing wants: a merged entry may
 * take more than one (a name on several nodes, tombstones), and each ask is a round trip.
 */
export const LIST_FETCH_ENTRIES_MIN = 64;

/** A page of a source's entries in name order after `after` (exclusive), at most `limit`. */
export type ListSource = (after: string | undefined, limit: number) => Promise<ListAnswer>;

/** Options of `mergePages()`. */
export interface MergeOptions {
  /** Only names after this one (exclusive). */
  after?: string;
  /** Most entries in all (default: every one). */
  limit?: number;
  /** Most entries per page yielded (default `LIST_PAGE_ENTRIES_MAX`, one reply frame's). */
  pageEntries?: number;
  /** Most entries asked of a source at once (default `NODE_LIST_ENTRIES_MAX`). */
  fetchEntries?: number;
}

/**
 * Merges the sources' pages (see the module doc) into pages of at most `pageEntries`; only the
 * last may be shorter, and none is empty. Stopping the iteration stops the merge: the pages asked
 * for ahead are left unread.
 *
 * @throws {DfsError} `INTERNAL` if a source answers names out of order; whatever a source throws.
 */
export async function* mergePages(
  sources: readonly ListSource[],
  options: MergeOptions = {},
): AsyncGenerator<ListEntry[]> {
  const pageEntries = options.pageEntries ?? LIST_PAGE_ENTRIES_MAX;
  const fetchMax = options.fetchEntries ?? NODE_LIST_ENTRIES_MAX;
  let left = options.limit ?? Infinity;
  if (left <= 0) return;
  const fetch = Math.min(fetchMax, Math.max(LIST_FETCH_ENTRIES_MIN, Math.min(left, fetchMax)));
  const feeds = sources.map((source) => new Feed(source, options.after, fetch));
  await Promise.all(feeds.map((feed) => feed.take()));
  let page: ListEntry[] = [];
  while (left > 0) {
    const bound = boundOf(feeds);
    while (left > 0) {
      const entry = nextEntry(feeds, bound);
      if (entry === undefined) break;
      if (entry === null) continue; // removed
      page.push(entry);
      left--;
      if (page.length === pageEntries) {
        yield page;
        page = [];
      }
    }
    if (bound === undefined) break; // every source is used up
    await Promise.all(feeds.filter((f) => f.more && f.usedUp).map((f) => f.take()));
  }
  if (page.length > 0) yield page;
}

/**
 * The name up to which every entry is known: the smallest last name fetched among the sources
 * that have more; undefined when none has.
 */
function boundOf(feeds: readonly Feed[]): string | undefined {
  let bound: string | undefined;
  for (const feed of feeds) {
    if (feed.more && (bound === undefined || feed.last! < bound)) bound = feed.last;
  }
  return bound;
}

/**
 * Takes the smallest name left in the feeds, if it is not past `bound`, from every feed holding
 * it: its highest version as an entry, or null if that is a tombstone. Undefined when nothing up
 * to the bound is left.
 *
 * @throws {DfsError} `INTERNAL` when a feed's next name is out of order.
 */
function nextEntry(
  feeds: readonly Feed[],
  bound: string | undefined,
): ListEntry | null | undefined {
  let name: string | undefined;
  for (const feed of feeds) {
    const head = feed.head;
    if (head !== undefined && (name === undefined || head < name)) name = head;
  }
  if (name === undefined || (bound !== undefined && name > bound)) return undefined;
  let numbers!: Float64Array;
  let base = -1;
  for (const feed of feeds) {
    if (feed.head !== name) continue;
    const at = feed.at * LISTING_FIELDS;
    if (base < 0 || feed.numbers[at + 2] > numbers[base + 2]) {
      numbers = feed.numbers;
      base = at;
    }
    feed.advance();
  }
  if (numbers[base + 4] === 1) return null;
  // Made without an object literal: V8 learns from a literal whose objects outlive a scavenge
  // (a page waiting on the socket) to allocate all of them in the old generation, where a listing
  // of 200,000 names then left ~30 MB of garbage until the next full GC; this left ~3 MB.
  const entry = Object.create(Object.prototype) as ListEntry;
  entry.name = name;
  entry.size = numbers[base];
  entry.modified = numbers[base + 1];
  entry.replicas = numbers[base + 3];
  return entry;
}

/**
 * One source's page being merged, and the next one asked for ahead. Names are cut from the
 * page's one string as they are merged, not all at once: each lives only until its entry is sent.
 */
class Feed {
  /** The next name of the page to merge; undefined once the page is used up. */
  head: string | undefined;
  /** The index of `head`'s entry in `numbers`. */
  at = 0;
  numbers: Float64Array = new Float64Array(0);
  more = true;
  /** The last name fetched (the listing's `after` before the first page). */
  last: string | undefined;
  /** The page's names joined by NUL, and where the name after `head` starts in it. */
  #names = "";
  #from = 1;
  #entries = 0;
  #source: ListSource;
  #limit: number;
  #asked: Promise<ListAnswer> | undefined;
  #pages = 0;

  constructor(source: ListSource, after: string | undefined, limit: number) {
    this.#source = source;
    this.last = after;
    this.#limit = limit;
  }

  /** Whether every entry of the page was merged. */
  get usedUp(): boolean {
    return this.head === undefined;
  }

  /**
   * Moves to the next name of the page.
   *
   * @throws {DfsError} `INTERNAL` if it does not sort after the one before.
   */
  advance(): void {
    this.at++;
    this.#read(this.head);
  }

  /**
   * Takes the next page: the one asked for ahead, or asks for it now. From the second page on,
   * the one after it is asked for at once (a listing that got this far is likely to go on; one
   * of a page, `list` with a small limit, asks each source once).
   *
   * @throws {DfsError} `INTERNAL` for a page whose names and numbers disagree, or with no name
   *   while more remain.
   */
  async take(): Promise<void> {
    const answer = await (this.#asked ?? this.#ask());
    this.#asked = undefined;
    const { listing: { names, numbers }, more } = answer;
    const entries = numbers.length / LISTING_FIELDS;
    if (!Number.isInteger(entries) || (more && entries === 0)) throw outOfOrder();
    const previous = this.last;
    this.#names = names;
    this.#from = entries === 0 ? names.length + 1 : 0;
    this.#entries = entries;
    // The page before, used up, goes now rather than at the collector's next full collection: a
    // listing of a million names takes ~40 MB of them (`freeIfWhole`).
    freeIfWhole(this.numbers);
    this.numbers = numbers;
    this.at = 0;
    this.more = more;
    if (entries > 0) this.last = names.slice(names.lastIndexOf("\0") + 1);
    this.#read(previous);
    if (more && ++this.#pages > 1) this.#asked = this.#ask();
  }

  /** Cuts the next name from the page into `head`, checking it sorts after `previous`. */
  #read(previous: string | undefined): void {
    const names = this.#names;
    if (this.#from > names.length) {
      if (this.at !== this.#entries) throw outOfOrder();
      this.head = undefined;
      return;
    }
    let end = names.indexOf("\0", this.#from);
    if (end < 0) end = names.length;
    const name = names.slice(this.#from, end);
    if ((previous !== undefined && !(name > previous)) || this.at >= this.#entries) {
      throw outOfOrder();
    }
    this.head = name;
    this.#from = end + 1;
  }

  #ask(): Promise<ListAnswer> {
    const asked = this.#source(this.last, this.#limit);
    asked.catch(() => {}); // if the merge stops before taking it, its failure is nobody's
    return asked;
  }
}

function outOfOrder(): DfsError {
  return new DfsError(
    "INTERNAL",
    "A data node answered list with a page out of order or malformed",
  );
}
