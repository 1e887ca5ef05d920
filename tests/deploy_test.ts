/**
 * The deployment files in `deploy/`: the systemd units and their example settings, the Kubernetes
 * manifest, the Dockerfile and the deployment README. Nothing here starts dfs: these tests read
 * the files, check every `dfs` command line they hold against the options `dfs serve` and
 * `dfs node` take (a typo such as `--node_port` would only show when a host fails to start), check
 * that the pieces name each other consistently (settings variables, data folders, the join
 * address, the binary's path), and have `systemd-analyze` (Debian package `systemd`) verify the
 * units and rate their sandbox, when it is installed.
 */

import assert from "node:assert/strict";
import { COMMANDS, type OptionSpec } from "../cli/commands.ts";
import { SERVER_MALLOC_ENV, SERVER_V8_FLAGS } from "./_server.ts";

const ROOT = new URL("../", import.meta.url);
const read = (path: string) => Deno.readTextFile(new URL(path, ROOT));

/** Where the units, the image and the README install the compiled binary. */
const BINARY = "/usr/local/bin/dfs";

type Command = "serve" | "node";

/**
 * The options a deployment may give `dfs serve` and `dfs node`: the command line the deployment
 * files are written against. Every one takes a value.
 */
const OPTIONS: Record<Command, ReadonlySet<string>> = {
  serve: new Set([
    "host",
    "port",
    "node-host",
    "node-port",
    "cluster-secret-file",
    "ranks",
    "data",
    "replicas",
    "token-file",
    "tls-cert",
    "tls-key",
    "rereplicate-after-ms",
  ]),
  node: new Set([
    "join",
    "data",
    "zone",
    "cluster-secret-file",
    "tls-ca",
    "host",
    "data-port",
    "data-host",
    "data-tls-cert",
    "data-tls-key",
  ]),
};

/** The units, the command each runs and the example of the settings file it reads. */
const UNITS = [
  { file: "dfs-serve.service", command: "serve", example: "serve.env.example" },
  { file: "dfs-node@.service", command: "node", example: "node.env.example" },
] as const;

// ---------------------------------------------------------------------------------------------
// Command lines

/** A `dfs` option or argument as found in a file, for messages. */
interface Args {
  command: Command;
  args: string[];
  where: string;
}

/**
 * The mistakes in `args` of `dfs COMMAND`: options it does not take, an option without its value,
 * and arguments that belong to no option (neither command takes any). Tokens for which `opaque`
 * is true stand for further options (a systemd `$VAR` split into words) and are skipped.
 */
function argMistakes(
  { command, args, where }: Args,
  opaque: (token: string) => boolean = () => false,
): string[] {
  const mistakes: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const token = args[i];
    if (opaque(token)) continue;
    if (!token.startsWith("-")) {
      mistakes.push(`${where}: "${token}" is not an option of dfs ${command}, nor its value`);
      continue;
    }
    const [name, inline] = token.replace(/^--?/, "").split(/=(.*)/s);
    if (!token.startsWith("--") || !OPTIONS[command].has(name)) {
      mistakes.push(`${where}: dfs ${command} takes no option ${token.split("=")[0]}`);
    }
    if (inline !== undefined) continue;
    const value = args[i + 1];
    if (value === undefined || value.startsWith("-") || opaque(value)) {
      mistakes.push(`${where}: ${token} needs a value`);
    } else {
      i++;
    }
  }
  return mistakes;
}

Deno.test("argMistakes() catches misspelt, unknown and valueless options and stray words", () => {
  const check = (command: Command, line: string) =>
    argMistakes({ command, args: line.split(" "), where: "t" });
  assert.deepEqual(check("serve", "--node-port 7071 --host=0.0.0.0 --ranks 1"), []);
  assert.deepEqual(check("node", "--join a:7071 --zone z --data /d"), []);
  assert.deepEqual(check("serve", "--node_port 7071"), [
    "t: dfs serve takes no option --node_port",
  ]);
  assert.deepEqual(check("node", "--tls-cert c"), ["t: dfs node takes no option --tls-cert"]);
  assert.deepEqual(check("serve", "-q"), [
    "t: dfs serve takes no option -q",
    "t: -q needs a value",
  ]);
  assert.deepEqual(check("serve", "--port --ranks 1"), ["t: --port needs a value"]);
  assert.deepEqual(check("node", "--data /d extra"), [
    't: "extra" is not an option of dfs node, nor its value',
  ]);
});

// ---------------------------------------------------------------------------------------------
// systemd units and settings files

interface Unit {
  /** `Section.Key` to its values, in order (a key may repeat). */
  keys: Map<string, string[]>;
  text: string;
}

/** Reads a unit file: sections, keys and values, continuation lines joined. */
function parseUnit(text: string): Unit {
  const keys = new Map<string, string[]>();
  let section = "";
  const lines = text.replace(/\\\n/g, " ").split("\n");
  for (const raw of lines) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1];
      continue;
    }
    const eq = line.indexOf("=");
    assert.ok(eq > 0, `not a unit line: ${line}`);
    const key = `${section}.${line.slice(0, eq).trim()}`;
    keys.set(key, [...(keys.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return { keys, text };
}

function one(unit: Unit, key: string): string {
  const values = unit.keys.get(key) ?? [];
  assert.equal(values.length, 1, `${key}= should be set once, is set ${values.length} times`);
  return values[0];
}

/** `NAME=value` lines of a settings file; with `examples`, also those commented out (`# NAME=`). */
function parseEnv(text: string, { examples = false } = {}): Map<string, string[]> {
  const vars = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    const m = (examples ? /^(?:#\s*)?(DFS_[A-Z0-9_]+)=(.*)$/ : /^(DFS_[A-Z0-9_]+)=(.*)$/)
      .exec(line.trim());
    if (m) vars.set(m[1], [...(vars.get(m[1]) ?? []), m[2].trim()]);
  }
  return vars;
}

/** The variables a unit's ExecStart expands: `${NAME}` (one word) and `$NAME` (split). */
function expanded(execStart: string): { braced: Set<string>; split: Set<string> } {
  const braced = new Set([...execStart.matchAll(/\$\{([A-Za-z0-9_]+)\}/g)].map((m) => m[1]));
  const split = new Set([...execStart.matchAll(/\$([A-Za-z0-9_]+)/g)].map((m) => m[1]));
  return { braced, split };
}

/** Each unit with its ExecStart split into words, its defaults and its settings example. */
async function loadUnits() {
  return await Promise.all(UNITS.map(async ({ file, command, example }) => {
    const unit = parseUnit(await read(`deploy/systemd/${file}`));
    const execStart = one(unit, "Service.ExecStart");
    const words = execStart.split(/\s+/).filter((w) => w !== "");
    const defaults = new Map<string, string>();
    for (const value of unit.keys.get("Service.Environment") ?? []) {
      const m = /^([A-Za-z0-9_]+)=(\S*)$/.exec(value);
      assert.ok(m, `${file}: one NAME=value per Environment= line, got ${value}`);
      defaults.set(m[1], m[2]);
    }
    const exampleText = await read(`deploy/systemd/${example}`);
    return { file, command, example, unit, execStart, words, defaults, exampleText };
  }));
}

/** The value after `--name` in a list of words. */
function optionValue(words: readonly string[], name: string): string | undefined {
  const i = words.indexOf(`--${name}`);
  return i < 0 ? undefined : words[i + 1];
}

/**
 * Every `dfs` command line of the units: ExecStart, whose `$NAME` words stand for more options,
 * and what those become: every value the settings example (commented out or not) and the deploy
 * README give them.
 */
async function unitCommandLines(): Promise<{ lines: Args[]; mistakes: string[] }> {
  const units = await loadUnits();
  const readme = parseEnv(await read("deploy/README.md"));
  const lines: Args[] = [];
  const mistakes: string[] = [];
  const isSplitVar = (w: string) => /^\$[A-Za-z0-9_]+$/.test(w);
  for (const { file, command, example, words, exampleText } of units) {
    assert.equal(words[0], BINARY, `${file}: ExecStart runs ${BINARY}`);
    assert.equal(words[1], command, `${file}: ExecStart runs dfs ${command}`);
    const execStart = { command, args: words.slice(2), where: `${file} ExecStart` };
    lines.push({ ...execStart, args: execStart.args.filter((w) => !isSplitVar(w)) });
    mistakes.push(...argMistakes(execStart, isSplitVar));
    const splitVars = words.filter(isSplitVar).map((w) => w.slice(1));
    const sources = [
      [example, parseEnv(exampleText, { examples: true })],
      ["deploy/README.md", readme],
    ] as const;
    for (const [source, settings] of sources) {
      for (const [name, values] of settings) {
        if (!splitVars.includes(name)) continue;
        for (const value of values) {
          const args = value.split(/\s+/).filter((w) => w !== "");
          lines.push({ command, args, where: `${source} ${name}` });
          mistakes.push(...argMistakes(lines.at(-1)!));
        }
      }
    }
  }
  return { lines, mistakes };
}

Deno.test("the units run dfs with options dfs takes, and the settings add only such", async () => {
  assert.deepEqual((await unitCommandLines()).mistakes, []);
});

Deno.test("the launcher, deno task serve and the image run the server with the units' malloc settings", async () => {
  const launcher = await read("dfs");
  const tasks = JSON.parse(await read("deno.json")).tasks;
  // The image's ENV: the stage after the last FROM (what runs), not the build stage.
  const stages = (await read("deploy/Dockerfile")).split(/^FROM /m);
  const dockerEnv = stages[stages.length - 1].split("\n").filter((l) => l.startsWith("ENV "));
  const lines = launcher.split("\n");
  for (const [name, value] of Object.entries(SERVER_MALLOC_ENV)) {
    assert.ok(lines.includes(`export ${name}="\${${name}:-${value}}"`), `dfs exports ${name}`);
    assert.ok(tasks.serve.includes(`${name}=${value} `), `deno task serve sets ${name}`);
    assert.ok(dockerEnv.some((l) => l.split(/\s+/).includes(`${name}=${value}`)), `ENV ${name}`);
  }
});

Deno.test("the launcher, deno task serve and deno task compile give the tests' V8 flags", async () => {
  const launcher = await read("dfs");
  const tasks = JSON.parse(await read("deno.json")).tasks;
  const runs = launcher.split("\n").filter((line) => line.includes("--v8-flags="));
  assert.equal(runs.length, 2, "dfs gives V8 flags to the server and the node");
  for (const line of [...runs, tasks.serve, tasks.compile]) {
    const flags = line.split(/\s+/).filter((word: string) => word.startsWith("--v8-flags="));
    assert.deepEqual(flags, [SERVER_V8_FLAGS], line);
  }
});

/** Variables a unit sets for the process's own environment, not for its command line. */
const PROCESS_ENV = new Set(Object.keys(SERVER_MALLOC_ENV));

Deno.test("every variable a unit expands has a value, and every setting is one it reads", async () => {
  for (const { file, example, unit, execStart, defaults, exampleText } of await loadUnits()) {
    const settings = parseEnv(exampleText, { examples: true });
    const { braced, split } = expanded(execStart);
    const used = new Set([...braced, ...split]);
    for (const name of used) {
      assert.ok(
        defaults.has(name) || parseEnv(exampleText).has(name),
        `${file}: ExecStart expands \${${name}}, which neither Environment= nor ${example} sets`,
      );
    }
    for (const name of [...settings.keys(), ...defaults.keys()]) {
      if (PROCESS_ENV.has(name)) continue;
      assert.ok(used.has(name), `${example}/${file}: ${name} is set but ExecStart never reads it`);
    }
    // What the process itself reads from its environment (glibc's malloc), as the launcher sets.
    for (const [name, value] of Object.entries(SERVER_MALLOC_ENV)) {
      assert.equal(defaults.get(name), value, `${file}: Environment=${name}=${value}`);
    }
    // A one-word variable must hold one word: "${X}" with spaces would be one odd argument.
    for (const name of braced) {
      for (const value of [...(settings.get(name) ?? []), defaults.get(name) ?? ""]) {
        assert.doesNotMatch(value, /\s/, `${example}: ${name} is one argument, no spaces`);
      }
    }
    // The unit reads the file the example is an example of, from /etc/dfs.
    const envFiles = unit.keys.get("Service.EnvironmentFile") ?? [];
    assert.equal(envFiles[0], `/etc/dfs/${example.replace(/\.example$/, "")}`, file);
  }
});

Deno.test("each unit's data folder is its StateDirectory and its only writable path", async () => {
  for (const { file, unit, words } of await loadUnits()) {
    const data = optionValue(words, "data");
    assert.ok(data, `${file}: ExecStart gives --data`);
    assert.match(data, /^\/var\/lib\/dfs\//, `${file}: data under /var/lib/dfs`);
    assert.equal(`/var/lib/${one(unit, "Service.StateDirectory")}`, data, file);
    assert.equal(one(unit, "Service.ReadWritePaths"), data, file);
    assert.equal(one(unit, "Unit.RequiresMountsFor"), data, file);
  }
});

Deno.test("the units have the user, restart, stop and sandbox settings of a dfs service", async () => {
  const expected: Record<string, string> = {
    "Unit.After": "network-online.target",
    "Unit.Wants": "network-online.target",
    "Service.User": "dfs",
    "Service.Group": "dfs",
    "Service.Restart": "on-failure",
    "Service.RestartPreventExitStatus": "2",
    "Service.KillSignal": "SIGTERM",
    "Service.ProtectSystem": "strict",
    "Service.ProtectHome": "yes",
    "Service.PrivateTmp": "yes",
    "Service.NoNewPrivileges": "yes",
    "Service.CapabilityBoundingSet": "",
    "Service.RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "Install.WantedBy": "multi-user.target",
  };
  for (const { file, unit } of await loadUnits()) {
    for (const [key, value] of Object.entries(expected)) assert.equal(one(unit, key), value, file);
    assert.match(one(unit, "Service.TimeoutStopSec"), /^\d+s?$/, file);
    assert.match(one(unit, "Service.LimitNOFILE"), /^\d+$/, file);
    // V8 compiles code into memory it then runs: this setting would stop dfs from starting.
    assert.equal(unit.keys.get("Service.MemoryDenyWriteExecute"), undefined, file);
  }
});

Deno.test("the deploy README sets only settings that a unit reads", async () => {
  const units = await loadUnits();
  for (const name of parseEnv(await read("deploy/README.md")).keys()) {
    const read = units.some((u) => {
      const { braced, split } = expanded(u.execStart);
      return braced.has(name) || split.has(name);
    });
    assert.ok(read, `deploy/README.md sets ${name}, which no unit reads`);
  }
});

// ---------------------------------------------------------------------------------------------
// Kubernetes

/** A YAML document of the manifest, as lines (numbered from 1 in the whole file). */
interface Doc {
  lines: { n: number; text: string }[];
  kind: string;
  name: string;
  namespace?: string;
}

/** The text of a YAML line without its comment (a `#` at the start or after a space). */
const uncommented = (line: string) => line.replace(/(^|\s)#.*$/, "");

const unquote = (value: string) => value.trim().replace(/^"(.*)"$/, "$1").replace(/^'(.*)'$/, "$1");

/**
 * The manifest's documents, with the kind and name of each. A line-based reading of the YAML this
 * repository writes (block style, two-space indents), enough for these checks without a parser.
 */
function parseManifest(text: string): Doc[] {
  const docs: Doc[] = [];
  let lines: Doc["lines"] = [];
  const flush = () => {
    const top = (key: string) =>
      lines.map((l) => new RegExp(`^${key}:\\s*(\\S.*)$`).exec(uncommented(l.text)))
        .find((m) => m)?.[1];
    const meta = (key: string) =>
      lines.map((l) => new RegExp(`^  ${key}:\\s*(\\S.*)$`).exec(uncommented(l.text)))
        .find((m) => m)?.[1];
    const kind = top("kind");
    if (kind) {
      docs.push({
        lines,
        kind: unquote(kind),
        name: unquote(meta("name") ?? ""),
        namespace: meta("namespace") && unquote(meta("namespace")!),
      });
    }
    lines = [];
  };
  text.split("\n").forEach((text, i) => {
    if (/^---\s*$/.test(text)) flush();
    else lines.push({ n: i + 1, text });
  });
  flush();
  return docs;
}

/** Every `args:` list of a document (block or flow style), with the lines it spans. */
function argsLists(doc: Doc): { args: string[]; lineNumbers: number[] }[] {
  const found: { args: string[]; lineNumbers: number[] }[] = [];
  const lines = doc.lines;
  for (let i = 0; i < lines.length; i++) {
    const m = /^(\s*)(?:- )?args:\s*(.*)$/.exec(uncommented(lines[i].text));
    if (!m) continue;
    if (m[2].startsWith("[")) {
      const items = m[2].replace(/^\[|\]\s*$/g, "").split(",").map(unquote).filter((s) => s);
      found.push({ args: items, lineNumbers: [lines[i].n] });
      continue;
    }
    const indent = m[1].length;
    const args: string[] = [];
    const lineNumbers: number[] = [];
    for (let j = i + 1; j < lines.length; j++) {
      const text = uncommented(lines[j].text);
      if (text.trim() === "") continue;
      const item = /^(\s*)- (.*)$/.exec(text);
      if (!item || item[1].length < indent) break;
      args.push(unquote(item[2]));
      lineNumbers.push(lines[j].n);
    }
    found.push({ args, lineNumbers });
  }
  return found;
}

async function loadManifest() {
  const path = "deploy/kubernetes/dfs.yaml";
  const docs = parseManifest(await read(path));
  const commands: (Args & { doc: Doc; lineNumbers: number[] })[] = [];
  for (const doc of docs) {
    for (const { args, lineNumbers } of argsLists(doc)) {
      const [command, ...rest] = args;
      assert.ok(command === "serve" || command === "node", `${path}: args run dfs ${command}`);
      commands.push({ command, args: rest, where: `${path}:${lineNumbers[0]}`, doc, lineNumbers });
    }
  }
  return { path, docs, commands };
}

Deno.test("the Kubernetes manifest runs dfs with options dfs takes, and only in args", async () => {
  const { path, docs, commands } = await loadManifest();
  assert.deepEqual(commands.map((c) => c.command).sort(), ["node", "serve"]);
  assert.deepEqual(commands.flatMap((c) => argMistakes(c)), []);
  // Every option-looking word outside comments is in an args list read above (none in command:,
  // env values or a flow list this scan would miss).
  const read = new Set(commands.flatMap((c) => c.lineNumbers));
  const stray = docs.flatMap((d) => d.lines)
    .filter((l) => /(^|[\s"'[,])--?[a-z]/i.test(uncommented(l.text)) && !read.has(l.n))
    .map((l) => `${path}:${l.n}: ${l.text.trim()}`);
  assert.deepEqual(stray, []);
  // $(VAR) in args is expanded by Kubernetes from the container's env: it must be defined there.
  for (const { doc, args, where } of commands) {
    for (const [, name] of args.join(" ").matchAll(/\$\(([A-Za-z0-9_]+)\)/g)) {
      const defined = doc.lines.some((l) => new RegExp(`^\\s*- name: ${name}\\s*$`).test(l.text));
      assert.ok(defined, `${where}: $(${name}) is not in the container's env`);
    }
  }
});

Deno.test("the data nodes join rank 0's Service, on the node port rank 0 opens", async () => {
  const { docs, commands } = await loadManifest();
  const namespaces = docs.filter((d) => d.kind === "Namespace").map((d) => d.name);
  assert.equal(namespaces.length, 1);
  const [ns] = namespaces;
  for (const d of docs.filter((d) => d.kind !== "Namespace")) {
    assert.equal(d.namespace, ns, `${d.kind} ${d.name} is in namespace ${ns}`);
  }
  const serve = commands.find((c) => c.command === "serve")!;
  const nodePort = optionValue(serve.args, "node-port") ?? "7071";
  const node = commands.find((c) => c.command === "node")!;
  const join = optionValue(node.args, "join");
  const m = /^([a-z0-9-]+)\.([a-z0-9-]+)\.svc(?:\.cluster\.local)?:(\d+)$/.exec(join ?? "");
  assert.ok(m, `--join ${join} is SERVICE.NAMESPACE.svc:PORT`);
  const [, service, joinNs, port] = m;
  assert.equal(joinNs, ns);
  assert.equal(port, nodePort);
  const svc = docs.find((d) => d.kind === "Service" && d.name === service);
  assert.ok(svc, `the manifest has the Service ${service} that --join names`);
  assert.ok(
    svc.lines.some((l) => new RegExp(`^\\s+port: ${port}\\s*$`).test(l.text)),
    `Service ${service} has port ${port}`,
  );
  const count = (kind: string) => docs.filter((d) => d.kind === kind).length;
  assert.equal(count("Secret"), 1);
  assert.equal(count("StatefulSet"), 2, "rank 0 and the data nodes");
  assert.ok(count("Service") >= 2, "rank 0's Service and the StatefulSets' headless ones");
});

// ---------------------------------------------------------------------------------------------
// Dockerfile

Deno.test("the Dockerfile installs what deno task compile writes, built from every module", async () => {
  const dockerfile = (await read("deploy/Dockerfile")).replace(/\\\n/g, " ");
  const compile: string = JSON.parse(await read("deno.json")).tasks.compile;
  const words = compile.split(/\s+/);
  const output = words[words.indexOf("--output") + 1];
  assert.match(
    dockerfile,
    new RegExp(`^COPY --from=build \\S*/${output} ${BINARY}$`, "m"),
    `the image has deno compile's ${output} as ${BINARY}`,
  );
  // The build stage copies only what it names: every local module of the binary must be in it,
  // or the image build fails (or, for a Worker's module, the binary fails when it starts one).
  const buildStage = dockerfile.split(/^FROM /m)[1];
  const copied = [...buildStage.matchAll(/^COPY (?!--from)(.+)$/gm)]
    .flatMap((m) => m[1].trim().split(/\s+/).slice(0, -1));
  const roots = [
    words.at(-1)!,
    ...words.flatMap((w, i) => words[i - 1] === "--include" ? [w] : []),
  ];
  const modules: { specifier: string }[] = [];
  for (const entry of roots) {
    const info = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", entry],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(info.code, 0, new TextDecoder().decode(info.stderr));
    modules.push(...JSON.parse(new TextDecoder().decode(info.stdout)).modules);
  }
  const root = ROOT.href;
  const local = modules.map((m) => m.specifier)
    .filter((s) => s.startsWith(root) && !s.startsWith(`${root}node_modules/`))
    .map((s) => s.slice(root.length));
  assert.ok(local.includes("main.ts") && local.includes("ranks/node/worker.ts"));
  const missing = local.filter((path) =>
    !copied.some((c) => c.endsWith("/") ? path.startsWith(c) : path === c)
  );
  assert.deepEqual(missing, [], "modules the Dockerfile does not copy into the build stage");
});

// ---------------------------------------------------------------------------------------------
// The CLI itself, once it has these options

/** Options of the multi-host set-up: their presence says the CLI has it, and is compared. */
const MULTI_HOST: Record<Command, string[]> = {
  serve: ["node-host", "node-port", "cluster-secret-file"],
  node: [], // the command itself
};

Deno.test("the options the deploy files use are in dfs's own option table, once it has them", async () => {
  const lines = [...(await unitCommandLines()).lines, ...(await loadManifest()).commands];
  const table = COMMANDS as Record<string, { options: OptionSpec[] }>;
  for (const command of ["serve", "node"] as const) {
    const known = new Set(table[command]?.options.map((o) => o.name) ?? []);
    const landed = table[command] !== undefined &&
      (MULTI_HOST[command].length === 0 || MULTI_HOST[command].some((o) => known.has(o)));
    if (!landed) {
      // The deploy files are written ahead of the CLI: say so rather than fail.
      console.log(
        `dfs ${command} has no multi-host options yet: the deploy files are not compared`,
      );
      continue;
    }
    for (const name of OPTIONS[command]) {
      assert.ok(known.has(name), `deploy_test's OPTIONS: dfs ${command} --help lists no --${name}`);
    }
    for (const { args, where } of lines.filter((l) => l.command === command)) {
      for (const a of args.filter((a) => a.startsWith("--"))) {
        const name = a.slice(2).split("=")[0];
        assert.ok(known.has(name), `${where}: dfs ${command} --help lists no --${name}`);
      }
    }
  }
});

// ---------------------------------------------------------------------------------------------
// systemd-analyze

/** The path of an executable on $PATH, or undefined. */
function which(name: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir === "") continue;
    try {
      const info = Deno.statSync(`${dir}/${name}`);
      if (info.isFile && ((info.mode ?? 0) & 0o111) !== 0) return `${dir}/${name}`;
    } catch {
      // not there
    }
  }
  return undefined;
}

const SYSTEMD_ANALYZE = which("systemd-analyze");
if (!SYSTEMD_ANALYZE) {
  console.log(
    "deploy_test: systemd-analyze not found (Debian package systemd): the units are not verified",
  );
}

/**
 * Copies of the units in a temporary folder, their ExecStart pointing at a stub `dfs` script
 * there, and an instance `dfs-node@disk1.service` of the template. `systemd-analyze verify`
 * refuses a unit whose ExecStart binary does not exist or is not executable, and the compiled
 * dfs is not installed where the tests run: the stub stands in for /usr/local/bin/dfs.
 */
async function withUnitCopies(test: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "dfs-deploy-" });
  try {
    await Deno.writeTextFile(`${dir}/dfs`, "#!/bin/sh\nexit 0\n");
    await Deno.chmod(`${dir}/dfs`, 0o755);
    for (const { file } of UNITS) {
      const text = (await read(`deploy/systemd/${file}`)).replaceAll(BINARY, `${dir}/dfs`);
      await Deno.writeTextFile(`${dir}/${file}`, text);
      if (file.endsWith("@.service")) {
        await Deno.writeTextFile(`${dir}/${file.replace("@.", "@disk1.")}`, text);
      }
    }
    await test(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const UNIT_COPIES = ["dfs-serve.service", "dfs-node@.service", "dfs-node@disk1.service"];

async function systemdAnalyze(args: string[]): Promise<{ code: number; output: string }> {
  const out = await new Deno.Command(SYSTEMD_ANALYZE!, {
    args,
    stdout: "piped",
    stderr: "piped",
    env: { SYSTEMD_COLORS: "0", SYSTEMD_PAGER: "" },
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, output: decode(out.stdout) + decode(out.stderr) };
}

/**
 * What `verify` says about our units. It exits 0 on a misspelt key or a value it cannot parse
 * (it ignores the line, as systemd would), so every line naming a unit (or the temp folder, both
 * "dfs-...") counts; lines about the host's own units are not ours.
 */
async function verify(path: string): Promise<{ code: number; ours: string[] }> {
  const { code, output } = await systemdAnalyze(["verify", "--man=no", path]);
  return { code, ours: output.split("\n").filter((l) => l.includes("dfs-")) };
}

Deno.test({
  name: "systemd-analyze verify finds nothing wrong in the units",
  ignore: !SYSTEMD_ANALYZE,
  fn: () =>
    withUnitCopies(async (dir) => {
      for (const unit of UNIT_COPIES) {
        const { code, ours } = await verify(`${dir}/${unit}`);
        assert.deepEqual(ours, [], unit);
        assert.equal(code, 0, unit);
      }
      // And it would: a misspelt key in a copy is reported.
      const typo = `${dir}/dfs-typo.service`;
      const text = await Deno.readTextFile(`${dir}/dfs-serve.service`);
      await Deno.writeTextFile(typo, text.replace("ProtectSystem=", "ProtectSytem="));
      assert.match((await verify(typo)).ours.join("\n"), /ProtectSytem/);
    }),
});

Deno.test({
  name: "systemd-analyze security rates the units' sandbox OK or better",
  ignore: !SYSTEMD_ANALYZE,
  fn: () =>
    withUnitCopies(async (dir) => {
      for (const unit of ["dfs-serve.service", "dfs-node@disk1.service"]) {
        const { output } = await systemdAnalyze(["security", "--offline=yes", `${dir}/${unit}`]);
        const m = /Overall exposure level for \S+: ([\d.]+) (\w+)/.exec(output);
        if (!m) {
          // --offline came with systemd 250; an older one rates only loaded units.
          console.log(`systemd-analyze security --offline: not supported here, not rated`);
          return;
        }
        assert.ok(["PERFECT", "SAFE", "OK"].includes(m[2]), `${unit}: ${m[1]} ${m[2]}`);
      }
    }),
});
