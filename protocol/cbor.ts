/**
 * The one place dfs imports cbor-x. Its main entry loads the native `cbor-extract` addon, which is
 * built against Node.js and crashes Deno with a symbol lookup error (and needs env and ffi
 * permissions). The `cbor-x/encode` subpath resolves, under the `node` condition Deno uses, to the
 * package's pure JavaScript build with both encoder and decoder.
 *
 * @module
 */

export { decode, Encoder } from "cbor-x/encode";
