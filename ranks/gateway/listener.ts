/**
 * The CBOR gateway's listening socket: accepts connections (over TLS when given a certificate),
 * refuses one over the connection limit with `UNAVAILABLE`, serves each in a `Session` over the
 * store, and closes them all on `close()`.
 *
 * @module
 */

import { FrameWriter, setNoDelay } from "../../protocol/conn.ts";
import { DfsError } from "../../protocol/errors.ts";
import type { StreamingFileStore } from "../common/file_store.ts";
import type { ServerLimits } from "../config.ts";
import type { Clock } from "../env/env.ts";
import { resolveLimits } from "./limits.ts";
import { closeQuietly, Session } from "./session.ts";

/** A running client listener. */
export interface ClientServer {
  readonly hostname: string;
  readonly port: number;
  /** Stops accepting, closes every connection and waits for their handlers. */
  close(): Promise<void>;
}

/** How clients must prove themselves and how the socket is protected; both optional. */
export interface ServerSecurity {
  /** Shared secret: every client must answer the hello's challenge with an HMAC of it. */
  secret?: Uint8Array;
  /** PEM certificate chain and private key: the listener speaks TLS. */
  tls?: { cert: string; key: string };
}

/** Where to listen, the limits (defaults: `DEFAULT_LIMITS`), the security, and the clock. */
export interface ServeOptions extends ServerSecurity {
  hostname: string;
  /** 0 picks a free port. */
  port: number;
  limits?: Partial<ServerLimits>;
  /** The clock of every session's timers (default: the system's). */
  clock?: Clock;
}

/**
 * Listens on `hostname:port` and serves the CBOR protocol over `store` until closed.
 *
 * @throws {DfsError} `INVALID_REQUEST` for a frame limit out of range; the listen call's error
 *   (e.g. `Deno.errors.AddrInUse`) if the address cannot be bound.
 */
export function serveClients(store: StreamingFileStore, options: ServeOptions): ClientServer {
  const limits = resolveLimits(options.limits);
  const address = { hostname: options.hostname, port: options.port, transport: "tcp" as const };
  const listener: Deno.Listener = options.tls
    ? Deno.listenTls({ ...address, cert: options.tls.cert, key: options.tls.key })
    : Deno.listen(address);
  const sessions = new Set<Session>();
  const done = (async () => {
    for await (const conn of listener) {
      if (sessions.size >= limits.connectionsMax) {
        void refuse(
          conn,
          new DfsError(
            "UNAVAILABLE",
            `Server is at its limit of ${limits.connectionsMax} connections`,
          ),
        );
        continue;
      }
      setNoDelay(conn);
      const session = new Session(conn, store, {
        limits,
        clock: options.clock,
        secret: options.secret,
      });
      sessions.add(session);
      void session.run().finally(() => sessions.delete(session));
    }
  })().catch(() => {}); // the listener was closed
  const addr = listener.addr as Deno.NetAddr;
  return {
    hostname: addr.hostname,
    port: addr.port,
    async close() {
      try {
        listener.close();
      } catch { /* already closed */ }
      await done;
      await Promise.all([...sessions].map((s) => s.close()));
    },
  };
}

/** Answers a connection the server will not serve with `error` and closes it. */
async function refuse(conn: Deno.Conn, error: DfsError): Promise<void> {
  try {
    await new FrameWriter(conn).send({ op: "error", id: 0, ...error.toWire() });
  } catch { /* the client is gone */ }
  closeQuietly(conn);
}
