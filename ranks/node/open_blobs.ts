/**
 * Blob files a chunk store keeps open between chunks, so that an upload's chunks, or the chunks
 * of a file being read, open their blob once rather than once per chunk: here an open took ~0.3
 * ms of a 1 MiB chunk's ~1.8 ms write, and ~0.5 ms of a read's ~2.9 ms. Bookkeeping only: the
 * store opens the files, says when a blob goes away (synced, deleted), and closes a writer once
 * no write can be using it. A kept reader is checked before each read (one `fstat`): a blob
 * removed or replaced behind the store's back is read from its path again, so it is found missing
 * or damaged as when every read opened it.
 *
 * @module
 */

import type { DirectFile } from "../env/env.ts";

/** Blobs a store keeps open for direct writes, each a file descriptor until synced or deleted. */
export const OPEN_BLOB_WRITERS_MAX = 8;
/** Blobs a store keeps open for direct reads once no read uses them, the least recently used. */
export const OPEN_BLOB_READERS_MAX = 16;

/** Opens a blob's file for direct I/O, or gives null where the file system refuses it. */
export type OpenBlob = (blob: string) => Promise<DirectFile | null>;

/**
 * Blobs open for writing, the oldest first. The store writes one chunk at a time, and asks only
 * in a write's turn: the file it closes to stay within its limit then has no write in flight.
 */
export class BlobWriters {
  #files = new Map<string, DirectFile>();
  #open: OpenBlob;
  #limit: number;

  constructor(open: OpenBlob, limit = OPEN_BLOB_WRITERS_MAX) {
    this.#open = open;
    this.#limit = limit;
  }

  /** Files open now. */
  get size(): number {
    return this.#files.size;
  }

  /** `blob` open for writing (and created), kept or opened now; null if `open` gave null. */
  async get(blob: string): Promise<DirectFile | null> {
    const kept = this.#files.get(blob);
    if (kept) return kept;
    const file = await this.#open(blob);
    if (file === null) return null;
    this.#files.set(blob, file);
    for (const [oldest, writer] of this.#files) {
      if (this.#files.size <= this.#limit) break;
      this.#files.delete(oldest);
      writer.close();
    }
    return file;
  }

  /**
   * Forgets `blob`'s file and hands it over, for the caller to close once the writes queued
   * before now are done (a descriptor closed under a write could be reused by another open
   * meanwhile, and the write land in another file). A later write opens the blob again.
   */
  take(blob: string): DirectFile | undefined {
    const file = this.#files.get(blob);
    this.#files.delete(blob);
    return file;
  }

  /** Every blob's file, handed over as `take` does. */
  takeAll(): DirectFile[] {
    const files = [...this.#files.values()];
    this.#files.clear();
    return files;
  }
}

interface Reader {
  file: DirectFile;
  /** Reads using the file now. */
  users: number;
  /** Whether `BlobReaders` keeps it: a file no longer kept closes once its last read is done. */
  kept: boolean;
}

/**
 * Blobs open for reading, shared by concurrent reads (each reads at its own position). A file is
 * kept until its blob is dropped (deleted), or it is the least recently used past the limit; it
 * closes when the last read using it is done.
 */
export class BlobReaders {
  #files = new Map<string, Reader>();
  #open: OpenBlob;
  #limit: number;
  /** Opens in progress, which reads of the same blob wait for rather than open it again. */
  #opening = new Map<string, Promise<DirectFile | null>>();
  /** Drops so far: a file opened across one is used once and not kept (its blob may be gone). */
  #drops = 0;

  constructor(open: OpenBlob, limit = OPEN_BLOB_READERS_MAX) {
    this.#open = open;
    this.#limit = limit;
  }

  /** Files kept now (a file a read still uses after it was dropped is not counted). */
  get size(): number {
    return this.#files.size;
  }

  /**
   * Runs `io` on `blob` open for reading; undefined if `open` gave null.
   *
   * @throws whatever `open` or `io` throws (a missing blob: `Deno.errors.NotFound`).
   */
  async use<T>(blob: string, io: (file: DirectFile) => Promise<T>): Promise<T | undefined> {
    // A reader is counted in the same step it is found or opened: a drop in between would close
    // it under the read (and its descriptor could be another file's by then).
    let reader = this.#files.get(blob);
    if (reader && !reader.file.linked()) {
      // Removed or replaced behind the store's back: read what the path holds now, as a read
      // that opens its blob would (a missing blob is then found missing, and repaired).
      this.#forget(blob, reader);
      reader = undefined;
    }
    if (reader) {
      this.#files.delete(blob); // the most recently used last
      this.#files.set(blob, reader);
      reader.users++;
    } else {
      const opened = await this.#opened(blob);
      if (opened === null) return undefined;
      reader = opened;
    }
    try {
      return await io(reader.file);
    } finally {
      reader.users--;
      if (reader.users === 0 && !reader.kept) reader.file.close();
    }
  }

  /**
   * `blob` opened, or the file an open already in progress kept, with this read counted in. Kept
   * unless a drop came while it opened: the blob it opened may be gone, so it serves one read and
   * closes.
   */
  async #opened(blob: string): Promise<Reader | null> {
    const pending = this.#opening.get(blob);
    if (pending) {
      await pending.catch(() => {});
      const kept = this.#files.get(blob);
      if (kept) {
        kept.users++;
        return kept;
      }
    }
    const drops = this.#drops;
    const opening = this.#open(blob);
    this.#opening.set(blob, opening);
    let file: DirectFile | null;
    try {
      file = await opening;
    } finally {
      if (this.#opening.get(blob) === opening) this.#opening.delete(blob);
    }
    if (file === null) return null;
    const reader = { file, users: 1, kept: false };
    if (drops === this.#drops && !this.#files.has(blob)) {
      reader.kept = true;
      this.#files.set(blob, reader);
      for (const [oldest, unused] of this.#files) {
        if (this.#files.size <= this.#limit) break;
        this.#forget(oldest, unused);
      }
    }
    return reader;
  }

  /** `blob` is gone or changed: its file closes once no read uses it, and the next read opens it. */
  drop(blob: string): void {
    this.#drops++;
    const reader = this.#files.get(blob);
    if (reader) this.#forget(blob, reader);
  }

  /** Drops every blob (the store closes). */
  dropAll(): void {
    this.#drops++;
    for (const [blob, reader] of this.#files) this.#forget(blob, reader);
  }

  #forget(blob: string, reader: Reader): void {
    this.#files.delete(blob);
    reader.kept = false;
    if (reader.users === 0) reader.file.close();
  }
}
