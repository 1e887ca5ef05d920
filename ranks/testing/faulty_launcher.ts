/**
 * A launcher that injects faults at the launch seam: it starts ranks through another launcher
 * (Web Workers by default) and can make one crash, hang, or stay down for good. End-to-end tests
 * of supervision run a real server in their own process with it; nothing of this reaches the
 * client protocol or a data node's code.
 *
 * @module
 */

import { DfsError } from "../../protocol/errors.ts";
import type { PortLike } from "../comm/port_transport.ts";
import type { NodeInit } from "../common/node_protocol.ts";
import { type Launcher, type PortRank, WorkerLauncher } from "../rank0/launch.ts";

/** A rank's port as rank 0 sees it, with a switch that cuts it off both ways (a hang). */
class FaultyPort implements PortLike {
  onmessage: ((event: MessageEvent) => void) | null = null;
  onerror: ((event: ErrorEvent) => void) | null = null;
  onmessageerror: ((event: MessageEvent) => void) | null = null;
  hung = false;
  #inner: PortLike;

  constructor(inner: PortLike) {
    this.#inner = inner;
    inner.onmessage = (event) => {
      if (!this.hung) this.onmessage?.(event);
    };
    inner.onerror = (event) => this.onerror?.(event);
    inner.onmessageerror = (event) => this.onmessageerror?.(event);
  }

  postMessage(message: unknown, transfer: Transferable[]): void {
    if (!this.hung) this.#inner.postMessage(message, transfer);
  }
}

/** Starts ranks and breaks them on demand. */
export class FaultyLauncher implements Launcher {
  #inner: Launcher;
  #running = new Map<number, { port: FaultyPort; rank: PortRank }>();
  #keptDown = new Set<number>();

  constructor(inner: Launcher = new WorkerLauncher()) {
    this.#inner = inner;
  }

  launch(init: NodeInit["init"]): PortRank {
    if (this.#keptDown.has(init.rank)) {
      throw new DfsError("UNAVAILABLE", `Rank ${init.rank} is kept down (fault injected)`);
    }
    const rank = this.#inner.launch(init);
    const port = new FaultyPort(rank.port);
    this.#running.set(init.rank, { port, rank });
    return { port, terminate: () => rank.terminate() };
  }

  /** The rank dies at once, as a Worker whose code threw: rank 0 hears of it as an error. */
  crash(rank: number): void {
    const running = this.#running.get(rank);
    if (!running) throw new Error(`rank ${rank} is not running`);
    this.#running.delete(rank);
    running.rank.terminate();
    const message = `rank ${rank} crashed (fault injected)`;
    running.port.onerror?.(new ErrorEvent("error", { message, error: new Error(message) }));
  }

  /** The rank stops answering and hears nothing more, until it is restarted. */
  hang(rank: number): void {
    const running = this.#running.get(rank);
    if (!running) throw new Error(`rank ${rank} is not running`);
    running.port.hung = true;
  }

  /** The rank crashes and cannot be started again (a machine gone for good). */
  kill(rank: number): void {
    this.#keptDown.add(rank);
    this.crash(rank);
  }
}
