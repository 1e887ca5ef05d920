/**
 * How a client opens its connection to a server: TCP or TLS within a time limit, the TLS
 * handshake done up front so that its failures are told apart, and the signs that a client and a
 * server disagree about TLS (a TLS record where a frame was expected, or the reverse), each said
 * plainly.
 *
 * @module
 */

import { DfsError } from "./errors.ts";
import { setNoDelay } from "./conn.ts";

/**
 * Opens a TCP connection, or a TLS one trusting `tlsCaCerts` (its handshake done), within
 * `connectTimeoutMs`.
 *
 * @throws {DfsError} `UNAVAILABLE` saying why, and that the server seems not to speak TLS when it
 *   answers a TLS client with something else.
 */
export async function openSocket(
  hostname: string,
  port: number,
  options: { tlsCaCerts?: string[]; connectTimeoutMs: number },
): Promise<Deno.Conn> {
  const signal = AbortSignal.timeout(options.connectTimeoutMs);
  const { tlsCaCerts } = options;
  let conn: Deno.Conn;
  try {
    conn = tlsCaCerts
      ? await withTimeout(
        Deno.connectTls({ hostname, port, caCerts: tlsCaCerts }),
        signal,
        (late) => late.close(),
      )
      : await Deno.connect({ hostname, port, signal });
    setNoDelay(conn);
  } catch (error) {
    throw cannotConnect(hostname, port, error);
  }
  if (!tlsCaCerts) return conn;
  try {
    // Here rather than on the first write, so that its failures (a certificate the client does
    // not trust, a server without TLS) are told apart and bounded by the timeout.
    await withTimeout((conn as Deno.TlsConn).handshake(), signal);
    return conn;
  } catch (error) {
    conn.close();
    if (!isPlainReply(error)) throw cannotConnect(hostname, port, error);
    throw cannotConnect(
      hostname,
      port,
      `the server does not seem to speak TLS (${error.message}); ` +
        "leave out --tls-ca and DFS_TLS_CA to connect over plain TCP",
    );
  }
}

/** `Cannot connect to HOST:PORT: why` (an error's message, or a text). */
export function cannotConnect(hostname: string, port: number, why: unknown): DfsError {
  const reason = typeof why === "string" ? why : (why as Error).message;
  return new DfsError("UNAVAILABLE", `Cannot connect to ${hostname}:${port}: ${reason}`);
}

/** Rejects when `signal` aborts first; what `work` gives too late goes to `late` (to close it). */
function withTimeout<T>(
  work: Promise<T>,
  signal: AbortSignal,
  late?: (value: T) => void,
): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  const aborted = new Promise<never>((_, reject) => {
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
  work.then((value) => signal.aborted && late?.(value), () => {});
  return Promise.race([work, aborted]);
}

/**
 * Whether the first bytes of a server's answer are a TLS record rather than a frame header: a
 * record type (change cipher spec, alert, handshake, application data) then version 3.0 to 3.4.
 * Read as a length, those bytes are over 335 MB, far over any frame limit, so no frame is taken
 * for one.
 */
export function looksLikeTlsRecord(header: Uint8Array): boolean {
  return header.length >= 3 && header[0] >= 0x14 && header[0] <= 0x17 && header[1] === 0x03 &&
    header[2] <= 0x04;
}

/**
 * Whether a TLS handshake failed because the server's first bytes are no TLS record at all: a dfs
 * server without TLS answers the client's hello with a plain frame.
 */
function isPlainReply(error: unknown): error is Error {
  return error instanceof Deno.errors.InvalidData && /InvalidContentType/.test(error.message);
}

/** Parses `HOST:PORT` (IPv6 as `[::1]:7070`). */
export function parseAddress(address: string): { hostname: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(address);
  const port = Number(match?.[3]);
  if (!match || port > 65535) {
    throw new DfsError(
      "INVALID_REQUEST",
      `Invalid server address "${address}": expected HOST:PORT`,
    );
  }
  return { hostname: match[1] ?? match[2], port };
}
