/**
 * Handshake and idle timeouts, `--connections-max` and `--requests-inflight-max` close or refuse
 * only the client that went over them: a healthy client that keeps asking is never refused, and
 * the stored file, the chunks on disk and the server's memory are checked after every step.
 * (`fair_limits_test.ts` has the rest of the connection limits: which connection makes room.)
 */

import assert from "node:assert/strict";
import { DfsClient } from "../client.ts";
import { encodeFrame } from "../protocol/frame.ts";
import { PROTOCOL_VERSION } from "../protocol/limits.ts";
import { pseudoRandomBytes } from "./_bytes.ts";
import {
  assertNotStored,
  checkBystanders,
  expectServes,
  STORED,
  STORED_NAME,
} from "./_bystanders.ts";
import {
  describeFrame,
  expectClosed,
  expectError,
  type RawConnection,
  rawConnection,
  REPLY_TIMEOUT_MS,
} from "./_frames.ts";
import { TestServer } from "./_server.ts";
import { sleep, withTimeout } from "./_wait.ts";

Deno.test("timeouts and connection limits close or refuse only the offending client", async (t) => {
  const HANDSHAKE_MS = 500;
  const IDLE_MS = 1000;
  const CONNECTIONS_MAX = 8;
  const INFLIGHT_MAX = 4;
  await using server = await TestServer.start({
    extraArgs: [
      "--handshake-timeout-ms",
      String(HANDSHAKE_MS),
      "--idle-timeout-ms",
      String(IDLE_MS),
      "--connections-max",
      String(CONNECTIONS_MAX),
      "--requests-inflight-max",
      String(INFLIGHT_MAX),
    ],
  });
  await using healthy = await DfsClient.connect(server.address);
  const stored = await healthy.put(STORED_NAME, STORED);
  // The healthy client is never idle for the idle timeout: it asks for the stored file's metadata
  // every IDLE_MS / 4 on its one connection, which must never fail.
  let healthyRequests = 0;
  const keepAlive = new AbortController();
  const healthyLoop = (async () => {
    while (!keepAlive.signal.aborted) {
      assert.deepEqual(await healthy.meta(STORED_NAME), stored);
      healthyRequests++;
      await sleep(IDLE_MS / 4);
    }
  })();
  healthyLoop.catch(() => keepAlive.abort());
  const bystanders = async () => {
    assert.ok(!keepAlive.signal.aborted, "the healthy client's requests all succeeded");
    await checkBystanders(server, healthy, stored);
  };

  /**
   * The server closes `raw`, at most telling it first that it made room for a new connection
   * (a connection closed at the handshake timeout is told nothing).
   */
  const expectGone = async (raw: RawConnection) => {
    const outcome = await withTimeout(
      raw.next().then((frame) => ({ frame }), () => ({ frame: null })),
      { timeoutMs: REPLY_TIMEOUT_MS, what: "the server to close the connection" },
    );
    if (outcome.frame !== null) {
      assert.deepEqual(
        [outcome.frame.op, outcome.frame.id, outcome.frame.code],
        ["error", 0, "UNAVAILABLE"],
        describeFrame(outcome.frame),
      );
      assert.match(String(outcome.frame.message), /^Connection closed to make room for a new one/);
      await expectClosed(raw);
    }
  };

  /** Milliseconds until the server closes `raw`, which must send no frame first. */
  const closedAfter = async (raw: RawConnection) => {
    const started = Date.now();
    await expectClosed(raw, { timeoutMs: 5_000 });
    return Date.now() - started;
  };

  await t.step(
    `connections that send nothing are closed silently after the handshake timeout`,
    async () => {
      const raws = await Promise.all(
        Array.from({ length: 5 }, () => rawConnection(server.address)),
      );
      const times = await Promise.all(raws.map(closedAfter));
      for (const raw of raws) raw.close();
      for (const ms of times) {
        assert.ok(ms >= HANDSHAKE_MS - 50 && ms < HANDSHAKE_MS + 2000, `closed after ${ms} ms`);
      }
      await bystanders();
    },
  );

  await t.step("half a hello, trickled, is closed after the handshake timeout", async () => {
    using raw = await rawConnection(server.address);
    const started = Date.now();
    const hello = encodeFrame({ op: "hello", version: PROTOCOL_VERSION });
    const closed = closedAfter(raw);
    for (let i = 0; i < hello.length - 1; i++) {
      try {
        await raw.sendBytes(hello.subarray(i, i + 1));
      } catch {
        break; // already closed
      }
      await sleep(100);
      if (Date.now() - started > HANDSHAKE_MS + 2000) break;
    }
    const ms = await closed;
    assert.ok(ms >= HANDSHAKE_MS - 50 && ms < HANDSHAKE_MS + 2000, `closed after ${ms} ms`);
    await bystanders();
  });

  await t.step(
    "after the hello, silence or a trickled frame is closed after the idle timeout",
    async () => {
      {
        using raw = await rawConnection(server.address, { hello: true });
        const ms = await closedAfter(raw);
        assert.ok(
          ms >= IDLE_MS - 50 && ms < IDLE_MS + 2000,
          `idle connection closed after ${ms} ms`,
        );
      }
      {
        // The server's idle clock starts when it answers the hello, which under load may be well
        // before this side sees the answer: that time is allowed for below.
        const connecting = Date.now();
        using raw = await rawConnection(server.address, { hello: true });
        const helloMs = Date.now() - connecting;
        const started = Date.now();
        const closed = closedAfter(raw);
        const meta = encodeFrame({ op: "meta", id: 1, name: STORED_NAME });
        for (let i = 0; i < meta.length - 1; i++) {
          try {
            await raw.sendBytes(meta.subarray(i, i + 1));
          } catch {
            break;
          }
          await sleep(150);
          if (Date.now() - started > IDLE_MS + 2000) break;
        }
        const ms = await closed;
        assert.ok(
          ms >= IDLE_MS - 50 - helloMs && ms < IDLE_MS + 2000,
          `trickling connection closed after ${ms} ms (the hello took ${helloMs} ms)`,
        );
      }
      await bystanders();
    },
  );

  await t.step(
    `connections over --connections-max ${CONNECTIONS_MAX} close those that said nothing, not a healthy client`,
    async () => {
      // The healthy client holds one connection; fill the rest with connections that say nothing.
      const silent: RawConnection[] = [];
      for (let i = 0; i < CONNECTIONS_MAX - 1; i++) {
        silent.push(await rawConnection(server.address));
      }
      const newcomers: RawConnection[] = [];
      try {
        for (let i = 0; i < 3; i++) {
          newcomers.push(await rawConnection(server.address, { hello: true }));
          await expectServes(newcomers[i], i + 1, stored);
        }
        await using late = await withTimeout(DfsClient.connect(server.address), {
          timeoutMs: REPLY_TIMEOUT_MS,
          what: "a connection",
        });
        assert.deepEqual(await late.meta(STORED_NAME), stored);
        // The oldest silent ones made room (or met the handshake timeout first); the newcomers
        // and the healthy client are served on.
        for (const raw of silent.slice(0, 4)) await expectGone(raw);
        for (const [i, raw] of newcomers.entries()) await expectServes(raw, i + 10, stored);
        assert.deepEqual(await healthy.meta(STORED_NAME), stored);
      } finally {
        for (const raw of [...silent, ...newcomers]) raw.close();
      }
      await sleep(100);
      await bystanders();
    },
  );

  await t.step(
    `one request over --requests-inflight-max ${INFLIGHT_MAX} is refused with UNAVAILABLE`,
    async () => {
      using raw = await rawConnection(server.address, { hello: true });
      for (let id = 1; id <= INFLIGHT_MAX; id++) {
        await raw.send({ op: "put", id, name: `inflight/${id}` });
        await raw.send({ op: "data", id, bytes: pseudoRandomBytes(100, id) });
      }
      const busy = /^Connection is at its limit of 4 requests in flight$/;
      await raw.send({ op: "meta", id: 10, name: STORED_NAME });
      await expectError(raw, { id: 10, code: "UNAVAILABLE", message: busy });
      await raw.send({ op: "put", id: 11, name: "inflight/over" });
      await expectError(raw, { id: 11, code: "UNAVAILABLE", message: busy });
      // A refused put is closed by the client with abort, as the client library does: the
      // server drops its data frames until then.
      await raw.send({ op: "data", id: 11, bytes: new Uint8Array(10) });
      await raw.send({ op: "abort", id: 11 });
      // Other connections have their own budget.
      assert.deepEqual(await healthy.meta(STORED_NAME), stored);
      // Finishing one request frees its slot.
      await raw.send({ op: "end", id: 1 });
      const ok = await withTimeout(raw.next(), {
        timeoutMs: REPLY_TIMEOUT_MS,
        what: "the put's answer",
      });
      assert.deepEqual([ok.op, ok.id], ["ok", 1], describeFrame(ok));
      await sleep(50);
      await expectServes(raw, 12, stored);
      raw.close();
      await sleep(200);
      await assertNotStored(healthy, "inflight/over");
      await assertNotStored(healthy, "inflight/2");
      await bystanders();
    },
  );

  keepAlive.abort();
  await healthyLoop;
  assert.ok(healthyRequests > 10, `the healthy client made ${healthyRequests} requests`);
});
