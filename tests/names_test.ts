/**
 * Names are keys with one spelling per text: the server refuses a name that is not in Unicode NFC
 * or holds a control character, for every operation; the CLI turns the names it reads from its
 * arguments and the local file system into NFC, and changes them in no other way.
 */

import assert from "node:assert/strict";
import { DfsClient } from "../client.ts";
import { assertDfsError } from "./_assert.ts";
import { assertOk, assertOperationalError, dfs } from "./_cli.ts";
import { TestServer } from "./_server.ts";

/** "café.txt" in NFD, as macOS spells file names: "e" then a combining acute accent. */
const CAFE_NFD = "cafe\u0301.txt";
const CAFE = CAFE_NFD.normalize("NFC");
const NOT_NFC = /^Invalid name: name is not in Unicode NFC \(normalize it with/;

Deno.test("the server refuses a name outside NFC or with a control character in every operation", async () => {
  await using server = await TestServer.start({ ranks: 2, replicas: 1 });
  await using client = await DfsClient.connect(server.address);
  await client.put(CAFE, new TextEncoder().encode("NFC"));
  const newline = /^Invalid name: name contains a control character \(U\+000A\)$/;
  for (const [bad, why] of [[CAFE_NFD, NOT_NFC], ["two\nlines", newline]] as const) {
    // Not a second file, nor a miss: the other spelling of a stored name is refused.
    await assertDfsError(client.put(bad, Uint8Array.of(1)), "INVALID_REQUEST", why);
    await assertDfsError(client.getBytes(bad), "INVALID_REQUEST", why);
    await assertDfsError(client.meta(bad), "INVALID_REQUEST", why);
    await assertDfsError(client.remove(bad), "INVALID_REQUEST", why);
    await assertDfsError(client.rename(bad, "other"), "INVALID_REQUEST", why);
    await assertDfsError(client.rename(CAFE, bad), "INVALID_REQUEST", why);
  }
  await assertDfsError(
    client.list("logs/\t"),
    "INVALID_REQUEST",
    /^Invalid name: prefix contains a control character \(U\+0009\)$/,
  );
  await assertDfsError(client.removePrefix("\u0085"), "INVALID_REQUEST", /\(U\+0085\)/);
  // A prefix outside NFC is allowed, and matches no name (they are all NFC).
  assert.deepEqual(await client.list("cafe\u0301"), []);
  assert.deepEqual((await client.list()).map((e) => e.name), [CAFE]);
  assert.equal(new TextDecoder().decode(await client.getBytes(CAFE)), "NFC");
});

Deno.test("the CLI stores and finds names in NFC whichever spelling it is given", async () => {
  await using server = await TestServer.start({ ranks: 2, replicas: 1 });
  const cwd = await Deno.makeTempDir({ prefix: "dfs-names-" });
  const run = (...args: string[]) => dfs([...args, "--server", server.address], { cwd });
  try {
    // A local file whose name is in NFD, as a file copied from macOS may be.
    await Deno.writeTextFile(`${cwd}/${CAFE_NFD}`, "hello");
    const put = await run("put", CAFE_NFD);
    assertOk(put, "put");
    assert.match(put.stdout, new RegExp(`^${CAFE}: 5 bytes`));
    assertOk(await run("put", `./${CAFE_NFD}`, `dir/${CAFE_NFD}`), "put NAME");
    const list = await run("list");
    assertOk(list, "list");
    assert.equal(list.stdout, `${CAFE}\ndir/${CAFE}\n`);
    assert.equal(list.stdout.normalize("NFC"), list.stdout);

    const meta = await run("meta", CAFE_NFD, "--json");
    assertOk(meta, "meta");
    assert.equal(JSON.parse(meta.stdout).name, CAFE);
    const get = await run("get", CAFE_NFD, "-");
    assertOk(get, "get");
    assert.equal(get.stdout, "hello");
    const listed = await run("list", "dir/cafe\u0301");
    assertOk(listed, "list PREFIX");
    assert.equal(listed.stdout, `dir/${CAFE}\n`);

    const ete = "e\u0301te\u0301";
    const mv = await run("mv", CAFE_NFD, ete);
    assertOk(mv, "mv");
    assert.equal(mv.stdout, `${CAFE} -> ${ete.normalize("NFC")}\n`);
    const rm = await run("rm", ete);
    assertOk(rm, "rm");
    assert.equal(rm.stdout, `removed ${ete.normalize("NFC")}\n`);
    assertOk(await run("rm", "--prefix", "dir/cafe\u0301"), "rm --prefix");
    assert.equal((await run("list")).stdout, "");
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("the CLI sends a name with a control character as it is, for the server to refuse", async () => {
  await using server = await TestServer.start({ ranks: 2, replicas: 1 });
  const cwd = await Deno.makeTempDir({ prefix: "dfs-names-" });
  const run = (...args: string[]) => dfs([...args, "--server", server.address], { cwd });
  try {
    await Deno.writeTextFile(`${cwd}/plain.txt`, "x");
    assertOperationalError(
      await run("put", "plain.txt", "two\nlines"),
      /^dfs: Invalid name: name contains a control character \(U\+000A\)$/m,
    );
    // A local file name with a newline is refused too, not cleaned into another name.
    await Deno.writeTextFile(`${cwd}/odd\nname.txt`, "x");
    assertOperationalError(await run("put", "odd\nname.txt"), /control character \(U\+000A\)/);
    assertOperationalError(
      await run("list", "a\tb"),
      /prefix contains a control character \(U\+0009\)/,
    );
    assertOk(await run("put", "plain.txt"), "put");
    assert.equal((await run("list")).stdout, "plain.txt\n");
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});
