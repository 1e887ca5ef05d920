/**
 * The records of a data node's log: a commit of a manifest, a release, a rename, a compose, or new bytes of
 * a chunk kept in the log; and their encoding. Pure: no I/O.
 *
 * @module
 */

import { decode, Encoder } from "../../protocol/cbor.ts";
import { assert } from "../../protocol/errors.ts";
import { checkManifest, type Manifest, tombstoneOf } from "../common/manifest.ts";

/** What a data node appends to its log. */
export type LogRecord =
  | { kind: "commit"; manifest: Manifest }
  | { kind: "release"; name: string; version: number }
  /**
   * A rename, applied at once: version `fromVersion` of `tombstone.name` becomes `manifest` (same
   * chunks, new name and version) and `tombstone` marks the old name removed.
   */
  | { kind: "rename"; fromVersion: number; tombstone?: Manifest; manifest: Manifest }
  /**
   * A compose, applied at once: the `sources` (versions of other files) give their chunks to
   * `manifest` and are removed, each name leaving a tombstone at `manifest`'s version and time
   * (`composeTombstones`). Nothing is released: the chunks now belong to `manifest`.
   */
  | { kind: "compose"; sources: ComposeSource[]; manifest: Manifest }
  /** New bytes of a chunk kept in the log (a repair from a good replica); the record carries them. */
  | { kind: "data"; id: string };

/**
 * The name a rename record moves from: the tombstone's, or, for a record without one (a new
 * version of the same file with its chunks placed anew, after re-replication), the manifest's.
 */
export function renamedFrom(record: { tombstone?: Manifest; manifest: Manifest }): string {
  return record.tombstone?.name ?? record.manifest.name;
}

/** A version of a file that a compose takes the chunks of. */
export interface ComposeSource {
  name: string;
  version: number;
}

/** The tombstones a compose record leaves on its sources' names. */
export function composeTombstones(
  record: { sources: readonly ComposeSource[]; manifest: Manifest },
): Manifest[] {
  const { version, modified } = record.manifest;
  return record.sources.map((source) => tombstoneOf(source.name, version, modified));
}

const encoder = new Encoder({ useRecords: false, mapsAsObjects: true });

/**
 * The first byte of a record that carries data: `[RECORD_WITH_DATA][u32 BE length of CBOR][CBOR
 * record][data]`. A plain record is CBOR alone, and a CBOR map never starts with this byte.
 */
const RECORD_WITH_DATA = 0x01;
const RECORD_WITH_DATA_HEADER_BYTES = 5;

/**
 * Encodes a log record in a fresh buffer; with `data`, the bytes of the record's one chunk travel
 * in the record itself (a small file kept in the log, see `data_node.ts`).
 */
export function encodeRecord(record: LogRecord, data?: Uint8Array): Uint8Array {
  const cbor = encoder.encode(record);
  if (data === undefined) return cbor.slice();
  const bytes = new Uint8Array(RECORD_WITH_DATA_HEADER_BYTES + cbor.length + data.length);
  bytes[0] = RECORD_WITH_DATA;
  new DataView(bytes.buffer).setUint32(1, cbor.length);
  bytes.set(cbor, RECORD_WITH_DATA_HEADER_BYTES);
  bytes.set(data, RECORD_WITH_DATA_HEADER_BYTES + cbor.length);
  return bytes;
}

/**
 * Decodes a log record read back from disk, checking its shape; `data` is where the bytes it
 * carries sit in `bytes` (offset and size), if it carries any.
 */
export function decodeRecordWithData(
  bytes: Uint8Array,
): { record: LogRecord; data?: { offset: number; size: number } } {
  if (bytes[0] !== RECORD_WITH_DATA) return { record: decodeRecord(bytes) };
  assert(bytes.length >= RECORD_WITH_DATA_HEADER_BYTES, "a record with data has its header");
  const cborBytes = new DataView(bytes.buffer, bytes.byteOffset + 1, 4).getUint32(0);
  const offset = RECORD_WITH_DATA_HEADER_BYTES + cborBytes;
  assert(offset <= bytes.length, "a record's CBOR fits in it");
  const record = decodeRecord(bytes.subarray(RECORD_WITH_DATA_HEADER_BYTES, offset));
  return { record, data: { offset, size: bytes.length - offset } };
}

/** Decodes a log record without data read back from disk, checking its shape. */
export function decodeRecord(bytes: Uint8Array): LogRecord {
  if (bytes[0] === RECORD_WITH_DATA) return decodeRecordWithData(bytes).record;
  const record = decode(bytes) as LogRecord;
  assert(
    record.kind === "commit" || record.kind === "release" || record.kind === "rename" ||
      record.kind === "compose" || record.kind === "data",
    "log record has a known kind",
  );
  if (record.kind === "commit") checkManifest(record.manifest);
  if (record.kind === "rename") {
    checkManifest(record.manifest);
    if (record.tombstone) checkManifest(record.tombstone);
  }
  if (record.kind === "compose") {
    checkManifest(record.manifest);
    assert(Array.isArray(record.sources), "a compose record has sources");
    for (const source of record.sources) {
      assert(
        typeof source?.name === "string" && Number.isSafeInteger(source.version),
        "a compose source is a name and a version",
      );
    }
  }
  return record;
}
