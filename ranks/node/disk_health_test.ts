import assert from "node:assert/strict";
import { DfsError } from "../../protocol/errors.ts";
import { MemoryFileSystem } from "../env/memory_fs.ts";
import {
  DiskWatch,
  isDiskError,
  isNotFound,
  missingPath,
  nodeFailure,
  osCodesOf,
  otherDevice,
  probeWrite,
} from "./disk_health.ts";

/** An error as Deno raises it for an OS error `code`, wrapped the way the stores wrap it. */
function wrapped(code: string): DfsError {
  const os = Object.assign(new Error(`${code} (os error)`), { code });
  return new DfsError("UNAVAILABLE", `Cannot store chunk x: ${os.message}`, { cause: os });
}

Deno.test("isDiskError() takes I/O errors and a read-only file system for a failed disk, a full one not", () => {
  for (const code of ["EIO", "EROFS", "ENODEV", "ENXIO", "ESTALE", "EUCLEAN"]) {
    assert.ok(isDiskError(wrapped(code)), code);
  }
  for (const code of ["ENOSPC", "ENOENT", "EACCES"]) assert.ok(!isDiskError(wrapped(code)), code);
  assert.deepEqual(osCodesOf(wrapped("EIO")), ["EIO"]);
  assert.ok(!isDiskError("EIO"), "only errors carry codes");
});

Deno.test("isNotFound() sees Deno's NotFound through the errors that wrap it", () => {
  const cause = new Deno.errors.NotFound("No such file or directory (os error 2)");
  assert.ok(isNotFound(new DfsError("NOT_FOUND", "Cannot read chunk x", { cause })));
  assert.ok(isNotFound(wrapped("ENOENT")));
  assert.ok(!isNotFound(wrapped("EIO")));
});

Deno.test("missingPath() says which folder or file is gone, or is not what it should be", async () => {
  const fs = new MemoryFileSystem();
  await fs.mkdir("/n/chunks", { recursive: true });
  (await fs.open("/n/meta.log", { write: true, create: true })).close();
  const paths = { folders: ["/n", "/n/chunks"], files: ["/n/meta.log"] };
  assert.equal(missingPath(fs, paths), undefined);
  assert.equal(
    missingPath(fs, { folders: ["/n/meta.log"], files: [] }),
    '"/n/meta.log" is not a folder',
  );
  await fs.remove("/n", { recursive: true });
  assert.equal(missingPath(fs, paths), '"/n" is gone');
});

Deno.test("otherDevice() refuses a folder that moved to another device since start", () => {
  const fs = new MemoryFileSystem({ device: 7 });
  assert.equal(otherDevice(fs, "/", undefined), undefined, "nothing to compare with");
  assert.equal(otherDevice(fs, "/", 7), undefined);
  assert.match(otherDevice(fs, "/", 8) ?? "", /^"\/" is on device 7, not on device 8 .*unmounted/);
});

Deno.test("DiskWatch fails once, for the first reason, and answers every later call with it", async () => {
  const fs = new MemoryFileSystem();
  await fs.mkdir("/n");
  const logged: string[] = [];
  const log: { failure?: DfsError } = {};
  const watch = new DiskWatch(3, {
    fs,
    log: { error: (message) => void logged.push(message) },
    folders: ["/n"],
    files: [],
    logFailure: () => log.failure,
  });
  const full = wrapped("ENOSPC");
  assert.equal(watch.failedBy(full), full, "a full disk is the call's error, not a failure");
  watch.check();
  assert.equal(watch.failure, undefined);
  const failure = watch.failedBy(wrapped("EIO"));
  assert.deepEqual(failure, nodeFailure(3, "Cannot store chunk x: EIO (os error)"));
  assert.equal((failure as DfsError).code, "NODE_FAILED");
  log.failure = new DfsError("UNAVAILABLE", "the log file was removed under the node");
  watch.check();
  assert.throws(() => watch.throwIfFailed(), { message: /EIO/ }, "the first reason stays");
  assert.deepEqual(logged, [
    "dfs: rank 3: Disk of rank 3 failed: Cannot store chunk x: EIO (os error); it stops serving",
  ]);
});

Deno.test("DiskWatch.check() fails the disk when its log cannot be appended to, or a folder is gone", async () => {
  const fs = new MemoryFileSystem();
  await fs.mkdir("/n");
  const watchOf = (logFailure?: DfsError) =>
    new DiskWatch(1, {
      fs,
      log: { error() {} },
      folders: ["/n"],
      files: [],
      logFailure: () => logFailure,
    });
  const broken = watchOf(new DfsError("UNAVAILABLE", "log cut"));
  broken.check();
  assert.match(broken.failure?.message ?? "", /log cut/);
  const gone = watchOf();
  await fs.remove("/n");
  gone.check();
  assert.match(gone.failure?.message ?? "", /"\/n" is gone/);
});

Deno.test("probeWrite() leaves nothing behind, and says a disk that does not take a write", async () => {
  const fs = new MemoryFileSystem();
  await fs.mkdir("/n");
  await probeWrite(fs, "/n/.probe");
  assert.deepEqual(await Array.fromAsync(fs.readDir("/n")), []);
  fs.failNext("/n", "write", "EIO");
  await assert.rejects(probeWrite(fs, "/n/.probe"), {
    name: "DfsError",
    code: "UNAVAILABLE",
    message: /^Disk does not take a write at "\/n\/\.probe": Input\/output error/,
  });
});
