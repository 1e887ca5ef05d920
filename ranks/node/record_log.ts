/**
 * The metadata log of a data node: an append-only file of checksummed records, written with group
 * commit (appends that arrive while a write+fdatasync runs share the next one).
 *
 * Records are opaque, non-empty bytes (the caller CBOR-encodes them), framed on disk with their
 * length and CRC32 (`record_frame.ts`, pure), and followed by zeros the log keeps written and
 * fdatasynced ahead of them (`LOG_PREALLOCATE_BYTES`, `_log_file.ts`): a batch then overwrites
 * allocated space instead of growing the file, whose fdatasync would also write the inode. This
 * module carries out the file I/O, through the `FileSystem` it is given (Deno's by default).
 *
 * @module
 */

import { dirname } from "node:path";
import { concatBytes } from "../../protocol/bytes.ts";
import { assert, DfsError } from "../../protocol/errors.ts";
import { denoFileSystem } from "../env/deno_env.ts";
import { stderrLog } from "../env/system.ts";
import type { FileHandle, FileSystem, Log } from "../env/env.ts";
import { reasonOf, syncDirectory, writeAllSync } from "./_fs.ts";
import {
  checkRewritten,
  DEFAULT_PREALLOCATION,
  LOG_PREALLOCATE_BYTES,
  LOG_PREALLOCATE_MARGIN_BYTES,
  type Preallocation,
  type Records,
  ZeroSpace,
} from "./_log_file.ts";
import { LogReader } from "./_log_reader.ts";
import { LogRewrite, type LogSwap, type SwappedFile } from "./_log_swap.ts";
import {
  AppendQueue,
  type Queued,
  RECORD_BATCH_BYTES_MAX,
  RECORD_QUEUE_BYTES_MAX,
  RECORD_QUEUE_RECORDS_MAX,
  type RewriteCall,
} from "./_append_queue.ts";
import {
  type LogVerifyReport,
  openLogFile,
  REPLAY_READ_BYTES,
  type ReplayReport,
  scanLogFile,
  supersededReport,
  verifyReportOf,
} from "./log_replay.ts";
import {
  type DamagedRegion,
  RECORD_HEADER_SIZE_BYTES,
  RECORD_SIZE_BYTES_MAX,
} from "./record_frame.ts";

export {
  type DamagedRegion,
  LOG_PREALLOCATE_BYTES,
  LOG_PREALLOCATE_MARGIN_BYTES,
  type LogSwap,
  type LogVerifyReport,
  type Preallocation,
  RECORD_BATCH_BYTES_MAX,
  RECORD_QUEUE_BYTES_MAX,
  RECORD_QUEUE_RECORDS_MAX,
  type Records,
  REPLAY_READ_BYTES,
  type ReplayReport,
};

/**
 * Microtask turns the writer waits after a batch before taking the next one. Without it, callers
 * that append again as soon as their append resolves alternate between a batch of one and a batch
 * of the rest; 16 turns cost well under a microsecond and doubled the rate of 16 appenders.
 */
const BATCH_GATHER_MICROTASKS = 16;

/**
 * Where a record log does its I/O and reports damage: Deno's file system and stderr unless told
 * (an `Env` will do); and the zero space it keeps ahead of its records.
 */
export interface RecordLogOptions {
  fs?: FileSystem;
  log?: Log;
  /**
   * Default `LOG_PREALLOCATE_BYTES`, extended under `LOG_PREALLOCATE_MARGIN_BYTES`; `bytes: 0`
   * keeps none (every batch grows the file).
   */
  preallocation?: Preallocation;
}

/**
 * Opens (creating if missing) the log at path and replays it, reading it piece by piece: each
 * intact record goes to `onRecord` with the file offset of its body, as a view that is only valid
 * during the call (so a log holding file data never has to fit in memory). `log.replay` says what
 * was found; damage and cuts are also reported to `options.log`. Zeros after the last record are
 * the log's clean end: kept (fdatasynced) for the next appends, and brought up to
 * `LOG_PREALLOCATE_BYTES` before it returns if under `LOG_PREALLOCATE_MARGIN_BYTES` (appends
 * then extend them in the background).
 *
 * Where a record is not intact (a short header, a length of 0 or over RECORD_SIZE_BYTES_MAX, a
 * short body, a CRC mismatch), the replay resynchronises on the next intact record (see
 * `RecordScanner`): the bytes in between are a damaged region, skipped and left in the file (the
 * other replicas of what they held make up for them). Only damage that no intact record follows
 * is a torn tail, what a crash leaves at the end: the file is truncated to the last intact record
 * and that truncation is fsynced. If the search through damage runs out of `RESYNC_CRC_BYTES_MAX`,
 * the rest of the file is kept but not replayed, and the log is opened failed (`log.failure`):
 * cutting it could destroy intact records, and appending after it would write records the next
 * replay does not reach. A stale `path + ".tmp"` left by an interrupted `rewrite()` is removed.
 *
 * @throws {DfsError} UNAVAILABLE if the file cannot be read, created or truncated.
 */
export async function replayRecordLog(
  path: string,
  onRecord: (body: Uint8Array, offset: number) => void,
  options: RecordLogOptions = {},
): Promise<RecordLog> {
  const { fs = denoFileSystem, log = stderrLog, preallocation = DEFAULT_PREALLOCATION } = options;
  const opened = await openLogFile(path, onRecord, { fs, log, preallocation });
  return new RecordLog(path, { fs, log, preallocation, ...opened });
}

/**
 * Opens the log like `replayRecordLog()` and returns every intact record (as copies) in order,
 * with the file offset of each record's body.
 *
 * @throws {DfsError} UNAVAILABLE if the file cannot be read, created or truncated.
 */
export async function openRecordLog(
  path: string,
  options: RecordLogOptions = {},
): Promise<{ log: RecordLog; records: Uint8Array[]; offsets: number[] }> {
  const records: Uint8Array[] = [];
  const offsets: number[] = [];
  const log = await replayRecordLog(path, (body, offset) => {
    records.push(body.slice());
    offsets.push(offset);
  }, options);
  return { log, records, offsets };
}

/** A rewrite running: built beside the log while appends go on, then swapped in by the writer. */
interface Running {
  call: RewriteCall;
  job: LogRewrite;
  /** Built: the writer swaps it in before its next batch. */
  built: boolean;
  /** Settles once it is swapped in or has failed. */
  done: PromiseWithResolvers<void>;
}

/**
 * An open record log. Open it with `openRecordLog()`. Appends and rewrites take effect in the order
 * they were called; one writer loop carries them out.
 */
export class RecordLog {
  #path: string;
  #fs: FileSystem;
  #file: FileHandle;
  /** Opened by the first small read and kept (an open per read cost a third of a node's read time). */
  #reader: LogReader;
  #log: Log;
  #preallocation: Preallocation;
  /** Where the records end (the logical end): the next batch is written here. */
  #sizeBytes: number;
  /** The zeros ahead of the records: `#sizeBytes` <= its `zeroedBytes`. */
  #space: ZeroSpace;
  #syncCount = 0;
  /** Appends for the next batches, and the calls waiting behind them. */
  #calls = new AppendQueue();
  /** The writer loop, while it runs. */
  #writing: Promise<void> | undefined;
  /** The rewrite running, from when the writer starts it until it is swapped in or fails. */
  #rewrite: Running | undefined;
  /** Set when a failed batch could not be cut off the file: appending after it would be lost. */
  #broken: DfsError | undefined;
  /**
   * Set, for good, when the file is no longer one a replay would read all of: it was removed or
   * changed size under the node, or holds damage that could not be searched.
   */
  #failure: DfsError | undefined;
  /** Bumped by every rewrite: a check that started before one means nothing. */
  #generation = 0;
  #closing = false;
  /** What opening the log found: records replayed, damage skipped, a torn tail cut. */
  readonly replay: ReplayReport;

  /**
   * Use `openRecordLog()`; `file` is open for writing on `fs`, holds records up to `sizeBytes`
   * then durable zeros up to `zeroedBytes` (default `sizeBytes`), and is owned by the log from now
   * on; `replay` is what opening it found; a `failure` fails every append. Appends extend the
   * zeros in the background (`preallocation`, default none; failures go to `log`).
   */
  constructor(
    path: string,
    opened: {
      fs: FileSystem;
      file: FileHandle;
      sizeBytes: number;
      zeroedBytes?: number;
      replay: ReplayReport;
      failure?: DfsError;
      log?: Log;
      preallocation?: Preallocation;
    },
  ) {
    const { fs, sizeBytes, zeroedBytes = sizeBytes, log = stderrLog } = opened;
    assert(zeroedBytes >= sizeBytes, "the zeros follow the records");
    this.#path = path;
    this.#fs = fs;
    this.#reader = new LogReader(path, fs);
    this.#file = opened.file;
    this.#log = log;
    this.#preallocation = opened.preallocation ?? { bytes: 0, marginBytes: 0 };
    this.#sizeBytes = sizeBytes;
    this.#space = new ZeroSpace(path, { fs, log, preallocation: this.#preallocation, zeroedBytes });
    this.replay = opened.replay;
    this.#failure = opened.failure;
  }

  /**
   * Why appends fail, if they all do: the file was removed or changed size under the node, or
   * holds damage a replay could not search past (for good), or a failed batch could not be cut
   * back off it (until a `rewrite()`). The node should report itself failed.
   */
  get failure(): DfsError | undefined {
    return this.#failure ?? this.#broken;
  }

  /**
   * Bytes of records in the log file that are durable, every record whose append() has resolved:
   * its logical end (the zeros after it are not counted).
   */
  get sizeBytes(): number {
    return this.#sizeBytes;
  }

  /** Bytes of the log file that are durable: its records, then the zeros written ahead of them. */
  get zeroedBytes(): number {
    return this.#space.zeroedBytes;
  }

  /** How many batches (write + fdatasync) were started, to observe group commit. */
  get syncCount(): number {
    return this.#syncCount;
  }

  /**
   * Appends one record; resolves once it is durable (write + fdatasync), with the file offset of the
   * record's body (valid until the next `rewrite()`). Appends arriving while a
   * batch is written are batched into the next single write + fdatasync of up to
   * `RECORD_BATCH_BYTES_MAX`. The record is copied when it is queued: at once, unless
   * `RECORD_QUEUE_BYTES_MAX` or `RECORD_QUEUE_RECORDS_MAX` are reached or a rewrite is pending, so
   * don't change it before the returned promise settles.
   *
   * After each batch's write + fdatasync one synchronous fstat of the open file (a batch holds many
   * records) checks that the file is still the log: still linked and of the size expected (its
   * zeros included). If not, the batch and every later append fail (`failure`): nothing is
   * acknowledged into a file that was removed or cut under the node.
   *
   * A batch is written over the zeros kept ahead of the records; one that does not fit in them
   * waits for an extension running (see `LOG_PREALLOCATE_MARGIN_BYTES`), then grows the file.
   *
   * @throws {DfsError} TOO_LARGE over `RECORD_SIZE_BYTES_MAX`; UNAVAILABLE if the write or
   * fdatasync of its batch fails (a full disk): then no record of the batch is in the log; and
   * UNAVAILABLE with `failure`, once the file was removed or changed size under the node.
   */
  async append(record: Uint8Array): Promise<number> {
    assert(!this.#closing, "append() is not called after close()");
    if (record.length > RECORD_SIZE_BYTES_MAX) {
      throw new DfsError(
        "TOO_LARGE",
        `Cannot append record: ${record.length} bytes is over the limit of ${RECORD_SIZE_BYTES_MAX}`,
      );
    }
    assert(record.length > 0, "a record is not empty");
    return await new Promise<number>((resolve, reject) => {
      this.#calls.push({ record, resolve, reject });
      this.#admit();
    });
  }

  /**
   * Replaces the log with these records followed by every record appended meanwhile, atomically
   * (compaction), while appends go on. Once the appends called before it are durable, it writes
   * `path + ".tmp"` beside the log (taking the records one by one from an async iterable, if given
   * one, as their turn comes), while appends go on into the old file; then copies after them what
   * was appended meanwhile, the last piece (under `REWRITE_TAIL_PAUSE_BYTES`) with appends paused,
   * fdatasyncs it and renames it over the log (see `LogRewrite`). Appends then go on into the new
   * file, once the folder is fsynced.
   *
   * Offsets change at the swap: `swapped` is told, synchronously, before any append resolves into
   * the new file, where each rewritten record's body is (`LogSwap.offsets`) and where the records
   * appended meanwhile went (`tailFrom`, `shift`); reads of the log use the new file from then
   * on. Resolves with the same, once the folder is fsynced. One rewrite runs at a time: a second
   * one called meanwhile, and every append called after it, waits for the first.
   *
   * @throws {DfsError} TOO_LARGE if a record is over `RECORD_SIZE_BYTES_MAX` (nothing changes);
   * UNAVAILABLE if writing fails (the old log stays, unless the rename was done: if the folder's
   * fsync fails after it, the log has failed for good, its `failure`), or with `failure` if the
   * log has failed for good.
   */
  async rewrite(
    records: Records,
    options: { swapped?: (swap: LogSwap) => void } = {},
  ): Promise<LogSwap> {
    assert(!this.#closing, "rewrite() is not called after close()");
    if (Array.isArray(records)) { for (const record of records) checkRewritten(record); }
    return await new Promise<LogSwap>((resolve, reject) => {
      this.#calls.push({ records, swapped: options.swapped, resolve, reject });
      this.#admit();
    });
  }

  /**
   * Reads `size` bytes at `offset` of the log file (part of a record appended earlier). Offsets
   * change with `rewrite()`: the caller must not read across one.
   *
   * @throws {DfsError} UNAVAILABLE if the file cannot be read; CORRUPTED if it ends first.
   */
  read(offset: number, size: number): Promise<Uint8Array<ArrayBuffer>> {
    return this.#reader.read(offset, size);
  }

  /**
   * Re-reads the log file from its start up to the end of its durable records when the call
   * starts, streaming with a bounded buffer (see `scanLogFile`), and checks every record,
   * resynchronising past damage as a replay does (zeros there are damage too). Appends go on
   * meanwhile (they land past that end). `missingBytes` > 0 means the file is now shorter than
   * its durable records and zeros: it was cut under the node (a record cut short counts as
   * damaged). If a `rewrite()` runs meanwhile, the report is `superseded`: its counts mean nothing.
   *
   * @throws {DfsError} UNAVAILABLE if the file cannot be opened, read or fstat'd.
   */
  async verify(): Promise<LogVerifyReport> {
    assert(!this.#closing, "verify() is not called after close()");
    const generation = this.#generation;
    const limitBytes = this.#sizeBytes;
    const zeroedBytes = this.#space.zeroedBytes;
    try {
      using file = await this.#fs.open(this.#path, { read: true });
      const { report, bytesRead } = await scanLogFile(file, () => {}, { limitBytes });
      const { size } = file.statSync();
      if (this.#generation !== generation) return supersededReport();
      // A failed batch cut back meanwhile lowers the zeros' end, never below limitBytes.
      const expectedBytes = Math.min(zeroedBytes, this.#space.zeroedBytes);
      const missingBytes = Math.max(limitBytes - bytesRead, expectedBytes - size, 0);
      return verifyReportOf(report, missingBytes);
    } catch (error) {
      if (this.#generation !== generation) return supersededReport();
      throw new DfsError("UNAVAILABLE", `Cannot verify log "${this.#path}": ${reasonOf(error)}`, {
        cause: error,
      });
    }
  }

  /** Waits for every append and rewrite called before, then closes the file. */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    while (this.#writing || this.#rewrite) await (this.#writing ?? this.#rewrite!.done.promise);
    assert(this.#calls.waiting === 0 && this.#calls.queued === 0, "every call is carried out");
    await this.#space.settled();
    this.#file.close();
    this.#reader.close();
  }

  /** Queues the waiting appends that fit and starts the writer loop if it has work. */
  #admit(): void {
    this.#calls.fill();
    if (this.#writing || !this.#hasWork()) return;
    this.#writing = this.#write().finally(() => {
      this.#writing = undefined;
      this.#admit();
    });
  }

  /** Batches to commit, a rewrite built to swap in, or one to start (none running). */
  #hasWork(): boolean {
    return this.#calls.queued > 0 || this.#rewrite?.built === true ||
      (this.#calls.waiting > 0 && this.#rewrite === undefined);
  }

  /**
   * The writer loop: swaps in a rewrite once it is built, commits batches until the queue is
   * empty, then starts a rewrite waiting at the head (none running), and so on. It stops when
   * nothing is left but a rewrite being built (which starts it again once built) or one waiting
   * for it. Never rejects: a failure rejects the calls it concerns.
   */
  async #write(): Promise<void> {
    // Appends called in the same turn as the one that started the writer join its first batch: a
    // node takes several commits from one message, each reaching append() in turn, and the first
    // was written and fdatasynced alone (3.7 records a batch with 16 clients putting 4 KiB files).
    await null;
    while (true) {
      if (this.#rewrite?.built) {
        await this.#swap(this.#rewrite);
        continue;
      }
      this.#calls.fill();
      if (this.#calls.queued > 0) {
        await this.#commit(this.#calls.takeBatch());
        // Lets the appenders just resolved append again, so their records join the next batch
        // rather than trail it in a batch of one.
        for (let turn = 0; turn < BATCH_GATHER_MICROTASKS; turn++) await null;
        continue;
      }
      // An empty queue admits any append, so only a rewrite can be left at the head.
      if (this.#calls.waiting === 0 || this.#rewrite) return;
      this.#startRewrite(this.#calls.takeRewrite());
    }
  }

  async #commit(batch: Queued[]): Promise<void> {
    const data = batch.length === 1
      ? batch[0].frame
      : concatBytes(batch.map((queued) => queued.frame));
    assert(data.length <= Math.max(RECORD_BATCH_BYTES_MAX, batch[0].frame.length), "batch size");
    const end = this.#sizeBytes + data.length;
    try {
      if (this.#failure) throw this.#failure;
      if (this.#broken) throw this.#broken;
      // Past the zeros, an extension running writes: wait for it, then grow the file if need be.
      if (end > this.#space.zeroedBytes) await this.#space.settled();
      const grows = end > this.#space.zeroedBytes;
      this.#syncCount++;
      this.#file.seekSync(this.#sizeBytes, Deno.SeekMode.Start);
      // The batch goes into the page cache synchronously (microseconds for a few kilobytes);
      // only the fdatasync, which waits for the disk, leaves the thread.
      writeAllSync(this.#file, data);
      await this.#file.syncData();
      if (grows) this.#space.grewTo(end);
      this.#checkStillTheLog();
      let offset = this.#sizeBytes;
      this.#sizeBytes = end;
      for (const queued of batch) {
        queued.resolve(offset + RECORD_HEADER_SIZE_BYTES);
        offset += queued.frame.length;
      }
      this.#space.extendIfLow(end);
    } catch (error) {
      const failure = error instanceof DfsError ? error : new DfsError(
        "UNAVAILABLE",
        `Cannot append record: ${reasonOf(error)}`,
        { cause: error },
      );
      if (failure !== this.#failure) await this.#cutBack(); // a failed file is not the log's
      for (const queued of batch) queued.reject(failure);
    }
  }

  /**
   * Checks with one fstat of the open file that it is still the log after a batch: linked, and
   * as long as its records and zeros (or, while an extension runs, up to where it reaches). If
   * not, fails the log for good.
   *
   * @throws {DfsError} UNAVAILABLE, the log's `failure`, if not.
   */
  #checkStillTheLog(): void {
    const { size, nlink } = this.#file.statSync();
    let reason: string | undefined;
    const expected = this.#space.unexpected(size);
    if (nlink === 0) reason = "was removed under the node";
    else if (expected !== undefined) {
      reason = `changed size under the node: ${size} bytes, ${expected} expected`;
    }
    if (reason === undefined) return;
    this.#failure = new DfsError(
      "UNAVAILABLE",
      `Cannot append record: the log file "${this.#path}" ${reason}`,
    );
    throw this.#failure;
  }

  /**
   * Truncates the file back to its durable records after a failed batch (their zeros go too: the
   * batch may have written over them), once no extension runs.
   */
  async #cutBack(): Promise<void> {
    if (this.#broken) return;
    await this.#space.settled();
    try {
      await this.#file.truncate(this.#sizeBytes);
      this.#space.cutTo(this.#sizeBytes);
    } catch (error) {
      this.#broken = new DfsError(
        "UNAVAILABLE",
        `Cannot append record: the log could not be cut back after a failed write: ${
          reasonOf(error)
        }`,
        { cause: error },
      );
    }
  }

  /**
   * Starts building `call`'s new file beside the log, from where its records end now (every
   * append called before is durable); appends go on meanwhile.
   */
  #startRewrite(call: RewriteCall): void {
    if (this.#failure) return call.reject(this.#failure);
    this.#generation++;
    const job = new LogRewrite(this.#path, {
      fs: this.#fs,
      tailFrom: this.#sizeBytes,
      zeroBytes: this.#preallocation.bytes,
    });
    const running: Running = { call, job, built: false, done: Promise.withResolvers() };
    this.#rewrite = running;
    job.build(call.records, () => this.#sizeBytes).then(() => {
      running.built = true;
    }, (error) => {
      this.#rewrite = undefined;
      running.done.resolve();
      call.reject(error);
    }).finally(() => this.#admit());
  }

  /**
   * Swaps in a rewrite built, with no batch running: copies the rest of the tail, renames the new
   * file over the log, tells the caller, then fsyncs the folder before any append goes on.
   */
  async #swap(running: Running): Promise<void> {
    const { call, job, done } = running;
    try {
      if (this.#failure) {
        await job.abort();
        throw this.#failure;
      }
      // An extension opens the file by its path: it must not open the new one.
      await this.#space.settled();
      // Reads go on through the old file until the caller knows the new offsets.
      this.#reader.pin();
      const swapped = await job.finish(this.#sizeBytes);
      this.#swapped(swapped);
      let told: unknown;
      try {
        call.swapped?.(swapped.swap);
      } catch (error) {
        told = error;
      }
      await this.#syncFolderAfterSwap();
      if (told !== undefined) throw told;
      call.resolve(swapped.swap);
    } catch (error) {
      call.reject(error);
    } finally {
      this.#rewrite = undefined;
      done.resolve();
    }
  }

  /** The new file is the log from now on: appends and reads go to it. */
  #swapped({ file, sizeBytes, zeroedBytes }: SwappedFile): void {
    this.#generation++;
    this.#file.close();
    this.#file = file;
    this.#reader.close(); // it reads the old file, whose offsets no longer hold
    this.#sizeBytes = sizeBytes;
    this.#space = new ZeroSpace(this.#path, {
      fs: this.#fs,
      log: this.#log,
      preallocation: this.#preallocation,
      zeroedBytes,
    });
    this.#broken = undefined;
  }

  /**
   * Makes the rename durable before any append lands in the new file: if it cannot be, a crash
   * could bring back the old file without them, so the log fails for good.
   *
   * @throws {DfsError} UNAVAILABLE, the log's `failure`, if the fsync fails.
   */
  async #syncFolderAfterSwap(): Promise<void> {
    try {
      await syncDirectory(this.#fs, dirname(this.#path));
    } catch (error) {
      this.#failure = new DfsError(
        "UNAVAILABLE",
        `Cannot rewrite log: the folder of "${this.#path}" could not be fsynced after the ` +
          `rename: ${reasonOf(error)}`,
        { cause: error },
      );
      throw this.#failure;
    }
  }
}
