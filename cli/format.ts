/**
 * What the CLI prints: sizes, tables, `meta`, `list -l`, `du`, `df`, ranges. Pure.
 *
 * @module
 */

import type {
  DoctorReport,
  FileMeta,
  FsckReport,
  ListEntry,
  RankCapacity,
  StatusReport,
  Usage,
} from "../client.ts";

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/** Bytes in binary units with one decimal: `512 B`, `1.5 KiB`, `3.0 GiB`. */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

/** Milliseconds since the epoch as `YYYY-MM-DD HH:MM` in UTC. */
export function formatTime(ms: number): string {
  return new Date(ms).toISOString().slice(0, 16).replace("T", " ");
}

/** Rows of cells as aligned columns; columns listed in `right` are right-aligned. */
export function table(rows: string[][], right: ReadonlySet<number> = new Set()): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => widths[i] = Math.max(widths[i] ?? 0, cell.length));
  }
  return rows.map((row) =>
    row.map((cell, i) => {
      if (i === row.length - 1 && !right.has(i)) return cell; // no trailing spaces
      return right.has(i) ? cell.padStart(widths[i]) : cell.padEnd(widths[i]);
    }).join("  ")
  ).join("\n");
}

/** `dfs list -l`: size, modified time (UTC), replicas and name, in aligned columns. */
export function formatLongList(entries: readonly ListEntry[]): string {
  const rows = entries.map((
    e,
  ) => [formatBytes(e.size), formatTime(e.modified), String(e.replicas), e.name]);
  return table(rows, new Set([0, 2]));
}

/** The human form of `dfs meta`. */
export function formatMeta(m: FileMeta): string {
  const lines = [
    `name      ${m.name}`,
    `size      ${m.size} bytes`,
    `sha256    ${m.sha256}`,
    `version   ${m.version}`,
    `modified  ${new Date(m.modified).toISOString()}`,
    `replicas  ${m.replicas}`,
    `chunks    ${m.chunks.length}`,
  ];
  const width = String(m.chunks.length - 1).length;
  m.chunks.forEach((c, i) => {
    // Each replica's rank, with its zone when the server says it (zone-aware placement).
    const where = c.ranks.map((r, k) =>
      c.zones?.[k] === undefined ? `${r}` : `${r} (${c.zones[k]})`
    );
    lines.push(`  ${String(i).padStart(width)}  ${c.size} bytes on ranks ${where.join(", ")}`);
  });
  return lines.join("\n");
}

/** `dfs du`: one line with the file count, bytes, and bytes stored over all replicas. */
export function formatUsage(usage: Usage, prefix: string): string {
  const files = `${usage.files} file${usage.files === 1 ? "" : "s"}`;
  const stored = `${formatBytes(usage.storedBytes)} stored`;
  return `${formatBytes(usage.bytes)}  ${stored}  ${files}  ${prefix === "" ? "(all)" : prefix}`;
}

/**
 * `dfs df`: each data node's bytes held, the size and free space of its file system, and a total
 * in which file systems shared by several nodes count once.
 */
export function formatCapacity(ranks: readonly (RankCapacity & { device?: number })[]): string {
  const rows = [["rank", "held", "size", "available", "use%"]];
  const row = (name: string, held: number, total: number, available: number) => {
    const used = total === 0 ? 0 : (100 * (total - available)) / total;
    rows.push([
      name,
      formatBytes(held),
      formatBytes(total),
      formatBytes(available),
      `${used.toFixed(0)}%`,
    ]);
  };
  for (const r of ranks) row(String(r.rank), r.bytesHeld, r.totalBytes, r.availableBytes);
  const devices = new Map<string, RankCapacity>();
  for (const r of ranks) devices.set(String(r.device ?? r.rank), r);
  const held = ranks.reduce((n, r) => n + r.bytesHeld, 0);
  const total = [...devices.values()].reduce((n, r) => n + r.totalBytes, 0);
  const available = [...devices.values()].reduce((n, r) => n + r.availableBytes, 0);
  row("total", held, total, available);
  return table(rows, new Set([1, 2, 3, 4]));
}

/**
 * Parses `--range START-END` (inclusive byte offsets, as HTTP and curl have them; `START-` runs to
 * the end) into `{ start, end }` with `end` exclusive, or throws an Error naming the problem.
 */
export function parseRange(text: string): { start: number; end?: number } {
  const match = /^(\d+)-(\d*)$/.exec(text);
  if (!match) throw new Error(`--range must be START-END or START-, got "${text}"`);
  const start = Number(match[1]);
  if (match[2] === "") return { start };
  const last = Number(match[2]);
  if (last < start) throw new Error(`--range ${text} ends before it starts`);
  return { start, end: last + 1 };
}

/** `dfs fsck`: a summary line, then the names of files that are not healthy, by kind. */
export function formatFsck(r: FsckReport): string {
  const lines = [
    `${r.files} files, ${r.chunks} chunks, ${formatBytes(r.bytesChecked)} checked: ` +
    `${r.healthy} healthy, ${r.repaired.length} repaired, ` +
    `${r.underReplicated.length} under-replicated, ${r.lost.length} lost`,
  ];
  for (const name of r.repaired) lines.push(`repaired          ${name}`);
  for (const name of r.underReplicated) lines.push(`under-replicated  ${name}`);
  for (const name of r.lost) {
    lines.push(`LOST              ${name} (no good replica of some chunk)`);
  }
  for (const log of r.logs ?? []) {
    if (log.damagedRegions > 0) {
      lines.push(
        `log of rank ${log.rank}: ${log.damagedRegions} damaged region(s), ` +
          `${formatBytes(log.damagedBytes)}` + (log.rewritten ? ", rewritten from memory" : ""),
      );
    }
    if (log.missingBytes > 0) {
      lines.push(
        `log of rank ${log.rank}: cut, ${formatBytes(log.missingBytes)} missing; the node was ` +
          `restarted and refilled from good replicas`,
      );
    }
  }
  return lines.join("\n");
}

/**
 * `dfs doctor`: what losing the target would do, what is degraded already, then the names of the
 * files that would be lost and of those lost already, one per line (`would be lost: NAME`,
 * `lost now: NAME`), with how many more there are when the report holds only the first.
 */
export function formatDoctor(r: DoctorReport): string {
  const zones = r.zones.map((z) => JSON.stringify(z)).join(", ");
  const what = r.kind === "rank"
    ? `rank ${r.ranks[0]} (zone ${zones})`
    : `zone ${zones} (rank${r.ranks.length === 1 ? "" : "s"} ${r.ranks.join(", ")})`;
  const under = (u: DoctorReport["now"]["underReplicated"]) =>
    count(u.files, "file") +
    (u.files === 0 ? "" : ` (${formatBytes(u.bytes)} in ${count(u.chunks, "chunk")})`);
  const lost = (l: DoctorReport["now"]["lost"]) =>
    count(l.files, "file") + (l.files === 0 ? "" : ` (${formatBytes(l.bytes)})`);
  const down = r.ranksDown.length === 0
    ? "no data rank down"
    : `rank${r.ranksDown.length === 1 ? "" : "s"} ${r.ranksDown.join(", ")} down`;
  const lines = [
    `Losing ${what}: ${under(r.wouldBe.underReplicated)} would be under-replicated, ` +
    `${lost(r.wouldBe.lost)} would be lost`,
    `Now, before losing anything: ${under(r.now.underReplicated)} under-replicated, ` +
    `${lost(r.now.lost)} lost; ${down}`,
  ];
  const names = (label: string, l: DoctorReport["now"]["lost"]) => {
    for (const name of l.names) lines.push(`${label}: ${name}`);
    const more = l.files - l.names.length;
    if (more > 0) lines.push(`${label}: ... and ${more} more`);
  };
  names("would be lost", r.wouldBe.lost);
  names("lost now", r.now.lost);
  return lines.join("\n");
}

/** `n thing` or `n things`. */
function count(n: number, thing: string): string {
  return `${n} ${thing}${n === 1 ? "" : "s"}`;
}

/**
 * `dfs status`: one row per rank (with a `data` column, each node's data port, when some node
 * has one), then the store-wide counters.
 */
export function formatStatus(s: StatusReport): string {
  const data = s.ranks.some((r) => r.dataAddress !== undefined);
  const rows = [["rank", "kind", "zone", "address", ...(data ? ["data"] : []), "state"]];
  rows[0].push("held", "chunks", "missing", "heard");
  for (const r of s.ranks) {
    rows.push([
      String(r.rank),
      r.kind ?? "worker",
      r.zone ?? "-",
      r.address ?? "-",
      ...(data ? [r.dataAddress ?? "-"] : []),
      r.state,
      formatBytes(r.bytesHeld),
      String(r.chunks),
      String(r.missingChunks ?? 0),
      r.heartbeatAgeMs === undefined ? "-" : `${(r.heartbeatAgeMs / 1000).toFixed(1)}s ago`,
    ]);
  }
  const right = data ? [6, 7, 8, 9] : [5, 6, 7, 8];
  const lines = [table(rows, new Set(right))];
  for (const r of s.ranks) if (r.reason) lines.push(`rank ${r.rank} ${r.state}: ${r.reason}`);
  lines.push(
    `${s.files} files; chunks under-replicated: ${s.underReplicatedChunks}; corrupt replicas ` +
      `found: ${s.corruptReplicasFound}, repaired: ${s.repairs}; lost files: ${s.lostFiles}; ` +
      `scrub: ${s.scrub.passes} passes, ${formatBytes(s.scrub.bytes)} checked`,
  );
  const m = s.metadata;
  if (m && (m.damagedRegions || m.tailCuts || m.logsMadeAnew || m.logsRewritten)) {
    lines.push(
      `logs: ${m.damagedRegions} damaged region(s) (${formatBytes(m.damagedBytes)}) found, ` +
        `${m.tailCuts} torn tail(s) cut, ${m.logsMadeAnew} made anew, ${m.logsRewritten} rewritten`,
    );
  }
  return lines.join("\n");
}
