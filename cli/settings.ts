/**
 * What the command line reads besides its arguments: the `DFS_*` environment variables and the
 * files its options name (the token, the TLS certificates and key). Every mistake in them (a
 * variable set but empty, an empty option, a file that is missing, unreadable, too large or holds
 * the wrong thing) is a `UsageError` whose one line says which setting and why.
 *
 * @module
 */

import { DfsError } from "../protocol/errors.ts";
import { TOKEN_BYTES_MAX, tokenFromText } from "../protocol/auth.ts";
import { CREDENTIALS_FILE_BYTES_MAX, parseCredentials } from "../ranks/s3/credentials.ts";
import { ZONE_PATTERN } from "../ranks/common/join.ts";

/** A mistake in how the command was called (exit 2); `command` names the help to point to. */
export class UsageError extends Error {
  readonly command: string | undefined;

  constructor(message: string, command?: string) {
    super(message);
    this.command = command;
  }
}

/** Parsed options of a command line. */
export type Values = Record<string, string | boolean | undefined>;

/** Largest PEM file read (a certificate chain, a key or the certificates to trust). */
export const PEM_FILE_BYTES_MAX = 1024 * 1024;

/** What a client command connects with. */
export interface ClientSettings {
  /** `--server`, else `DFS_SERVER`; undefined for the default. */
  address?: string;
  token?: Uint8Array;
  tlsCaCerts?: string[];
}

/**
 * Reads a client command's connection settings: `--server` or `DFS_SERVER`, `--token-file` or
 * `DFS_TOKEN`, `--tls-ca` or `DFS_TLS_CA` (an option wins over its variable, which is not read
 * then). `command` names the help a usage error points to.
 *
 * @throws {UsageError} for an empty value or a file that cannot be used, saying which.
 */
export async function clientSettings(values: Values, command?: string): Promise<ClientSettings> {
  const from = (option: string, variable: string, wants: string) =>
    values[option] !== undefined
      ? given(values[option], { source: `--${option}`, wants, command })
      : given(Deno.env.get(variable), { source: variable, wants, command });
  const address = from("server", "DFS_SERVER", "HOST:PORT");
  const caFile = from("tls-ca", "DFS_TLS_CA", "a PEM file of certificates to trust");
  const caSource = values["tls-ca"] !== undefined ? "--tls-ca" : "DFS_TLS_CA";
  const tokenFile = given(values["token-file"], {
    source: "--token-file",
    wants: "a file holding the token",
    command,
  });
  let token: Uint8Array | undefined;
  if (tokenFile !== undefined) {
    token = await readToken(tokenFile, command);
  } else {
    const text = given(Deno.env.get("DFS_TOKEN"), {
      source: "DFS_TOKEN",
      wants: "the server's token",
      command,
    });
    if (text !== undefined) {
      token = usageOnError(() => tokenFromText(text, "DFS_TOKEN variable"), command);
    }
  }
  const tlsCaCerts = caFile === undefined
    ? undefined
    : [await readPem(caFile, { source: caSource, holds: "certificate", command })];
  return { address, token, tlsCaCerts };
}

/**
 * Reads `dfs serve`'s `--token-file`, and its `--tls-cert` and `--tls-key` (both or neither).
 *
 * @throws {UsageError} for an empty option or a file that cannot be used, saying which.
 */
export async function serveSecurity(
  values: Values,
): Promise<{ secret?: Uint8Array; tls?: { cert: string; key: string } }> {
  const command = "serve";
  const tokenFile = given(values["token-file"], {
    source: "--token-file",
    wants: "a file holding the token",
    command,
  });
  const certFile = given(values["tls-cert"], {
    source: "--tls-cert",
    wants: "a PEM certificate chain",
    command,
  });
  const keyFile = given(values["tls-key"], {
    source: "--tls-key",
    wants: "a PEM private key",
    command,
  });
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new UsageError("--tls-cert and --tls-key go together", command);
  }
  const secret = tokenFile === undefined ? undefined : await readToken(tokenFile, command);
  if (certFile === undefined || keyFile === undefined) return { secret };
  const cert = await readPem(certFile, { source: "--tls-cert", holds: "certificate", command });
  const key = await readPem(keyFile, { source: "--tls-key", holds: "private key", command });
  return { secret, tls: { cert, key } };
}

/**
 * Reads the cluster secret file `--cluster-secret-file` names (at least `TOKEN_BYTES_MIN` bytes),
 * for `command` (`serve` or `node`); undefined when the option is absent.
 *
 * @throws {UsageError} for an empty option or a file that cannot be used, saying which.
 */
export async function clusterSecret(
  values: Values,
  command: string,
): Promise<Uint8Array | undefined> {
  const file = given(values["cluster-secret-file"], {
    source: "--cluster-secret-file",
    wants: "a file holding the cluster secret",
    command,
  });
  return file === undefined ? undefined : await readToken(file, command, "--cluster-secret-file");
}

/** What `dfs serve` needs to run the S3 gateway. */
export interface S3Settings {
  hostname: string;
  port: number;
  region: string;
  credentials: Map<string, string>;
}

/**
 * Reads `dfs serve`'s S3 options: `--s3-port` (none: no gateway), `--s3-host` (default `host`),
 * `--s3-credentials-file` (required with a port), `--s3-region` (default us-east-1).
 *
 * @throws {UsageError} for an option without the others it needs, or a file that cannot be used.
 */
export async function s3Settings(values: Values, host: string): Promise<S3Settings | undefined> {
  const command = "serve";
  const portText = given(values["s3-port"], { source: "--s3-port", wants: "PORT", command });
  if (portText === undefined) {
    for (const option of ["s3-host", "s3-credentials-file", "s3-region"]) {
      if (values[option] !== undefined) {
        throw new UsageError(`--${option} needs --s3-port`, command);
      }
    }
    return undefined;
  }
  if (!/^\d+$/.test(portText) || Number(portText) > 65535) {
    throw new UsageError(`--s3-port must be a port from 0 to 65535, got "${portText}"`, command);
  }
  const file = given(values["s3-credentials-file"], {
    source: "--s3-credentials-file",
    wants: "a file of ACCESS_KEY_ID:SECRET lines",
    command,
  });
  if (file === undefined) {
    throw new UsageError(
      "--s3-port needs --s3-credentials-file: the gateway always checks keys",
      command,
    );
  }
  const bytes = await readSettingFile(file, {
    source: "--s3-credentials-file",
    bytesMax: CREDENTIALS_FILE_BYTES_MAX,
    command,
  });
  const credentials = usageOnError(
    () => parseCredentials(new TextDecoder().decode(bytes)),
    command,
  );
  const region =
    given(values["s3-region"], { source: "--s3-region", wants: "a region", command }) ??
      "us-east-1";
  if (!/^[a-z0-9-]{1,64}$/.test(region)) {
    throw new UsageError(`--s3-region takes a name such as us-east-1, got "${region}"`, command);
  }
  const hostname = given(values["s3-host"], { source: "--s3-host", wants: "HOST", command }) ??
    host;
  return { hostname, port: Number(portText), region, credentials };
}

/** Where `dfs serve` runs the dashboard. */
export interface UiSettings {
  hostname: string;
  port: number;
}

/**
 * Reads `dfs serve`'s dashboard options: `--ui-port` (none: no dashboard; 0 picks a free port)
 * and `--ui-host` (default `host`). The dashboard takes the token and TLS of `serveSecurity`.
 *
 * @throws {UsageError} for `--ui-host` without `--ui-port`, an empty option or a bad port.
 */
export function uiSettings(values: Values, host: string): UiSettings | undefined {
  const command = "serve";
  const portText = given(values["ui-port"], { source: "--ui-port", wants: "PORT", command });
  if (portText === undefined) {
    if (values["ui-host"] !== undefined) throw new UsageError("--ui-host needs --ui-port", command);
    return undefined;
  }
  if (!/^\d+$/.test(portText) || Number(portText) > 65535) {
    throw new UsageError(`--ui-port must be a port from 0 to 65535, got "${portText}"`, command);
  }
  const hostname = given(values["ui-host"], { source: "--ui-host", wants: "HOST", command }) ??
    host;
  return { hostname, port: Number(portText) };
}

/**
 * Reads `dfs node`'s `--tls-ca` (the certificates to trust on the node port); undefined when the
 * option is absent. No environment variable is read: a node is set up by its options alone.
 *
 * @throws {UsageError} for an empty option or a file that cannot be used, saying which.
 */
export async function nodeTlsCa(values: Values): Promise<string[] | undefined> {
  const command = "node";
  const file = given(values["tls-ca"], {
    source: "--tls-ca",
    wants: "a PEM file of certificates to trust",
    command,
  });
  if (file === undefined) return undefined;
  return [await readPem(file, { source: "--tls-ca", holds: "certificate", command })];
}

/**
 * A setting's value as given: undefined when absent.
 *
 * @throws {UsageError} when it is empty: `--option is empty: it takes WANTS`, or
 *   `VARIABLE is set but empty: set it to WANTS, or unset it`.
 */
export function given(
  value: string | boolean | undefined,
  setting: { source: string; wants: string; command?: string },
): string | undefined {
  if (typeof value !== "string") return undefined;
  if (value !== "") return value;
  const { source, wants, command } = setting;
  const why = source.startsWith("--")
    ? `${source} is empty: it takes ${wants}`
    : `${source} is set but empty: set it to ${wants}, or unset it`;
  throw new UsageError(why, command);
}

/**
 * Reads a whole regular file of at most `bytesMax` bytes that a setting names.
 *
 * @throws {UsageError} `Cannot read the SOURCE file PATH: why` (does not exist, permission
 *   denied, a directory, too large, or the system's message).
 */
export async function readSettingFile(
  path: string,
  setting: { source: string; bytesMax: number; command?: string },
): Promise<Uint8Array> {
  const fail = (why: string) =>
    new UsageError(`Cannot read the ${setting.source} file ${path}: ${why}`, setting.command);
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (error) {
    throw fail(osReason(error));
  }
  try {
    const info = await file.stat();
    if (info.isDirectory) throw fail("it is a directory");
    if (!info.isFile) throw fail("it is not a regular file");
    if (info.size > setting.bytesMax) {
      throw fail(`it is ${info.size} bytes, over the limit of ${setting.bytesMax}`);
    }
    const bytes = new Uint8Array(info.size);
    let filled = 0;
    while (filled < bytes.length) {
      const n = await file.read(bytes.subarray(filled));
      if (n === null) break;
      filled += n;
    }
    return bytes.subarray(0, filled);
  } catch (error) {
    throw error instanceof UsageError ? error : fail(osReason(error));
  } finally {
    file.close();
  }
}

/** Reads a token file: its content without surrounding white space, at least 16 bytes. */
async function readToken(
  path: string,
  command?: string,
  source = "--token-file",
): Promise<Uint8Array> {
  const bytes = await readSettingFile(path, { source, bytesMax: TOKEN_BYTES_MAX, command });
  const text = new TextDecoder().decode(bytes);
  const what = source === "--token-file" ? "token file" : "cluster secret file";
  return usageOnError(() => tokenFromText(text, `${what} ${path}`), command);
}

/** PEM markers: a certificate, and a private key of any type (PKCS#8, RSA, EC). */
const PEM_BEGIN = {
  certificate: { pattern: /-----BEGIN CERTIFICATE-----/, example: "-----BEGIN CERTIFICATE-----" },
  "private key": { pattern: /-----BEGIN [A-Z ]*PRIVATE KEY-----/, example: undefined },
} as const;

/**
 * Reads a PEM file that must hold at least one `holds` block.
 *
 * @throws {UsageError} when it cannot be read or holds none.
 */
async function readPem(
  path: string,
  setting: { source: string; holds: keyof typeof PEM_BEGIN; command?: string },
): Promise<string> {
  const bytes = await readSettingFile(path, { ...setting, bytesMax: PEM_FILE_BYTES_MAX });
  const text = new TextDecoder().decode(bytes);
  const { pattern, example } = PEM_BEGIN[setting.holds];
  if (!pattern.test(text)) {
    throw new UsageError(
      `The ${setting.source} file ${path} holds no PEM ${setting.holds}` +
        (example ? ` ("${example}")` : ""),
      setting.command,
    );
  }
  return text;
}

/** Why the system refused a file, in a few words. */
function osReason(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) return "file does not exist";
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (error instanceof Deno.errors.IsADirectory) return "it is a directory";
  return (error as Error).message;
}

/** Runs `check`, turning the `DfsError` of a bad setting into a usage error. */
function usageOnError<T>(check: () => T, command?: string): T {
  try {
    return check();
  } catch (error) {
    if (error instanceof DfsError) throw new UsageError(error.message, command);
    throw error;
  }
}

/** What `dfs node` runs with (`runRemoteNode`'s options), from its command line. */
export interface NodeSettings {
  /** `--join` as given. */
  joinAddress: string;
  join: { hostname: string; port: number };
  dataDir: string;
  secret: Uint8Array;
  zone?: string;
  host?: string;
  tlsCaCerts?: string[];
  dataPort?: number;
  dataHost?: string;
  dataTls?: { cert: string; key: string };
}

/**
 * Reads `dfs node`'s options.
 *
 * @throws {UsageError} for a missing or malformed one.
 */
export async function nodeSettings(values: Values): Promise<NodeSettings> {
  const command = "node";
  const required = (name: string, wants: string) => {
    const value = given(values[name], { source: `--${name}`, wants, command });
    if (value === undefined) throw new UsageError(`node needs --${name} ${wants}`, command);
    return value;
  };
  const joinAddress = required("join", "HOST:PORT");
  const dataDir = required("data", "DIR");
  const secret = await clusterSecret(values, command);
  if (secret === undefined) {
    throw new UsageError(
      "node needs --cluster-secret-file F, the server's cluster secret",
      command,
    );
  }
  const zone = given(values.zone, { source: "--zone", wants: "a zone name", command });
  const host = given(values.host, { source: "--host", wants: "a host name", command });
  for (const [option, value] of [["--zone", zone], ["--host", host]] as const) {
    if (value !== undefined && !ZONE_PATTERN.test(value)) {
      throw new UsageError(
        `${option} takes 1 to 128 letters, digits or .-_:, got "${value}"`,
        command,
      );
    }
  }
  const port = values["data-port"] === undefined
    ? undefined
    : portOf(values["data-port"], "--data-port", command);
  return {
    joinAddress,
    join: parseHostPort(joinAddress, "--join"),
    dataDir,
    secret,
    zone,
    host,
    tlsCaCerts: await nodeTlsCa(values),
    dataPort: port,
    dataHost: given(values["data-host"], { source: "--data-host", wants: "H", command }),
    dataTls: await dataTls(values),
  };
}

/** `dfs node`'s `--data-tls-cert` and `--data-tls-key` (both or neither), read. */
async function dataTls(values: Values): Promise<{ cert: string; key: string } | undefined> {
  const command = "node";
  const cert = given(values["data-tls-cert"], { source: "--data-tls-cert", wants: "F", command });
  const key = given(values["data-tls-key"], { source: "--data-tls-key", wants: "F", command });
  if ((cert === undefined) !== (key === undefined)) {
    throw new UsageError("--data-tls-cert and --data-tls-key go together", command);
  }
  if (cert === undefined || key === undefined) return undefined;
  return {
    cert: await readPem(cert, { source: "--data-tls-cert", holds: "certificate", command }),
    key: await readPem(key, { source: "--data-tls-key", holds: "private key", command }),
  };
}

/** A whole-number option; a usage error otherwise. */
export function integer(
  text: string | boolean | undefined,
  option: string,
  command: string,
): number {
  if (typeof text !== "string" || !/^\d+$/.test(text)) {
    throw new UsageError(`${option} must be a whole number, got "${text}"`, command);
  }
  return Number(text);
}

/** A port number option (0 to 65535); a usage error otherwise. */
export function portOf(
  text: string | boolean | undefined,
  option: string,
  command: string,
): number {
  const port = integer(text, option, command);
  if (port > 65535) throw new UsageError(`${option} must be at most 65535, got ${port}`, command);
  return port;
}

/** `HOST:PORT` (IPv6 in brackets) as a hostname and port; a usage error otherwise. */
function parseHostPort(text: string, option: string): { hostname: string; port: number } {
  const match = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(text);
  const port = Number(match?.[2]);
  if (!match || port < 1 || port > 65535) {
    throw new UsageError(`${option} takes HOST:PORT, got "${text}"`, "node");
  }
  return { hostname: match[1].replace(/^\[|\]$/g, ""), port };
}
