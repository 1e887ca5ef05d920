/**
 * Which reads rank 0 offers a direct route (`direct_routes.ts`): built over a hand-made
 * membership and manifests, checked against the route's runs, nodes and grant.
 */

import assert from "node:assert/strict";
import {
  checkGrant,
  GRANT_BLOBS_MAX,
  GRANT_TTL_MS,
  grantKey,
  grantLifeMs,
  idsOf,
  parseRoute,
  ROUTE_RUNS_MAX,
} from "../../protocol/direct.ts";
import { DfsError } from "../../protocol/errors.ts";
import { CHUNK_SIZE_BYTES } from "../../protocol/limits.ts";
import { LOG_FILE_BYTES_MAX } from "../common/chunk_id.ts";
import type { Manifest } from "../common/manifest.ts";
import { blob, chunk, manifest } from "../testing/manifests.ts";
import { DIRECT_READ_BYTES_MIN, DirectRoutes } from "./direct_routes.ts";
import { Membership, type NodeInfo } from "./membership.ts";

const MiB = CHUNK_SIZE_BYTES;
const NOW = 1_700_000_000_000;
const key = grantKey(new TextEncoder().encode("cluster secret"));

/** Remote nodes 1 to 4: 1, 2 and 3 with a data port, 4 without. */
function members(): Membership {
  const info = new Map<number, NodeInfo>([
    [1, { kind: "remote", zone: "a", dataAddress: "127.0.0.1:7001" }],
    [2, { kind: "remote", zone: "b", dataAddress: "10.0.0.2:7002" }],
    [3, { kind: "remote", zone: "b", dataAddress: "[::1]:7003" }],
    [4, { kind: "remote", zone: "a" }],
  ]);
  return new Membership([1, 2, 3, 4], { info });
}

function routes(membership: Membership): DirectRoutes {
  return new DirectRoutes({ membership, key, clock: { now: () => NOW } });
}

/** A file of `count` whole chunks in blob `n`, each on `ranks`, and `tail` bytes more. */
function bigFile(n: number, count: number, ranks: number[], tail = 0): Manifest {
  const chunks: [string, number, number[]][] = [];
  for (let i = 0; i < count; i++) chunks.push([chunk(n, i * MiB), MiB, ranks]);
  if (tail > 0) chunks.push([chunk(n, count * MiB), tail, ranks]);
  return manifest("big", 1, chunks);
}

/** Checks that `route` is what a client accepts and that its grant reads every chunk of `m`. */
function assertReadsAll(route: ReturnType<DirectRoutes["routeOf"]>, m: Manifest): void {
  assert.ok(route, "a route is offered");
  const parsed = parseRoute(route, m.chunks.length);
  const ids = idsOf(parsed.runs, m.chunks.map((c) => c.size));
  assert.deepEqual(ids, m.chunks.map((c) => c.id), "the runs stand for the file's chunk ids");
  for (const id of ids) checkGrant(key, route.grant, id, NOW);
}

Deno.test("DirectRoutes offers a large file on nodes with data ports a route and a grant", () => {
  const m = bigFile(1, 5, [1, 2], 777);
  const route = routes(members()).routeOf(m, 0, m.size);
  assertReadsAll(route, m);
  assert.deepEqual(route!.runs, [{ blob: blob(1), offset: 0, chunks: 6 }]);
  assert.deepEqual(route!.nodes, { 1: "127.0.0.1:7001", 2: "10.0.0.2:7002" });
  assert.deepEqual(route!.grant.blobs, [blob(1)]);
  // It lives for the read at the slowest pace allowed: the grant's life and m.size at 1 MB/s.
  assert.equal(route!.grant.expires, NOW + grantLifeMs(m.size));
  assert.ok(grantLifeMs(m.size) > GRANT_TTL_MS);
  // The grant reads that file's blob and no other; another key's node refuses it.
  assert.throws(() => checkGrant(key, route!.grant, chunk(2, 0), NOW), DfsError);
  const otherKey = grantKey(new TextEncoder().encode("another cluster"));
  assert.throws(() => checkGrant(otherKey, route!.grant, chunk(1, 0), NOW), DfsError);
});

Deno.test("DirectRoutes offers no route for a read below DIRECT_READ_BYTES_MIN", () => {
  const m = bigFile(1, 4, [1, 2]);
  const r = routes(members());
  assert.equal(DIRECT_READ_BYTES_MIN, MiB);
  assert.equal(r.routeOf(m, 0, DIRECT_READ_BYTES_MIN - 1), undefined);
  assert.equal(r.routeOf(m, MiB + 10, 2 * MiB + 9), undefined);
  assert.equal(r.routeOf(m, 5, 5), undefined);
  assertReadsAll(r.routeOf(m, MiB + 10, 2 * MiB + 10), m);
  // A whole file smaller than a chunk is read through rank 0 too.
  const small = manifest("small", 1, [[chunk(3, 0), 200_000, [1, 2]]]);
  assert.equal(r.routeOf(small, 0, small.size), undefined);
});

Deno.test("DirectRoutes offers no route over a chunk kept in a node's log", () => {
  // A composed file (an S3 multipart upload) whose first part was a small file, kept in the logs.
  const parts: [string, number, number[]][] = [
    [chunk(7, 0), LOG_FILE_BYTES_MAX, [1, 2]],
    [chunk(8, 0), MiB, [1, 2]],
    [chunk(8, MiB), MiB, [2, 3]],
  ];
  const m = manifest("composed", 1, parts);
  const r = routes(members());
  assert.equal(r.routeOf(m, 0, m.size), undefined);
  assert.equal(r.routeOf(m, LOG_FILE_BYTES_MAX - 1, m.size), undefined, "one byte of it is enough");
  // A range past it reads the blob chunks directly; the runs still name every chunk.
  const route = r.routeOf(m, LOG_FILE_BYTES_MAX, m.size);
  assertReadsAll(route, m);
  assert.deepEqual(route!.runs, [
    { blob: blob(7), offset: 0, chunks: 1 },
    { blob: blob(8), offset: 0, chunks: 2 },
  ]);
  assert.deepEqual(route!.nodes, { 1: "127.0.0.1:7001", 2: "10.0.0.2:7002", 3: "[::1]:7003" });
});

Deno.test("DirectRoutes offers no route when a chunk's replicas have no data port or are down", () => {
  const membership = members();
  const r = routes(membership);
  // Chunk 1's only replicas: node 4 (no data port) and rank 9 (no such node).
  const m = manifest("f", 1, [
    [chunk(1, 0), MiB, [1, 2]],
    [chunk(1, MiB), MiB, [4, 9]],
    [chunk(1, 2 * MiB), MiB, [2, 3]],
  ]);
  assert.equal(r.routeOf(m, 0, m.size), undefined);
  const ok = manifest("g", 1, [[chunk(2, 0), MiB, [1, 2]], [chunk(2, MiB), MiB, [3, 4]]]);
  assertReadsAll(r.routeOf(ok, 0, ok.size), ok);
  assert.deepEqual(r.routeOf(ok, 0, ok.size)!.nodes, {
    1: "127.0.0.1:7001",
    2: "10.0.0.2:7002",
    3: "[::1]:7003",
  }, "node 4 has no data port: it is not named");
  // Node 3 down: chunk 1 of g has no live replica with a data port.
  membership.markDown(3);
  assert.equal(r.routeOf(ok, 0, ok.size), undefined);
  // Node 1 down too: chunk 0 still has node 2, so a read of chunk 0 alone is routed to it.
  membership.markDown(1);
  const first = r.routeOf(ok, 0, MiB);
  assertReadsAll(first, ok);
  assert.deepEqual(first!.nodes, { 2: "10.0.0.2:7002" });
  membership.markDown(2);
  assert.equal(r.routeOf(ok, 0, MiB), undefined, "every replica down");
  // Back up (a remote node joining is down until reconciled, then up): routed again.
  membership.markUp(2);
  membership.markUp(3);
  assertReadsAll(r.routeOf(ok, 0, ok.size), ok);
  // A node that rejoined without a data port is no longer named.
  membership.setInfo(2, { kind: "remote", zone: "b" });
  assert.equal(r.routeOf(ok, 0, MiB), undefined);
});

Deno.test("DirectRoutes routes a range whose own chunks are reachable, whatever the others", () => {
  const m = manifest("f", 1, [
    [chunk(1, 0), MiB, [4]], // no data port
    [chunk(1, MiB), MiB, [1, 2]],
    [chunk(1, 2 * MiB), MiB, [2]],
    [chunk(1, 3 * MiB), 500, [4]], // no data port
  ]);
  const r = routes(members());
  assert.equal(r.routeOf(m, 0, m.size), undefined);
  assert.equal(r.routeOf(m, MiB - 1, 3 * MiB), undefined, "touches chunk 0");
  assert.equal(r.routeOf(m, MiB, 3 * MiB + 1), undefined, "touches chunk 3");
  const route = r.routeOf(m, MiB, 3 * MiB);
  assertReadsAll(route, m);
  assert.deepEqual(route!.runs, [{ blob: blob(1), offset: 0, chunks: 4 }]);
  assert.deepEqual(route!.nodes, { 1: "127.0.0.1:7001", 2: "10.0.0.2:7002" });
});

Deno.test("DirectRoutes offers no route for a file of more blobs or runs than a grant may name", () => {
  const r = routes(members());
  const ofBlobs = (count: number) =>
    manifest("parts", 1, Array.from({ length: count }, (_, i) => [chunk(i + 1, 0), MiB, [1, 2]]));
  const widest = ofBlobs(GRANT_BLOBS_MAX);
  const route = r.routeOf(widest, 0, widest.size);
  assertReadsAll(route, widest);
  assert.equal(route!.grant.blobs.length, GRANT_BLOBS_MAX);
  assert.equal(r.routeOf(ofBlobs(GRANT_BLOBS_MAX + 1), 0, MiB), undefined, "even a small range");
  // One blob, but its chunks out of order: a run each.
  const ofRuns = (count: number) =>
    manifest(
      "scattered",
      1,
      Array.from({ length: count }, (_, i) => [chunk(1, (count - 1 - i) * MiB), MiB, [1, 2]]),
    );
  const most = ofRuns(ROUTE_RUNS_MAX);
  const scattered = r.routeOf(most, 0, most.size);
  assertReadsAll(scattered, most);
  assert.equal(scattered!.runs.length, ROUTE_RUNS_MAX);
  assert.deepEqual(scattered!.grant.blobs, [blob(1)], "each blob named once");
  assert.equal(r.routeOf(ofRuns(ROUTE_RUNS_MAX + 1), 0, 2 * MiB), undefined);
});

Deno.test("DirectRoutes offers no route for a chunk id that is no blob's", () => {
  const m = manifest("odd", 1, [[chunk(1, 0), MiB, [1, 2]], ["not-a-chunk-id", MiB, [1, 2]]]);
  assert.equal(routes(members()).routeOf(m, 0, MiB), undefined);
});
