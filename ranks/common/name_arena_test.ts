import assert from "node:assert/strict";
import { hashOf } from "./hex_bytes.ts";
import { NameArena, NAMES_SLAB_BYTES } from "./name_arena.ts";

Deno.test("NameArena.hash() is hashOf() of the name's bytes, in every slab and after compacting", () => {
  const arena = new NameArena();
  const utf8 = new TextEncoder();
  const names: { bytes: Uint8Array; address: number }[] = [];
  // Enough names to fill the first slab as it doubles and spill into more.
  for (let i = 0; names.length === 0 || names.at(-1)!.address < 2 * NAMES_SLAB_BYTES; i++) {
    const bytes = utf8.encode(`many/d${i % 100}/é${i}`);
    arena.makeRoom(bytes.length, "");
    names.push({ bytes, address: arena.append(bytes, bytes.length) });
  }
  const check = () => {
    for (const { bytes, address } of names) {
      assert.equal(arena.hash(address, bytes.length), hashOf(bytes, bytes.length));
    }
  };
  check();
  // Every other name freed, then the rest moved into new slabs.
  for (let i = 0; i < names.length; i += 2) arena.free(names[i].bytes.length);
  const kept = names.filter((_, i) => i % 2 === 1);
  arena.compact({
    count: kept.length,
    lengthOf: (slot) => kept[slot].bytes.length,
    addressOf: (slot) => kept[slot].address,
    setAddress: (slot, address) => (kept[slot].address = address),
  });
  names.splice(0, names.length, ...kept);
  check();
});
