/**
 * The dashboard's HTTP forms: JSON answers, errors as `{ error: { code, message } }` with the
 * status that fits their code, cookies, and a download's `content-disposition`. Pure.
 *
 * @module
 */

import { DfsError, type ErrorCode } from "../../protocol/errors.ts";
import type { Log } from "../env/env.ts";

/** An error of the HTTP exchange itself (no session, a missing header, a wrong method). */
export class HttpError extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = "HttpError";
    this.status = status;
    this.code = code;
  }
}

/** The HTTP status of each store error code. */
const STATUS_OF_CODE: Record<ErrorCode, number> = {
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  INVALID_REQUEST: 400,
  TOO_LARGE: 413,
  UNAVAILABLE: 503,
  CORRUPTED: 500,
  UNAUTHORIZED: 401,
  VERSION_MISMATCH: 409,
  INTERNAL: 500,
  NODE_FAILED: 503,
};

/** Headers every API answer carries: never cached, never sniffed as something else. */
const API_HEADERS = {
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
};

/** `value` as a JSON answer. */
export function json(value: unknown, init: { status?: number; headers?: HeadersInit } = {}) {
  const headers = new Headers(init.headers);
  headers.set("content-type", "application/json; charset=utf-8");
  for (const [name, value] of Object.entries(API_HEADERS)) headers.set(name, value);
  return new Response(JSON.stringify(value), { status: init.status ?? 200, headers });
}

/**
 * The answer for a thrown `error`: an `HttpError` or a `DfsError` with its code and message; an
 * `INTERNAL` one, or anything else, is logged with its stack and answered with no details.
 */
export function errorResponse(error: unknown, log: Log): Response {
  if (error instanceof HttpError) {
    return json({ error: { code: error.code, message: error.message } }, {
      status: error.status,
    });
  }
  if (error instanceof DfsError && error.code !== "INTERNAL") {
    return json({ error: { code: error.code, message: error.message } }, {
      status: STATUS_OF_CODE[error.code] ?? 500,
    });
  }
  log.error("dfs: the dashboard failed a request:", error);
  return json({ error: { code: "INTERNAL", message: "Internal error" } }, { status: 500 });
}

/** The value of cookie `name` in a `cookie` header, if it is there. */
export function cookieOf(header: string | null, name: string): string | undefined {
  if (header === null) return undefined;
  for (const part of header.split(";")) {
    const equals = part.indexOf("=");
    if (equals > 0 && part.slice(0, equals).trim() === name) return part.slice(equals + 1).trim();
  }
  return undefined;
}

/**
 * A `set-cookie` value for a session cookie: HttpOnly (no script reads it), SameSite=Strict (no
 * other site's page sends it), for the whole dashboard, `Secure` over TLS. An empty `value` with
 * `expire` clears it.
 */
export function sessionCookie(
  name: string,
  value: string,
  options: { secure: boolean; expire?: boolean },
): string {
  return [
    `${name}=${value}`,
    "Path=/",
    "HttpOnly",
    "SameSite=Strict",
    ...(options.secure ? ["Secure"] : []),
    ...(options.expire ? ["Max-Age=0"] : []),
  ].join("; ");
}

/**
 * `content-disposition` for downloading `name` as a file named after its last segment: an ASCII
 * `filename` (other characters, quotes and backslashes as `_`) and the exact one as UTF-8
 * (`filename*`, RFC 6266), which browsers prefer.
 */
export function attachmentOf(name: string): string {
  const base = name.slice(name.lastIndexOf("/") + 1);
  const ascii = base.replace(/[^\x20-\x7e]|["\\]/g, "_");
  const encoded = encodeURIComponent(base).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}
