/**
 * A data node: stores chunks and the manifests of the files they belong to. Takes `NodeCall`s and
 * `NodeCollective`s and answers them; owns no socket. The Worker entry (`data_worker.ts`) wires it
 * to a `Comm`; tests drive it directly.
 *
 * @module
 */

import { statfs } from "node:fs/promises";
import { crc32 } from "node:zlib";
import { DfsError } from "../protocol/errors.ts";
import type { ChunkStore } from "./chunk_store.ts";
import {
  chunkIdsOn,
  decodeRecord,
  encodeRecord,
  type LogRecord,
  ManifestTable,
  type RankRepair,
  renamedFrom,
} from "./metadata.ts";
import type { ListAnswer, NodeCall, ScanAnswer } from "./node_protocol.ts";
import type { RecordLog } from "./record_log.ts";

/** Log bytes below which the log is never compacted at run time. */
export const LOG_COMPACT_BYTES_MIN = 64 * 1024 * 1024;

export class DataNode {
  readonly rank: number;
  #store: ChunkStore;
  #dir: string;
  #log: RecordLog;
  #table = new ManifestTable();
  #liveRecords = 0;
  #deadRecords = 0;

  /** Rebuilds the node's manifest table from the records replayed out of its log. */
  constructor(
    rank: number,
    storage: { store: ChunkStore; log: RecordLog; records: readonly Uint8Array[]; dir: string },
  ) {
    this.rank = rank;
    this.#dir = storage.dir;
    this.#store = storage.store;
    this.#log = storage.log;
    for (const bytes of storage.records) this.#apply(decodeRecord(bytes));
  }

  /** Answers one point-to-point request. A `read` answers with bytes the caller may transfer. */
  async handle(call: NodeCall): Promise<unknown> {
    switch (call.op) {
      case "write":
        this.#verify(call.id, call.bytes, call.crc32, "arrived damaged");
        await this.#store.write(call.id, call.bytes);
        return true;
      case "restore":
        this.#verify(call.id, call.bytes, call.crc32, "arrived damaged");
        await this.#store.replace(call.id, call.bytes);
        return true;
      case "read": {
        const bytes = await this.#store.read(call.id, call.size, {
          into: call.into && new Uint8Array(call.into),
        });
        this.#verify(call.id, bytes, call.crc32, `on rank ${this.rank} is corrupted`);
        return bytes;
      }
      case "commit":
        await this.#store.sync(chunkIdsOn(call.manifest, this.rank));
        await this.#append({ kind: "commit", manifest: call.manifest });
        return true;
      case "rename": {
        const { fromVersion, tombstone, manifest } = call;
        await this.#append({ kind: "rename", fromVersion, tombstone, manifest });
        return true;
      }
      case "release":
        return await this.#release(call.name, call.version);
      case "discard":
        await this.#store.delete(call.ids);
        return true;
      case "statfs": {
        const fs = await statfs(this.#dir);
        const { dev } = await Deno.stat(this.#dir);
        return {
          totalBytes: fs.blocks * fs.bsize,
          availableBytes: fs.bavail * fs.bsize,
          device: dev,
        };
      }
      case "repair":
        await this.#repair(call.repair);
        return true;
      default:
        throw new DfsError("INVALID_REQUEST", `Unknown node call ${JSON.stringify(call)}`);
    }
  }

  /** Checks bytes against their CRC32 right before writing and right after reading. */
  #verify(id: string, bytes: Uint8Array, expected: number | undefined, what: string): void {
    if (expected === undefined || crc32(bytes) === expected) return;
    throw new DfsError("CORRUPTED", `Chunk ${id} ${what}: its CRC32 does not match`);
  }

  /** This node's newest version of each name under `prefix`. */
  list(prefix: string): ListAnswer {
    return this.#table.latest(prefix);
  }

  /** Everything this node holds, for start-up recovery. */
  async scan(): Promise<ScanAnswer> {
    const blobs = await this.#store.scan();
    return { rank: this.rank, manifests: [...this.#table.all()], blobs: [...blobs] };
  }

  async close(): Promise<void> {
    await this.#log.close();
    await this.#store.close();
  }

  async #release(name: string, version: number): Promise<boolean> {
    const manifest = this.#table.get(name, version);
    if (!manifest) return false;
    // Log first: a crash before the chunks go leaves only orphans, which start-up removes.
    await this.#append({ kind: "release", name, version });
    await this.#store.delete(chunkIdsOn(manifest, this.rank));
    await this.#compactIfWorthIt();
    return true;
  }

  async #repair(repair: RankRepair): Promise<void> {
    // Rewrite the log to exactly the kept manifests (compaction included), then drop chunks: a
    // crash in between leaves only orphans.
    const records: LogRecord[] = repair.keep.map((manifest) => ({ kind: "commit", manifest }));
    await this.#log.rewrite(records.map(encodeRecord));
    this.#table = new ManifestTable();
    this.#liveRecords = this.#deadRecords = 0;
    for (const record of records) this.#apply(record);
    await this.#store.delete(repair.deleteBlobs);
    await this.#store.syncEntries();
  }

  /**
   * Applies a record to the table first, so that a compaction running meanwhile includes it, then
   * makes it durable; a failed append is undone in the table.
   */
  async #append(record: LogRecord): Promise<void> {
    const undo = this.#undoOf(record);
    this.#apply(record);
    try {
      await this.#log.append(encodeRecord(record));
    } catch (error) {
      for (const step of undo) this.#table.apply(step);
      throw error;
    }
  }

  /** The table changes that take back `record`, should its append fail. */
  #undoOf(record: LogRecord): LogRecord[] {
    const releaseOf = (m: { name: string; version: number }): LogRecord => ({
      kind: "release",
      name: m.name,
      version: m.version,
    });
    switch (record.kind) {
      case "commit":
        return [releaseOf(record.manifest)];
      case "release": {
        const released = this.#table.get(record.name, record.version);
        return released ? [{ kind: "commit", manifest: released }] : [];
      }
      case "rename": {
        const renamed = this.#table.get(renamedFrom(record), record.fromVersion);
        const undo = [releaseOf(record.manifest)];
        if (record.tombstone) undo.push(releaseOf(record.tombstone));
        return renamed ? [...undo, { kind: "commit", manifest: renamed }] : undo;
      }
    }
  }

  #apply(record: LogRecord): void {
    this.#table.apply(record);
    if (record.kind === "commit") {
      this.#liveRecords++;
    } else {
      // A release kills itself and the commit it releases.
      this.#liveRecords--;
      this.#deadRecords += 2;
    }
  }

  /** Rewrites the log once dead records outnumber live ones and it has grown large. */
  async #compactIfWorthIt(): Promise<void> {
    if (this.#log.sizeBytes < LOG_COMPACT_BYTES_MIN || this.#deadRecords <= this.#liveRecords) {
      return;
    }
    const records = [...this.#table.all()].map((manifest) => ({
      kind: "commit" as const,
      manifest,
    }));
    await this.#log.rewrite(records.map(encodeRecord));
    this.#liveRecords = records.length;
    this.#deadRecords = 0;
  }
}
