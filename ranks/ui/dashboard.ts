/**
 * The dashboard over HTTP, without a socket: the page's three files, the login, and who may call
 * the API (`api.ts`). `listener.ts` puts it on a port.
 *
 * Who may do what:
 * - The page's files hold no data: anyone may load them.
 * - With a token (`--token-file`), every API call needs a session (`sessions.ts`): the page shows
 *   a login form until `POST /api/login` with the token sets the session cookie.
 * - Without a token there is no login, as on the CBOR port; but a request must then name this
 *   host by an IP address, `localhost` or `--ui-host`, so a page from another site cannot reach
 *   the API by pointing its own host name at this address (DNS rebinding).
 * - A call that changes something (upload, delete, login, logout) must carry `x-dfs-ui: 1`, and
 *   an `Origin` (when the browser sends one) of this very host: a form on another site can send
 *   neither, and a script there cannot add the header without a CORS preflight, which is never
 *   granted. With SameSite=Strict cookies, this keeps other sites from forging changes.
 *
 * @module
 */

import { concatBytes } from "../../protocol/bytes.ts";
import type { Env } from "../env/env.ts";
import { UiApi, type UiApiOptions, type UiStore } from "./api.ts";
import { ASSETS } from "./assets.ts";
import { cookieOf, errorResponse, HttpError, json, sessionCookie } from "./http.ts";
import { UI_LOGIN_BODY_BYTES_MAX, UI_REQUEST_HEAD_BYTES_MAX } from "./limits.ts";
import { Sessions } from "./sessions.ts";

/** The header a mutating call carries, and its value. */
export const UI_MUTATION_HEADER = "x-dfs-ui";
/** The session cookie's name, unless told (`listener.ts` adds the port: cookies ignore ports). */
export const UI_COOKIE_NAME = "dfs_ui";

/** Headers of the page's files: only this server's scripts, styles and connections. */
const ASSET_HEADERS = {
  "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; " +
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; " +
    "base-uri 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-cache",
};

/** Options of `new Dashboard()`. */
export interface DashboardOptions {
  /** The token: with it every API call needs a login; without it none does. */
  secret?: Uint8Array;
  /** Whether it is served over TLS (the cookie is then `Secure`). */
  secure: boolean;
  /** The host it listens on (`--ui-host`), which requests may name (see the module doc). */
  hostname: string;
  /** The session cookie's name (default `UI_COOKIE_NAME`). */
  cookieName?: string;
  env: Pick<Env, "clock" | "random" | "log">;
  /** The API's own options (its limits). */
  api?: Omit<UiApiOptions, "clock">;
}

/** Answers the dashboard's requests over a store. */
export class Dashboard {
  #api: UiApi;
  #sessions: Sessions | undefined;
  #options: DashboardOptions;
  #cookieName: string;

  constructor(store: UiStore, options: DashboardOptions) {
    this.#api = new UiApi(store, { ...options.api, clock: options.env.clock });
    this.#options = options;
    this.#cookieName = options.cookieName ?? UI_COOKIE_NAME;
    this.#sessions = options.secret === undefined
      ? undefined
      : new Sessions(options.secret, { clock: options.env.clock, random: options.env.random });
  }

  /** Answers one request; never throws (a failure is a JSON error with its HTTP status). */
  async handle(request: Request): Promise<Response> {
    try {
      const url = new URL(request.url);
      if (headBytes(request, url) > UI_REQUEST_HEAD_BYTES_MAX) {
        throw new HttpError(
          431,
          "HEADERS_TOO_LARGE",
          `The request's URL and headers are over ${UI_REQUEST_HEAD_BYTES_MAX} bytes`,
        );
      }
      if (this.#sessions === undefined) this.#checkHost(request);
      const method = request.method.toUpperCase();
      const asset = ASSETS.get(url.pathname);
      if (asset !== undefined) {
        if (method !== "GET" && method !== "HEAD") throw notAllowed(method, url.pathname);
        const headers = { ...ASSET_HEADERS, "content-type": asset.contentType };
        return new Response(method === "HEAD" ? null : asset.body, { headers });
      }
      switch (url.pathname) {
        case "/api/session":
          if (method !== "GET") throw notAllowed(method, url.pathname);
          return json({
            authRequired: this.#sessions !== undefined,
            authenticated: this.#authenticated(request),
          });
        case "/api/login":
          if (method !== "POST") throw notAllowed(method, url.pathname);
          this.#checkMutation(request);
          return await this.#login(request);
        case "/api/logout":
          if (method !== "POST") throw notAllowed(method, url.pathname);
          this.#checkMutation(request);
          return this.#logout(request);
      }
      const route = this.#api.route(method, url.pathname);
      if (route === undefined) {
        throw new HttpError(404, "NOT_FOUND", `No such page: ${url.pathname}`);
      }
      if (route === "method") throw notAllowed(method, url.pathname);
      if (!this.#authenticated(request)) {
        throw new HttpError(401, "UNAUTHORIZED", "Log in with the server's token first");
      }
      if (route.mutates) this.#checkMutation(request);
      return await route.call(request, url.searchParams);
    } catch (error) {
      return errorResponse(error, this.#options.env.log);
    }
  }

  /** Whether the request may read: no token is set, or it carries a live session. */
  #authenticated(request: Request): boolean {
    if (this.#sessions === undefined) return true;
    return this.#sessions.check(cookieOf(request.headers.get("cookie"), this.#cookieName));
  }

  async #login(request: Request): Promise<Response> {
    if (this.#sessions === undefined) {
      throw new HttpError(404, "NOT_FOUND", "This dashboard has no login: the server has no token");
    }
    const body = await readSmallBody(request, UI_LOGIN_BODY_BYTES_MAX);
    let token: unknown;
    try {
      token = (JSON.parse(new TextDecoder().decode(body)) as { token?: unknown })?.token;
    } catch {
      token = undefined;
    }
    if (typeof token !== "string") {
      throw new HttpError(400, "INVALID_REQUEST", 'A login is a JSON object { "token": "..." }');
    }
    if (!this.#sessions.tokenMatches(token)) {
      throw new HttpError(401, "UNAUTHORIZED", "The token is not the server's");
    }
    const id = this.#sessions.create();
    const cookie = sessionCookie(this.#cookieName, id, { secure: this.#options.secure });
    return json({ authenticated: true }, { headers: { "set-cookie": cookie } });
  }

  #logout(request: Request): Response {
    this.#sessions?.end(cookieOf(request.headers.get("cookie"), this.#cookieName));
    const cookie = sessionCookie(this.#cookieName, "", {
      secure: this.#options.secure,
      expire: true,
    });
    return json({ authenticated: false }, { headers: { "set-cookie": cookie } });
  }

  /** A change must carry the dashboard's header and come from this host's own page. */
  #checkMutation(request: Request): void {
    if (request.headers.get(UI_MUTATION_HEADER) !== "1") {
      throw new HttpError(
        403,
        "FORBIDDEN",
        `A change needs the header ${UI_MUTATION_HEADER}: 1 (the dashboard's page sends it)`,
      );
    }
    const origin = request.headers.get("origin");
    if (origin !== null && !sameHost(origin, request)) {
      throw new HttpError(403, "FORBIDDEN", `A change from another origin (${origin}) is refused`);
    }
  }

  /** Without a token, a request must name this host by address, localhost or `--ui-host`. */
  #checkHost(request: Request): void {
    const host = request.headers.get("host");
    if (host === null) return; // not a browser: DNS rebinding needs one
    const hostname = hostnameOf(host);
    const ours = this.#options.hostname.toLowerCase();
    if (
      hostname === ours || hostname === "localhost" || /^[\d.]+$/.test(hostname) ||
      hostname.startsWith("[")
    ) return;
    throw new HttpError(
      403,
      "FORBIDDEN",
      `Requests to host ${hostname} are refused: without --token-file the dashboard answers ` +
        `only an IP address, localhost or --ui-host ${this.#options.hostname} (against DNS ` +
        "rebinding); serve it with --token-file to use other host names",
    );
  }
}

function notAllowed(method: string, path: string): HttpError {
  return new HttpError(405, "METHOD_NOT_ALLOWED", `${method} is not allowed on ${path}`);
}

/** Bytes of the request's URL and headers. */
function headBytes(request: Request, url: URL): number {
  let bytes = url.pathname.length + url.search.length;
  for (const [name, value] of request.headers) bytes += name.length + value.length + 4;
  return bytes;
}

/** The host name of a `host` header, lowercase and without its port (`[::1]` keeps brackets). */
function hostnameOf(host: string): string {
  const lower = host.toLowerCase();
  if (lower.startsWith("[")) return lower.slice(0, lower.indexOf("]") + 1);
  const colon = lower.lastIndexOf(":");
  return colon < 0 ? lower : lower.slice(0, colon);
}

/** Whether an `Origin` names the host the request was sent to. */
function sameHost(origin: string, request: Request): boolean {
  try {
    return new URL(origin).host === (request.headers.get("host") ?? new URL(request.url).host);
  } catch {
    return false;
  }
}

/** A small body, at most `bytesMax` bytes. */
async function readSmallBody(request: Request, bytesMax: number): Promise<Uint8Array> {
  const tooLarge = () =>
    new HttpError(413, "TOO_LARGE", `The request's body is over ${bytesMax} bytes`);
  if (Number(request.headers.get("content-length") ?? 0) > bytesMax) throw tooLarge();
  const parts: Uint8Array[] = [];
  let bytes = 0;
  for await (const piece of request.body ?? []) {
    bytes += piece.length;
    if (bytes > bytesMax) throw tooLarge();
    parts.push(piece);
  }
  return concatBytes(parts, bytes);
}
