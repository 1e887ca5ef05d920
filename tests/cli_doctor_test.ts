/**
 * `dfs doctor --lose RANK|ZONE` as a user runs it against a real 4-rank server: files stored with
 * 1, 2 and 3 replicas, the report checked against where `dfs meta --json` says their chunks are.
 */

import assert from "node:assert/strict";
import type { DoctorReport } from "../client.ts";
import { pseudoRandomBytes } from "./_bytes.ts";
import { assertOk, assertOperationalError, assertUsageError, dfs } from "./_cli.ts";
import { TestServer } from "./_server.ts";
import { expectedLoss } from "./_loss.ts";

const MiB = 1024 * 1024;

interface MetaJson {
  name: string;
  size: number;
  chunks: { size: number; ranks: number[] }[];
}

/** Name, size and replicas of the files the test stores. */
const FILES: [string, number, number][] = [
  ["one/small", 10, 1],
  ["one/big", 2 * MiB + 3, 1],
  ["two/big", 3 * MiB + 1, 2],
  ["two/small", 7, 2],
  ["three/small", 5, 3],
];

Deno.test("dfs doctor --lose against a real server", async (t) => {
  await using server = await TestServer.start({ ranks: 4, replicas: 2 });
  const at = ["--server", server.address];
  const metas: MetaJson[] = [];
  for (const [name, size, replicas] of FILES) {
    const stdin = pseudoRandomBytes(size, size);
    assertOk(await dfs(["put", "-", name, "--replicas", String(replicas), ...at], { stdin }), name);
    const meta = await dfs(["meta", name, "--json", ...at]);
    assertOk(meta, `meta ${name}`);
    metas.push(JSON.parse(meta.stdout));
  }
  const doctor = async (target: string): Promise<DoctorReport> => {
    const result = await dfs(["doctor", "--lose", target, "--json", ...at]);
    assertOk(result, `doctor --lose ${target}`);
    assert.equal(result.stdout.trim().split("\n").length, 1, "one JSON object on one line");
    return JSON.parse(result.stdout);
  };
  const healthy = {
    underReplicated: { files: 0, chunks: 0, bytes: 0 },
    lost: { files: 0, bytes: 0, names: [] },
  };

  await t.step("--lose RANK counts what each data rank alone holds, and exits 0", async () => {
    for (const rank of [1, 2, 3]) {
      const report = await doctor(String(rank));
      assert.deepEqual(
        [report.target, report.kind, report.ranks, report.zones.length, report.ranksDown],
        [String(rank), "rank", [rank], 1, []],
      );
      assert.deepEqual([report.files, report.chunks], [5, 1 + 3 + 4 + 1 + 1]);
      assert.deepEqual(report.wouldBe, expectedLoss(metas, new Set([rank])), `rank ${rank}`);
      assert.deepEqual(report.now, healthy, "nothing is degraded before the loss");
    }
    // The rank holding the 1-replica small file loses it; the 3-replica file survives any one.
    const holder = metas[0].chunks[0].ranks[0];
    const report = await doctor(String(holder));
    assert.ok(report.wouldBe.lost.names.includes("one/small"));
    assert.ok(!report.wouldBe.lost.names.includes("three/small"));
    assert.ok(report.wouldBe.lost.files >= 1 && report.wouldBe.underReplicated.files >= 2);
  });

  await t.step(
    "--lose ZONE of a server's Workers covers every data rank: all is lost",
    async () => {
      const zone = (await doctor("1")).zones[0];
      const report = await doctor(zone);
      assert.deepEqual([report.kind, report.ranks, report.zones], ["zone", [1, 2, 3], [zone]]);
      assert.deepEqual(report.wouldBe, {
        underReplicated: { files: 0, chunks: 0, bytes: 0 },
        lost: {
          files: FILES.length,
          bytes: FILES.reduce((n, [, size]) => n + size, 0),
          names: FILES.map(([name]) => name).sort(),
        },
      });
    },
  );

  await t.step("without --json it prints the summary, the state now, then the names", async () => {
    const holder = metas[0].chunks[0].ranks[0];
    const expected = expectedLoss(metas, new Set([holder]));
    const result = await dfs(["doctor", "--lose", String(holder), ...at]);
    assertOk(result, "doctor");
    const lines = result.stdout.trimEnd().split("\n");
    assert.match(
      lines[0],
      new RegExp(
        `^Losing rank ${holder} \\(zone ".+"\\): ${expected.underReplicated.files} files \\(.+ in ` +
          `${expected.underReplicated.chunks} chunks?\\) would be under-replicated, ` +
          `${expected.lost.files} files? \\(.+\\) would be lost$`,
      ),
    );
    assert.equal(
      lines[1],
      "Now, before losing anything: 0 files under-replicated, 0 files lost; no data rank down",
    );
    assert.deepEqual(lines.slice(2), expected.lost.names.map((n) => `would be lost: ${n}`));
  });

  await t.step("--help says it exits 0 whatever it finds", async () => {
    const help = await dfs(["doctor", "--help"]);
    assertOk(help, "doctor --help");
    assert.match(help.stdout, /^Usage: dfs doctor --lose RANK\|ZONE \[OPTIONS\]$/m);
    assert.match(help.stdout, /exit 0 either way/);
    assert.match(help.stdout, /--lose RANK\|ZONE +required:/);
  });

  await t.step(
    "a missing or empty --lose is a usage error; an unknown target exits 1",
    async () => {
      assertUsageError(
        await dfs(["doctor", ...at]),
        /doctor needs --lose RANK\|ZONE/,
        "dfs doctor",
      );
      assertUsageError(
        await dfs(["doctor", "--lose", "", ...at]),
        /--lose must not be empty/,
        "dfs doctor",
      );
      assertUsageError(await dfs(["doctor", "x", ...at]), /unexpected argument "x"/, "dfs doctor");
      for (const target of ["nowhere", "0", "4"]) {
        assertOperationalError(
          await dfs(["doctor", "--lose", target, ...at]),
          new RegExp(
            `^dfs: Cannot find "${target}": it is neither a data rank nor a zone ` +
              `\\(data ranks 1, 2, 3; zones ".+"\\)$`,
          ),
        );
      }
    },
  );
});
