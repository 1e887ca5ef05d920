/**
 * A real full disk for tests: a small tmpfs mounted on a temp folder (Linux, as root only).
 *
 * @module
 */

/** Whether this process may mount a tmpfs (as root), to test a full disk for real. */
export async function canMountTmpfs(): Promise<boolean> {
  if (Deno.build.os !== "linux" || Deno.uid() !== 0) return false;
  try {
    await using _ = await mountTmpfs(64 * 1024);
    return true;
  } catch {
    return false;
  }
}

/** Mounts a tmpfs of `sizeBytes` on a new temp folder; disposing unmounts and removes it. */
export async function mountTmpfs(sizeBytes: number): Promise<{ dir: string } & AsyncDisposable> {
  const dir = await Deno.makeTempDir();
  const mount = ["-t", "tmpfs", "-o", `size=${sizeBytes}`, "tmpfs", dir];
  const { success } = await new Deno.Command("mount", { args: mount, stderr: "null" }).output();
  if (!success) {
    await Deno.remove(dir);
    throw new Error(`Cannot mount a tmpfs on ${dir}`);
  }
  return {
    dir,
    async [Symbol.asyncDispose]() {
      // Lazy, so that a failed test holding a file open does not leave the mount behind.
      await new Deno.Command("umount", { args: ["--lazy", dir] }).output();
      await Deno.remove(dir);
    },
  };
}
