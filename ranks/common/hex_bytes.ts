/**
 * Ids and names as bytes for the compact tables (`ManifestColumns`, a node's `LogPlaces`): a hash
 * of bytes, and lower-case hex to bytes and back without intermediate strings. Pure.
 *
 * @module
 */

/** Bytes `hexOf` turns into text at most (a sha256). */
export const HEX_BYTES_MAX = 32;

const HEX_DIGITS = new TextEncoder().encode("0123456789abcdef");

/** FNV-1a of `length` bytes from `at`, then MurmurHash3's finalizer so that the low bits mix well. */
export function hashOf(bytes: Uint8Array, length: number, at = 0): number {
  let h = 0x811c9dc5;
  for (let i = at; i < at + length; i++) h = Math.imul(h ^ bytes[i], 0x01000193);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** The value of a lower-case hex digit, or -1. */
function nibble(code: number): number {
  if (code >= 48 && code <= 57) return code - 48; // 0-9
  if (code >= 97 && code <= 102) return code - 87; // a-f
  return -1;
}

/**
 * Parses the first `bytes` * 2 characters of `text` as lower-case hex into `out` at `at`; false
 * (with `out` partly written) if any is not a lower-case hex digit.
 */
export function parseHex(text: string, bytes: number, out: Uint8Array, at: number): boolean {
  for (let i = 0; i < bytes; i++) {
    const high = nibble(text.charCodeAt(2 * i));
    const low = nibble(text.charCodeAt(2 * i + 1));
    if (high < 0 || low < 0) return false;
    out[at + i] = (high << 4) | low;
  }
  return true;
}

/** Character codes of a hex text being made (a sha256's at most). */
const hexCodes = new Uint8Array(2 * HEX_BYTES_MAX);

/**
 * `length` bytes of `bytes` from `at` in lower-case hex: one flat string, not the rope of 2-digit
 * pieces that `+=` would leave (~1 KB for a sha256 until something flattens it).
 */
export function hexOf(bytes: Uint8Array, at: number, length: number): string {
  for (let i = 0; i < length; i++) {
    const byte = bytes[at + i];
    hexCodes[2 * i] = HEX_DIGITS[byte >>> 4];
    hexCodes[2 * i + 1] = HEX_DIGITS[byte & 15];
  }
  return String.fromCharCode.apply(null, hexCodes.subarray(0, 2 * length) as unknown as number[]);
}
