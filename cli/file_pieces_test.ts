import assert from "node:assert/strict";
import { FILE_READ_BYTES, filePieces } from "./file_pieces.ts";

async function withFile(size: number, work: (path: string) => Promise<void>): Promise<void> {
  const path = await Deno.makeTempFile({ prefix: "dfs-file-pieces-" });
  try {
    await Deno.writeFile(path, new Uint8Array(size).map((_, i) => i % 251));
    await work(path);
  } finally {
    await Deno.remove(path);
  }
}

/** Lets the stream read ahead as far as it will. */
const readAhead = () => new Promise((resolve) => setTimeout(resolve, 50));

Deno.test("filePieces gives the file in fresh pieces of FILE_READ_BYTES, the last shorter", async () => {
  const size = 2 * FILE_READ_BYTES + 5;
  await withFile(size, async (path) => {
    const pieces: Uint8Array[] = [];
    for await (const piece of filePieces(await Deno.open(path))) pieces.push(piece);
    assert.deepEqual(pieces.map((p) => p.length), [FILE_READ_BYTES, FILE_READ_BYTES, 5]);
    assert.equal(new Set(pieces.map((p) => p.buffer)).size, 3, "each piece a buffer of its own");
    assert.equal(pieces[2][4], (size - 1) % 251);
  });
});

Deno.test("filePieces cancelled after its read-ahead reached the end closes the file once", async () => {
  // A put refused early cancels the stream: with the last pieces read ahead, the file is closed
  // already, and closing it again threw "Bad resource ID" in place of the server's answer.
  await withFile(1000, async (path) => {
    const stream = filePieces(await Deno.open(path));
    await readAhead();
    await stream.cancel(new Error("refused"));
  });
  await withFile(FILE_READ_BYTES + 1000, async (path) => {
    const stream = filePieces(await Deno.open(path));
    await readAhead();
    for await (const _ of stream) break;
  });
});
