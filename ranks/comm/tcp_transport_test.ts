import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { FrameReader } from "../../protocol/conn.ts";
import { DfsError } from "../../protocol/errors.ts";
import { Comm } from "./comm.ts";
import { type CommWorld, runCommSuite } from "./comm_suite.ts";
import {
  ATTACHMENT_BYTES_MIN,
  decodePacket,
  encodePacket,
  encodePacketParts,
  HEADROOM_BYTES,
  TcpTransport,
} from "./tcp_transport.ts";
import { runPeer } from "./_comm_test_peer.ts";

const PEER_URL = new URL("./_comm_test_tcp_peer.ts", import.meta.url);
/** How long a world waits for its peer processes to connect. */
const CONNECT_TIMEOUT_MS = 30_000;

/** Rank 0 in this process; ranks 1..size-1 each a process of its own, linked over TCP. */
async function newProcessWorld(size: number): Promise<CommWorld> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const transport = new TcpTransport(0, size);
  const comm = new Comm(transport, { onPeerError: () => {} });
  const children = Array.from({ length: size - 1 }, (_, i) =>
    new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-check",
        "--allow-net=127.0.0.1",
        PEER_URL.pathname,
        String(listener.addr.port),
        String(i + 1),
        String(size),
      ],
      stdout: "null",
      stderr: "null",
    }).spawn());
  const deadline = setTimeout(() => listener.close(), CONNECT_TIMEOUT_MS);
  try {
    for (let joined = 0; joined < size - 1; joined++) {
      const conn = await listener.accept();
      conn.setNoDelay(true);
      const reader = new FrameReader(conn, { frameSizeBytesMax: 1024 });
      const { source } = decodePacket((await reader.read())!);
      transport.attach(source, conn, { reader });
    }
  } finally {
    clearTimeout(deadline);
    listener.close();
  }
  return {
    comm,
    async [Symbol.asyncDispose]() {
      comm.close();
      const killer = setTimeout(() => children.forEach((c) => c.kill("SIGKILL")), 5_000);
      await Promise.all(children.map((child) => child.status));
      clearTimeout(killer);
    },
  };
}

runCommSuite({ name: "TCP between processes", newWorld: newProcessWorld });

/** Two transports of ranks 0 and 1 joined by a real loopback TCP connection. */
async function linkedPair(options: { queueBytesHigh?: number; silenceTimeoutMs?: number } = {}) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [accepted, connected] = await Promise.all([
    listener.accept(),
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
  ]);
  listener.close();
  const zero = new TcpTransport(0, 2, options);
  const one = new TcpTransport(1, 2, options);
  zero.attach(1, accepted);
  one.attach(0, connected);
  return { zero, one, accepted, connected };
}

Deno.test("encodePacket() and decodePacket() carry bytes, ArrayBuffers and undefined", () => {
  const body = { u: Uint8Array.of(1, 2), a: Uint8Array.of(3).buffer, x: undefined, n: [1, "s"] };
  const frame = encodePacket({ source: 3, tag: 77, body });
  equal(new DataView(frame.buffer).getUint32(0), frame.length - 4);
  const packet = decodePacket(frame.subarray(4));
  equal(packet.source, 3);
  equal(packet.tag, 77);
  const got = packet.body as typeof body;
  deepEqual(got.u, Uint8Array.of(1, 2));
  ok(got.a instanceof ArrayBuffer);
  deepEqual(new Uint8Array(got.a), Uint8Array.of(3));
  ok("x" in got && got.x === undefined);
  deepEqual(got.n, [1, "s"]);
});

Deno.test("encodePacket() puts large byte strings after the header; decodePacket() gives views of the frame", () => {
  const chunk = new Uint8Array(ATTACHMENT_BYTES_MIN).fill(7);
  const small = Uint8Array.of(1, 2, 3);
  const body = { ok: chunk, nested: [{ bytes: chunk.subarray(1) }], small };
  const frame = encodePacket({ source: 1, tag: 9, body });
  // The chunk's bytes are not CBOR-encoded: they sit, as they are, at the end of the frame.
  deepEqual(frame.subarray(frame.length - chunk.length + 1), chunk.subarray(1));
  const packet = decodePacket(frame.subarray(4));
  const got = packet.body as typeof body;
  equal(got.ok.buffer, frame.buffer, "a view of the frame, not a copy");
  deepEqual(got.ok, chunk);
  deepEqual(got.nested[0].bytes, chunk.subarray(1));
  deepEqual(got.small, small);
  equal(body.ok, chunk, "the caller's body is left as it was");
});

Deno.test("encodePacketParts() writes given-up bytes from where they are, the header in their headroom", () => {
  const buffer = new ArrayBuffer(HEADROOM_BYTES + ATTACHMENT_BYTES_MIN);
  const chunk = new Uint8Array(buffer, HEADROOM_BYTES).fill(9);
  const packet = { source: 2, tag: 5, body: { ok: chunk } };
  const parts = encodePacketParts(packet, { owned: [buffer] });
  equal(parts.length, 1, "one part: the header sits in the headroom");
  equal(parts[0].buffer, buffer);
  equal(parts[0].byteOffset + parts[0].length, buffer.byteLength);
  deepEqual(decodePacket(parts[0].subarray(4)).body, { ok: chunk });

  const tight = new Uint8Array(ATTACHMENT_BYTES_MIN).fill(3); // no headroom: a part of its own
  const split = encodePacketParts({ source: 2, tag: 5, body: { ok: tight } }, {
    owned: [tight.buffer],
  });
  equal(split.length, 2);
  equal(split[1], tight);
  const whole = new Uint8Array(split[0].length + split[1].length);
  whole.set(split[0]);
  whole.set(split[1], split[0].length);
  deepEqual(decodePacket(whole.subarray(4)).body, { ok: tight });
  // Not given up: copied into the frame, never written from the caller's buffer.
  equal(encodePacketParts({ source: 2, tag: 5, body: { ok: tight } }).length, 1);
});

Deno.test("decodePacket() refuses an attachment that lies outside the frame, as CORRUPTED", () => {
  const frame = encodePacket({ source: 1, tag: 9, body: new Uint8Array(ATTACHMENT_BYTES_MIN) });
  throws(
    () => decodePacket(frame.subarray(4, frame.length - 1)),
    (e) => e instanceof DfsError && e.code === "CORRUPTED" && /outside the frame/.test(e.message),
  );
});

Deno.test("encodePacket() refuses a packet over the frame limit with TOO_LARGE", () => {
  throws(
    () => encodePacket({ source: 0, tag: 1, body: new Uint8Array(2048) }, 1024),
    (error) =>
      error instanceof DfsError && error.code === "TOO_LARGE" &&
      /over the frame limit/.test(error.message),
  );
});

Deno.test("decodePacket() refuses what is not [source, tag, body] with CORRUPTED", () => {
  for (
    const bad of [Uint8Array.of(0xff), Uint8Array.of(0x80), Uint8Array.of(0x83, 0x61, 0x61, 1, 2)]
  ) {
    throws(() => decodePacket(bad), (e) => e instanceof DfsError && e.code === "CORRUPTED");
  }
});

/** Rank 0's transport linked to a raw loopback socket standing for rank 1. */
async function rawPeer(options: { frameBytesMax?: number } = {}) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [accepted, socket] = await Promise.all([
    listener.accept(),
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
  ]);
  listener.close();
  const zero = new TcpTransport(0, 2, options);
  const failed = Promise.withResolvers<unknown>();
  zero.onPeerError = (_peer, error) => failed.resolve(error);
  zero.attach(1, accepted);
  return { zero, socket, failed: failed.promise };
}

Deno.test("TcpTransport fails a link whose peer announces a frame over the limit, before reading it", async () => {
  const { zero, socket, failed } = await rawPeer({ frameBytesMax: 4096 });
  await socket.write(Uint8Array.of(0x7f, 0xff, 0xff, 0xff)); // 2 GiB announced, never sent
  const error = await failed;
  ok(error instanceof DfsError, String(error));
  match(
    error.message,
    /Lost the link to rank 1: Frame of 2147483647 bytes is over the limit of 4096/,
  );
  equal(zero.hasLink(1), false);
  throws(() => zero.send(1, 1, "x"), (e) => e instanceof DfsError && e.code === "UNAVAILABLE");
  socket.close();
  zero.close();
});

Deno.test("TcpTransport fails a link whose packets claim another source, as CORRUPTED", async () => {
  const { zero, socket, failed } = await rawPeer();
  await socket.write(encodePacket({ source: 5, tag: 1, body: "forged" }));
  const error = await failed;
  ok(error instanceof DfsError);
  equal(error.code, "CORRUPTED");
  match(error.message, /claims to come from rank 5/);
  socket.close();
  zero.close();
});

Deno.test("TcpTransport makes calls to a peer that does not read wait, and others go on", async () => {
  // Three ranks: rank 1 stops reading, rank 2 serves.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  const zero = new TcpTransport(0, 3, { queueBytesHigh: 256 * 1024 });
  const comm = new Comm(zero, { onPeerError: () => {} });
  const stuck = await Deno.connect({ hostname: "127.0.0.1", port }); // never read from
  zero.attach(1, await listener.accept());
  const served = await Deno.connect({ hostname: "127.0.0.1", port });
  zero.attach(2, await listener.accept());
  listener.close();
  const two = new TcpTransport(2, 3);
  two.attach(0, served);
  const peer = new Comm(two, { onPeerError: () => {} });
  const serving = runPeer(peer);

  const chunk = new Uint8Array(1024 * 1024);
  const toStuck = Array.from(
    { length: 64 },
    () => comm.call(1, { op: "echo", value: chunk }, { timeoutMs: 60_000 }).catch((e) => e),
  );
  await new Promise((resolve) => setTimeout(resolve, 200));
  // The socket's buffers hold a few MiB at most: the rest waits, unsent, for room.
  ok(zero.queuedBytes(1) < 32 * 1024 * 1024, `${zero.queuedBytes(1)} bytes queued`);
  ok(zero.whenWritable(1) !== undefined, "rank 1's queue is past its high-water mark");
  equal(zero.whenWritable(2), undefined);
  for (let i = 0; i < 20; i++) {
    const back = await comm.call<Uint8Array>(2, { op: "echo", value: chunk });
    equal(back.length, chunk.length);
  }
  comm.close();
  for (const result of await Promise.all(toStuck)) {
    ok(result instanceof DfsError && result.code === "UNAVAILABLE", String(result));
  }
  stuck.close();
  peer.close();
  await serving;
});

Deno.test("TcpTransport with silenceTimeoutMs fails a link that brings nothing", async () => {
  const { one, zero } = await linkedPair({ silenceTimeoutMs: 100 });
  const failed = Promise.withResolvers<unknown>();
  one.onPeerError = (_peer, error) => failed.resolve(error);
  zero.onPeerError = () => {};
  const error = await failed.promise;
  ok(error instanceof DfsError);
  match(error.message, /Lost the link to rank 0: nothing arrived for \d+ ms/);
  zero.close();
  one.close();
});

function match(text: string, pattern: RegExp): void {
  ok(pattern.test(text), `${JSON.stringify(text)} does not match ${pattern}`);
}
