/**
 * Memory per file of rank 0's index: realistic manifests of small files (one chunk of 4 B to
 * 4 KiB on 2 ranks, sha256 in hex, a CRC32) held in a `Map<string, Manifest>` (the index before
 * `ManifestColumns`), in `ManifestColumns`, in a data node's `ManifestColumns` (details elsewhere:
 * where each record is instead), in `FileIndex`, and their names alone in a
 * `Map<string, number>`; and, as a control, none held (`none`: what making and dropping them
 * leaves in the rss). Each kind is measured in a process of its own, after `gc()`, before and
 * after inserting: heap used plus external (array buffers), and resident set size.
 *
 *     ./node_modules/.bin/deno run -A --v8-flags=--expose-gc bench/_manifest_memory.ts 1000000
 *
 * A second argument measures one kind in this process (what the first form runs for each).
 *
 * @module
 */

import type { Manifest } from "../ranks/common/manifest.ts";
import { ManifestColumns } from "../ranks/common/manifest_columns.ts";
import { FileIndex } from "../ranks/rank0/file_index.ts";
import { Prng } from "../tests/_bytes.ts";

/** What holds the manifests. */
export const KINDS = [
  "none",
  "map",
  "columns",
  "columns-elsewhere",
  "file-index",
  "names-map",
] as const;
export type Kind = typeof KINDS[number];

/** Files measured when no count is given. */
export const FILES_DEFAULT = 100_000;
/** Most files one run may ask for. */
export const FILES_MAX = 10_000_000;
/** Bytes of the smallest and of the largest file made. */
export const FILE_SIZE_BYTES_MIN = 4;
export const FILE_SIZE_BYTES_MAX = 4096;
/** Data ranks the files are spread over, 2 replicas each. */
export const DATA_RANKS = 8;

/** What one kind costs. */
export interface MemoryResult {
  kind: Kind;
  files: number;
  /** Heap used plus external, after minus before, per file. */
  heapAndExternalBytesPerFile: number;
  /** Resident set size, after minus before, per file. */
  rssBytesPerFile: number;
  /** What `ManifestColumns.bytes` counts (its typed arrays), per file; for `columns` only. */
  columnsBytesPerFile?: number;
  insertSeconds: number;
  /** One pass over every value, or for `names-map` every key. */
  iterateSeconds: number;
  /** Looking up every name once, in a shuffled order. */
  getSeconds: number;
}

const HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, "0"));

function hex(prng: Prng, bytes: number): string {
  let text = "";
  for (let i = 0; i < bytes; i++) text += HEX[prng.int(256)];
  return text;
}

/** The name of file `i`: half like `tiny/000123456`, half like `photos/2026/IMG_001234.jpg`. */
export function nameOf(i: number): string {
  return i % 2 === 0
    ? `tiny/${String(i).padStart(9, "0")}`
    : `photos/${2020 + (i % 7)}/IMG_${String(i).padStart(6, "0")}.jpg`;
}

/**
 * Manifest `i` of a run seeded with `prng`, cloned as rank 0 gets it from a data node (flat
 * strings, as decoding makes them, not the ropes concatenation leaves).
 */
export function manifestOf(i: number, prng: Prng, blobPrefix: string): Manifest {
  const size = FILE_SIZE_BYTES_MIN + prng.int(FILE_SIZE_BYTES_MAX - FILE_SIZE_BYTES_MIN + 1);
  const first = prng.int(DATA_RANKS);
  const second = (first + 1 + prng.int(DATA_RANKS - 1)) % DATA_RANKS;
  return structuredClone({
    name: nameOf(i),
    version: i + 1,
    size,
    sha256: hex(prng, 32),
    modified: 1_780_000_000_000 + i,
    chunks: [{
      id: `${blobPrefix}${i.toString(16).padStart(16, "0")}-0`,
      size,
      ranks: [first + 1, second + 1],
      crc32: prng.next(),
    }],
  });
}

function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (!collect) throw new Error("Run with --v8-flags=--expose-gc");
  for (let i = 0; i < 3; i++) collect();
}

function used(): { heap: number; rss: number } {
  const memory = Deno.memoryUsage();
  return { heap: memory.heapUsed + memory.external, rss: memory.rss };
}

/** The sizes of `manifests` added up: a pass over every value that the optimizer cannot drop. */
function sizeSum(manifests: Iterable<Manifest>): number {
  let n = 0;
  for (const m of manifests) n += m.size;
  return n;
}

/** A holder of one kind: how to add a manifest, look one up, and go over all of them. */
function holderOf(kind: Kind): {
  add(m: Manifest): void;
  get(name: string): unknown;
  iterate(): number;
  keep: unknown;
  bytes?: () => number;
} {
  switch (kind) {
    case "none": // the control: manifests made and dropped, what making them leaves in the rss
      return { add: () => {}, get: () => true, iterate: () => 0, keep: undefined };
    case "map": {
      const map = new Map<string, Manifest>();
      return {
        add: (m) => void map.set(m.name, m),
        get: (name) => map.get(name),
        iterate: () => sizeSum(map.values()),
        keep: map,
      };
    }
    case "columns": {
      const columns = new ManifestColumns();
      return {
        add: (m) => columns.set(m),
        get: (name) => columns.get(name),
        iterate: () => sizeSum(columns.values()),
        keep: columns,
        bytes: () => columns.bytes,
      };
    }
    case "columns-elsewhere": { // a data node's table: details in its log, where they are here
      const columns = new ManifestColumns({ details: "elsewhere" });
      return {
        add: (m) => columns.setWhere(columns.set(m), 1024 * columns.size),
        get: (name) => columns.slotOf(name) >= 0,
        iterate: () => {
          let n = 0;
          for (const { version } of columns.places()) n += version;
          return n;
        },
        keep: columns,
        bytes: () => columns.bytes,
      };
    }
    case "file-index": {
      const index = new FileIndex();
      return {
        add: (m) => void index.install(m),
        get: (name) => index.get(name),
        iterate: () => sizeSum(index.values()),
        keep: index,
      };
    }
    case "names-map": {
      const names = new Map<string, number>();
      return {
        add: (m) => void names.set(m.name, names.size),
        get: (name) => names.get(name),
        iterate: () => {
          let n = 0;
          for (const name of names.keys()) n += name.length;
          return n;
        },
        keep: names,
      };
    }
  }
}

/** Measures one kind in this process. */
export function measure(kind: Kind, files: number): MemoryResult {
  const prng = new Prng(files);
  const blobPrefix = hex(prng, 8);
  const holder = holderOf(kind);
  gc();
  const before = used();
  let start = performance.now();
  for (let i = 0; i < files; i++) holder.add(manifestOf(i, prng, blobPrefix));
  const insertSeconds = (performance.now() - start) / 1000;
  gc();
  const after = used();
  start = performance.now();
  holder.iterate();
  const iterateSeconds = (performance.now() - start) / 1000;
  const order = Array.from({ length: files }, (_, i) => i);
  for (let i = files - 1; i > 0; i--) {
    const j = prng.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  start = performance.now();
  for (const i of order) if (holder.get(nameOf(i)) === undefined) throw new Error(`${i} lost`);
  const getSeconds = (performance.now() - start) / 1000;
  (globalThis as { kept?: unknown }).kept = holder.keep;
  return {
    kind,
    files,
    heapAndExternalBytesPerFile: Math.round((after.heap - before.heap) / files),
    rssBytesPerFile: Math.round((after.rss - before.rss) / files),
    ...(holder.bytes ? { columnsBytesPerFile: Math.round(holder.bytes() / files) } : {}),
    insertSeconds,
    iterateSeconds,
    getSeconds,
  };
}

/** Measures every kind, each in a child process of its own. */
async function measureAll(files: number): Promise<MemoryResult[]> {
  const results: MemoryResult[] = [];
  for (const kind of KINDS) {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--v8-flags=--expose-gc", import.meta.filename!, String(files), kind],
      stderr: "inherit",
    }).output();
    if (!output.success) throw new Error(`Measuring ${kind} failed`);
    results.push(JSON.parse(new TextDecoder().decode(output.stdout)));
  }
  return results;
}

function filesOf(text: string | undefined): number {
  const files = text === undefined ? FILES_DEFAULT : Number(text);
  if (!Number.isSafeInteger(files) || files < 1 || files > FILES_MAX) {
    throw new Error(`The file count must be 1 to ${FILES_MAX}, not ${text}`);
  }
  return files;
}

if (import.meta.main) {
  const files = filesOf(Deno.args[0]);
  const kind = Deno.args[1] as Kind | undefined;
  if (kind !== undefined) {
    if (!KINDS.includes(kind)) throw new Error(`Kind must be one of ${KINDS.join(", ")}`);
    console.log(JSON.stringify(measure(kind, files)));
  } else {
    console.log(`${files} files`);
    console.log("kind              heap+ext B/file   rss B/file   insert s   iterate s   get s");
    for (const r of await measureAll(files)) {
      console.log(
        `${r.kind.padEnd(17)} ${String(r.heapAndExternalBytesPerFile).padStart(15)} ${
          String(r.rssBytesPerFile).padStart(12)
        } ${r.insertSeconds.toFixed(2).padStart(10)} ${r.iterateSeconds.toFixed(2).padStart(11)} ${
          r.getSeconds.toFixed(2).padStart(7)
        }${r.columnsBytesPerFile === undefined ? "" : `   (columns: ${r.columnsBytesPerFile})`}`,
      );
    }
  }
}
