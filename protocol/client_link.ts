/**
 * A client's connection to a dfs server (`DfsClient`): the socket, its framing, and the handshake
 * that opens it (hello, the TLS hint, the shared token's challenge).
 *
 * @module
 */

import { clientProof, newNonce, proofMatches, serverProof } from "./auth.ts";
import { FrameReader, FrameWriter } from "./conn.ts";
import { cannotConnect, looksLikeTlsRecord, openSocket } from "./connect.ts";
import { DfsError } from "./errors.ts";
import { decodeFrameBody } from "./frame.ts";
import { CHUNK_SIZE_BYTES, FRAME_HEADER_BYTES, PROTOCOL_VERSION } from "./limits.ts";
import { expectOk, type Reply, unexpected } from "./messages.ts";
import { dataBytesFor } from "./pieces.ts";

/** An open, greeted connection to the server. */
export interface Link {
  conn: Deno.Conn;
  reader: FrameReader;
  writer: FrameWriter;
  /** From the server's hello: the largest data payload of a frame; whether it answers plans. */
  dataBytesMax: number;
  plans?: boolean;
}

/** How `openLink` connects. */
export interface LinkOptions {
  connectTimeoutMs: number;
  /** Speak TLS, trusting these certificates. */
  tlsCaCerts?: string[];
  /** The shared token, for a server that asks for it. */
  token?: Uint8Array;
}

/**
 * Connects to `hostname:port` and completes the handshake.
 *
 * @throws {DfsError} `UNAVAILABLE` if the server cannot be reached (or speaks TLS to a client
 *   without `tlsCaCerts`); `VERSION_MISMATCH`; `UNAUTHORIZED` without the right token.
 */
export async function openLink(
  hostname: string,
  port: number,
  options: LinkOptions,
): Promise<Link> {
  const { tlsCaCerts, connectTimeoutMs } = options;
  const conn = await openSocket(hostname, port, { tlsCaCerts, connectTimeoutMs });
  const link: Link = {
    conn,
    reader: new FrameReader(conn),
    writer: new FrameWriter(conn),
    dataBytesMax: CHUNK_SIZE_BYTES,
  };
  try {
    await link.writer.send({ op: "hello", version: PROTOCOL_VERSION });
    if (!tlsCaCerts && looksLikeTlsRecord(await link.reader.peek(FRAME_HEADER_BYTES))) {
      throw cannotConnect(
        hostname,
        port,
        "the server seems to speak TLS; pass --tls-ca (or DFS_TLS_CA) to connect over TLS",
      );
    }
    const reply = await readReply(link.reader);
    if (reply.op !== "hello") throw expectOk(reply) && unexpected(reply);
    link.dataBytesMax = dataBytesFor(reply.frameSizeBytesMax);
    link.plans = reply.plans === true;
    if (reply.challenge) await authenticate(link, options.token, reply.challenge);
  } catch (error) {
    conn.close();
    throw error instanceof DfsError ? error : cannotConnect(hostname, port, error);
  }
  return link;
}

/**
 * The next reply on the connection.
 *
 * @throws {DfsError} `UNAVAILABLE` if the connection failed or the server closed it.
 */
export async function readReply(reader: FrameReader): Promise<Reply> {
  let body: Uint8Array | null;
  try {
    body = await reader.read();
  } catch (error) {
    if (error instanceof DfsError) throw error;
    throw new DfsError(
      "UNAVAILABLE",
      `Connection to the server failed: ${(error as Error).message}`,
    );
  }
  if (body === null) throw new DfsError("UNAVAILABLE", "Server closed the connection");
  return decodeFrameBody(body) as Reply;
}

/** Answers the server's challenge and checks that the server holds the token too. */
async function authenticate(
  link: Link,
  token: Uint8Array | undefined,
  challenge: Uint8Array,
): Promise<void> {
  if (!token) {
    throw new DfsError(
      "UNAUTHORIZED",
      "Server requires a token: set DFS_TOKEN or pass --token-file",
    );
  }
  const nonce = newNonce();
  await link.writer.send({ op: "auth", nonce, proof: clientProof(token, challenge, nonce) });
  const reply = await readReply(link.reader);
  if (reply.op === "error") throw DfsError.fromWire(reply);
  if (reply.op !== "auth" || !proofMatches(reply.proof, serverProof(token, challenge, nonce))) {
    throw new DfsError("UNAUTHORIZED", "Server could not prove that it holds the token");
  }
}
