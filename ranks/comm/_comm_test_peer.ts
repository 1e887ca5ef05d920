/**
 * The peer program of the comm suite: ranks 1..size-1 run it, in the test thread or in a Worker,
 * and answer rank 0's calls until their Comm closes.
 *
 * @module
 */

import { DfsError, type ErrorCode } from "../../protocol/errors.ts";
import type { Clock } from "../env/env.ts";
import { systemClock } from "../env/system.ts";
import type { Comm, Envelope } from "./comm.ts";
import { reply } from "./reply.ts";

/** What rank 0 asks a peer; `op` selects the behaviour. */
export type PeerRequest =
  /** Answers `value`. */
  | { op: "echo"; value: unknown }
  /** Answers the sum of `values`. */
  | { op: "sum"; values: number[] }
  /** Answers `buffer` with every byte inverted, transferred back. */
  | { op: "flip"; buffer: ArrayBuffer }
  /** Throws `new DfsError(code, message)`. */
  | { op: "fail"; code: ErrorCode; message: string }
  /** Throws a plain Error. */
  | { op: "crash" }
  /** Answers `value` after `ms` milliseconds of the peer's clock. */
  | { op: "sleep"; ms: number; value: unknown }
  /** Sends the caller `count` messages 0, 1, ... on each of `tags` in turn, then answers count. */
  | { op: "stream"; tags: number[]; count: number }
  /** Receives `count` messages from the caller on `tag` and answers their bodies. */
  | { op: "collect"; tag: number; count: number }
  /** Takes part in `gather(0, value, { tag })`, then answers true. */
  | { op: "gather"; tag?: number; value: unknown }
  /** Takes part in `bcast(0, undefined, { tag })` and answers the value it got. */
  | { op: "bcast"; tag?: number }
  /** Throws an uncaught error outside any handler (kills a Worker). */
  | { op: "die" };

/**
 * Serves PeerRequests on `comm` until it closes; then cancels any sleep still running. Sleeps on
 * `clock` (default systemClock); "die" always uses a real timer, as it kills a real Worker.
 */
export async function runPeer(comm: Comm, options: { clock?: Clock } = {}): Promise<void> {
  const stop = new AbortController();
  const clock = options.clock ?? systemClock;
  try {
    await comm.serve((envelope) =>
      answer(comm, envelope as Envelope<PeerRequest>, { clock, stop: stop.signal })
    );
  } finally {
    stop.abort();
  }
}

async function answer(
  comm: Comm,
  { source, body }: Envelope<PeerRequest>,
  { clock, stop }: { clock: Clock; stop: AbortSignal },
) {
  switch (body.op) {
    case "echo":
      return body.value;
    case "sum":
      return body.values.reduce((a, b) => a + b, 0);
    case "flip": {
      const bytes = new Uint8Array(body.buffer);
      for (let i = 0; i < bytes.length; i++) bytes[i] = ~bytes[i];
      return reply(body.buffer, [body.buffer]);
    }
    case "fail":
      throw new DfsError(body.code, body.message);
    case "crash":
      throw new Error("Peer crashed on purpose");
    case "sleep":
      await sleep(clock, body.ms, stop);
      return body.value;
    case "stream":
      for (let i = 0; i < body.count; i++) {
        for (const tag of body.tags) comm.send(source, tag, i);
      }
      return body.count;
    case "collect": {
      const bodies = [];
      for (let i = 0; i < body.count; i++) bodies.push((await comm.recv(source, body.tag)).body);
      return bodies;
    }
    case "gather":
      await comm.gather(0, body.value, { tag: body.tag });
      return true;
    case "bcast":
      return await comm.bcast(0, undefined, { tag: body.tag });
    case "die":
      setTimeout(() => {
        throw new Error("Peer died on purpose");
      }, 0);
      return await new Promise(() => {});
  }
}

function sleep(clock: Clock, ms: number, stop: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onStop = () => {
      clock.clearTimeout(timer);
      reject(new DfsError("UNAVAILABLE", "Peer stopped while sleeping"));
    };
    const timer = clock.setTimeout(() => {
      stop.removeEventListener("abort", onStop);
      resolve();
    }, ms);
    stop.addEventListener("abort", onStop, { once: true });
  });
}
