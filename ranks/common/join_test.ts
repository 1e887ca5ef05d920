import assert from "node:assert/strict";
import { DfsError } from "../../protocol/errors.ts";
import {
  decideJoin,
  JOIN_PROTOCOL_VERSION,
  type JoinRequest,
  newId,
  parseHello,
  parseJoin,
  parseWelcome,
} from "./join.ts";

const CLUSTER = "c".repeat(32);

function join(overrides: Partial<JoinRequest> = {}): JoinRequest {
  return {
    op: "join",
    version: JOIN_PROTOCOL_VERSION,
    nodeId: "a".repeat(32),
    clusterId: null,
    rank: null,
    zone: "z1",
    host: "host-1",
    nonce: new Uint8Array(32),
    proof: new Uint8Array(32),
    ...overrides,
  };
}

function cluster(overrides: Partial<Parameters<typeof decideJoin>[1]> = {}) {
  return {
    clusterId: CLUSTER,
    nodes: [],
    connected: new Set<string>(),
    firstRank: 4,
    ranksMax: 8,
    ...overrides,
  };
}

Deno.test("decideJoin() gives a new node the lowest free rank from firstRank", () => {
  const nodes = [{ nodeId: "b".repeat(32), rank: 4, zone: "z" }];
  assert.deepEqual(decideJoin(join(), cluster({ nodes })), { ok: true, rank: 5, known: false });
  assert.deepEqual(decideJoin(join(), cluster()), { ok: true, rank: 4, known: false });
});

Deno.test("decideJoin() gives a known node its rank back, and refuses a rank that differs", () => {
  const nodes = [{ nodeId: "a".repeat(32), rank: 6, zone: "z" }];
  const member = join({ clusterId: CLUSTER, rank: 6 });
  assert.deepEqual(decideJoin(member, cluster({ nodes })), { ok: true, rank: 6, known: true });
  const wrong = decideJoin(join({ clusterId: CLUSTER, rank: 5 }), cluster({ nodes }));
  assert.equal(wrong.ok, false);
  assert.match(
    !wrong.ok ? wrong.message : "",
    /says it is rank 5, but this cluster knows it as rank 6/,
  );
});

Deno.test("decideJoin() refuses another cluster's node, a connected id, a forgotten node and a full cluster", () => {
  const foreign = decideJoin(join({ clusterId: "e".repeat(32), rank: 4 }), cluster());
  assert.deepEqual(foreign.ok ? undefined : foreign.code, "UNAUTHORIZED");
  assert.match(
    !foreign.ok ? foreign.message : "",
    /belongs to cluster e{32}, not to this cluster c{32}/,
  );

  const connected = new Set(["a".repeat(32)]);
  const twice = decideJoin(join(), cluster({ connected }));
  assert.deepEqual(twice.ok ? undefined : twice.code, "ALREADY_EXISTS");

  const forgotten = [{ nodeId: "a".repeat(32), rank: 4, zone: "z" }];
  const back = decideJoin(join({ clusterId: CLUSTER, rank: 4 }), cluster({ forgotten }));
  assert.match(!back.ok ? back.message : "", /was forgotten by this cluster/);
  // A forgotten node's rank is not given to a new node.
  const other = join({ nodeId: "d".repeat(32) });
  assert.deepEqual(decideJoin(other, cluster({ forgotten })), { ok: true, rank: 5, known: false });

  const nodes = [4, 5, 6, 7].map((rank) => ({ nodeId: newId(), rank, zone: "z" }));
  const full = decideJoin(join(), cluster({ nodes }));
  assert.match(!full.ok ? full.message : "", /every rank below 8 is taken/);
});

Deno.test("decideJoin() lets a member rank 0 has no record of keep its rank only if it is free", () => {
  const member = join({ clusterId: CLUSTER, rank: 5 });
  assert.deepEqual(decideJoin(member, cluster()), { ok: true, rank: 5, known: false });
  const nodes = [{ nodeId: "b".repeat(32), rank: 5, zone: "z" }];
  assert.equal(decideJoin(member, cluster({ nodes })).ok, false);
  assert.equal(
    decideJoin(join({ clusterId: CLUSTER, rank: 2 }), cluster()).ok,
    false,
    "a Worker's",
  );
});

Deno.test("parseHello(), parseJoin() and parseWelcome() refuse malformed handshakes with INVALID_REQUEST", () => {
  const invalid = (e: unknown) => e instanceof DfsError && e.code === "INVALID_REQUEST";
  const other = JOIN_PROTOCOL_VERSION + 1;
  assert.throws(
    () =>
      parseHello({
        op: "hello",
        version: JOIN_PROTOCOL_VERSION,
        clusterId: "x",
        nonce: new Uint8Array(32),
      }),
    invalid,
  );
  assert.throws(
    () =>
      parseHello({ op: "hello", version: other, clusterId: CLUSTER, nonce: new Uint8Array(32) }),
    new RegExp(`version ${other}`),
  );
  assert.throws(
    () => parseHello({ op: "hello", version: 1, clusterId: CLUSTER, nonce: new Uint8Array(32) }),
    /version 1 is not/,
    "a node of the build before is refused",
  );
  assert.throws(() => parseJoin({ ...join(), zone: "a b" }), /zone is not/);
  assert.throws(() => parseJoin({ ...join(), rank: 0 }), /rank is not/);
  assert.throws(() => parseJoin({ ...join(), proof: new Uint8Array(31) }), /proof is not 32 bytes/);
  assert.throws(() => parseJoin(["join"]), invalid);
  assert.deepEqual(parseJoin(join()), join());
  assert.throws(
    () => parseWelcome({ op: "refused", code: "UNAUTHORIZED", message: "wrong cluster secret" }),
    (e) =>
      e instanceof DfsError && e.code === "UNAUTHORIZED" && e.message === "wrong cluster secret",
  );
  assert.throws(
    () => parseWelcome({ op: "welcome", rank: 0, clusterId: CLUSTER, proof: new Uint8Array(32) }),
    invalid,
  );
});

Deno.test("newId() makes 128-bit hex ids, all different", () => {
  const ids = new Set(Array.from({ length: 100 }, newId));
  assert.equal(ids.size, 100);
  for (const id of ids) assert.match(id, /^[0-9a-f]{32}$/);
});
