/**
 * An S3 request signer for tests and the benchmark: `@smithy/signature-v4` (the AWS SDK's own),
 * signing as S3 clients do (paths not escaped twice), with SHA-256 from `node:crypto`.
 *
 * @module
 */

import { createHash, createHmac } from "node:crypto";
import { SignatureV4 } from "@smithy/signature-v4";

/** The SHA-256 constructor `@smithy/signature-v4` wants (an HMAC when given a secret). */
export class Sha256 {
  #hash;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.#hash = secret === undefined
      ? createHash("sha256")
      : createHmac("sha256", bytesOf(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.#hash.update(bytesOf(data));
  }
  digest(): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(this.#hash.digest()));
  }
}

function bytesOf(data: string | ArrayBuffer | ArrayBufferView): string | Uint8Array {
  if (typeof data === "string") return data;
  if (ArrayBuffer.isView(data)) {
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  return new Uint8Array(data);
}

/** A signer for `accessKeyId`/`secret` in `region` (default us-east-1), service s3. */
export function newSigner(accessKeyId: string, secret: string, region = "us-east-1"): SignatureV4 {
  return new SignatureV4({
    credentials: { accessKeyId, secretAccessKey: secret },
    region,
    service: "s3",
    sha256: Sha256,
    uriEscapePath: false,
  });
}
