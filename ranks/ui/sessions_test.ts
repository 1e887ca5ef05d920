import assert from "node:assert/strict";
import { SeededRandom } from "../env/seeded_random.ts";
import { Sessions } from "./sessions.ts";

const TOKEN = new TextEncoder().encode("a-token-long-enough-0123456789");

function sessions(options: { sessionsMax?: number; idleMs?: number; lifetimeMs?: number } = {}) {
  const clock = { ms: 0, monotonic: () => clock.ms };
  return {
    clock,
    sessions: new Sessions(TOKEN, { clock, random: new SeededRandom(7), ...options }),
  };
}

Deno.test("Sessions.tokenMatches() takes the token, with surrounding white space, and nothing else", () => {
  const { sessions: s } = sessions();
  assert.equal(s.tokenMatches("a-token-long-enough-0123456789"), true);
  assert.equal(s.tokenMatches("  a-token-long-enough-0123456789\n"), true);
  assert.equal(s.tokenMatches("a-token-long-enough-012345678"), false);
  assert.equal(s.tokenMatches("a-token-long-enough-01234567890"), false);
  assert.equal(s.tokenMatches(""), false);
});

Deno.test("Sessions.create() gives an id that check() takes until end()", () => {
  const { sessions: s } = sessions();
  const id = s.create();
  assert.match(id, /^[A-Za-z0-9_-]{43}$/, "32 random bytes, base64url");
  assert.notEqual(s.create(), id);
  assert.equal(s.check(id), true);
  assert.equal(s.check(id.slice(1)), false);
  assert.equal(s.check(undefined), false);
  assert.equal(s.check(""), false);
  s.end(id);
  assert.equal(s.check(id), false);
});

Deno.test("a session ends when unused for idleMs, and lifetimeMs after its login however used", () => {
  const { clock, sessions: s } = sessions({ idleMs: 100, lifetimeMs: 250 });
  const idle = s.create();
  const busy = s.create();
  clock.ms = 90;
  assert.equal(s.check(busy), true);
  clock.ms = 180;
  assert.equal(s.check(busy), true);
  assert.equal(s.check(idle), false, "unused for 180 ms");
  clock.ms = 260;
  assert.equal(s.check(busy), false, "260 ms after its login");
  assert.equal(s.size, 0, "expired sessions are dropped when looked at");
});

Deno.test("Sessions holds at most sessionsMax: a new login ends the oldest", () => {
  const { clock, sessions: s } = sessions({ sessionsMax: 3, idleMs: 1000 });
  const ids = [s.create(), s.create(), s.create()];
  const fourth = s.create();
  assert.equal(s.size, 3);
  assert.deepEqual(ids.map((id) => s.check(id)), [false, true, true]);
  assert.equal(s.check(fourth), true);
  // Expired sessions go first, before any live one is ended.
  clock.ms = 2000;
  s.create();
  assert.equal(s.size, 1);
});
