/**
 * The dashboard's logins, with `--token-file`: a browser posts the token once, gets a session id
 * in an HttpOnly, SameSite=Strict cookie, and sends it with every request.
 *
 * Why random session ids in a bounded table rather than a cookie derived from the token (an HMAC
 * of it): a session can be ended (log out) and ends by itself (`UI_SESSION_IDLE_MS` unused,
 * `UI_SESSION_LIFETIME_MS` after its login), a stolen cookie dies with its session, and the
 * cookie says nothing about the token. The cost is that a restart logs everyone out, and that the
 * table is bounded (`UI_SESSIONS_MAX`; a new login past it ends the oldest session): only a holder
 * of the token can add to it.
 *
 * Secrets are compared in constant time: the token as SHA-256 digests (equal lengths whatever
 * was sent), and a session id is looked up by its SHA-256, so the table's lookup time tells
 * nothing about the ids it holds. Pure but for the clock and randomness it is given.
 *
 * @module
 */

import { createHash, timingSafeEqual } from "node:crypto";
import type { Clock, Random } from "../env/env.ts";
import {
  UI_SESSION_ID_BYTES,
  UI_SESSION_IDLE_MS,
  UI_SESSION_LIFETIME_MS,
  UI_SESSIONS_MAX,
} from "./limits.ts";

/** When a session was made and last used (monotonic ms). */
interface Session {
  createdAt: number;
  usedAt: number;
}

/** Options of `new Sessions()`; the limits default to the `UI_SESSION*` ones. */
export interface SessionsOptions {
  clock: Pick<Clock, "monotonic">;
  random: Random;
  sessionsMax?: number;
  idleMs?: number;
  lifetimeMs?: number;
}

/** The token and the sessions of those who gave it. */
export class Sessions {
  #tokenDigest: Uint8Array;
  #clock: Pick<Clock, "monotonic">;
  #random: Random;
  /** By the SHA-256 of the id, oldest first (a Map keeps insertion order). */
  #sessions = new Map<string, Session>();
  #max: number;
  #idleMs: number;
  #lifetimeMs: number;

  constructor(token: Uint8Array, options: SessionsOptions) {
    this.#tokenDigest = sha256(token);
    this.#clock = options.clock;
    this.#random = options.random;
    this.#max = options.sessionsMax ?? UI_SESSIONS_MAX;
    this.#idleMs = options.idleMs ?? UI_SESSION_IDLE_MS;
    this.#lifetimeMs = options.lifetimeMs ?? UI_SESSION_LIFETIME_MS;
  }

  /** Sessions held now (expired ones included until they are next looked at). */
  get size(): number {
    return this.#sessions.size;
  }

  /**
   * Whether `text`, without surrounding white space (as a token file is read), is the token.
   * Constant time in the token's content.
   */
  tokenMatches(text: string): boolean {
    const given = sha256(new TextEncoder().encode(text.trim()));
    return timingSafeEqual(given, this.#tokenDigest);
  }

  /** A new session: returns its id (base64url), to go in the cookie. Ends the oldest when full. */
  create(): string {
    this.#sweep();
    while (this.#sessions.size >= this.#max) {
      this.#sessions.delete(this.#sessions.keys().next().value!);
    }
    const id = this.#random.fill(new Uint8Array(UI_SESSION_ID_BYTES)).toBase64({
      alphabet: "base64url",
      omitPadding: true,
    });
    const now = this.#clock.monotonic();
    this.#sessions.set(keyOf(id), { createdAt: now, usedAt: now });
    return id;
  }

  /** Whether `id` is a live session; counts as a use of it. An expired one ends here. */
  check(id: string | undefined): boolean {
    if (id === undefined || id.length === 0) return false;
    const key = keyOf(id);
    const session = this.#sessions.get(key);
    if (session === undefined) return false;
    const now = this.#clock.monotonic();
    if (this.#expired(session, now)) {
      this.#sessions.delete(key);
      return false;
    }
    session.usedAt = now;
    return true;
  }

  /** Ends session `id` (log out); nothing if there is none. */
  end(id: string | undefined): void {
    if (id !== undefined) this.#sessions.delete(keyOf(id));
  }

  #expired(session: Session, now: number): boolean {
    return now - session.usedAt > this.#idleMs || now - session.createdAt > this.#lifetimeMs;
  }

  /** Drops expired sessions (on each login, so the table holds mostly live ones). */
  #sweep(): void {
    const now = this.#clock.monotonic();
    for (const [key, session] of this.#sessions) {
      if (this.#expired(session, now)) this.#sessions.delete(key);
    }
  }
}

function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(bytes).digest());
}

function keyOf(id: string): string {
  return createHash("sha256").update(id).digest("hex");
}
