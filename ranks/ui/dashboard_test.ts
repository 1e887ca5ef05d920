/**
 * The dashboard's API in-process, over rank 0's store on the in-process cluster: what it answers,
 * who may ask (the login, the session cookie, the header a change carries, the host a request
 * names), hostile names and list paging.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { FILE_SIZE_BYTES_MAX } from "../../protocol/limits.ts";
import { SeededRandom } from "../env/seeded_random.ts";
import { systemClock } from "../env/system.ts";
import { MemoryCluster } from "../testing/memory_cluster.ts";
import { Dashboard } from "./dashboard.ts";
import { UI_LIST_PAGE_MAX, UI_REQUEST_HEAD_BYTES_MAX } from "./limits.ts";

const ORIGIN = "http://127.0.0.1:8080";
const TOKEN = "dashboard-test-token-0123456789";
const CHANGE = { "x-dfs-ui": "1" };

async function dashboardOver(options: { token?: string } = {}) {
  const cluster = await MemoryCluster.start();
  const logged: string[] = [];
  const dashboard = new Dashboard(cluster.store, {
    secret: options.token === undefined ? undefined : new TextEncoder().encode(options.token),
    secure: false,
    hostname: "127.0.0.1",
    cookieName: "dfs_ui_test",
    env: {
      clock: systemClock,
      random: new SeededRandom(3),
      log: { error: (...parts: unknown[]) => void logged.push(parts.join(" ")) },
    },
  });
  /** Sends `path` (with `init`) and returns the answer. */
  const send = (path: string, init: RequestInit = {}) =>
    dashboard.handle(new Request(`${ORIGIN}${path}`, init));
  return {
    cluster,
    dashboard,
    logged,
    send,
    async [Symbol.asyncDispose]() {
      await cluster.close();
    },
  };
}

/** The JSON body of an answer, after checking its status. */
async function jsonOf(response: Response, status = 200): Promise<Record<string, unknown>> {
  const text = await response.text();
  assert.equal(response.status, status, text);
  assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
  return JSON.parse(text);
}

/** The error of an answer: its status, code and message. */
async function errorOf(response: Response) {
  const body = await response.json() as { error: { code: string; message: string } };
  return { status: response.status, ...body.error };
}

const bytesOf = (size: number, seed: number) => {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + seed * 7) & 0xff;
  return bytes;
};

const q = (name: string) => encodeURIComponent(name);

Deno.test("Dashboard serves the page's three files to anyone, with a strict content policy", async () => {
  await using ui = await dashboardOver({ token: TOKEN });
  for (
    const [path, type] of [["/", "text/html"], ["/app.js", "text/javascript"], [
      "/style.css",
      "text/css",
    ]]
  ) {
    const response = await ui.send(path);
    assert.equal(response.status, 200, path);
    assert.match(response.headers.get("content-type")!, new RegExp(`^${type}`));
    assert.match(response.headers.get("content-security-policy")!, /script-src 'self'/);
    assert.equal(response.headers.get("x-content-type-options"), "nosniff");
    assert.ok((await response.text()).length > 100);
  }
  const page = await (await ui.send("/")).text();
  assert.match(page, /<form id="login-form">/);
  assert.doesNotMatch(
    page,
    /<script>|style="/,
    "no inline script or style (the policy forbids them)",
  );
  assert.deepEqual(await errorOf(await ui.send("/", { method: "POST" })), {
    status: 405,
    code: "METHOD_NOT_ALLOWED",
    message: "POST is not allowed on /",
  });
  assert.equal((await errorOf(await ui.send("/nothing-here"))).status, 404);
});

Deno.test("Dashboard without a token answers status, capacity and throughput with no login", async () => {
  await using ui = await dashboardOver();
  assert.deepEqual(await jsonOf(await ui.send("/api/session")), {
    authRequired: false,
    authenticated: true,
  });
  const status = await jsonOf(await ui.send("/api/status")) as {
    ranks: { rank: number; state: string }[];
    underReplicatedChunks: number;
  };
  assert.deepEqual(status.ranks.map((r) => [r.rank, r.state]), [[1, "up"], [2, "up"], [3, "up"]]);
  assert.equal(status.underReplicatedChunks, 0);
  const capacity = await jsonOf(await ui.send("/api/capacity")) as {
    nodes: { rank: number; availableBytes: number }[];
    totals: { heldBytes: number; totalBytes: number; availableBytes: number };
  };
  assert.deepEqual(capacity.nodes.map((n) => n.rank), [1, 2, 3]);
  assert.ok(capacity.totals.totalBytes > 0);
  assert.ok(capacity.totals.availableBytes <= capacity.totals.totalBytes);
  const throughput = await jsonOf(await ui.send("/api/throughput")) as { ops: number[] };
  assert.equal(throughput.ops.length, 600);
  assert.deepEqual(
    await errorOf(await ui.send("/api/login", { method: "POST", headers: CHANGE })),
    {
      status: 404,
      code: "NOT_FOUND",
      message: "This dashboard has no login: the server has no token",
    },
  );
});

Deno.test("Dashboard with a token refuses every API call without the session cookie", async () => {
  await using ui = await dashboardOver({ token: TOKEN });
  await ui.cluster.store.put("secret.txt", new TextEncoder().encode("hidden"));
  assert.deepEqual(await jsonOf(await ui.send("/api/session")), {
    authRequired: true,
    authenticated: false,
  });
  const calls: [string, RequestInit][] = [
    ["/api/status", {}],
    ["/api/capacity", {}],
    ["/api/throughput", {}],
    ["/api/list", {}],
    ["/api/meta?name=secret.txt", {}],
    ["/api/file?name=secret.txt", {}],
    ["/api/file?name=secret.txt", { method: "DELETE", headers: CHANGE }],
    ["/api/file?name=new.txt", { method: "PUT", headers: CHANGE, body: "x" }],
  ];
  for (const [path, init] of calls) {
    assert.deepEqual(await errorOf(await ui.send(path, init)), {
      status: 401,
      code: "UNAUTHORIZED",
      message: "Log in with the server's token first",
    }, path);
    const forged = { ...init, headers: { ...init.headers, cookie: "dfs_ui_test=made-up" } };
    assert.equal((await ui.send(path, forged)).status, 401, `${path} with a made-up session`);
  }
  assert.equal((await ui.cluster.store.meta("secret.txt")).size, 6, "nothing was removed");
  await assert.rejects(ui.cluster.store.meta("new.txt"));
});

Deno.test("Dashboard logs in with the token into an HttpOnly, SameSite=Strict cookie, and out", async () => {
  await using ui = await dashboardOver({ token: TOKEN });
  const login = (body: string, headers: Record<string, string> = CHANGE) =>
    ui.send("/api/login", { method: "POST", headers, body });
  assert.deepEqual(await errorOf(await login(JSON.stringify({ token: "not-the-token-at-all!" }))), {
    status: 401,
    code: "UNAUTHORIZED",
    message: "The token is not the server's",
  });
  assert.equal((await errorOf(await login("{not json"))).status, 400);
  assert.equal((await errorOf(await login(JSON.stringify({ token: 7 })))).status, 400);
  assert.equal((await errorOf(await login("x".repeat(9000)))).status, 413);
  assert.equal(
    (await errorOf(await login(JSON.stringify({ token: TOKEN }), {}))).status,
    403,
    "a login needs the dashboard's header too",
  );

  const answer = await login(JSON.stringify({ token: `${TOKEN}\n` }));
  assert.deepEqual(await jsonOf(answer), { authenticated: true });
  const setCookie = answer.headers.get("set-cookie")!;
  assert.match(setCookie, /^dfs_ui_test=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict$/);
  const cookie = setCookie.split(";")[0];
  assert.deepEqual(await jsonOf(await ui.send("/api/session", { headers: { cookie } })), {
    authRequired: true,
    authenticated: true,
  });
  assert.equal((await ui.send("/api/status", { headers: { cookie } })).status, 200);
  // Among other cookies of the same host, in any order.
  const among = { cookie: `other=1; ${cookie}; more=2` };
  assert.equal((await ui.send("/api/list", { headers: among })).status, 200);

  const out = await ui.send("/api/logout", { method: "POST", headers: { ...CHANGE, cookie } });
  assert.match(out.headers.get("set-cookie")!, /^dfs_ui_test=; .*Max-Age=0/);
  assert.equal((await ui.send("/api/status", { headers: { cookie } })).status, 401);
});

Deno.test("Dashboard refuses a change without its header, or from another origin", async () => {
  await using ui = await dashboardOver();
  await ui.cluster.store.put("keep.txt", new TextEncoder().encode("keep"));
  const refusals: [RequestInit, string][] = [
    [{ method: "DELETE" }, "A change needs the header x-dfs-ui: 1 (the dashboard's page sends it)"],
    [{ method: "DELETE", headers: { "x-dfs-ui": "yes" } }, "A change needs the header x-dfs-ui: 1"],
    [
      { method: "DELETE", headers: { ...CHANGE, origin: "http://evil.example" } },
      "A change from another origin (http://evil.example) is refused",
    ],
  ];
  for (const [init, message] of refusals) {
    const error = await errorOf(await ui.send("/api/file?name=keep.txt", init));
    assert.equal(error.status, 403);
    assert.equal(error.code, "FORBIDDEN");
    assert.ok(error.message.startsWith(message), error.message);
  }
  const put = await ui.send("/api/file?name=forged.txt", { method: "PUT", body: "forged" });
  assert.equal(put.status, 403);
  await assert.rejects(ui.cluster.store.meta("forged.txt"));
  assert.equal((await ui.cluster.store.meta("keep.txt")).size, 4, "nothing was removed");
  // The page's own origin passes.
  const own = await ui.send("/api/file?name=keep.txt", {
    method: "DELETE",
    headers: { ...CHANGE, origin: ORIGIN, host: "127.0.0.1:8080" },
  });
  assert.deepEqual(await jsonOf(own), { removed: "keep.txt" });
});

Deno.test("Dashboard without a token answers only requests that name it by address, localhost or --ui-host", async () => {
  await using ui = await dashboardOver();
  for (const host of ["127.0.0.1:8080", "localhost:8080", "[::1]:8080", "LOCALHOST", "10.1.2.3"]) {
    assert.equal((await ui.send("/api/status", { headers: { host } })).status, 200, host);
  }
  const error = await errorOf(
    await ui.send("/api/status", { headers: { host: "evil.example:8080" } }),
  );
  assert.equal(error.status, 403);
  assert.match(error.message, /^Requests to host evil\.example are refused: without --token-file/);
  // With a token, a session is what counts, whatever the host's name.
  await using withToken = await dashboardOver({ token: TOKEN });
  const login = await withToken.send("/api/login", {
    method: "POST",
    headers: { ...CHANGE, host: "dfs.example.org" },
    body: JSON.stringify({ token: TOKEN }),
  });
  assert.equal(login.status, 200);
});

Deno.test("Dashboard uploads, lists, describes, downloads and removes a file", async () => {
  await using ui = await dashboardOver();
  const data = bytesOf(2 * 1024 * 1024 + 123, 1);
  const name = 'photos/2024/café "quoted".bin';
  const put = await ui.send(`/api/file?name=${q(name)}`, {
    method: "PUT",
    headers: { ...CHANGE, "content-length": String(data.length) },
    body: data,
  });
  const meta = await jsonOf(put, 201) as { name: string; size: number; sha256: string };
  assert.equal(meta.name, name);
  assert.equal(meta.size, data.length);
  assert.equal(meta.sha256, createHash("sha256").update(data).digest("hex"));

  const top = await jsonOf(await ui.send("/api/list"));
  assert.deepEqual(top, { prefix: "", rows: [{ type: "folder", name: "photos/" }] });
  const folder = await jsonOf(await ui.send(`/api/list?prefix=${q("photos/2024/")}`)) as {
    rows: { type: string; name: string; size: number; replicas: number }[];
  };
  assert.deepEqual(folder.rows.map((r) => [r.type, r.name, r.size, r.replicas]), [
    ["file", name, data.length, 2],
  ]);

  const described = await jsonOf(await ui.send(`/api/meta?name=${q(name)}`)) as {
    chunks: { ranks: number[] }[];
  };
  assert.equal(described.chunks.length, 3);
  assert.ok(described.chunks.every((c) => c.ranks.length === 2));

  const got = await ui.send(`/api/file?name=${q(name)}`);
  assert.equal(got.status, 200);
  assert.equal(got.headers.get("content-length"), String(data.length));
  assert.equal(
    got.headers.get("content-disposition"),
    `attachment; filename="caf_ _quoted_.bin"; filename*=UTF-8''caf%C3%A9%20%22quoted%22.bin`,
  );
  assert.deepEqual(new Uint8Array(await got.arrayBuffer()), data);

  const removed = await ui.send(`/api/file?name=${q(name)}`, { method: "DELETE", headers: CHANGE });
  assert.deepEqual(await jsonOf(removed), { removed: name });
  await assert.rejects(ui.cluster.store.meta(name));
  assert.deepEqual((await errorOf(await ui.send(`/api/meta?name=${q(name)}`))).status, 404);
  assert.deepEqual((await errorOf(await ui.send(`/api/file?name=${q(name)}`))).status, 404);

  // The store counted what went through the dashboard.
  const totals = (await jsonOf(await ui.send("/api/throughput"))).totals as {
    ops: Record<string, number>;
    readBytes: number;
    writtenBytes: number;
  };
  assert.equal(totals.ops.put, 1);
  assert.equal(totals.ops.get, 1);
  assert.equal(totals.ops.remove, 1);
  assert.equal(totals.writtenBytes, data.length);
  assert.equal(totals.readBytes, data.length);
});

Deno.test("Dashboard refuses hostile names with the store's own message, storing nothing", async () => {
  await using ui = await dashboardOver();
  const cases: [string, string][] = [
    ["../etc/passwd", 'Invalid name: name has a ".." segment'],
    ["/etc/passwd", 'Invalid name: name starts with "/"'],
    ["a//b", "Invalid name: name has an empty segment"],
    ["line\nbreak", "Invalid name: name contains a control character (U+000A)"],
    ["cafe\u0301", "Invalid name: name is not in Unicode NFC"],
    ["x".repeat(1025), "Invalid name: name is 1025 bytes, over the limit of 1024"],
    ["", "Invalid name: name is empty"],
  ];
  for (const [name, message] of cases) {
    const put = await ui.send(`/api/file?name=${q(name)}`, {
      method: "PUT",
      headers: { ...CHANGE, "content-length": "3" },
      body: "abc",
    });
    const error = await errorOf(put);
    assert.equal(error.status, 400, name);
    assert.equal(error.code, "INVALID_REQUEST");
    assert.ok(error.message.startsWith(message), error.message);
    assert.equal((await errorOf(await ui.send(`/api/file?name=${q(name)}`))).status, 400);
  }
  assert.deepEqual(await errorOf(await ui.send("/api/file")), {
    status: 400,
    code: "INVALID_REQUEST",
    message: "The name parameter is missing",
  });
  assert.equal((await errorOf(await ui.send(`/api/list?prefix=${q("a\u0000")}`))).status, 400);
  assert.deepEqual(await ui.cluster.store.list(), [], "nothing was stored");
});

Deno.test("Dashboard pages a listing with after and limit, folders folded", async () => {
  await using ui = await dashboardOver();
  const names = ["a.txt", "b/1", "b/2", "b/c/3", "c.txt", "d/x", "e.txt"];
  for (const name of names) await ui.cluster.store.put(name, new TextEncoder().encode(name));
  const seen: string[] = [];
  let after: string | undefined;
  for (let pages = 0; pages < 10; pages++) {
    const query = new URLSearchParams({ limit: "2", ...(after ? { after } : {}) });
    const page = await jsonOf(await ui.send(`/api/list?${query}`)) as {
      rows: { name: string }[];
      next?: string;
    };
    assert.ok(page.rows.length <= 2);
    seen.push(...page.rows.map((r) => r.name));
    if (page.next === undefined) break;
    after = page.next;
  }
  assert.deepEqual(seen, ["a.txt", "b/", "c.txt", "d/", "e.txt"]);
  for (const limit of ["0", String(UI_LIST_PAGE_MAX + 1), "2x", "-1"]) {
    const error = await errorOf(await ui.send(`/api/list?limit=${limit}`));
    assert.equal(error.status, 400);
    assert.equal(
      error.message,
      `limit must be a whole number from 1 to ${UI_LIST_PAGE_MAX}, got "${limit}"`,
    );
  }
});

Deno.test("Dashboard refuses an upload without a length, of a wrong length, or too large", async () => {
  await using ui = await dashboardOver();
  const put = (headers: Record<string, string>, body?: BodyInit) =>
    ui.send("/api/file?name=f.bin", { method: "PUT", headers: { ...CHANGE, ...headers }, body });
  assert.deepEqual(await errorOf(await put({})), {
    status: 411,
    code: "LENGTH_REQUIRED",
    message: "An upload needs a content-length",
  });
  assert.equal((await errorOf(await put({ "content-length": "ten" }))).status, 400);
  const tooLarge = await errorOf(await put({ "content-length": String(FILE_SIZE_BYTES_MAX + 1) }));
  assert.equal(tooLarge.status, 413);
  assert.equal(tooLarge.code, "TOO_LARGE");
  const short = await errorOf(await put({ "content-length": "10" }, "abc"));
  assert.deepEqual(short, {
    status: 400,
    code: "INVALID_REQUEST",
    message: 'Upload of "f.bin" ended after 3 of its declared 10 bytes',
  });
  const long = await errorOf(await put({ "content-length": "2" }, "abc"));
  assert.equal(long.status, 400);
  assert.match(long.message, /sent more than its declared 2 bytes/);
  await assert.rejects(ui.cluster.store.meta("f.bin"), "nothing was stored");
});

Deno.test("Dashboard fails an upload whose body breaks off or stalls, storing nothing", async () => {
  await using ui = await dashboardOver();
  const broken = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new Uint8Array(1000));
      controller.error(new Error("connection reset"));
    },
  });
  const error = await errorOf(
    await ui.send("/api/file?name=broken.bin", {
      method: "PUT",
      headers: { ...CHANGE, "content-length": "5000" },
      body: broken,
    }),
  );
  assert.deepEqual(error, {
    status: 400,
    code: "INCOMPLETE_BODY",
    message: "The upload's body broke off: connection reset",
  });
  await assert.rejects(ui.cluster.store.meta("broken.bin"));

  const cluster = ui.cluster;
  const quick = new Dashboard(cluster.store, {
    secure: false,
    hostname: "127.0.0.1",
    env: { clock: systemClock, random: new SeededRandom(1), log: { error: () => {} } },
    api: { bodyStallTimeoutMs: 100 },
  });
  const stalled = new ReadableStream<Uint8Array>({
    start: (controller) => controller.enqueue(new Uint8Array(10)),
  });
  const answer = await quick.handle(
    new Request(`${ORIGIN}/api/file?name=stalled.bin`, {
      method: "PUT",
      headers: { ...CHANGE, "content-length": "5000" },
      body: stalled,
    }),
  );
  assert.deepEqual(await errorOf(answer), {
    status: 408,
    code: "REQUEST_TIMEOUT",
    message: "No body bytes came for 100 ms",
  });
  await assert.rejects(cluster.store.meta("stalled.bin"));
});

Deno.test("Dashboard refuses a request head over UI_REQUEST_HEAD_BYTES_MAX and unknown API calls", async () => {
  await using ui = await dashboardOver();
  const huge = await ui.send("/api/status", {
    headers: { "x-padding": "x".repeat(UI_REQUEST_HEAD_BYTES_MAX) },
  });
  assert.deepEqual(await errorOf(huge), {
    status: 431,
    code: "HEADERS_TOO_LARGE",
    message: `The request's URL and headers are over ${UI_REQUEST_HEAD_BYTES_MAX} bytes`,
  });
  assert.equal((await errorOf(await ui.send("/api/nothing"))).status, 404);
  assert.deepEqual(
    await errorOf(await ui.send("/api/status", { method: "DELETE", headers: CHANGE })),
    {
      status: 405,
      code: "METHOD_NOT_ALLOWED",
      message: "DELETE is not allowed on /api/status",
    },
  );
  assert.equal((await errorOf(await ui.send("/api/file?name=x", { method: "POST" }))).status, 405);
  assert.deepEqual(ui.logged, [], "nothing was an internal error");
});
