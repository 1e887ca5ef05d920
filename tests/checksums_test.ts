/**
 * Checksums end to end: the server checks each data frame's CRC32 as it arrives, records the
 * client's SHA-256 for a put that promised checksums and computes its own otherwise, and a reader
 * catches bytes damaged on their way to it by the chunks' CRC32s.
 */

import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import { DfsClient } from "../client.ts";
import { encodeDataHeader } from "../protocol/frame.ts";
import { pseudoRandomBytes, sha256 } from "./_bytes.ts";
import { rawConnection } from "./_frames.ts";
import { assertNoStrayChunks, relay, TestServer } from "./_server.ts";
import { assertDfsError } from "./_assert.ts";

const MiB = 1024 * 1024;

Deno.test("the server checks CRC32s and SHA-256s of uploads", async (t) => {
  await using server = await TestServer.start();
  await using client = await DfsClient.connect(server.address);
  const data = pseudoRandomBytes(MiB + 100, 1);
  /** Sends a raw put of `data` in two frames; returns the answer to its end. */
  const rawPut = async (
    name: string,
    options: { checksums?: boolean; crcs?: (number | undefined)[]; sha256?: string },
  ) => {
    using raw = await rawConnection(server.address, { hello: true });
    await raw.send({ op: "put", id: 1, name, checksums: options.checksums });
    const pieces = [data.subarray(0, MiB), data.subarray(MiB)];
    for (const [i, piece] of pieces.entries()) {
      await raw.sendBytes(encodeDataHeader(1, piece.length, options.crcs?.[i]));
      await raw.sendBytes(piece);
    }
    await raw.send({ op: "end", id: 1, sha256: options.sha256 });
    return await raw.next();
  };
  const crcs = [crc32(data.subarray(0, MiB)), crc32(data.subarray(MiB))];

  await t.step("a frame whose CRC32 does not match is refused and nothing is stored", async () => {
    for (const bad of [[crcs[0] ^ 1, crcs[1]], [crcs[0], crcs[1] ^ 0x8000_0000]]) {
      const answer = await rawPut("crc/bad", { checksums: true, crcs: bad, sha256: sha256(data) });
      assert.equal(answer.code, "CORRUPTED");
      assert.match(answer.message as string, /a data frame arrived damaged/);
      await assertDfsError(client.meta("crc/bad"), "NOT_FOUND", /does not exist/);
    }
    await assertNoStrayChunks(server, client);
  });

  await t.step("a put promising checksums needs a CRC32 in every frame and a SHA-256", async () => {
    const noCrc = await rawPut("crc/none", { checksums: true, crcs: [crcs[0]] });
    assert.equal(noCrc.code, "INVALID_REQUEST");
    assert.match(noCrc.message as string, /promised checksums, but a data frame has no crc32/);
    const noSha = await rawPut("crc/none", { checksums: true, crcs });
    assert.equal(noSha.code, "INVALID_REQUEST");
    assert.match(noSha.message as string, /promised checksums, but its end has no sha256/);
    await assertDfsError(client.meta("crc/none"), "NOT_FOUND", /does not exist/);
  });

  await t.step(
    "with checksums the client's SHA-256 is recorded; without, the server's",
    async () => {
      const claimed = "ab".repeat(32); // not the data's: the server records it as given
      const recorded = await rawPut("crc/claimed", { checksums: true, crcs, sha256: claimed });
      assert.equal(recorded.op, "ok", JSON.stringify(recorded));
      assert.equal((await client.meta("crc/claimed")).sha256, claimed);
      // A reader checks chunks against their CRC32s, so the wrong claim does not fail the read...
      assert.deepEqual(await client.getBytes("crc/claimed"), data);
      // ...while a put without the promise is hashed by the server, and a wrong claim refused.
      const computed = await rawPut("crc/computed", { crcs });
      assert.equal(computed.op, "ok", JSON.stringify(computed));
      assert.equal((await client.meta("crc/computed")).sha256, sha256(data));
      const refused = await rawPut("crc/refused", { sha256: claimed });
      assert.equal(refused.code, "CORRUPTED");
      assert.match(refused.message as string, /does not match the client's SHA-256/);
    },
  );

  await t.step("the library sends checksums, and meta lists each chunk's CRC32", async () => {
    const meta = await client.put("crc/library", data);
    assert.equal(meta.sha256, sha256(data));
    assert.deepEqual(meta.chunks.map((c) => c.crc32), crcs);
  });
});

Deno.test("a reader catches a byte damaged between the server and itself", async () => {
  await using server = await TestServer.start();
  const data = pseudoRandomBytes(3 * MiB, 2);
  {
    await using client = await DfsClient.connect(server.address);
    await client.put("wire.bin", data);
  }
  // A proxy that flips one bit of what the server sends, well into the second chunk's bytes.
  const [, port] = server.address.split(":");
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const ranges = [{}, { start: MiB, end: 2 * MiB }, { start: 10, end: 3 * MiB - 10 }];
  const flips = [MiB + 300_000, 300_000, MiB + 300_000]; // stream offsets inside chunk 1
  const proxy = (async () => {
    for (const flipAt of flips) {
      const inbound = await listener.accept();
      const outbound = await Deno.connect({ hostname: "127.0.0.1", port: Number(port) });
      const flip = (piece: Uint8Array, at: number) => {
        if (at <= flipAt && flipAt < at + piece.length) piece[flipAt - at] ^= 0x04;
      };
      await Promise.all([relay(inbound, outbound), relay(outbound, inbound, flip)]);
    }
  })();
  const proxied = `127.0.0.1:${(listener.addr as Deno.NetAddr).port}`;
  for (const range of ranges) {
    await using client = await DfsClient.connect(proxied);
    await assertDfsError(
      client.getBytes("wire.bin", range),
      "CORRUPTED",
      /^Content of "wire\.bin" is damaged: chunk 1 does not match its CRC32$/,
    );
  }
  await proxy;
  listener.close();
});
