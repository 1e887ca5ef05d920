import assert from "node:assert/strict";
import { texts } from "./_test_fs.ts";
import {
  frameRecord,
  parseRecords,
  RECORD_HEADER_SIZE_BYTES,
  RecordScanner,
  RESYNC_CRC_BYTES_MAX,
} from "./record_frame.ts";

const encoder = new TextEncoder();

Deno.test("frameRecord() and parseRecords() round-trip records", () => {
  const records = ["a", "bc", "x".repeat(70_000)].map((text) => encoder.encode(text));
  const framed = new Uint8Array(records.flatMap((record) => [...frameRecord(record)]));
  const { records: parsed, intactBytes } = parseRecords(framed);
  assert.deepEqual(parsed, records);
  assert.equal(intactBytes, framed.length);
  assert.equal(framed.length, 3 * RECORD_HEADER_SIZE_BYTES + 70_003);
});

Deno.test("parseRecords() stops at a zero-filled tail", () => {
  const frame = frameRecord(encoder.encode("kept"));
  const bytes = new Uint8Array(frame.length + 64);
  bytes.set(frame);
  const { records, intactBytes } = parseRecords(bytes);
  assert.deepEqual(texts(records), ["kept"]);
  assert.equal(intactBytes, frame.length);
});

/** `count` framed records like a node's manifests (~100 bytes), and where each frame starts. */
function manifestLog(count: number): { bytes: Uint8Array; starts: number[]; bodies: string[] } {
  const bodies = Array.from(
    { length: count },
    (_, i) =>
      JSON.stringify({ name: `photos/2024/img-${i}.jpg`, version: 1 + (i % 3), size: 1000 * i }),
  );
  const frames = bodies.map((body) => frameRecord(encoder.encode(body)));
  const starts: number[] = [];
  let offset = 0;
  for (const frame of frames) {
    starts.push(offset);
    offset += frame.length;
  }
  const bytes = new Uint8Array(offset);
  frames.forEach((frame, i) => bytes.set(frame, starts[i]));
  return { bytes, starts: [...starts, offset], bodies };
}

Deno.test("parseRecords() keeps every record after a middle record whose length field has a flipped byte", () => {
  const { bytes, starts, bodies } = manifestLog(72);
  const damaged = 64;
  for (let at = starts[damaged]; at < starts[damaged] + 4; at++) {
    for (const mask of [0x01, 0x02, 0x10, 0x40, 0x80, 0xff]) {
      const corrupt = bytes.slice();
      corrupt[at] ^= mask;
      const parsed = parseRecords(corrupt);
      const what = `byte ${at} ^ ${mask}`;
      assert.deepEqual(texts(parsed.records), bodies.toSpliced(damaged, 1), what);
      assert.equal(parsed.damagedRegions, 1, what);
      assert.deepEqual(parsed.regions, [
        { offset: starts[damaged], bytes: starts[damaged + 1] - starts[damaged] },
      ], what);
      assert.equal(parsed.recordsAfterDamage, 7, what);
      assert.equal(parsed.tailBytes, 0, what);
      assert.equal(parsed.intactBytes, bytes.length, what);
    }
  }
});

Deno.test("parseRecords() counts two adjacent damaged records as one region, two apart as two", () => {
  const { bytes, starts, bodies } = manifestLog(40);
  const adjacent = bytes.slice();
  adjacent[starts[10] + 1] ^= 0x40; // a length
  adjacent[starts[11] + 6] ^= 0x01; // a CRC
  const one = parseRecords(adjacent);
  assert.deepEqual(texts(one.records), bodies.toSpliced(10, 2));
  assert.deepEqual(one.regions, [{ offset: starts[10], bytes: starts[12] - starts[10] }]);
  assert.equal(one.damagedBytes, starts[12] - starts[10]);
  const apart = adjacent.slice();
  apart.fill(0xee, starts[30] + 3, starts[31] - 2); // a length, a CRC and a body
  const two = parseRecords(apart);
  assert.deepEqual(texts(two.records), bodies.toSpliced(30, 1).toSpliced(10, 2));
  assert.equal(two.damagedRegions, 2);
  assert.deepEqual(two.regions, [
    { offset: starts[10], bytes: starts[12] - starts[10] },
    { offset: starts[30], bytes: starts[31] - starts[30] },
  ]);
  assert.equal(two.tailBytes, 0);
});

Deno.test("parseRecords() takes damage that no intact record follows for a torn tail", () => {
  const { bytes, starts, bodies } = manifestLog(10);
  for (const at of [starts[9] + 2, starts[9] + 5, bytes.length - 1]) { // length, CRC, body
    const corrupt = bytes.slice();
    corrupt[at] ^= 0x10;
    const parsed = parseRecords(corrupt);
    assert.deepEqual(texts(parsed.records), bodies.slice(0, 9));
    assert.equal(parsed.damagedRegions, 0);
    assert.equal(parsed.intactBytes, starts[9]);
    assert.equal(parsed.tailBytes, bytes.length - starts[9]);
  }
  // A batch torn in the middle of its second record.
  const torn = parseRecords(bytes.subarray(0, starts[8] + 20));
  assert.deepEqual(texts(torn.records), bodies.slice(0, 8));
  assert.equal(torn.tailBytes, 20);
});

Deno.test("parseRecords() skips a zero-filled sector between records as one damaged region", () => {
  const { bytes, starts, bodies } = manifestLog(10);
  const zeroed = bytes.slice();
  zeroed.fill(0, starts[3] + 5, starts[6] + 20);
  const parsed = parseRecords(zeroed);
  assert.deepEqual(texts(parsed.records), bodies.toSpliced(3, 4));
  assert.deepEqual(parsed.regions, [{ offset: starts[3], bytes: starts[7] - starts[3] }]);
});

/** `bytes`, then `zeros` zero bytes. */
function withZeros(bytes: Uint8Array, zeros: number): Uint8Array {
  const out = new Uint8Array(bytes.length + zeros);
  out.set(bytes);
  return out;
}

Deno.test("parseRecords() takes zeros after the last record, however many, for the clean end", () => {
  const { bytes, bodies } = manifestLog(10);
  for (const zeros of [1, 3, 7, 8, 9, 4096 + 3, 5 * 1024 * 1024]) {
    const parsed = parseRecords(withZeros(bytes, zeros));
    assert.deepEqual(texts(parsed.records), bodies, `${zeros} zeros`);
    assert.equal(parsed.intactBytes, bytes.length);
    assert.equal(parsed.zeroTailBytes, zeros);
    assert.equal(parsed.tailBytes, 0, "not a torn tail");
    assert.equal(parsed.damagedRegions, 0, "not damage");
  }
});

Deno.test("parseRecords() takes a torn record that zeros follow for a torn tail, up to its last byte that is not zero", () => {
  const { bytes, starts, bodies } = manifestLog(10);
  for (let cut = starts[9] + 1; cut < starts[10]; cut++) {
    const parsed = parseRecords(withZeros(bytes.subarray(0, cut), 4096));
    const torn = bytes.subarray(starts[9], cut).findLastIndex((byte) => byte !== 0) + 1;
    assert.deepEqual(texts(parsed.records), bodies.slice(0, 9), `cut at ${cut}`);
    assert.equal(parsed.intactBytes, starts[9]);
    assert.equal(parsed.tailBytes, torn, `cut at ${cut}`);
    assert.equal(parsed.zeroTailBytes, cut - starts[9] - torn + 4096);
    assert.equal(parsed.damagedRegions, 0);
  }
});

Deno.test("parseRecords() takes zeros that a record or other bytes follow for damage, not the end", () => {
  const { bytes, starts, bodies } = manifestLog(10);
  // A batch whose first page never reached the disk, and whose second did.
  const gap = bytes.slice();
  gap.fill(0, starts[6], starts[8]);
  const parsed = parseRecords(withZeros(gap, 4096));
  assert.deepEqual(texts(parsed.records), bodies.toSpliced(6, 2));
  assert.deepEqual(parsed.regions, [{ offset: starts[6], bytes: starts[8] - starts[6] }]);
  assert.equal(parsed.zeroTailBytes, 4096);
  // Zeros, one stray byte, zeros: a torn tail up to the stray byte.
  for (const stray of [0, 1, 2, 3, 4, 4000]) {
    const tail = withZeros(bytes, 4096);
    tail[bytes.length + stray] = 0x5a;
    const torn = parseRecords(tail);
    assert.deepEqual(texts(torn.records), bodies, `stray byte at +${stray}`);
    assert.equal(torn.tailBytes, stray + 1, `stray byte at +${stray}`);
    assert.equal(torn.zeroTailBytes, 4096 - stray - 1);
  }
});

Deno.test("RecordScanner gives up a search over RESYNC_CRC_BYTES_MAX and counts the rest as damage, not a tail", () => {
  // Every 4 bytes hold candidates of 1 MiB, 16 and 4096 bytes whose followers look sane: a search
  // through it checks about 1 MiB of CRC per 4 bytes.
  const kept = frameRecord(encoder.encode("kept"));
  const pattern = new Uint8Array(2 * 1024 * 1024).map((_, i) => [0x00, 0x10, 0x00, 0x00][i % 4]);
  const after = frameRecord(encoder.encode("after the damage"));
  const bytes = new Uint8Array([...kept, ...pattern, ...after]);
  const parsed = parseRecords(bytes);
  assert.deepEqual(texts(parsed.records), ["kept"]);
  assert.equal(parsed.damagedRegions, 1);
  assert.deepEqual(parsed.regions, [{ offset: kept.length, bytes: bytes.length - kept.length }]);
  assert.equal(parsed.tailBytes, 0, "nothing is taken for a torn tail");
  assert.equal(parsed.intactBytes, kept.length);
  const reached = parsed.unsearchedFrom!;
  // About RESYNC_CRC_BYTES_MAX / 1 MiB candidates of 4 bytes each were searched.
  const expected = kept.length + 4 * RESYNC_CRC_BYTES_MAX / (1024 * 1024);
  assert.ok(Math.abs(reached - expected) < 64, `gave up at ${reached}, about ${expected}`);
});

Deno.test("RecordScanner finds the same records and damage however the bytes are split into windows", () => {
  const { bytes, starts } = manifestLog(30);
  const damaged = bytes.slice(0, bytes.length - 7); // and a torn tail
  damaged[starts[5] + 1] ^= 0x08;
  damaged.fill(0, starts[12], starts[14] + 3);
  damaged[starts[20] + 30] ^= 0x01;
  const zeroTail = withZeros(bytes.subarray(0, starts[29]), 300);
  const strayAfterZeros = withZeros(bytes, 300);
  strayAfterZeros[bytes.length + 150] = 1;
  for (const corrupt of [damaged, withZeros(damaged, 300), zeroTail, strayAfterZeros]) {
    scanInWindows(corrupt);
  }
  const { damagedRegions, tailBytes } = parseRecords(damaged);
  assert.equal(damagedRegions, 3);
  assert.equal(tailBytes, starts[30] - 7 - starts[29]);
});

/** Checks that scanning `corrupt` in windows of several sizes finds what parsing it whole does. */
function scanInWindows(corrupt: Uint8Array): void {
  const { records, offsets, ...whole } = parseRecords(corrupt);
  for (const size of [1, 7, 64, 1000]) {
    const scanner = new RecordScanner();
    const found: number[] = [];
    for (let end = size, final = false; !final; end += size) {
      final = end >= corrupt.length;
      const window = corrupt.subarray(scanner.position, Math.min(end, corrupt.length));
      scanner.scan(window, final, (_, offset) => void found.push(offset));
    }
    assert.deepEqual(found, offsets, `windows of ${size}`);
    assert.deepEqual(scanner.report, { ...whole, records: records.length }, `windows of ${size}`);
  }
}
