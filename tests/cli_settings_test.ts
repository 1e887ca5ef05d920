/**
 * What the command line reads besides its arguments: the `DFS_*` variables and the files its
 * options name. A variable set but empty, an empty option, or a file that is missing, unreadable
 * or holds the wrong thing is a usage error: one line saying which and why, the help hint, exit 2,
 * and never a stack trace. None of these runs reaches a server.
 */

import { assertUsageError, dfs } from "./_cli.ts";

/** A temp folder with a file of every kind the tests name; removed after `test`. */
async function withFiles(test: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "dfs-settings-" });
  try {
    await Deno.writeTextFile(`${dir}/empty`, "");
    await Deno.writeTextFile(`${dir}/not-pem`, "hello\n");
    await Deno.writeTextFile(`${dir}/token`, "a-token-long-enough-0123456789");
    await Deno.mkdir(`${dir}/folder`);
    await test(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Whether this process can read a file whose mode is 000 (it can as root). */
async function readsAnything(dir: string): Promise<boolean> {
  const path = `${dir}/probe`;
  await Deno.writeTextFile(path, "x");
  await Deno.chmod(path, 0o000);
  try {
    await Deno.readFile(path);
    return true;
  } catch {
    return false;
  } finally {
    await Deno.remove(path);
  }
}

Deno.test("a DFS_* variable set but empty is a one-line usage error", async () => {
  const cases: [string, RegExp][] = [
    [
      "DFS_TLS_CA",
      /^dfs: DFS_TLS_CA is set but empty: set it to a PEM file of certificates to trust, or unset it$/,
    ],
    ["DFS_TOKEN", /^dfs: DFS_TOKEN is set but empty: set it to the server's token, or unset it$/],
    ["DFS_SERVER", /^dfs: DFS_SERVER is set but empty: set it to HOST:PORT, or unset it$/],
  ];
  for (const [variable, pattern] of cases) {
    // The original form `dfs NAME -m` points to the help of meta, which it is.
    for (
      const [args, hint] of [[["list"], "list"], [["meta", "a"], "meta"], [["a", "-m"], "meta"]]
    ) {
      assertUsageError(
        await dfs(args as string[], { env: { [variable]: "" } }),
        pattern,
        `dfs ${hint}`,
      );
    }
  }
});

Deno.test("an empty file or address option is a one-line usage error", async () => {
  const cases: [string, RegExp][] = [
    ["--tls-ca", /^dfs: --tls-ca is empty: it takes a PEM file of certificates to trust$/],
    ["--token-file", /^dfs: --token-file is empty: it takes a file holding the token$/],
    ["--server", /^dfs: --server is empty: it takes HOST:PORT$/],
  ];
  for (const [option, pattern] of cases) {
    assertUsageError(await dfs(["list", `${option}=`]), pattern, "dfs list");
  }
  const serveCases: [string[], RegExp][] = [
    [["--token-file="], /^dfs: --token-file is empty: it takes a file holding the token$/],
    [
      ["--tls-cert=", "--tls-key=k"],
      /^dfs: --tls-cert is empty: it takes a PEM certificate chain$/,
    ],
    [["--tls-cert=c", "--tls-key="], /^dfs: --tls-key is empty: it takes a PEM private key$/],
  ];
  await withFiles(async (dir) => {
    for (const [args, pattern] of serveCases) {
      const out = await dfs(["serve", "--port", "0", "--data", `${dir}/data`, ...args]);
      assertUsageError(out, pattern, "dfs serve");
    }
  });
});

Deno.test("a client's token or CA file that is missing, a directory or not PEM is a one-line usage error", async () => {
  await withFiles(async (dir) => {
    const cases: [string[], Record<string, string>, RegExp][] = [
      [
        ["--tls-ca", `${dir}/missing`],
        {},
        /^dfs: Cannot read the --tls-ca file .*\/missing: file does not exist$/,
      ],
      [[], { DFS_TLS_CA: `${dir}/missing` }, /^dfs: Cannot read the DFS_TLS_CA file .*: file/],
      [
        ["--tls-ca", `${dir}/folder`],
        {},
        /^dfs: Cannot read the --tls-ca file .*\/folder: it is a directory$/,
      ],
      [
        ["--tls-ca", `${dir}/not-pem`],
        {},
        /^dfs: The --tls-ca file .*\/not-pem holds no PEM certificate \("-----BEGIN CERTIFICATE-----"\)$/,
      ],
      [[], { DFS_TLS_CA: `${dir}/empty` }, /^dfs: The DFS_TLS_CA file .*\/empty holds no PEM/],
      [
        ["--token-file", `${dir}/missing`],
        {},
        /^dfs: Cannot read the --token-file file .*\/missing: file does not exist$/,
      ],
      [
        ["--token-file", `${dir}/folder`],
        {},
        /^dfs: Cannot read the --token-file file .*\/folder: it is a directory$/,
      ],
      [
        ["--token-file", `${dir}/empty`],
        {},
        /^dfs: The token file .*\/empty holds 0 bytes; a token needs at least 16$/,
      ],
    ];
    for (const [args, env, pattern] of cases) {
      assertUsageError(await dfs(["list", ...args], { env }), pattern, "dfs list");
    }
    if (!await readsAnything(dir)) {
      await Deno.chmod(`${dir}/token`, 0o000);
      assertUsageError(
        await dfs(["list", "--token-file", `${dir}/token`]),
        /^dfs: Cannot read the --token-file file .*\/token: permission denied$/,
        "dfs list",
      );
    }
  });
});

Deno.test("dfs serve's token and TLS files that are missing, a directory or not PEM are one-line usage errors", async () => {
  await withFiles(async (dir) => {
    const serve = (...args: string[]) =>
      dfs(["serve", "--port", "0", "--data", `${dir}/data`, ...args]);
    const cases: [string[], RegExp][] = [
      [
        ["--token-file", `${dir}/missing`],
        /^dfs: Cannot read the --token-file file .*\/missing: file does not exist$/,
      ],
      [
        ["--token-file", `${dir}/folder`],
        /^dfs: Cannot read the --token-file file .*\/folder: it is a directory$/,
      ],
      [
        ["--tls-cert", `${dir}/missing`, "--tls-key", `${dir}/not-pem`],
        /^dfs: Cannot read the --tls-cert file .*\/missing: file does not exist$/,
      ],
      [
        ["--tls-cert", `${dir}/folder`, "--tls-key", `${dir}/not-pem`],
        /^dfs: Cannot read the --tls-cert file .*\/folder: it is a directory$/,
      ],
      [
        ["--tls-cert", `${dir}/empty`, "--tls-key", `${dir}/not-pem`],
        /^dfs: The --tls-cert file .*\/empty holds no PEM certificate/,
      ],
      [
        ["--tls-cert", `${dir}/not-pem`, "--tls-key", `${dir}/not-pem`],
        /^dfs: The --tls-cert file .*\/not-pem holds no PEM certificate/,
      ],
    ];
    for (const [args, pattern] of cases) {
      assertUsageError(await serve(...args), pattern, "dfs serve");
    }
    // A key file that is no PEM key, next to a certificate file that is one.
    await Deno.writeTextFile(
      `${dir}/cert.pem`,
      "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    assertUsageError(
      await serve("--tls-cert", `${dir}/cert.pem`, "--tls-key", `${dir}/not-pem`),
      /^dfs: The --tls-key file .*\/not-pem holds no PEM private key$/,
      "dfs serve",
    );
  });
});

Deno.test("dfs serve's dashboard options: --ui-host without --ui-port, or a bad port, is a usage error", async () => {
  await withFiles(async (dir) => {
    const serve = (...args: string[]) =>
      dfs(["serve", "--port", "0", "--data", `${dir}/data`, ...args]);
    assertUsageError(
      await serve("--ui-host", "127.0.0.2"),
      /^dfs: --ui-host needs --ui-port$/,
      "dfs serve",
    );
    assertUsageError(
      await serve("--ui-port", "70000"),
      /^dfs: --ui-port must be a port from 0 to 65535, got "70000"$/,
      "dfs serve",
    );
  });
});
