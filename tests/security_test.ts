/**
 * Access control: shared-secret authentication (accepted, refused, never sent in clear, server
 * proven) and TLS (round trip, untrusted certificate refused), through the library and the CLI.
 */

import assert from "node:assert/strict";
import { DfsClient } from "../client.ts";
import { clientProof, newNonce, serverProof } from "../protocol/auth.ts";
import { FrameReader, FrameWriter } from "../protocol/conn.ts";
import { decodeFrameBody } from "../protocol/frame.ts";
import { PROTOCOL_VERSION } from "../protocol/limits.ts";
import { pseudoRandomBytes } from "./_bytes.ts";
import { dfs } from "./_cli.ts";
import { rawConnection } from "./_frames.ts";
import { relay, ROOT, TestServer } from "./_server.ts";
import { assertDfsError } from "./_assert.ts";
import { makeCertificates } from "./_tls.ts";

const SECRET = "s3cret-token-for-tests-0123456789";

Deno.test("a server with --token-file serves clients that hold the token and refuses others", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "dfs-auth-" });
  const tokenFile = `${dir}/token`;
  await Deno.writeTextFile(tokenFile, `${SECRET}\n`);
  const wrongFile = `${dir}/wrong`;
  await Deno.writeTextFile(wrongFile, "not-the-right-token-at-all");
  await using server = await TestServer.start({ extraArgs: ["--token-file", tokenFile] });
  const token = new TextEncoder().encode(SECRET);
  try {
    await t.step("a client with the token puts and gets", async () => {
      await using client = await DfsClient.connect(server.address, { token });
      const data = pseudoRandomBytes(100_000, 1);
      await client.put("secret/a", data);
      assert.deepEqual(await client.getBytes("secret/a"), data);
    });

    await t.step("a client without a token gets UNAUTHORIZED", async () => {
      await assertDfsError(DfsClient.connect(server.address), "UNAUTHORIZED", /requires a token/);
    });

    await t.step("a client with a wrong token gets UNAUTHORIZED", async () => {
      const wrong = new TextEncoder().encode("not-the-right-token-at-all");
      await assertDfsError(
        DfsClient.connect(server.address, { token: wrong }),
        "UNAUTHORIZED",
        /Authentication failed/,
      );
    });

    await t.step("a request instead of the answer gets UNAUTHORIZED and nothing else", async () => {
      using raw = await rawConnection(server.address);
      await raw.send({ op: "hello", version: PROTOCOL_VERSION });
      const hello = await raw.next();
      assert.ok(hello.challenge instanceof Uint8Array);
      await raw.send({ op: "get", id: 1, name: "secret/a" });
      const refused = await raw.next();
      assert.deepEqual([refused.op, refused.code], ["error", "UNAUTHORIZED"]);
      await assert.rejects(raw.next(), /closed the connection/);
    });

    await t.step("the secret never crosses the wire in clear", async () => {
      // A proxy in the middle records every byte the client sends.
      const [, port] = server.address.split(":");
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const sent: Uint8Array[] = [];
      const proxy = (async () => {
        const inbound = await listener.accept();
        const outbound = await Deno.connect({ hostname: "127.0.0.1", port: Number(port) });
        const record = (piece: Uint8Array) => void sent.push(piece.slice());
        await Promise.all([relay(inbound, outbound, record), relay(outbound, inbound)]);
      })();
      const proxied = `127.0.0.1:${(listener.addr as Deno.NetAddr).port}`;
      {
        await using client = await DfsClient.connect(proxied, { token });
        assert.equal((await client.meta("secret/a")).size, 100_000);
      }
      await proxy;
      listener.close();
      const wire = new TextDecoder("latin1").decode(
        new Uint8Array(await new Blob(sent as BlobPart[]).arrayBuffer()),
      );
      assert.ok(wire.length > 0);
      assert.ok(!wire.includes(SECRET), "the token is not on the wire");
    });

    await t.step("the CLI reads --token-file or DFS_TOKEN, and fails without", async () => {
      const local = `${dir}/local.txt`;
      await Deno.writeTextFile(local, "hello");
      const withFile = await dfs([
        "put",
        local,
        "cli/a",
        "--server",
        server.address,
        "--token-file",
        tokenFile,
      ]);
      assert.equal(withFile.code, 0, withFile.stderr);
      const withEnv = await dfs(["get", "cli/a", "-", "--server", server.address], {
        env: { DFS_TOKEN: SECRET },
      });
      assert.equal(withEnv.code, 0, withEnv.stderr);
      assert.equal(withEnv.stdout, "hello");
      const without = await dfs(["list", "--server", server.address]);
      assert.equal(without.code, 1);
      assert.match(
        without.stderr.trim(),
        /^dfs: Server requires a token: set DFS_TOKEN or pass --token-file$/,
      );
      const wrong = await dfs(["list", "--server", server.address, "--token-file", wrongFile]);
      assert.equal(wrong.code, 1);
      assert.match(wrong.stderr.trim(), /^dfs: Authentication failed$/);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dfs serve refuses a token file that is too short", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dfs-auth-" });
  try {
    await Deno.writeTextFile(`${dir}/token`, "short");
    const out = await dfs([
      "serve",
      "--port",
      "0",
      "--data",
      `${dir}/data`,
      "--token-file",
      `${dir}/token`,
    ]);
    assert.equal(out.code, 2);
    assert.match(out.stderr, /holds 5 bytes; a token needs at least 16/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a client refuses a server that cannot prove it holds the token", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const impostor = (async () => {
    const conn = await listener.accept();
    const reader = new FrameReader(conn);
    const writer = new FrameWriter(conn);
    await reader.read();
    const challenge = newNonce();
    await writer.send({
      op: "hello",
      version: PROTOCOL_VERSION,
      server: "x",
      chunkSizeBytes: 1,
      challenge,
    });
    const answer = decodeFrameBody((await reader.read())!) as { nonce: Uint8Array };
    // It accepts anything and answers with a proof made from a guessed secret.
    const guess = new TextEncoder().encode("guessed-secret-0123456789");
    await writer.send({ op: "auth", proof: serverProof(guess, challenge, answer.nonce) });
    await reader.read().catch(() => null);
    conn.close();
  })();
  const token = new TextEncoder().encode(SECRET);
  await assertDfsError(
    DfsClient.connect(`127.0.0.1:${(listener.addr as Deno.NetAddr).port}`, { token }),
    "UNAUTHORIZED",
    /could not prove/,
  );
  await impostor;
  listener.close();
  // And the client's proof is bound to the server's challenge: replaying it elsewhere fails.
  const a = clientProof(token, newNonce(), newNonce());
  assert.notDeepEqual(a, clientProof(token, newNonce(), newNonce()));
});

/**
 * A server that reads the client's hello and answers `answer` then closes: the bytes a TLS server
 * sends a client that does not speak TLS, or anything else.
 */
async function answeringServer(answer: number[], test: (address: string) => Promise<void>) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    const conn = await listener.accept();
    await conn.read(new Uint8Array(1024));
    await conn.write(Uint8Array.from(answer));
    conn.close();
  })();
  try {
    await test(`127.0.0.1:${(listener.addr as Deno.NetAddr).port}`);
  } finally {
    await serving;
    listener.close();
  }
}

Deno.test("a client whose server answers with a TLS record is told to use TLS", async () => {
  const records = [
    [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32], // an alert (decode error), TLS 1.2
    [0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x46], // an alert (protocol version), TLS 1.0
    [0x16, 0x03, 0x03, 0x00, 0x04, 0x0e, 0x00, 0x00, 0x00], // a handshake record
  ];
  for (const record of records) {
    await answeringServer(record, async (address) => {
      await assertDfsError(
        DfsClient.connect(address),
        "UNAVAILABLE",
        new RegExp(`^Cannot connect to ${address}: the server seems to speak TLS; pass --tls-ca`),
      );
    });
  }
  // A length that is merely too large is still reported as such.
  await answeringServer([0x7f, 0x03, 0x03, 0x00, 0x00], async (address) => {
    await assertDfsError(DfsClient.connect(address), "TOO_LARGE", /^Frame of \d+ bytes is over/);
  });
});

Deno.test("TLS: a round trip with a trusted certificate, refusal without it", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "dfs-tls-" });
  try {
    await makeCertificates(dir);
    await Deno.writeTextFile(`${dir}/token`, SECRET);
    await using server = await TestServer.start({
      extraArgs: [
        "--tls-cert",
        `${dir}/server.pem`,
        "--tls-key",
        `${dir}/server.key`,
        "--token-file",
        `${dir}/token`,
      ],
    });
    const token = new TextEncoder().encode(SECRET);
    const ca = await Deno.readTextFile(`${dir}/ca.pem`);

    await t.step("a client trusting the CA puts and gets over TLS with the token", async () => {
      await using client = await DfsClient.connect(server.address, { token, tlsCaCerts: [ca] });
      const data = pseudoRandomBytes(3 * 1024 * 1024 + 1, 5);
      await client.put("tls/a", data);
      assert.deepEqual(await client.getBytes("tls/a"), data);
    });

    await t.step("a client trusting another CA is refused", async () => {
      const other = await Deno.readTextFile(`${dir}/other.pem`);
      await assertDfsError(
        DfsClient.connect(server.address, { token, tlsCaCerts: [other] }),
        "UNAVAILABLE",
        /Cannot connect/,
      );
    });

    await t.step("a plain TCP client is told that the server speaks TLS", async () => {
      const told = new RegExp(
        `^Cannot connect to ${server.address}: the server seems to speak TLS; ` +
          "pass --tls-ca \\(or DFS_TLS_CA\\) to connect over TLS$",
      );
      await assertDfsError(
        DfsClient.connect(server.address, { token, connectTimeoutMs: 2000 }),
        "UNAVAILABLE",
        told,
      );
      const cli = await dfs(["list", "--server", server.address], { env: { DFS_TOKEN: SECRET } });
      assert.equal(cli.code, 1, cli.stderr);
      assert.match(cli.stderr, new RegExp(`^dfs: ${told.source.slice(1, -1)}\n$`));
    });

    await t.step("a TLS client is told that a plain server does not speak TLS", async () => {
      await using plain = await TestServer.start({ ranks: 2, replicas: 1 });
      const told = new RegExp(
        `^Cannot connect to ${plain.address}: the server does not seem to speak TLS \\(.+\\); ` +
          "leave out --tls-ca and DFS_TLS_CA to connect over plain TCP$",
      );
      await assertDfsError(
        DfsClient.connect(plain.address, { tlsCaCerts: [ca], connectTimeoutMs: 2000 }),
        "UNAVAILABLE",
        told,
      );
      const cli = await dfs(["list", "--server", plain.address, "--tls-ca", `${dir}/ca.pem`]);
      assert.equal(cli.code, 1, cli.stderr);
      assert.match(cli.stderr, new RegExp(`^dfs: ${told.source.slice(1, -1)}\n$`));
    });

    await t.step("the CLI connects with --tls-ca and with DFS_TLS_CA", async () => {
      const list = await dfs(["list", "--server", server.address, "--tls-ca", `${dir}/ca.pem`], {
        env: { DFS_TOKEN: SECRET },
      });
      assert.equal(list.code, 0, list.stderr);
      assert.equal(list.stdout, "tls/a\n");
      const meta = await dfs(["meta", "tls/a", "--json", "--server", server.address], {
        env: { DFS_TOKEN: SECRET, DFS_TLS_CA: `${dir}/ca.pem` },
      });
      assert.equal(meta.code, 0, meta.stderr);
      assert.equal(JSON.parse(meta.stdout).size, 3 * 1024 * 1024 + 1);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dfs serve warns when a token guards a non-loopback address without TLS", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "dfs-warn-" });
  const warning =
    /^dfs: warning: --token-file without TLS on 0\.0\.0\.0: the token is checked once, when a connection opens, so anyone who can relay a connection can send their own requests on it; serve TLS \(--tls-cert, --tls-key\) or listen on a loopback address$/m;
  /** Everything the server wrote to stderr by the time it was ready (it warns before). */
  const stderrOf = async (...extraArgs: string[]) => {
    const server = await TestServer.start({ ranks: 2, replicas: 1, extraArgs });
    try {
      await server.stop("SIGKILL");
      return await server.stderr;
    } finally {
      await server[Symbol.asyncDispose]();
    }
  };
  try {
    await makeCertificates(dir);
    const token = ["--token-file", `${dir}/token`];
    await Deno.writeTextFile(`${dir}/token`, SECRET);
    const tls = ["--tls-cert", `${dir}/server.pem`, "--tls-key", `${dir}/server.key`];

    await t.step("a token without TLS on 0.0.0.0: one warning line on stderr", async () => {
      const stderr = await stderrOf("--host", "0.0.0.0", ...token);
      assert.match(stderr, warning);
      assert.equal(stderr.match(/warning/g)?.length, 1, stderr);
    });

    await t.step("no warning on 127.0.0.1, with TLS, or without a token", async () => {
      for (
        const args of [
          ["--host", "127.0.0.1", ...token],
          ["--host", "0.0.0.0", ...token, ...tls],
          ["--host", "0.0.0.0"],
        ]
      ) {
        const stderr = await stderrOf(...args);
        assert.doesNotMatch(stderr, /warning/, `${args.join(" ")}: ${stderr}`);
      }
    });

    await t.step("serve --help says what the token does not protect without TLS", async () => {
      const help = await dfs(["serve", "--help"]);
      assert.equal(help.code, 0);
      assert.match(
        help.stdout,
        /--token-file F +require this secret, checked once as a connection opens: without TLS, whoever relays a connection can send requests on it \(default: none\)/,
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the launcher runs the server with permissions narrowed to its host and data folder", async () => {
  await using server = await TestServer.start({ launcher: true });
  const cmdline = (await Deno.readTextFile(`/proc/${server.process.pid}/cmdline`)).split("\0");
  assert.ok(!cmdline.includes("--allow-all") && !cmdline.includes("-A"), cmdline.join(" "));
  assert.ok(cmdline.includes("--allow-net=127.0.0.1"), cmdline.join(" "));
  assert.ok(cmdline.includes(`--allow-write=${server.dataDir}`), cmdline.join(" "));
  assert.ok(
    cmdline.includes(`--allow-read=${ROOT.replace(/\/$/, "")},${server.dataDir}`),
    cmdline.join(" "),
  );
  // Everything still works within those permissions, Workers included.
  await using client = await DfsClient.connect(server.address);
  const data = pseudoRandomBytes(2 * 1024 * 1024 + 9, 77);
  await client.put("narrow/a", data);
  assert.deepEqual(await client.getBytes("narrow/a"), data);
  assert.deepEqual((await client.list()).map((e) => e.name), ["narrow/a"]);
});
