/**
 * The records of a data node's log: a commit of a manifest, a release, a rename, a compose, or new bytes of
 * a chunk kept in the log; and their encoding. Pure: no I/O.
 *
 * A record is binary (`manifest_codec.ts`); a record with data is followed by the data, to the end
 * of the record. Its first byte is `RECORD_BINARY | kind`, plus `RECORD_HAS_DATA` (0x08) if data follow:
 *
 * ```
 * commit  = 0x10 manifest                       release = 0x11 name:str version:varint
 * rename  = 0x12 fromVersion:varint hasTombstone:u8 [tombstone:manifest] manifest
 * compose = 0x13 sources:varint (name:str version:varint)* manifest
 * data    = 0x14 id:str
 * ```
 *
 * Logs written before hold CBOR records, which still decode: a plain record is a CBOR map (first
 * byte 0xa0 to 0xbf), a record with data starts with `RECORD_WITH_DATA` (0x01). A binary record's
 * first byte (0x10 to 0x1c) is neither.
 *
 * @module
 */

import { decode } from "../../protocol/cbor.ts";
import { assert } from "../../protocol/errors.ts";
import { checkManifest, type Manifest, tombstoneOf } from "../common/manifest.ts";
import { ManifestReader, ManifestWriter } from "../common/manifest_codec.ts";

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

/** The high bits of a binary record's first byte; the low three say its kind. */
const RECORD_BINARY = 0x10;
/** In a binary record's first byte: the record's data follow it, to the end of the record. */
const RECORD_HAS_DATA = 0x08;
const RECORD_KIND_BITS = 0x07;
/** Record kinds by their number in a binary record's first byte. */
const RECORD_KINDS = ["commit", "release", "rename", "compose", "data"] as const;
const RECORD_KIND_NUMBERS: Readonly<Record<LogRecord["kind"], number>> = {
  commit: 0,
  release: 1,
  rename: 2,
  compose: 3,
  data: 4,
};
/** The writer `encodeRecord()` reuses (a new buffer costs more than a small record's encoding). */
const scratch = new ManifestWriter();

/**
 * The first byte of a record in the CBOR form of earlier logs that carries data:
 * `[RECORD_WITH_DATA][u32 BE length of CBOR][CBOR record][data]`. A plain record was CBOR alone.
 */
const RECORD_WITH_DATA = 0x01;
const RECORD_WITH_DATA_HEADER_BYTES = 5;

/**
 * Encodes a log record in a fresh buffer; with `data`, the bytes of the record's one chunk travel
 * in the record itself, at its end (a small file kept in the log, see `data_node.ts`).
 *
 * @throws {Error} an assertion if the record is not well-formed (see `ManifestWriter.add()`).
 */
export function encodeRecord(record: LogRecord, data?: Uint8Array): Uint8Array {
  const writer = scratch;
  writer.reset();
  const kind = RECORD_KIND_NUMBERS[record.kind];
  assert(kind !== undefined, "a log record has a known kind");
  writer.addByte(RECORD_BINARY | kind | (data === undefined ? 0 : RECORD_HAS_DATA));
  switch (record.kind) {
    case "commit":
      writer.add(record.manifest);
      break;
    case "release":
      writer.addString(record.name);
      writer.addVarint(record.version);
      break;
    case "rename":
      writer.addVarint(record.fromVersion);
      writer.addByte(record.tombstone === undefined ? 0 : 1);
      if (record.tombstone !== undefined) writer.add(record.tombstone);
      writer.add(record.manifest);
      break;
    case "compose":
      writer.addVarint(record.sources.length);
      for (const source of record.sources) {
        writer.addString(source.name);
        writer.addVarint(source.version);
      }
      writer.add(record.manifest);
      break;
    case "data":
      writer.addString(record.id);
      break;
  }
  if (data === undefined) return writer.bytes();
  const bytes = new Uint8Array(writer.byteLength + data.length);
  writer.copyTo(bytes);
  bytes.set(data, writer.byteLength);
  return bytes;
}

/**
 * Decodes a log record read back from disk (binary, or CBOR from an earlier log), checking its
 * shape; `data` is where the bytes it carries sit in `bytes` (offset and size), if it carries any.
 *
 * @throws {DfsError} `CORRUPTED` if a binary record is truncated or malformed; {Error} an
 *   assertion if a CBOR record is.
 */
export function decodeRecordWithData(
  bytes: Uint8Array,
): { record: LogRecord; data?: { offset: number; size: number } } {
  const first = bytes[0];
  if ((first & ~(RECORD_HAS_DATA | RECORD_KIND_BITS)) === RECORD_BINARY) {
    return decodeBinaryRecord(bytes);
  }
  if (first !== RECORD_WITH_DATA) return { record: decodeCborRecord(bytes) };
  assert(bytes.length >= RECORD_WITH_DATA_HEADER_BYTES, "a record with data has its header");
  const cborBytes = new DataView(bytes.buffer, bytes.byteOffset + 1, 4).getUint32(0);
  const offset = RECORD_WITH_DATA_HEADER_BYTES + cborBytes;
  assert(offset <= bytes.length, "a record's CBOR fits in it");
  const record = decodeCborRecord(bytes.subarray(RECORD_WITH_DATA_HEADER_BYTES, offset));
  return { record, data: { offset, size: bytes.length - offset } };
}

/** True if `bytes` is a commit record in the binary form (written as is, it stays one). */
export function isBinaryCommit(bytes: Uint8Array): boolean {
  return bytes.length > 0 &&
    (bytes[0] & ~RECORD_HAS_DATA) === (RECORD_BINARY | RECORD_KIND_NUMBERS.commit);
}

/**
 * Decodes a log record read back from disk, checking its shape; the data it may carry are skipped.
 *
 * @throws what `decodeRecordWithData()` throws.
 */
export function decodeRecord(bytes: Uint8Array): LogRecord {
  return decodeRecordWithData(bytes).record;
}

/** Decodes a record in the binary form (its first byte is `RECORD_BINARY | ...`). */
function decodeBinaryRecord(
  bytes: Uint8Array,
): { record: LogRecord; data?: { offset: number; size: number } } {
  const reader = new ManifestReader(bytes, { at: 1, subject: "a log record" });
  const kind = RECORD_KINDS[bytes[0] & RECORD_KIND_BITS];
  let record: LogRecord;
  switch (kind) {
    case "commit":
      record = { kind, manifest: reader.manifest() };
      break;
    case "release":
      record = { kind, name: reader.string(), version: reader.varint() };
      break;
    case "rename": {
      const fromVersion = reader.varint();
      const hasTombstone = reader.byte();
      if (hasTombstone > 1) throw reader.malformed("a rename's tombstone flag is not 0 or 1");
      record = hasTombstone
        ? { kind, fromVersion, tombstone: reader.manifest(), manifest: reader.manifest() }
        : { kind, fromVersion, manifest: reader.manifest() };
      break;
    }
    case "compose": {
      const count = reader.varint();
      // Every source takes at least 2 bytes: its name's length and its version.
      if (count > reader.left / 2) throw reader.malformed("it ends before its sources");
      const sources: ComposeSource[] = [];
      for (let i = 0; i < count; i++) {
        sources.push({ name: reader.string(), version: reader.varint() });
      }
      record = { kind, sources, manifest: reader.manifest() };
      break;
    }
    case "data":
      record = { kind, id: reader.string() };
      break;
    default:
      throw reader.malformed(`unknown kind ${bytes[0] & RECORD_KIND_BITS}`, 0);
  }
  if (bytes[0] & RECORD_HAS_DATA) {
    return { record, data: { offset: reader.at, size: reader.left } };
  }
  if (reader.left > 0) throw reader.malformed(`${reader.left} bytes follow the record`);
  return { record };
}

/** Decodes a record in the CBOR form of earlier logs, without its data. */
function decodeCborRecord(bytes: Uint8Array): LogRecord {
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

/** The chunk whose bytes a record carries when it carries any: a restored chunk's, or a small file's. */
export function carriedChunkId(record: LogRecord): string | undefined {
  if (record.kind === "data") return record.id;
  if (record.kind === "commit") return record.manifest.chunks[0]?.id;
  return undefined;
}

/**
 * The records a log holds live and dead more once `record` is appended (a node compacts its log
 * once the dead outnumber the live): a commit is live; a compose replaces its sources' records
 * with one live manifest and their tombstones; a data record is folded into its commit record by
 * the next rewrite; a release (and a rename) kills itself and the commit it releases.
 */
export function recordCounts(record: LogRecord): readonly [live: number, dead: number] {
  switch (record.kind) {
    case "commit":
      return LIVE_ONE;
    case "compose":
      return [1 - record.sources.length, record.sources.length + 1];
    case "data":
      return DEAD_ONE;
    default:
      return KILLS_ONE;
  }
}

const LIVE_ONE = [1, 0] as const;
const DEAD_ONE = [0, 1] as const;
const KILLS_ONE = [-1, 2] as const;
