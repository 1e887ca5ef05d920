/**
 * The dashboard's file browser listing: the names under a prefix with the next `/`-separated
 * segment folded into folders, one bounded page at a time. Pure: the names come from the `fetch`
 * it is given (the store's `list`, which pages with `after` and `limit`).
 *
 * A page is rows in name order, each a file or a folder (`a/b/`, a prefix ending in `/`). Its
 * cursor is the key of its last row: a file's name, or a folder, which no name can be (a name
 * has no empty segment, so never ends in `/`), so the next page knows to skip the whole folder:
 * every name under a prefix sits together in name order, up to the prefix followed by U+FFFF.
 *
 * @module
 */

import { assert } from "../../protocol/errors.ts";
import type { ListEntry, ListOptions } from "../common/file_store.ts";
import { UI_LIST_SCAN_ENTRIES_MAX, UI_LIST_SCANS_MAX } from "./limits.ts";

/** One row of a folder page. */
export type FolderRow =
  | { type: "folder"; name: string }
  | ({ type: "file" } & ListEntry);

/** A page of a folder: its rows, and the cursor of the next page when there may be more. */
export interface FolderPage {
  prefix: string;
  rows: FolderRow[];
  /** Pass as `after` for the next page; absent at the end. */
  next?: string;
}

/** Names under `prefix` in name order after `options.after`, at most `options.limit`. */
export type ListFetch = (prefix: string, options: ListOptions) => Promise<ListEntry[]>;

/** A string after every name that starts with `folder` (see the module doc). */
const AFTER_EVERY_NAME = "\uffff";

/**
 * The page of `prefix`'s rows after `options.after` (a row's key), at most `options.limit`.
 * Asks `fetch` for at most `UI_LIST_SCANS_MAX` batches of `scanEntries` names (default
 * `UI_LIST_SCAN_ENTRIES_MAX`): a page that needs more ends early, with a cursor.
 */
export async function listFolder(
  fetch: ListFetch,
  prefix: string,
  options: { after?: string; limit: number; scanEntries?: number },
): Promise<FolderPage> {
  const scan = options.scanEntries ?? UI_LIST_SCAN_ENTRIES_MAX;
  assert(options.limit >= 1 && scan >= 1, "a page and a scan hold at least one row");
  const rows: FolderRow[] = [];
  // The folder whose names are being skipped (the last row's, or the cursor's).
  let skipping = options.after?.endsWith("/") ? options.after : undefined;
  let cursor = skipping === undefined ? options.after : skipping + AFTER_EVERY_NAME;
  for (let round = 0; round < UI_LIST_SCANS_MAX; round++) {
    const batch = await fetch(prefix, { after: cursor, limit: scan });
    let lastSeen = cursor;
    for (const entry of batch) {
      lastSeen = entry.name;
      if (skipping !== undefined && entry.name.startsWith(skipping)) continue;
      if (rows.length === options.limit) return { prefix, rows, next: rows.at(-1)!.name };
      const rest = entry.name.slice(prefix.length);
      const slash = rest.indexOf("/");
      if (slash < 0) {
        rows.push({ type: "file", ...entry });
      } else {
        skipping = prefix + rest.slice(0, slash + 1);
        rows.push({ type: "folder", name: skipping });
      }
    }
    if (batch.length < scan) return { prefix, rows };
    cursor = skipping !== undefined && lastSeen?.startsWith(skipping)
      ? skipping + AFTER_EVERY_NAME
      : lastSeen;
  }
  // Out of scans before the page filled: go on from the last row (or from where the scan got).
  return { prefix, rows, next: rows.at(-1)?.name ?? cursor! };
}
