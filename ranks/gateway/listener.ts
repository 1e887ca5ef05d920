/**
 * The CBOR gateway's listening socket: accepts connections (over TLS when given a certificate),
 * makes room for each as the `ConnectionTable` says (closing the idlest connection, or refusing
 * the new one with `UNAVAILABLE` when every candidate is busy), serves each in a `Session` over
 * the store with its address's upload share, and closes them all on `close()`.
 *
 * @module
 */

import { closeQuietly, FrameWriter, setNoDelay } from "../../protocol/conn.ts";
import type { DfsError } from "../../protocol/errors.ts";
import type { StreamingFileStore } from "../common/file_store.ts";
import type { ServerLimits } from "../config.ts";
import type { Clock } from "../env/env.ts";
import { ConnectionTable } from "./connection_table.ts";
import { resolveLimits } from "./limits.ts";
import { Session } from "./session.ts";

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
  const table = new ConnectionTable<Session>(limits);
  /** Every session still running, those evicted from the table too (`close()` waits for them). */
  const sessions = new Set<Session>();
  const done = (async () => {
    for await (const conn of listener) {
      const peer = (conn.remoteAddr as Deno.NetAddr).hostname;
      const admission = table.admit(peer);
      if (!admission.admit) {
        void refuse(conn, admission.error);
        continue;
      }
      if (admission.evict) {
        const { connection, reason } = admission.evict;
        table.delete(connection);
        connection.evict(reason);
      }
      setNoDelay(conn);
      const session = table.add(peer, (addressUploadShare) =>
        new Session(conn, store, {
          limits,
          clock: options.clock,
          secret: options.secret,
          addressUploadShare,
        }));
      sessions.add(session);
      void session.run().finally(() => {
        table.delete(session);
        sessions.delete(session);
      });
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
