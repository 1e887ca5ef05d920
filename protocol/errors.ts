/**
 * The one error class of dfs. It crosses the wire as `{ code, message }` and the client raises the same
 * class, so a caller handles a remote error exactly like a local one.
 *
 * @module
 */

/** Every error code the server and client use. */
export const ERROR_CODES = [
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "INVALID_REQUEST",
  "TOO_LARGE",
  "UNAVAILABLE",
  "CORRUPTED",
  "UNAUTHORIZED",
  "VERSION_MISMATCH",
  "INTERNAL",
  /**
   * Between ranks only: a data node whose disk failed (its folder gone, an I/O error, a read-only
   * file system) answers every call with it; rank 0 marks the node down and tells clients
   * `UNAVAILABLE`.
   */
  "NODE_FAILED",
] as const;

/** A machine-readable error code. */
export type ErrorCode = typeof ERROR_CODES[number];

/** The wire form of an error. */
export interface WireError {
  code: ErrorCode;
  message: string;
}

/** An expected, operational error: bad input, a missing file, an unreachable rank. */
export class DfsError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "DfsError";
    this.code = code;
  }

  /** The form this error takes on the wire. */
  toWire(): WireError {
    return { code: this.code, message: this.message };
  }

  /**
   * Turns any thrown value into its wire form. A `DfsError` keeps its code and message; anything else
   * is a programmer error and becomes `INTERNAL` with no details (the caller logs the original).
   */
  static wireOf(error: unknown): WireError {
    if (error instanceof DfsError) return error.toWire();
    return { code: "INTERNAL", message: "Internal server error" };
  }

  /** Rebuilds an error from its wire form; an unknown code becomes `INTERNAL`. */
  static fromWire(wire: unknown): DfsError {
    const w = wire as Partial<WireError> | null;
    const code = ERROR_CODES.includes(w?.code as ErrorCode) ? w!.code as ErrorCode : "INTERNAL";
    const message = typeof w?.message === "string" ? w.message : "Unknown error";
    return new DfsError(code, message);
  }
}

/** Asserts a programmer invariant; a failure is a bug, never an operational error. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`Assertion failed: ${message}`);
}
