/**
 * A 4 GiB file goes up and comes back through the client library while the server's resident
 * memory stays under 300 MiB: both directions stream with backpressure.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { DfsClient } from "../client.ts";
import { pseudoRandomBytes } from "./_bytes.ts";
import { TestServer } from "./_server.ts";

const MiB = 1024 * 1024;
const FILE_BYTES = 4 * 1024 * MiB;
/** The bound on the server's resident memory, whatever the file size. */
const SERVER_RSS_BYTES_MAX = 300 * MiB;
/** Two replicas of the file plus slack. */
const DISK_BYTES_NEEDED = 2 * FILE_BYTES + 2 * 1024 * MiB;

async function freeBytes(dir: string): Promise<number> {
  const out = await new Deno.Command("df", { args: ["-k", "--output=avail", dir] }).output();
  return Number(new TextDecoder().decode(out.stdout).trim().split("\n").pop()) * 1024;
}

const free = await freeBytes(tmpdir());

Deno.test({
  name: `a 4 GiB file streams up and back with the server under 300 MiB resident`,
  ignore: free < DISK_BYTES_NEEDED,
  async fn() {
    await using server = await TestServer.start();
    await using client = await DfsClient.connect(server.address);
    const blocks = Array.from({ length: 8 }, (_, i) => pseudoRandomBytes(MiB, i + 1));
    let sent = 0;
    const source = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent === FILE_BYTES) return controller.close();
        const block = blocks[(sent / MiB) % blocks.length].slice();
        new DataView(block.buffer).setFloat64(0, sent); // every MiB differs
        controller.enqueue(block);
        sent += MiB;
      },
    }, { highWaterMark: 0 });
    const meta = await client.put("big.bin", source);
    assert.equal(meta.size, FILE_BYTES);
    assert.equal(meta.chunks.length, FILE_BYTES / MiB);

    const hash = createHash("sha256");
    let received = 0;
    for await (const piece of await client.get("big.bin")) {
      hash.update(piece);
      received += piece.length;
    }
    assert.equal(received, FILE_BYTES);
    assert.equal(hash.digest("hex"), meta.sha256);
    const peak = await server.peakRssBytes();
    console.log(`server peak resident memory: ${(peak / MiB).toFixed(0)} MiB`);
    assert.ok(peak < SERVER_RSS_BYTES_MAX, `server peak RSS ${(peak / MiB).toFixed(0)} MiB`);
  },
});

if (free < DISK_BYTES_NEEDED) {
  console.warn(`big_file_test: skipped, ${(free / 2 ** 30).toFixed(1)} GiB free in ${tmpdir()}`);
}

Deno.test("64 clients putting and getting 4 MiB each at once keep the server under 300 MiB", async () => {
  const CLIENTS = 64;
  const EACH_BYTES = 4 * MiB;
  await using server = await TestServer.start();
  const clients = await Promise.all(
    Array.from({ length: CLIENTS }, () => DfsClient.connect(server.address)),
  );
  try {
    const contents = clients.map((_, i) => pseudoRandomBytes(EACH_BYTES, i + 1));
    await Promise.all(clients.map((client, i) => client.put(`many/${i}`, contents[i])));
    const back = await Promise.all(clients.map((client, i) => client.getBytes(`many/${i}`)));
    back.forEach((bytes, i) => assert.ok(Buffer.from(bytes).equals(contents[i]), `many/${i}`));
    const peak = await server.peakRssBytes();
    console.log(`server peak resident memory, ${CLIENTS} clients: ${(peak / MiB).toFixed(0)} MiB`);
    assert.ok(peak < SERVER_RSS_BYTES_MAX, `server peak RSS ${(peak / MiB).toFixed(0)} MiB`);
  } finally {
    for (const client of clients) client.close();
  }
});
