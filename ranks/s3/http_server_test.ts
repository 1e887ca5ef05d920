/**
 * The S3 gateway's HTTP/1.1 server over real sockets, driven byte by byte: keep-alive with heads
 * split anywhere and requests pipelined, sized and chunked bodies, `Expect: 100-continue`, HEAD,
 * sized, gathered and chunked responses, bad input, slow clients, a client that goes away, and
 * the connection limit.
 */

import assert from "node:assert/strict";
import { type HttpHandler, type HttpLimits, serveHttp } from "./http_server.ts";

const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");

/** A server on a free port with `handler`; shorter limits where given. */
function serve(handler: HttpHandler, limits: Partial<HttpLimits> = {}) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const logged: string[] = [];
  const server = serveHttp(listener, handler, {
    log: { error: (...parts) => void logged.push(parts.join(" ")) },
    limits,
  });
  return {
    port: server.addr.port,
    logged,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}

/** A raw client connection. */
async function connect(port: number) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  let text = "";
  const buffer = new Uint8Array(64 * 1024);
  return {
    conn,
    async send(...pieces: string[]) {
      for (const piece of pieces) {
        await conn.write(encoder.encode(piece));
        await new Promise((r) => setTimeout(r, 5)); // apart, as separate packets
      }
    },
    /** Reads until `text` has `count` complete responses, or the connection ends. */
    async responses(count: number, timeoutMs = 5000): Promise<string> {
      const deadline = Date.now() + timeoutMs;
      while (countResponses(text) < count && Date.now() < deadline) {
        const n = await conn.read(buffer).catch(() => null);
        if (n === null) break;
        text += latin1.decode(buffer.subarray(0, n));
      }
      return text;
    },
    /** Reads until `text` matches `pattern`, or `timeoutMs` passes; returns what was read. */
    async until(pattern: RegExp, timeoutMs = 2000): Promise<string> {
      const deadline = Date.now() + timeoutMs;
      const timer = setTimeout(() => conn.close(), timeoutMs);
      try {
        while (!pattern.test(text) && Date.now() < deadline) {
          const n = await conn.read(buffer);
          if (n === null) break;
          text += latin1.decode(buffer.subarray(0, n));
        }
      } catch {
        /* timed out: closed */
      } finally {
        clearTimeout(timer);
      }
      return text;
    },
    /** Whether the server closes the connection within `ms`. */
    async closedWithin(ms: number): Promise<boolean> {
      const timer = setTimeout(() => conn.close(), ms);
      try {
        while (true) {
          const n = await conn.read(buffer);
          if (n === null) return true;
          text += latin1.decode(buffer.subarray(0, n));
        }
      } catch {
        return false; // closed by us: still open at the server
      } finally {
        clearTimeout(timer);
      }
    },
    close() {
      try {
        conn.close();
      } catch { /* closed */ }
    },
  };
}

/** Complete responses in `text` (heads with a sized or chunked body). */
function countResponses(text: string): number {
  let count = 0;
  let at = 0;
  while (true) {
    const end = text.indexOf("\r\n\r\n", at);
    if (end < 0) return count;
    const head = text.slice(at, end);
    let next = end + 4;
    const length = /content-length: (\d+)/i.exec(head);
    if (/^HTTP\/1\.1 1\d\d/.test(head)) next = end + 4;
    else if (length && !/^HEAD/.test(head)) next += Number(length[1]);
    else if (/transfer-encoding: chunked/i.test(head)) {
      const last = text.indexOf("\r\n0\r\n\r\n", end);
      if (last < 0) return count;
      next = last + 7;
    }
    if (next > text.length) return count;
    if (!/^HTTP\/1\.1 1\d\d/.test(head)) count++;
    at = next;
  }
}

const echo: HttpHandler = async (request) => {
  const body = request.body ? await request.text() : "";
  return new Response(`${request.method} ${new URL(request.url).pathname} [${body}]`, {
    headers: { "x-seen": request.headers.get("x-test") ?? "" },
  });
};

Deno.test("HTTP server: keep-alive, heads split anywhere, requests pipelined", async () => {
  await using server = serve(echo);
  const client = await connect(server.port);
  try {
    await client.send(
      "GET /a HTTP/1.1\r\nHo",
      "st: x\r\nX-Test: 1\r\n",
      "\r\nPUT /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhel",
      "loGET /c HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    const text = await client.responses(3);
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(text, /x-seen: 1\r\n/);
    assert.ok(text.includes("GET /a []"), text);
    assert.ok(text.includes("PUT /b [hello]"), text);
    assert.ok(text.includes("GET /c []"), text);
    assert.ok(!/connection: close/i.test(text));
  } finally {
    client.close();
  }
});

Deno.test("HTTP server: a chunked body is decoded, extensions and trailers skipped", async () => {
  await using server = serve(echo);
  const client = await connect(server.port);
  try {
    await client.send(
      "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
      "3;ext=1\r\nabc\r\n",
      "A\r\n0123456789\r\n0\r\nx-trailer: 1\r\n\r\n",
      "GET /after HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    const text = await client.responses(2);
    assert.ok(text.includes("POST /c [abc0123456789]"), text);
    assert.ok(text.includes("GET /after []"), text);
  } finally {
    client.close();
  }
});

Deno.test("HTTP server: Expect: 100-continue is answered only when the body is read", async () => {
  const refuse: HttpHandler = (request) =>
    new URL(request.url).pathname === "/no" ? new Response("no", { status: 403 }) : echo(request);
  await using server = serve(refuse);
  const yes = await connect(server.port);
  try {
    await yes.send(
      "PUT /yes HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
    );
    const interim = await yes.until(/\r\n\r\n/);
    assert.match(interim, /^HTTP\/1\.1 100 Continue\r\n\r\n$/, "the interim answer, alone");
    await yes.send("abc");
    assert.ok((await yes.responses(1)).includes("PUT /yes [abc]"));
  } finally {
    yes.close();
  }
  const no = await connect(server.port);
  try {
    await no.send(
      "PUT /no HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
    );
    const text = await no.responses(1);
    assert.match(text, /^HTTP\/1\.1 403 Forbidden\r\n/, "no 100 first");
    assert.match(text, /connection: close/, "the body was never read: the connection closes");
    assert.ok(await no.closedWithin(2000));
  } finally {
    no.close();
  }
});

Deno.test("HTTP server: HEAD, 204, gathered and chunked responses", async () => {
  const big = new Uint8Array(200 * 1024).fill(65);
  await using server = serve((request) => {
    const path = new URL(request.url).pathname;
    if (path === "/empty") return new Response(null, { status: 204 });
    if (path === "/sized") {
      return new Response("12345", { headers: { "content-length": "5" } });
    }
    // A stream of unknown length: short, or over the gathering bound.
    const pieces = path === "/short" ? [encoder.encode("sh"), encoder.encode("ort")] : [big, big];
    return new Response(
      new ReadableStream({
        start(controller) {
          for (const piece of pieces) controller.enqueue(piece);
          controller.close();
        },
      }),
    );
  });
  const client = await connect(server.port);
  try {
    await client.send(
      "HEAD /sized HTTP/1.1\r\nHost: x\r\n\r\n" +
        "GET /empty HTTP/1.1\r\nHost: x\r\n\r\n" +
        "GET /short HTTP/1.1\r\nHost: x\r\n\r\n" +
        "GET /long HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    const text = await client.responses(4);
    const [head, empty, short, long] = text.split(/(?=HTTP\/1\.1 )/);
    assert.match(head, /content-length: 5\r\n\r\n$/, "HEAD keeps the length, sends no body");
    assert.match(empty, /^HTTP\/1\.1 204 No Content\r\n/);
    assert.ok(!/content-length/i.test(empty));
    assert.match(short, /content-length: 5\r\n\r\nshort$/, "a short stream is sent sized");
    assert.match(long, /transfer-encoding: chunked\r\n/);
    let body = long.slice(long.indexOf("\r\n\r\n") + 4);
    let decoded = 0;
    while (true) {
      const line = body.indexOf("\r\n");
      const size = parseInt(body.slice(0, line), 16);
      if (size === 0) break;
      assert.equal(body.slice(line + 2 + size, line + 4 + size), "\r\n", "each chunk ends in CRLF");
      decoded += size;
      body = body.slice(line + 4 + size);
    }
    assert.equal(body, "0\r\n\r\n", "the last chunk, no trailers");
    assert.equal(decoded, 2 * big.length);
  } finally {
    client.close();
  }
});

Deno.test("HTTP server: bad input gets 400, 431 or 501 and a closed connection", async () => {
  await using server = serve(echo);
  const cases: [string, RegExp][] = [
    ["GARBAGE\r\n\r\n", /^HTTP\/1\.1 400 /],
    ["GET /a HTTP/1.1\r\n\r\n", /^HTTP\/1\.1 400 /], // no Host
    ["GET /a HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", /^HTTP\/1\.1 400 /],
    ["PUT /a HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", /^HTTP\/1\.1 400 /],
    [
      "PUT /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
      /^HTTP\/1\.1 400 /,
    ],
    ["PUT /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", /^HTTP\/1\.1 501 /],
    [`GET /${"a".repeat(70 * 1024)} HTTP/1.1\r\nHost: x\r\n\r\n`, /^HTTP\/1\.1 431 /],
  ];
  for (const [request, status] of cases) {
    const client = await connect(server.port);
    try {
      await client.conn.write(encoder.encode(request)).catch(() => {});
      const text = await client.responses(1);
      assert.match(text, status, JSON.stringify(request.slice(0, 60)));
      assert.match(text, /connection: close/);
      assert.ok(await client.closedWithin(2000));
    } finally {
      client.close();
    }
  }
});

Deno.test("HTTP server: a head that stops coming and an idle connection are closed", async () => {
  await using server = serve(echo, { headTimeoutMs: 300, idleTimeoutMs: 600, watchdogMs: 50 });
  const slow = await connect(server.port);
  const idle = await connect(server.port);
  try {
    await slow.send("GET /a HTTP/1.1\r\nHo");
    const started = Date.now();
    assert.ok(await slow.closedWithin(3000), "the slow head is closed");
    assert.ok(Date.now() - started < 2000);
    await idle.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.equal(countResponses(await idle.responses(1)), 1);
    assert.ok(await idle.closedWithin(3000), "then, idle, it is closed");
  } finally {
    slow.close();
    idle.close();
  }
});

Deno.test("HTTP server: a client gone mid-response has the response body cancelled", async () => {
  const cancelled = Promise.withResolvers<void>();
  await using server = serve(() =>
    new Response(
      new ReadableStream({
        pull(controller) {
          controller.enqueue(new Uint8Array(256 * 1024));
        },
        cancel() {
          cancelled.resolve();
        },
      }),
    )
  );
  const client = await connect(server.port);
  await client.send("GET /endless HTTP/1.1\r\nHost: x\r\n\r\n");
  await client.conn.read(new Uint8Array(1024));
  client.close();
  await cancelled.promise; // would hang (and fail the test) otherwise
});

Deno.test("HTTP server: connections past the limit are closed at once", async () => {
  await using server = serve(echo, { connectionsMax: 1 });
  const first = await connect(server.port);
  try {
    await first.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.equal(countResponses(await first.responses(1)), 1);
    const second = await connect(server.port);
    try {
      assert.ok(await second.closedWithin(2000));
    } finally {
      second.close();
    }
  } finally {
    first.close();
  }
});
