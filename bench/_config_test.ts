import assert from "node:assert/strict";
import { parseConfig } from "./_config.ts";

const MiB = 1024 * 1024;

Deno.test("parseConfig() defaults to the full default suite", () => {
  const config = parseConfig([]);
  assert.equal(config.scaling, false);
  assert.equal(config.runs, 3);
  assert.equal(config.sizeBytes, 1024 * MiB);
  assert.equal(config.files, 10_000);
  assert.equal(config.clients, 16);
  assert.equal(config.listFiles, 100_000);
  assert.deepEqual(config.scalingRanks, [2, 4, 8, 16]);
  assert.deepEqual(config.scalingClients, [1, 4, 16, 64]);
});

Deno.test("parseConfig() --quick lowers the defaults, and explicit options win over it", () => {
  const quick = parseConfig(["--quick"]);
  assert.equal(quick.runs, 1);
  assert.equal(quick.files, 1_000);
  assert.equal(quick.sizeBytes, 64 * MiB);
  assert.equal(parseConfig(["--quick", "--runs", "2"]).runs, 2);
});

Deno.test("parseConfig() reads lists of ranks and clients", () => {
  const config = parseConfig(["--scaling", "--scaling-ranks", "3,5", "--scaling-clients", "8"]);
  assert.equal(config.scaling, true);
  assert.deepEqual(config.scalingRanks, [3, 5]);
  assert.deepEqual(config.scalingClients, [8]);
});

Deno.test("parseConfig() rejects a value that is not a whole number within its limit", () => {
  assert.throws(() => parseConfig(["--runs", "0"]), {
    name: "RangeError",
    message: '--runs must be a whole number from 1 to 100, got "0"',
  });
  assert.throws(() => parseConfig(["--scaling-clients", "1,x"]), {
    name: "RangeError",
    message: '--scaling-clients must be a whole number from 1 to 256, got "x"',
  });
});

Deno.test("parseConfig() takes one suite at a time, and --hosts for --multi-host", () => {
  const remote = parseConfig(["--remote-nodes"]);
  assert.equal(remote.remoteNodes, true);
  assert.equal(remote.clients, 16);
  const hosts = parseConfig(["--multi-host", "--hosts", "2,3"]);
  assert.equal(hosts.multiHost, true);
  assert.deepEqual(hosts.hosts, [2, 3]);
  assert.equal(hosts.clients, 8);
  assert.deepEqual(parseConfig([]).hosts, [2, 4, 8]);
  assert.throws(() => parseConfig(["--scaling", "--multi-host"]), {
    name: "RangeError",
    message: "--scaling, --remote-nodes, --multi-host and --s3 each run a suite of their own",
  });
  assert.throws(() => parseConfig(["--multi-host", "--hosts", "2,33"]), {
    name: "RangeError",
    message: '--hosts must be a whole number from 1 to 32, got "33"',
  });
});
