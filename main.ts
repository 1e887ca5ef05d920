/**
 * The `dfs` command: `dfs serve` runs a server; the other commands are clients of it.
 * Exit status: 0 on success, 1 on an operational error, 2 on a usage error.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { type ByteSink, DEFAULT_SERVER, DfsClient, DfsError, type FileMeta } from "./client.ts";
import {
  commandHelp,
  type CommandName,
  COMMANDS,
  completionScript,
  mainHelp,
} from "./cli/commands.ts";
import {
  formatCapacity,
  formatDoctor,
  formatFsck,
  formatLongList,
  formatMeta,
  formatStatus,
  formatUsage,
  parseRange,
} from "./cli/format.ts";
import { filePieces } from "./cli/file_pieces.ts";
import { Progress } from "./cli/progress.ts";
import {
  clientSettings,
  clusterSecret,
  given,
  integer,
  nodeSettings,
  portOf,
  s3Settings,
  serveSecurity,
  uiSettings,
  UsageError,
  type Values,
} from "./cli/settings.ts";
import { FRAME_SIZE_BYTES_MAX, FRAME_SIZE_BYTES_MIN } from "./protocol/limits.ts";
import { SERVE_DEFAULTS } from "./ranks/config.ts";

export const VERSION = "0.2.0";

/** Runs the command line and returns the exit status. */
export async function main(args: string[]): Promise<number> {
  try {
    await run(args);
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      const help = error.command ? `dfs ${error.command} --help` : "dfs --help";
      console.error(`dfs: ${error.message}\nTry "${help}".`);
      return 2;
    }
    if (error instanceof DfsError || isOsError(error)) {
      console.error(`dfs: ${error.message}`);
      return 1;
    }
    console.error("dfs: internal error:", error);
    return 1;
  }
}

async function run(args: string[]): Promise<void> {
  const [first, ...rest] = args;
  if (first === undefined) throw new UsageError("missing command");
  if (first === "-h" || first === "--help" || first === "help") {
    const topic = first === "help" ? rest[0] : undefined;
    if (topic !== undefined && !(topic in COMMANDS)) {
      throw new UsageError(`unknown command "${topic}"`);
    }
    return void console.log(topic ? commandHelp(topic as CommandName) : mainHelp(VERSION));
  }
  if (first === "--version" || first === "-V") return void console.log(`dfs ${VERSION}`);
  if (!(first in COMMANDS)) return await legacy(args);
  const command = first as CommandName;
  const { values, positionals } = parse(command, rest);
  if (values.help) return void console.log(commandHelp(command));
  await RUNNERS[command](values, positionals);
}

/** Parses a command's arguments by its spec; mistakes become usage errors pointing to its help. */
function parse(command: CommandName, args: string[]): { values: Values; positionals: string[] } {
  const spec = COMMANDS[command];
  const options: Record<string, { type: "string" | "boolean"; short?: string; multiple?: false }> =
    {};
  for (const o of spec.options) {
    options[o.name] = o.short ? { type: o.type, short: o.short } : { type: o.type };
  }
  options.help = { type: "boolean", short: "h" };
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message, command);
  }
  const values = parsed.values as Values;
  for (const o of spec.options) {
    if (values[o.name] === undefined && o.default !== undefined) values[o.name] = o.default;
  }
  if (!values.help) {
    const [min, max] = spec.positionals;
    const n = parsed.positionals.length;
    if (n < min) {
      throw new UsageError(`${command} needs ${spec.usage.split(" ").slice(1).join(" ")}`, command);
    }
    if (n > max) throw new UsageError(`unexpected argument "${parsed.positionals[max]}"`, command);
  }
  return { values, positionals: parsed.positionals };
}

const RUNNERS: Record<CommandName, (values: Values, positionals: string[]) => Promise<void>> = {
  serve,
  node,
  put,
  get,
  meta,
  list,
  rm,
  mv,
  du,
  df,
  fsck,
  status,
  doctor,
  completion: () => Promise.resolve(void console.log(completionScript())),
};

async function serve(values: Values): Promise<void> {
  const ranks = integer(values.ranks, "--ranks", "serve");
  const replicas = integer(values.replicas, "--replicas", "serve");
  const port = portOf(values.port, "--port", "serve");
  const optional = (name: string) =>
    values[name] === undefined ? undefined : integer(values[name], `--${name}`, "serve");
  const { secret, tls } = await serveSecurity(values);
  const s3 = await s3Settings(values, String(values.host));
  const ui = uiSettings(values, String(values.host));
  const clusterSecretBytes = await clusterSecret(values, "serve");
  for (const option of ["node-port", "node-host", "forget-node"]) {
    if (values[option] !== undefined && clusterSecretBytes === undefined) {
      throw new UsageError(
        `--${option} needs --cluster-secret-file: a store never accepts unauthenticated nodes`,
        "serve",
      );
    }
  }
  const nodePort = values["node-port"] === undefined
    ? SERVE_DEFAULTS.nodePort
    : portOf(values["node-port"], "--node-port", "serve");
  const nodeHost = values["node-host"] === undefined
    ? String(values.host)
    : given(values["node-host"], { source: "--node-host", wants: "HOST", command: "serve" });
  const frameSize = optional("frame-size-bytes-max");
  if (
    frameSize !== undefined &&
    (frameSize < FRAME_SIZE_BYTES_MIN || frameSize > FRAME_SIZE_BYTES_MAX)
  ) {
    throw new UsageError(
      `--frame-size-bytes-max must be from ${FRAME_SIZE_BYTES_MIN} to ${FRAME_SIZE_BYTES_MAX}`,
      "serve",
    );
  }
  const dataDir = String(values.data);
  let server;
  try {
    // The server's and the node's code load only for them: a client command starts in ~48 ms
    // instead of ~71 (`deno compile` includes imports of literal paths).
    const { startServer } = await import("./ranks/server.ts");
    server = await startServer({
      ranks,
      replicas,
      dataDir,
      rereplicateAfterMs: optional("rereplicate-after-ms"),
      forgetNodes: forgetNodesOf(values["forget-node"]),
      s3: s3 === undefined ? undefined : { ...s3, tls },
      ui: ui === undefined ? undefined : { ...ui, secret, tls },
      nodePort: clusterSecretBytes === undefined
        ? undefined
        : { hostname: nodeHost!, port: nodePort, secret: clusterSecretBytes, tls },
      hostname: String(values.host),
      port,
      secret,
      tls,
      limits: {
        connectionsMax: optional("connections-max"),
        connectionsPerAddressMax: optional("connections-per-address-max"),
        requestsInflightMax: optional("requests-inflight-max"),
        uploadsPerConnectionMax: optional("uploads-per-connection-max"),
        uploadsPerAddressMax: optional("uploads-per-address-max"),
        uploadStallTimeoutMs: optional("upload-stall-timeout-ms"),
        idleTimeoutMs: optional("idle-timeout-ms"),
        handshakeTimeoutMs: optional("handshake-timeout-ms"),
        writeTimeoutMs: optional("write-timeout-ms"),
        frameSizeBytesMax: frameSize,
      },
      cacheBytes: integer(values["cache-mib"], "--cache-mib", "serve") * 1024 * 1024,
      scrub: {
        bytesPerSec: integer(values["scrub-bytes-per-sec"], "--scrub-bytes-per-sec", "serve"),
        pauseMs: integer(values["scrub-pause-ms"], "--scrub-pause-ms", "serve"),
        busyOpsPerSecMax: integer(
          values["scrub-busy-ops-per-sec"],
          "--scrub-busy-ops-per-sec",
          "serve",
        ),
      },
    });
  } catch (error) {
    if (error instanceof DfsError && error.code === "INVALID_REQUEST") {
      throw new UsageError(error.message, "serve");
    }
    throw error;
  }
  const nodes = server.cluster.nodePort;
  console.log(
    `dfs: listening on ${values.host}:${server.gateway.port} ` +
      `(${ranks} ranks, ${replicas} replicas, ${server.store.fileCount} files in ${dataDir}` +
      `${tls ? ", TLS" : ""}${secret ? ", token required" : ""})` +
      (nodes ? `; nodes on ${nodes.hostname}:${nodes.port}` : "") +
      (server.s3 ? `; s3 on ${server.s3.hostname}:${server.s3.port}` : "") +
      (server.ui ? `; ui on ${server.ui.hostname}:${server.ui.port}` : ""),
  );
  const stopped = Promise.withResolvers<void>();
  const stop = () => stopped.resolve();
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  await stopped.promise;
  Deno.removeSignalListener("SIGINT", stop);
  Deno.removeSignalListener("SIGTERM", stop);
  await server.close();
  console.error("dfs: stopped");
}

/** `--forget-node RANK[,RANK...]` as ranks; a usage error for anything else. */
function forgetNodesOf(value: string | boolean | undefined): number[] | undefined {
  if (value === undefined) return undefined;
  const text = given(value, { source: "--forget-node", wants: "RANK[,RANK...]", command: "serve" });
  const ranks = (text ?? "").split(",").map((part) => part.trim());
  if (!ranks.every((rank) => /^[1-9]\d*$/.test(rank))) {
    throw new UsageError(`--forget-node takes ranks such as 3 or 3,4, got "${text}"`, "serve");
  }
  return ranks.map(Number);
}

/** `dfs node`: one data node as a process of its own, joined to a server's node port. */
async function node(values: Values): Promise<void> {
  const { joinAddress, ...settings } = await nodeSettings(values);
  const stopping = new AbortController();
  const stop = () => stopping.abort();
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  try {
    const { runRemoteNode } = await import("./ranks/node/remote_node.ts");
    await runRemoteNode({
      ...settings,
      signal: stopping.signal,
      onJoined: (rank) => console.log(`dfs: joined ${joinAddress} as rank ${rank}`),
    });
  } finally {
    Deno.removeSignalListener("SIGINT", stop);
    Deno.removeSignalListener("SIGTERM", stop);
  }
  console.error("dfs: node stopped");
}

async function put(values: Values, [local, nameArg]: string[]): Promise<void> {
  if (local === "-" && nameArg === undefined) throw new UsageError("put - needs a NAME", "put");
  const name = nfc(nameArg ?? basename(local));
  const replicas = values.replicas === undefined
    ? undefined
    : integer(values.replicas, "--replicas", "put");
  await using client = await connect(values, "put");
  let source: ReadableStream<Uint8Array>;
  let size: number | undefined;
  let file: Deno.FsFile | undefined;
  if (local === "-") {
    source = Deno.stdin.readable;
  } else {
    file = await Deno.open(local, { read: true });
    const info = await file.stat();
    if (!info.isFile) {
      file.close();
      throw new DfsError("INVALID_REQUEST", `Cannot put "${local}": not a regular file`);
    }
    size = info.size;
    source = filePieces(file);
  }
  const progress = showProgress(values) ? new Progress(size, { out: Deno.stderr }) : undefined;
  const result = await client.put(
    name,
    progress ? source.pipeThrough(progress.counter()) : source,
    {
      size,
      replicas,
    },
  );
  progress?.finish();
  if (values.quiet) return;
  console.log(
    `${result.name}: ${result.size} bytes, version ${result.version}, ` +
      `${result.replicas} replicas, sha256 ${result.sha256}`,
  );
}

async function get(values: Values, [nameArg, localArg]: string[]): Promise<void> {
  const name = nfc(nameArg);
  let range: { start: number; end?: number } | undefined;
  if (values.range !== undefined) {
    try {
      range = parseRange(String(values.range));
    } catch (error) {
      throw new UsageError((error as Error).message, "get");
    }
  }
  await using client = await connect(values, "get");
  let progress: Progress | undefined;
  const opened = (meta: FileMeta) => {
    const total = (range?.end ?? meta.size) - (range?.start ?? 0);
    if (showProgress(values)) progress = new Progress(total, { out: Deno.stderr });
  };
  // Each piece written before its buffer is read into again (`DfsClient.getInto`).
  const into = (sink: ByteSink) => {
    const count = (n: number) => (progress?.add(n), n);
    const counted = { write: (bytes: Uint8Array) => sink.write(bytes).then(count) };
    return client.getInto(name, counted, { ...range, opened });
  };
  if (localArg === "-") await into(Deno.stdout);
  else await saveAtomically(localArg ?? basename(name), into);
  progress?.finish();
}

/** Writes to a temporary file beside `path` and renames it into place: a failed get leaves nothing. */
async function saveAtomically(
  path: string,
  write: (file: Deno.FsFile) => Promise<unknown>,
): Promise<void> {
  const random = crypto.getRandomValues(new Uint32Array(1))[0].toString(16);
  const partial = join(dirname(path), `.${basename(path)}.${random}.dfs-partial`);
  try {
    {
      using file = await Deno.open(partial, { write: true, createNew: true });
      await write(file);
    }
    await Deno.rename(partial, path);
  } catch (error) {
    await Deno.remove(partial).catch(() => {});
    throw error;
  }
}

async function meta(values: Values, [name]: string[]): Promise<void> {
  await using client = await connect(values, "meta");
  const m = await client.meta(nfc(name));
  console.log(values.json ? JSON.stringify(m) : formatMeta(m));
}

async function list(values: Values, [prefix]: string[]): Promise<void> {
  await using client = await connect(values, "list");
  // A page at a time, as the server sends them: a listing of a million names takes a page of
  // memory. `-l` aligns its columns within each page (`LIST_PAGE_ENTRIES_MAX` entries). A reader
  // that stops (`dfs list | head`) ends the listing quietly, as `ls` does.
  const out = new TextEncoder();
  const write = (text: string) => {
    const bytes = out.encode(text);
    for (let at = 0; at < bytes.length;) at += Deno.stdout.writeSync(bytes.subarray(at));
  };
  let first = true;
  try {
    for await (const page of client.listPages(nfc(prefix ?? ""))) {
      if (page.length === 0) continue;
      if (values.json) {
        write((first ? "[" : ",") + JSON.stringify(page).slice(1, -1));
      } else {
        write((values.long ? formatLongList(page) : page.map((e) => e.name).join("\n")) + "\n");
      }
      first = false;
    }
    if (values.json) write(first ? "[]\n" : "]\n");
  } catch (error) {
    if (!(error instanceof Deno.errors.BrokenPipe)) throw error;
  }
}

async function rm(values: Values, names: string[]): Promise<void> {
  const prefix = typeof values.prefix === "string" ? nfc(values.prefix) : values.prefix;
  if ((prefix === undefined) === (names.length === 0)) {
    throw new UsageError("rm takes NAME... or --prefix P", "rm");
  }
  if (prefix === "") {
    throw new UsageError("--prefix must not be empty (it would remove everything)", "rm");
  }
  await using client = await connect(values, "rm");
  if (prefix !== undefined) {
    const removed = await client.removePrefix(String(prefix));
    if (!values.quiet) {
      console.log(`removed ${removed} file${removed === 1 ? "" : "s"} under ${prefix}`);
    }
    return;
  }
  for (const name of names.map(nfc)) {
    await client.remove(name);
    if (!values.quiet) console.log(`removed ${name}`);
  }
}

async function mv(values: Values, [fromArg, toArg]: string[]): Promise<void> {
  const [from, to] = [nfc(fromArg), nfc(toArg)];
  await using client = await connect(values, "mv");
  const moved = await client.rename(from, to, { force: values.force === true });
  if (!values.quiet) console.log(`${from} -> ${moved.name}`);
}

async function du(values: Values, [prefixArg]: string[]): Promise<void> {
  const prefix = nfc(prefixArg ?? "");
  await using client = await connect(values, "du");
  const usage = await client.usage(prefix);
  console.log(values.json ? JSON.stringify(usage) : formatUsage(usage, prefix));
}

async function fsck(values: Values): Promise<void> {
  await using client = await connect(values, "fsck");
  const report = await client.fsck();
  console.log(values.json ? JSON.stringify(report) : formatFsck(report));
  if (report.lost.length > 0) {
    throw new DfsError(
      "CORRUPTED",
      `${report.lost.length} file(s) lost: no good replica of a chunk`,
    );
  }
}

async function status(values: Values): Promise<void> {
  await using client = await connect(values, "status");
  const report = await client.status();
  console.log(values.json ? JSON.stringify(report) : formatStatus(report));
}

/**
 * `dfs doctor --lose RANK|ZONE`: what losing a data node or zone now would do. Exit 0 whatever it
 * finds: it answers a question, it does not check anything.
 */
async function doctor(values: Values): Promise<void> {
  const target = values.lose;
  if (typeof target !== "string") throw new UsageError("doctor needs --lose RANK|ZONE", "doctor");
  if (target === "") throw new UsageError("--lose must not be empty", "doctor");
  await using client = await connect(values, "doctor");
  const report = await client.doctor(target);
  console.log(values.json ? JSON.stringify(report) : formatDoctor(report));
}

async function df(values: Values): Promise<void> {
  await using client = await connect(values, "df");
  const ranks = await client.capacity();
  console.log(values.json ? JSON.stringify(ranks) : formatCapacity(ranks));
}

/** The original client's forms: `dfs NAME -a` (put), `-r` (get), `-m` (meta). */
async function legacy(args: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        a: { type: "boolean" },
        r: { type: "boolean" },
        m: { type: "boolean" },
        server: { type: "string" },
        "token-file": { type: "string" },
        "tls-ca": { type: "string" },
      },
      allowPositionals: true,
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  const modes = [values.a, values.r, values.m].filter(Boolean).length;
  if (positionals.length !== 1 || modes !== 1) throw new UsageError(`unknown command "${args[0]}"`);
  const connection: Values = {
    server: values.server,
    "token-file": values["token-file"],
    "tls-ca": values["tls-ca"],
  };
  const [name] = positionals;
  if (values.a) return await put(connection, [name]);
  if (values.r) return await get(connection, [name]);
  return await meta(connection, [name]);
}

/**
 * Connects with the options given, falling back on DFS_SERVER, DFS_TOKEN and DFS_TLS_CA; a
 * mistake in them is a usage error pointing to `command`'s help.
 */
async function connect(values: Values, command: CommandName): Promise<DfsClient> {
  const { address, token, tlsCaCerts } = await clientSettings(values, command);
  return await DfsClient.connect(address ?? DEFAULT_SERVER, { token, tlsCaCerts });
}

/**
 * A name or prefix from the arguments or the local file system in Unicode NFC, the one form the
 * server accepts (macOS, for one, gives file names in NFD). Nothing else is changed: a name the
 * server refuses for another reason (a control character, say) is sent as it is, to be refused.
 */
function nfc(text: string): string {
  return text.normalize("NFC");
}

/** Progress goes to stderr when it is a terminal and --quiet was not given. */
function showProgress(values: Values): boolean {
  return !values.quiet && Deno.stderr.isTerminal();
}

/** A failure reported by the operating system (missing file, closed pipe, a directory in the way). */
function isOsError(error: unknown): error is Error {
  return Object.values(Deno.errors).some((kind) => error instanceof kind);
}

export type { FileMeta };

if (import.meta.main) Deno.exit(await main(Deno.args));
