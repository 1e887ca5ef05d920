import { deepEqual, equal, rejects, throws } from "node:assert/strict";
import { FakeClock } from "../env/fake_clock.ts";
import { CALL_TIMEOUT_MS, Comm, type CommOptions } from "./comm.ts";
import { reply } from "./reply.ts";
import { type CommWorld, runCommSuite } from "./comm_suite.ts";
import {
  LOOPBACK_PACKETS_QUEUED_MAX,
  LoopbackNetwork,
  type LoopbackOptions,
  type LoopbackTraceEntry,
} from "./loopback_transport.ts";
import type { Packet, Transport } from "./transport.ts";
import { runPeer } from "./_comm_test_peer.ts";

/** A world over a LoopbackNetwork whose ranks share a FakeClock that advances whenever idle. */
function loopbackWorld(options: LoopbackOptions): (size: number) => Promise<CommWorld> {
  return (size) => {
    const clock = new FakeClock();
    const network = new LoopbackNetwork(size, options);
    const comms = ranksOf(size).map((rank) => new Comm(network.transport(rank), { clock }));
    const peers = comms.slice(1).map((comm) => runPeer(comm, { clock }));
    const auto = clock.autoAdvance();
    return Promise.resolve({
      comm: comms[0],
      clock,
      async [Symbol.asyncDispose]() {
        for (const comm of comms) comm.close();
        await Promise.all(peers);
        auto[Symbol.dispose]();
      },
    });
  };
}

runCommSuite({ name: "Loopback moving buffers", newWorld: loopbackWorld({ movesBuffers: true }) });
runCommSuite({
  name: "Loopback copying buffers",
  newWorld: loopbackWorld({ movesBuffers: false }),
});

function ranksOf(size: number): number[] {
  return [...Array(size).keys()];
}

/** Comms of every rank of `network` on `clock`; ranks in `serving` run the peer program. */
function commsOf(
  network: LoopbackNetwork,
  clock: FakeClock,
  options: CommOptions & { serving?: number[] } = {},
): { comms: Comm[]; close(): Promise<void> } {
  const comms = ranksOf(network.size).map((rank) =>
    new Comm(network.transport(rank), { clock, ...options })
  );
  const peers = (options.serving ?? []).map((rank) => runPeer(comms[rank], { clock }));
  return {
    comms,
    async close() {
      for (const comm of comms) comm.close();
      await Promise.all(peers);
    },
  };
}

/** Raw transports of every rank, each recording the packets it gets. */
function tapped(network: LoopbackNetwork): { transports: Transport[]; got: Packet[][] } {
  const got: Packet[][] = ranksOf(network.size).map(() => []);
  const transports = ranksOf(network.size).map((rank) => {
    const transport = network.transport(rank);
    transport.onPacket = (packet) => got[rank].push(packet);
    return transport;
  });
  return { transports, got };
}

/** Lets the network deliver what is queued (and what that causes). */
async function settle(): Promise<void> {
  for (let turn = 0; turn < 100; turn++) await Promise.resolve();
}

function unavailable(message: string | RegExp) {
  return { name: "DfsError", code: "UNAVAILABLE", message };
}

Deno.test("LoopbackNetwork delivers after send() returns, in one FIFO, in the order sent", async () => {
  const network = new LoopbackNetwork(3);
  const { transports: [t0, t1, t2], got } = tapped(network);
  t0.send(1, 1, "a");
  t2.send(1, 2, "b");
  t0.send(1, 3, "c");
  t0.send(2, 4, "d");
  equal(got.flat().length, 0, "nothing arrives inside send()");
  equal(network.queued, 4);
  // What a receiver sends while the FIFO drains goes in the next drain, after what was queued.
  t1.onPacket = (packet) => {
    got[1].push(packet);
    if (packet.tag === 1) t1.send(0, 5, "reply");
  };
  await Promise.resolve();
  deepEqual(got[1].map((p) => [p.source, p.tag, p.body]), [[0, 1, "a"], [2, 2, "b"], [0, 3, "c"]]);
  deepEqual(got[2].map((p) => p.tag), [4]);
  deepEqual(got[0], []);
  await Promise.resolve();
  deepEqual(got[0], [{ source: 1, tag: 5, body: "reply" }]);
  deepEqual([network.sent, network.delivered, network.dropped, network.queued], [5, 5, 0, 0]);
});

Deno.test("LoopbackNetwork copies bodies as they are sent and moves transfer buffers only if it moves buffers", async () => {
  for (const movesBuffers of [true, false]) {
    const network = new LoopbackNetwork(2, { movesBuffers });
    const { transports: [t0], got } = tapped(network);
    equal(t0.movesBuffers(1), movesBuffers);
    const buffer = Uint8Array.of(1, 2, 3).buffer;
    const body = { list: [1], buffer };
    t0.send(1, 0, body, [buffer]);
    body.list.push(2); // the sender reuses what it sent
    equal(buffer.byteLength, movesBuffers ? 0 : 3);
    await settle();
    const arrived = got[1][0].body as typeof body;
    deepEqual(arrived.list, [1]);
    deepEqual(new Uint8Array(arrived.buffer), Uint8Array.of(1, 2, 3));
  }
});

Deno.test("LoopbackNetwork transports throw UNAVAILABLE for ranks without a route and after close()", async () => {
  const network = new LoopbackNetwork(3);
  const { transports: [t0, t1], got } = tapped(network);
  throws(() => t0.send(0, 0, "x"), unavailable("Cannot send to rank 0: no route leads there"));
  throws(() => t0.send(3, 0, "x"), unavailable("Cannot send to rank 3: no route leads there"));
  throws(() => t0.send(-1, 0, "x"), unavailable("Cannot send to rank -1: no route leads there"));
  throws(() => network.transport(1), /Assertion failed: rank 1 already has an open transport/);
  throws(() => network.transport(3), /Assertion failed: rank 3 out of range/);
  t1.send(0, 1, "sent before close");
  t0.send(1, 2, "to a closed rank");
  t1.close();
  t1.close();
  equal(t1.onPacket, null);
  throws(() => t1.send(0, 0, "x"), unavailable("Cannot send to rank 0: the transport is closed"));
  await settle();
  deepEqual(got[0].map((p) => p.body), ["sent before close"]);
  deepEqual(got[1], []);
  deepEqual([network.delivered, network.dropped], [1, 1]);
  network.transport(1).close(); // a closed rank's transport can be made again
});

Deno.test("LoopbackNetwork asserts when more than packetsQueuedMax packets are queued", async () => {
  equal(LOOPBACK_PACKETS_QUEUED_MAX, 100_000);
  const network = new LoopbackNetwork(2, { packetsQueuedMax: 3 });
  const { transports: [t0], got } = tapped(network);
  for (let i = 0; i < 3; i++) t0.send(1, i, i);
  const buffer = new ArrayBuffer(8);
  throws(
    () => t0.send(1, 3, buffer, [buffer]),
    /Assertion failed: the loopback network has 3 packets queued/,
  );
  equal(buffer.byteLength, 8, "a packet refused is not taken");
  await settle();
  t0.send(1, 4, 4);
  await settle();
  deepEqual(got[1].map((p) => p.body), [0, 1, 2, 4]);
});

Deno.test("LoopbackNetwork delivers the packets after one whose handler threw, and reports the error", async () => {
  const network = new LoopbackNetwork(2);
  const { transports: [t0, t1], got } = tapped(network);
  const reported: unknown[] = [];
  const onError = (event: ErrorEvent) => {
    event.preventDefault();
    reported.push(event.error);
  };
  globalThis.addEventListener("error", onError);
  try {
    t1.onPacket = (packet) => {
      if (packet.body === "bad") throw new Error("handler failed");
      got[1].push(packet);
    };
    for (const body of ["one", "bad", "two"]) t0.send(1, 0, body);
    await settle();
    deepEqual(got[1].map((p) => p.body), ["one", "two"]);
    deepEqual(reported.map((error) => (error as Error).message), ["handler failed"]);
  } finally {
    globalThis.removeEventListener("error", onError);
  }
});

Deno.test("LoopbackNetwork.cut() drops everything to and from a rank until heal(): its calls time out", async () => {
  const clock = new FakeClock();
  const network = new LoopbackNetwork(3);
  const { comms: [zero, one], close } = commsOf(network, clock, { serving: [1, 2] });
  network.cut(1);
  const called = zero.call(1, { op: "echo", value: "lost" }, { timeoutMs: 100 });
  const other = zero.call(2, { op: "echo", value: "fine" }, { timeoutMs: 100 });
  const fromOne = zero.recv(1, 9, { timeoutMs: 100 });
  one.send(0, 9, "lost too");
  await clock.advance(99);
  equal(await other, "fine");
  deepEqual(zero.stats, { recvs: 1, calls: 1, mailbox: 0, handlers: 0 });
  await clock.advance(1);
  await rejects(called, unavailable("Call to rank 1 timed out after 100 ms"));
  await rejects(fromOne, unavailable(/timed out after 100 ms/));
  deepEqual([network.sent, network.delivered, network.dropped], [4, 2, 2]);

  network.heal(1);
  const answered = zero.call(1, { op: "echo", value: "back" });
  await clock.advance(0);
  equal(await answered, "back");
  await close();
});

Deno.test("LoopbackNetwork.fail() tells every other rank's onPeerError and drops the rank's packets until heal()", async () => {
  const clock = new FakeClock();
  const network = new LoopbackNetwork(3);
  const lost: string[] = [];
  const { comms: [zero, , two], close } = commsOf(network, clock, {
    serving: [1],
    onPeerError: (rank, error) => lost.push(`${rank}: ${(error as Error).message}`),
  });
  const pending = zero.call(1, { op: "sleep", ms: 1_000, value: "never" });
  const fromOne = two.recv(1, 3);
  await clock.advance(0);
  network.fail(1, new Error("Worker crashed"));
  await rejects(pending, unavailable("Rank 1 is unavailable: Worker crashed"));
  await rejects(fromOne, unavailable("Rank 1 is unavailable: Worker crashed"));
  deepEqual(lost, ["1: Worker crashed", "1: Worker crashed"]); // ranks 0 and 2, not rank 1 itself
  await clock.advance(1_000); // the sleeping handler answers; its reply is dropped
  deepEqual(zero.stats, { recvs: 0, calls: 0, mailbox: 0, handlers: 0 });
  const silent = zero.call(1, { op: "echo", value: 1 }, { timeoutMs: 50 });
  await clock.advance(50);
  await rejects(silent, unavailable("Call to rank 1 timed out after 50 ms"));

  network.heal(1);
  const answered = zero.call(1, { op: "echo", value: "healed" });
  await clock.advance(0);
  equal(await answered, "healed");
  await close();
});

Deno.test("LoopbackNetwork.restart() drops the old incarnation's queued packets and lets a new one in", async () => {
  const clock = new FakeClock();
  const network = new LoopbackNetwork(2);
  const zero = new Comm(network.transport(0), { clock, onPeerError: () => {} });
  const old = new Comm(network.transport(1), { clock });
  const oldServed = runPeer(old, { clock });
  const lostCall = zero.call(1, { op: "echo", value: "to the old one" }, { timeoutMs: 10 });
  network.fail(1, new Error("Worker crashed")); // the report is queued after the call
  network.restart(1);
  throws(() => old.send(0, 1, "x"), unavailable("Cannot send to rank 0: the transport is closed"));
  old.close();
  await oldServed;
  await rejects(lostCall, unavailable("Rank 1 is unavailable: Worker crashed"));

  const fresh = new Comm(network.transport(1), { clock });
  const freshServed = runPeer(fresh, { clock });
  const answered = zero.call(1, { op: "echo", value: "to the new one" });
  await clock.advance(0);
  equal(await answered, "to the new one");
  deepEqual([network.sent, network.delivered, network.dropped], [3, 2, 1]);
  zero.close();
  fresh.close();
  await freshServed;
});

Deno.test("LoopbackNetwork.drop() drops the packets its predicate picks until removed", async () => {
  const clock = new FakeClock();
  const network = new LoopbackNetwork(2);
  const { comms: [zero], close } = commsOf(network, clock, { serving: [1] });
  let replies = 0;
  const undo = network.drop(({ source, body }) =>
    source === 1 && "ok" in (body as object) &&
    replies++ === 0
  );
  const first = zero.call(1, { op: "echo", value: 1 }, { timeoutMs: 10 });
  const second = zero.call(1, { op: "echo", value: 2 }, { timeoutMs: 10 });
  await clock.advance(10);
  await rejects(first, unavailable("Call to rank 1 timed out after 10 ms"));
  equal(await second, 2);
  undo();
  undo();
  const third = zero.call(1, { op: "echo", value: 3 });
  await clock.advance(0);
  equal(await third, 3);
  equal(network.dropped, 1);
  await close();
});

Deno.test("Comm.call() over a LoopbackNetwork fails at exactly its deadline on a FakeClock", async () => {
  const clock = new FakeClock();
  const network = new LoopbackNetwork(2);
  const { comms: [zero], close } = commsOf(network, clock); // rank 1 never serves
  let settled = false;
  const called = zero.call(1, "unanswered").finally(() => settled = true);
  called.catch(() => {});
  await clock.advance(CALL_TIMEOUT_MS - 1);
  equal(settled, false);
  await clock.advance(1);
  equal(settled, true);
  await rejects(called, unavailable(`Call to rank 1 timed out after ${CALL_TIMEOUT_MS} ms`));
  equal(clock.pending, 0, "the Comm's timer is gone once nothing waits");
  await close();
});

/**
 * A program of 4 ranks mixing calls, streams, collectives, sleeps, timeouts and a crash, on a
 * FakeClock that auto-advances; returns what the network traced and what rank 0 saw.
 */
async function tracedRun(): Promise<{ trace: LoopbackTraceEntry[]; seen: unknown[] }> {
  const trace: LoopbackTraceEntry[] = [];
  const clock = new FakeClock();
  const network = new LoopbackNetwork(4, { trace: (entry) => trace.push(entry) });
  const { comms: [zero], close } = commsOf(network, clock, {
    serving: [1, 2, 3],
    onPeerError: () => {},
  });
  using _auto = clock.autoAdvance();
  const seen: unknown[] = [];
  const note = (what: string) => (value: unknown) => {
    seen.push([what, clock.monotonic(), value instanceof Error ? value.message : value]);
  };
  const [tag, gatherTag] = [zero.nextTag(), zero.nextTag()];
  await Promise.all([
    zero.call(1, { op: "sleep", ms: 30, value: "slow" }).then(note("slow")),
    zero.call(2, { op: "sleep", ms: 10, value: "fast" }).then(note("fast")),
    zero.call(3, { op: "stream", tags: [tag], count: 5 }).then(note("stream")),
    zero.call(1, { op: "sleep", ms: 50, value: "late" }, { timeoutMs: 20 }).catch(note("late")),
    ...[1, 2, 3].map((peer) => zero.call(peer, { op: "gather", tag: gatherTag, value: peer })),
    zero.gather(0, 0, { tag: gatherTag }).then(note("gather")),
  ]);
  for (let i = 0; i < 5; i++) note("recv")((await zero.recv(3, tag)).body);
  const flipped = zero.call<ArrayBuffer>(2, { op: "flip", buffer: new ArrayBuffer(4) });
  note("flip")(new Uint8Array(await flipped));
  network.fail(3, new Error("crashed"));
  await zero.call(3, "gone").catch(note("gone"));
  note("last")(await zero.call(2, { op: "sleep", ms: 30, value: "last" }));
  await close();
  return { trace, seen };
}

Deno.test("LoopbackNetwork on a FakeClock runs a program the same way every time", async () => {
  const first = await tracedRun();
  deepEqual(first.seen, [
    ["stream", 0, 5],
    ["gather", 0, [0, 1, 2, 3]],
    ["fast", 10, "fast"],
    ["late", 20, "Call to rank 1 timed out after 20 ms"],
    ["slow", 30, "slow"],
    ...[0, 1, 2, 3, 4].map((i) => ["recv", 30, i]),
    ["flip", 30, Uint8Array.of(255, 255, 255, 255)],
    ["gone", 30, "Rank 3 is unavailable: crashed"],
    ["last", 60, "last"],
  ]);
  equal(first.trace.length, 27);
  // The reply that came after its call timed out still crossed the network; the call to the
  // crashed rank did not.
  deepEqual(first.trace.filter((entry) => entry.source === 1 && entry.tag === 6), [
    { source: 1, dest: 0, tag: 6, delivered: true },
  ]);
  deepEqual(first.trace.filter((entry) => !entry.delivered), [
    { source: 0, dest: 3, tag: 11, delivered: false },
  ]);
  for (let run = 0; run < 3; run++) deepEqual(await tracedRun(), first);
});

Deno.test("reply() buffers reach the caller over a LoopbackNetwork that copies buffers", async () => {
  const clock = new FakeClock();
  const network = new LoopbackNetwork(2, { movesBuffers: false });
  const { comms: [zero, one], close } = commsOf(network, clock);
  const kept: ArrayBuffer[] = [];
  const served = one.serve(() => {
    const buffer = new Uint8Array([7, 8]).buffer;
    kept.push(buffer);
    return reply({ buffer }, [buffer]);
  });
  const answer = zero.call<{ buffer: ArrayBuffer }>(1, null);
  await clock.advance(0);
  deepEqual(new Uint8Array((await answer).buffer), Uint8Array.of(7, 8));
  equal(kept[0].byteLength, 2, "a copying transport leaves the sender its buffer");
  await close();
  await served;
});
