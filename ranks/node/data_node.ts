/**
 * A data node: stores chunks and the manifests of the files they belong to. Takes `NodeCall`s and
 * `NodeCollective`s and answers them; owns no socket, and reaches the disk and the operator only
 * through its `Env`. `serveNode()` (`serve.ts`) wires it to a `Comm`; tests drive it directly.
 *
 * A small file's one chunk comes with its commit and is kept in the log record itself, not in a
 * blob: one group-committed log append makes both durable, where a blob of its own costs a file
 * creation and an fdatasync of it and of the folder, each a separate trip to the disk. Reads find
 * its bytes in the log file; log rewrites carry them over.
 *
 * @module
 */

import { join } from "node:path";
import { crc32 } from "node:zlib";
import { releaseDecodeInput } from "../../protocol/cbor.ts";
import { DfsError } from "../../protocol/errors.ts";
import { type Env, giveWay } from "../env/env.ts";
import { DiskWatch } from "./disk_health.ts";
import { DirectWrites } from "./direct_writes.ts";
import type { ChunkStore } from "./chunk_store.ts";
import { isKeptInLog } from "../common/chunk_id.ts";
import { chunkIdsOn, type LogOpened, type Manifest, type RankRepair } from "../common/manifest.ts";
import {
  carriedChunkId,
  decodeRecordWithData,
  encodeRecord,
  type LogRecord,
  recordCounts,
} from "./log_record.ts";
import type { LogPlaces } from "./log_places.ts";
import { LogChunks } from "./log_chunks.ts";
import { readManifests } from "../common/manifest_codec.ts";
import { ManifestTable } from "./manifest_table.ts";
import { CompactionTrigger, compactTable, rewriteKept } from "./compaction.ts";
import { reasonOf } from "./_fs.ts";
import { RecordReader } from "./_log_reader.ts";
import { Summarizer } from "./summary.ts";
import { PagedAnswers, ScanPieces } from "./paged_answers.ts";
import type {
  ListAnswer,
  LogCheck,
  NodeCall,
  ScanAnswer,
  ScanPiece,
  SummaryPage,
} from "../common/node_protocol.ts";
import { type LogSwap, type RecordLog, replayRecordLog } from "./record_log.ts";

/** Log bytes below which the log is never compacted at run time. */
export const LOG_COMPACT_BYTES_MIN = 64 * 1024 * 1024;

/** The folder of a node's blobs, in its folder. */
export const CHUNKS_DIR = "chunks";
/** The node's log, in its folder. */
export const LOG_FILE = "meta.log";
/** Written, synced and removed in the chunk folder at open: a failed disk stops the start. */
export const PROBE_FILE = ".probe";

/** Where a data node keeps its data, and how. */
interface NodeStorage {
  env: Env;
  store: ChunkStore;
  /** The node's folder (`statfs` reports the file system under it). */
  dir: string;
  /** Log bytes below which it is never compacted (default `LOG_COMPACT_BYTES_MIN`). */
  compactBytesMin?: number;
  /** Bytes of manifests in each piece of a scan (default `SCAN_PAGE_BYTES`). */
  scanPageBytes?: number;
}

/** A data node's state and its answers to rank 0 (see the module doc). */
export class DataNode {
  readonly rank: number;
  /** Uploads whose chunks clients write here directly (`direct_writes.ts`). */
  readonly direct: DirectWrites;
  #env: Env;
  #store: ChunkStore;
  #dir: string;
  /** Set by `replay()` once the log is open (the node is not used before). */
  #log!: RecordLog;
  /** Reads the table's records back from the log. */
  #records: RecordReader;
  #table: ManifestTable;
  /** Changes to the table so far: a scan's or summary's pieces add up only while it stays. */
  #changes = 0;
  /** The scan and summary being sent a piece at a time. */
  #paged: PagedAnswers;
  #liveRecords = 0;
  #deadRecords = 0;
  /** Where the bytes of the chunks kept in the log are. */
  #chunks: LogChunks;
  /** A log rewrite running: the next one waits for it. */
  #rewriting: Promise<void> | null = null;
  /** Log rewrites swapped in so far: offsets taken before one may have moved. */
  #swaps = 0;
  /** The compaction running in the background, started by `#compactIfWorthIt()`. */
  #compaction: Promise<void> | undefined;
  /**
   * The bytes of records carrying data whose append has not resolved yet, by chunk id: a compaction
   * that starts meanwhile includes their manifests, and takes their bytes from here.
   */
  #appending = new Map<string, Uint8Array>();
  #compactWhen: CompactionTrigger;
  #scanPageBytes: number | undefined;
  /** Whether the node's disk has failed, and why. */
  #disk: DiskWatch;
  /** The log was missing at open although the node held chunks before. */
  #logLost = false;

  /**
   * Opens the node's log (`LOG_FILE` in `dir`) and rebuilds its manifest table from the records
   * replayed out of it, each applied as it is decoded, with where the bytes it carries are in the
   * log file. Use `openDataNode()`.
   */
  static async replay(
    rank: number,
    storage: NodeStorage & {
      /** The node held chunks before: a missing log was lost. */
      heldChunks: boolean;
    },
  ): Promise<DataNode> {
    const node = new DataNode(rank, storage);
    const log = await replayRecordLog(join(storage.dir, LOG_FILE), (body, offset) => {
      const { record, data } = decodeRecordWithData(body);
      node.#apply(record, offset);
      if (data) node.#chunks.placed(record, offset, offset + data.offset, data.size);
    }, storage.env);
    releaseDecodeInput();
    node.#log = log;
    node.#logLost = log.replay.created && storage.heldChunks;
    return node;
  }

  private constructor(rank: number, storage: NodeStorage) {
    this.rank = rank;
    this.#env = storage.env;
    this.direct = new DirectWrites(storage.env.clock);
    const compactBytesMin = storage.compactBytesMin ?? LOG_COMPACT_BYTES_MIN;
    this.#compactWhen = new CompactionTrigger(compactBytesMin, storage.env.random);
    this.#paged = new PagedAnswers(rank);
    this.#scanPageBytes = storage.scanPageBytes;
    this.#dir = storage.dir;
    this.#store = storage.store;
    this.#records = new RecordReader(join(storage.dir, LOG_FILE), storage.env.fs);
    this.#chunks = new LogChunks({
      table: () => this.#table,
      log: () => this.#log,
      rank,
    });
    this.#table = this.#newTable();
    this.#disk = new DiskWatch(rank, {
      fs: storage.env.fs,
      log: storage.env.log,
      folders: [storage.dir, join(storage.dir, CHUNKS_DIR)],
      files: [join(storage.dir, LOG_FILE)],
      logFailure: () => this.#log.failure,
    });
  }

  /**
   * Chunks kept in the log that the node finds by their id (~34 bytes each); the others, most
   * small files', it finds through their file's commit record, which carries them.
   */
  get chunksPlacedById(): number {
    return this.#chunks.byId.size;
  }

  /** Why the node's disk is taken for failed, once it is: every call is answered with it. */
  get failure(): DfsError | undefined {
    return this.#disk.failure;
  }

  /**
   * Answers one point-to-point request. A `read` answers with bytes the caller may transfer.
   *
   * @throws {DfsError} `NODE_FAILED` once the node's disk has failed (see `disk_health.ts`).
   */
  async handle(call: NodeCall): Promise<unknown> {
    this.#disk.throwIfFailed();
    try {
      return await this.#handle(call);
    } catch (error) {
      throw this.#disk.failedBy(error);
    }
  }

  /**
   * A heartbeat: checks that the node's folder, chunk folder and log are still there and its log
   * can still be appended to (a few synchronous stats).
   *
   * @throws {DfsError} `NODE_FAILED` if they are not.
   */
  ping(): true {
    this.#disk.check();
    this.#disk.throwIfFailed();
    return true;
  }

  async #handle(call: NodeCall): Promise<unknown> {
    switch (call.op) {
      case "write":
        this.#verify(call.id, call.bytes, call.crc32, "arrived damaged");
        await this.#store.write(call.id, call.bytes);
        return true;
      case "restore":
        this.#verify(call.id, call.bytes, call.crc32, "arrived damaged");
        if (this.#chunks.byId.has(call.id) || isKeptInLog(call.id, call.bytes.length)) {
          await this.#append({ kind: "data", id: call.id }, call.bytes);
        } else {
          await this.#store.replace(call.id, call.bytes);
        }
        return true;
      case "read": {
        const bytes = await this.#read(call);
        this.#verify(call.id, bytes, call.crc32, `on rank ${this.rank} is corrupted`);
        return bytes;
      }
      case "commit": {
        const { manifest, data } = call;
        if (data === undefined) {
          await this.#store.sync(chunkIdsOn(manifest, this.rank));
          await this.#append({ kind: "commit", manifest });
          return true;
        }
        const [chunk] = manifest.chunks;
        if (manifest.chunks.length !== 1 || !chunk.ranks.includes(this.rank)) {
          throw new DfsError("INTERNAL", `Commit of "${manifest.name}" with data is not one chunk`);
        }
        this.#verify(chunk.id, data, chunk.crc32, "arrived damaged");
        await this.#append({ kind: "commit", manifest }, data);
        return true;
      }
      case "rename": {
        const { fromVersion, tombstone, manifest } = call;
        await this.#append({ kind: "rename", fromVersion, tombstone, manifest });
        return true;
      }
      case "compose":
        await this.#append({ kind: "compose", sources: call.sources, manifest: call.manifest });
        return true;
      case "release":
        return await this.#release(call.name, call.version);
      case "discard":
        this.direct.forget(call.ids);
        await this.#store.delete(call.ids);
        return true;
      case "expect":
        return this.direct.expect(call.blob, call.bytes);
      case "seal":
        return this.direct.seal(call.blob, call.chunks);
      case "statfs":
        return await this.#env.fs.statfs(this.#dir);
      case "repair":
        await this.#repair(call.repair);
        return true;
      case "verifyLog":
        return await this.#verifyLog();
      case "list":
        return await this.list(call.prefix, { after: call.after, limit: call.limit });
      case "summary":
        return await this.summary(call.seed);
      case "summaryPage":
        return this.summaryPage();
      case "scanPage":
        return this.scanPage();
      default:
        throw new DfsError("INVALID_REQUEST", `Unknown node call ${JSON.stringify(call)}`);
    }
  }

  /** Checks bytes against their CRC32 right before writing and right after reading. */
  #verify(id: string, bytes: Uint8Array, expected: number | undefined, what: string): void {
    if (expected === undefined || crc32(bytes) === expected) return;
    throw new DfsError("CORRUPTED", `Chunk ${id} ${what}: its CRC32 does not match`);
  }

  /**
   * A page of this node's newest version of each name under `prefix`, after `after`, at most
   * `limit` (see `ManifestTable.page`, which throws for a bad limit). The first sorts every name,
   * giving way between steps so that heartbeats are answered.
   */
  async list(prefix: string, options: { after?: string; limit: number }): Promise<ListAnswer> {
    await this.#table.sortNames(() => this.#giveWay());
    return this.#table.page(prefix, options);
  }

  /**
   * Everything this node holds, for start-up recovery and reconciling, and what opening its log
   * found (damage skipped, a torn tail cut, a log made anew). Manifests past the first
   * `SCAN_PAGE_BYTES` come with `scanPage()`.
   *
   * @throws {DfsError} `NODE_FAILED` once the node's disk has failed.
   */
  async scan(): Promise<ScanAnswer> {
    const at = this.#changes;
    const blobs = await this.#blobs();
    const inLog = await this.#chunks.encodeIds(() => this.#giveWay());
    // Records found damaged are dropped once the last piece is made: dropping one meanwhile
    // would change what the pieces walk.
    const damaged: { name: string; version: number; where: number }[] = [];
    const manifests = this.#table.all((name, version, where) =>
      damaged.push({ name, version, where })
    );
    const pieces = new ScanPieces(manifests, {
      pageBytes: this.#scanPageBytes,
      giveWay: () => this.#giveWay(),
      whenDone: () => damaged.forEach((d) => this.#dropDamaged(d.name, d.version, d.where)),
    });
    const first = await this.#paged.beginScan(pieces, () => this.#changes, at);
    return { rank: this.rank, ...first, blobs: [...blobs], inLog, opened: this.#opened() };
  }

  /**
   * The next piece of the manifests of the scan `scan()` began (`SCAN_PAGE_BYTES`, or what is
   * left), made now, giving way between steps.
   *
   * @throws {DfsError} `NOT_FOUND` if none is being sent, or if what the node holds changed since
   *   it began; `NODE_FAILED` once the node's disk has failed.
   */
  scanPage(): Promise<ScanPiece> {
    this.#disk.throwIfFailed();
    return this.#paged.nextScanPiece(() => this.#changes);
  }

  /**
   * What this node holds, summed up for a fast start-up (`ScanSummary`): whole only the manifests
   * it is the first holder of, and its tombstones; of the rest, how many and the sum of their
   * fingerprints under `seed`. Checks here, in parallel with the other nodes, what rank 0 would
   * otherwise check for every replica: that each chunk is present, and which blobs are stray.
   * The answer is the first page (`SummaryPage`); `summaryPage()` makes the next ones.
   *
   * @throws {DfsError} `NODE_FAILED` once the node's disk has failed.
   */
  async summary(seed: number): Promise<SummaryPage> {
    const blobs = await this.#blobs();
    const manifests = this.#table.allEncoded();
    const inLog = this.#chunks;
    const held = { rank: this.rank, manifests, inLog, blobs, opened: this.#opened() };
    return this.#paged.beginSummary(new Summarizer(held, seed), this.#changes);
  }

  /**
   * The next page of the summary `summary()` began.
   *
   * @throws {DfsError} `NOT_FOUND` if none is being made, or if what the node holds changed since
   *   it began (the pages would not add up); `NODE_FAILED` once the node's disk has failed.
   */
  summaryPage(): SummaryPage {
    this.#disk.throwIfFailed();
    return this.#paged.nextSummaryPage(this.#changes);
  }

  /** Every blob file present, with its size. */
  async #blobs(): Promise<Map<string, number>> {
    this.#disk.throwIfFailed();
    try {
      return await this.#store.scan();
    } catch (error) {
      throw this.#disk.failedBy(error);
    }
  }

  /** What opening the log found. */
  #opened(): LogOpened {
    const { damagedRegions, damagedBytes, tailCutBytes } = this.#log.replay;
    return { damagedRegions, damagedBytes, tailCutBytes, created: this.#logLost };
  }

  /** Drops a manifest whose record was found damaged at `where`, if it is still held there. */
  #dropDamaged(name: string, version: number, where: number): void {
    // The copies on other ranks are what is left of it (rank 0 copies it back: read repair,
    // scrub, or recovery at the next start).
    this.#env.log.error(
      `dfs: rank ${this.rank}: the log record of "${name}" version ${version} is damaged; ` +
        "it is dropped here, the other replicas keep it",
    );
    if (this.#table.dropDamaged(name, version, where)) this.#changes++;
  }

  /** Lets the thread answer what waits (heartbeats first): a long piece of work goes in steps. */
  #giveWay(): Promise<void> {
    return giveWay(this.#env.clock);
  }

  async close(): Promise<void> {
    await this.#compaction;
    await this.#log.close();
    await this.#store.close();
  }

  /**
   * Re-reads the whole log and checks every record (the scrubber's and fsck's check of the
   * metadata). Damaged records are rewritten from the node's table, which is what was appended;
   * a log shorter than what was written to it (cut under the node) fails the node: its restart
   * replays what is left and rank 0 copies back the rest.
   */
  async #verifyLog(): Promise<LogCheck> {
    const found = await this.#log.verify();
    const check: LogCheck = {
      rank: this.rank,
      bytes: this.#log.sizeBytes,
      records: found.records,
      damagedRegions: found.damagedRegions,
      damagedBytes: found.damagedBytes,
      missingBytes: found.missingBytes,
      rewritten: false,
    };
    if (found.superseded) return check;
    if (found.missingBytes > 0) {
      this.#disk.fail(`its log was cut: ${found.missingBytes} bytes written to it are missing`);
      return check;
    }
    if (found.damagedRegions > 0) {
      this.#env.log.error(
        `dfs: rank ${this.rank}: log has ${found.damagedRegions} damaged region(s) ` +
          `(${found.damagedBytes} bytes); rewriting it from memory`,
      );
      await this.#rewriteLog("table");
      check.rewritten = true;
    }
    return check;
  }

  async #release(name: string, version: number): Promise<boolean> {
    const manifest = this.#table.get(name, version);
    if (!manifest) return false;
    // Chunks kept in the log go with the release record; only the others have blob files.
    const inBlobs = chunkIdsOn(manifest, this.rank).filter((id) => !this.#chunks.has(id, manifest));
    // Log first: a crash before the chunks go leaves only orphans, which start-up removes.
    await this.#append({ kind: "release", name, version });
    if (inBlobs.length > 0) await this.#store.delete(inBlobs);
    this.#compactIfWorthIt();
    return true;
  }

  async #repair(repair: RankRepair): Promise<void> {
    // Rewrite the log to exactly the kept manifests (compaction included), then drop chunks: a
    // crash in between leaves only orphans.
    if (repair.keep) {
      await this.#rewriteLog(repair.keep);
    } else if ((repair.drop ?? []).length > 0 || this.#log.replay.damagedRegions > 0) {
      // The fast path of start-up recovery: what it holds stays, less tombstones, and a log with
      // damage skipped is rewritten so that the damage is gone for good.
      for (const { name, version } of repair.drop ?? []) {
        this.#table.apply({ kind: "release", name, version });
        this.#changes++;
      }
      await this.#rewriteLog("table");
    }
    await this.#store.delete(repair.deleteBlobs);
    await this.#store.syncEntries();
  }

  /**
   * Rewrites the log to commit records of exactly the `kept` manifests, carrying over the bytes of
   * their chunks kept in the log. Given them as bytes, the table is rebuilt from them (a start-up
   * repair: nothing else runs); "table" is a compaction of the table as it stands
   * (`compactTable`), while appends and reads go on: what is appended meanwhile follows in the new
   * file. One rewrite runs at a time.
   */
  async #rewriteLog(kept: Uint8Array | "table"): Promise<void> {
    while (this.#rewriting) await this.#rewriting;
    const done = Promise.withResolvers<void>();
    this.#rewriting = done.promise;
    try {
      // What is written is frozen in the same turn as rewrite() is called below: every record
      // appended before is in it, every one appended after follows it in the new file. Records
      // are read from the old file until the new one's offsets are in the table.
      this.#records.pin();
      const held = {
        log: this.#log,
        inLog: this.#chunks.byId,
        carried: (m: Manifest) => this.#chunks.carriedPlaceOf(m),
        appending: this.#appending,
      };
      if (kept === "table") {
        const [live, dead] = [this.#liveRecords, this.#deadRecords];
        return await compactTable(this.#table, held, {
          path: join(this.#dir, LOG_FILE),
          fs: this.#env.fs,
          giveWay: () => this.#giveWay(),
          damaged: (name, version, where) => this.#dropDamaged(name, version, where),
          compacting: (places) => this.#chunks.compacting(places),
          replaced: (records, swap) => {
            this.#swapped(records.places, swap);
            this.#liveRecords = records.records + this.#liveRecords - live;
            this.#deadRecords -= dead;
          },
        });
      }
      await rewriteKept(kept, held, (places, swap, placed) => {
        this.#swapped(places, swap);
        this.#table = this.#newTable();
        this.#changes++;
        this.#liveRecords = this.#deadRecords = 0;
        let i = 0;
        for (const manifest of readManifests(kept)) {
          const { where, dataAt } = placed[i++];
          const record: LogRecord = { kind: "commit", manifest };
          this.#apply(record, where);
          if (dataAt >= 0) this.#chunks.placed(record, where, dataAt, manifest.chunks[0].size);
        }
      });
    } finally {
      this.#rewriting = null;
      done.resolve();
    }
  }

  /**
   * The new log is the log: records are read from it, and the chunks kept in it are at `places`
   * (less those released meanwhile, taken out as they went), with those appended meanwhile.
   */
  #swapped(places: LogPlaces, swap: LogSwap): void {
    this.#swaps++;
    this.#records.close();
    this.#chunks.swapped(places, swap);
  }

  /**
   * Reads a chunk: kept in the log (found by its id, or through the file the call names), else
   * from its blob.
   */
  async #read(call: Extract<NodeCall, { op: "read" }>): Promise<Uint8Array<ArrayBuffer>> {
    const { id, size } = call;
    const inLog = await this.#chunks.read(id, size, call);
    if (inLog !== undefined) return inLog;
    const into = call.into instanceof ArrayBuffer ? new Uint8Array(call.into) : call.into;
    return await this.#store.read(id, size, { into });
  }

  /**
   * Applies a record to the table first, so that a compaction running meanwhile includes it, then
   * makes it durable; a failed append is undone in the table. `data` travels in the record.
   */
  async #append(record: LogRecord, data?: Uint8Array): Promise<void> {
    const undo = this.#table.undoOf(record);
    const swaps = this.#swaps;
    this.#apply(record);
    const id = data && carriedChunkId(record);
    if (id !== undefined && data) this.#appending.set(id, data);
    try {
      const bytes = encodeRecord(record, data);
      const offset = await this.#log.append(bytes);
      // This runs before any rewrite called after the append can replace the file (the rewrite
      // starts with file I/O; this is the append's next microtask), so the offset still holds.
      // The reader may hold what was at the offset before the record (zeros): it forgets that.
      this.#records.forget();
      this.#table.placed(record, offset);
      if (data) {
        this.#chunks.placed(record, offset, offset + bytes.length - data.length, data.length);
      }
    } catch (error) {
      // Where the records undone are may have moved with a compaction, running or done since:
      // they are then held whole (the log holds them where it moved them).
      const moved = this.#swaps !== swaps || this.#table.frozen;
      for (const { record, where } of undo) this.#table.apply(record, moved ? undefined : where);
      this.#changes++;
      throw error;
    } finally {
      if (id !== undefined && this.#appending.get(id) === data) this.#appending.delete(id);
    }
  }

  /** A table of no manifest, reading its records back from this node's log. */
  #newTable(): ManifestTable {
    return new ManifestTable(
      (where) => this.#records.readSync(where),
      (m, where) => this.#chunks.evicted(m, where),
    );
  }

  /** Applies `record`, whose body is at `where` in the log if it is there already. */
  #apply(record: LogRecord, where?: number): void {
    // Once it is applied, which finds by their id those its slots carried.
    const leaving = this.#chunks.leavingWith(record);
    this.#table.apply(record, where);
    for (const id of leaving) this.#chunks.gone(id);
    this.#changes++;
    const [live, dead] = recordCounts(record);
    this.#liveRecords += live;
    this.#deadRecords += dead;
  }

  /**
   * Starts a compaction when due (`CompactionTrigger`), one at a time, in the background: appends
   * and reads go on meanwhile. One that fails (a full disk) is said to the log.
   */
  #compactIfWorthIt(): void {
    const due = this.#compactWhen.due(this.#log.sizeBytes, this.#liveRecords, this.#deadRecords);
    if (this.#compaction || !due) return;
    this.#compaction = this.#rewriteLog("table").catch((error) => {
      this.#compactWhen.failed(this.#log.sizeBytes);
      this.#env.log.error(`dfs: rank ${this.rank}: cannot compact the log: ${reasonOf(error)}`);
    }).finally(() => (this.#compaction = undefined));
  }
}
