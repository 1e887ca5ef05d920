/**
 * The dashboard on a socket: `Deno.serve` on `--ui-host:--ui-port` (HTTPS with the server's TLS
 * certificate, as the S3 gateway), answering with `Dashboard`.
 *
 * @module
 */

import type { Env } from "../env/env.ts";
import type { UiStore } from "./api.ts";
import { Dashboard, UI_COOKIE_NAME } from "./dashboard.ts";

/** What `dfs serve` sets for the dashboard. */
export interface UiOptions {
  hostname: string;
  /** 0 picks a free port. */
  port: number;
  /** The token (`--token-file`): with it the dashboard asks for it before it shows anything. */
  secret?: Uint8Array;
  /** TLS, as the client port has it. */
  tls?: { cert: string; key: string };
}

/** A running dashboard. */
export interface UiServer {
  readonly hostname: string;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Serves the dashboard over `store` on `options.hostname:port`.
 *
 * @throws the listen error (address in use, no permission).
 */
export function serveUi(
  store: UiStore,
  options: UiOptions & { env: Pick<Env, "clock" | "random" | "log"> },
): UiServer {
  const handler: { dashboard?: Dashboard } = {};
  const server = Deno.serve({
    hostname: options.hostname,
    port: options.port,
    ...(options.tls ?? {}),
    onListen: () => {},
    onError: (error) => {
      options.env.log.error("dfs: the dashboard failed a request:", error);
      return new Response(null, { status: 500 });
    },
  }, (request) => handler.dashboard!.handle(request));
  const addr = server.addr as Deno.NetAddr;
  // Browsers keep one cookie jar per host, whatever the port: the port in the cookie's name keeps
  // two dashboards on one host apart. Over TLS the __Host- prefix pins it to this very host.
  const secure = options.tls !== undefined;
  handler.dashboard = new Dashboard(store, {
    secret: options.secret,
    secure,
    hostname: options.hostname,
    cookieName: `${secure ? "__Host-" : ""}${UI_COOKIE_NAME}_${addr.port}`,
    env: options.env,
  });
  return {
    hostname: addr.hostname,
    port: addr.port,
    async close() {
      await server.shutdown();
    },
  };
}
