/**
 * The fast start-up's summaries in one piece, for tests: a node's whole summary (`Summarizer`
 * with no page limit) and the plan made of whole summaries (`FastPlanner`).
 *
 * @module
 */

import type { ScanSummary } from "../common/node_protocol.ts";
import { type Held, Summarizer } from "../node/summary.ts";
import type { RecoveryPlan } from "../rank0/plans.ts";
import { FastPlanner } from "../rank0/summary_plan.ts";

/** A node's whole summary in one piece. */
export function summarize(held: Held, seed: number): ScanSummary {
  const page = new Summarizer(held, seed).next(Infinity);
  return { rank: page.rank, manifests: page.manifests, ...page.totals! };
}

/** The plan `FastPlanner` makes of whole summaries, or undefined if they disagree. */
export function planFastRecovery(
  summaries: readonly ScanSummary[],
  seed: number,
): RecoveryPlan | undefined {
  const planner = new FastPlanner(summaries.map((summary) => summary.rank), seed);
  for (const summary of summaries) {
    if (!planner.add(summary.rank, summary.manifests)) return undefined;
  }
  return planner.plan(new Map(summaries.map((summary) => [summary.rank, summary])));
}
