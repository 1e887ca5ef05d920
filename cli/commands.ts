/**
 * Every command of `dfs` with its arguments and options (and their defaults). One table drives the
 * parsing, `dfs --help`, `dfs COMMAND --help` and the shell completion. Pure.
 *
 * @module
 */

import { DEFAULT_SERVER } from "../client.ts";
import { DEFAULT_LIMITS, SERVE_DEFAULTS } from "../ranks/config.ts";

export interface OptionSpec {
  name: string;
  type: "string" | "boolean";
  short?: string;
  /** Placeholder for the value in help, e.g. `HOST:PORT`. */
  value?: string;
  /** Applied when the option is absent. */
  default?: string;
  /** Shown as the default in help when there is no `default` (e.g. an environment variable). */
  defaultText?: string;
  help: string;
}

/** What `dfs node` takes. */
const NODE_OPTIONS: OptionSpec[] = [
  {
    name: "join",
    type: "string",
    value: "HOST:PORT",
    help: "required: the server's node port",
  },
  {
    name: "data",
    type: "string",
    value: "DIR",
    help: "required: this node's folder (its identity, chunks and log)",
  },
  {
    name: "zone",
    type: "string",
    value: "Z",
    defaultText: "the host name",
    help: "failure domain: replicas of a chunk go to different zones",
  },
  {
    name: "cluster-secret-file",
    type: "string",
    value: "F",
    help: "required: the cluster secret, as the server's",
  },
  {
    name: "tls-ca",
    type: "string",
    value: "F",
    defaultText: "none: plain TCP",
    help: "speak TLS to the node port, trusting these PEM certificates",
  },
  {
    name: "host",
    type: "string",
    value: "H",
    defaultText: "the system's host name",
    help: "this host's name, as the server shows it",
  },
  {
    name: "data-port",
    type: "string",
    value: "PORT",
    defaultText: "none: clients read through the server",
    help: "serve clients' reads of large files here directly (0: any free port)",
  },
  {
    name: "data-host",
    type: "string",
    value: "H",
    defaultText: "listen on all; tell clients the address the node reaches the server from",
    help: "the address the data port listens on and clients reach it at",
  },
  {
    name: "data-tls-cert",
    type: "string",
    value: "F",
    defaultText: "none: plain TCP",
    help: "the data port speaks TLS with this PEM certificate (with --data-tls-key)",
  },
  {
    name: "data-tls-key",
    type: "string",
    value: "F",
    help: "the data port's PEM private key",
  },
];

export interface CommandSpec {
  usage: string;
  summary: string;
  /** Fewest and most positional arguments. */
  positionals: [number, number];
  options: OptionSpec[];
}

const CONNECTION: OptionSpec[] = [
  {
    name: "server",
    type: "string",
    value: "HOST:PORT",
    defaultText: `$DFS_SERVER, else ${DEFAULT_SERVER}`,
    help: "server address",
  },
  {
    name: "token-file",
    type: "string",
    value: "F",
    defaultText: "the token in $DFS_TOKEN",
    help: "shared secret of a server started with --token-file",
  },
  {
    name: "tls-ca",
    type: "string",
    value: "F",
    defaultText: "$DFS_TLS_CA; none: plain TCP",
    help: "connect with TLS, trusting the PEM certificates in F",
  },
];
const JSON_OPTION: OptionSpec = { name: "json", type: "boolean", help: "print JSON" };
const QUIET: OptionSpec = {
  name: "quiet",
  type: "boolean",
  short: "q",
  help: "print nothing but errors (no progress bar, no summary)",
};
const limit = (name: string, value: number, help: string): OptionSpec => ({
  name,
  type: "string",
  value: "N",
  defaultText: String(value),
  help,
});

export const COMMANDS = {
  serve: {
    usage: "serve",
    summary: "run a server: rank 0, N-1 Worker data nodes, and remote ones that join",
    positionals: [0, 0],
    options: [
      {
        name: "ranks",
        type: "string",
        value: "N",
        default: String(SERVE_DEFAULTS.ranks),
        help: "ranks, rank 0 included",
      },
      {
        name: "host",
        type: "string",
        value: "HOST",
        default: SERVE_DEFAULTS.host,
        help: "listen address",
      },
      {
        name: "port",
        type: "string",
        value: "PORT",
        default: String(SERVE_DEFAULTS.port),
        help: "listen port (0: any)",
      },
      {
        name: "data",
        type: "string",
        value: "DIR",
        default: SERVE_DEFAULTS.dataDir,
        help: "data folder",
      },
      {
        name: "replicas",
        type: "string",
        value: "K",
        default: String(SERVE_DEFAULTS.replicas),
        help: "copies of every chunk",
      },
      limit("connections-max", DEFAULT_LIMITS.connectionsMax, "open client connections"),
      limit(
        "connections-per-address-max",
        DEFAULT_LIMITS.connectionsPerAddressMax,
        "open connections from one client address",
      ),
      limit("requests-inflight-max", DEFAULT_LIMITS.requestsInflightMax, "requests per connection"),
      limit(
        "uploads-per-connection-max",
        DEFAULT_LIMITS.uploadsPerConnectionMax,
        "uploads in progress per connection (more wait)",
      ),
      limit(
        "uploads-per-address-max",
        DEFAULT_LIMITS.uploadsPerAddressMax,
        "uploads in progress per client address (more wait)",
      ),
      limit(
        "upload-stall-timeout-ms",
        DEFAULT_LIMITS.uploadStallTimeoutMs,
        "fail an upload that receives no data for",
      ),
      limit("idle-timeout-ms", DEFAULT_LIMITS.idleTimeoutMs, "close idle connections after"),
      limit("handshake-timeout-ms", DEFAULT_LIMITS.handshakeTimeoutMs, "time to complete hello"),
      limit("write-timeout-ms", DEFAULT_LIMITS.writeTimeoutMs, "close a client that stops reading"),
      limit("frame-size-bytes-max", DEFAULT_LIMITS.frameSizeBytesMax, "largest frame accepted"),
      limit(
        "rereplicate-after-ms",
        SERVE_DEFAULTS.rereplicateAfterMs,
        "copy a down rank's replicas elsewhere after",
      ),
      {
        name: "cache-mib",
        type: "string",
        value: "N",
        default: String(SERVE_DEFAULTS.cacheMib),
        help: "memory for small files written or read lately, in MiB (0: none)",
      },
      {
        name: "scrub-bytes-per-sec",
        type: "string",
        value: "N",
        default: String(SERVE_DEFAULTS.scrubBytesPerSec),
        help: "background scrub rate, all replicas (0: off)",
      },
      {
        name: "scrub-pause-ms",
        type: "string",
        value: "N",
        default: String(SERVE_DEFAULTS.scrubPauseMs),
        help: "pause between scrub passes",
      },
      {
        name: "scrub-busy-ops-per-sec",
        type: "string",
        value: "N",
        default: String(SERVE_DEFAULTS.scrubBusyOpsPerSec),
        help: "client operations a second over which the scrub waits",
      },
      {
        name: "token-file",
        type: "string",
        value: "F",
        defaultText: "none",
        help: "require this secret, checked once as a connection opens: without TLS, " +
          "whoever relays a connection can send requests on it",
      },
      {
        name: "tls-cert",
        type: "string",
        value: "F",
        defaultText: "none",
        help: "serve TLS: PEM chain",
      },
      {
        name: "tls-key",
        type: "string",
        value: "F",
        defaultText: "none",
        help: "serve TLS: PEM key",
      },
      {
        name: "node-port",
        type: "string",
        value: "PORT",
        defaultText: String(SERVE_DEFAULTS.nodePort),
        help: "accept remote data nodes (dfs node) on this port, with --cluster-secret-file " +
          "(0: any)",
      },
      {
        name: "node-host",
        type: "string",
        value: "HOST",
        defaultText: "--host",
        help: "listen address of the node port",
      },
      {
        name: "s3-port",
        type: "string",
        value: "PORT",
        defaultText: "none: no S3 gateway",
        help: "serve the S3 API on this port, with --s3-credentials-file (0: any)",
      },
      {
        name: "s3-host",
        type: "string",
        value: "HOST",
        defaultText: "--host",
        help: "listen address of the S3 gateway",
      },
      {
        name: "s3-credentials-file",
        type: "string",
        value: "F",
        defaultText: "none",
        help: "the S3 gateway's keys: one ACCESS_KEY_ID:SECRET per line",
      },
      {
        name: "s3-region",
        type: "string",
        value: "R",
        defaultText: "us-east-1",
        help: "the region the S3 gateway signs for and names",
      },
      {
        name: "ui-port",
        type: "string",
        value: "PORT",
        defaultText: "none: no dashboard",
        help: "serve the web dashboard on this port, behind a login with the token of " +
          "--token-file if given, over TLS with --tls-cert (0: any)",
      },
      {
        name: "ui-host",
        type: "string",
        value: "HOST",
        defaultText: "--host",
        help: "listen address of the dashboard",
      },
      {
        name: "forget-node",
        type: "string",
        value: "RANK[,RANK]",
        defaultText: "none",
        help: "forget remote data nodes gone for good: start without waiting for them; what " +
          "only they held is lost, the rest is re-replicated; they are refused if they return",
      },
      {
        name: "cluster-secret-file",
        type: "string",
        value: "F",
        defaultText: "none: no node port",
        help: "the secret remote data nodes and this server prove to each other",
      },
    ],
  },
  node: {
    usage: "node --join HOST:PORT --data DIR",
    summary: "run a data node of the server at HOST:PORT (its node port) on folder DIR",
    positionals: [0, 0],
    options: NODE_OPTIONS,
  },
  put: {
    usage: "put LOCAL [NAME]",
    summary: "upload LOCAL (- reads stdin) as NAME (default: LOCAL's base name)",
    positionals: [1, 2],
    options: [
      {
        name: "replicas",
        type: "string",
        value: "K",
        defaultText: "the server's",
        help: "copies of this file, 1 to the number of data nodes",
      },
      QUIET,
      ...CONNECTION,
    ],
  },
  get: {
    usage: "get NAME [LOCAL]",
    summary: "download NAME to LOCAL (default: NAME's base name; - writes stdout)",
    positionals: [1, 2],
    options: [
      {
        name: "range",
        type: "string",
        value: "START-END",
        defaultText: "the whole file",
        help: "only bytes START to END (inclusive; START- runs to the end)",
      },
      QUIET,
      ...CONNECTION,
    ],
  },
  meta: {
    usage: "meta NAME",
    summary: "show a file's metadata",
    positionals: [1, 1],
    options: [JSON_OPTION, ...CONNECTION],
  },
  list: {
    usage: "list [PREFIX]",
    summary: "list names, one per line, optionally under PREFIX",
    positionals: [0, 1],
    options: [
      { name: "long", type: "boolean", short: "l", help: "size, modified (UTC), replicas, name" },
      JSON_OPTION,
      ...CONNECTION,
    ],
  },
  rm: {
    usage: "rm NAME...",
    summary: "remove files (or every file under --prefix)",
    positionals: [0, Infinity],
    options: [
      { name: "prefix", type: "string", value: "P", help: "remove every name starting with P" },
      QUIET,
      ...CONNECTION,
    ],
  },
  mv: {
    usage: "mv OLD NEW",
    summary: "rename atomically",
    positionals: [2, 2],
    options: [
      { name: "force", type: "boolean", short: "f", help: "replace NEW if it exists" },
      QUIET,
      ...CONNECTION,
    ],
  },
  du: {
    usage: "du [PREFIX]",
    summary: "bytes used by files under PREFIX, and stored over all replicas",
    positionals: [0, 1],
    options: [JSON_OPTION, ...CONNECTION],
  },
  df: {
    usage: "df",
    summary: "each data node's use and the room on its disk",
    positionals: [0, 0],
    options: [JSON_OPTION, ...CONNECTION],
  },
  fsck: {
    usage: "fsck",
    summary: "check every replica of every chunk now, repair what can be; exit 1 if a file is lost",
    positionals: [0, 0],
    options: [JSON_OPTION, ...CONNECTION],
  },
  status: {
    usage: "status",
    summary: "each rank's state and load, repairs, scrub progress and problems",
    positionals: [0, 0],
    options: [JSON_OPTION, ...CONNECTION],
  },
  doctor: {
    usage: "doctor --lose RANK|ZONE",
    summary: "what losing a data node or zone now would leave under-replicated or lost; " +
      "exit 0 either way",
    positionals: [0, 0],
    options: [
      {
        name: "lose",
        type: "string",
        value: "RANK|ZONE",
        help: "required: the data rank, or the zone (every data node in it), to suppose gone",
      },
      JSON_OPTION,
      ...CONNECTION,
    ],
  },
  completion: {
    usage: "completion",
    summary: "print a bash completion script (source <(dfs completion))",
    positionals: [0, 0],
    options: [],
  },
} satisfies Record<string, CommandSpec>;

export type CommandName = keyof typeof COMMANDS;

/** `dfs --help`. */
export function mainHelp(version: string): string {
  const width = Math.max(...Object.values(COMMANDS).map((c) => c.usage.length));
  const lines = [
    `dfs ${version}: a distributed file store`,
    "",
    "Usage: dfs COMMAND [ARGS] [OPTIONS]",
    "",
    "Commands:",
    ...Object.values(COMMANDS).map((c) => `  dfs ${c.usage.padEnd(width)}  ${c.summary}`),
    `  dfs ${"NAME -a | -r | -m".padEnd(width)}  the original forms of put, get and meta`,
    "",
    "Client commands take --server HOST:PORT (default: $DFS_SERVER, else " +
    `${DEFAULT_SERVER}), --token-file F and --tls-ca F; meta, list, du, df, fsck, status and doctor take --json.`,
    '"dfs COMMAND --help" lists every option of a command with its default. dfs --version.',
  ];
  return lines.join("\n");
}

/** `dfs COMMAND --help`: usage, summary and every option with its default. */
export function commandHelp(name: CommandName): string {
  const spec: CommandSpec = COMMANDS[name];
  const flag = (o: OptionSpec) =>
    `${o.short ? `-${o.short}, ` : ""}--${o.name}${o.value ? ` ${o.value}` : ""}`;
  const width = Math.max(0, ...spec.options.map((o) => flag(o).length));
  const lines = [
    `Usage: dfs ${spec.usage} [OPTIONS]`,
    "",
    `${spec.summary[0].toUpperCase()}${spec.summary.slice(1)}.`,
  ];
  if (spec.options.length > 0) lines.push("", "Options:");
  for (const o of spec.options) {
    const fallback = o.default ?? o.defaultText;
    const suffix = fallback === undefined ? "" : ` (default: ${fallback})`;
    lines.push(`  ${flag(o).padEnd(width)}  ${o.help}${suffix}`);
  }
  lines.push(`  ${"-h, --help".padEnd(width)}  show this help`);
  return lines.join("\n");
}

/** A bash completion script for commands, options and (for NAME arguments) stored names. */
export function completionScript(): string {
  const commands = Object.keys(COMMANDS).join(" ");
  const cases = Object.entries(COMMANDS as Record<string, CommandSpec>).map(([name, spec]) => {
    const options = [...spec.options.map((o) => `--${o.name}`), "--help"].join(" ");
    return `    ${name}) opts="${options}" ;;`;
  });
  return `# bash completion for dfs: source <(dfs completion)
_dfs() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" cmd="\${COMP_WORDS[1]}" opts=""
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "${commands} --help --version" -- "$cur"))
    return
  fi
  case "$cmd" in
${cases.join("\n")}
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  elif [[ "$cmd" =~ ^(get|meta|rm|mv)$ ]]; then
    COMPREPLY=($(compgen -W "$(dfs list "$cur" 2>/dev/null)" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}
complete -F _dfs dfs
`;
}
