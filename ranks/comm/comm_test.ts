import { deepEqual, equal, rejects, throws } from "node:assert/strict";
import { DfsError } from "../../protocol/errors.ts";
import { FakeClock } from "../env/fake_clock.ts";
import { ANY_SOURCE, COLLECTIVE_TAG, Comm, type CommOptions, type Envelope } from "./comm.ts";
import { reply } from "./reply.ts";
import { type CommWorld, runCommSuite } from "./comm_suite.ts";
import { type PortLike, PortTransport } from "./port_transport.ts";
import { runPeer } from "./_comm_test_peer.ts";

const WORKER_URL = new URL("./_comm_test_worker.ts", import.meta.url).href;

/** Comms for `size` ranks in this thread, joined by a full mesh of MessageChannels. */
function meshComms(size: number, options?: CommOptions): Comm[] {
  const ports = Array.from({ length: size }, () => new Map<number, PortLike>());
  for (let i = 0; i < size; i++) {
    for (let j = i + 1; j < size; j++) {
      const { port1, port2 } = new MessageChannel();
      ports[i].set(j, port1);
      ports[j].set(i, port2);
    }
  }
  return ports.map((peers, rank) => new Comm(new PortTransport(rank, size, peers), options));
}

function closeAll(comms: Comm[]): void {
  for (const comm of comms) comm.close();
}

function newChannelWorld(size: number): Promise<CommWorld> {
  const comms = meshComms(size);
  const peers = comms.slice(1).map((comm) => runPeer(comm));
  return Promise.resolve({
    comm: comms[0],
    async [Symbol.asyncDispose]() {
      closeAll(comms);
      await Promise.all(peers);
    },
  });
}

function startWorker(rank: number, size: number): Worker {
  const worker = new Worker(WORKER_URL, { type: "module" });
  worker.postMessage({ init: { rank, size } });
  return worker;
}

/** Rank 0 in this thread, a star of Workers around it. */
function newWorkerWorld(size: number): Promise<CommWorld> {
  const workers = new Map<number, Worker>();
  for (let rank = 1; rank < size; rank++) workers.set(rank, startWorker(rank, size));
  const comm = new Comm(new PortTransport(0, size, workers));
  return Promise.resolve({
    comm,
    [Symbol.asyncDispose]() {
      comm.close();
      for (const worker of workers.values()) worker.terminate();
      return Promise.resolve();
    },
  });
}

runCommSuite({ name: "MessageChannel", newWorld: newChannelWorld });
runCommSuite({ name: "Worker", newWorld: newWorkerWorld });

function unavailable(message: string | RegExp) {
  return { name: "DfsError", code: "UNAVAILABLE", message };
}

Deno.test("PortTransport.send() throws UNAVAILABLE for a rank without a port and after close()", () => {
  const { port1, port2 } = new MessageChannel();
  const transport = new PortTransport(0, 3, new Map([[1, port1]]));
  throws(
    () => transport.send(2, 0, "x"),
    unavailable("Cannot send to rank 2: no port leads there"),
  );
  transport.close();
  throws(
    () => transport.send(1, 0, "x"),
    unavailable("Cannot send to rank 1: the transport is closed"),
  );
  port2.close();
});

Deno.test("PortTransport drops malformed packets and reports them through onPeerError", async () => {
  const { port1, port2 } = new MessageChannel();
  const transport = new PortTransport(0, 2, new Map([[1, port1]]));
  const errors: unknown[] = [];
  const arrived = Promise.withResolvers<unknown>();
  transport.onPeerError = (rank, error) => errors.push([rank, error]);
  transport.onPacket = arrived.resolve;
  for (const junk of ["junk", null, { s: 1, t: 1 }, { s: 0, t: 1, b: 1 }, { s: 1, t: 0.5, b: 1 }]) {
    port2.postMessage(junk);
  }
  port2.postMessage({ s: 1, t: 7, b: "good" });
  deepEqual(await arrived.promise, { source: 1, tag: 7, body: "good" });
  const corrupted = new DfsError("CORRUPTED", "Dropped a malformed packet from rank 1");
  deepEqual(errors, Array(5).fill([1, corrupted]));
  transport.close();
  port2.close();
});

Deno.test("PortTransport posts the packets of one turn to a peer as one message, in order", async () => {
  const posted: { message: unknown; transfer: Transferable[] }[] = [];
  const port: PortLike = {
    postMessage: (message, transfer) => void posted.push({ message, transfer }),
    onmessage: null,
  };
  const transport = new PortTransport(0, 2, new Map([[1, port]]));
  for (const n of [1, 2, 3]) transport.send(1, n, `body ${n}`);
  equal(posted.length, 0, "nothing is posted within the turn");
  await Promise.resolve();
  deepEqual(posted, [{
    message: [1, 2, 3].map((n) => ({ s: 0, t: n, b: `body ${n}` })),
    transfer: [],
  }]);
  // A packet that transfers a buffer goes at once, after the ones pending before it.
  transport.send(1, 4, "before");
  const buffer = new ArrayBuffer(8);
  transport.send(1, 5, buffer, [buffer]);
  deepEqual(posted[1], {
    message: [{ s: 0, t: 4, b: "before" }, { s: 0, t: 5, b: buffer }],
    transfer: [buffer],
  });
  transport.send(1, 6, "alone");
  await Promise.resolve();
  deepEqual(posted[2], { message: { s: 0, t: 6, b: "alone" }, transfer: [] });
  // A batch arriving is taken apart in order.
  const arrived: unknown[] = [];
  transport.onPacket = (packet) => arrived.push(packet.tag);
  port.onmessage!(
    new MessageEvent("message", { data: [{ s: 1, t: 8, b: 0 }, { s: 1, t: 9, b: 0 }] }),
  );
  deepEqual(arrived, [8, 9]);
  transport.close();
});

Deno.test("Comm fails receives from a peer that sends a body Comm does not know", async () => {
  const { port1, port2 } = new MessageChannel();
  const failed: number[] = [];
  const comm = new Comm(new PortTransport(0, 2, new Map([[1, port1]])), {
    onPeerError: (rank) => failed.push(rank),
  });
  const received = comm.recv(1);
  port2.postMessage({ s: 1, t: 3, b: "not a Comm body" });
  const message = "Rank 1 is unavailable: Dropped a message from rank 1 that is not a Comm body";
  await rejects(received, unavailable(message));
  deepEqual(failed, [1]);
  comm.close();
  port2.close();
});

Deno.test("Comm drops messages over mailboxMessagesMax, reports them via onOverflow and fails an overflowing call", async () => {
  const overflowed: Envelope[] = [];
  const [a, b] = meshComms(2, { mailboxMessagesMax: 3, onOverflow: (e) => overflowed.push(e) });
  for (let i = 0; i < 5; i++) a.send(1, 7, i);
  await rejects(a.call(1, "x"), unavailable("Rank 1 dropped a call: its mailbox is full"));
  deepEqual(overflowed.map((e) => e.body), [3, 4, "x"]);
  deepEqual(b.stats.mailbox, 3);
  for (let i = 0; i < 3; i++) equal((await b.recv(0, 7)).body, i);
  deepEqual(b.stats.mailbox, 0);
  closeAll([a, b]);
});

Deno.test("Comm.recv() rejects with the signal's reason when aborted and leaves nothing pending", async () => {
  const [a, b] = meshComms(2);
  const abort = new AbortController();
  const received = a.recv(1, 5, { signal: abort.signal, timeoutMs: 10_000 });
  abort.abort(new DfsError("UNAVAILABLE", "Stopped waiting"));
  await rejects(received, unavailable("Stopped waiting"));
  await rejects(a.recv(ANY_SOURCE, 5, { signal: abort.signal }), unavailable("Stopped waiting"));
  equal(a.stats.recvs, 0);
  closeAll([a, b]);
});

Deno.test("Comm fails each wait at its own deadline, whatever order they were set in", async () => {
  const [a, b] = meshComms(2);
  const settled: string[] = [];
  const unanswered = a.call(1, "b never serves"); // CALL_TIMEOUT_MS: the timer is armed for minutes
  const late = a.recv(1, 1, { timeoutMs: 60 }).catch(() => settled.push("late"));
  const early = a.recv(1, 2, { timeoutMs: 10 }).catch(() => settled.push("early"));
  await Promise.all([late, early]);
  deepEqual(settled, ["early", "late"]);
  deepEqual(a.stats, { recvs: 0, calls: 1, mailbox: 0, handlers: 0 });
  a.close();
  await rejects(unanswered, unavailable("Comm of rank 0 is closed"));
  b.close();
});

Deno.test("Comm times every wait on the clock it is given, with one timer for all deadlines", async () => {
  const clock = new FakeClock();
  const [a, b] = meshComms(2, { clock });
  const settled: string[] = [];
  const note = (name: string) => () => settled.push(`${name}@${clock.monotonic()}`);
  const calls = [300, 100, 200].map((timeoutMs) =>
    a.call(1, "b never serves", { timeoutMs }).catch(note(`call ${timeoutMs}`))
  );
  const received = a.recv(1, 1, { timeoutMs: 150 }).catch(note("recv 150"));
  equal(clock.pending, 1);
  equal(clock.nextDeadline(), 100);
  await new Promise((resolve) => setTimeout(resolve, 20)); // real time does not count
  deepEqual(settled, []);
  await clock.advance(299);
  deepEqual(settled, ["call 100@100", "recv 150@150", "call 200@200"]);
  await clock.advance(1);
  await Promise.all([...calls, received]);
  equal(settled.at(-1), "call 300@300");
  equal(clock.pending, 0);
  closeAll([a, b]);
});

Deno.test("Comm.bcast() and Comm.gather() work from any root over a full mesh", async () => {
  const comms = meshComms(4);
  const values = await Promise.all(comms.map((c) => c.bcast(2, c.rank === 2 ? "v" : undefined)));
  deepEqual(values, ["v", "v", "v", "v"]);
  const gathered = await Promise.all(comms.map((c) => c.gather(3, c.rank * 10)));
  deepEqual(gathered, [undefined, undefined, undefined, [0, 10, 20, 30]]);
  closeAll(comms);
});

Deno.test("Comm.gather() rejects with UNAVAILABLE after timeoutMs and withdraws its receives", async () => {
  const comms = meshComms(3);
  comms[1].gather(0, "one");
  await rejects(comms[0].gather(0, "zero", { timeoutMs: 20 }), unavailable(/from rank 2 .*20 ms/));
  deepEqual(comms[0].stats, { recvs: 0, calls: 0, mailbox: 0, handlers: 0 });
  closeAll(comms);
});

Deno.test("Comm.serve() queues calls until it starts, runs handlers concurrently and returns on close()", async () => {
  const [a, b] = meshComms(2);
  const first = a.call(1, 1);
  const second = a.call(1, 2);
  a.send(1, 5, "after the calls");
  await b.recv(0, 5);
  equal(b.stats.mailbox, 2);
  const gate = Promise.withResolvers<void>();
  const served = b.serve(async ({ body }) => {
    if (body === 1) await gate.promise;
    return (body as number) * 10;
  });
  await rejects(b.serve(() => 0), /serve\(\) is already running/);
  equal(await second, 20);
  equal(b.stats.handlers, 1);
  gate.resolve();
  equal(await first, 10);
  b.close();
  await served;
  a.close();
});

Deno.test("Comm.serve() transfers the buffers of reply(body, transfer) without copying", async () => {
  const [a, b] = meshComms(2);
  const sent: ArrayBuffer[] = [];
  const served = b.serve(() => {
    const buffer = new ArrayBuffer(1024);
    sent.push(buffer);
    return reply({ buffer }, [buffer]);
  });
  const answer = await a.call<{ buffer: ArrayBuffer }>(1, null);
  equal(answer.buffer.byteLength, 1024);
  equal(sent[0].byteLength, 0);
  closeAll([a, b]);
  await served;
});

Deno.test("Comm.serve() logs a handler's non-DfsError and answers INTERNAL", async () => {
  const [a, b] = meshComms(2);
  const logged: unknown[][] = [];
  const consoleError = console.error;
  console.error = (...args: unknown[]) => logged.push(args);
  try {
    const served = b.serve(() => {
      throw new TypeError("oops");
    });
    await rejects(a.call(1, null), { name: "DfsError", code: "INTERNAL" });
    equal(logged.length, 1);
    equal((logged[0][1] as Error).message, "oops");
    closeAll([a, b]);
    await served;
  } finally {
    console.error = consoleError;
  }
});

Deno.test("Comm rejects ranks and tags out of range as programmer errors", async () => {
  const [a, b] = meshComms(2);
  throws(() => a.send(1, COLLECTIVE_TAG, "x"), /Assertion failed: tag -2/);
  throws(() => a.send(1, 1.5, "x"), /Assertion failed: tag 1.5/);
  await rejects(a.recv(2), /Assertion failed: source 2/);
  await rejects(a.call(0, "self"), /Assertion failed: dest 0/);
  await rejects(a.bcast(4, "x"), /Assertion failed: root 4/);
  const tags = [a.nextTag(), a.nextTag(), a.nextTag()];
  equal(new Set(tags).size, 3);
  equal(tags.every((tag) => tag > 0), true);
  closeAll([a, b]);
});

Deno.test("A crashed Worker fails its pending calls with UNAVAILABLE; setPort() brings in its replacement", async () => {
  const workers = [startWorker(1, 2)];
  const transport = new PortTransport(0, 2, new Map([[1, workers[0]]]));
  const lost: number[] = [];
  const comm = new Comm(transport, { onPeerError: (rank) => lost.push(rank) });
  try {
    equal(await comm.call(1, { op: "echo", value: 1 }), 1);
    await rejects(
      comm.call(1, { op: "die" }),
      unavailable(/^Rank 1 is unavailable: .*died on purpose/),
    );
    deepEqual(lost, [1]);
    workers[0].terminate();
    workers.push(startWorker(1, 2));
    transport.setPort(1, workers[1]);
    equal(await comm.call(1, { op: "echo", value: 2 }), 2);
  } finally {
    comm.close();
    for (const worker of workers) worker.terminate();
  }
});
