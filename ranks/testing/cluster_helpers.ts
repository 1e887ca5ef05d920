/**
 * Helpers for tests on the in-process cluster: bytes made from a seed, reading a file whole, and
 * looking at (and damaging) what a data node keeps on its disk.
 *
 * @module
 */

import type { FileStore } from "../common/file_store.ts";
import type { MemoryFileSystem } from "../env/memory_fs.ts";
import { SeededRandom } from "../env/seeded_random.ts";
import type { MemoryCluster } from "./memory_cluster.ts";

export const MiB = 1024 * 1024;

/** `size` bytes from `seed`, the same every run. */
export function bytesOf(size: number, seed: number): Uint8Array {
  return new SeededRandom(seed).fill(new Uint8Array(size));
}

/** The whole content of `name` (or of `range`). */
export async function readAll(
  store: FileStore,
  name: string,
  range?: { start?: number; end?: number },
): Promise<Uint8Array> {
  const { stream } = await store.open(name, range);
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** The blob files of a node: its chunk folder's entries. */
export async function blobsOn(cluster: MemoryCluster, rank: number): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of cluster.disk(rank).readDir(`/rank-${rank}/chunks`)) {
    names.push(entry.name);
  }
  return names.sort();
}

/** Flips one byte of a node's blob file at `offset`. */
export async function flipByte(disk: MemoryFileSystem, path: string, offset: number) {
  using file = await disk.open(path, { read: true, write: true });
  const byte = new Uint8Array(1);
  await file.seek(offset, Deno.SeekMode.Start);
  await file.read(byte);
  byte[0] ^= 0xff;
  await file.seek(offset, Deno.SeekMode.Start);
  await file.write(byte);
}

/** The path of the blob holding chunk `id` on `rank`. */
export function blobPath(rank: number, chunkId: string): string {
  return `/rank-${rank}/chunks/${chunkId.slice(0, 32)}`;
}

/** Lets every message in flight and every callback they cause run (no time passes). */
export async function settle(cluster: MemoryCluster): Promise<void> {
  await cluster.clock.advance(0);
}
