/**
 * Supervision of the data nodes: heartbeats, and for a node that crashes or stops answering,
 * marking it down, restarting it through the launcher and reconciling it; for one that stays
 * down, re-replicating what it held.
 *
 * @module
 */

import { DfsError } from "../../protocol/errors.ts";
import type { Comm } from "../comm/comm.ts";
import { READY_TAG } from "../common/node_protocol.ts";
import { SERVE_DEFAULTS } from "../config.ts";
import type { Clock, Log, TimerHandle } from "../env/env.ts";
import type { LaunchedRank } from "./launch.ts";
import type { DfsStore } from "./store.ts";

/** How long a data node may take to open its storage. */
export const NODE_START_TIMEOUT_MS = 60_000;
/** How often rank 0 checks that every data node answers. */
export const HEARTBEAT_INTERVAL_MS = 1_000;
/** A data node that does not answer a heartbeat within this time is taken for hung. */
export const HEARTBEAT_TIMEOUT_MS = 5_000;
/** A data node down this long (its restarts failing) has its replicas copied to live nodes. */
export const REREPLICATE_AFTER_MS = SERVE_DEFAULTS.rereplicateAfterMs;
/** Wait after the first failed attempt to restart a data node; it doubles after each failure. */
export const RESTART_BACKOFF_MS = 2_000;
/** Longest wait between two attempts to restart a data node. */
export const RESTART_BACKOFF_MAX_MS = 30_000;

/** Waits for a rank's ready message. @throws {DfsError} `UNAVAILABLE` if it cannot start. */
export async function awaitReady(comm: Comm, rank: number): Promise<void> {
  const { body } = await comm.recv<{ ok?: true; error?: { message?: string }; detail?: string }>(
    rank,
    READY_TAG,
    { timeoutMs: NODE_START_TIMEOUT_MS },
  );
  if (!body.ok) {
    const why = body.error?.message ?? body.detail;
    throw new DfsError("UNAVAILABLE", `Rank ${rank} cannot start: ${why}`);
  }
}

/** Watches the data nodes: heartbeats, and restart with reconciliation of any that fails. */
export class Supervisor {
  #comm: Comm;
  #store: DfsStore;
  #relaunch: (rank: number) => LaunchedRank;
  #ranks: Map<number, LaunchedRank>;
  #rereplicateAfterMs: number;
  #clock: Clock;
  #log: Log;
  #closed = false;
  #timer: TimerHandle | undefined;
  #isRemote: (rank: number) => boolean;
  #disconnect: (rank: number) => void;
  #onDrained: (rank: number) => Promise<void>;
  /** Losses of each remote node so far: a re-replication timer acts only on the loss it was for. */
  #losses = new Map<number, number>();
  #rereplicationTimers = new Set<TimerHandle>();

  /**
   * `relaunch` starts a data node rank again on its folder and connects it to `comm`'s transport
   * (the launch seam); `ranks` are the ranks running now, replaced as they are relaunched.
   */
  constructor(parts: {
    comm: Comm;
    store: DfsStore;
    relaunch: (rank: number) => LaunchedRank;
    ranks: Map<number, LaunchedRank>;
    rereplicateAfterMs: number;
    clock: Clock;
    log: Log;
    /** Whether a rank is a remote node (not relaunched: it reconnects by itself). */
    isRemote?: (rank: number) => boolean;
    /** Closes the link to a remote node that is lost (it reconnects afresh). */
    disconnect?: (rank: number) => void;
    /** Told when everything a remote node that stays away held was copied to other nodes. */
    onDrained?: (rank: number) => Promise<void>;
  }) {
    this.#comm = parts.comm;
    this.#store = parts.store;
    this.#relaunch = parts.relaunch;
    this.#ranks = parts.ranks;
    this.#rereplicateAfterMs = parts.rereplicateAfterMs;
    this.#clock = parts.clock;
    this.#log = parts.log;
    this.#isRemote = parts.isRemote ?? (() => false);
    this.#disconnect = parts.disconnect ?? (() => {});
    this.#onDrained = parts.onDrained ?? (() => Promise.resolve());
    this.#store.nodes.onNodeFailed = (rank, reason) => this.lost(rank, reason);
    this.#beat();
  }

  /**
   * A data node crashed, stopped answering or its disk failed: mark it down and restart it (once
   * at a time per rank).
   */
  lost(rank: number, reason: string): void {
    const membership = this.#store.nodes.membership;
    // A remote node whose link drops before it was taken in is not a data node yet.
    if (this.#closed || membership.infoOf(rank) === undefined) return;
    if (!membership.markDown(rank, reason, this.#clock.monotonic())) return;
    if (this.#isRemote(rank)) this.#awaitReturn(rank, reason);
    else void this.#restart(rank, reason);
  }

  close(): void {
    this.#closed = true;
    this.#clock.clearTimeout(this.#timer);
    for (const timer of this.#rereplicationTimers) this.#clock.clearTimeout(timer);
    this.#rereplicationTimers.clear();
  }

  /**
   * A remote node is lost (its link dropped, a heartbeat went unanswered, its disk failed): it is
   * down until it reconnects and is reconciled (the cluster's join path); if it is still down
   * after `rereplicateAfterMs`, its replicas are copied to live nodes.
   */
  #awaitReturn(rank: number, reason: string): void {
    const membership = this.#store.nodes.membership;
    this.#log.error(`dfs: rank ${rank} is down (${reason}); waiting for it to reconnect`);
    this.#comm.failPeer(rank, `rank ${rank} is down`);
    this.#disconnect(rank);
    membership.restartFailed(rank, reason);
    const loss = (this.#losses.get(rank) ?? 0) + 1;
    this.#losses.set(rank, loss);
    const timer = this.#clock.setTimeout(() => {
      this.#rereplicationTimers.delete(timer);
      if (this.#closed || this.#losses.get(rank) !== loss || !membership.isDown(rank)) return;
      this.#store.recovery.rereplicate(rank).then(
        async (n) => {
          this.#log.error(`dfs: rank ${rank} stays away: ${n} chunk replicas copied to live nodes`);
          // Only if it is still away: one that came back meanwhile holds data again.
          if (membership.isDown(rank)) await this.#onDrained(rank);
        },
        (error) => this.#log.error(`dfs: cannot re-replicate rank ${rank}: ${error.message}`),
      ).catch((error) => this.#log.error(`dfs: cannot record rank ${rank} as drained:`, error));
    }, this.#rereplicateAfterMs);
    this.#rereplicationTimers.add(timer);
  }

  #beat(): void {
    this.#timer = this.#clock.setTimeout(() => {
      if (this.#closed) return;
      this.#heartbeat();
      this.#beat();
    }, HEARTBEAT_INTERVAL_MS);
  }

  #heartbeat(): void {
    const { nodes } = this.#store;
    for (const rank of nodes.membership.dataRanks) {
      if (nodes.membership.isDown(rank)) continue;
      nodes.ping(rank, HEARTBEAT_TIMEOUT_MS).catch((error) => {
        this.lost(rank, `no answer to a heartbeat: ${error.message}`);
      });
    }
  }

  async #restart(rank: number, reason: string): Promise<void> {
    this.#log.error(`dfs: rank ${rank} is down (${reason}); restarting it`);
    this.#comm.failPeer(rank, `rank ${rank} is down`);
    this.#ranks.get(rank)?.terminate();
    const membership = this.#store.nodes.membership;
    // Marked down by `lost()` in the same turn, at this monotonic time.
    const downSince = membership.reasonOf(rank)!.sinceMs;
    let rereplicated = false;
    let backoffMs = RESTART_BACKOFF_MS;
    let lastFailure: string | undefined;
    while (!this.#closed) {
      if (!rereplicated && this.#clock.monotonic() - downSince >= this.#rereplicateAfterMs) {
        rereplicated = true;
        await this.#store.recovery.rereplicate(rank).then(
          (n) =>
            this.#log.error(
              `dfs: rank ${rank} stays down: ${n} chunk replicas copied to live nodes`,
            ),
          (error) => this.#log.error(`dfs: cannot re-replicate rank ${rank}: ${error.message}`),
        );
      }
      let launched: LaunchedRank | undefined;
      try {
        launched = this.#relaunch(rank);
        this.#ranks.set(rank, launched);
        await awaitReady(this.#comm, rank);
        const { dropped, restored, fast } = await this.#store.recovery.reconcile(rank);
        this.#store.recovery.markUp(rank);
        const how = fast ? ", checked against its summary" : "";
        this.#log.error(
          `dfs: rank ${rank} is back (${dropped} stale chunks dropped, ${restored} restored${how})`,
        );
        return;
      } catch (error) {
        const failure = (error as Error).message;
        // Said once per reason: a disk that stays failed does not fill the log.
        if (failure !== lastFailure) {
          this.#log.error(`dfs: cannot restart rank ${rank}: ${failure}`);
        }
        lastFailure = failure;
        membership.restartFailed(rank, failure);
        launched?.terminate();
        const untilRereplication = rereplicated
          ? Infinity
          : downSince + this.#rereplicateAfterMs - this.#clock.monotonic();
        const waitMs = Math.max(0, Math.min(backoffMs, untilRereplication));
        backoffMs = Math.min(2 * backoffMs, RESTART_BACKOFF_MAX_MS);
        await new Promise<void>((resolve) => this.#clock.setTimeout(resolve, waitMs));
      }
    }
  }
}
