import assert from "node:assert/strict";
import { given, readSettingFile, serveSecurity, uiSettings, UsageError } from "./settings.ts";

/** Asserts that `run` fails with a `UsageError` for `command` whose message is `message`. */
async function assertUsage(
  run: () => unknown,
  message: string | RegExp,
  command?: string,
): Promise<void> {
  await assert.rejects(async () => await run(), (error: unknown) => {
    assert.ok(error instanceof UsageError, String(error));
    if (typeof message === "string") assert.equal(error.message, message);
    else assert.match(error.message, message);
    assert.equal(error.command, command);
    return true;
  });
}

Deno.test("given() passes a value or its absence through and refuses an empty one, naming it", async () => {
  const setting = { source: "--tls-ca", wants: "a PEM file", command: "list" };
  assert.equal(given("ca.pem", setting), "ca.pem");
  assert.equal(given(undefined, setting), undefined);
  await assertUsage(() => given("", setting), "--tls-ca is empty: it takes a PEM file", "list");
  await assertUsage(
    () => given("", { source: "DFS_TLS_CA", wants: "a PEM file" }),
    "DFS_TLS_CA is set but empty: set it to a PEM file, or unset it",
  );
});

Deno.test("readSettingFile() reads a file and says why one cannot be read", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dfs-settings-" });
  try {
    await Deno.writeTextFile(`${dir}/ten`, "0123456789");
    const setting = { source: "--token-file", bytesMax: 10, command: "get" };
    assert.equal(
      new TextDecoder().decode(await readSettingFile(`${dir}/ten`, setting)),
      "0123456789",
    );
    await assertUsage(
      () => readSettingFile(`${dir}/missing`, setting),
      `Cannot read the --token-file file ${dir}/missing: file does not exist`,
      "get",
    );
    await assertUsage(
      () => readSettingFile(dir, setting),
      `Cannot read the --token-file file ${dir}: it is a directory`,
      "get",
    );
    await assertUsage(
      () => readSettingFile(`${dir}/ten`, { ...setting, bytesMax: 9 }),
      `Cannot read the --token-file file ${dir}/ten: it is 10 bytes, over the limit of 9`,
      "get",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serveSecurity() reads nothing without options and wants --tls-cert with --tls-key", async () => {
  assert.deepEqual(await serveSecurity({}), { secret: undefined });
  await assertUsage(
    () => serveSecurity({ "tls-cert": "cert.pem" }),
    "--tls-cert and --tls-key go together",
    "serve",
  );
  await assertUsage(
    () => serveSecurity({ "token-file": "" }),
    "--token-file is empty: it takes a file holding the token",
    "serve",
  );
});

Deno.test("uiSettings() runs no dashboard without --ui-port, and listens on --host unless told", () => {
  assert.equal(uiSettings({}, "127.0.0.1"), undefined);
  assert.deepEqual(uiSettings({ "ui-port": "0" }, "127.0.0.1"), { hostname: "127.0.0.1", port: 0 });
  assert.deepEqual(uiSettings({ "ui-port": "8080", "ui-host": "10.0.0.5" }, "127.0.0.1"), {
    hostname: "10.0.0.5",
    port: 8080,
  });
});

Deno.test("uiSettings() refuses --ui-host without --ui-port, an empty option and a bad port", async () => {
  await assertUsage(
    () => uiSettings({ "ui-host": "0.0.0.0" }, "127.0.0.1"),
    "--ui-host needs --ui-port",
    "serve",
  );
  await assertUsage(
    () => uiSettings({ "ui-port": "" }, "127.0.0.1"),
    "--ui-port is empty: it takes PORT",
    "serve",
  );
  await assertUsage(
    () => uiSettings({ "ui-port": "0", "ui-host": "" }, "127.0.0.1"),
    "--ui-host is empty: it takes HOST",
    "serve",
  );
  for (const port of ["65536", "-1", "http", "80.5"]) {
    await assertUsage(
      () => uiSettings({ "ui-port": port }, "127.0.0.1"),
      `--ui-port must be a port from 0 to 65535, got "${port}"`,
      "serve",
    );
  }
});
