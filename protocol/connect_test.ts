import assert from "node:assert/strict";
import { cannotConnect, looksLikeTlsRecord, openSocket } from "./connect.ts";

Deno.test("looksLikeTlsRecord() knows a TLS alert or handshake record from a frame header", () => {
  assert.ok(looksLikeTlsRecord(new Uint8Array([0x15, 0x03, 0x03, 0x00])), "alert, TLS 1.2");
  assert.ok(looksLikeTlsRecord(new Uint8Array([0x16, 0x03, 0x01, 0x02])), "handshake, TLS 1.0");
  assert.ok(!looksLikeTlsRecord(new Uint8Array([0x00, 0x00, 0x01, 0x20])), "a 288-byte frame");
  assert.ok(!looksLikeTlsRecord(new Uint8Array([0x16, 0x04, 0x01, 0x02])), "no TLS version");
  assert.ok(!looksLikeTlsRecord(new Uint8Array([0x16, 0x03])), "too short to tell");
});

Deno.test("cannotConnect() names the address and the reason", () => {
  const error = cannotConnect("db", 7070, new Error("Connection refused"));
  assert.equal(error.code, "UNAVAILABLE");
  assert.equal(error.message, "Cannot connect to db:7070: Connection refused");
  assert.equal(cannotConnect("db", 1, "why").message, "Cannot connect to db:1: why");
});

Deno.test("openSocket() says it cannot connect where nothing listens", async () => {
  await assert.rejects(openSocket("127.0.0.1", 1, { connectTimeoutMs: 5_000 }), {
    name: "DfsError",
    code: "UNAVAILABLE",
    message: /^Cannot connect to 127\.0\.0\.1:1: /,
  });
});
