/**
 * MPI-like communication between ranks over any `Transport`: point-to-point `send`/`recv` with
 * source and tag matching, `call`/`serve` request-response, and the `bcast`/`gather` collectives.
 *
 * Comm's wire protocol: every packet body is an object with exactly one of these keys, so a reply
 * is never taken for a request and `serve()` never takes a message meant for `recv()`:
 * - `{ msg }`  a point-to-point or collective message, matched by `recv()`;
 * - `{ call }` a request, taken by `serve()`;
 * - `{ ok }`   the answer to the `call()` that used the same tag;
 * - `{ err }`  a failed answer, a `WireError`.
 *
 * Tags: user and collective tags are integers in [0, TAG_MAX]; `nextTag()` hands out fresh ones in
 * [1, TAG_MAX]. Negative tags are reserved (ANY_TAG, COLLECTIVE_TAG). Calls and messages are
 * matched separately, so a call tag never collides with a collective tag.
 *
 * @module
 */

import { assert, DfsError, type WireError } from "../../protocol/errors.ts";
import type { Clock, Log, TimerHandle } from "../env/env.ts";
import { stderrLog, systemClock } from "../env/system.ts";
import type { Packet, Transport } from "./transport.ts";
import { Reply } from "./reply.ts";
import { wait, type Waiter } from "./_wait.ts";

/** Matches a message from any rank. */
export const ANY_SOURCE = -1;
/** Matches a message with any tag. */
export const ANY_TAG = -1;
/** The tag collectives use when the caller names none. */
export const COLLECTIVE_TAG = -2;
/** The largest tag; fits the signed 32-bit tag field of a framed transport. */
export const TAG_MAX = 2 ** 31 - 1;
/** Unexpected (not yet received) messages and calls buffered per Comm. */
export const MAILBOX_MESSAGES_MAX = 65_536;
/** Calls `serve()` runs at once; later ones wait in the mailbox. */
export const SERVE_HANDLERS_MAX = 4_096;
/** How long `call()` waits for its reply unless told otherwise. */
export const CALL_TIMEOUT_MS = 60_000;

/** A received message. */
export interface Envelope<T = unknown> {
  source: number;
  tag: number;
  body: T;
}

/** Options of `new Comm()`. */
export interface CommOptions {
  /** Unexpected messages buffered before new ones are dropped; default MAILBOX_MESSAGES_MAX. */
  mailboxMessagesMax?: number;
  /** Where the Comm reports what it cannot hand to anyone (default: stderr). */
  log?: Log;
  /** Told of each message dropped because the mailbox is full; default: a line on `log`. */
  onOverflow?: (envelope: Envelope) => void;
  /** Told of a peer's failure, after its pending receives failed; default: a line on `log`. */
  onPeerError?: (rank: number, error: unknown) => void;
  /** Times every deadline (`monotonic()`) and runs the one timeout timer; default systemClock. */
  clock?: Clock;
}

/** Options of the collectives. */
export interface CollectiveOptions {
  /** Tells concurrent collectives apart; default COLLECTIVE_TAG. */
  tag?: number;
  /** How long a receiving rank waits; default forever. */
  timeoutMs?: number;
  /** The group, at the root: the ranks taking part (the root's own rank may be listed or not). */
  ranks?: readonly number[];
  /** At a rank sending its part of a gather: buffers of it to move rather than copy (`send`). */
  transfer?: ArrayBuffer[];
}

/** Counts of a Comm's waiting state, for tests and monitoring. */
export interface CommStats {
  recvs: number;
  calls: number;
  mailbox: number;
  handlers: number;
}

type Body = { msg: unknown } | { call: unknown } | { ok: unknown } | { err: WireError };
type Handler = (envelope: Envelope) => unknown;

/** A wait with a deadline (the clock's `monotonic()` time; Infinity for none). */
interface Deadline {
  deadline: number;
  timeoutMs?: number;
}

interface PendingRecv extends Deadline {
  source: number;
  tag: number;
  waiter: Waiter<Envelope>;
}

interface PendingCall extends Deadline {
  dest: number;
  waiter: Waiter<unknown>;
}

/**
 * One rank's endpoint. Matching follows MPI: pending receives are matched in posting order, and
 * messages no receive wants wait in the mailbox in arrival order. Both lists are scanned linearly:
 * they hold only plain messages and collective parts, which are few at a time (the mailbox is
 * normally nearly empty). The hot path, call replies, is a Map lookup by tag, and requests go
 * straight to `serve()` handlers. Timeouts share one timer, armed for the earliest deadline, rather
 * than a setTimeout/clearTimeout pair per call, which cost about a quarter of a call's time.
 */
export class Comm {
  #transport: Transport;
  #mailboxMessagesMax: number;
  #onOverflow: (envelope: Envelope) => void;
  #onPeerError: (rank: number, error: unknown) => void;
  #recvs: PendingRecv[] = [];
  #mailbox: Envelope[] = [];
  #calls = new Map<number, PendingCall>();
  #requests: Envelope[] = [];
  #handler: Handler | null = null;
  #handlers = 0;
  #served: (() => void) | null = null;
  #tag = 0;
  #clock: Clock;
  #log: Log;
  #timer: TimerHandle | undefined;
  #timerAt = Infinity;
  #closed = false;

  /** Takes over `transport.onPacket` and `transport.onPeerError`. */
  constructor(transport: Transport, options: CommOptions = {}) {
    this.#transport = transport;
    this.#mailboxMessagesMax = options.mailboxMessagesMax ?? MAILBOX_MESSAGES_MAX;
    this.#clock = options.clock ?? systemClock;
    this.#log = options.log ?? stderrLog;
    this.#onOverflow = options.onOverflow ?? ((e) => {
      this.#log.error(`Rank ${this.rank} dropped a message from rank ${e.source}: mailbox is full`);
    });
    this.#onPeerError = options.onPeerError ?? ((rank, error) => {
      this.#log.error(`Rank ${this.rank} lost rank ${rank}:`, error);
    });
    transport.onPacket = (packet) => this.#deliver(packet);
    transport.onPeerError = (rank, error) => this.#peerFailed(rank, error);
  }

  get rank(): number {
    return this.#transport.rank;
  }

  get size(): number {
    return this.#transport.size;
  }

  /** Whether buffers sent to `dest` in `transfer` are moved rather than serialized (`Transport`). */
  movesBuffersTo(dest: number): boolean {
    return this.#transport.movesBuffers(dest);
  }

  /** Counts of pending receives and calls, buffered messages and running handlers. */
  get stats(): CommStats {
    return {
      recvs: this.#recvs.length,
      calls: this.#calls.size,
      mailbox: this.#mailbox.length + this.#requests.length,
      handlers: this.#handlers,
    };
  }

  /**
   * Non-blocking send (it never waits for room: see `Transport` on backpressure); `transfer`
   * buffers are detached here. Throws DfsError UNAVAILABLE if `dest` is unreachable or the Comm is
   * closed.
   */
  send(dest: number, tag: number, body: unknown, options: { transfer?: ArrayBuffer[] } = {}): void {
    assert(isTag(tag), `tag ${tag} must be an integer in [0, TAG_MAX]`);
    this.#send(dest, tag, { msg: body }, options.transfer);
  }

  /**
   * Resolves with the first message matching source/tag (ANY_* wildcards), in arrival order.
   * Waits forever unless `timeoutMs` is given. Rejects with DfsError UNAVAILABLE on timeout, on
   * close() or on failPeer(source), and with the signal's reason when `signal` aborts.
   */
  async recv<T = unknown>(
    source: number = ANY_SOURCE,
    tag: number = ANY_TAG,
    options: { timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<Envelope<T>> {
    assert(source === ANY_SOURCE || this.#isPeer(source), `source ${source} is not a peer rank`);
    assert(tag === ANY_TAG || isTag(tag), `tag ${tag} must be ANY_TAG or in [0, TAG_MAX]`);
    return await this.#recv<T>(source, tag, options);
  }

  /**
   * Collective broadcast: root passes value and gets it back; others receive root's value. Every
   * rank of the group calls it with the same root and tag (default COLLECTIVE_TAG; use nextTag()
   * to tell concurrent collectives apart). The group is every rank unless the root names `ranks`
   * (an MPI sub-communicator: the data nodes connected now, say); only the root needs it. Non-roots
   * wait forever unless `timeoutMs` is given.
   */
  async bcast<T>(
    root: number,
    value: T | undefined,
    options: CollectiveOptions = {},
  ): Promise<T> {
    const tag = this.#collectiveTag(root, options.tag);
    if (this.rank !== root) return (await this.#recv<T>(root, tag, options)).body;
    for (const dest of this.#groupOf(root, options.ranks)) this.#send(dest, tag, { msg: value });
    return value as T;
  }

  /**
   * Collective gather: every rank of the group contributes; root resolves with an array indexed by
   * rank (its own value included; holes for ranks outside the group), others resolve with
   * undefined once sent. Same options as bcast().
   */
  async gather<T>(
    root: number,
    value: T,
    options: CollectiveOptions = {},
  ): Promise<T[] | undefined> {
    const tag = this.#collectiveTag(root, options.tag);
    if (this.rank !== root) {
      this.#send(root, tag, { msg: value }, options.transfer);
      return undefined;
    }
    const abort = new AbortController();
    const parts: Promise<Envelope<T>>[] = [];
    for (const source of this.#groupOf(root, options.ranks)) {
      parts.push(
        this.#recv<T>(source, tag, { timeoutMs: options.timeoutMs, signal: abort.signal }),
      );
    }
    try {
      const values = new Array<T>(this.size);
      values[root] = value;
      for (const envelope of await Promise.all(parts)) values[envelope.source] = envelope.body;
      return values;
    } finally {
      abort.abort(); // withdraws the receives still pending after a failure
    }
  }

  /**
   * Sends body to dest with a fresh tag from nextTag() and resolves with the answer of dest's
   * serve() handler. Rejects with the DfsError the handler threw (INTERNAL for anything else), or
   * UNAVAILABLE after `timeoutMs` (default CALL_TIMEOUT_MS; Infinity waits forever), on close()
   * or on failPeer(dest). A reply arriving after the call failed is dropped.
   */
  async call<T = unknown>(
    dest: number,
    body: unknown,
    options: { transfer?: ArrayBuffer[]; timeoutMs?: number } = {},
  ): Promise<T> {
    assert(this.#isPeer(dest), `dest ${dest} is not a peer rank`);
    const tag = this.nextTag();
    const timeoutMs = options.timeoutMs ?? CALL_TIMEOUT_MS;
    const deadline = this.#deadlineOf(timeoutMs);
    const [promise, waiter] = wait<unknown>();
    const pending: PendingCall = { dest, deadline, timeoutMs, waiter };
    this.#calls.set(tag, pending);
    this.#watch(deadline);
    // Backpressure: while the queue toward dest is full, wait (each waiter woken looks again).
    // The call may time out or fail meanwhile.
    for (let room; (room = this.#transport.whenWritable?.(dest));) {
      await room.catch(() => {});
      if (this.#calls.get(tag) !== pending) return await promise as T;
    }
    try {
      this.#send(dest, tag, { call: body }, options.transfer);
    } catch (error) {
      this.#calls.delete(tag);
      this.#unwatchIfIdle();
      waiter.reject(error);
    }
    return await promise as T;
  }

  /** Allocates a fresh positive tag (a counter wrapping within [1, TAG_MAX], skipping tags in use). */
  nextTag(): number {
    assert(this.#calls.size < TAG_MAX, "every tag is in use");
    do {
      this.#tag = this.#tag >= TAG_MAX ? 1 : this.#tag + 1;
    } while (this.#calls.has(this.#tag));
    return this.#tag;
  }

  /**
   * Answers calls until the Comm closes: each request's `await handler(envelope)` goes back to its
   * caller, as is or, via `reply(body, transfer)`, with buffers transferred. A thrown DfsError
   * reaches the caller with its code and message; anything else is logged and becomes INTERNAL.
   * Up to SERVE_HANDLERS_MAX handlers run concurrently. One serve() per Comm at a time.
   */
  async serve(handler: (envelope: Envelope) => unknown | Promise<unknown>): Promise<void> {
    assert(this.#handler === null, "serve() is already running on this Comm");
    if (this.#closed) return;
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#handler = handler;
    this.#served = resolve;
    this.#pump();
    await promise;
  }

  /** Fails every pending recv/call with DfsError UNAVAILABLE and closes the transport. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const error = () => new DfsError("UNAVAILABLE", `Comm of rank ${this.rank} is closed`);
    for (const pending of this.#recvs.splice(0)) pending.waiter.reject(error());
    for (const pending of this.#calls.values()) pending.waiter.reject(error());
    this.#calls.clear();
    this.#unwatchIfIdle();
    this.#mailbox = [];
    this.#requests = [];
    this.#handler = null;
    this.#served?.();
    this.#transport.onPacket = null;
    this.#transport.onPeerError = null;
    this.#transport.close();
  }

  /** Same as close(), for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * Fails all pending receives from `rank` (not ANY_SOURCE ones) and calls to it with DfsError
   * UNAVAILABLE; later sends and calls to it still go out (the owner may restart it).
   */
  failPeer(rank: number, reason: string): void {
    const error = () => new DfsError("UNAVAILABLE", `Rank ${rank} is unavailable: ${reason}`);
    const failed = this.#recvs.filter((pending) => pending.source === rank);
    this.#recvs = this.#recvs.filter((pending) => pending.source !== rank);
    for (const pending of failed) pending.waiter.reject(error());
    for (const [tag, pending] of this.#calls) {
      if (pending.dest !== rank) continue;
      this.#calls.delete(tag);
      pending.waiter.reject(error());
    }
    this.#unwatchIfIdle();
  }

  #send(dest: number, tag: number, body: Body, transfer?: ArrayBuffer[]): void {
    if (this.#closed) {
      throw new DfsError("UNAVAILABLE", `Cannot send to rank ${dest}: the Comm is closed`);
    }
    this.#transport.send(dest, tag, body, transfer);
  }

  #recv<T>(
    source: number,
    tag: number,
    options: { timeoutMs?: number; signal?: AbortSignal },
  ): Promise<Envelope<T>> {
    if (this.#closed) {
      return Promise.reject(new DfsError("UNAVAILABLE", `Comm of rank ${this.rank} is closed`));
    }
    if (options.signal?.aborted) return Promise.reject(options.signal.reason);
    const index = this.#mailbox.findIndex((envelope) => matches(source, tag, envelope));
    if (index >= 0) return Promise.resolve(this.#mailbox.splice(index, 1)[0] as Envelope<T>);
    const { timeoutMs, signal } = options;
    const [promise, waiter] = wait<Envelope>(signal, () => {
      const index = this.#recvs.indexOf(pending);
      if (index >= 0) this.#recvs.splice(index, 1);
      this.#unwatchIfIdle();
    });
    const pending: PendingRecv = {
      source,
      tag,
      deadline: this.#deadlineOf(timeoutMs),
      timeoutMs,
      waiter,
    };
    this.#recvs.push(pending);
    this.#watch(pending.deadline);
    return promise as Promise<Envelope<T>>;
  }

  #deadlineOf(timeoutMs: number | undefined): number {
    assert(
      timeoutMs === undefined || timeoutMs >= 0,
      `timeoutMs ${timeoutMs} must not be negative`,
    );
    return timeoutMs === undefined ? Infinity : this.#clock.monotonic() + timeoutMs;
  }

  /** Arms the timer for `deadline` unless it already fires sooner. */
  #watch(deadline: number): void {
    if (deadline >= this.#timerAt) return;
    this.#clock.clearTimeout(this.#timer);
    this.#timerAt = deadline;
    const delayMs = Math.max(0, deadline - this.#clock.monotonic());
    this.#timer = this.#clock.setTimeout(() => this.#expire(), delayMs);
  }

  #unwatchIfIdle(): void {
    if (this.#timer === undefined || this.#calls.size > 0 || this.#recvs.length > 0) return;
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }

  /** Fails every wait past its deadline; rearms the timer for the earliest one left. */
  #expire(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = this.#clock.monotonic();
    let next = Infinity;
    for (const [tag, pending] of this.#calls) {
      if (pending.deadline > now) {
        next = Math.min(next, pending.deadline);
        continue;
      }
      this.#calls.delete(tag);
      const message = `Call to rank ${pending.dest} timed out after ${pending.timeoutMs} ms`;
      pending.waiter.reject(new DfsError("UNAVAILABLE", message));
    }
    const expired = this.#recvs.filter((pending) => pending.deadline <= now);
    this.#recvs = this.#recvs.filter((pending) => pending.deadline > now);
    for (const pending of this.#recvs) next = Math.min(next, pending.deadline);
    for (const { source, tag, timeoutMs, waiter } of expired) {
      const from = source === ANY_SOURCE ? "any rank" : `rank ${source}`;
      const tagged = tag === ANY_TAG ? "any tag" : `tag ${tag}`;
      const message = `Cannot receive from ${from} with ${tagged}: timed out after ${timeoutMs} ms`;
      waiter.reject(new DfsError("UNAVAILABLE", message));
    }
    this.#watch(next);
  }

  #deliver({ source, tag, body }: Packet): void {
    if (this.#closed) return;
    if (typeof body === "object" && body !== null) {
      if ("msg" in body) return this.#deliverMessage({ source, tag, body: body.msg });
      if ("call" in body) return this.#deliverRequest({ source, tag, body: body.call });
      if ("ok" in body || "err" in body) return this.#deliverReply(source, tag, body as Body);
    }
    const message = `Dropped a message from rank ${source} that is not a Comm body`;
    this.#peerFailed(source, new DfsError("CORRUPTED", message));
  }

  #peerFailed(rank: number, error: unknown): void {
    this.failPeer(rank, error instanceof Error ? error.message : String(error));
    this.#onPeerError(rank, error);
  }

  #deliverMessage(envelope: Envelope): void {
    const index = this.#recvs.findIndex((pending) =>
      matches(pending.source, pending.tag, envelope)
    );
    if (index >= 0) {
      this.#recvs.splice(index, 1)[0].waiter.resolve(envelope);
      return this.#unwatchIfIdle();
    }
    if (this.#admit(envelope)) this.#mailbox.push(envelope);
  }

  #deliverRequest(request: Envelope): void {
    // Requests queue only while no handler slot is free, so a new one never overtakes them.
    if (this.#handler !== null && this.#handlers < SERVE_HANDLERS_MAX) {
      return void this.#handle(this.#handler, request);
    }
    if (this.#admit(request)) return void this.#requests.push(request);
    const message = `Rank ${this.rank} dropped a call: its mailbox is full`;
    this.#reply(request, { err: { code: "UNAVAILABLE", message } }, []);
  }

  #deliverReply(source: number, tag: number, body: Body): void {
    const pending = this.#calls.get(tag);
    if (pending === undefined || pending.dest !== source) return; // late: the call already failed
    this.#calls.delete(tag);
    this.#unwatchIfIdle();
    if ("err" in body) pending.waiter.reject(DfsError.fromWire(body.err));
    else if ("ok" in body) pending.waiter.resolve(body.ok);
  }

  #admit(envelope: Envelope): boolean {
    if (this.#mailbox.length + this.#requests.length < this.#mailboxMessagesMax) return true;
    this.#onOverflow(envelope);
    return false;
  }

  #pump(): void {
    while (this.#handler !== null && this.#handlers < SERVE_HANDLERS_MAX && this.#requests.length) {
      void this.#handle(this.#handler, this.#requests.shift()!);
    }
  }

  async #handle(handler: Handler, request: Envelope): Promise<void> {
    this.#handlers++;
    let body: Body;
    let transfer: ArrayBuffer[] = [];
    try {
      const result = await handler(request);
      if (result instanceof Reply) transfer = result.transfer;
      body = { ok: result instanceof Reply ? result.body : result };
    } catch (error) {
      if (!(error instanceof DfsError)) {
        this.#log.error(`Rank ${this.rank} failed a call from rank ${request.source}:`, error);
      }
      body = { err: DfsError.wireOf(error) };
    }
    this.#handlers--;
    // Backpressure: an answer (a chunk read, say) waits while the queue to its caller is full.
    for (let room; !this.#closed && (room = this.#transport.whenWritable?.(request.source));) {
      await room.catch(() => {});
    }
    this.#reply(request, body, transfer);
    this.#pump();
  }

  #reply(request: Envelope, body: Body, transfer: ArrayBuffer[]): void {
    if (this.#closed) return;
    try {
      this.#transport.send(request.source, request.tag, body, transfer);
    } catch (error) {
      if (error instanceof DfsError) return; // the caller is gone; its call() fails on its own
      this.#log.error(`Rank ${this.rank} cannot answer rank ${request.source}:`, error);
      if ("ok" in body) this.#reply(request, { err: DfsError.wireOf(error) }, []);
    }
  }

  /** The ranks a collective rooted at `root` sends to or receives from: `ranks`, or every rank. */
  #groupOf(root: number, ranks: readonly number[] | undefined): number[] {
    if (ranks === undefined) {
      return Array.from({ length: this.size }, (_, rank) => rank).filter((r) => r !== root);
    }
    assert(ranks.every((r) => this.#isRank(r)), `group ${ranks} has a rank out of range`);
    return [...new Set(ranks)].filter((r) => r !== root);
  }

  #collectiveTag(root: number, tag: number = COLLECTIVE_TAG): number {
    assert(this.#isRank(root), `root ${root} out of range`);
    assert(tag === COLLECTIVE_TAG || isTag(tag), `tag ${tag} must be an integer in [0, TAG_MAX]`);
    return tag;
  }

  #isRank(rank: number): boolean {
    return Number.isSafeInteger(rank) && rank >= 0 && rank < this.size;
  }

  #isPeer(rank: number): boolean {
    return this.#isRank(rank) && rank !== this.rank;
  }
}

function isTag(tag: number): boolean {
  return Number.isSafeInteger(tag) && tag >= 0 && tag <= TAG_MAX;
}

function matches(source: number, tag: number, envelope: Envelope): boolean {
  return (source === ANY_SOURCE || source === envelope.source) &&
    (tag === ANY_TAG || tag === envelope.tag);
}
