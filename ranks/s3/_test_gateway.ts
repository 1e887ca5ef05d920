/**
 * The S3 gateway in-process for tests: over rank 0's store on the in-process cluster, with one
 * bucket, and requests signed with `@smithy/signature-v4`.
 *
 * @module
 */

import { newSigner } from "../../tests/_s3_signer.ts";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { MemoryFileSystem } from "../env/memory_fs.ts";
import { systemClock } from "../env/system.ts";
import { MemoryCluster } from "../testing/memory_cluster.ts";
import { Buckets } from "./buckets.ts";
import { S3Gateway } from "./gateway.ts";

export const KEY_ID = "AKIDGATEWAY";
const SECRET = "gateway-test-secret";
export const HOST = "127.0.0.1:9000";

const signer = newSigner(KEY_ID, SECRET);

/** A signed request; the body's SHA-256 is signed unless `payloadHash` says otherwise. */
export async function signed(
  method: string,
  path: string,
  options: {
    body?: Uint8Array | ReadableStream<Uint8Array>;
    headers?: Record<string, string>;
    query?: Record<string, string>;
    payloadHash?: string;
  } = {},
): Promise<Request> {
  const body = options.body;
  const hash = options.payloadHash ??
    createHash("sha256").update(body instanceof Uint8Array ? body : new Uint8Array()).digest("hex");
  const request = await signer.sign({
    method,
    protocol: "http:",
    hostname: "127.0.0.1",
    port: 9000,
    path,
    query: options.query ?? {},
    headers: {
      host: HOST,
      "x-amz-content-sha256": hash,
      // As an HTTP client sends it (a Request made in-process has none).
      ...(body instanceof Uint8Array ? { "content-length": String(body.length) } : {}),
      ...options.headers,
    },
  });
  const query = new URLSearchParams(options.query ?? {}).toString();
  return new Request(`http://${HOST}${path}${query ? `?${query}` : ""}`, {
    method,
    headers: request.headers as Record<string, string>,
    body: body as BodyInit | undefined,
  });
}

export async function gatewayOver(options: { bodyStallTimeoutMs?: number } = {}) {
  const cluster = await MemoryCluster.start();
  const fs = new MemoryFileSystem();
  await fs.mkdir("/data", { recursive: true });
  const gateway = new S3Gateway({
    store: cluster.store,
    buckets: await Buckets.open("/data", fs),
    credentials: new Map([[KEY_ID, SECRET]]),
    region: "us-east-1",
    clock: systemClock,
    log: { error: () => {} },
    ...options,
  });
  const created = await gateway.handle(await signed("PUT", "/bucket"));
  assert.equal(created.status, 200, await created.clone().text());
  return {
    cluster,
    gateway,
    async [Symbol.asyncDispose]() {
      await cluster.close();
    },
  };
}

export async function errorOf(response: Response): Promise<{ status: number; code: string }> {
  const text = await response.text();
  return { status: response.status, code: /<Code>([^<]*)<\/Code>/.exec(text)?.[1] ?? text };
}
