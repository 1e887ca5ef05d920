/**
 * The `dfs` command as a user and a script drive it: the `./dfs` launcher run through
 * `Deno.Command` against one real server, with local files in a temp working directory.
 */

import assert from "node:assert/strict";
import { CHUNK_SIZE_BYTES } from "../protocol/limits.ts";
import { pseudoRandomBytes, sha256 } from "./_bytes.ts";
import {
  assertOk,
  assertOperationalError,
  assertUsageError,
  dfs,
  type DfsRunOptions,
} from "./_cli.ts";
import { ROOT, TestServer } from "./_server.ts";

const MiB = 1024 * 1024;
const DFS = `${ROOT}dfs`;
/** An address where nothing listens: connecting is refused at once. */
const UNREACHABLE = "127.0.0.1:1";

interface MetaJson {
  name: string;
  size: number;
  sha256: string;
  version: number;
  modified: number;
  chunks: { size: number; ranks: number[] }[];
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

async function partialFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.name.endsWith(".dfs-partial")) found.push(entry.name);
  }
  return found;
}

Deno.test("dfs command line against a real server", async (t) => {
  await using server = await TestServer.start();
  const cwd = await Deno.makeTempDir({ prefix: "dfs-cli-test-" });
  const at = ["--server", server.address];
  const run = (args: string[], options: Omit<DfsRunOptions, "cwd"> = {}) =>
    dfs(args, { cwd, ...options });
  const metaJson = async (name: string): Promise<MetaJson> => {
    const result = await run(["meta", name, "--json", ...at]);
    assertOk(result, `meta ${name} --json`);
    assert.equal(result.stdout.trim().split("\n").length, 1, "one JSON object on one line");
    return JSON.parse(result.stdout);
  };

  try {
    await t.step(
      "--help exits 0 and mentions every command; --version prints a version",
      async () => {
        const help = await run(["--help"]);
        assertOk(help, "--help");
        for (
          const word of [
            "serve",
            "put",
            "get",
            "meta",
            "list",
            "-a",
            "-r",
            "-m",
            "--server",
            "--json",
          ]
        ) {
          assert.ok(help.stdout.includes(word), `--help mentions ${word}`);
        }
        const version = await run(["--version"]);
        assertOk(version, "--version");
        assert.match(version.stdout, /^dfs \d+\.\d+\.\d+\n$/);
      },
    );

    await t.step(
      "put LOCAL then get NAME LOCAL2 round-trips a multi-chunk file byte for byte",
      async () => {
        const data = pseudoRandomBytes(3 * MiB + 1, 11);
        await Deno.mkdir(`${cwd}/in`);
        await Deno.writeFile(`${cwd}/in/round.bin`, data);
        const before = Date.now();
        const put = await run(["put", "in/round.bin", ...at]);
        assertOk(put, "put");
        // NAME defaults to LOCAL's base name.
        assert.match(
          put.stdout,
          new RegExp(
            `^round\\.bin: ${data.length} bytes, version \\d+, 2 replicas, sha256 ${
              sha256(data)
            }\n$`,
          ),
        );

        const get = await run(["get", "round.bin", "copy.bin", ...at]);
        assertOk(get, "get");
        assert.equal(get.stdout, "");
        assert.deepEqual(await Deno.readFile(`${cwd}/copy.bin`), data);

        const meta = await metaJson("round.bin");
        assert.equal(meta.name, "round.bin");
        assert.equal(meta.size, data.length);
        assert.equal(meta.sha256, sha256(await Deno.readFile(`${cwd}/in/round.bin`)));
        assert.ok(Number.isInteger(meta.version) && meta.version >= 1, `version ${meta.version}`);
        assert.ok(
          meta.modified >= before - 1000 && meta.modified <= Date.now() + 1000,
          `modified ${meta.modified}`,
        );
        assert.deepEqual(meta.chunks.map((c) => c.size), [
          CHUNK_SIZE_BYTES,
          CHUNK_SIZE_BYTES,
          CHUNK_SIZE_BYTES,
          1,
        ]);
        assert.equal(meta.chunks.reduce((sum, c) => sum + c.size, 0), meta.size);
        for (const chunk of meta.chunks) {
          assert.equal(new Set(chunk.ranks).size, 2, `two distinct replicas: ${chunk.ranks}`);
        }
      },
    );

    await t.step("putting new content under the same name bumps the version", async () => {
      const first = await metaJson("round.bin");
      const data = pseudoRandomBytes(MiB + 7, 12);
      await Deno.writeFile(`${cwd}/new.bin`, data);
      assertOk(await run(["put", "new.bin", "round.bin", ...at]), "put over");
      const second = await metaJson("round.bin");
      assert.ok(second.version > first.version, `version ${second.version} > ${first.version}`);
      assert.equal(second.size, data.length);
      assert.equal(second.sha256, sha256(data));
      assert.notEqual(second.sha256, first.sha256);
      assertOk(
        await run(["get", "round.bin", "copy.bin", ...at]),
        "get over an existing local file",
      );
      assert.deepEqual(await Deno.readFile(`${cwd}/copy.bin`), data);
    });

    await t.step(
      "get NAME without LOCAL saves to the base name of NAME in the working dir",
      async () => {
        const data = new TextEncoder().encode("nested\n");
        await Deno.writeFile(`${cwd}/nested.src`, data);
        assertOk(await run(["put", "nested.src", "deep/dir/leaf.txt", ...at]), "put");
        assertOk(await run(["get", "deep/dir/leaf.txt", ...at]), "get");
        assert.deepEqual(await Deno.readFile(`${cwd}/leaf.txt`), data);
        assert.equal(await exists(`${cwd}/deep`), false, "no directories are created");
      },
    );

    await t.step("meta without --json prints the fields for people", async () => {
      const meta = await metaJson("deep/dir/leaf.txt");
      const result = await run(["meta", "deep/dir/leaf.txt", ...at]);
      assertOk(result, "meta");
      assert.match(result.stdout, /^name +deep\/dir\/leaf\.txt$/m);
      assert.match(result.stdout, /^size +7 bytes$/m);
      assert.match(result.stdout, new RegExp(`^sha256 +${meta.sha256}$`, "m"));
      assert.match(result.stdout, new RegExp(`^version +${meta.version}$`, "m"));
      assert.match(
        result.stdout,
        new RegExp(`^modified +${new Date(meta.modified).toISOString()}$`, "m"),
      );
      assert.match(result.stdout, /^chunks +1$/m);
    });

    await t.step(
      "stdin to put - and get - to stdout are byte-exact, text and multi-MiB binary",
      async () => {
        const text = new TextEncoder().encode("hello\nworld\n");
        assertOk(await run(["put", "-", "pipe/text.txt", ...at], { stdin: text }), "put - text");
        const textOut = await run(["get", "pipe/text.txt", "-", ...at]);
        assertOk(textOut, "get - text");
        assert.deepEqual(textOut.bytes, text);

        const data = pseudoRandomBytes(5 * MiB + 3, 13);
        const put = await run(["put", "-", "pipe/big.bin", ...at], { stdin: data });
        assertOk(put, "put - binary");
        assert.match(
          put.stdout,
          new RegExp(`^pipe/big\\.bin: ${data.length} bytes, .*sha256 ${sha256(data)}\n$`),
        );
        const get = await run(["get", "pipe/big.bin", "-", ...at]);
        assertOk(get, "get - binary");
        assert.equal(get.bytes.length, data.length);
        assert.ok(sha256(get.bytes) === sha256(data), "stdout matches the piped-in bytes");
        assert.equal((await metaJson("pipe/big.bin")).sha256, sha256(data));
        assert.deepEqual(await partialFiles(cwd), [], "get - leaves no file behind");
      },
    );

    await t.step("put - from empty stdin stores an empty file", async () => {
      assertOk(
        await run(["put", "-", "pipe/empty", ...at], { stdin: new Uint8Array(0) }),
        "put - empty",
      );
      const meta = await metaJson("pipe/empty");
      assert.equal(meta.size, 0);
      assert.equal(meta.sha256, sha256(new Uint8Array(0)));
      const get = await run(["get", "pipe/empty", "-", ...at]);
      assertOk(get, "get - empty");
      assert.equal(get.bytes.length, 0);
    });

    await t.step(
      "list prints names sorted one per line, filters by prefix, and --json",
      async () => {
        for (
          const [name, size] of [["ls/b", 2], ["ls/sub/c", 3], ["ls/a", 1], ["lsz", 4]] as const
        ) {
          assertOk(
            await run(["put", "-", name, ...at], { stdin: new Uint8Array(size) }),
            `put ${name}`,
          );
        }
        const plain = await run(["list", "ls/", ...at]);
        assertOk(plain, "list ls/");
        assert.equal(plain.stdout, "ls/a\nls/b\nls/sub/c\n");

        const json = await run(["list", "ls/", "--json", ...at]);
        assertOk(json, "list --json");
        const entries: { name: string; size: number; modified: number }[] = JSON.parse(json.stdout);
        assert.deepEqual(entries.map((e) => [e.name, e.size]), [["ls/a", 1], ["ls/b", 2], [
          "ls/sub/c",
          3,
        ]]);
        for (const e of entries) assert.equal(e.modified, (await metaJson(e.name)).modified);

        const all = await run(["list", ...at]);
        assertOk(all, "list");
        const names = all.stdout.trimEnd().split("\n");
        for (const name of ["ls/a", "lsz", "round.bin", "pipe/big.bin", "deep/dir/leaf.txt"]) {
          assert.ok(names.includes(name), `list shows ${name}`);
        }
        assert.deepEqual(names, [...names].sort());

        const none = await run(["list", "nothing/", ...at]);
        assertOk(none, "list of an empty prefix");
        assert.equal(none.stdout, "");
        const noneJson = await run(["list", "nothing/", "--json", ...at]);
        assertOk(noneJson, "list --json of an empty prefix");
        assert.deepEqual(JSON.parse(noneJson.stdout), []);
      },
    );

    await t.step(
      "the original forms: NAME -a puts, NAME -r gets into ./NAME, NAME -m shows meta",
      async () => {
        const data = pseudoRandomBytes(2 * MiB + 9, 14);
        await Deno.writeFile(`${cwd}/legacy.bin`, data);
        assertOk(await run(["legacy.bin", "-a", ...at]), "-a");
        await Deno.remove(`${cwd}/legacy.bin`);
        assertOk(await run(["legacy.bin", "-r", ...at]), "-r");
        assert.deepEqual(await Deno.readFile(`${cwd}/legacy.bin`), data);

        const meta = await run(["legacy.bin", "-m", ...at]);
        assertOk(meta, "-m");
        assert.match(meta.stdout, /^name +legacy\.bin$/m);
        assert.match(meta.stdout, new RegExp(`^sha256 +${sha256(data)}$`, "m"));
        assert.match(meta.stdout, /^chunks +3$/m);

        const list = await run(["list", ...at]);
        assertOk(list, "list");
        assert.ok(list.stdout.split("\n").includes("legacy.bin"));
      },
    );

    await t.step(
      "DFS_SERVER gives the server when --server is absent; --server wins over it",
      async () => {
        const viaEnv = await run(["meta", "legacy.bin", "--json"], {
          env: { DFS_SERVER: server.address },
        });
        assertOk(viaEnv, "meta with DFS_SERVER");
        assert.equal(JSON.parse(viaEnv.stdout).name, "legacy.bin");

        const wrongEnv = await run(["meta", "legacy.bin"], { env: { DFS_SERVER: UNREACHABLE } });
        assertOperationalError(wrongEnv, /Cannot connect to 127\.0\.0\.1:1/);

        const overridden = await run(["list", "ls/", ...at], { env: { DFS_SERVER: UNREACHABLE } });
        assertOk(overridden, "--server over DFS_SERVER");
        assert.equal(overridden.stdout, "ls/a\nls/b\nls/sub/c\n");
      },
    );

    await t.step(
      "a missing name is one line on stderr and exit 1, for get, get -, meta and -r",
      async () => {
        for (
          const args of [["get", "missing", "-"], ["meta", "missing"], [
            "meta",
            "missing",
            "--json",
          ], ["missing", "-r"]]
        ) {
          assertOperationalError(
            await run([...args, ...at]),
            /Cannot find "missing": file does not exist/,
          );
        }
        assert.equal(await exists(`${cwd}/missing`), false, "-r of a missing name creates nothing");
      },
    );

    await t.step(
      "a failed get leaves no LOCAL and no partial file; an existing LOCAL is kept",
      async () => {
        assertOperationalError(await run(["get", "missing", "out.bin", ...at]), /does not exist/);
        assert.equal(await exists(`${cwd}/out.bin`), false);
        assert.deepEqual(await partialFiles(cwd), []);

        await Deno.writeTextFile(`${cwd}/keep.txt`, "mine");
        assertOperationalError(await run(["get", "missing", "keep.txt", ...at]), /does not exist/);
        assert.equal(await Deno.readTextFile(`${cwd}/keep.txt`), "mine");

        // Here the download completes but cannot be moved into place: the partial file is removed.
        await Deno.mkdir(`${cwd}/taken`);
        assertOperationalError(await run(["get", "round.bin", "taken", ...at]), /directory/i);
        assert.deepEqual(await partialFiles(cwd), []);
        assert.deepEqual(await Array.fromAsync(Deno.readDir(`${cwd}/taken`)), []);
      },
    );

    await t.step(
      "a missing local file, a directory, a refused name: one line and exit 1",
      async () => {
        assertOperationalError(
          await run(["put", "no-such-file", ...at]),
          /No such file|not found/i,
        );
        assertOperationalError(
          await run(["put", "in", ...at]),
          /Cannot put "in": not a regular file/,
        );
        assertOperationalError(await run(["put", "legacy.bin", "../x", ...at]), /"\.\." segment/);
        assertOperationalError(
          await run(["put", "-", "../x", ...at], { stdin: new Uint8Array(10) }),
          /"\.\." segment/,
        );
        const list = await run(["list", ...at]);
        assertOk(list, "list");
        const names = list.stdout.split("\n");
        assert.ok(
          !names.includes("x") && !names.includes("../x"),
          "the refused name was not stored",
        );
      },
    );

    await t.step("an unreachable or malformed server address: one line and exit 1", async () => {
      for (const args of [["list"], ["meta", "a"], ["get", "a", "-"], ["put", "legacy.bin"]]) {
        assertOperationalError(
          await run([...args, "--server", UNREACHABLE]),
          /Cannot connect to 127\.0\.0\.1:1/,
        );
      }
      assertOperationalError(
        await run(["list", "--server", "nowhere"]),
        /Invalid server address "nowhere"/,
      );
    });

    await t.step(
      "a closed stdout during get - ends with one line and exit 1, not a stack trace",
      async () => {
        const child = new Deno.Command(DFS, {
          args: ["get", "pipe/big.bin", "-", ...at],
          cwd,
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        const stderr = new Response(child.stderr).text();
        const reader = child.stdout.getReader();
        const first = await reader.read();
        assert.ok(
          !first.done && first.value.length > 0,
          "some bytes arrive before the pipe closes",
        );
        await reader.cancel();
        const { code } = await child.status;
        assert.equal(code, 1);
        const message = (await stderr).trim();
        assert.ok(!message.includes("\n"), `one line on stderr, got:\n${message}`);
        assert.match(message, /^dfs: Broken pipe/);
      },
    );

    await t.step("usage errors exit 2 with the error line then the help hint", async () => {
      const cases: [string[], RegExp][] = [
        [[], /missing command/],
        [["frobnicate", ...at], /unknown command "frobnicate"/],
        [["legacy.bin", "-x", ...at], /Unknown option '-x'/],
        [["legacy.bin", "-a", "-r", ...at], /unknown command "legacy\.bin"/],
        [["legacy.bin", ...at], /unknown command "legacy\.bin"/],
      ];
      for (const [args, pattern] of cases) assertUsageError(await run(args), pattern);
      const commandCases: [string[], RegExp][] = [
        [["list", "--bogus", ...at], /Unknown option '--bogus'/],
        [["put", ...at], /put needs LOCAL \[NAME\]/],
        [["put", "-", ...at], /put - needs a NAME/],
        [["put", "a", "b", "c", ...at], /unexpected argument "c"/],
        [["get", ...at], /get needs NAME \[LOCAL\]/],
        [["get", "a", "b", "c", ...at], /unexpected argument "c"/],
        [["meta", ...at], /meta needs NAME/],
        [["list", "a", "b", ...at], /unexpected argument "b"/],
        [["list", "--server"], /'--server <value>' argument missing/],
        [["get", "a", "--range", "9-3", ...at], /ends before it starts/],
        [["rm", ...at], /rm takes NAME\.\.\. or --prefix P/],
        [["mv", "a", ...at], /mv needs OLD NEW/],
      ];
      for (const [args, pattern] of commandCases) {
        assertUsageError(await run(args), pattern, `dfs ${args[0]}`);
      }
    });
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});
