/**
 * The one place dfs imports cbor-x. Its main entry loads the native `cbor-extract` addon, which is
 * built against Node.js and crashes Deno with a symbol lookup error (and needs env and ffi
 * permissions). The `cbor-x/encode` subpath resolves, under the `node` condition Deno uses, to the
 * package's pure JavaScript build with both encoder and decoder.
 *
 * @module
 */

import { decode } from "cbor-x/encode";

export { decode, Encoder } from "cbor-x/encode";

/**
 * Makes cbor-x let go of the last buffer it decoded from (it keeps a view of it in module state),
 * e.g. after replaying a log, whose read buffer would otherwise stay alive.
 */
export function releaseDecodeInput(): void {
  decode(Uint8Array.of(0xf6)); // null
}
