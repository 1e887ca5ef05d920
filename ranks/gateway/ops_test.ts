import assert from "node:assert/strict";
import { parseRequest, type Request } from "../../protocol/messages.ts";
import type { StreamingFileStore, Upload } from "../common/file_store.ts";
import { Semaphore } from "../common/semaphore.ts";
import { type OpContext, opOf } from "./ops.ts";

/** A store that records every call and answers each from `answers`, else `<method> result`. */
function recordingStore(
  answers: Record<string, unknown> = {},
): { store: StreamingFileStore; calls: unknown[][] } {
  const calls: unknown[][] = [];
  const store = new Proxy({}, {
    get: (_, method) => (...args: unknown[]) => {
      calls.push([method, ...args]);
      const result = answers[String(method)] ?? `${String(method)} result`;
      const sync = method === "openRead" || method === "beginUpload" || method === "listPages";
      return sync ? result : Promise.resolve(result);
    },
  }) as StreamingFileStore;
  return { store, calls };
}

/** Serves `message` through its op's store call; returns the store calls and the result. */
async function serve(
  message: Record<string, unknown>,
  options: { answers?: Record<string, unknown> } = {},
) {
  const { store, calls } = recordingStore(options.answers);
  const request: Request = parseRequest({ id: 1, ...message });
  const op = opOf(request);
  const full: OpContext = { store, readBudget: new Semaphore(1) };
  let result: unknown;
  switch (op.kind) {
    case "call":
      result = await op.call(request, full);
      break;
    case "list":
      result = op.call(request, full);
      break;
    case "read":
      result = op.open(request, full);
      break;
    case "upload":
      result = op.begin(request, full);
      break;
    default:
      throw new Error(`${op.kind} takes an upload, not the store`);
  }
  return { kind: op.kind, calls, result, budget: full.readBudget };
}

Deno.test("opOf() maps each query to one store call with the request's fields", async () => {
  const cases: [Record<string, unknown>, string, unknown[]][] = [
    [{ op: "meta", name: "a" }, "meta", ["a"]],
    [{ op: "mv", from: "a", to: "b" }, "rename", ["a", "b", { force: false }]],
    [{ op: "mv", from: "a", to: "b", force: true }, "rename", ["a", "b", { force: true }]],
    [{ op: "du", prefix: "d/" }, "usage", ["d/"]],
    [{ op: "df" }, "capacity", []],
    [{ op: "fsck" }, "fsck", []],
    [{ op: "status" }, "status", []],
    [{ op: "doctor", target: "b" }, "doctor", ["b"]],
  ];
  for (const [message, method, args] of cases) {
    const { kind, calls, result } = await serve(message);
    assert.equal(kind, "call", String(message.op));
    assert.deepEqual(calls, [[method, ...args]]);
    assert.equal(result, `${method} result`);
  }
});

Deno.test("opOf() lists with the cursor and limit only when the request has them", async () => {
  const plain = await serve({ op: "list", prefix: "d/" });
  assert.equal(plain.kind, "list");
  assert.deepEqual(plain.calls, [["listPages", "d/", { after: undefined, limit: undefined }]]);
  const paged = await serve({ op: "list", prefix: "d/", after: "d/b", limit: 10 });
  assert.deepEqual(paged.calls, [["listPages", "d/", { after: "d/b", limit: 10 }]]);
});

Deno.test("opOf() removes one name or a prefix and answers how many", async () => {
  const one = await serve({ op: "rm", name: "a" });
  assert.deepEqual(one.calls, [["remove", "a"]]);
  assert.deepEqual(one.result, { removed: 1 });
  const prefix = await serve({ op: "rm", prefix: "d/" }, { answers: { removePrefix: 3 } });
  assert.deepEqual(prefix.calls, [["removePrefix", "d/"]]);
  assert.deepEqual(prefix.result, { removed: 3 });
});

Deno.test("opOf() opens a read within the connection's budget and begins an upload", async () => {
  const read = await serve({ op: "get", name: "a", start: 1, end: 5 });
  assert.equal(read.kind, "read");
  assert.deepEqual(read.calls, [["openRead", "a", { start: 1, end: 5 }, { budget: read.budget }]]);
  const direct = await serve({ op: "get", name: "a", direct: true });
  assert.deepEqual(direct.calls, [["openRead", "a", { start: undefined, end: undefined }, {
    budget: direct.budget,
    direct: true,
  }]]);
  const put = await serve({ op: "put", name: "a", size: 5, replicas: 2, checksums: true });
  assert.equal(put.kind, "upload");
  assert.deepEqual(put.calls, [["beginUpload", "a", { size: 5, replicas: 2, checksums: true }]]);
});

Deno.test("opOf() steps an upload with the frame's bytes, CRC32 and SHA-256", async () => {
  const calls: unknown[][] = [];
  const upload = {
    write: (...args: unknown[]) => Promise.resolve(void calls.push(["write", ...args])),
    commit: (...args: unknown[]) => (calls.push(["commit", ...args]), Promise.resolve("meta")),
    abort: () => Promise.resolve(void calls.push(["abort"])),
  } as unknown as Upload;
  const bytes = new Uint8Array(3);
  const steps = [
    { op: "data", id: 1, bytes, crc32: 7 },
    { op: "end", id: 1, sha256: "a".repeat(64) },
    { op: "abort", id: 1 },
  ];
  for (const step of steps) {
    const request = parseRequest(step);
    const op = opOf(request);
    if (op.kind === "write") await op.write(request, upload);
    else if (op.kind === "commit") assert.equal(await op.commit(request, upload), "meta");
    else if (op.kind === "abort") await op.abort(request, upload);
    else assert.fail(`${step.op} is an upload step, not ${op.kind}`);
  }
  assert.deepEqual(calls, [
    ["write", bytes, 7],
    ["commit", { sha256: "a".repeat(64) }],
    ["abort"],
  ]);
});
