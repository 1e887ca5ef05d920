/**
 * The whole server on rank 0's thread: the ranks (`rank0/cluster.ts`), the CBOR gateway over
 * their store (`gateway/`), and the background scrubber. `dfs serve` runs one; tests run one in
 * their own process to reach its seams (the launcher, the log).
 *
 * @module
 */

import { type ClientServer, serveClients, type ServeOptions } from "./gateway/mod.ts";
import { type Cluster, type ClusterOptions, startCluster } from "./rank0/cluster.ts";
import type { DfsStore } from "./rank0/store.ts";
import { denoFileSystem } from "./env/deno_env.ts";
import { type S3Options, type S3Server, serveS3 } from "./s3/listener.ts";
import { serveUi, type UiOptions, type UiServer } from "./ui/mod.ts";

/** Everything `dfs serve` sets. */
export interface ServerOptions extends ClusterOptions, ServeOptions {
  /**
   * Bytes per second the scrubber reads (0: no scrubbing), its pause between passes, and the
   * client operations in the last second over which it waits (default
   * `SCRUB_BUSY_OPS_PER_SEC_MAX`).
   */
  scrub: { bytesPerSec: number; pauseMs: number; busyOpsPerSecMax?: number };
  /** The S3 gateway, when `--s3-port` is given. */
  s3?: S3Options;
  /** The dashboard, when `--ui-port` is given. */
  ui?: UiOptions;
}

/** A running server. */
export interface Server extends AsyncDisposable {
  readonly cluster: Cluster;
  readonly store: DfsStore;
  readonly gateway: ClientServer;
  /** The S3 gateway, when one runs. */
  readonly s3?: S3Server;
  /** The dashboard, when one runs. */
  readonly ui?: UiServer;
  /** Stops the scrubber, the gateway and the ranks. */
  close(): Promise<void>;
}

/**
 * Starts the ranks, recovers the store and serves clients.
 *
 * @throws {DfsError} as `startCluster` and `serveClients` do; nothing keeps running then.
 */
export async function startServer(options: ServerOptions): Promise<Server> {
  // Clients that speak TLS are offered only data ports that do too.
  const cluster = await startCluster({ ...options, directTls: options.tls !== undefined });
  let gateway: ClientServer | undefined;
  let s3: S3Server | undefined;
  let ui: UiServer | undefined;
  try {
    gateway = serveClients(cluster.store, { ...options, clock: cluster.store.env.clock });
    if (options.s3) {
      const env = { ...cluster.store.env, fs: options.env?.fs ?? denoFileSystem };
      s3 = await serveS3(cluster.store, { ...options.s3, dataDir: options.dataDir, env });
    }
    if (options.ui) ui = serveUi(cluster.store, { ...options.ui, env: cluster.store.env });
  } catch (error) {
    await s3?.close();
    await gateway?.close();
    await cluster.close();
    throw error;
  }
  const { store } = cluster;
  if (options.secret && !options.tls && !isLoopbackHost(options.hostname)) {
    store.env.log.error(
      `dfs: warning: --token-file without TLS on ${options.hostname}: the token is checked once, ` +
        "when a connection opens, so anyone who can relay a connection can send their own " +
        "requests on it; serve TLS (--tls-cert, --tls-key) or listen on a loopback address",
    );
  }
  if (options.ui?.secret && !options.ui.tls && !isLoopbackHost(options.ui.hostname)) {
    store.env.log.error(
      `dfs: warning: the dashboard on ${options.ui.hostname} takes the token and sends its ` +
        "session cookie without TLS: serve TLS (--tls-cert, --tls-key) or listen on a loopback " +
        "address (--ui-host)",
    );
  }
  const scrubbing = new AbortController();
  const { bytesPerSec, pauseMs, busyOpsPerSecMax } = options.scrub;
  const scrubber = bytesPerSec === 0
    ? Promise.resolve()
    : store.integrity.scrub({ bytesPerSec, pauseMs, busyOpsPerSecMax, signal: scrubbing.signal })
      .catch((error) => store.env.log.error("dfs: the scrubber stopped:", error));
  let closing: Promise<void> | undefined;
  const close = () =>
    closing ??= (async () => {
      scrubbing.abort();
      await ui?.close();
      await s3?.close();
      await gateway!.close();
      await scrubber;
      await cluster.close();
    })();
  return {
    cluster,
    store,
    gateway,
    ...(s3 ? { s3 } : {}),
    ...(ui ? { ui } : {}),
    close,
    [Symbol.asyncDispose]: close,
  };
}

/**
 * Whether `hostname` is a loopback address, which only this machine reaches: 127.0.0.0/8, `::1`
 * (bracketed or not) or `localhost`. Names are not resolved: any other name counts as reachable.
 */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase();
  if (host === "localhost" || host === "::1" || host === "[::1]") return true;
  const ipv4 = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  return ipv4 !== null && ipv4.slice(1).every((part) => Number(part) <= 255);
}
