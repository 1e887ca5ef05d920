/**
 * Fingerprints of a file's name and version, and their sums: how a data node says at start-up
 * which manifests it holds besides those it sends whole, in a few bytes (`summary_plan.ts` in
 * rank 0). Keyed by a seed rank 0 draws for each start-up, so no set of names can be made to sum
 * alike ahead of time. Pure.
 *
 * @module
 */

/** Fingerprints and their sums are below this (52 bits: a sum of two stays exact in a number). */
export const PRINT_LIMIT = 2 ** 52;

const utf8 = new TextEncoder();
/** The UTF-8 of the name being printed. */
let scratch = new Uint8Array(256);

/** The 52-bit fingerprint of version `version` of `name` under `seed` (a 32-bit number). */
export function printOf(name: string, version: number, seed: number): number {
  if (3 * name.length > scratch.length) scratch = new Uint8Array(3 * name.length);
  const { written } = utf8.encodeInto(name, scratch);
  // Two FNV-1a passes with different starts, each mixing in the seed and the version's two
  // halves, then MurmurHash3's finalizer: 32 + 20 bits.
  const high = Math.floor(version / 2 ** 32) >>> 0;
  const low = version >>> 0;
  let a = (0x811c9dc5 ^ seed) >>> 0;
  let b = (0x01000193 ^ Math.imul(seed, 0x9e3779b1)) >>> 0;
  for (let i = 0; i < written; i++) {
    a = Math.imul(a ^ scratch[i], 0x01000193);
    b = Math.imul(b ^ scratch[i], 0x0100019d);
  }
  a = finalize(Math.imul(a ^ low, 0x01000193) ^ high);
  b = finalize(Math.imul(b ^ high, 0x0100019d) ^ low);
  return a * 2 ** 20 + (b >>> 12);
}

/** `sum` plus `print`, modulo `PRINT_LIMIT`. */
export function addPrint(sum: number, print: number): number {
  const total = sum + print;
  return total >= PRINT_LIMIT ? total - PRINT_LIMIT : total;
}

function finalize(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
