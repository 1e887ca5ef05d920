import assert from "node:assert/strict";
import { concatBytes } from "./bytes.ts";
import { DfsError } from "./errors.ts";
import { COALESCE_BYTES_MAX, FrameReader, FrameWriter } from "./conn.ts";
import { decodeFrameBody, encodeFrame } from "./frame.ts";

/** An in-memory stream that returns its input in reads of at most `step` bytes. */
function memoryStream(input: Uint8Array, step: number) {
  let at = 0;
  const written: Uint8Array[] = [];
  return {
    written,
    read(p: Uint8Array): Promise<number | null> {
      if (at >= input.length) return Promise.resolve(null);
      const n = Math.min(step, p.length, input.length - at);
      p.set(input.subarray(at, at + n));
      at += n;
      return Promise.resolve(n);
    },
    write(p: Uint8Array): Promise<number> {
      const n = Math.min(p.length, 1000); // short writes, as sockets may do
      written.push(p.slice(0, n));
      return Promise.resolve(n);
    },
  };
}

Deno.test("FrameReader.read() reassembles frames from any read sizes and ends with null", async () => {
  const big = new Uint8Array(300_000).map((_, i) => i % 251);
  const input = concatBytes([encodeFrame({ a: 1 }), encodeFrame({ bytes: big }), encodeFrame("x")]);
  for (const step of [1, 7, 4096, 1 << 20]) {
    const reader = new FrameReader(memoryStream(input, step));
    assert.deepEqual(decodeFrameBody((await reader.read())!), { a: 1 });
    const second = decodeFrameBody((await reader.read())!) as { bytes: Uint8Array };
    assert.deepEqual(second.bytes, big);
    assert.equal(decodeFrameBody((await reader.read())!), "x");
    assert.equal(await reader.read(), null);
  }
});

Deno.test("FrameReader.read() gives each frame its own buffer", async () => {
  const input = concatBytes([
    encodeFrame({ b: Uint8Array.of(1) }),
    encodeFrame({ b: Uint8Array.of(2) }),
  ]);
  const reader = new FrameReader(memoryStream(input, 1 << 20));
  const first = decodeFrameBody((await reader.read())!) as { b: Uint8Array };
  await reader.read();
  assert.deepEqual(first.b, Uint8Array.of(1));
});

Deno.test("FrameReader.read() rejects an oversized length without reading the body", async () => {
  const reader = new FrameReader(memoryStream(Uint8Array.of(0, 1, 0, 0, 9), 64), {
    frameSizeBytesMax: 1000,
  });
  await assert.rejects(
    () => reader.read(),
    (e: unknown) => e instanceof DfsError && e.code === "TOO_LARGE" && /65536/.test(e.message),
  );
});

Deno.test("FrameReader.read() rejects a stream that ends inside a frame", async () => {
  const frame = encodeFrame({ hello: "world" });
  for (const cut of [2, frame.length - 1]) {
    const reader = new FrameReader(memoryStream(frame.subarray(0, cut), 3));
    await assert.rejects(
      () => reader.read(),
      (e: unknown) =>
        e instanceof DfsError && e.code === "INVALID_REQUEST" && /ended inside/.test(e.message),
    );
  }
});

Deno.test("FrameWriter writes concurrent frames whole and in order despite short writes", async () => {
  const stream = memoryStream(new Uint8Array(0), 1);
  const writer = new FrameWriter(stream);
  const payload = new Uint8Array(5000).fill(9);
  await Promise.all([writer.send({ n: 1 }), writer.sendData(3, payload), writer.send({ n: 2 })]);
  const reader = new FrameReader(memoryStream(concatBytes(stream.written), 100));
  assert.deepEqual(decodeFrameBody((await reader.read())!), { n: 1 });
  assert.deepEqual(decodeFrameBody((await reader.read())!), { op: "data", id: 3, bytes: payload });
  assert.deepEqual(decodeFrameBody((await reader.read())!), { n: 2 });
  assert.equal(await reader.read(), null);
});

Deno.test("FrameReader.read() puts large bodies in pooled buffers and small ones in their own", async () => {
  const { BufferPool } = await import("./buffer_pool.ts");
  const pool = new BufferPool(200_000, { buffersMax: 2 });
  const big = new Uint8Array(150_000).fill(3);
  const input = concatBytes([encodeFrame({ bytes: big }), encodeFrame({ small: 1 })]);
  const reader = new FrameReader(memoryStream(input, 4096), { pool });
  const first = (await reader.read())!;
  assert.equal(first.buffer.byteLength, 200_000);
  assert.deepEqual((decodeFrameBody(first) as { bytes: Uint8Array }).bytes, big);
  const second = (await reader.read())!;
  assert.equal(second.buffer.byteLength, second.length);
  assert.equal(pool.allocated, 1);
});

Deno.test("FrameWriter calls onStall when a write makes no progress for stallTimeoutMs", async () => {
  let stalled = false;
  let release!: (n: number) => void;
  const stuck = {
    read: () => Promise.resolve(null),
    write: (p: Uint8Array) => new Promise<number>((resolve) => release = () => resolve(p.length)),
  };
  const writer = new FrameWriter(stuck, { stallTimeoutMs: 20, onStall: () => stalled = true });
  const sending = writer.send({ n: 1 });
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(stalled, true);
  release(0);
  await sending;
});

Deno.test("FrameWriter does not call onStall for writes that complete in time", async () => {
  let stalled = false;
  const stream = memoryStream(new Uint8Array(0), 1);
  const writer = new FrameWriter(stream, { stallTimeoutMs: 50, onStall: () => stalled = true });
  for (let i = 0; i < 20; i++) await writer.send({ i });
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(stalled, false);
});

Deno.test("FrameWriter writes small frames queued together in one write, big payloads apart", async () => {
  const calls: number[] = [];
  const bytes: Uint8Array[] = [];
  const stream = {
    read: () => Promise.resolve(null),
    write(p: Uint8Array): Promise<number> {
      calls.push(p.length);
      bytes.push(p.slice());
      return Promise.resolve(p.length);
    },
  };
  const writer = new FrameWriter(stream);
  const small = new Uint8Array(4096).fill(1);
  await Promise.all([writer.send({ op: "ok" }), writer.sendData(1, small), writer.send({ n: 2 })]);
  assert.equal(calls.length, 1, "three small frames, one write");
  const big = new Uint8Array(COALESCE_BYTES_MAX).fill(2);
  await Promise.all([writer.send({ n: 3 }), writer.sendData(2, big), writer.send({ n: 4 })]);
  // A big payload is never copied into a batch: frame, header, payload, frame.
  assert.deepEqual(calls.slice(1).map((n) => n >= COALESCE_BYTES_MAX), [false, false, true, false]);
  const reader = new FrameReader(memoryStream(concatBytes(bytes), 100_000));
  const frames = [];
  for (let f; (f = await reader.read()) !== null;) frames.push(decodeFrameBody(f));
  assert.deepEqual(frames, [
    { op: "ok" },
    { op: "data", id: 1, bytes: small },
    { n: 2 },
    { n: 3 },
    { op: "data", id: 2, bytes: big },
    { n: 4 },
  ]);
});

Deno.test("FrameReader.peek() shows the next bytes without consuming them", async () => {
  const input = concatBytes([encodeFrame({ a: 1 }), encodeFrame({ b: 2 })]);
  const reader = new FrameReader(memoryStream(input, 1));
  assert.deepEqual(await reader.peek(4), input.subarray(0, 4));
  assert.deepEqual(await reader.peek(2), input.subarray(0, 2));
  assert.deepEqual(decodeFrameBody((await reader.read())!), { a: 1 });
  const second = encodeFrame({ b: 2 });
  assert.deepEqual(await reader.peek(4), second.subarray(0, 4));
  assert.deepEqual(decodeFrameBody((await reader.read())!), { b: 2 });
  // At the end of the stream: what is left, here nothing.
  assert.deepEqual(await reader.peek(4), new Uint8Array(0));
  assert.equal(await reader.read(), null);
  const short = new FrameReader(memoryStream(Uint8Array.of(0x15, 0x03), 1));
  assert.deepEqual(await short.peek(4), Uint8Array.of(0x15, 0x03));
});
