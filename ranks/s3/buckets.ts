/**
 * The S3 gateway's buckets: which exist and when each was created, kept durably in a file of
 * rank 0's data folder (`BUCKETS_FILE`). A bucket is a top-level name segment of the store: object
 * `k` of bucket `b` is the file `b/k`. It exists once created, and stays (empty) until deleted.
 *
 * @module
 */

import { join } from "node:path";
import { DfsError } from "../../protocol/errors.ts";
import { readJsonFile, writeFileDurably } from "../env/durable.ts";
import type { FileSystem } from "../env/env.ts";

/** The file in the data folder that lists the buckets. */
export const BUCKETS_FILE = "s3-buckets.json";
/** Most buckets one store keeps (AWS's default quota is 100; Garage has none). */
export const BUCKETS_MAX = 1000;

/** A bucket and when it was created (ms since the epoch). */
export interface Bucket {
  name: string;
  created: number;
}

/** The buckets, as stored; changes are written one at a time, durably, before they count. */
export class Buckets {
  #path: string;
  #fs: FileSystem;
  #buckets: Map<string, number>;
  #saving: Promise<void> = Promise.resolve();

  private constructor(path: string, fs: FileSystem, buckets: Map<string, number>) {
    this.#path = path;
    this.#fs = fs;
    this.#buckets = buckets;
  }

  /**
   * Reads the buckets of `dataDir` (none if it has no file yet).
   *
   * @throws {DfsError} `CORRUPTED` if the file cannot be read as a list of buckets.
   */
  static async open(dataDir: string, fs: FileSystem): Promise<Buckets> {
    const path = join(dataDir, BUCKETS_FILE);
    let stored: unknown;
    try {
      stored = await readJsonFile(fs, path) ?? { buckets: [] };
    } catch (error) {
      throw new DfsError("CORRUPTED", `Cannot read ${path}: ${(error as Error).message}`);
    }
    const list = (stored as { buckets?: unknown }).buckets;
    if (!Array.isArray(list) || !list.every(isBucket)) {
      throw new DfsError("CORRUPTED", `Cannot read ${path}: it is not a list of buckets`);
    }
    return new Buckets(path, fs, new Map(list.map((b) => [b.name, b.created])));
  }

  /** Every bucket, by name. */
  list(): Bucket[] {
    return [...this.#buckets].map(([name, created]) => ({ name, created }))
      .sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  }

  has(name: string): boolean {
    return this.#buckets.has(name);
  }

  /**
   * Creates a bucket at `now`; false if it exists already.
   *
   * @throws {DfsError} `UNAVAILABLE` at `BUCKETS_MAX` buckets.
   */
  create(name: string, now: number): Promise<boolean> {
    return this.#change(() => {
      if (this.#buckets.has(name)) return false;
      if (this.#buckets.size >= BUCKETS_MAX) {
        throw new DfsError("UNAVAILABLE", `Cannot create bucket ${name}: ${BUCKETS_MAX} exist`);
      }
      const next = new Map(this.#buckets).set(name, now);
      return { next, result: true };
    });
  }

  /** Deletes a bucket; false if it did not exist. Its files are the caller's to check first. */
  delete(name: string): Promise<boolean> {
    return this.#change(() => {
      if (!this.#buckets.has(name)) return false;
      const next = new Map(this.#buckets);
      next.delete(name);
      return { next, result: true };
    });
  }

  /** Runs `decide` after the changes before it; writes what it decides, then makes it count. */
  #change(decide: () => false | { next: Map<string, number>; result: boolean }): Promise<boolean> {
    const done = this.#saving.then(async () => {
      const decided = decide();
      if (decided === false) return false;
      const buckets = [...decided.next].map(([name, created]) => ({ name, created }));
      const text = `${JSON.stringify({ buckets }, null, 2)}\n`;
      await writeFileDurably(this.#fs, this.#path, new TextEncoder().encode(text));
      this.#buckets = decided.next;
      return decided.result;
    });
    this.#saving = done.then(() => {}, () => {});
    return done;
  }
}

function isBucket(value: unknown): value is Bucket {
  const b = value as Partial<Bucket>;
  return typeof b === "object" && b !== null && typeof b.name === "string" &&
    Number.isSafeInteger(b.created);
}
