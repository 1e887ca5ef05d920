/**
 * A fuzz test: at least 100,000 generated malformed frames on thousands of connections (seeded,
 * bounded in count and time), after which the server still serves, a healthy client read the
 * stored file throughout, no reply was malformed or an internal error, and memory is back.
 */

import assert from "node:assert/strict";
import { DfsClient } from "../client.ts";
import { Encoder } from "../protocol/cbor.ts";
import { FrameReader } from "../protocol/conn.ts";
import { ERROR_CODES } from "../protocol/errors.ts";
import { decodeFrameBody, encodeFrame } from "../protocol/frame.ts";
import {
  CHUNK_SIZE_BYTES,
  FILE_SIZE_BYTES_MAX,
  FRAME_SIZE_BYTES_MAX,
  PROTOCOL_VERSION,
} from "../protocol/limits.ts";
import { Prng, pseudoRandomBytes, sha256 } from "./_bytes.ts";
import { checkBystanders, mib, STORED, STORED_NAME } from "./_bystanders.ts";
import { cborHead, describeFrame, frameOf, REPLY_TIMEOUT_MS, writeAll } from "./_frames.ts";
import { TestServer } from "./_server.ts";
import { sleep, withTimeout } from "./_wait.ts";

const MiB = 1024 * 1024;

/** Frames the fuzz test must send, and the time it may take to send them. */
const FUZZ_FRAMES_MIN = 100_000;
const FUZZ_TIME_MS_MAX = 120_000;
const FUZZ_SEED = 0xdf5_f022;
const FUZZ_CONNECTIONS = 8;
/** Frames sent before the starting memory is measured (not counted): the heaps reach working size. */
const FUZZ_PRELUDE_FRAMES = 10_000;
/**
 * How far above its starting point (measured after a warm-up that fills the buffer pool and a
 * fuzz prelude) the server's resident memory may be once the fuzz is over. Measured: 34 to 48 MiB,
 * then flat over further rounds of 100,000 frames (283 MiB after 410,000): V8 frees dead buffers
 * only at its next collection, letting up to 64 MiB of them pile up, and its heaps and malloc's
 * arenas keep some of the space they grew to. 64 MiB allows that; a leak of a 64 KiB read buffer
 * per connection (the fuzz opens about 8,000) or of 700 bytes per frame would not fit.
 */
const FUZZ_RSS_GROWTH_BYTES_MAX = 64 * MiB;

const NOISE = pseudoRandomBytes(4 * MiB, 0x5eed);
const encoder = new Encoder({ useRecords: false, mapsAsObjects: true });

function noise(rng: Prng, bytes: number): Uint8Array {
  const at = rng.int(NOISE.length - bytes);
  return NOISE.subarray(at, at + bytes);
}

/** A body length: mostly small, sometimes up to the frame limit. */
function fuzzLength(rng: Prng): number {
  const roll = rng.float();
  if (roll < 0.7) return rng.int(33);
  if (roll < 0.9) return rng.int(1024);
  if (roll < 0.995) return rng.int(64 * 1024);
  return rng.int(FRAME_SIZE_BYTES_MAX + 1);
}

const KEYS = [
  "op",
  "id",
  "name",
  "size",
  "bytes",
  "sha256",
  "prefix",
  "version",
  "toString",
  "valueOf",
  "__proto__",
  "constructor",
  "x",
];
/** Not "rm": a random `rm {prefix: ""}` would rightly remove the stored file. */
const OPS = [
  "hello",
  "put",
  "data",
  "end",
  "abort",
  "get",
  "meta",
  "list",
  "mv",
  "du",
  "df",
  "ok",
  "error",
  "",
  "PUT",
];
const FUZZ_NAMES = [
  "fuzz/a",
  "fuzz/b",
  "fuzz/c/d",
  "fuzz/é",
  "\uFFFD",
  "",
  "/x",
  "a//b",
  "..",
  "a\0b",
];
const NUMBERS = [
  0,
  1,
  -1,
  7,
  23,
  24,
  255,
  256,
  65535,
  65536,
  2 ** 31,
  2 ** 32 - 1,
  2 ** 32,
  2 ** 53,
  -(2 ** 53),
  FILE_SIZE_BYTES_MAX,
  FILE_SIZE_BYTES_MAX + 1,
  0.5,
  NaN,
  Infinity,
  -Infinity,
  -0,
];
const TAGS = [
  0,
  1,
  2,
  3,
  4,
  5,
  6,
  14,
  15,
  27,
  28,
  29,
  51,
  64,
  72,
  85,
  105,
  258,
  259,
  55799,
  0xdff9,
  0xdffe,
  0xdfff,
];

/** A random JS value for cbor-x to encode: plausible request-like maps and anything else. */
function randomValue(rng: Prng, depth: number): unknown {
  switch (rng.int(depth >= 3 ? 7 : 11)) {
    case 0:
      return rng.pick(NUMBERS);
    case 1:
      return rng.int(2 ** 32) - 2 ** 16;
    case 2:
      return rng.pick(OPS);
    case 3:
      return rng.pick(FUZZ_NAMES);
    case 4:
      return new TextDecoder().decode(noise(rng, rng.int(40)));
    case 5:
      return noise(rng, rng.int(100)).slice();
    case 6:
      return rng.pick([true, false, null, undefined]);
    case 7:
      return Array.from({ length: rng.int(5) }, () => randomValue(rng, depth + 1));
    case 8: {
      const map = new Map<unknown, unknown>();
      for (let i = rng.int(6); i > 0; i--) {
        map.set(
          rng.chance(0.8) ? rng.pick(KEYS) : randomValue(rng, depth + 1),
          randomValue(rng, depth + 1),
        );
      }
      return map;
    }
    case 9:
      // An object that String() cannot print: { toString: 1 } and the like.
      return new Map([[rng.pick(["toString", "valueOf"]), randomValue(rng, depth + 1)]]);
    default: {
      const map = new Map<unknown, unknown>([["op", rng.pick(OPS)], ["id", rng.int(8)]]);
      for (let i = rng.int(4); i > 0; i--) map.set(rng.pick(KEYS), randomValue(rng, depth + 1));
      return map;
    }
  }
}

/** Random CBOR built head by head: any major type, reserved and indefinite lengths, any tag. */
function randomCbor(rng: Prng, out: number[], depth: number): void {
  const major = rng.int(8);
  const roll = rng.int(20);
  if (roll < 14) {
    const value = major === 6 ? rng.pick(TAGS) : rng.int(depth > 4 ? 4 : 24);
    out.push(...cborHead(major, value));
    if (major === 2 || major === 3) out.push(...noise(rng, value));
    if (major === 4 || major === 5 || major === 6) {
      const items = major === 6 ? 1 : major === 5 ? 2 * value : value;
      for (let i = 0; i < items && depth < 6; i++) randomCbor(rng, out, depth + 1);
    }
  } else if (roll < 17) {
    // An 8-, 16-, 32- or 64-bit argument, maybe claiming far more than follows.
    const width = rng.int(4);
    out.push((major << 5) | (24 + width), ...noise(rng, 1 << width));
  } else if (roll < 19) {
    // Indefinite length, sometimes left open.
    out.push((major << 5) | 31);
    for (let i = rng.int(4); i > 0 && depth < 6; i--) randomCbor(rng, out, depth + 1);
    if (rng.chance(0.7)) out.push(0xff);
  } else {
    out.push((major << 5) | (28 + rng.int(3))); // reserved
  }
}

/** A well-formed request of any kind, with ids and names that collide across frames. */
function validRequest(rng: Prng): Record<string, unknown> {
  const id = rng.chance(0.95) ? rng.int(8) : rng.next();
  switch (rng.int(13)) {
    case 9:
      return { op: "rm", id, name: rng.pick(FUZZ_NAMES) };
    case 10:
      return {
        op: "mv",
        id,
        from: rng.pick(FUZZ_NAMES),
        to: rng.pick(FUZZ_NAMES),
        force: rng.chance(0.5),
      };
    case 11:
      return rng.chance(0.5) ? { op: "du", id, prefix: "fuzz/" } : { op: "df", id };
    case 12:
      return {
        op: "get",
        id,
        name: rng.pick(FUZZ_NAMES),
        start: rng.pick(NUMBERS),
        end: rng.pick(NUMBERS),
      };
    case 0:
      return { op: "hello", version: PROTOCOL_VERSION };
    case 1:
      return rng.chance(0.5)
        ? { op: "put", id, name: rng.pick(FUZZ_NAMES) }
        : { op: "put", id, name: rng.pick(FUZZ_NAMES), size: rng.int(5000) };
    case 2:
    case 3:
      return { op: "data", id, bytes: noise(rng, rng.int(3000)) };
    case 4:
      return rng.chance(0.5) ? { op: "end", id } : { op: "end", id, sha256: sha256(noise(rng, 8)) };
    case 5:
      return { op: "abort", id };
    case 6:
      return { op: "get", id, name: rng.pick(FUZZ_NAMES) };
    case 7:
      return { op: "meta", id, name: rng.pick(FUZZ_NAMES) };
    default:
      return { op: "list", id, prefix: rng.pick(["", "fuzz/", "\0", "x"]) };
  }
}

/** Flips, overwrites, inserts, deletes or repeats bytes of `body`. */
function mutate(rng: Prng, body: Uint8Array): Uint8Array {
  const bytes = [...body];
  for (let n = 1 + rng.int(4); n > 0; n--) {
    const at = rng.int(bytes.length + 1);
    switch (rng.int(6)) {
      case 0:
        if (at < bytes.length) bytes[at] ^= 1 << rng.int(8);
        break;
      case 1:
        if (at < bytes.length) bytes[at] = rng.int(256);
        break;
      case 2:
        bytes.splice(at, 0, ...noise(rng, 1 + rng.int(8)));
        break;
      case 3:
        bytes.splice(at, 1 + rng.int(8));
        break;
      case 4:
        bytes.splice(at, 0, ...bytes.slice(at, at + 1 + rng.int(16)));
        break;
      default:
        bytes.splice(
          at,
          0,
          ...cborHead(
            rng.int(8),
            rng.pick(NUMBERS.filter((v) => v >= 0 && v < 2 ** 32 && Number.isInteger(v))),
          ),
        );
    }
  }
  return Uint8Array.from(bytes);
}

interface FuzzItem {
  bytes: Uint8Array;
  /** After sending it, this connection is done (truncated frame, raw noise). */
  ends: boolean;
}

/** The next thing to send: the mix the issue asks for. */
function fuzzItem(rng: Prng): FuzzItem {
  const roll = rng.int(100);
  if (roll < 28) {
    // Random bytes behind a valid length prefix.
    return { bytes: frameOf(noise(rng, fuzzLength(rng))), ends: false };
  }
  if (roll < 48) {
    // Valid CBOR of random shape.
    return { bytes: frameOf(encoder.encode(randomValue(rng, 0))), ends: false };
  }
  if (roll < 58) {
    // Hand-built CBOR: reserved values, indefinite lengths, lengths that lie, odd tags.
    const out: number[] = [];
    randomCbor(rng, out, 0);
    return { bytes: frameOf(out), ends: false };
  }
  if (roll < 70) {
    // Well-formed requests keep uploads and reads open for the malformed frames to hit.
    return { bytes: encodeFrame(validRequest(rng)), ends: false };
  }
  if (roll < 92) {
    // A mutated valid request; its length prefix is usually fixed up, sometimes left to lie.
    const body = mutate(rng, encodeFrame(validRequest(rng)).subarray(4));
    if (rng.chance(0.9)) return { bytes: frameOf(body), ends: false };
    const frame = frameOf(body);
    new DataView(frame.buffer).setUint32(
      0,
      rng.chance(0.5) ? rng.int(body.length * 2 + 8) : rng.next(),
    );
    return { bytes: frame, ends: false };
  }
  if (roll < 97) {
    // A frame cut off at a random point, then the connection ends.
    const whole = rng.chance(0.5)
      ? encodeFrame(validRequest(rng))
      : frameOf(noise(rng, fuzzLength(rng)));
    return { bytes: whole.subarray(0, rng.int(whole.length)), ends: true };
  }
  // A raw random byte stream with no framing at all.
  return { bytes: noise(rng, 1 + rng.int(4096)), ends: true };
}

interface FuzzStats {
  sent: number;
  connections: number;
  replies: number;
  codes: Map<string, number>;
  /** Replies that are not a well-formed frame the protocol allows. */
  bad: string[];
}

/** Reads and checks every reply on `conn` until it closes. */
async function drainReplies(conn: Deno.Conn, stats: FuzzStats): Promise<void> {
  const reader = new FrameReader(conn);
  try {
    while (true) {
      const body = await reader.read();
      if (body === null) return;
      stats.replies++;
      let reply: Record<string, unknown>;
      try {
        reply = decodeFrameBody(body) as Record<string, unknown>;
      } catch (error) {
        stats.bad.push(`undecodable reply: ${(error as Error).message}`);
        continue;
      }
      if (reply.op === "error") {
        const code = String(reply.code);
        stats.codes.set(code, (stats.codes.get(code) ?? 0) + 1);
        if (!(ERROR_CODES as readonly string[]).includes(code) || code === "INTERNAL") {
          stats.bad.push(`error reply ${describeFrame(reply)}`);
        }
      } else if (
        reply.op === "ok" && ((reply.result as { removed?: number })?.removed ?? 0) > 1
      ) {
        // The fuzz sends rm only with a name (mutated or not): one file at most may go.
        stats.bad.push(`an rm without a prefix removed files: ${describeFrame(reply)}`);
      } else if (!["hello", "ok", "data", "end", "entries"].includes(String(reply.op))) {
        stats.bad.push(`unexpected reply ${describeFrame(reply)}`);
      }
    }
  } catch {
    // reset by the server, or closed by us
  }
}

/** One fuzzing client: connects, sends batches of fuzz items, reconnects when a connection ends. */
async function fuzzWorker(
  address: string,
  rng: Prng,
  stats: FuzzStats,
  until: { frames: number; deadline: number },
): Promise<void> {
  const [hostname, port] = address.split(":");
  const more = () => stats.sent < until.frames && Date.now() < until.deadline;
  while (more()) {
    let conn: Deno.TcpConn;
    try {
      conn = await Deno.connect({ hostname, port: Number(port) });
    } catch (error) {
      throw new Error(`Cannot reach the server after ${stats.sent} fuzz frames: ${error}`);
    }
    stats.connections++;
    const drained = drainReplies(conn, stats);
    try {
      if (rng.chance(0.95)) {
        await writeAll(conn, encodeFrame({ op: "hello", version: PROTOCOL_VERSION }));
      }
      let budget = 1 + rng.int(600);
      let ends = false;
      while (!ends && budget > 0 && more()) {
        const batch: Uint8Array[] = [];
        while (batch.length < 32 && !ends) {
          const item = fuzzItem(rng);
          batch.push(item.bytes);
          ends = item.ends;
        }
        budget -= batch.length;
        try {
          await writeAll(conn, await new Blob(batch as BlobPart[]).bytes());
        } catch {
          break; // the server closed this connection: next one
        }
        stats.sent += batch.length;
      }
      if (!ends || rng.chance(0.5)) {
        // Half-close: the server sees the stream end (mid-frame after a cut-off item), answers
        // what it read, then closes; every reply is checked. The rest are closed abruptly.
        await conn.closeWrite().catch(() => {});
        await withTimeout(drained, {
          timeoutMs: REPLY_TIMEOUT_MS,
          what: "the server to close a fuzz connection",
        }).catch(() => {});
      }
    } finally {
      try {
        conn.close();
      } catch { /* already closed */ }
      await drained;
    }
  }
}

/** Runs the fuzz clients until `until`; a healthy client reads the stored file meanwhile. */
async function fuzz(
  server: TestServer,
  healthy: DfsClient,
  options: { seed: number; frames: number; deadline: number },
): Promise<FuzzStats & { seconds: number; bystanderReads: number; bystanderErrors: string[] }> {
  const stats: FuzzStats = { sent: 0, connections: 0, replies: 0, codes: new Map(), bad: [] };
  const started = Date.now();
  let bystanderReads = 0;
  const bystanderErrors: string[] = [];
  let fuzzing = true;
  const bystander = (async () => {
    while (fuzzing) {
      try {
        assert.equal(sha256(await healthy.getBytes(STORED_NAME)), sha256(STORED));
        bystanderReads++;
      } catch (error) {
        bystanderErrors.push(String(error));
      }
      await sleep(250);
    }
  })();
  try {
    await withTimeout(
      Promise.all(
        Array.from(
          { length: FUZZ_CONNECTIONS },
          (_, i) =>
            fuzzWorker(server.address, new Prng(options.seed + i), stats, {
              frames: options.frames,
              deadline: options.deadline,
            }),
        ),
      ),
      { timeoutMs: options.deadline - started + 30_000, what: "the fuzz clients" },
    );
  } finally {
    fuzzing = false;
    await bystander;
  }
  return { ...stats, seconds: (Date.now() - started) / 1000, bystanderReads, bystanderErrors };
}

Deno.test(
  `the server survives ${FUZZ_FRAMES_MIN} fuzzed frames (seed ${FUZZ_SEED}) and still serves`,
  async () => {
    await using server = await TestServer.start();
    await using healthy = await DfsClient.connect(server.address);
    const stored = await healthy.put(STORED_NAME, STORED);
    // Warm up: 8 readers of a 16 MiB file at once (8 chunk reads in flight each) bring the buffer
    // pool to its 64 idle buffers, and a fuzz prelude grows the heaps to their working size.
    await healthy.put("warm.bin", pseudoRandomBytes(16 * MiB, 1));
    const readers = await Promise.all(
      Array.from({ length: 8 }, () => DfsClient.connect(server.address)),
    );
    try {
      await Promise.all(readers.map((c) => c.getBytes("warm.bin")));
    } finally {
      for (const c of readers) c.close();
    }
    const prelude = await fuzz(server, healthy, {
      seed: FUZZ_SEED + 1000,
      frames: FUZZ_PRELUDE_FRAMES,
      deadline: Date.now() + FUZZ_TIME_MS_MAX,
    });
    await sleep(500);
    const rssBefore = await server.rssBytes();

    const run = await fuzz(server, healthy, {
      seed: FUZZ_SEED,
      frames: FUZZ_FRAMES_MIN,
      deadline: Date.now() + FUZZ_TIME_MS_MAX,
    });
    const rssPeak = await server.peakRssBytes();
    const namesLeft = (await healthy.list()).map((e) => e.name);

    // Still serves puts and gets, byte for byte, on a fresh connection and the old one.
    await using after = await DfsClient.connect(server.address);
    for (const size of [0, 1, CHUNK_SIZE_BYTES + 1, 3 * MiB]) {
      const data = pseudoRandomBytes(size, 0xaf7e + size);
      const meta = await after.put(`after/${size}`, data);
      assert.equal(meta.sha256, sha256(data));
      assert.deepEqual(await healthy.getBytes(`after/${size}`), data);
    }
    // Memory back near where it started (dead buffers go at V8's next collection: allow 5 s).
    let rssAfter = await server.rssBytes();
    for (let i = 0; i < 20 && rssAfter - rssBefore >= FUZZ_RSS_GROWTH_BYTES_MAX; i++) {
      await sleep(250);
      rssAfter = await server.rssBytes();
    }
    console.log(
      `fuzz: ${run.sent} frames on ${run.connections} connections in ${
        run.seconds.toFixed(1)
      } s; ` +
        `${run.replies} replies ${JSON.stringify(Object.fromEntries(run.codes))}; ` +
        `${run.bystanderReads} bystander reads; server RSS ${mib(rssBefore)} MiB before, ` +
        `${mib(rssPeak)} MiB peak, ${mib(rssAfter)} MiB after`,
    );
    assert.ok(
      run.sent >= FUZZ_FRAMES_MIN,
      `only ${run.sent} frames sent in ${FUZZ_TIME_MS_MAX / 1000} s`,
    );
    // The prelude is fuzz too: its replies and bystander reads count.
    const bad = [...prelude.bad, ...run.bad];
    assert.deepEqual(bad.slice(0, 10), [], `${bad.length} bad replies`);
    const bystanderErrors = [...prelude.bystanderErrors, ...run.bystanderErrors];
    if (bystanderErrors.length > 0) {
      const first = bystanderErrors[0];
      const left = JSON.stringify(namesLeft.slice(0, 10));
      assert.fail(
        `${bystanderErrors.length} reads of the stored file failed, first: ${first}; ` +
          `${namesLeft.length} files were left after the fuzz: ${left}`,
      );
    }
    assert.ok(
      rssAfter - rssBefore < FUZZ_RSS_GROWTH_BYTES_MAX,
      `server RSS grew from ${mib(rssBefore)} to ${mib(rssAfter)} MiB`,
    );
    await checkBystanders(server, healthy, stored);
    await server.stop("SIGTERM");
    const log = await server.stderr;
    const internal = log.split("\n").filter((line) => line.includes("internal error"));
    assert.deepEqual(
      internal.slice(0, 10),
      [],
      `${internal.length} internal errors logged, first:\n${log.slice(0, 1500)}`,
    );
  },
);
