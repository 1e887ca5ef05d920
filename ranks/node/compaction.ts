/**
 * Rewriting a data node's log (`DataNode`): the records of the manifests kept, with the bytes of
 * their chunks kept in the log taken from where the node keeps them now; and a compaction, which
 * rewrites the log to the node's table as it stands, frozen cheaply (`TableSnapshot`) and read
 * back from the old file a step at a time while the node goes on answering.
 *
 * @module
 */

import type { Manifest } from "../common/manifest.ts";
import type { FileHandle, FileSystem, Random } from "../env/env.ts";
import { RecordReader } from "./_log_reader.ts";
import { type KeptManifest, keptOf, RewrittenRecords } from "./log_rewrite.ts";
import { readManifests } from "../common/manifest_codec.ts";
import { decodeRecordWithData, isBinaryCommit } from "./log_record.ts";
import type { LogPlace, LogPlaces } from "./log_places.ts";
import { manifestIn, type ManifestTable } from "./manifest_table.ts";
import type { LogSwap, RecordLog } from "./record_log.ts";
import type { ReadKept } from "./table_snapshot.ts";

/** What a node keeps in its log now: where a rewrite takes the bytes of chunks from. */
export interface HeldInLog {
  log: RecordLog;
  /** Where the bytes of each chunk kept in the log are, but those found through their file. */
  inLog: LogPlaces;
  /** Where the bytes of `m`'s one chunk are, if the record its slot says carries them. */
  carried: (m: Manifest) => LogPlace | undefined;
  /** The bytes of records carrying data whose append has not resolved yet, by chunk id. */
  appending: ReadonlyMap<string, Uint8Array>;
}

/**
 * The records of a log holding `manifests` (`RewrittenRecords`), whose chunks kept in the log
 * come from where `held` says they are as the records are taken; `placed` is told where each
 * commit record goes in the new log, and the bytes it carries (true if it takes their place).
 */
export function rewrittenRecords(
  manifests: Iterable<KeptManifest> | AsyncIterable<KeptManifest>,
  held: HeldInLog,
  placed: (where: number, dataAt?: number) => boolean,
): RewrittenRecords {
  const { log, inLog, appending } = held;
  return new RewrittenRecords(manifests, {
    has: (id) => inLog.has(id) || appending.has(id),
    bytesOf: async (id, m) => {
      const place = inLog.get(id) ?? (m && held.carried(m));
      return appending.get(id) || (place && await log.read(place.offset, place.size));
    },
  }, placed);
}

/** Where a rewrite put a manifest's commit record, and the bytes it carries (or -1). */
export interface PlacedRecord {
  where: number;
  dataAt: number;
}

/**
 * Rewrites the log to commit records of exactly the manifests in `kept` (encoded; a start-up
 * repair), carrying over the bytes of their chunks kept in the log. At the swap, `swapped` is
 * told where the chunks carried went (`places`, but those carried in a manifest's own commit
 * record), where what was appended meanwhile went, and where each manifest's commit record
 * went, in the order of `kept`, with the bytes it carries.
 *
 * @throws what `RecordLog.rewrite()` throws.
 */
export async function rewriteKept(
  kept: Uint8Array,
  held: HeldInLog,
  swapped: (places: LogPlaces, swap: LogSwap, placed: readonly PlacedRecord[]) => void,
): Promise<void> {
  const placed: PlacedRecord[] = [];
  const records = rewrittenRecords(keptOf(readManifests(kept)), held, (where, dataAt) => {
    placed.push({ where, dataAt: dataAt ?? -1 });
    return dataAt !== undefined;
  });
  await held.log.rewrite(records, {
    swapped: (swap) => {
      records.check(swap.offsets);
      swapped(records.places, swap, placed);
    },
  });
}

/**
 * Reads frozen manifests back from their records (bodies through `bodyAt`, a view that holds
 * until the next call). The bytes a record carries come with its manifest when they are the ones
 * the node keeps of its chunk (those `inLog` says, or, if it has none, those of a record its
 * slot says carries them; not bytes still `appending`), saving a read of them apart; and a
 * commit record that is still what a rewrite would write comes as is, saving its encoding.
 */
export function readKept(
  bodyAt: (where: number) => Uint8Array,
  inLog: { get(id: string): LogPlace | undefined },
  appending: { has(id: string): boolean },
): ReadKept {
  return (name, version, where, carried) => {
    const body = bodyAt(where);
    const { record, data } = decodeRecordWithData(body);
    const manifest = manifestIn(record, name, version, where);
    const { chunks } = manifest;
    const id = chunks.length === 1 ? chunks[0].id : undefined;
    const place = id === undefined ? undefined : inLog.get(id);
    const kept = carried || place !== undefined || (id !== undefined && appending.has(id));
    const same = isBinaryCommit(body) && record.kind === "commit";
    if (data === undefined) {
      return same && !kept ? { manifest, record: body.slice() } : { manifest };
    }
    const ours = !appending.has(id!) &&
      (place === undefined
        ? carried
        : place.offset === where + data.offset && place.size === data.size);
    if (!ours) return { manifest };
    const bytes = body.subarray(data.offset, data.offset + data.size);
    return same ? { manifest, data: bytes, record: body.slice() } : { manifest, data: bytes };
  };
}

/**
 * The most by which a node's dead records must outnumber its live ones before it compacts, as a
 * fraction of the live ones, drawn once per node between 0 and this: replicas given the same
 * overwrites otherwise all compact at once, their walks sharing the cores (three nodes compacting
 * together on 2 cores held a prober's put and get up to 1.2-1.4 s).
 */
export const COMPACT_SLACK_MAX = 0.5;

/**
 * When a node compacts its log: once it holds at least `bytesMin` of records and its dead records
 * outnumber its live ones by a slack drawn from `random` (a fraction of them, up to
 * `COMPACT_SLACK_MAX`); after a compaction failed (a full disk), not before the log has grown by
 * `bytesMin` more. Pure.
 */
export class CompactionTrigger {
  readonly slack: number;
  #bytesMin: number;
  #retryAtBytes = 0;

  constructor(bytesMin: number, random: Random) {
    this.#bytesMin = bytesMin;
    const bytes = new Uint8Array(4);
    random.fill(bytes);
    this.slack = COMPACT_SLACK_MAX * new DataView(bytes.buffer).getUint32(0) / 2 ** 32;
  }

  /** Whether a log of `sizeBytes` holding `live` and `dead` records is due. */
  due(sizeBytes: number, live: number, dead: number): boolean {
    return sizeBytes >= this.#bytesMin && sizeBytes >= this.#retryAtBytes &&
      dead > live * (1 + this.slack);
  }

  /** A compaction of a log of `sizeBytes` failed. */
  failed(sizeBytes: number): void {
    this.#retryAtBytes = sizeBytes + this.#bytesMin;
  }
}

/** How a compaction reaches the node. */
export interface CompactionOptions {
  /** The log file, read back through a handle of the compaction's own (the old file's). */
  path: string;
  fs: FileSystem;
  /** Lets the thread answer what waits, between steps. */
  giveWay: () => Promise<void>;
  /** A record found damaged at `where`: the node drops the manifest if it still holds it there. */
  damaged: (name: string, version: number, where: number) => void;
  /**
   * Told, as the rewrite starts, the places the chunks carried go to (a chunk released meanwhile
   * must be taken out of them), and undefined once it ended.
   */
  compacting: (places: LogPlaces | undefined) => void;
  /**
   * The new log is the log, holding `records` then what was appended meanwhile (`swap` says
   * where it went): called once the table's manifests are placed in it, in the same turn, before
   * any append resolves into it.
   */
  replaced: (records: RewrittenRecords, swap: LogSwap) => void;
}

/**
 * Rewrites the log to what `table` holds now, in the same turn (every record appended before is
 * in it), while appends go on: what is appended meanwhile is copied after the rewritten records
 * (`RecordLog.rewrite()`). What is written is frozen cheaply, and read back from the old file as
 * the records are taken, giving way every `TABLE_STEP_MANIFESTS`: read in one go, millions of
 * records held the thread for seconds, and a buffer of all of them. At the swap, the table's
 * manifests are placed in the new log (those appended meanwhile moved with them), then
 * `options.replaced` is told of the records written (`places` says where the chunks carried are,
 * less those released meanwhile).
 *
 * @throws what `RecordLog.rewrite()` throws: the table then stays placed in the old log, unless
 * the rename was done.
 */
export async function compactTable(
  table: ManifestTable,
  held: HeldInLog,
  options: CompactionOptions,
): Promise<void> {
  const snapshot = table.freeze();
  const reader = new RecordReader(options.path, options.fs);
  // Once replaced, the old file's pages and blocks are freed by whichever of its handles closes
  // last, in that call: 0.26 s of the thread for a log of 1 GB here. This handle closes last,
  // once it made the file empty in the thread pool.
  const old = openQuietly(options.fs, options.path);
  let thawed = false;
  try {
    reader.pin();
    const read = readKept((where) => reader.readSync(where), held.inLog, held.appending);
    const manifests = snapshot.manifests(read, options);
    const records = rewrittenRecords(manifests, held, (where, at) => snapshot.placed(where, at));
    options.compacting(records.places);
    await held.log.rewrite(records, {
      swapped: (swap) => {
        thawed = true;
        table.thaw(snapshot, swap);
        options.replaced(records, swap);
        records.check(swap.offsets);
      },
    });
    // Nothing reads the old file any more.
    await old?.truncate(0).catch(() => {});
  } finally {
    if (!thawed) table.thaw(snapshot);
    options.compacting(undefined);
    reader.close();
    old?.close();
  }
}

/** The file at `path` opened for writing, or undefined if it cannot be (it is only a help). */
function openQuietly(fs: FileSystem, path: string): FileHandle | undefined {
  try {
    return fs.openSync(path, { write: true });
  } catch {
    return undefined;
  }
}
