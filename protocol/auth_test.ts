import assert from "node:assert/strict";
import { DfsError } from "./errors.ts";
import {
  AUTH_PROOF_BYTES,
  clientProof,
  newNonce,
  proofMatches,
  serverProof,
  tokenFromText,
} from "./auth.ts";

const secret = new TextEncoder().encode("correct horse battery staple");

Deno.test("clientProof() matches only for the same secret and nonces", () => {
  const s = newNonce();
  const c = newNonce();
  const expected = clientProof(secret, s, c);
  assert.equal(expected.length, AUTH_PROOF_BYTES);
  assert.ok(proofMatches(clientProof(secret, s, c), expected));
  assert.ok(
    !proofMatches(
      clientProof(new TextEncoder().encode("wrong horse battery staple"), s, c),
      expected,
    ),
  );
  assert.ok(!proofMatches(clientProof(secret, newNonce(), c), expected));
  assert.ok(!proofMatches(clientProof(secret, s, newNonce()), expected));
});

Deno.test("serverProof() differs from clientProof() so a proof cannot be reflected", () => {
  const s = newNonce();
  const c = newNonce();
  assert.ok(!proofMatches(serverProof(secret, s, c), clientProof(secret, s, c)));
});

Deno.test("proofMatches() refuses non-bytes and wrong lengths", () => {
  const expected = clientProof(secret, newNonce(), newNonce());
  assert.ok(!proofMatches("text", expected));
  assert.ok(!proofMatches(undefined, expected));
  assert.ok(!proofMatches(expected.subarray(1), expected));
});

Deno.test("tokenFromText() trims and refuses a secret under TOKEN_BYTES_MIN", () => {
  assert.deepEqual(
    tokenFromText("  0123456789abcdef\n", "test"),
    new TextEncoder().encode("0123456789abcdef"),
  );
  assert.throws(
    () => tokenFromText("short\n", "token file t"),
    (e: unknown) =>
      e instanceof DfsError && e.code === "INVALID_REQUEST" &&
      /5 bytes; a token needs at least 16/.test(e.message),
  );
});
