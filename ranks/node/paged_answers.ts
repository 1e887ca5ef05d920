/**
 * The answers a data node gives in pieces, one asked for at a time: the manifests of its scan
 * (`SCAN_PAGE_BYTES` each) and the pages of its summary (`Summarizer`). Each holds only while
 * what the node holds stays the same: the node counts its changes, and a piece asked for after one
 * is refused, as the pieces would not add up. Pure.
 *
 * @module
 */

import { DfsError } from "../../protocol/errors.ts";
import { SCAN_PAGE_BYTES, SUMMARY_PAGE_BYTES, type SummaryPage } from "../common/node_protocol.ts";
import type { Summarizer } from "./summary.ts";

/** A node's scan and summary being sent in pieces. */
export class PagedAnswers {
  #rank: number;
  #scanPageBytes: number;
  #summaryPageBytes: number;
  #summary: { summarizer: Summarizer; at: number } | undefined;
  #scan: { manifests: Uint8Array; sent: number; at: number } | undefined;

  /**
   * For rank `rank`, whose scans go in pieces of `scanPageBytes` (default `SCAN_PAGE_BYTES`) and
   * summaries in pages of about `summaryPageBytes` (default `SUMMARY_PAGE_BYTES`).
   */
  constructor(rank: number, options: { scanPageBytes?: number; summaryPageBytes?: number } = {}) {
    this.#rank = rank;
    this.#scanPageBytes = options.scanPageBytes ?? SCAN_PAGE_BYTES;
    this.#summaryPageBytes = options.summaryPageBytes ?? SUMMARY_PAGE_BYTES;
  }

  /**
   * Begins sending a scan's `manifests`, as the node holds them after `changes` changes: the
   * first piece (all of them if they fit one).
   */
  beginScan(manifests: Uint8Array, changes: number): Uint8Array {
    this.#summary = undefined; // rank 0 reads everything instead
    if (manifests.length <= this.#scanPageBytes) {
      this.#scan = undefined;
      return manifests;
    }
    this.#scan = { manifests, sent: 0, at: changes };
    return this.nextScanPiece(changes);
  }

  /**
   * The next piece of the scan begun.
   *
   * @throws {DfsError} `NOT_FOUND` if none is being sent, or if the node changed since it began.
   */
  nextScanPiece(changes: number): Uint8Array {
    const scan = this.#scan;
    if (scan === undefined) {
      throw new DfsError("NOT_FOUND", `Rank ${this.#rank} has no scan being sent`);
    }
    if (scan.at !== changes) {
      this.#scan = undefined;
      throw this.#changed("scan");
    }
    const piece = scan.manifests.slice(scan.sent, scan.sent + this.#scanPageBytes);
    scan.sent += piece.length;
    if (scan.sent === scan.manifests.length) this.#scan = undefined;
    return piece;
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
