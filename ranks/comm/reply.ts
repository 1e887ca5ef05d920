/**
 * A `serve()` handler's answer that moves buffers to the caller instead of copying them.
 *
 * @module
 */

/** A `serve()` handler's answer with ArrayBuffers to transfer rather than copy. */
export class Reply {
  readonly body: unknown;
  readonly transfer: ArrayBuffer[];
  constructor(body: unknown, transfer: ArrayBuffer[]) {
    this.body = body;
    this.transfer = transfer;
  }
}

/** Wraps a `serve()` handler's answer so that `transfer` is moved to the caller without copying. */
export function reply(body: unknown, transfer: ArrayBuffer[] = []): Reply {
  return new Reply(body, transfer);
}
