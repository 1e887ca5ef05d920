/**
 * Bringing the store back to its replica counts, as thin executors of the pure plans in
 * `plans.ts`: start-up recovery, reconciling a data node that was restarted, and re-replicating
 * what a node that stays down held.
 *
 * @module
 */

import { DfsError } from "../../protocol/errors.ts";
import type { Manifest, RankRepair } from "../common/manifest.ts";
import { holdersOf } from "../common/manifest.ts";
import { freeIfWhole } from "../common/slot_table.ts";
import type { Log, Random } from "../env/env.ts";
import { forEachInSteps, INDEX_STEP_FILES } from "./give_way.ts";
import type { Health } from "./health.ts";
import type { Namespace } from "./namespace.ts";
import type { SummaryPage, SummaryTotals } from "../common/node_protocol.ts";
import type { NodeClient } from "./node_client.ts";
import type { LoadTracker } from "./placement.ts";
import { planRecovery, planRereplication, ReconcilePlanner, type RecoveryPlan } from "./plans.ts";
import { FastPlanner } from "./summary_plan.ts";
import { ReconcileCheck } from "./reconcile_check.ts";
import type { Releases } from "./releases.ts";
import type { Replicas } from "./replicas.ts";

/** Calls to a node being reconciled, still marked down. */
const WHILE_DOWN = { whileDown: true };

/** Recovery, reconciliation and re-replication. */
export class Recovery {
  #nodes: NodeClient;
  #loads: LoadTracker;
  #namespace: Namespace;
  #releases: Releases;
  #replicas: Replicas;
  #health: Health;
  #log: Log;
  #random: Random;
  #giveWay: () => Promise<void>;

  constructor(
    parts: {
      nodes: NodeClient;
      /** Gives way between the steps of a pass over the index (`give_way.ts`). */
      giveWay: () => Promise<void>;
      loads: LoadTracker;
      namespace: Namespace;
      releases: Releases;
      replicas: Replicas;
      health: Health;
      log: Log;
      /** Draws the seed of each start-up's fingerprints (`FastPlanner`). */
      random: Random;
    },
  ) {
    this.#random = parts.random;
    this.#giveWay = parts.giveWay;
    this.#health = parts.health;
    this.#nodes = parts.nodes;
    this.#loads = parts.loads;
    this.#namespace = parts.namespace;
    this.#releases = parts.releases;
    this.#replicas = parts.replicas;
    this.#log = parts.log;
  }

  /**
   * Start-up: decides the committed state from what every data node holds, has every node repair
   * itself to it, and loads the index; then the replicas found missing, and those on ranks that are
   * gone, are brought back in the background (`Health`). The nodes' summaries settle a clean
   * restart (`FastPlanner`); if they disagree, every manifest of every node is read
   * (`planRecovery`).
   */
  async recover(): Promise<RecoveryPlan> {
    const seed = this.#drawSeed();
    const plan = await this.#fastPlan(seed) ?? planRecovery(await this.#nodes.scanAll());
    // A node already holding exactly what it should (the usual clean restart) is left alone:
    // rewriting its whole log would be most of the start-up time.
    const needed = [...plan.repairs].filter(([rank]) => !plan.unchanged.has(rank));
    await Promise.all(needed.map(([rank, repair]) => this.#nodes.repair(rank, repair)));
    for (const [rank, repair] of plan.repairs) this.#loads.add(rank, repair.bytesHeld);
    this.#namespace.index.load(plan.files);
    this.#health.afterRecovery(plan);
    return plan;
  }

  /**
   * The plan of a clean restart from the nodes' summaries, read a page at a time as they come from
   * all nodes at once (`FastPlanner`); undefined at the first disagreement, or if a node fails to
   * send a page.
   */
  async #fastPlan(seed: number): Promise<RecoveryPlan | undefined> {
    const firsts = await this.#nodes.summarizeAll(seed);
    const planner = new FastPlanner(firsts.map((page) => page.rank), seed);
    const totals = new Map<number, SummaryTotals>();
    const readAll = async (first: SummaryPage) => {
      const { rank } = first;
      const read = await readSummary(
        first,
        () => this.#nodes.summaryPage(rank),
        (manifests) => planner.add(rank, manifests),
      );
      if (read) totals.set(rank, read);
    };
    try {
      await Promise.all(firsts.map(readAll));
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      this.#log.error(`dfs: a data node's summary stopped short (${why}); reading every manifest`);
      return undefined;
    }
    return planner.plan(totals);
  }

  /**
   * Brings a restarted data node in line with the index (`planReconcile`), copying back every
   * chunk it lost from a good replica. Call it while the node is still marked down; then mark it
   * up with `markUp()`.
   */
  async reconcile(
    rank: number,
  ): Promise<{ dropped: number; restored: number; fast: boolean }> {
    const fast = await this.#reconcileFast(rank);
    if (fast) {
      await this.#nodes.repair(rank, fast, WHILE_DOWN);
      this.#loads.set(rank, fast.bytesHeld);
      return { dropped: fast.deleteBlobs.length, restored: 0, fast: true };
    }
    const scan = await this.#nodes.scan(rank, WHILE_DOWN);
    if (scan.opened) this.#health.noteOpened(rank, scan.opened);
    const planner = new ReconcilePlanner(scan);
    await forEachInSteps(this.#namespace.index.values(), (m) => planner.add(m), this.#giveWay);
    const { repair, restore } = planner.plan();
    await this.#nodes.repair(rank, repair, WHILE_DOWN);
    this.#loads.set(rank, repair.bytesHeld);
    let restored = 0;
    for (const { chunk, file } of restore) {
      const others = chunk.ranks.filter((r) => r !== rank);
      if (await this.#replicas.copy(chunk, file, others, [rank], WHILE_DOWN)) {
        restored++;
      } else {
        this.#log.error(
          `dfs: chunk ${chunk.id} has no good replica left to restore rank ${rank} from`,
        );
      }
    }
    return { dropped: repair.deleteBlobs.length, restored, fast: false };
  }

  /**
   * The repair of a restarted node from its summary checked against the index
   * (`ReconcileCheck`): undefined if they disagree, if the node fails to send a page, or if what
   * the check counts moved under it (an install touching the rank, a release it missed).
   */
  async #reconcileFast(rank: number): Promise<RankRepair | undefined> {
    const membership = this.#nodes.membership;
    const { index } = this.#namespace;
    const changes = index.changesOn(rank);
    const seed = this.#drawSeed();
    const check = new ReconcileCheck(rank, seed);
    const missed = membership.missedBy(rank);
    let totals: SummaryTotals | undefined;
    try {
      totals = await readSummary(
        await this.#nodes.summarize(rank, seed, WHILE_DOWN),
        () => this.#nodes.summaryPage(rank, WHILE_DOWN),
        (manifests) => check.add(manifests),
      );
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      this.#log.error(`dfs: rank ${rank}'s summary stopped short (${why}); reading it whole`);
      return undefined;
    }
    if (totals === undefined) return undefined;
    await forEachInSteps(index.values(), (m) => check.expect(m), this.#giveWay);
    for (const m of missed) check.expectMissed(m);
    // What the node should hold moved meanwhile (an overwrite, a removal, a file re-replicated
    // off it): what was counted may be neither the old nor the new.
    const moved = index.changesOn(rank) !== changes ||
      membership.missedBy(rank).length !== missed.length;
    if (moved) return undefined;
    const repair = check.repair(totals);
    if (repair) this.#health.noteOpened(rank, totals.opened);
    return repair;
  }

  /** A fresh seed for the fingerprints of a summary (`printOf`): 32 random bits. */
  #drawSeed(): number {
    return new DataView(this.#random.fill(new Uint8Array(4)).buffer).getUint32(0);
  }

  /** Marks a reconciled node up and sends it the releases it missed. */
  markUp(rank: number): void {
    this.#releases.resend(rank, this.#nodes.membership.markUp(rank));
  }

  /**
   * Moves every replica a down rank held to live nodes (`planRereplication`), then gives each
   * file a new version of its manifest (same data, new placement) through one rename record per
   * node, so every file has its replica count again. Returns how many chunks were copied.
   *
   * @throws {DfsError} `UNAVAILABLE` if no live node can take a replica, or none is left to copy.
   */
  async rereplicate(rank: number): Promise<number> {
    let copied = 0;
    let visited = 0;
    // Made one at a time as the pass goes (each a copy, current when visited); the files this
    // installs anew keep their place in the index, so none is visited twice. Files the rank does
    // not hold take no I/O: the pass gives way every `INDEX_STEP_FILES` files all the same.
    for (const m of this.#namespace.index.values()) {
      if (holdersOf(m).has(rank)) copied += await this.rereplicateFile(m.name, rank);
      if (++visited % INDEX_STEP_FILES === 0) await this.#giveWay();
    }
    return copied;
  }

  /**
   * Moves the replicas of file `name` on `rank`, which is down or gone, to live nodes (see
   * `rereplicate()`). Returns how many chunks were copied (0 if the file no longer has any there,
   * or the rank is up again).
   *
   * @throws {DfsError} `UNAVAILABLE` if no live node can take a replica, or none is left to copy.
   */
  rereplicateFile(name: string, rank: number): Promise<number> {
    const { index } = this.#namespace;
    const membership = this.#nodes.membership;
    return this.#namespace.exclusive([name], async () => {
      const current = index.get(name);
      if (!current || !holdersOf(current).has(rank) || !membership.isLost(rank)) return 0;
      const placement = {
        bytesHeld: this.#loads.bytesHeld,
        down: membership.down,
        zoneOf: (r: number) => membership.zoneOf(r),
      };
      const plan = planRereplication(current, rank, placement);
      for (const { chunk, sources, target } of plan.copies) {
        const live = sources.filter((r) => !membership.isLost(r));
        if (!await this.#replicas.copy(chunk, current, live, [target])) {
          throw new DfsError("UNAVAILABLE", `No good replica of chunk ${chunk.id} is left`);
        }
        this.#loads.add(target, chunk.size);
        if (!membership.isGone(rank)) this.#loads.add(rank, -chunk.size);
      }
      const next: Manifest = { ...current, version: index.nextVersion(), chunks: plan.chunks };
      await this.#namespace.replace(current, next); // the same data: nothing is released
      return plan.copies.length;
    });
  }
}

/**
 * Reads a node's summary from its `first` page on, each page's manifests into `add` (false: stop
 * there), asking for the next page (`next`) before reading the one in hand, so that the node makes
 * it meanwhile: rank 0 reading a page and a node making one took turns, and took most of a
 * restart's time. Resolves with the totals the last page carries; undefined if `add` stopped.
 *
 * @throws what `next` throws.
 */
export async function readSummary(
  first: SummaryPage,
  next: () => Promise<SummaryPage>,
  add: (manifests: Uint8Array) => boolean,
): Promise<SummaryTotals | undefined> {
  for (let page = first;;) {
    const coming = page.totals === undefined ? next() : undefined;
    // Left unread if `add` stops: its failure then says nothing more.
    coming?.catch(() => {});
    // The request leaves with this turn's messages (`comm/port_transport.ts`), before the page
    // in hand is read.
    await null;
    if (!add(page.manifests)) return undefined;
    // Read: it goes now rather than at the collector's next full collection (`freeIfWhole`).
    freeIfWhole(page.manifests);
    if (coming === undefined) return page.totals;
    page = await coming;
  }
}
