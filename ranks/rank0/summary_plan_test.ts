import assert from "node:assert/strict";
import { ChunkIdSet } from "../common/chunk_id_set.ts";
import { type Manifest, tombstoneOf } from "../common/manifest.ts";
import { readManifests } from "../common/manifest_codec.ts";
import type { ScanSummary, SummaryTotals } from "../common/node_protocol.ts";
import { type Held, Summarizer } from "../node/summary.ts";
import { planFastRecovery, summarize } from "../testing/summaries.ts";
import { SeededRandom } from "../env/seeded_random.ts";
import { blob, chunk, manifest, scanOf, type TestScan } from "../testing/manifests.ts";
import { planRecovery, type RecoveryPlan } from "./plans.ts";
import { FastPlanner } from "./summary_plan.ts";

const SEED = 0x5eed;
const CLEAN = { damagedRegions: 0, damagedBytes: 0, tailCutBytes: 0, created: false };

/** What a test scan says a node holds, as its summary is made of it. */
function heldOf(scan: TestScan): Held {
  return {
    rank: scan.rank,
    manifests: scan.manifests,
    inLog: ChunkIdSet.of(scan.inLog ?? []),
    blobs: new Map(scan.blobs),
    opened: scan.opened ?? CLEAN,
  };
}

/** Each node's summary of what a test scan says it holds. */
function summariesOf(scans: TestScan[], seed = SEED): ScanSummary[] {
  return scans.map((scan) => summarize(heldOf(scan), seed));
}

/**
 * `planFastRecovery` as start-up runs it: each node's summary in pages of one manifest or so,
 * read by a `FastPlanner` in an order `pick` shuffles across the nodes.
 */
function pagedPlan(scans: TestScan[], pick: (n: number) => number): RecoveryPlan | undefined {
  const summarizers = scans.map((scan) => new Summarizer(heldOf(scan), SEED));
  const planner = new FastPlanner(scans.map((scan) => scan.rank), SEED);
  const totals = new Map<number, SummaryTotals>();
  let pending = summarizers.filter((s) => !s.done);
  while (pending.length > 0) {
    const page = pending[pick(pending.length)].next(1);
    if (!planner.add(page.rank, page.manifests)) return undefined;
    if (page.totals) totals.set(page.rank, page.totals);
    pending = summarizers.filter((s) => !s.done);
  }
  return planner.plan(totals);
}

/** What a plan decides, to compare the fast one with `planRecovery`'s. */
function decided(plan: RecoveryPlan) {
  return {
    files: [...plan.files.values()].sort((a, b) => a.name < b.name ? -1 : 1),
    unchanged: [...plan.unchanged].sort(),
    held: [...plan.repairs].map(([rank, r]) => [rank, r.bytesHeld, [...r.deleteBlobs].sort()])
      .sort(),
  };
}

Deno.test("planFastRecovery() of a clean restart decides what planRecovery() does, reading each file once", () => {
  const big = manifest("big", 3, [[chunk(1), 8, [1, 2]], [chunk(1, 8), 4, [2, 3]]]);
  const small = manifest("small", 4, [[chunk(2), 5, [2, 3]]]);
  const scans: TestScan[] = [
    { rank: 1, manifests: [big], blobs: [[blob(1), 8]] },
    { rank: 2, manifests: [big, small], blobs: [[blob(1), 12]], inLog: [chunk(2)] },
    { rank: 3, manifests: [small, big], blobs: [[blob(1), 12]], inLog: [chunk(2)] },
  ];
  const summaries = summariesOf(scans);
  // Whole: big from rank 1 (its first holder) and small from rank 2; the rest as fingerprints.
  assert.deepEqual(summaries.map((s) => [...readManifests(s.manifests)].map((m) => m.name)), [
    ["big"],
    ["small"],
    [],
  ]);
  assert.deepEqual(summaries.map((s) => s.others), [0, 1, 2]);
  const fast = planFastRecovery(summaries, SEED)!;
  assert.ok(fast, "the summaries agree");
  assert.deepEqual(decided(fast), decided(planRecovery(scans.map(scanOf))));
  assert.deepEqual([...fast.unchanged], [1, 2, 3]);
});

Deno.test("planFastRecovery() has no plan when a node lacks a file, a chunk, or a holder, or holds two versions", () => {
  const a = manifest("a", 3, [[chunk(1), 4, [1, 2]]]);
  const b = manifest("b", 4, [[chunk(2), 4, [2, 3]]]);
  const clean: TestScan[] = [
    { rank: 1, manifests: [a], blobs: [[blob(1), 4]] },
    { rank: 2, manifests: [a, b], blobs: [[blob(1), 4], [blob(2), 4]] },
    { rank: 3, manifests: [b], blobs: [[blob(2), 4]] },
  ];
  assert.ok(planFastRecovery(summariesOf(clean), SEED));
  const broken: [string, TestScan[]][] = [
    ["rank 3 lacks b", clean.map((s) => s.rank === 3 ? { ...s, manifests: [] } : s)],
    [
      "rank 2's blob of a is cut",
      clean.map((s) => s.rank === 2 ? { ...s, blobs: [[blob(1), 3], [blob(2), 4]] } : s),
    ],
    ["rank 3 did not answer", clean.filter((s) => s.rank !== 3)],
    [
      "rank 1 still holds an older a",
      clean.map((s) =>
        s.rank === 1 ? { ...s, manifests: [manifest("a", 2, [[chunk(9), 1, [1]]]), a] } : s
      ),
    ],
    [
      "rank 3 holds a file it has no chunk of",
      clean.map((s) => s.rank === 3 ? { ...s, manifests: [a, b] } : s),
    ],
  ];
  for (const [why, scans] of broken) {
    assert.equal(planFastRecovery(summariesOf(scans), SEED), undefined, why);
  }
  // Fingerprints made under another seed do not match.
  assert.equal(planFastRecovery(summariesOf(clean, 1), SEED), undefined);
});

Deno.test("planFastRecovery() drops tombstones and stray blobs, and keeps a file newer than its tombstone", () => {
  const gone = tombstoneOf("gone", 5, 0);
  const again = manifest("again", 7, [[chunk(3), 4, [1, 2]]]);
  const scans: TestScan[] = [
    { rank: 1, manifests: [gone, tombstoneOf("again", 6, 0), again], blobs: [[blob(3), 4]] },
    {
      rank: 2,
      manifests: [again, gone, tombstoneOf("again", 6, 0)],
      blobs: [[blob(3), 4], [blob(8), 2]], // blob 8: left by a cut-off upload
    },
  ];
  const fast = planFastRecovery(summariesOf(scans), SEED)!;
  assert.ok(fast);
  assert.deepEqual(decided(fast), decided(planRecovery(scans.map(scanOf))));
  assert.deepEqual([...fast.files.names()], ["again"]);
  assert.deepEqual(fast.repairs.get(2), {
    drop: [{ name: "gone", version: 5 }, { name: "again", version: 6 }],
    deleteBlobs: [blob(8)],
    bytesHeld: 4,
  });
  assert.deepEqual([...fast.unchanged], []);
  // A tombstone newer than a file some node still holds is planRecovery()'s to settle.
  const late: TestScan[] = [
    { rank: 1, manifests: [again, tombstoneOf("again", 9, 0)], blobs: [[blob(3), 4]] },
    { rank: 2, manifests: [tombstoneOf("again", 9, 0)], blobs: [[blob(3), 4]] },
  ];
  assert.equal(planFastRecovery(summariesOf(late), SEED), undefined);
});

Deno.test("planFastRecovery() agrees with planRecovery() whenever it has a plan, over random damage", () => {
  const random = new SeededRandom(7);
  const pick = (n: number) => random.fill(new Uint8Array(1))[0] % n;
  let fastPlans = 0;
  let tombstonePlans = 0;
  for (let round = 0; round < 300; round++) {
    const ranks = [1, 2, 3, 4];
    const files: Manifest[] = [];
    for (let i = 0; i < 6; i++) {
      const first = 1 + pick(4);
      const second = 1 + ((first + pick(3)) % 4);
      const placed = [first, second];
      files.push(manifest(`f${i}`, 10 + i, [[chunk(100 + i), 4, placed]]));
    }
    const scans: TestScan[] = ranks.map((rank) => {
      const mine = files.filter((m) => m.chunks[0].ranks.includes(rank));
      const small = mine.filter((m) => Number(m.name.slice(1)) % 2 === 0);
      return {
        rank,
        manifests: mine,
        blobs: mine.filter((m) => !small.includes(m)).map((
          m,
        ) => [blob(100 + Number(m.name.slice(1))), 4]),
        inLog: small.map((m) => m.chunks[0].id),
      };
    });
    // Damage, now and then: a lost record, a lost chunk, an old version, a stray blob, a rank gone,
    // a tombstone older or newer than a file.
    const damage = pick(7);
    const at = scans[pick(4)];
    if (damage === 0 && at.manifests.length > 0) at.manifests = at.manifests.slice(1);
    if (damage === 1) at.blobs = at.blobs.slice(1);
    if (damage === 1) at.inLog = (at.inLog ?? []).slice(1);
    if (damage === 2) {
      at.manifests = [...at.manifests, manifest("f0", 1, [[chunk(99), 1, [at.rank]]])];
    }
    if (damage === 3) at.blobs = [...at.blobs, [blob(98), 1]];
    if (damage === 6) {
      const name = `f${pick(6)}`;
      at.manifests = [...at.manifests, tombstoneOf(name, pick(2) === 0 ? 5 : 30, 1)];
    }
    const answered = damage === 4 ? scans.filter((s) => s !== at) : scans;
    const fast = planFastRecovery(summariesOf(answered), SEED);
    const exact = planRecovery(answered.map(scanOf));
    // In pages, in any order across the nodes, the same plan or none.
    const paged = pagedPlan(answered, pick);
    assert.equal(paged === undefined, fast === undefined, `round ${round}, damage ${damage}`);
    if (paged && fast) assert.deepEqual(decided(paged), decided(fast), `round ${round}`);
    if (damage === 5) assert.ok(fast, "a clean restart has a fast plan");
    if (!fast) continue;
    fastPlans++;
    if (damage === 6) tombstonePlans++;
    assert.deepEqual(decided(fast), decided(exact), `round ${round}, damage ${damage}`);
    assert.deepEqual([exact.missing, exact.damaged, [...exact.lacking]], [[], [], []]);
  }
  assert.ok(fastPlans > 50, `${fastPlans} of 300 rounds had a fast plan`);
  assert.ok(tombstonePlans > 5, `${tombstonePlans} rounds with a tombstone had a fast plan`);
});
