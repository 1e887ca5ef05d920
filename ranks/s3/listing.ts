/**
 * ListObjectsV2 and ListObjects (v1) over the store's ordered names. Pure: the listing is a plan
 * (`startListing`, `nextFetch`, `takeBatch`, `finishListing`) over entries handed in, and
 * `listPage` is the small loop that asks a `fetch` function for them, one batch at a time, so the
 * gateway never holds more than a batch and a page.
 *
 * The listing is a sequence of items in key order: each key under the prefix, except that with a
 * delimiter every key holding it after the prefix rolls up into its common prefix (the prefix up
 * to and including the first delimiter), which is one item, placed at that string, counted once
 * toward max-keys. A page is the items after a position (start-after, marker or continuation
 * token): so a marker equal to a common prefix, or inside one, skips it (as S3 tests and MinIO
 * do), and resuming after the last item of a page never repeats it. Keys compare by UTF-16 code
 * units, as the store orders names (S3 orders by UTF-8 bytes; they differ only between characters
 * above U+FFFF and U+E000 to U+FFFF).
 *
 * @module
 */

import { utf8ByteLength } from "../../protocol/names.ts";
import { dfsCursorOf, dfsPrefixOf, KEY_BYTES_MAX, keyOf } from "./names.ts";
import { S3Error } from "./s3_error.ts";
import type { Owner } from "./xml_responses.ts";

/** Most keys one page lists, and the default (S3's: a larger max-keys is cut to it). */
export const MAX_KEYS_MAX = 1000;
/**
 * Most store fetches one list request makes. Each fetch after the first lists at least one item
 * (a common prefix is skipped in one jump), so pages of few, large common prefixes can take one
 * fetch per item; at this limit the page ends early, truncated, with a token to resume from.
 */
export const LIST_FETCHES_PER_REQUEST_MAX = 16;
/** Most entries one fetch asks for: a full page and one more, to see whether it is truncated. */
export const LIST_FETCH_ENTRIES_MAX = MAX_KEYS_MAX + 1;
/** Longest position a continuation token may hold, in UTF-8 bytes: a key. */
const POSITION_BYTES_MAX = KEY_BYTES_MAX;
/** Longest continuation token accepted, in characters: base64url of the tag and a position. */
export const CONTINUATION_TOKEN_CHARS_MAX = Math.ceil((2 + POSITION_BYTES_MAX) / 3) * 4;
/** The first bytes of every continuation token ("d1"): what it is, and its version. */
const TOKEN_TAG = [0x64, 0x31];

/** One object as the listing sees it. */
export interface ListingEntry {
  key: string;
  size: number;
  /** ms since the epoch. */
  modified: number;
  /** Without quotes; left out of the XML when unknown. */
  etag?: string;
}

/**
 * Entries with keys after `after` (all when undefined), in increasing key order, at most `limit`;
 * fewer than `limit` means there are no more. Entries not under the listing's prefix or not after
 * `after` are dropped, so a fetch may start early.
 */
export type ListingFetch = (
  after: string | undefined,
  limit: number,
) => Promise<readonly ListingEntry[]>;

/** A ListObjectsV2 or ListObjects request, checked. */
export interface ListQuery {
  version: 1 | 2;
  prefix: string;
  /** Undefined when absent or empty. */
  delimiter?: string;
  maxKeys: number;
  encodingType?: "url";
  /** v2's `fetch-owner` (v1 always lists owners). */
  fetchOwner: boolean;
  /** v2: as sent. */
  startAfter?: string;
  /** v2: as sent. */
  continuationToken?: string;
  /** v1: as sent. */
  marker?: string;
  /** Where the page starts (exclusive): the token's position, start-after or marker. */
  after?: string;
}

/**
 * Checks the query of a ListObjects request: `list-type=2` for ListObjectsV2, none for v1;
 * `prefix`, `delimiter` (empty means none), `max-keys` (default and at most `MAX_KEYS_MAX`: more
 * is cut to it, as S3 does), `encoding-type` (only `url`), and v2's `start-after`,
 * `continuation-token` (which wins over start-after) and `fetch-owner`, or v1's `marker`.
 *
 * @throws {S3Error} `InvalidArgument` for a bad `list-type`, `max-keys`, `encoding-type`,
 *   `fetch-owner` or continuation token.
 */
export function parseListQuery(query: URLSearchParams): ListQuery {
  const listType = query.get("list-type");
  if (listType !== null && listType !== "2") {
    throw new S3Error("InvalidArgument", `list-type must be 2, not ${listType}`);
  }
  const version = listType === "2" ? 2 : 1;
  const parsed: ListQuery = {
    version,
    prefix: query.get("prefix") ?? "",
    maxKeys: maxKeysOf(query.get("max-keys")),
    fetchOwner: version === 1 || booleanOf(query.get("fetch-owner"), "fetch-owner"),
  };
  const delimiter = query.get("delimiter");
  if (delimiter) parsed.delimiter = delimiter;
  const encodingType = query.get("encoding-type");
  if (encodingType !== null) {
    if (encodingType.toLowerCase() !== "url") {
      throw new S3Error("InvalidArgument", `Invalid encoding-type ${encodingType}: only url is`);
    }
    parsed.encodingType = "url";
  }
  if (version === 2) {
    const startAfter = query.get("start-after");
    const token = query.get("continuation-token");
    if (startAfter !== null) parsed.startAfter = startAfter;
    if (token !== null) parsed.continuationToken = token;
    const after = token !== null ? decodeContinuationToken(token) : startAfter;
    if (after) parsed.after = after;
  } else {
    const marker = query.get("marker");
    if (marker !== null) parsed.marker = marker;
    if (marker) parsed.after = marker;
  }
  return parsed;
}

function maxKeysOf(raw: string | null): number {
  if (raw === null) return MAX_KEYS_MAX;
  if (!/^[0-9]{1,10}$/.test(raw) || Number(raw) > 2 ** 31 - 1) {
    throw new S3Error(
      "InvalidArgument",
      `max-keys must be a whole number from 0 to 2147483647, not ${raw}`,
    );
  }
  return Math.min(Number(raw), MAX_KEYS_MAX);
}

function booleanOf(raw: string | null, name: string): boolean {
  if (raw === null || raw === "false") return false;
  if (raw === "true") return true;
  throw new S3Error("InvalidArgument", `${name} must be true or false, not ${raw}`);
}

/** The continuation token that resumes a listing after `position` (a key or common prefix). */
export function encodeContinuationToken(position: string): string {
  const bytes = [...TOKEN_TAG, ...new TextEncoder().encode(position)];
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
}

/**
 * The position a continuation token resumes after.
 *
 * @throws {S3Error} `InvalidArgument` for a token this gateway did not make.
 */
export function decodeContinuationToken(token: string): string {
  const bad = () => new S3Error("InvalidArgument", "The continuation token provided is incorrect");
  if (
    token.length === 0 || token.length > CONTINUATION_TOKEN_CHARS_MAX ||
    !/^[A-Za-z0-9_-]+$/.test(token) || token.length % 4 === 1
  ) throw bad();
  let binary: string;
  try {
    binary = atob(token.replace(/-/g, "+").replace(/_/g, "/"));
  } catch {
    throw bad();
  }
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  if (bytes.length < TOKEN_TAG.length || TOKEN_TAG.some((b, i) => bytes[i] !== b)) throw bad();
  const rest = bytes.subarray(TOKEN_TAG.length);
  if (rest.length > POSITION_BYTES_MAX) throw bad();
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(rest);
  } catch {
    throw bad();
  }
}

/**
 * `value` as a listing writes it: unchanged, or with `encodingType: "url"` percent-encoded as S3
 * does (UTF-8 bytes, all but `A-Z a-z 0-9 - _ . ~ /`; a space is `%20`, which every SDK decodes).
 */
export function encodeListingValue(value: string, encodingType?: "url"): string {
  if (encodingType !== "url") return value;
  return encodeURIComponent(value.toWellFormed())
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%2F/g, "/");
}

/** The common prefix `key` rolls up into, or undefined if it lists as itself. */
export function commonPrefixOf(
  key: string,
  prefix: string,
  delimiter?: string,
): string | undefined {
  if (delimiter === undefined || !key.startsWith(prefix)) return undefined;
  const at = key.indexOf(delimiter, prefix.length);
  return at === -1 ? undefined : key.slice(0, at + delimiter.length);
}

/**
 * The smallest cursor after every key that starts with `prefix` and fits `KEY_BYTES_MAX` bytes
 * (at worst a few keys of U+FFFF come back and are skipped): `prefix` and U+FFFF, the highest
 * UTF-16 code unit, to the byte limit.
 */
export function cursorPast(prefix: string): string {
  const room = Math.max(0, KEY_BYTES_MAX - utf8ByteLength(prefix));
  return prefix + "\uFFFF".repeat(Math.max(1, Math.floor(room / 3)));
}

/** Where a listing is: what it has listed, and how far it has read. */
export interface ListingState {
  readonly contents: readonly ListingEntry[];
  readonly commonPrefixes: readonly string[];
  /** The last item listed, or the start: items at or before it are done. */
  readonly floor?: string;
  /** The last key read: entries at or before it are dropped. */
  readonly read?: string;
  /** The cursor of the next fetch. */
  readonly fetchAfter?: string;
  readonly fetches: number;
  readonly done: boolean;
  /** When done and truncated: the position the next page starts after. */
  readonly resumeAfter?: string;
}

/** The state before anything is read: nothing to do at all for `max-keys=0`. */
export function startListing(query: ListQuery): ListingState {
  return {
    contents: [],
    commonPrefixes: [],
    floor: query.after,
    read: query.after,
    fetchAfter: query.after,
    fetches: 0,
    done: query.maxKeys === 0,
  };
}

/** The next fetch to make, or undefined when the page is done. */
export function nextFetch(
  state: ListingState,
  query: ListQuery,
): { after: string | undefined; limit: number } | undefined {
  if (state.done) return undefined;
  const wanted = query.maxKeys - state.contents.length - state.commonPrefixes.length + 1;
  // Without a delimiter every entry is an item; with one, a batch may roll up into few items.
  const limit = query.delimiter === undefined
    ? Math.min(wanted, LIST_FETCH_ENTRIES_MAX)
    : LIST_FETCH_ENTRIES_MAX;
  return { after: state.fetchAfter, limit };
}

/**
 * Takes the entries one fetch of `limit` returned: lists the items after the floor until the
 * page holds `maxKeys` and one more item shows it is truncated; drops entries out of order or not
 * under the prefix; ends when the fetch came back short, or truncated (resuming after the last
 * key read) after `fetchesMax` fetches.
 */
export function takeBatch(
  state: ListingState,
  query: ListQuery,
  entries: readonly ListingEntry[],
  limit: number,
  fetchesMax = LIST_FETCHES_PER_REQUEST_MAX,
): ListingState {
  const contents = [...state.contents];
  const commonPrefixes = [...state.commonPrefixes];
  let { floor, read } = state;
  let rolledUp: string | undefined; // the common prefix of the last key read, if any
  for (const entry of entries) {
    const key = entry.key;
    if (read !== undefined && key <= read) continue;
    read = key;
    rolledUp = undefined;
    if (!key.startsWith(query.prefix)) continue;
    rolledUp = commonPrefixOf(key, query.prefix, query.delimiter);
    const position = rolledUp ?? key;
    if (floor !== undefined && position <= floor) continue;
    if (contents.length + commonPrefixes.length === query.maxKeys) {
      return {
        contents,
        commonPrefixes,
        floor,
        read,
        fetches: state.fetches + 1,
        done: true,
        resumeAfter: floor,
      };
    }
    if (rolledUp === undefined) contents.push(entry);
    else commonPrefixes.push(rolledUp);
    floor = position;
  }
  const fetches = state.fetches + 1;
  if (entries.length < limit) {
    return { contents, commonPrefixes, floor, read, fetches, done: true };
  }
  if (fetches >= fetchesMax) {
    return { contents, commonPrefixes, floor, read, fetches, done: true, resumeAfter: read };
  }
  const past = rolledUp === undefined ? undefined : cursorPast(rolledUp);
  const fetchAfter = past !== undefined && (read === undefined || past > read) ? past : read;
  return { contents, commonPrefixes, floor, read, fetchAfter, fetches, done: false };
}

/** A page of a listing, in key order, and where the next page starts if there is one. */
export interface ListingPage {
  contents: ListingEntry[];
  commonPrefixes: string[];
  isTruncated: boolean;
  /** When truncated: the position the next page starts after (a key or common prefix). */
  next?: string;
}

/** The page a finished state holds. */
export function finishListing(state: ListingState): ListingPage {
  const page: ListingPage = {
    contents: [...state.contents],
    commonPrefixes: [...state.commonPrefixes],
    isTruncated: state.resumeAfter !== undefined,
  };
  if (state.resumeAfter !== undefined) page.next = state.resumeAfter;
  return page;
}

/**
 * Lists one page: fetches entries in batches of at most `LIST_FETCH_ENTRIES_MAX`, only as many as
 * the page needs, and at most `fetchesMax` (`LIST_FETCHES_PER_REQUEST_MAX`) times.
 *
 * @throws whatever `fetch` throws.
 */
export async function listPage(
  fetch: ListingFetch,
  query: ListQuery,
  options: { fetchesMax?: number } = {},
): Promise<ListingPage> {
  let state = startListing(query);
  for (let next = nextFetch(state, query); next; next = nextFetch(state, query)) {
    const entries = await fetch(next.after, next.limit);
    state = takeBatch(state, query, entries, next.limit, options.fetchesMax);
  }
  return finishListing(state);
}

/** What `xml.ts`'s `listBucketResultXml` writes: every string encoded as the request asked. */
export interface ListObjectsResult {
  version: 1 | 2;
  bucket: string;
  prefix: string;
  delimiter?: string;
  maxKeys: number;
  encodingType?: "url";
  isTruncated: boolean;
  /** Keys and common prefixes listed (v2's `KeyCount`). */
  keyCount: number;
  /** v1: the marker sent, and where the next page starts when truncated. */
  marker?: string;
  nextMarker?: string;
  /** v2: the token sent, the token of the next page when truncated, the start-after sent. */
  continuationToken?: string;
  nextContinuationToken?: string;
  startAfter?: string;
  contents: ListingEntry[];
  commonPrefixes: string[];
  /** Listed with each object: always in v1, with `fetch-owner=true` in v2. */
  owner?: Owner;
}

/**
 * The `ListBucketResult` of a page: v2 with `KeyCount` and `NextContinuationToken`, v1 with
 * `NextMarker` whenever truncated (S3 promises it only with a delimiter; it never hurts). With
 * `encoding-type=url`, keys, prefixes, the delimiter, start-after and markers are encoded.
 */
export function listObjectsResult(
  bucket: string,
  query: ListQuery,
  page: ListingPage,
  owner?: Owner,
): ListObjectsResult {
  const encode = (value: string) => encodeListingValue(value, query.encodingType);
  const result: ListObjectsResult = {
    version: query.version,
    bucket,
    prefix: encode(query.prefix),
    maxKeys: query.maxKeys,
    isTruncated: page.isTruncated,
    keyCount: page.contents.length + page.commonPrefixes.length,
    contents: page.contents.map((c) => ({ ...c, key: encode(c.key) })),
    commonPrefixes: page.commonPrefixes.map(encode),
  };
  if (query.delimiter !== undefined) result.delimiter = encode(query.delimiter);
  if (query.encodingType !== undefined) result.encodingType = query.encodingType;
  if (owner !== undefined && query.fetchOwner) result.owner = owner;
  if (query.version === 1) {
    result.marker = encode(query.marker ?? "");
    if (page.next !== undefined) result.nextMarker = encode(page.next);
  } else {
    if (query.continuationToken !== undefined) {
      result.continuationToken = query.continuationToken;
    }
    if (page.next !== undefined) result.nextContinuationToken = encodeContinuationToken(page.next);
    if (query.startAfter !== undefined) result.startAfter = encode(query.startAfter);
  }
  return result;
}

/** What `fetchFromStore` needs of the store: `FileStore.list`. */
export type StoreList = (
  prefix: string,
  options: { after?: string; limit?: number },
) => Promise<readonly { name: string; size: number; modified: number }[]>;

/**
 * A `ListingFetch` over the store's names of `bucket` under S3 `prefix`: maps key cursors to
 * name cursors and names back to keys (`dfsPrefixOf`, `dfsCursorOf`, `keyOf` of `names.ts`). A
 * prefix no name can start with lists nothing, without asking the store.
 *
 * @throws {S3Error} `InvalidBucketName` for a bad bucket name.
 */
export function fetchFromStore(list: StoreList, bucket: string, prefix: string): ListingFetch {
  const dfsPrefix = dfsPrefixOf(bucket, prefix);
  return async (after, limit) => {
    if (dfsPrefix === undefined) return [];
    const cursor = after === undefined ? undefined : dfsCursorOf(bucket, after);
    const names = await list(dfsPrefix, { after: cursor, limit });
    const entries: ListingEntry[] = [];
    for (const { name, size, modified } of names) {
      // Every name under `bucket/` has a key, and the store lists none outside the prefix.
      const key = keyOf(bucket, name);
      if (key !== undefined) entries.push({ key, size, modified });
    }
    return entries;
  };
}
