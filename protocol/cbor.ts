/**
 * The one place dfs imports cbor-x. Its main entry loads the native `cbor-extract` addon, which is
 * built against Node.js and crashes Deno with a symbol lookup error (and needs env and ffi
 * permissions). The `cbor-x/encode` subpath resolves, under the `node` condition Deno uses, to the
 * package's pure JavaScript build with both encoder and decoder.
 *
 * @module
 */

import { addExtension, decode, Encoder } from "cbor-x/encode";

export { addExtension, decode, Encoder } from "cbor-x/encode";

/**
 * The encoder of dfs's messages, between clients and rank 0 and between ranks over TCP: plain CBOR
 * maps (no cbor-x records), each with a header of its own size (`variableMapSize`), as the data
 * frames' hand-written headers have. That option also walks an object's keys with `Object.keys`
 * rather than cbor-x's `for...in`, whose keyed load V8 (Maglev) deoptimized and compiled again in a
 * loop once a process had encoded enough message shapes: after one large direct put and get, rank
 * 0 spent ~200 µs of CPU on each small put to TCP nodes instead of ~100, half of it recompiling.
 */
export function messageEncoder(): Encoder {
  return new Encoder({ useRecords: false, mapsAsObjects: true, variableMapSize: true });
}

/**
 * The CBOR tag (in the first-come range) that marks an ArrayBuffer, so one sent between ranks over
 * a socket arrives as an ArrayBuffer, as it would through postMessage. Without it cbor-x writes a
 * plain byte string, read back as a Node `Buffer` (whose `slice()` does not copy). A Uint8Array
 * keeps cbor-x's own tag 64.
 */
export const ARRAY_BUFFER_TAG = 40_500;

addExtension({
  Class: ArrayBuffer,
  tag: ARRAY_BUFFER_TAG,
  encode(buffer: ArrayBufferLike, encode: (value: unknown) => Uint8Array) {
    return encode(new Uint8Array(buffer));
  },
  decode(bytes: Uint8Array) {
    if (!(bytes instanceof Uint8Array)) throw new TypeError("an ArrayBuffer tag holds bytes");
    return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  },
});

/**
 * Makes cbor-x let go of the last buffer it decoded from (it keeps a view of it in module state),
 * e.g. after replaying a log, whose read buffer would otherwise stay alive.
 */
export function releaseDecodeInput(): void {
  decode(Uint8Array.of(0xf6)); // null
}
