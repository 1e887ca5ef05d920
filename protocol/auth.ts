/**
 * Shared-secret authentication by challenge and response. The secret never crosses the wire:
 * the server sends a random nonce in its hello, the client answers with its own nonce and
 * HMAC-SHA256(secret, "dfs-auth-v1 client" | server nonce | client nonce), and the server, once it
 * has checked that in constant time, proves it holds the secret too with the "server" HMAC. Pure
 * (`cli/settings.ts` reads token files).
 *
 * @module
 */

import { createHmac, timingSafeEqual } from "node:crypto";
import { DfsError } from "./errors.ts";

/** Random bytes in each side's nonce. */
export const AUTH_NONCE_BYTES = 32;
/** Bytes of an HMAC-SHA256 proof. */
export const AUTH_PROOF_BYTES = 32;
/** Shortest secret accepted (a token file with less is refused at start). */
export const TOKEN_BYTES_MIN = 16;
/** Longest token file read. */
export const TOKEN_BYTES_MAX = 4096;

/** A fresh random nonce. */
export function newNonce(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(AUTH_NONCE_BYTES));
}

/** What the client sends to prove it holds `secret`. */
export function clientProof(
  secret: Uint8Array,
  serverNonce: Uint8Array,
  clientNonce: Uint8Array,
): Uint8Array {
  return proof(secret, "dfs-auth-v1 client", serverNonce, clientNonce);
}

/** What the server sends back to prove it holds `secret` too. */
export function serverProof(
  secret: Uint8Array,
  serverNonce: Uint8Array,
  clientNonce: Uint8Array,
): Uint8Array {
  return proof(secret, "dfs-auth-v1 server", serverNonce, clientNonce);
}

/**
 * What a data node joining rank 0 sends to prove it holds the cluster secret (labels of its own:
 * a client's proof under the same secret is never a node's).
 */
export function nodeProof(
  secret: Uint8Array,
  rankZeroNonce: Uint8Array,
  nodeNonce: Uint8Array,
): Uint8Array {
  return proof(secret, "dfs-node-v1 node", rankZeroNonce, nodeNonce);
}

/** What rank 0 sends back to a joining node to prove it holds the cluster secret too. */
export function rankZeroProof(
  secret: Uint8Array,
  rankZeroNonce: Uint8Array,
  nodeNonce: Uint8Array,
): Uint8Array {
  return proof(secret, "dfs-node-v1 rank0", rankZeroNonce, nodeNonce);
}

/** Compares a received proof with the expected one in constant time. */
export function proofMatches(received: unknown, expected: Uint8Array): boolean {
  if (!(received instanceof Uint8Array) || received.length !== expected.length) return false;
  return timingSafeEqual(received, expected);
}

function proof(
  secret: Uint8Array,
  label: string,
  serverNonce: Uint8Array,
  clientNonce: Uint8Array,
): Uint8Array {
  const hmac = createHmac("sha256", secret);
  hmac.update(label);
  hmac.update(serverNonce);
  hmac.update(clientNonce);
  return new Uint8Array(hmac.digest());
}

/**
 * Checks a secret given as text (a token file's content or `DFS_TOKEN`).
 *
 * @throws {DfsError} `INVALID_REQUEST` if it is shorter than `TOKEN_BYTES_MIN` bytes.
 */
export function tokenFromText(text: string, source: string): Uint8Array {
  const secret = new TextEncoder().encode(text.trim());
  if (secret.length < TOKEN_BYTES_MIN) {
    throw new DfsError(
      "INVALID_REQUEST",
      `The ${source} holds ${secret.length} bytes; a token needs at least ${TOKEN_BYTES_MIN}`,
    );
  }
  return secret;
}
