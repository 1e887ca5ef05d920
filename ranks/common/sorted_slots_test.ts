import assert from "node:assert/strict";
import { Prng } from "../../tests/_bytes.ts";
import {
  compareUtf8AsUtf16,
  type SlotNames,
  SORT_BUILD_ATTEMPTS_MAX,
  SORTED_SIDE_SLOTS_MAX,
  SORTED_STALE_SLOTS_MAX,
  SortedSlots,
} from "./sorted_slots.ts";

/** Names in slots as a column store keeps them: a freed slot is the next one reused. */
class Store implements SlotNames {
  names: (string | undefined)[] = [];
  #free: number[] = [];
  #slots = new Map<string, number>();
  order: SortedSlots = new SortedSlots(this);

  slotsUsed(): number {
    return this.names.length;
  }

  isLive(slot: number): boolean {
    return this.names[slot] !== undefined;
  }

  compare(a: number, b: number): number {
    const [x, y] = [this.names[a]!, this.names[b]!];
    return x < y ? -1 : x > y ? 1 : 0;
  }

  add(name: string): number {
    const slot = this.#free.pop() ?? this.names.length;
    this.names[slot] = name;
    this.#slots.set(name, slot);
    this.order.added(slot);
    return slot;
  }

  remove(name: string): number {
    const slot = this.#slots.get(name)!;
    this.#slots.delete(name);
    this.names[slot] = undefined;
    this.#free.push(slot);
    this.order.removed(slot);
    return slot;
  }

  /** The names in the order's walk, after `after` if given. */
  walk(after?: string): string[] {
    const out: string[] = [];
    this.order.walk(
      (slot) => after !== undefined && this.names[slot]! <= after,
      (slot) => {
        out.push(this.names[slot]!);
        return true;
      },
    );
    return out;
  }

  /** The live names in slot order, without building the order. */
  walkUnbuilt(): string[] {
    return this.names.filter((n): n is string => n !== undefined);
  }

  /** Every live name, sorted with JavaScript's `<`. */
  sorted(after?: string): string[] {
    return [...this.#slots.keys()].filter((n) => after === undefined || n > after).sort();
  }
}

Deno.test("compareUtf8AsUtf16() orders UTF-8 bytes as JavaScript orders the strings", () => {
  const utf8 = new TextEncoder();
  const sign = (n: number) => Math.sign(n);
  const compare = (x: string, y: string) => {
    const [a, b] = [utf8.encode(x), utf8.encode(y)];
    return sign(compareUtf8AsUtf16(a, 0, a.length, b, 0, b.length));
  };
  // Byte order puts U+E000..U+FFFF before the characters above U+FFFF; UTF-16 after.
  assert.equal(compare("\u{1F600}", "\uE000"), -1);
  assert.equal(compare("a\uFFFD", "a\u{10000}"), 1);
  assert.equal(compare("\uD7FF", "\u{10000}"), -1);
  assert.equal(compare("ab", "abc"), -1);
  const alphabet = ["a", "b", "/", "é", "\u4E2D", "\uD7FF", "\uE000", "\uFFFD", "\u{10000}", "😀"];
  const random = new Prng(7);
  const word = () => Array.from({ length: random.int(5) }, () => random.pick(alphabet)).join("");
  for (let i = 0; i < 5000; i++) {
    const [x, y] = [word(), word()];
    assert.equal(compare(x, y), x < y ? -1 : x > y ? 1 : 0, `${x} vs ${y}`);
  }
});

Deno.test("SortedSlots keeps a freed slot reused by another name in its new place", () => {
  const store = new Store();
  for (const name of ["a", "b", "c"]) store.add(name);
  assert.deepEqual(store.walk(), ["a", "b", "c"]); // sorts: the order is kept from now on
  const freed = store.remove("b");
  assert.equal(store.add("z"), freed, "the freed slot is reused");
  assert.deepEqual(store.walk(), ["a", "c", "z"]);
  assert.deepEqual(store.walk("a"), ["c", "z"]);
  // Merging the side list must drop the stale entry first, or "z" would be listed twice.
  for (let i = 0; i <= SORTED_SIDE_SLOTS_MAX; i++) store.add(`m${String(i).padStart(5, "0")}`);
  const walked = store.walk();
  assert.deepEqual(walked, store.sorted());
  assert.equal(walked.filter((n) => n === "z").length, 1);
  // Removed again and reused while still in the side list.
  store.remove("z");
  store.add("b2");
  assert.deepEqual(store.walk(), store.sorted());
});

Deno.test("SortedSlots drops stale entries past their bound, reused slots among them", () => {
  const store = new Store();
  const name = (i: number) => `n${String(i).padStart(6, "0")}`;
  for (let i = 0; i < 2 * SORTED_STALE_SLOTS_MAX + 10; i++) store.add(name(i));
  assert.deepEqual(store.walk(), store.sorted());
  // Every other name removed, and its slot taken at once by a name sorting elsewhere.
  for (let i = 0; i <= 2 * SORTED_STALE_SLOTS_MAX; i += 2) {
    store.remove(name(i));
    if (i % 8 === 0) store.add(`a${i}`);
    if (i % 1000 === 0) assert.deepEqual(store.walk(name(i)), store.sorted(name(i)));
  }
  assert.deepEqual(store.walk(), store.sorted());
  assert.deepEqual(store.walk(name(5000)), store.sorted(name(5000)));
});

Deno.test("SortedSlots walks in name order through random adds, removes and slot reuse", () => {
  const random = new Prng(11);
  const store = new Store();
  const live = new Set<string>();
  let counter = 0;
  for (let step = 0; step < 30_000; step++) {
    // Bursts of adds and of removes: past the side list's bound and the stale bound.
    const adding = live.size < 50 ||
      (Math.floor(step / 3000) % 2 === 0 ? random.chance(0.8) : random.chance(0.2));
    if (adding) {
      const name = `${random.pick(["a", "b", "c/", "é", "😀", "\uE000"])}${
        (counter++ * 7919) % 100_003
      }`;
      if (!live.has(name)) {
        live.add(name);
        store.add(name);
      }
    } else {
      const name = [...live][random.int(Math.min(live.size, 64))];
      live.delete(name);
      store.remove(name);
    }
    if (step % 997 === 0) {
      assert.deepEqual(store.walk(), store.sorted(), `whole walk at step ${step}`);
      const after = [...live][random.int(live.size)];
      assert.deepEqual(store.walk(after), store.sorted(after), `walk after ${after}`);
      assert.deepEqual(store.walk(after + "\0"), store.sorted(after + "\0"));
    }
  }
  assert.ok(store.order.built);
});

Deno.test("SortedSlots keeps nothing before the first walk and forgets the order on reset", () => {
  const store = new Store();
  for (const name of ["q", "p"]) store.add(name);
  assert.equal(store.order.built, false);
  assert.equal(store.order.bytes, 0);
  store.remove("q");
  assert.deepEqual(store.walk(), ["p"]);
  assert.ok(store.order.built && store.order.bytes > 0);
  store.order.reset();
  assert.equal(store.order.built, false);
  store.add("o");
  assert.deepEqual(store.walk(), ["o", "p"]);
});

Deno.test("SortedSlots.walk() stops when the visit says so", () => {
  const store = new Store();
  for (const name of ["d", "a", "c", "b"]) store.add(name);
  const seen: string[] = [];
  store.order.walk(() => false, (slot) => {
    seen.push(store.names[slot]!);
    return seen.length < 2;
  });
  assert.deepEqual(seen, ["a", "b"]);
});

Deno.test("SortedSlots.build() sorts a step at a time while names come and go, and starts over when one goes", async () => {
  const random = new Prng(11);
  let counter = 0;
  const word = () => `n${random.int(1_000_000)}-${counter++}`;
  for (const removals of [false, true]) {
    const store = new Store();
    for (let i = 0; i < 1000; i++) store.add(word());
    let turns = 0;
    let removed = 0;
    const giveWay = () => {
      turns++;
      // Between steps other work goes on: names are added, and (second round) some removed.
      for (let i = 0; i < 3; i++) store.add(word());
      if (removals && removed < 5 && random.int(2) === 0) {
        store.remove(store.walkUnbuilt()[random.int(100)]);
        removed++;
      }
      return Promise.resolve();
    };
    await Promise.all([store.order.build(giveWay, 32), store.order.build(giveWay, 32)]);
    assert.ok(store.order.built);
    // Without removals it sorts in steps; with them it starts over, then sorts in one go.
    if (!removals) assert.ok(turns > 30, `it gave way ${turns} times`);
    else assert.ok(removed >= SORT_BUILD_ATTEMPTS_MAX, `${removed} names removed meanwhile`);
    assert.deepEqual(store.walk(), store.sorted(), "every live name, in order");
    // Built: a later call costs nothing and gives no way.
    const before = turns;
    await store.order.build(giveWay, 32);
    assert.equal(turns, before);
  }
  // A store of at most one step's names sorts in one go.
  const small = new Store();
  for (let i = 0; i < 20; i++) small.add(word());
  await small.order.build(() => Promise.reject(new Error("no step to give way after")), 32);
  assert.deepEqual(small.walk(), small.sorted());
});
