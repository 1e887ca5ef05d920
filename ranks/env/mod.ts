/**
 * The environment a rank runs in (`env.ts`): clock, randomness, file system and log, in one
 * object. `denoEnv()` is the real one; `FakeClock`, `SeededRandom` and `MemoryFileSystem` make
 * a run of the whole cluster in one thread repeatable from a seed.
 *
 * @module
 */

export type {
  Clock,
  DirectFile,
  DirectOpenOptions,
  DirEntry,
  Env,
  FileHandle,
  FileSystem,
  FsStats,
  Log,
  OpenOptions,
  Random,
  TimerHandle,
} from "./env.ts";
export { alignedBuffers, DIRECT_IO_ALIGN_BYTES, sharedAlignedBuffers } from "./env.ts";
export { denoEnv, denoFileSystem } from "./deno_env.ts";
export { stderrLog, systemClock, systemRandom } from "./system.ts";
export { FAKE_CLOCK_EPOCH_MS, FakeClock, type FakeClockOptions } from "./fake_clock.ts";
export { SeededRandom } from "./seeded_random.ts";
export {
  type FaultError,
  type FaultOp,
  MEMORY_FS_CAPACITY_BYTES_DEFAULT,
  MemoryFileSystem,
} from "./memory_fs.ts";
