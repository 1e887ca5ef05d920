/**
 * The S3 gateway on a socket: `http_server.ts` on `--s3-host:--s3-port`, answering with
 * `S3Gateway`.
 *
 * @module
 */

import type { StreamingFileStore } from "../common/file_store.ts";
import type { Env } from "../env/env.ts";
import { Buckets } from "./buckets.ts";
import { S3Gateway } from "./gateway.ts";
import { serveHttp } from "./http_server.ts";

/** What `dfs serve` sets for the S3 gateway. */
export interface S3Options {
  hostname: string;
  /** 0 picks a free port. */
  port: number;
  region: string;
  /** Access key id to secret. */
  credentials: ReadonlyMap<string, string>;
  /** TLS, as the client port has it. */
  tls?: { cert: string; key: string };
}

/** A running S3 gateway. */
export interface S3Server {
  readonly hostname: string;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Serves the S3 API over `store` on `options.hostname:port`, its buckets kept in `dataDir`.
 *
 * @throws the listen error (address in use, no permission); `DfsError` `CORRUPTED` for an
 *   unreadable bucket file.
 */
export async function serveS3(
  store: StreamingFileStore,
  options: S3Options & { dataDir: string; env: Pick<Env, "clock" | "log" | "fs"> },
): Promise<S3Server> {
  const buckets = await Buckets.open(options.dataDir, options.env.fs);
  const gateway = new S3Gateway({
    store,
    buckets,
    credentials: options.credentials,
    region: options.region,
    clock: options.env.clock,
    log: options.env.log,
  });
  const listener = options.tls
    ? Deno.listenTls({ hostname: options.hostname, port: options.port, ...options.tls })
    : Deno.listen({ hostname: options.hostname, port: options.port });
  const server = serveHttp(listener, (request) => gateway.handle(request), {
    log: options.env.log,
    scheme: options.tls ? "https" : "http",
  });
  const stopSweeping = gateway.sweepUploads();
  const addr = server.addr as Deno.NetAddr;
  return {
    hostname: addr.hostname,
    port: addr.port,
    async close() {
      await stopSweeping();
      await server.shutdown();
    },
  };
}
