/**
 * The CBOR gateway: rank 0's client socket, serving the framed CBOR protocol
 * (`protocol/messages.ts`) over any `StreamingFileStore`. `listener.ts` accepts connections,
 * `connection_table.ts` says which connection makes room for a new one and holds each client
 * address's upload share, `session.ts` serves one, `ops.ts` is the table from request to store
 * call, `limits.ts` holds what `dfs serve` can set.
 *
 * @module
 */

export {
  type ClientServer,
  serveClients,
  type ServeOptions,
  type ServerSecurity,
} from "./listener.ts";
export { LIST_ENTRY_OVERHEAD_BYTES, SERVER_NAME } from "./limits.ts";
export { CBOR_OPS, type Op, type OpContext } from "./ops.ts";
