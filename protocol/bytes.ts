/**
 * Byte arrays put together (pure): the one `concatBytes` the framing, the data node's log and the
 * tests share.
 *
 * @module
 */

/** The parts, one after another, in one new array (`totalBytes`, if given, is their sum). */
export function concatBytes(
  parts: readonly Uint8Array[],
  totalBytes = parts.reduce((sum, part) => sum + part.length, 0),
): Uint8Array {
  const whole = new Uint8Array(totalBytes);
  let at = 0;
  for (const part of parts) {
    whole.set(part, at);
    at += part.length;
  }
  return whole;
}
