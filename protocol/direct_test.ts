/**
 * The direct data path's pure parts: read and write grants (signed, checked, expiring), the
 * shapes a data port and a client accept (reads, writes, routes, write plans), and chunk ids
 * compressed into runs and back.
 */

import assert from "node:assert/strict";
import {
  checkGrant,
  type ChunkRun,
  DIRECT_PROTOCOL_VERSION,
  GRANT_BLOBS_MAX,
  GRANT_CLOCK_SKEW_MS,
  GRANT_MAC_BYTES,
  grantKey,
  idsOf,
  parseDataRequest,
  parseGrant,
  parsePlan,
  parseRoute,
  ROUTE_RUNS_MAX,
  runsOf,
  signGrant,
} from "./direct.ts";
import { CHUNK_SIZE_BYTES } from "./limits.ts";
import { fails } from "../ranks/testing/fails.ts";

const utf8 = new TextEncoder();
const key = grantKey(utf8.encode("the cluster secret"));
const otherKey = grantKey(utf8.encode("another cluster's secret"));
const blobA = "0123456789abcdef0123456789abcdef";
const blobB = "fedcba9876543210fedcba9876543210";
const blobC = "00000000000000000000000000000abc";
const NOW = 1_700_000_000_000;
const MiB = 1024 * 1024;

Deno.test("grantKey() is derived from the secret: not the secret, the same for the same secret", () => {
  const secret = utf8.encode("the cluster secret");
  assert.equal(key.length, 32);
  assert.deepEqual(grantKey(secret), key);
  assert.notDeepEqual(key, otherKey);
  assert.ok(!new TextDecoder().decode(key).includes("the cluster secret"));
});

Deno.test("checkGrant() passes a grant signed with the key for a chunk of a blob it names", () => {
  const grant = signGrant(key, [blobA, blobB], NOW + 60_000);
  assert.equal(grant.mac.length, GRANT_MAC_BYTES);
  checkGrant(key, grant, `${blobA}-0`, NOW);
  checkGrant(key, grant, `${blobA}-100000`, NOW);
  checkGrant(key, grant, `${blobB}-300000`, NOW + 60_000);
  // What a node receives went through CBOR: a grant parsed back from its shape checks the same.
  checkGrant(key, parseGrant({ ...grant, mac: grant.mac.slice() }), `${blobB}-0`, NOW);
});

Deno.test("checkGrant() refuses a tampered mac, a wrong key, a widened grant or a later expiry", () => {
  const grant = signGrant(key, [blobA], NOW + 60_000);
  const chunk = `${blobA}-0`;
  const flipped = grant.mac.slice();
  flipped[7] ^= 1;
  assert.throws(
    () => checkGrant(key, { ...grant, mac: flipped }, chunk, NOW),
    fails("UNAUTHORIZED", /not signed/),
  );
  assert.throws(() => checkGrant(otherKey, grant, chunk, NOW), fails("UNAUTHORIZED", /not signed/));
  const forged = signGrant(otherKey, [blobA], NOW + 60_000);
  assert.throws(() => checkGrant(key, forged, chunk, NOW), fails("UNAUTHORIZED", /not signed/));
  // The mac covers the blobs and the expiry: neither can be changed under it.
  assert.throws(
    () => checkGrant(key, { ...grant, blobs: [blobA, blobB] }, `${blobB}-0`, NOW),
    fails("UNAUTHORIZED", /not signed/),
  );
  assert.throws(
    () => checkGrant(key, { ...grant, blobs: [blobB] }, `${blobB}-0`, NOW),
    fails("UNAUTHORIZED", /not signed/),
  );
  assert.throws(
    () => checkGrant(key, { ...grant, expires: grant.expires + 3_600_000 }, chunk, NOW),
    fails("UNAUTHORIZED", /not signed/),
  );
});

Deno.test("checkGrant() refuses a chunk of a blob the grant does not name, or no chunk id", () => {
  const grant = signGrant(key, [blobA, blobB], NOW + 60_000);
  assert.throws(
    () => checkGrant(key, grant, `${blobC}-0`, NOW),
    fails("UNAUTHORIZED", /does not cover/),
  );
  assert.throws(() => checkGrant(key, grant, blobA, NOW), fails("UNAUTHORIZED", /does not cover/));
  assert.throws(
    () => checkGrant(key, grant, `${blobA}-00`, NOW),
    fails("UNAUTHORIZED", /does not cover/),
  );
  assert.throws(
    () => checkGrant(key, grant, `../${blobA}-0`, NOW),
    fails("UNAUTHORIZED", /does not cover/),
  );
});

Deno.test("checkGrant() holds a grant until its expiry plus the clock skew, not after", () => {
  const expires = NOW + 60_000;
  const grant = signGrant(key, [blobA], expires);
  const chunk = `${blobA}-0`;
  checkGrant(key, grant, chunk, expires);
  checkGrant(key, grant, chunk, expires + 1); // a node's clock a little ahead of rank 0's
  checkGrant(key, grant, chunk, expires + GRANT_CLOCK_SKEW_MS);
  assert.throws(
    () => checkGrant(key, grant, chunk, expires + GRANT_CLOCK_SKEW_MS + 1),
    fails("UNAUTHORIZED", /expired/),
  );
  assert.throws(
    () => checkGrant(key, grant, chunk, expires + 24 * 3_600_000),
    fails("UNAUTHORIZED", /expired/),
  );
});

Deno.test("parseDataRequest() takes a hello of this version only", () => {
  assert.deepEqual(parseDataRequest({ op: "hello", version: DIRECT_PROTOCOL_VERSION }), {
    op: "hello",
    version: DIRECT_PROTOCOL_VERSION,
  });
  for (const version of [DIRECT_PROTOCOL_VERSION + 1, 0, "1", undefined]) {
    assert.throws(
      () => parseDataRequest({ op: "hello", version }),
      fails("VERSION_MISMATCH"),
      String(version),
    );
  }
  for (const value of [null, 7, "hello", [], [{ op: "hello" }]]) {
    assert.throws(() => parseDataRequest(value), fails("INVALID_REQUEST"), String(value));
  }
  assert.throws(
    () => parseDataRequest({ op: "delete", id: 1 }),
    fails("INVALID_REQUEST", /delete/),
  );
  assert.throws(() => parseDataRequest({ op: "write", id: 1 }), fails("INVALID_REQUEST", /chunk/));
});

Deno.test("parseDataRequest() checks a read's id, chunk, size, crc32 and grant shape", () => {
  const grant = signGrant(key, [blobA], NOW);
  const good = { op: "read", id: 5, chunk: `${blobA}-100000`, size: MiB, crc32: 12345, grant };
  assert.deepEqual(parseDataRequest(good), good);
  const noCrc = parseDataRequest({ ...good, crc32: null });
  assert.ok(noCrc.op === "read" && !("crc32" in noCrc), "a null crc32 is left out");
  const bad: [string, Record<string, unknown>][] = [
    ["negative id", { id: -1 }],
    ["id over 32 bits", { id: 2 ** 32 }],
    ["fractional id", { id: 1.5 }],
    ["no chunk", { chunk: undefined }],
    ["a blob id for a chunk", { chunk: blobA }],
    ["a chunk offset with a leading zero", { chunk: `${blobA}-01` }],
    ["upper-case chunk", { chunk: `${blobA.toUpperCase()}-0` }],
    ["a path for a chunk", { chunk: `../../etc/passwd` }],
    ["negative size", { size: -1 }],
    ["size over a chunk", { size: CHUNK_SIZE_BYTES + 1 }],
    ["size over 32 bits", { size: 2 ** 32 }],
    ["fractional size", { size: 10.5 }],
    ["text size", { size: "1048576" }],
    ["bad crc32", { crc32: -5 }],
    ["no grant", { grant: undefined }],
    ["grant a list", { grant: [grant] }],
    ["grant of no blobs", { grant: { ...grant, blobs: [] } }],
    ["grant of a bad blob", { grant: { ...grant, blobs: ["../x"] } }],
    ["grant of a chunk id", { grant: { ...grant, blobs: [`${blobA}-0`] } }],
    ["grant blobs not a list", { grant: { ...grant, blobs: blobA } }],
    [
      "grant of too many blobs",
      { grant: { ...grant, blobs: Array(GRANT_BLOBS_MAX + 1).fill(blobA) } },
    ],
    ["grant with a text expiry", { grant: { ...grant, expires: String(NOW) } }],
    ["grant with a negative expiry", { grant: { ...grant, expires: -1 } }],
    ["grant with a fractional expiry", { grant: { ...grant, expires: 1.5 } }],
    ["grant with a short mac", { grant: { ...grant, mac: grant.mac.subarray(1) } }],
    ["grant with a text mac", { grant: { ...grant, mac: "x".repeat(GRANT_MAC_BYTES) } }],
    ["grant with no mac", { grant: { ...grant, mac: undefined } }],
  ];
  for (const [why, change] of bad) {
    assert.throws(() => parseDataRequest({ ...good, ...change }), fails("INVALID_REQUEST"), why);
  }
  const whole = { ...good, size: CHUNK_SIZE_BYTES };
  assert.deepEqual(parseDataRequest(whole), whole, "a whole chunk is the largest read");
  // The largest grant a node takes is fine.
  const widest = signGrant(key, Array(GRANT_BLOBS_MAX).fill(blobA), NOW);
  assert.equal(parseGrant(widest).blobs.length, GRANT_BLOBS_MAX);
});

Deno.test("parseRoute() takes a route whose runs name the file's chunks, and refuses others", () => {
  const grant = signGrant(key, [blobA, blobB], NOW);
  const runs: ChunkRun[] = [{ blob: blobA, offset: 0, chunks: 3 }, {
    blob: blobB,
    offset: MiB,
    chunks: 2,
  }];
  const nodes = { "1": "127.0.0.1:4001", "2": "[::1]:4002", "17": "node-3.example:80" };
  const route = { runs, nodes, grant };
  assert.deepEqual(parseRoute(route, 5), route);
  assert.throws(() => parseRoute(route, 4), fails("INVALID_REQUEST", /5 chunks, not 4/));
  assert.throws(() => parseRoute(route, 6), fails("INVALID_REQUEST", /5 chunks, not 6/));
  assert.throws(() => parseRoute({ ...route, runs: [] }, 5), fails("INVALID_REQUEST"));
  const bad: [string, unknown][] = [
    ["not a map", "route"],
    ["runs not a list", { ...route, runs: runs[0] }],
    ["too many runs", { ...route, runs: Array(ROUTE_RUNS_MAX + 1).fill(runs[0]) }],
    ["a null run", { ...route, runs: [null, runs[1]] }],
    ["a run of a bad blob", { ...route, runs: [{ ...runs[0], blob: "x" }, runs[1]] }],
    ["a negative offset", { ...route, runs: [{ ...runs[0], offset: -1 }, runs[1]] }],
    ["a run of no chunks", { ...route, runs: [{ ...runs[0], chunks: 0 }, runs[1]] }],
    ["nodes not a map", { ...route, nodes: ["127.0.0.1:4001"] }],
    ["rank 0", { ...route, nodes: { "0": "127.0.0.1:4001" } }],
    ["a rank with a leading zero", { ...route, nodes: { "01": "127.0.0.1:4001" } }],
    ["a negative rank", { ...route, nodes: { "-1": "127.0.0.1:4001" } }],
    ["a name for a rank", { ...route, nodes: { one: "127.0.0.1:4001" } }],
    ["an address without a port", { ...route, nodes: { "1": "127.0.0.1" } }],
    ["an address with a path", { ...route, nodes: { "1": "127.0.0.1:80/x" } }],
    ["an address with a scheme", { ...route, nodes: { "1": "http://127.0.0.1:80" } }],
    ["bare IPv6", { ...route, nodes: { "1": "::1:4001" } }],
    ["a number for an address", { ...route, nodes: { "1": 4001 } }],
    ["no grant", { ...route, grant: undefined }],
    ["a grant of no mac", { ...route, grant: { ...grant, mac: undefined } }],
  ];
  for (const [why, value] of bad) {
    assert.throws(() => parseRoute(value, 5), fails("INVALID_REQUEST"), why);
  }
});

Deno.test("runsOf() and idsOf(): one blob end to end is one run, and back", () => {
  const sizes = [MiB, MiB, MiB, 123];
  const ids = [0, MiB, 2 * MiB, 3 * MiB].map((offset) => `${blobA}-${offset.toString(16)}`);
  const runs = runsOf(ids, sizes);
  assert.deepEqual(runs, [{ blob: blobA, offset: 0, chunks: 4 }]);
  assert.deepEqual(idsOf(runs!, sizes), ids);
});

Deno.test("runsOf() and idsOf(): two blobs are two runs; a run may start mid-blob", () => {
  const sizes = [MiB, MiB, MiB, 10];
  const ids = [`${blobA}-0`, `${blobA}-100000`, `${blobB}-300000`, `${blobB}-400000`];
  const runs = runsOf(ids, sizes);
  assert.deepEqual(runs, [
    { blob: blobA, offset: 0, chunks: 2 },
    { blob: blobB, offset: 3 * MiB, chunks: 2 },
  ]);
  assert.deepEqual(idsOf(runs!, sizes), ids);
});

Deno.test("runsOf() and idsOf(): a gap or a step back in one blob starts a new run", () => {
  const sizes = [MiB, MiB, MiB, MiB];
  const ids = [`${blobA}-0`, `${blobA}-200000`, `${blobA}-300000`, `${blobA}-100000`];
  const runs = runsOf(ids, sizes);
  assert.deepEqual(runs, [
    { blob: blobA, offset: 0, chunks: 1 },
    { blob: blobA, offset: 2 * MiB, chunks: 2 },
    { blob: blobA, offset: MiB, chunks: 1 },
  ]);
  assert.deepEqual(idsOf(runs!, sizes), ids);
  // A blob that comes back after another is a new run too.
  const back = [`${blobA}-0`, `${blobB}-0`, `${blobA}-100000`];
  assert.equal(runsOf(back, [MiB, MiB, MiB])!.length, 3);
  assert.deepEqual(idsOf(runsOf(back, [MiB, MiB, MiB])!, [MiB, MiB, MiB]), back);
});

Deno.test("runsOf() gives undefined when an id is no chunk id; idsOf() refuses a count mismatch", () => {
  assert.equal(runsOf([`${blobA}-0`, "not-a-chunk"], [MiB, MiB]), undefined);
  assert.equal(runsOf([blobA], [MiB]), undefined);
  assert.deepEqual(runsOf([], []), []);
  const runs = [{ blob: blobA, offset: 0, chunks: 2 }];
  assert.throws(() => idsOf(runs, [MiB]), fails("INVALID_REQUEST", /2 chunks, not 1/));
  assert.throws(() => idsOf(runs, [MiB, MiB, MiB]), fails("INVALID_REQUEST", /2 chunks, not 3/));
});

Deno.test("a write grant writes and does not read; a read grant reads and does not write", () => {
  const write = signGrant(key, [blobA], NOW + 60_000, "write");
  const read = signGrant(key, [blobA], NOW + 60_000);
  const chunk = `${blobA}-100000`;
  assert.equal(write.mode, "write");
  assert.ok(!("mode" in read), "a read grant has no mode: as grants were before writes");
  checkGrant(key, write, chunk, NOW, "write");
  checkGrant(key, read, chunk, NOW, "read");
  checkGrant(key, read, chunk, NOW); // read by default
  checkGrant(key, { ...read, mode: "read" }, chunk, NOW); // "read" said aloud is the same grant
  assert.throws(() => checkGrant(key, write, chunk, NOW), fails("UNAUTHORIZED", /read/));
  assert.throws(
    () => checkGrant(key, read, chunk, NOW, "write"),
    fails("UNAUTHORIZED", /not let its holder write/),
  );
  // The mode is under the mac: a read grant cannot be made a write grant, nor the other way.
  assert.throws(
    () => checkGrant(key, { ...read, mode: "write" }, chunk, NOW, "write"),
    fails("UNAUTHORIZED", /not signed/),
  );
  assert.throws(
    () => checkGrant(key, { ...write, mode: undefined }, chunk, NOW),
    fails("UNAUTHORIZED", /not signed/),
  );
  assert.notDeepEqual(write.mac, read.mac);
  // A write grant expires, and covers its blobs only, as a read grant does.
  assert.throws(
    () => checkGrant(key, write, chunk, NOW + 60_000 + GRANT_CLOCK_SKEW_MS + 1, "write"),
    fails("UNAUTHORIZED", /expired/),
  );
  assert.throws(
    () => checkGrant(key, write, `${blobB}-0`, NOW, "write"),
    fails("UNAUTHORIZED", /does not cover/),
  );
  assert.throws(
    () => checkGrant(otherKey, write, chunk, NOW, "write"),
    fails("UNAUTHORIZED", /not signed/),
  );
});

Deno.test("parseGrant() keeps a grant's mode, leaves out a null one and refuses others", () => {
  const write = signGrant(key, [blobA], NOW, "write");
  assert.equal(parseGrant(write).mode, "write");
  assert.equal(parseGrant({ ...write, mode: "read" }).mode, "read");
  assert.ok(!("mode" in parseGrant({ ...write, mode: null })));
  for (const mode of ["admin", "WRITE", 1, true, ["write"]]) {
    assert.throws(
      () => parseGrant({ ...write, mode }),
      fails("INVALID_REQUEST", /mode/),
      String(mode),
    );
  }
});

Deno.test("parseDataRequest() checks a write's id, chunk, crc32 and grant shape", () => {
  const grant = signGrant(key, [blobA], NOW, "write");
  const good = { op: "write", id: 9, chunk: `${blobA}-200000`, crc32: 0xffff_ffff, grant };
  assert.deepEqual(parseDataRequest(good), good);
  assert.deepEqual(parseDataRequest({ ...good, crc32: 0, id: 0 }), { ...good, crc32: 0, id: 0 });
  // A write says no size (its bytes do) and carries nothing else.
  const extra = parseDataRequest({ ...good, size: 5, bytes: new Uint8Array(5), path: "/x" });
  assert.deepEqual(extra, good);
  const bad: [string, Record<string, unknown>][] = [
    ["negative id", { id: -1 }],
    ["id over 32 bits", { id: 2 ** 32 }],
    ["no chunk", { chunk: undefined }],
    ["a blob id for a chunk", { chunk: blobA }],
    ["a path for a chunk", { chunk: `../${blobA}-0` }],
    ["a chunk offset with a leading zero", { chunk: `${blobA}-0100000` }],
    ["no crc32: a write always has one", { crc32: undefined }],
    ["a null crc32", { crc32: null }],
    ["negative crc32", { crc32: -1 }],
    ["crc32 over 32 bits", { crc32: 2 ** 32 }],
    ["text crc32", { crc32: "12" }],
    ["no grant", { grant: undefined }],
    ["a grant of a bad mode", { grant: { ...grant, mode: "all" } }],
    ["a grant with a short mac", { grant: { ...grant, mac: grant.mac.subarray(2) } }],
  ];
  for (const [why, change] of bad) {
    assert.throws(() => parseDataRequest({ ...good, ...change }), fails("INVALID_REQUEST"), why);
  }
});

Deno.test("parsePlan() takes a plan that places each of the file's chunks on ranks with a data port", () => {
  const grant = signGrant(key, [blobA], NOW, "write");
  const nodes = { "1": "127.0.0.1:4001", "2": "[::1]:4002", "3": "node-3.example:80" };
  const plan = { blob: blobA, ranks: [[1, 2], [2, 3], [3]], nodes, grant };
  assert.deepEqual(parsePlan(plan, 3), plan);
  assert.throws(() => parsePlan(plan, 2), fails("INVALID_REQUEST", /3 chunks, not 2/));
  assert.throws(() => parsePlan(plan, 4), fails("INVALID_REQUEST", /3 chunks, not 4/));
  const bad: [string, unknown][] = [
    ["not a map", [plan]],
    ["null", null],
    ["no blob", { ...plan, blob: undefined }],
    ["a chunk id for the blob", { ...plan, blob: `${blobA}-0` }],
    ["an upper-case blob", { ...plan, blob: blobA.toUpperCase() }],
    ["ranks not a list", { ...plan, ranks: { 0: [1] } }],
    ["no ranks", { ...plan, ranks: undefined }],
    ["a chunk on no rank", { ...plan, ranks: [[1, 2], [], [3]] }],
    ["a chunk's ranks not a list", { ...plan, ranks: [[1, 2], 2, [3]] }],
    ["a rank without a data port", { ...plan, ranks: [[1, 2], [2, 4], [3]] }],
    ["rank 0", { ...plan, ranks: [[0], [2], [3]] }],
    ["nodes not a map", { ...plan, nodes: ["127.0.0.1:4001"] }],
    ["a bad node address", { ...plan, nodes: { ...nodes, "2": "http://x:1" } }],
    ["a bad node rank", { ...plan, nodes: { ...nodes, "0": "127.0.0.1:4000" } }],
    ["no grant", { ...plan, grant: undefined }],
    ["a grant of no blobs", { ...plan, grant: { ...grant, blobs: [] } }],
  ];
  for (const [why, value] of bad) {
    assert.throws(() => parsePlan(value, 3), fails("INVALID_REQUEST"), why);
  }
});
