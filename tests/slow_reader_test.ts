/**
 * A client that stops reading a get is closed after --write-timeout-ms: it cannot hold the server's
 * buffers, or the file version it pinned, forever.
 */

import assert from "node:assert/strict";
import { DfsClient } from "../client.ts";
import { pseudoRandomBytes } from "./_bytes.ts";
import { rawConnection } from "./_frames.ts";
import { assertNoStrayChunks, expectedChunkFiles, TestServer } from "./_server.ts";
import { sleep } from "./_wait.ts";

const MiB = 1024 * 1024;

Deno.test("a client that stops reading a get is closed after the write timeout", async () => {
  await using server = await TestServer.start({ extraArgs: ["--write-timeout-ms", "300"] });
  await using client = await DfsClient.connect(server.address);
  const size = 48 * MiB;
  await client.put("big", pseudoRandomBytes(size, 1));

  using raw = await rawConnection(server.address, { hello: true });
  await raw.send({ op: "get", id: 1, name: "big" });
  await sleep(1500); // read nothing: the socket buffers fill up
  // Others are served meanwhile.
  const small = pseudoRandomBytes(1000, 2);
  await client.put("small", small);
  assert.deepEqual(await client.getBytes("small"), small);

  // Now drain: what the kernel buffered arrives, then the server's close.
  let received = 0;
  let ended = false;
  try {
    while (true) {
      const frame = await raw.next();
      if (frame.op === "data") received += (frame.bytes as Uint8Array).length;
      if (frame.op === "end") ended = true;
    }
  } catch (error) {
    assert.match(String(error), /closed|reset|Connection/i);
  }
  assert.equal(ended, false, "the stalled get did not complete");
  assert.ok(received < size, `received ${received} of ${size} bytes before the close`);

  // The version the stalled reader pinned is released once it is overwritten.
  await client.put("big", pseudoRandomBytes(MiB, 3));
  await assertNoStrayChunks(server, client);
  const expected = await expectedChunkFiles(client);
  assert.equal(expected, 2, "big has 1 chunk, 2 replicas; small is kept in the logs");
});
