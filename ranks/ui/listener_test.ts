/**
 * The dashboard on a real socket: plain HTTP, and HTTPS with a token, as `dfs serve` runs it.
 */

import assert from "node:assert/strict";
import { makeCertificates } from "../../tests/_tls.ts";
import { SeededRandom } from "../env/seeded_random.ts";
import { systemClock } from "../env/system.ts";
import { MemoryCluster } from "../testing/memory_cluster.ts";
import { serveUi } from "./listener.ts";

const TOKEN = "listener-test-token-0123456789";
const env = { clock: systemClock, random: new SeededRandom(5), log: { error: () => {} } };

Deno.test("serveUi() serves the page and the API on the port it picked", async () => {
  const cluster = await MemoryCluster.start();
  const ui = serveUi(cluster.store, { hostname: "127.0.0.1", port: 0, env });
  try {
    assert.equal(ui.hostname, "127.0.0.1");
    assert.ok(ui.port > 0);
    const page = await fetch(`http://127.0.0.1:${ui.port}/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<script type="module" src="\/app.js"><\/script>/);
    const status = await fetch(`http://127.0.0.1:${ui.port}/api/status`);
    assert.equal(status.status, 200);
    assert.equal((await status.json()).ranks.length, 3);
  } finally {
    await ui.close();
    await cluster.close();
  }
});

Deno.test("serveUi() with TLS and a token: HTTPS, and a Secure __Host- cookie named by the port", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dfs-ui-tls-" });
  const cluster = await MemoryCluster.start();
  try {
    await makeCertificates(dir);
    const tls = {
      cert: await Deno.readTextFile(`${dir}/server.pem`),
      key: await Deno.readTextFile(`${dir}/server.key`),
    };
    const secret = new TextEncoder().encode(TOKEN);
    const ui = serveUi(cluster.store, { hostname: "127.0.0.1", port: 0, secret, tls, env });
    using client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(`${dir}/ca.pem`)] });
    try {
      const base = `https://127.0.0.1:${ui.port}`;
      const refused = await fetch(`${base}/api/status`, { client });
      assert.equal(refused.status, 401);
      await refused.body?.cancel();
      const login = await fetch(`${base}/api/login`, {
        client,
        method: "POST",
        headers: { "x-dfs-ui": "1", "content-type": "application/json" },
        body: JSON.stringify({ token: TOKEN }),
      });
      assert.equal(login.status, 200);
      await login.body?.cancel();
      const setCookie = login.headers.get("set-cookie")!;
      assert.match(
        setCookie,
        new RegExp(`^__Host-dfs_ui_${ui.port}=[\\w-]+; Path=/; HttpOnly; SameSite=Strict; Secure$`),
      );
      const status = await fetch(`${base}/api/status`, {
        client,
        headers: { cookie: setCookie.split(";")[0] },
      });
      assert.equal(status.status, 200);
      assert.equal((await status.json()).ranks.length, 3);
      await assert.rejects(fetch(`http://127.0.0.1:${ui.port}/api/status`), "no plain HTTP");
    } finally {
      await ui.close();
    }
  } finally {
    await cluster.close();
    await Deno.remove(dir, { recursive: true });
  }
});
