/**
 * Every limit of the client protocol, named with its unit. The server announces the ones a client
 * needs in its handshake reply.
 *
 * @module
 */

/** The protocol version this build speaks; the handshake refuses any other. */
export const PROTOCOL_VERSION = 1;

/**
 * Bytes per chunk: the unit of placement and replication. 1 MiB measured best on this machine
 * (4 MiB page-cache writes were often 3x slower; smaller chunks cost more messages and fsyncs).
 */
export const CHUNK_SIZE_BYTES = 1024 * 1024;

/** Largest payload of one data frame (put or get). A data frame never spans two chunks. */
export const DATA_BYTES_MAX = CHUNK_SIZE_BYTES;

/** Room in a data frame for everything but its payload (CBOR keys, id, byte-string head). */
export const DATA_FRAME_OVERHEAD_BYTES = 4096;

/**
 * Largest frame body accepted by default, checked against the length prefix before anything is
 * allocated. A server may be started with a smaller one (`--frame-size-bytes-max`, at least
 * `FRAME_SIZE_BYTES_MIN`); it says so in its hello and clients send smaller data frames.
 */
export const FRAME_SIZE_BYTES_MAX = DATA_BYTES_MAX + DATA_FRAME_OVERHEAD_BYTES;

/** Smallest frame limit a server may be given: room for a list page of long names, say. */
export const FRAME_SIZE_BYTES_MIN = 64 * 1024;

/** Bytes of the length prefix in front of every frame (u32, big-endian). */
export const FRAME_HEADER_BYTES = 4;

/** Longest file name, in UTF-8 bytes. */
export const NAME_BYTES_MAX = 1024;

/** Longest `doctor` target (a rank or a zone name), in UTF-8 bytes. */
export const DOCTOR_TARGET_BYTES_MAX = 256;

/** Largest file accepted (1 TiB). */
export const FILE_SIZE_BYTES_MAX = 2 ** 40;

/** Entries per `list` reply frame; a long listing streams as several frames. */
export const LIST_PAGE_ENTRIES_MAX = 1000;

/**
 * Most entries one `list` request may ask for with `limit`; a client pages through a longer
 * listing with `after`. (A `list` without `limit` answers every name, as it always has.)
 */
export const LIST_LIMIT_ENTRIES_MAX = 10_000;
