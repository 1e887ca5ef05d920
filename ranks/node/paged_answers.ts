/**
 * The answers a data node gives in pieces, one asked for at a time: the manifests of its scan
 * (`ScanPieces`, `SCAN_PAGE_BYTES` each) and the pages of its summary (`Summarizer`), each made
 * as it is asked for. Each holds only while what the node holds stays the same: the node counts
 * its changes, and a piece asked for after one is refused, as the pieces would not add up. Pure.
 *
 * @module
 */

import { assert, DfsError } from "../../protocol/errors.ts";
import type { Manifest } from "../common/manifest.ts";
import { ManifestWriter } from "../common/manifest_codec.ts";
import {
  SCAN_PAGE_BYTES,
  type ScanPiece,
  SUMMARY_PAGE_BYTES,
  type SummaryPage,
} from "../common/node_protocol.ts";
import type { Summarizer } from "./summary.ts";
import { TABLE_STEP_MANIFESTS } from "./table_snapshot.ts";

/**
 * A scan's manifests (`ManifestWriter` encoding, back to back), cut into pieces of exactly
 * `pageBytes` but the last, encoded as each is asked for: awaiting `giveWay` every
 * `TABLE_STEP_MANIFESTS` manifests taken (each may be a record read back from the log), so that
 * a scan of millions neither holds them all in one buffer nor holds the thread for seconds.
 */
export class ScanPieces {
  #manifests: Iterator<Manifest>;
  #pageBytes: number;
  #giveWay: () => Promise<void>;
  #stepManifests: number;
  #whenDone: (() => void) | undefined;
  #scratch = new ManifestWriter();
  /** Bytes encoded that did not fit the last piece: the next one starts with them. */
  #carry: Uint8Array = new Uint8Array(0);
  /** The manifest taken ahead, to know whether a full piece is the last. */
  #ahead: IteratorResult<Manifest> | undefined;
  #done = false;
  #busy = false;

  constructor(manifests: Iterable<Manifest>, options: {
    pageBytes?: number;
    giveWay: () => Promise<void>;
    stepManifests?: number;
    /** Called once the last piece is on its way (`ended()`). */
    whenDone?: () => void;
  }) {
    this.#manifests = manifests[Symbol.iterator]();
    this.#pageBytes = options.pageBytes ?? SCAN_PAGE_BYTES;
    this.#giveWay = options.giveWay;
    this.#stepManifests = options.stepManifests ?? TABLE_STEP_MANIFESTS;
    this.#whenDone = options.whenDone;
  }

  /** True once the last piece was made. */
  get done(): boolean {
    return this.#done;
  }

  /** The last piece is on its way: calls `whenDone`. */
  ended(): void {
    const whenDone = this.#whenDone;
    this.#whenDone = undefined;
    whenDone?.();
  }

  /**
   * The next piece: `pageBytes` of manifests, or what is left. `check` is called after each time
   * it gave way: it throws to stop (what the manifests come from changed meanwhile).
   */
  async next(check: () => void): Promise<Uint8Array> {
    assert(!this.#done && !this.#busy, "a scan's pieces are asked for one after another");
    this.#busy = true;
    try {
      return await this.#next(check);
    } finally {
      this.#busy = false;
    }
  }

  async #next(check: () => void): Promise<Uint8Array> {
    const piece = new Uint8Array(this.#pageBytes);
    let at = 0;
    const take = (bytes: Uint8Array) => {
      const fits = Math.min(bytes.length, piece.length - at);
      piece.set(bytes.subarray(0, fits), at);
      at += fits;
      this.#carry = bytes.subarray(fits);
    };
    take(this.#carry);
    const scratch = this.#scratch;
    let taken = 0;
    while (at < piece.length) {
      const next = this.#take();
      if (next.done) break;
      scratch.reset();
      scratch.add(next.value);
      if (at + scratch.byteLength <= piece.length) {
        scratch.copyTo(piece, at);
        at += scratch.byteLength;
      } else {
        take(scratch.bytes());
      }
      if (++taken % this.#stepManifests === 0) {
        await this.#giveWay();
        check();
      }
    }
    if (this.#carry.length === 0) {
      this.#ahead = this.#take();
      this.#done = this.#ahead.done === true;
    }
    return at === piece.length ? piece : piece.slice(0, at);
  }

  #take(): IteratorResult<Manifest> {
    const ahead = this.#ahead;
    this.#ahead = undefined;
    return ahead ?? this.#manifests.next();
  }
}

/** A node's scan and summary being sent in pieces. */
export class PagedAnswers {
  #rank: number;
  #summaryPageBytes: number;
  #summary: { summarizer: Summarizer; at: number } | undefined;
  #scan: { pieces: ScanPieces; at: number } | undefined;

  /**
   * For rank `rank`, whose summaries go in pages of about `summaryPageBytes` (default
   * `SUMMARY_PAGE_BYTES`).
   */
  constructor(rank: number, options: { summaryPageBytes?: number } = {}) {
    this.#rank = rank;
    this.#summaryPageBytes = options.summaryPageBytes ?? SUMMARY_PAGE_BYTES;
  }

  /**
   * Begins sending a scan's pieces, of the node as it was after `at` changes (by default
   * `changes()` now): the first piece.
   *
   * @throws {DfsError} `NOT_FOUND` if the node changed while the piece was made.
   */
  beginScan(pieces: ScanPieces, changes: () => number, at = changes()): Promise<ScanPiece> {
    this.#summary = undefined; // rank 0 reads everything instead
    this.#scan = { pieces, at };
    return this.nextScanPiece(changes);
  }

  /**
   * The next piece of the scan begun, and whether more follow.
   *
   * @throws {DfsError} `NOT_FOUND` if none is being sent, or if the node changed since it began
   *   (before or while the piece was made).
   */
  async nextScanPiece(changes: () => number): Promise<ScanPiece> {
    const scan = this.#scan;
    if (scan === undefined) {
      throw new DfsError("NOT_FOUND", `Rank ${this.#rank} has no scan being sent`);
    }
    const check = () => {
      if (scan.at === changes()) return;
      if (this.#scan === scan) this.#scan = undefined;
      throw this.#changed("scan");
    };
    let manifests: Uint8Array;
    try {
      check();
      manifests = await scan.pieces.next(check);
      check();
    } catch (error) {
      if (this.#scan === scan) this.#scan = undefined;
      throw error;
    }
    if (scan.pieces.done) {
      if (this.#scan === scan) this.#scan = undefined;
      scan.pieces.ended();
    }
    return { manifests, more: !scan.pieces.done };
  }

  /** Begins a summary, of the node as it is after `changes` changes: its first page. */
  beginSummary(summarizer: Summarizer, changes: number): SummaryPage {
    this.#summary = { summarizer, at: changes };
    return this.nextSummaryPage(changes);
  }

  /**
   * The next page of the summary begun.
   *
   * @throws {DfsError} `NOT_FOUND` if none is being made, or if the node changed since it began.
   */
  nextSummaryPage(changes: number): SummaryPage {
    const summary = this.#summary;
    if (summary === undefined) {
      throw new DfsError("NOT_FOUND", `Rank ${this.#rank} has no summary being made`);
    }
    if (summary.at !== changes) {
      this.#summary = undefined;
      throw this.#changed("summary");
    }
    const page = summary.summarizer.next(this.#summaryPageBytes);
    if (summary.summarizer.done) this.#summary = undefined;
    return page;
  }

  #changed(what: string): DfsError {
    return new DfsError(
      "NOT_FOUND",
      `Rank ${this.#rank} dropped its ${what}: what it holds changed since the ${what} began`,
    );
  }
}
