// The dfs dashboard's page: polls the JSON API (ranks/ui/api.ts) and draws nodes, health,
// capacity, throughput and a file browser. Plain DOM: every name and message goes in as text
// (textContent, text nodes), never as HTML.

/** The header every change carries (the server refuses a change without it). */
const CHANGE_HEADERS = { "x-dfs-ui": "1" };
/** How often the throughput chart and the rest are fetched again, in ms. */
const THROUGHPUT_REFRESH_MS = 2000;
const OVERVIEW_REFRESH_MS = 5000;
/** Rows asked for per page of the file browser. */
const LIST_PAGE_ROWS = 200;
/** Uploads listed with their progress, at most (the oldest go first). */
const UPLOADS_SHOWN_MAX = 10;
/** Chunks shown in a file's details, at most. */
const DETAIL_CHUNKS_MAX = 20;

const $ = (id) => document.getElementById(id);

/** An element with properties (`class`, `data-*`, attributes in `attrs`) and children (text or nodes). */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined) continue;
    if (key === "class") node.className = value;
    else if (key === "attrs") {
      for (const [a, v] of Object.entries(value)) node.setAttribute(a, v);
    } else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node[key] = value;
  }
  node.append(...children.filter((child) => child !== undefined && child !== null));
  return node;
}

function formatBytes(bytes) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** `1 file`, `2 files`. */
function count(n, noun) {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

function formatRate(value) {
  if (value === 0) return "0";
  if (value < 0.01) return value.toExponential(1);
  return value < 10 ? value.toFixed(2) : value.toFixed(0);
}

function formatTime(ms) {
  return new Date(ms).toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
}

/** An error the API answered, with its code. */
class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls the API; a 401 shows the login form. */
async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  const body = await response.json().catch(() => ({}));
  if (response.ok) return body;
  const error = new ApiError(
    response.status,
    body.error?.code ?? "HTTP",
    body.error?.message ?? `${response.status} ${response.statusText}`,
  );
  if (response.status === 401 && !path.endsWith("/login")) showLogin();
  throw error;
}

// ---- Login ----

/** Whether the panels are being polled, and which round of polling (a log in starts a new one). */
let polling = false;
let pollRound = 0;

function showLogin() {
  polling = false;
  pollRound++;
  $("app").hidden = true;
  $("logout").hidden = true;
  $("summary").textContent = "";
  $("login").hidden = false;
  $("token").focus();
}

async function showApp(authRequired) {
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = !authRequired;
  if (!polling) {
    polling = true;
    pollRound++;
    pollOverview(pollRound);
    pollThroughput(pollRound);
  }
  await loadFolder();
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    await api("/api/login", {
      method: "POST",
      headers: { ...CHANGE_HEADERS, "content-type": "application/json" },
      body: JSON.stringify({ token: $("token").value }),
    });
    $("token").value = "";
    await showApp(true);
  } catch (error) {
    $("login-error").textContent = error.message;
  }
});

$("logout").addEventListener("click", async () => {
  await api("/api/logout", { method: "POST", headers: CHANGE_HEADERS }).catch(() => {});
  showLogin();
});

// ---- Nodes, health, capacity ----

/** Polls the overview while `round` is the polling round (a timer of an older one stops). */
async function pollOverview(round) {
  if (round !== pollRound) return;
  await refreshOverview();
  if (round === pollRound) setTimeout(() => pollOverview(round), OVERVIEW_REFRESH_MS);
}

/** Fetches and draws the nodes, health and capacity now (after a change, and on each poll). */
async function refreshOverview() {
  try {
    const [status, capacity] = await Promise.all([api("/api/status"), api("/api/capacity")]);
    renderNodes(status, capacity);
    renderHealth(status);
    renderCapacity(capacity);
    $("summary").textContent = `${count(status.files, "file")}, ` +
      `${count(status.ranks.length, "data node")}`;
  } catch (error) {
    if (error.status !== 401) {
      $("summary").textContent = `Cannot reach the server: ${error.message}`;
    }
  }
}

function renderNodes(status, capacity) {
  const disks = new Map(capacity.nodes.map((node) => [node.rank, node]));
  const rows = status.ranks.map((node) => {
    const disk = disks.get(node.rank);
    const state = el("span", { class: `state ${node.state}` }, node.state);
    const why = node.reason ? el("div", { class: "muted small" }, node.reason) : undefined;
    const missing = node.missingChunks
      ? el("div", { class: "warn small" }, `${node.missingChunks} replicas missing`)
      : undefined;
    return el(
      "tr",
      { attrs: { "data-rank": String(node.rank) } },
      cell("Rank", String(node.rank)),
      cell("State", [state, why, missing], false, why !== undefined || missing !== undefined),
      cell("Zone", node.zone ?? ""),
      cell("Kind", node.kind ?? "worker"),
      cell("Bytes", formatBytes(node.bytesHeld), true),
      cell("Chunks", String(node.chunks), true),
      cell(
        "Disk free",
        disk ? `${formatBytes(disk.availableBytes)} of ${formatBytes(disk.totalBytes)}` : "?",
        true,
        true,
      ),
    );
  });
  $("nodes").tBodies[0].replaceChildren(...rows);
}

/**
 * A table cell of `content` (a node, text, or a list of them) with its column's label, shown
 * beside the value on a narrow screen; `numeric` aligns it right, `wide` gives it a whole line
 * on a narrow screen.
 */
function cell(label, content, numeric = false, wide = false) {
  const children = Array.isArray(content) ? content : [content];
  const classes = [numeric ? "num" : "", wide ? "wide-cell" : ""].join(" ").trim();
  return el(
    "td",
    { class: classes || undefined, attrs: { "data-label": label } },
    ...children,
  );
}

function renderHealth(status) {
  const items = [
    ["Files", status.files],
    ["Under-replicated chunks", status.underReplicatedChunks, status.underReplicatedChunks > 0],
    ["Corrupt replicas found", status.corruptReplicasFound, status.corruptReplicasFound > 0],
    ["Replicas repaired", status.repairs],
    ["Lost files", status.lostFiles, status.lostFiles > 0],
    ["Scrub passes", status.scrub.passes],
    ["Scrubbed", formatBytes(status.scrub.bytes)],
  ];
  $("health").replaceChildren(...items.flatMap(([name, value, bad]) => [
    el("dt", {}, name),
    el("dd", { class: bad ? "warn" : undefined }, String(value)),
  ]));
}

function renderCapacity(capacity) {
  const { heldBytes, totalBytes, availableBytes } = capacity.totals;
  const used = Math.max(0, totalBytes - availableBytes);
  const share = (bytes) => totalBytes === 0 ? 0 : Math.min(100, (100 * bytes) / totalBytes);
  const held = Math.min(heldBytes, used);
  $("capacity-held").style.width = `${share(held)}%`;
  $("capacity-other").style.width = `${share(used - held)}%`;
  $("capacity-meter").setAttribute(
    "aria-label",
    `${share(used).toFixed(0)}% of the disks used, ${share(held).toFixed(0)}% by dfs`,
  );
  const items = [
    ["Used", `${formatBytes(used)} (${share(used).toFixed(0)}%)`],
    ["Free", formatBytes(availableBytes)],
    ["Size", formatBytes(totalBytes)],
    ["Held by dfs", `${formatBytes(heldBytes)} (all replicas)`],
  ];
  $("capacity").replaceChildren(
    ...items.flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, value)]),
  );
}

// ---- Throughput ----

let lastThroughput;

async function pollThroughput(round) {
  if (round !== pollRound) return;
  try {
    lastThroughput = await api("/api/throughput");
    drawThroughput();
  } catch {
    // pollOverview says when the server cannot be reached
  }
  if (round === pollRound) setTimeout(() => pollThroughput(round), THROUGHPUT_REFRESH_MS);
}

function drawThroughput() {
  const t = lastThroughput;
  if (!t) return;
  const mb = (series) => series.map((bytes) => bytes / 1e6);
  const recent = (series) => series.slice(-5).reduce((a, b) => a + b, 0) / 5;
  $("ops-now").textContent = `${formatRate(recent(t.ops))} now`;
  $("mbs-now").textContent = `${formatRate(recent(mb(t.readBytes)))} read, ` +
    `${formatRate(recent(mb(t.writtenBytes)))} written now`;
  drawChart($("ops-chart"), [{ values: t.ops, color: "--ops" }], t.windowSeconds);
  drawChart($("bytes-chart"), [
    { values: mb(t.readBytes), color: "--read" },
    { values: mb(t.writtenBytes), color: "--written" },
  ], t.windowSeconds);
}

/** Line charts of `series` (one value a second, oldest first) on `canvas`, scaled to the largest. */
function drawChart(canvas, series, windowSeconds) {
  const ratio = globalThis.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (width === 0 || height === 0) return;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  const style = getComputedStyle(document.documentElement);
  const color = (name) => style.getPropertyValue(name).trim() || "#888";
  const max = Math.max(...series.flatMap((s) => s.values), 0);
  const top = niceCeiling(max);
  const pad = { left: 4, right: 4, top: 14, bottom: 14 };
  const plotWidth = width - pad.left - pad.right;
  const plotHeight = height - pad.top - pad.bottom;
  ctx.clearRect(0, 0, width, height);
  ctx.strokeStyle = color("--grid");
  ctx.lineWidth = 1;
  for (const fraction of [0, 0.5, 1]) {
    const y = pad.top + plotHeight * (1 - fraction) + 0.5;
    ctx.beginPath();
    ctx.moveTo(pad.left, y);
    ctx.lineTo(width - pad.right, y);
    ctx.stroke();
  }
  ctx.fillStyle = color("--muted");
  ctx.font = "11px system-ui, sans-serif";
  ctx.textBaseline = "top";
  ctx.fillText(`${formatRate(top)}`, pad.left + 2, 0);
  ctx.textBaseline = "bottom";
  ctx.fillText(`-${Math.round(windowSeconds / 60)} min`, pad.left + 2, height);
  ctx.textAlign = "right";
  ctx.fillText("now", width - pad.right, height);
  ctx.textAlign = "left";
  for (const { values, color: name } of series) {
    ctx.strokeStyle = color(name);
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    values.forEach((value, i) => {
      const x = pad.left + (plotWidth * i) / Math.max(1, values.length - 1);
      const y = pad.top + plotHeight * (1 - (top === 0 ? 0 : value / top));
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.stroke();
    // A light fill under the line, so a short burst still shows.
    ctx.lineTo(pad.left + plotWidth, pad.top + plotHeight);
    ctx.lineTo(pad.left, pad.top + plotHeight);
    ctx.closePath();
    ctx.globalAlpha = 0.15;
    ctx.fillStyle = color(name);
    ctx.fill();
    ctx.globalAlpha = 1;
  }
}

/** 1, 2 or 5 times a power of ten, at least `value` (at least 1 for an empty chart). */
function niceCeiling(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) {
    if (step * power >= value) return step * power;
  }
  return 10 * power;
}

globalThis.addEventListener("resize", drawThroughput);

// ---- File browser ----

/** The folder shown: "" or a prefix ending in "/", kept in the URL's fragment. */
function currentPrefix() {
  try {
    return decodeURIComponent(location.hash.slice(1));
  } catch {
    return "";
  }
}

function goTo(prefix) {
  location.hash = encodeURIComponent(prefix);
}

globalThis.addEventListener("hashchange", () => {
  if (!$("app").hidden) loadFolder();
});

let nextCursor;
/** Names of the files shown, to ask before an upload replaces one. */
const shownFiles = new Set();

async function loadFolder(after) {
  const prefix = currentPrefix();
  $("files-error").textContent = "";
  if (after === undefined) {
    renderCrumbs(prefix);
    $("drop-target").textContent = prefix === "" ? "the top folder" : prefix;
  }
  const query = new URLSearchParams({ prefix, limit: String(LIST_PAGE_ROWS) });
  if (after !== undefined) query.set("after", after);
  let page;
  try {
    page = await api(`/api/list?${query}`);
  } catch (error) {
    if (error.status !== 401) $("files-error").textContent = error.message;
    return;
  }
  if (page.prefix !== currentPrefix()) return; // moved to another folder meanwhile
  const body = $("files").tBodies[0];
  if (after === undefined) {
    body.replaceChildren();
    shownFiles.clear();
  }
  for (const row of page.rows) body.append(...rowsOf(row, prefix));
  nextCursor = page.next;
  $("more").hidden = nextCursor === undefined;
  $("files-empty").hidden = body.rows.length > 0;
}

$("more").addEventListener("click", () => loadFolder(nextCursor));

function renderCrumbs(prefix) {
  const parts = prefix.split("/").filter((part) => part !== "");
  const crumbs = [crumb("All files", "")];
  let path = "";
  for (const part of parts) {
    path += `${part}/`;
    crumbs.push(el("span", { class: "sep" }, "/"), crumb(part, path));
  }
  $("crumbs").replaceChildren(...crumbs);
}

function crumb(label, prefix) {
  return el("button", { type: "button", class: "link", onclick: () => goTo(prefix) }, label);
}

/** The table rows of one listing row: a folder, or a file with its (hidden) details row. */
function rowsOf(row, prefix) {
  const shortName = row.name.slice(prefix.length);
  if (row.type === "folder") {
    const open = el(
      "button",
      { type: "button", class: "link folder", onclick: () => goTo(row.name) },
      shortName,
    );
    return [
      el(
        "tr",
        { class: "folder-row", attrs: { "data-folder": row.name } },
        cell("Name", open, false, true),
        cell("Size", "", true),
        cell("Modified", ""),
        cell("Replicas", "", true),
        cell("", ""),
      ),
    ];
  }
  shownFiles.add(row.name);
  const details = el("tr", { class: "details", hidden: true });
  const toggle = el("button", {
    type: "button",
    class: "link file",
    title: "Show its chunks and replicas",
    onclick: () => toggleDetails(row.name, details),
  }, shortName);
  const download = el("a", {
    class: "button small",
    href: `/api/file?name=${encodeURIComponent(row.name)}`,
    download: shortName.slice(shortName.lastIndexOf("/") + 1),
  }, "Download");
  const remove = el("button", {
    type: "button",
    class: "small danger",
    onclick: () => removeFile(row.name),
  }, "Delete");
  return [
    el(
      "tr",
      { attrs: { "data-name": row.name } },
      cell("Name", toggle, false, true),
      cell("Size", formatBytes(row.size), true),
      cell("Modified", formatTime(row.modified), false, true),
      cell("Replicas", String(row.replicas), true),
      cell("", el("span", { class: "actions" }, download, remove), false, true),
    ),
    details,
  ];
}

async function toggleDetails(name, details) {
  if (!details.hidden) {
    details.hidden = true;
    return;
  }
  let meta;
  try {
    meta = await api(`/api/meta?name=${encodeURIComponent(name)}`);
  } catch (error) {
    $("files-error").textContent = error.message;
    return;
  }
  const chunks = meta.chunks.slice(0, DETAIL_CHUNKS_MAX).map((chunk, i) => {
    const where = chunk.ranks.map((rank, j) =>
      chunk.zones?.[j] ? `${rank} (${chunk.zones[j]})` : String(rank)
    );
    return el("li", {}, `chunk ${i}: ${formatBytes(chunk.size)} on ranks ${where.join(", ")}`);
  });
  if (meta.chunks.length > DETAIL_CHUNKS_MAX) {
    chunks.push(el("li", {}, `and ${meta.chunks.length - DETAIL_CHUNKS_MAX} more chunks`));
  }
  const facts = el(
    "dl",
    { class: "stats" },
    el("dt", {}, "Size"),
    el("dd", {}, `${meta.size} bytes`),
    el("dt", {}, "SHA-256"),
    el("dd", { class: "hash" }, meta.sha256),
    el("dt", {}, "Version"),
    el("dd", {}, String(meta.version)),
    el("dt", {}, "Replicas"),
    el("dd", {}, String(meta.replicas)),
  );
  details.replaceChildren(
    el("td", { colSpan: 5 }, facts, el("ul", { class: "chunks" }, ...chunks)),
  );
  details.hidden = false;
}

async function removeFile(name) {
  if (!confirm(`Delete "${name}"? This cannot be undone.`)) return;
  try {
    await api(`/api/file?name=${encodeURIComponent(name)}`, {
      method: "DELETE",
      headers: CHANGE_HEADERS,
    });
  } catch (error) {
    $("files-error").textContent = error.message;
    return;
  }
  await Promise.all([loadFolder(), refreshOverview()]);
}

// ---- Uploads ----

$("file-input").addEventListener("change", (event) => {
  const files = [...event.target.files];
  event.target.value = "";
  uploadAll(files);
});

const drop = $("drop");
for (const type of ["dragenter", "dragover"]) {
  drop.addEventListener(type, (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
}
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  uploadAll([...event.dataTransfer.files]);
});

/** Uploads `files` into the folder shown, one after another, then lists the folder again. */
async function uploadAll(files) {
  const prefix = currentPrefix();
  for (const file of files) {
    const name = prefix + file.name.normalize("NFC");
    if (shownFiles.has(name) && !confirm(`Replace "${name}"?`)) continue;
    await upload(file, name);
  }
  await Promise.all([loadFolder(), refreshOverview()]);
}

/** One upload with its progress bar; resolves when it ended, whichever way. */
function upload(file, name) {
  const bar = el("progress", { max: file.size || 1, value: 0 });
  const status = el("span", { class: "muted small" }, "starting");
  const item = el(
    "li",
    { attrs: { "data-upload": name } },
    el("span", { class: "name" }, name),
    bar,
    status,
  );
  $("uploads").prepend(item);
  while ($("uploads").children.length > UPLOADS_SHOWN_MAX) $("uploads").lastElementChild.remove();
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", `/api/file?name=${encodeURIComponent(name)}`);
    xhr.setRequestHeader("x-dfs-ui", "1");
    xhr.upload.addEventListener("progress", (event) => {
      bar.value = event.loaded;
      status.textContent = `${formatBytes(event.loaded)} of ${formatBytes(file.size)}`;
    });
    xhr.addEventListener("load", () => {
      if (xhr.status === 201) {
        bar.value = bar.max;
        status.textContent = `stored, ${formatBytes(file.size)}`;
        item.classList.add("done");
      } else {
        let message = `${xhr.status} ${xhr.statusText}`;
        try {
          message = JSON.parse(xhr.responseText).error.message;
        } catch {
          // not our JSON: keep the status line
        }
        status.textContent = message;
        item.classList.add("failed");
        if (xhr.status === 401) showLogin();
      }
      resolve();
    });
    xhr.addEventListener("error", () => {
      status.textContent = "the connection failed";
      item.classList.add("failed");
      resolve();
    });
    xhr.send(file);
  });
}

// ---- Start ----

(async () => {
  try {
    const session = await api("/api/session");
    if (session.authRequired && !session.authenticated) showLogin();
    else await showApp(session.authRequired);
  } catch (error) {
    $("summary").textContent = `Cannot reach the server: ${error.message}`;
  }
})();
