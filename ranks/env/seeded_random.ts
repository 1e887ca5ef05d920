/**
 * Randomness from a seed, for tests and the simulator: the same seed gives the same bytes on every
 * run and platform, so a failing run can be replayed. Not for secrets (use `systemRandom`).
 *
 * The generator is xoshiro128** (Blackman and Vigna, 2018): 128 bits of state, 32-bit outputs,
 * period 2^128 - 1. The seed, a safe integer, sets the state through splitmix64, as the authors
 * advise; its first output alone is a one-to-one function of the seed, so distinct seeds give
 * distinct states.
 *
 * @module
 */

import { assert } from "../../protocol/errors.ts";
import type { Random } from "./env.ts";

/** A `Random` whose bytes are fixed by a seed; one byte stream however `fill()` slices it. */
export class SeededRandom implements Random {
  #state: Uint32Array;
  /** Bytes of the last output word not yet handed out, low byte first. */
  #spare = 0;
  #spareBytes = 0;

  /** A generator seeded by `seed`; asserts it is a safe integer. */
  constructor(seed: number) {
    assert(Number.isSafeInteger(seed), `seed ${seed} must be a safe integer`);
    const next = splitmix64(BigInt.asUintN(64, BigInt(seed)));
    const [a, b] = [next(), next()];
    this.#state = Uint32Array.of(low32(a), high32(a), low32(b), high32(b));
    if (this.#state.every((word) => word === 0)) this.#state[0] = 1; // the one state that sticks
  }

  /**
   * A generator from xoshiro128**'s four state words, as the reference implementation takes them
   * (to check it against its published outputs, or to resume a saved state). Asserts they are
   * 32-bit unsigned integers, not all zero.
   */
  static fromState(state: readonly [number, number, number, number]): SeededRandom {
    assert(state.every((word) => word === word >>> 0), "state words must be 32-bit unsigned");
    assert(state.some((word) => word !== 0), "state must not be all zero");
    const random = new SeededRandom(0);
    random.#state = Uint32Array.from(state);
    return random;
  }

  /** The next 32-bit output as an unsigned integer (drops any bytes left of the last one). */
  nextUint32(): number {
    this.#spareBytes = 0;
    return this.#next();
  }

  /** Fills `bytes` with the next bytes of the stream (each output word low byte first). */
  fill<T extends Uint8Array>(bytes: T): T {
    let i = 0;
    while (i < bytes.length && this.#spareBytes > 0) i = this.#takeSpare(bytes, i);
    for (; i + 4 <= bytes.length; i += 4) {
      const word = this.#next();
      bytes[i] = word;
      bytes[i + 1] = word >>> 8;
      bytes[i + 2] = word >>> 16;
      bytes[i + 3] = word >>> 24;
    }
    if (i < bytes.length) {
      this.#spare = this.#next();
      this.#spareBytes = 4;
      while (i < bytes.length) i = this.#takeSpare(bytes, i);
    }
    return bytes;
  }

  #takeSpare(bytes: Uint8Array, i: number): number {
    bytes[i] = this.#spare;
    this.#spare >>>= 8;
    this.#spareBytes--;
    return i + 1;
  }

  /** xoshiro128**: one output, then the state moves on. */
  #next(): number {
    const s = this.#state;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** splitmix64 (Vigna's seeder) from `seed`; construction only, so BigInt's cost does not matter. */
function splitmix64(seed: bigint): () => bigint {
  let state = seed;
  return () => {
    state = BigInt.asUintN(64, state + 0x9e3779b97f4a7c15n);
    let z = state;
    z = BigInt.asUintN(64, (z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n);
    z = BigInt.asUintN(64, (z ^ (z >> 27n)) * 0x94d049bb133111ebn);
    return z ^ (z >> 31n);
  };
}

function low32(word: bigint): number {
  return Number(BigInt.asUintN(32, word));
}

function high32(word: bigint): number {
  return Number(word >> 32n);
}
