import assert from "node:assert/strict";
import { frameRecord, parseRecords, RECORD_HEADER_SIZE_BYTES } from "./record_frame.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const texts = (records: readonly Uint8Array[]) => records.map((record) => decoder.decode(record));

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
