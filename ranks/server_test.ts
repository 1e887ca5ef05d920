import assert from "node:assert/strict";
import { isLoopbackHost } from "./server.ts";

Deno.test("isLoopbackHost() knows 127.0.0.0/8, ::1 and localhost, and nothing else", () => {
  for (
    const host of [
      "127.0.0.1",
      "127.1.2.3",
      "127.255.255.255",
      "::1",
      "[::1]",
      "localhost",
      "LOCALHOST",
    ]
  ) {
    assert.equal(isLoopbackHost(host), true, host);
  }
  for (
    const host of [
      "0.0.0.0",
      "::",
      "10.0.0.1",
      "128.0.0.1",
      "1.127.0.0",
      "127.0.0.1.example.com",
      "example.com",
      "::2",
      "",
    ]
  ) {
    assert.equal(isLoopbackHost(host), false, host);
  }
});
