/**
 * The `dfs` command: `dfs serve` runs a server; `put`, `get`, `meta` and `list` are clients.
 * Exit status: 0 on success, 1 on an operational error, 2 on a usage error.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_SERVER, DfsClient, DfsError, type FileMeta } from "./client.ts";
import { readTokenFile, tokenFromText } from "./protocol/auth.ts";
import { startCluster } from "./ranks/cluster.ts";
import { DEFAULT_LIMITS, serveClients } from "./ranks/server.ts";

export const VERSION = "0.1.0";

const USAGE = `dfs ${VERSION}: a distributed file store

Usage:
  dfs serve [--ranks 4] [--host 127.0.0.1] [--port 7070] [--data ./dfs-data] [--replicas 2]
  dfs put LOCAL [NAME]        upload a file (LOCAL - reads stdin; NAME is then required)
  dfs get NAME [LOCAL]        download a file (LOCAL - writes stdout)
  dfs meta NAME [--json]      show a file's metadata
  dfs list [PREFIX] [--json]  list names, optionally under a prefix
  dfs NAME -a | -r | -m       the original forms of put, get and meta

Client options:
  --server HOST:PORT          server address (default: $DFS_SERVER, else ${DEFAULT_SERVER})
  --token-file F              shared secret of a server with --token-file (default: $DFS_TOKEN)
  --tls-ca F                  connect with TLS, trusting the PEM certificates in F ($DFS_TLS_CA)

Server security (off by default):
  --token-file F              clients must prove they hold the secret in F (HMAC challenge)
  --tls-cert F --tls-key F    serve TLS with this PEM certificate chain and key

Server limits (defaults):
  --connections-max ${DEFAULT_LIMITS.connectionsMax}  --requests-inflight-max ${DEFAULT_LIMITS.requestsInflightMax}
  --idle-timeout-ms ${DEFAULT_LIMITS.idleTimeoutMs}  --handshake-timeout-ms ${DEFAULT_LIMITS.handshakeTimeoutMs}
  --write-timeout-ms ${DEFAULT_LIMITS.writeTimeoutMs}
`;

/** A mistake in how the command was called (exit 2). */
class UsageError extends Error {}

const CONNECTION_OPTIONS = {
  server: { type: "string" },
  "token-file": { type: "string" },
  "tls-ca": { type: "string" },
} as const;
const CLIENT_OPTIONS = { ...CONNECTION_OPTIONS, json: { type: "boolean" } } as const;

/** How to reach the server, from the command line and the environment. */
interface ConnectionValues {
  server?: string;
  "token-file"?: string;
  "tls-ca"?: string;
}

/** Runs the command line and returns the exit status. */
export async function main(args: string[]): Promise<number> {
  try {
    await run(args);
    return 0;
  } catch (error) {
    if (error instanceof UsageError || isParseArgsError(error)) {
      console.error(`dfs: ${(error as Error).message}\nTry "dfs --help".`);
      return 2;
    }
    if (error instanceof DfsError) {
      console.error(`dfs: ${error.message}`);
      return 1;
    }
    if (isOsError(error)) {
      console.error(`dfs: ${error.message}`);
      return 1;
    }
    console.error("dfs: internal error:", error);
    return 1;
  }
}

async function run(args: string[]): Promise<void> {
  const [command, ...rest] = args;
  switch (command) {
    case undefined:
      throw new UsageError("missing command");
    case "-h":
    case "--help":
    case "help":
      return void console.log(USAGE);
    case "--version":
      return void console.log(`dfs ${VERSION}`);
    case "serve":
      return await serve(rest);
    case "put":
      return await put(rest);
    case "get":
      return await get(rest);
    case "meta":
      return await meta(rest);
    case "list":
      return await list(rest);
    default:
      return await legacy(args);
  }
}

async function serve(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      ranks: { type: "string", default: "4" },
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "7070" },
      data: { type: "string", default: "./dfs-data" },
      replicas: { type: "string", default: "2" },
      "connections-max": { type: "string" },
      "requests-inflight-max": { type: "string" },
      "idle-timeout-ms": { type: "string" },
      "handshake-timeout-ms": { type: "string" },
      "write-timeout-ms": { type: "string" },
      "token-file": { type: "string" },
      "tls-cert": { type: "string" },
      "tls-key": { type: "string" },
    },
  });
  if ((values["tls-cert"] === undefined) !== (values["tls-key"] === undefined)) {
    throw new UsageError("--tls-cert and --tls-key go together");
  }
  let secret: Uint8Array | undefined;
  let tls: { cert: string; key: string } | undefined;
  try {
    secret = values["token-file"] === undefined
      ? undefined
      : await readTokenFile(values["token-file"]);
    if (values["tls-cert"] !== undefined) {
      tls = {
        cert: await Deno.readTextFile(values["tls-cert"]),
        key: await Deno.readTextFile(values["tls-key"]!),
      };
    }
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const ranks = integer(values.ranks, "--ranks");
  const replicas = integer(values.replicas, "--replicas");
  const port = integer(values.port, "--port");
  if (port > 65535) throw new UsageError(`--port must be at most 65535, got ${port}`);
  const limit = (name: keyof typeof values) =>
    values[name] === undefined ? undefined : integer(values[name] as string, `--${name}`);
  let cluster;
  try {
    cluster = await startCluster({ ranks, replicas, dataDir: values.data });
  } catch (error) {
    if (error instanceof DfsError && error.code === "INVALID_REQUEST") {
      throw new UsageError(error.message);
    }
    throw error;
  }
  for (const d of cluster.recovery.damaged) {
    console.error(
      `dfs: warning: "${d.name}" version ${d.version} lost a chunk on every replica; ` +
        (d.fallback ? `serving version ${d.fallback}` : "no intact version remains"),
    );
  }
  const server = serveClients(cluster.coordinator, {
    hostname: values.host,
    port,
    secret,
    tls,
    limits: {
      connectionsMax: limit("connections-max"),
      requestsInflightMax: limit("requests-inflight-max"),
      idleTimeoutMs: limit("idle-timeout-ms"),
      handshakeTimeoutMs: limit("handshake-timeout-ms"),
      writeTimeoutMs: limit("write-timeout-ms"),
    },
  });
  console.log(
    `dfs: listening on ${values.host}:${server.port} ` +
      `(${ranks} ranks, ${replicas} replicas, ${cluster.coordinator.fileCount} files in ${values.data}` +
      `${tls ? ", TLS" : ""}${secret ? ", token required" : ""})`,
  );
  const stopped = Promise.withResolvers<void>();
  const stop = () => stopped.resolve();
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  await stopped.promise;
  Deno.removeSignalListener("SIGINT", stop);
  Deno.removeSignalListener("SIGTERM", stop);
  await server.close();
  await cluster.close();
  console.error("dfs: stopped");
}

async function put(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    options: CLIENT_OPTIONS,
    allowPositionals: true,
  });
  const [local, nameArg, extra] = positionals;
  if (local === undefined) throw new UsageError("put needs a LOCAL file (or - for stdin)");
  if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
  if (local === "-" && nameArg === undefined) throw new UsageError("put - needs a NAME");
  const name = nameArg ?? basename(local);
  await using client = await connect(values);
  let result: FileMeta;
  if (local === "-") {
    result = await client.put(name, Deno.stdin.readable);
  } else {
    using file = await Deno.open(local, { read: true });
    const { size, isFile } = await file.stat();
    if (!isFile) throw new DfsError("INVALID_REQUEST", `Cannot put "${local}": not a regular file`);
    result = await client.put(name, file.readable, { size });
  }
  console.log(
    `${result.name}: ${result.size} bytes, version ${result.version}, sha256 ${result.sha256}`,
  );
}

async function get(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    options: CLIENT_OPTIONS,
    allowPositionals: true,
  });
  const [name, localArg, extra] = positionals;
  if (name === undefined) throw new UsageError("get needs a NAME");
  if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
  await using client = await connect(values);
  const { stream } = await client.open(name);
  if (localArg === "-") return await stream.pipeTo(Deno.stdout.writable, { preventClose: true });
  await saveAtomically(localArg ?? basename(name), stream);
}

/** Writes to a temporary file beside `path` and renames it into place: a failed get leaves nothing. */
async function saveAtomically(path: string, stream: ReadableStream<Uint8Array>): Promise<void> {
  const random = crypto.getRandomValues(new Uint32Array(1))[0].toString(16);
  const partial = join(dirname(path), `.${basename(path)}.${random}.dfs-partial`);
  try {
    const file = await Deno.open(partial, { write: true, createNew: true });
    await stream.pipeTo(file.writable); // closes the file
    await Deno.rename(partial, path);
  } catch (error) {
    await Deno.remove(partial).catch(() => {});
    throw error;
  }
}

async function meta(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    options: CLIENT_OPTIONS,
    allowPositionals: true,
  });
  if (positionals.length !== 1) throw new UsageError("meta needs exactly one NAME");
  await using client = await connect(values);
  const m = await client.meta(positionals[0]);
  if (values.json) return void console.log(JSON.stringify(m));
  console.log(formatMeta(m));
}

/** The human form of `dfs meta`. */
export function formatMeta(m: FileMeta): string {
  const lines = [
    `name      ${m.name}`,
    `size      ${m.size} bytes`,
    `sha256    ${m.sha256}`,
    `version   ${m.version}`,
    `modified  ${new Date(m.modified).toISOString()}`,
    `chunks    ${m.chunks.length}`,
  ];
  const width = String(m.chunks.length - 1).length;
  m.chunks.forEach((c, i) => {
    lines.push(`  ${String(i).padStart(width)}  ${c.size} bytes on ranks ${c.ranks.join(", ")}`);
  });
  return lines.join("\n");
}

async function list(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    options: CLIENT_OPTIONS,
    allowPositionals: true,
  });
  if (positionals.length > 1) throw new UsageError("list takes at most one PREFIX");
  await using client = await connect(values);
  const entries = await client.list(positionals[0] ?? "");
  if (values.json) return void console.log(JSON.stringify(entries));
  if (entries.length > 0) console.log(entries.map((e) => e.name).join("\n"));
}

/** The original client's forms: `dfs NAME -a` (put), `-r` (get), `-m` (meta). */
async function legacy(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      a: { type: "boolean" },
      r: { type: "boolean" },
      m: { type: "boolean" },
      ...CONNECTION_OPTIONS,
    },
    allowPositionals: true,
  });
  const modes = [values.a, values.r, values.m].filter(Boolean).length;
  if (positionals.length !== 1 || modes !== 1) throw new UsageError(`unknown command "${args[0]}"`);
  const connection = Object.keys(CONNECTION_OPTIONS).flatMap((key) => {
    const value = values[key as keyof ConnectionValues];
    return value === undefined ? [] : [`--${key}`, value];
  });
  const [name] = positionals;
  if (values.a) return await put([name, ...connection]);
  if (values.r) return await get([name, ...connection]);
  return await meta([name, ...connection]);
}

/** Connects with the options given, falling back on DFS_SERVER, DFS_TOKEN and DFS_TLS_CA. */
async function connect(values: ConnectionValues): Promise<DfsClient> {
  const address = values.server ?? Deno.env.get("DFS_SERVER") ?? DEFAULT_SERVER;
  const tokenFile = values["token-file"];
  const tokenText = Deno.env.get("DFS_TOKEN");
  const caFile = values["tls-ca"] ?? Deno.env.get("DFS_TLS_CA");
  const token = tokenFile !== undefined
    ? await readTokenFile(tokenFile)
    : tokenText === undefined
    ? undefined
    : tokenFromText(tokenText, "DFS_TOKEN variable");
  const tlsCaCerts = caFile === undefined ? undefined : [await Deno.readTextFile(caFile)];
  return await DfsClient.connect(address, { token, tlsCaCerts });
}

function integer(text: string, option: string): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`${option} must be a whole number, got "${text}"`);
  return Number(text);
}

/** A failure reported by the operating system (missing file, closed pipe, a directory in the way). */
function isOsError(error: unknown): error is Error {
  return Object.values(Deno.errors).some((kind) => error instanceof kind);
}

function isParseArgsError(error: unknown): boolean {
  return error instanceof TypeError &&
    String((error as { code?: string }).code).startsWith("ERR_PARSE_ARGS");
}

if (import.meta.main) Deno.exit(await main(Deno.args));
