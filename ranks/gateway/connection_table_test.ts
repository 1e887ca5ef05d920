import assert from "node:assert/strict";
import { DfsError } from "../../protocol/errors.ts";
import { type Admission, ConnectionTable, idlest, type Occupant } from "./connection_table.ts";

/** A connection as the table sees it, named for the assertions. */
interface Fake extends Occupant {
  name: string;
  greeted: boolean;
  busy: boolean;
  activeAt: number;
}

function fake(name: string, state: Partial<Omit<Fake, "name">> = {}): Fake {
  return { name, greeted: true, busy: false, activeAt: 0, ...state };
}

const LIMITS = { connectionsMax: 4, connectionsPerAddressMax: 2, uploadsPerAddressMax: 3 };

/** A table holding `connections`, each from its address. */
function tableOf(connections: [string, Fake][], limits = LIMITS): ConnectionTable<Fake> {
  const table = new ConnectionTable<Fake>(limits);
  for (const [address, connection] of connections) table.add(address, () => connection);
  return table;
}

/** The name of the connection `admission` closes to make room (undefined: none). */
function evicted(admission: Admission<Fake>): string | undefined {
  assert.ok(admission.admit, "admitted");
  return admission.evict?.connection.name;
}

function assertRefused(admission: Admission<Fake>, message: string): void {
  assert.ok(!admission.admit, "refused");
  assert.ok(admission.error instanceof DfsError);
  assert.equal(admission.error.code, "UNAVAILABLE");
  assert.equal(admission.error.message, message);
}

Deno.test("idlest() picks a connection without a handshake first, then the one quiet longest", () => {
  const quiet = fake("quiet", { activeAt: 1 });
  const recent = fake("recent", { activeAt: 5 });
  const silent = fake("silent", { greeted: false, activeAt: 9 });
  const oldSilent = fake("old silent", { greeted: false, activeAt: 8 });
  assert.equal(idlest([recent, quiet]), quiet);
  assert.equal(idlest([recent, silent, quiet]), silent);
  assert.equal(idlest([silent, quiet, oldSilent]), oldSilent);
});

Deno.test("idlest() never picks a connection with a request in flight", () => {
  const busy = fake("busy", { busy: true, greeted: false, activeAt: 0 });
  const idle = fake("idle", { activeAt: 100 });
  assert.equal(idlest([busy, idle]), idle);
  assert.equal(idlest([busy]), undefined);
});

Deno.test("ConnectionTable.admit() admits without closing anything below both limits", () => {
  const table = tableOf([["10.0.0.1", fake("a")], ["10.0.0.2", fake("b")]]);
  assert.equal(evicted(table.admit("10.0.0.1")), undefined);
  assert.equal(evicted(table.admit("10.0.0.3")), undefined);
});

Deno.test("ConnectionTable.admit() makes room at the server's limit by closing the idlest connection", () => {
  const table = tableOf([
    ["10.0.0.1", fake("a1", { activeAt: 3 })],
    ["10.0.0.1", fake("a2", { activeAt: 1, busy: true })],
    ["10.0.0.2", fake("b1", { activeAt: 2 })],
    ["10.0.0.3", fake("c1", { activeAt: 4 })],
  ]);
  const admission = table.admit("10.0.0.4");
  assert.equal(evicted(admission), "b1");
  assert.ok(admission.admit && admission.evict);
  assert.equal(admission.evict.reason.code, "UNAVAILABLE");
  assert.equal(
    admission.evict.reason.message,
    "Connection closed to make room for a new one: server is at its limit of 4 connections " +
      "and this one was the idlest",
  );
});

Deno.test("ConnectionTable.admit() closes the address's own idlest connection at its limit", () => {
  const table = tableOf([
    ["10.0.0.1", fake("a1", { activeAt: 5 })],
    ["10.0.0.1", fake("a2", { activeAt: 6 })],
    ["10.0.0.2", fake("b1", { activeAt: 1 })],
  ]);
  const admission = table.admit("10.0.0.1");
  assert.equal(evicted(admission), "a1", "not b1, though it is quieter: another address");
  assert.ok(admission.admit && admission.evict);
  assert.match(admission.evict.reason.message, /client address 10\.0\.0\.1 is at its limit of 2/);
});

Deno.test("ConnectionTable.admit() refuses as UNAVAILABLE only when every candidate is busy", () => {
  const table = tableOf([
    ["10.0.0.1", fake("a1", { busy: true })],
    ["10.0.0.1", fake("a2", { busy: true })],
    ["10.0.0.2", fake("b1", { busy: true })],
    ["10.0.0.3", fake("c1", { busy: true })],
  ]);
  assertRefused(
    table.admit("10.0.0.1"),
    "Client address 10.0.0.1 is at its limit of 2 connections, each with a request in flight",
  );
  assertRefused(
    table.admit("10.0.0.9"),
    "Server is at its limit of 4 connections, each with a request in flight",
  );
});

Deno.test("ConnectionTable counts connections by address and forgets them once deleted", () => {
  const a1 = fake("a1");
  const a2 = fake("a2");
  const table = tableOf([["10.0.0.1", a1], ["10.0.0.1", a2]]);
  assert.deepEqual([table.size, table.countOf("10.0.0.1")], [2, 2]);
  table.delete(a1);
  table.delete(a1); // again: nothing
  assert.deepEqual([table.size, table.countOf("10.0.0.1")], [1, 1]);
  table.delete(a2);
  assert.deepEqual([table.size, table.countOf("10.0.0.1")], [0, 0]);
});

Deno.test("ConnectionTable gives every connection of an address one upload share of its limit", () => {
  const shares: unknown[] = [];
  const table = new ConnectionTable<Fake>(LIMITS);
  for (const [address, name] of [["10.0.0.1", "a1"], ["10.0.0.1", "a2"], ["10.0.0.2", "b1"]]) {
    table.add(address, (share) => {
      shares.push(share);
      assert.equal(share.permits, LIMITS.uploadsPerAddressMax);
      return fake(name);
    });
  }
  assert.equal(shares[0], shares[1], "one share for one address");
  assert.notEqual(shares[0], shares[2], "another for another address");
});
