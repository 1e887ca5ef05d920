/**
 * The side of `deno task bench --multi-host` (`_multi_host.ts`) that runs inside the hosts (the
 * benchmark's own process, in the root namespace, cannot reach them): `client SERVER CONNECTIONS`
 * answers one JSON line per request line on stdin (`put`, `get`, `rm`, `status`, `send`); `sink
 * PORT` drains each TCP connection it accepts and prints one JSON line for it.
 *
 * @module
 */

import { DfsClient, parseAddress } from "../client.ts";
import { getConcurrently, putConcurrently, source } from "./_large_file.ts";

/** Bytes the bare receiver reads at once. */
const SINK_READ_BYTES = 1024 * 1024;

/** Answers requests on stdin over `connections` connections to `server` (see the module doc). */
async function clientMain(server: string, connections: number): Promise<void> {
  const clients = await Promise.all(
    Array.from({ length: connections }, () => DfsClient.connect(server)),
  );
  say({ ok: true, result: "connected" });
  try {
    for await (const line of linesOf(Deno.stdin.readable)) {
      try {
        say({ ok: true, result: await answer(clients, JSON.parse(line)) });
      } catch (error) {
        say({ ok: false, error: (error as Error).message ?? String(error) });
      }
    }
  } finally {
    for (const client of clients) client.close();
  }
}

async function answer(clients: DfsClient[], request: Record<string, unknown>): Promise<unknown> {
  const files = { prefix: String(request.prefix), sizeBytes: Number(request.sizeBytes) };
  switch (request.op) {
    case "put":
      await putConcurrently(clients, files);
      return { files: clients.length };
    case "get":
      await getConcurrently(clients, files);
      return { files: clients.length };
    case "rm":
      return { removed: await clients[0].removePrefix(String(request.prefix)) };
    case "status":
      return (await clients[0].status()).ranks.map((rank) => rank.state);
    case "send": {
      const conn = await Deno.connect(parseAddress(String(request.address)));
      await source(Number(request.bytes)).pipeTo(conn.writable);
      return {};
    }
  }
  throw new Error(`Unknown request "${request.op}"`);
}

/** Drains every TCP connection to `port`; prints its bytes and seconds from first byte to EOF. */
async function sinkMain(port: number): Promise<void> {
  const listener = Deno.listen({ hostname: "0.0.0.0", port });
  say({ ok: true, result: "listening" });
  const buffer = new Uint8Array(SINK_READ_BYTES);
  for await (const conn of listener) {
    let [bytes, firstMs] = [0, 0];
    for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
      if (bytes === 0) firstMs = performance.now();
      bytes += n;
    }
    conn.close();
    say({ bytes, seconds: (performance.now() - firstMs) / 1000 });
  }
}

function say(message: unknown): void {
  console.log(JSON.stringify(message));
}

async function* linesOf(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffered = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    buffered += text;
    for (let at = buffered.indexOf("\n"); at >= 0; at = buffered.indexOf("\n")) {
      yield buffered.slice(0, at);
      buffered = buffered.slice(at + 1);
    }
  }
}

if (import.meta.main) {
  const [role, first, second] = Deno.args;
  if (role === "client") await clientMain(first, Number(second));
  else if (role === "sink") await sinkMain(Number(first));
  else {
    console.error("usage: _multi_host_host.ts client SERVER CONNECTIONS | sink PORT");
    Deno.exit(2);
  }
}
