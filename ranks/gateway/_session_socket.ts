/**
 * A client on a real loopback socket to a session over a store, greeted (the direct read and
 * upload tests share it).
 *
 * @module
 */

import assert from "node:assert/strict";
import { FrameReader, FrameWriter } from "../../protocol/conn.ts";
import { decodeFrameBody } from "../../protocol/frame.ts";
import { PROTOCOL_VERSION } from "../../protocol/limits.ts";
import type { StreamingFileStore } from "../common/file_store.ts";
import { DEFAULT_LIMITS, type ServerLimits } from "../config.ts";
import type { Clock } from "../env/env.ts";
import { Session } from "./session.ts";

/**
 * Connects a client to a new session over `store` and says hello. `next()` is the next reply
 * decoded (null at the end), failing after `replyTimeoutMs` when given; `close()` (or disposal)
 * closes the client and waits for the session to end.
 */
export async function sessionOnSocket(
  store: StreamingFileStore,
  options: { clock: Clock; limits?: Partial<ServerLimits>; replyTimeoutMs?: number },
) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [client, server] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
    listener.accept(),
  ]);
  listener.close();
  const session = new Session(server, store, {
    limits: { ...DEFAULT_LIMITS, ...options.limits },
    clock: options.clock,
  });
  const running = session.run();
  const reader = new FrameReader(client);
  const writer = new FrameWriter(client);
  const { replyTimeoutMs } = options;
  const read = async () => {
    const body = await reader.read();
    return body === null ? null : decodeFrameBody(body) as Record<string, unknown>;
  };
  const next = async () => {
    if (replyTimeoutMs === undefined) return await read();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("no reply from the session")), replyTimeoutMs);
    });
    try {
      return await Promise.race([read(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  };
  await writer.send({ op: "hello", version: PROTOCOL_VERSION });
  assert.equal((await next())?.op, "hello");
  let closed = false;
  const close = async () => {
    if (!closed) client.close();
    closed = true;
    await running;
  };
  return { writer, next, running, close, [Symbol.asyncDispose]: close };
}
