/**
 * The behaviour suite every transport must pass under `Comm`. A transport's test calls
 * `runCommSuite({ name, newWorld })`; each test drives rank 0 while ranks 1..size-1 run the peer
 * program of `_comm_test_peer.ts`. Only rank 0 talks to peers, so a star topology suffices.
 *
 * The suite holds on a fake clock too: a world names the clock its ranks use and moves it itself
 * (e.g. with `FakeClock.autoAdvance()`). It holds for transports that copy buffers rather than move
 * them: what only moving shows (a transferred buffer detached at the sender) is checked where
 * `comm.movesBuffersTo(peer)` says so.
 *
 * @module
 */

import { deepEqual, equal, ok, rejects, throws } from "node:assert/strict";
import { DfsError } from "../../protocol/errors.ts";
import type { Clock } from "../env/env.ts";
import { systemClock } from "../env/system.ts";
import { ANY_SOURCE, ANY_TAG, type Comm, type CommStats } from "./comm.ts";
import type { PeerRequest } from "./_comm_test_peer.ts";

/** Ranks 0..size-1: rank 0's Comm, with every other rank running the peer program. */
export interface CommWorld extends AsyncDisposable {
  readonly comm: Comm;
  /** The clock every rank's Comm and peer program use; default systemClock. */
  readonly clock?: Clock;
}

/** How a transport's test plugs into the suite. */
export interface CommSuiteOptions {
  /** Names the transport in test names, e.g. "MessageChannel". */
  name: string;
  /** Starts a world of `size` ranks; disposing it closes every Comm and stops every peer. */
  newWorld(size: number): Promise<CommWorld>;
}

const IDLE: CommStats = { recvs: 0, calls: 0, mailbox: 0, handlers: 0 };
const MIB_BYTES = 1024 * 1024;

function ask<T = unknown>(comm: Comm, peer: number, request: PeerRequest): Promise<T> {
  return comm.call<T>(peer, request);
}

function peersOf(size: number): number[] {
  return Array.from({ length: size - 1 }, (_, i) => i + 1);
}

function unavailable(message: string | RegExp) {
  return (error: unknown) => {
    ok(error instanceof DfsError, `expected a DfsError, got ${error}`);
    equal(error.code, "UNAVAILABLE");
    if (typeof message === "string") equal(error.message, message);
    else ok(message.test(error.message), error.message);
    return true;
  };
}

/** Registers the suite's tests with Deno.test, each over a fresh world from `newWorld`. */
export function runCommSuite({ name, newWorld }: CommSuiteOptions): void {
  function test(
    title: string,
    size: number,
    fn: (comm: Comm, clock: Clock) => Promise<void>,
  ): void {
    Deno.test(`${title} [${name}]`, async () => {
      await using world = await newWorld(size);
      await fn(world.comm, world.clock ?? systemClock);
    });
  }

  test("Comm.recv() receives each sender's messages in the order sent", 3, async (comm) => {
    const tag = comm.nextTag();
    const count = 200;
    const streams = [1, 2].map((peer) => ask(comm, peer, { op: "stream", tags: [tag], count }));
    for (let i = 0; i < count / 2; i++) equal((await comm.recv(2, tag)).body, i);
    const next = [0, 0, count / 2];
    for (let i = 0; i < count * 1.5; i++) {
      const { source, body } = await comm.recv(ANY_SOURCE, tag);
      equal(body, next[source]++);
    }
    deepEqual(next, [0, count, count]);
    deepEqual(await Promise.all(streams), [count, count]);

    const collected = ask(comm, 1, { op: "collect", tag, count });
    for (let i = 0; i < count; i++) comm.send(1, tag, i);
    deepEqual(await collected, [...Array(count).keys()]);
    deepEqual(comm.stats, IDLE);
  });

  test(
    "Comm.recv() matches source and tag, with ANY_SOURCE and ANY_TAG wildcards",
    3,
    async (comm) => {
      const [a, b] = [comm.nextTag(), comm.nextTag()];
      // Messages from a stream arrive before its reply, so they wait in the mailbox.
      await ask(comm, 1, { op: "stream", tags: [a, b], count: 1 });
      await ask(comm, 2, { op: "stream", tags: [a, b], count: 1 });
      deepEqual(comm.stats.mailbox, 4);
      deepEqual(await comm.recv(2, b), { source: 2, tag: b, body: 0 });
      deepEqual(await comm.recv(ANY_SOURCE, b), { source: 1, tag: b, body: 0 });
      deepEqual(await comm.recv(2, ANY_TAG), { source: 2, tag: a, body: 0 });
      deepEqual(await comm.recv(), { source: 1, tag: a, body: 0 });

      // Pending receives are matched in posting order, each by its own source and tag.
      const fromTwo = comm.recv(2, a);
      const fromAny = comm.recv(ANY_SOURCE, a);
      const fromAnyToo = comm.recv(ANY_SOURCE, a);
      const otherTag = comm.recv(1, b);
      await ask(comm, 1, { op: "stream", tags: [a], count: 2 });
      deepEqual(await fromAny, { source: 1, tag: a, body: 0 });
      deepEqual(await fromAnyToo, { source: 1, tag: a, body: 1 });
      await ask(comm, 2, { op: "stream", tags: [a, b], count: 1 });
      deepEqual(await fromTwo, { source: 2, tag: a, body: 0 });
      deepEqual(await comm.recv(2, b), { source: 2, tag: b, body: 0 });
      deepEqual(comm.stats, { ...IDLE, recvs: 1 });
      await ask(comm, 1, { op: "stream", tags: [b], count: 1 });
      deepEqual(await otherTag, { source: 1, tag: b, body: 0 });
      deepEqual(comm.stats, IDLE);
    },
  );

  test(
    "Comm.recv() rejects with UNAVAILABLE after timeoutMs and leaves nothing pending",
    2,
    async (comm, clock) => {
      const tag = comm.nextTag();
      const started = clock.monotonic();
      await rejects(
        comm.recv(1, tag, { timeoutMs: 30 }),
        unavailable(`Cannot receive from rank 1 with tag ${tag}: timed out after 30 ms`),
      );
      ok(clock.monotonic() - started >= 25);
      deepEqual(comm.stats, IDLE);
    },
  );

  test(
    "Comm.call() rejects with UNAVAILABLE after timeoutMs and drops the late reply",
    2,
    async (comm) => {
      await rejects(
        comm.call(1, { op: "sleep", ms: 100, value: "late" }, { timeoutMs: 20 }),
        unavailable("Call to rank 1 timed out after 20 ms"),
      );
      deepEqual(comm.stats, IDLE);
      // Served concurrently, this answers after the late reply came and went.
      equal(await ask(comm, 1, { op: "sleep", ms: 200, value: "on time" }), "on time");
      deepEqual(comm.stats, IDLE);
    },
  );

  test(
    "Comm.call() rejects with the code and message of the DfsError the handler threw",
    2,
    async (comm) => {
      const message = 'Cannot get "a.txt": file does not exist';
      await rejects(ask(comm, 1, { op: "fail", code: "NOT_FOUND", message }), (error) => {
        ok(error instanceof DfsError);
        deepEqual(error.toWire(), { code: "NOT_FOUND", message });
        return true;
      });
      await rejects(ask(comm, 1, { op: "crash" }), (error) => {
        ok(error instanceof DfsError);
        deepEqual(error.toWire(), { code: "INTERNAL", message: "Internal server error" });
        return true;
      });
      equal(await ask(comm, 1, { op: "sum", values: [1, 2, 3] }), 6);
    },
  );

  test("Comm.call() runs calls concurrently, to one rank and to several", 4, async (comm) => {
    const order: string[] = [];
    const slow = ask<string>(comm, 1, { op: "sleep", ms: 150, value: "slow" }).then((v) => {
      order.push(v);
    });
    const fast = ask<string>(comm, 1, { op: "sleep", ms: 0, value: "fast" }).then((v) => {
      order.push(v);
    });
    const many = [];
    for (let i = 0; i < 300; i++) many.push(ask(comm, 1 + (i % 3), { op: "echo", value: i }));
    deepEqual(await Promise.all(many), [...Array(300).keys()]);
    await Promise.all([slow, fast]);
    deepEqual(order, ["fast", "slow"]);
    deepEqual(comm.stats, IDLE);
  });

  for (const size of [2, 4, 8]) {
    // One world for both collectives: under `deno test` every Worker costs a type check.
    const title = `Comm.bcast() gives every rank root's value and Comm.gather() collects ` +
      `every rank's value at root (N=${size})`;
    test(title, size, async (comm) => {
      const peers = peersOf(size);
      const value = { size, list: [1, 2, 3] };
      const tag = comm.nextTag();
      const got = peers.map((peer) => ask(comm, peer, { op: "bcast", tag }));
      deepEqual(await comm.bcast(0, value, { tag }), value);
      deepEqual(await Promise.all(got), peers.map(() => value));

      const gotDefault = peers.map((peer) => ask(comm, peer, { op: "bcast" }));
      equal(await comm.bcast(0, "default tag"), "default tag");
      deepEqual(await Promise.all(gotDefault), peers.map(() => "default tag"));

      const sent = peers.map((peer) => ask(comm, peer, { op: "gather", tag, value: { r: peer } }));
      const values = await comm.gather(0, { r: 0 }, { tag });
      deepEqual(values, [...Array(size).keys()].map((r) => ({ r })));
      deepEqual(await Promise.all(sent), peers.map(() => true));

      const sentDefault = peers.map((peer) => ask(comm, peer, { op: "gather", value: peer * 2 }));
      deepEqual(await comm.gather(0, 0), [...Array(size).keys()].map((r) => r * 2));
      await Promise.all(sentDefault);
      deepEqual(comm.stats, IDLE);
    });
  }

  test("Concurrent collectives with distinct tags don't mix", 4, async (comm) => {
    const peers = peersOf(4);
    const [first, second] = [comm.nextTag(), comm.nextTag()];
    // Peers take part in the second gather before the first; rank 0 waits on the first first.
    const sent = [
      ...peers.map((peer) => ask(comm, peer, { op: "gather", tag: second, value: `b${peer}` })),
      ...peers.map((peer) => ask(comm, peer, { op: "gather", tag: first, value: `a${peer}` })),
    ];
    const a = await comm.gather(0, "a0", { tag: first });
    const b = await comm.gather(0, "b0", { tag: second });
    deepEqual([a, b], [["a0", "a1", "a2", "a3"], ["b0", "b1", "b2", "b3"]]);
    await Promise.all(sent);

    const gotSecond = peers.map((peer) => ask(comm, peer, { op: "bcast", tag: second }));
    const gotFirst = peers.map((peer) => ask(comm, peer, { op: "bcast", tag: first }));
    await comm.bcast(0, "one", { tag: first });
    await comm.bcast(0, "two", { tag: second });
    deepEqual(await Promise.all(gotFirst), ["one", "one", "one"]);
    deepEqual(await Promise.all(gotSecond), ["two", "two", "two"]);
    deepEqual(comm.stats, IDLE);
  });

  test(
    "Comm.call() and Comm.send() carry a 1 MiB ArrayBuffer, moved where the transport moves buffers",
    2,
    async (comm) => {
      // Moved: the sender's buffer is detached. Copied: `transfer` is ignored, the sender keeps it.
      const buffer = new ArrayBuffer(MIB_BYTES);
      new Uint8Array(buffer).fill(0x0f)[0] = 0;
      const flipped = comm.call<ArrayBuffer>(1, { op: "flip", buffer }, { transfer: [buffer] });
      if (comm.movesBuffersTo(1)) equal(buffer.byteLength, 0);
      else deepEqual(new Uint8Array(buffer).subarray(0, 2), Uint8Array.of(0, 0x0f));
      const bytes = new Uint8Array(await flipped);
      equal(bytes.length, MIB_BYTES);
      deepEqual([bytes[0], bytes[1], bytes[MIB_BYTES - 1]], [0xff, 0xf0, 0xf0]);

      const tag = comm.nextTag();
      const collected = ask<ArrayBuffer[]>(comm, 1, { op: "collect", tag, count: 1 });
      comm.send(1, tag, bytes.buffer, { transfer: [bytes.buffer] });
      equal(bytes.byteLength, comm.movesBuffersTo(1) ? 0 : MIB_BYTES);
      equal((await collected)[0].byteLength, MIB_BYTES);
    },
  );

  test("Comm.close() rejects pending recv() and call() with UNAVAILABLE", 2, async (comm) => {
    const received = comm.recv(1, comm.nextTag());
    const called = ask(comm, 1, { op: "sleep", ms: 200, value: 1 });
    comm.close();
    await rejects(received, unavailable("Comm of rank 0 is closed"));
    await rejects(called, unavailable("Comm of rank 0 is closed"));
    deepEqual(comm.stats, IDLE);
    throws(() => comm.send(1, 1, "x"), unavailable("Cannot send to rank 1: the Comm is closed"));
    await rejects(comm.recv(1, 1), unavailable("Comm of rank 0 is closed"));
    await rejects(ask(comm, 1, { op: "echo", value: 1 }), unavailable(/the Comm is closed/));
  });

  test(
    "Comm.failPeer() fails pending receives from that rank only; later calls go out",
    3,
    async (comm) => {
      const tag = comm.nextTag();
      const fromOne = comm.recv(1, tag);
      const fromTwo = comm.recv(2, tag);
      const fromAny = comm.recv(ANY_SOURCE, tag);
      const called = ask(comm, 1, { op: "sleep", ms: 50, value: 1 });
      comm.failPeer(1, "its Worker crashed");
      await rejects(fromOne, unavailable("Rank 1 is unavailable: its Worker crashed"));
      await rejects(called, unavailable("Rank 1 is unavailable: its Worker crashed"));
      deepEqual(comm.stats, { ...IDLE, recvs: 2 });
      equal(await ask(comm, 1, { op: "echo", value: "again" }), "again");
      await ask(comm, 2, { op: "stream", tags: [tag], count: 2 });
      equal((await fromTwo).body, 0);
      equal((await fromAny).body, 1);
      deepEqual(comm.stats, IDLE);
    },
  );
}
