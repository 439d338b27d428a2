// topo import: read brokers and write the topology file that describes them. The connection comes
// from a file's clusters (-f, --cluster) or straight from --url; the file written keeps each
// cluster's section as the user wrote it, and never holds a password.

import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, isAbsolute, relative, resolve } from "node:path";
import { parseDocument } from "yaml";
import { interpolate, loadConfig, parseConfig, type Env } from "../config/load.js";
import { normalize, type RawCluster } from "../config/normalize.js";
import { BrokerError, ConfigError, TopoError } from "../errors.js";
import type { ActualCluster, ClusterTarget, DesiredCluster } from "../model.js";
import { readCluster } from "../broker/read.js";
import { DEFAULT_PASSWORD_ENV, DEFAULT_PREFIX, ENV_NAME, prefixProblem } from "../core/naming.js";
import { diffCluster } from "../plan/diff.js";
import { Redactor } from "../redact.js";
import { whyNotAUrl } from "../config/url.js";
import { inferTopology, kindsHeld, type ArgumentSchema, type Inference } from "../import/infer.js";
import { importUsers } from "../import/users.js";
import { DEFAULT_SCHEMA_LINE, emitTopology } from "../import/emit.js";
import { literal, PasswordVariables, rewriteSection, schemaReference, urlSection } from "../import/sections.js";
import { forEachCluster, identify } from "./clusters.js";
import { managementClient, type ConnectionOptions } from "./source.js";
import { writeWhole } from "../files/write-file.js";

export interface ImportOptions extends ConnectionOptions {
  /** The topology file whose clusters say where to connect (default topology.yaml). */
  file: string;
  /** Whether -f was given: with --url, only an explicit -f is a contradiction. */
  fileGiven?: boolean;
  /** Clusters of the file to read; none means every cluster of the file. */
  clusters?: string[];
  /** `[NAME=]amqp://USER@HOST:PORT/VHOST`, read instead of a file's clusters. */
  urls?: string[];
  /** `[NAME=]http://HOST:15672`, the management API of the --url clusters. */
  managements?: string[];
  /** The variable that holds the password; the file written refers to it as ${VAR}. */
  passwordEnv?: string;
  prefix?: string;
  output?: string;
  force?: boolean;
  env?: Env;
  /** Learns every password read (the file's, the --url's), to mask them in what the caller prints. */
  redactor?: Redactor;
}

export interface ImportResult {
  /** The topology file's text. */
  text: string;
  /** Where it was written; undefined when the caller prints it. */
  output?: string;
  clusters: string[];
  services: number;
  queues: number;
  /** Changes topo plan on the file will show. */
  changes: number;
  /** Objects the file leaves out that topo never changes. */
  kept: number;
  /** Things the user must know (a password the file now reads from a variable). */
  notices: string[];
}


const CLUSTER_NAME = /^[a-z][a-z0-9_-]*$/;


/** A cluster to read: where it is, and the section the file written gives it. */
interface Source {
  name: string;
  target: ClusterTarget;
  section: unknown;
  /** A bare --url: named after what it holds once read. */
  unnamed?: boolean;
}

interface Prepared {
  sources: Source[];
  prefix: string;
  schemaLine: string;
  schemaKey?: string;
  notices: string[];
  /** Variables the file written refers to that import introduced, with the values it used. */
  introduced: Record<string, string>;
  /** The path TLS files in the sections are relative to, for reading the output back. */
  checkPath: string;
}

export async function importTopology(opts: ImportOptions): Promise<ImportResult> {
  const redactor = opts.redactor ?? new Redactor();
  const env = opts.env ?? process.env;
  const passwordEnv = opts.passwordEnv ?? DEFAULT_PASSWORD_ENV;
  if (!ENV_NAME.test(passwordEnv)) {
    throw new TopoError(`--password-env "${passwordEnv}" is not an environment variable name`, ["use letters, digits and _, not starting with a digit, e.g. RABBITMQ_PASSWORD"]);
  }
  const badPrefix = opts.prefix === undefined ? undefined : prefixProblem(opts.prefix);
  if (badPrefix) {
    throw new TopoError(`--prefix "${opts.prefix}" cannot be topo's namespace: ${badPrefix}`, ["a prefix is a lowercase letter then lowercase letters and _ (the router rule is ^<prefix>[a-z_]+$)"]);
  }
  if (opts.output && existsSync(opts.output) && !opts.force) {
    // Checked before reading any broker, so the mistake costs nothing.
    throw new TopoError(`${opts.output} exists; import does not overwrite a file unless told to`, ["pass --force to replace it, or write to another file with -o"]);
  }
  const p = opts.urls?.length ? fromUrls(opts, env, passwordEnv, redactor) : fromFile(opts, env, passwordEnv, redactor);

  const desired: DesiredCluster[] = p.sources.map((s) => ({ target: s.target, resources: [], queues: [] }));
  const actuals = await forEachCluster(desired, async (c): Promise<ActualCluster> => {
    const client = managementClient(c, opts);
    try {
      // A file describing another broker than the one named would be adopted as the truth.
      const [actual] = await Promise.all([readCluster(client, c.target, true), identify(c, client, opts)]);
      if (!actual.vhostExists) {
        throw new BrokerError(c.target.name, `vhost ${JSON.stringify(c.target.amqp.vhost)} does not exist at ${c.target.management.display}; there is nothing to import`, {
          hints: ["check the vhost, the path of the url (%2F or no path for /); GET /api/vhosts or rabbitmqctl list_vhosts lists them"],
        });
      }
      return actual;
    } finally {
      client.close();
    }
  });
  nameUnnamed(p.sources, actuals, p.prefix);

  const argumentSchemas = (createRequire(import.meta.url)("../../schemas/topology.schema.json") as { definitions: { arguments: { properties: Record<string, ArgumentSchema> } } })
    .definitions.arguments.properties;
  const inference = inferTopology(
    p.sources.map((s, i) => ({ name: s.name, vhost: s.target.amqp.vhost, actual: actuals[i] as ActualCluster })),
    { prefix: p.prefix, argumentSchemas },
  );
  const sources = p.sources.map((s, i) => ({ name: s.name, vhost: s.target.amqp.vhost, actual: actuals[i] as ActualCluster }));
  const serviceNames = inference.body.services.map((s) => (typeof s === "string" ? s : s.name));
  const imported = importUsers(sources, serviceNames, p.prefix);
  const unreadable = actuals.find((a) => a.usersUnreadable !== undefined)?.usersUnreadable;
  const notices = [
    ...(p.notices ?? []),
    ...(imported.users.length
      ? [
          `users: each user's password is read from a variable (${imported.users.map((u) => `\${${u.passwordEnv}}`).join(", ")}); the broker keeps only a hash, so export each with the user's current password before running topo, or plan shows (password) and apply sets the variable's value.`,
        ]
      : []),
    ...imported.skipped,
    ...(unreadable ? [`users were not imported: ${unreadable}.`] : []),
  ];
  const text = emitTopology({
    users: imported.users,
    inference,
    clusters: p.sources.map((s) => ({ name: s.name, section: s.section })),
    schemaLine: p.schemaLine,
    schemaKey: p.schemaKey,
    notices,
    redact: (t) => redactor.text(t),
  });
  readBack(text, p, actuals, inference, { ...env, ...Object.fromEntries(imported.users.map((u) => [u.passwordEnv, "import-read-back"])) });

  let output: string | undefined;
  if (opts.output) {
    output = opts.output;
    writeWhole(output, text);
  }
  return {
    text,
    output,
    clusters: p.sources.map((s) => s.name),
    services: inference.services,
    queues: inference.queues,
    changes: inference.clusters.reduce((n, c) => n + c.changes.length, 0),
    kept: inference.clusters.reduce((n, c) => n + c.kept.length, 0),
    notices,
  };
}

// ---------------------------------------------------------------------------------------------
// Clusters from a topology file

function fromFile(opts: ImportOptions, env: Env, passwordEnv: string, redactor: Redactor): Prepared {
  const file = opts.file;
  if (!opts.fileGiven && !existsSync(file)) {
    throw new TopoError(`no ${file} here to take the clusters from`, [
      "pass the file with -f FILE",
      `or read a broker without a file: topo import --url amqp://USER@HOST:5672/VHOST, with the password in $${passwordEnv}`,
    ]);
  }
  const { desired } = loadConfig(file, env, redactor);
  // The sections are copied as written: ${VAR} references, not the values they had here.
  const text = readFileSync(file, "utf8");
  const src = parseDocument(text);
  const known = desired.clusters.map((c) => c.target.name);
  const wanted = opts.clusters?.length ? [...new Set(opts.clusters)] : known;
  const unknown = wanted.filter((n) => !known.includes(n));
  if (unknown.length) {
    throw new TopoError(`no cluster named ${unknown.map((n) => `"${n}"`).join(", ")} in ${file}`, [`clusters in the file: ${known.join(", ")}`]);
  }

  const outDir = opts.output ? dirname(resolve(opts.output)) : undefined;
  const srcDir = dirname(resolve(file));
  // Paths in a topology file are relative to it; a file written elsewhere needs them rebased.
  const rebase = (p: string): string => {
    if (!outDir || outDir === srcDir || isAbsolute(p) || p.includes("$") || /^[a-z][a-z0-9+.-]*:/i.test(p)) return p;
    const r = relative(outDir, resolve(srcDir, p));
    return r.startsWith(".") || isAbsolute(r) ? r : `./${r}`;
  };

  const vars = new PasswordVariables(passwordEnv);
  const sources: Source[] = wanted.map((name) => {
    const target = (desired.clusters.find((c) => c.target.name === name) as DesiredCluster).target;
    return { name, target, section: rewriteSection(src, name, vars, rebase) };
  });
  return {
    sources,
    prefix: opts.prefix ?? desired.prefix,
    ...schemaReference(text, src, rebase),
    notices: vars.notices(file),
    introduced: vars.introduced,
    checkPath: opts.output ? resolve(opts.output) : resolve(file),
  };
}

// ---------------------------------------------------------------------------------------------
// Clusters from --url

interface UrlSpec {
  name?: string;
  value: string;
}

function parseSpec(s: string): UrlSpec {
  // A URL starts with a scheme and ":", so NAME= before it cannot be part of it.
  const m = /^([^:/=]+)=(.*)$/s.exec(s);
  if (!m) return { value: s };
  const name = m[1] as string;
  if (!CLUSTER_NAME.test(name)) throw new TopoError(`"${name}" is not a cluster name`, ["a cluster name is lowercase letters, digits, - and _, starting with a letter: --url sync=amqp://..."]);
  return { name, value: m[2] as string };
}

function fromUrls(opts: ImportOptions, env: Env, passwordEnv: string, redactor: Redactor): Prepared {
  if (opts.fileGiven) throw new TopoError("-f and --url cannot be used together", ["-f takes the connection from a file's clusters; --url reads a broker directly"]);
  if (opts.clusters?.length) {
    throw new TopoError("--cluster names a cluster of a file, so it does not go with --url", ["name a --url cluster in the URL option itself: --url sync=amqp://USER@HOST:5672/VHOST"]);
  }
  const specs = (opts.urls ?? []).map(parseSpec);
  const mgmt = (opts.managements ?? []).map(parseSpec);
  const named = specs.filter((s) => s.name).map((s) => s.name as string);
  const dup = named.find((n, i) => named.indexOf(n) !== i);
  if (dup) throw new TopoError(`two --url options name cluster "${dup}"`, ["give each cluster its own name"]);
  const unnamedMgmt = mgmt.filter((m) => !m.name);
  if (unnamedMgmt.length > 1) throw new TopoError("more than one --management without a cluster name", ["with several clusters, say which is whose: --management sync=http://HOST:15672"]);
  for (const m of mgmt) {
    if (m.name && !named.includes(m.name)) throw new TopoError(`--management names cluster "${m.name}", which no --url names`, [`--url names: ${named.join(", ") || "(none)"}`]);
  }

  const notices: string[] = [];
  const introduced: Record<string, string> = {};
  const raw: Record<string, RawCluster> = {};
  const sections = new Map<string, { section: RawCluster; unnamed: boolean; shown: string }>();
  specs.forEach((spec, i) => {
    const parsed = urlSection(spec.value, passwordEnv);
    if (!parsed) {
      // Never echoed, not even masked: a value that does not parse cannot be masked reliably.
      throw new TopoError(`--url${spec.name ? ` ${spec.name}=` : ""} is not a URL: ${whyNotAUrl(spec.value)}`, ["write amqp://USER@HOST:5672/VHOST (amqps:// for TLS; %2F or no path for vhost /)"]);
    }
    // Read with the password given on the command line, if any, but write only the reference.
    const inline = parsed.password;
    if (inline) {
      redactor.add(inline);
      try {
        redactor.add(decodeURIComponent(inline));
      } catch {
        // a malformed %-escape: normalize reports it below
      }
    }
    const written = parsed.written;
    const shown = redactor.text(spec.value);
    if (inline) {
      introduced[passwordEnv] = inline;
      notices.push(
        `The password given in --url is not written: this file reads it from \${${passwordEnv}}; export ${passwordEnv} before running topo on it (and prefer exporting it to typing it in a command line, where other users of the machine can see it).`,
      );
    }
    const connectEnv: Env = inline ? { ...env, [passwordEnv]: inline } : env;
    const url = interpolate(written, connectEnv);
    if ("error" in url) {
      throw new TopoError(`--url ${shown}: the password of user "${safeDecode(parsed.user)}" is read from $${passwordEnv}, which is not set`, [
        `export ${passwordEnv}=<password> (percent-encoded where a URL needs it) and run import again; the file written reads it from \${${passwordEnv}} too`,
        "or name another variable with --password-env NAME",
      ]);
    }
    // A --management named for this cluster, else the one without a name, which serves them all.
    const m = (spec.name ? mgmt.find((x) => x.name === spec.name) : undefined) ?? unnamedMgmt[0];
    const section: RawCluster = { url: written };
    const connect: RawCluster = { url: url.value };
    if (m) {
      let mu: URL;
      try {
        mu = new URL(m.value);
      } catch {
        throw new TopoError(`--management${m.name ? ` ${m.name}=` : ""} is not a URL: ${whyNotAUrl(m.value)}`, ["write http://HOST:15672 (https:// for TLS)"]);
      }
      if (mu.username || mu.password) {
        throw new TopoError(`--management ${redactor.text(m.value)} holds credentials`, [
          "give the management API without them (http://HOST:15672): import uses the --url user; to use another management user, write the cluster in a file and use -f",
        ]);
      }
      section.management = literal(m.value);
      connect.management = m.value;
    }
    const key = spec.name ?? `url-${i + 1}`;
    raw[key] = connect;
    sections.set(key, { section, unnamed: !spec.name, shown });
  });

  const prefix = opts.prefix ?? DEFAULT_PREFIX;
  const { desired, problems } = normalize({ version: 1, prefix, clusters: raw, services: [] });
  if (problems.length) {
    throw new TopoError(
      problems.map((p) => `--url ${sections.get(String(p.path[1]))?.shown ?? ""}: ${redactor.text(p.message)}`).join("\n"),
      ["write amqp://USER@HOST:5672/VHOST (amqps:// for TLS; %2F or no path for vhost /), with the password in $" + passwordEnv],
    );
  }
  const sources = desired.clusters.map((c): Source => {
    redactor.add(c.target.amqp.password);
    redactor.add(c.target.management.password);
    const s = sections.get(c.target.name) as { section: RawCluster; unnamed: boolean; shown: string };
    // Until it is named, messages about the cluster name its URL.
    return { name: c.target.name, target: s.unnamed ? { ...c.target, name: c.target.amqp.display } : c.target, section: s.section, unnamed: s.unnamed };
  });
  return { sources, prefix, schemaLine: DEFAULT_SCHEMA_LINE, notices, introduced, checkPath: resolve("topology.yaml") };
}

/**
 * A bare --url cluster is named after the one kind of queue it holds (sync or async, the names
 * the built-in defaults use), else "main".
 */
function nameUnnamed(sources: Source[], actuals: ActualCluster[], prefix: string): void {
  const taken = new Set(sources.filter((s) => !s.unnamed).map((s) => s.name));
  sources.forEach((s, i) => {
    if (!s.unnamed) return;
    const kinds = kindsHeld(actuals[i] as ActualCluster, prefix);
    const name = kinds.length === 1 ? (kinds[0] as string) : "main";
    if (taken.has(name)) {
      throw new TopoError(`two clusters would be named "${name}" (${s.target.amqp.display} is one)`, ["name them: --url sync=amqp://... --url async=amqp://..."]);
    }
    taken.add(name);
    s.name = name;
    s.target = { ...s.target, name };
  });
}

// ---------------------------------------------------------------------------------------------

/**
 * Read the text back as topo validate and plan will, and diff it against what was read: it must
 * validate, and plan must show exactly the changes the file's comments list. Anything else is a
 * bug in import, and no file is written.
 */
function readBack(text: string, p: Prepared, actuals: ActualCluster[], inference: Inference, env: Env): void {
  const bug = (what: string) =>
    new TopoError(`the file import made ${what}; this is a bug in topo, and nothing was written`, ["please report it with the command you ran; topo plan on the brokers still works"]);
  let back;
  try {
    back = parseConfig(text, p.checkPath, { ...env, ...p.introduced });
  } catch (e) {
    if (e instanceof ConfigError) throw bug(`does not validate:\n${e.message}`);
    throw e;
  }
  p.sources.forEach((s, i) => {
    const dc = back.clusters.find((c) => c.target.name === s.name);
    if (!dc) throw bug(`has no cluster ${s.name}`);
    // Users are compared on their own (their passwords are variables here): the comments list
    // the changes to exchanges, queues, bindings and policies.
    const keys = (as: { op: string; key: string }[]) =>
      as
        .filter((a) => !/^(user|permission|topic-permission)\|/.test(a.key))
        .map((a) => `${a.op} ${a.key}`)
        .sort()
        .join("\n");
    const planned = diffCluster(dc, actuals[i] as ActualCluster, back.prefix).actions;
    const listed = inference.clusters[i]?.changes.map((c) => c.action) ?? [];
    if (keys(planned) !== keys(listed)) throw bug(`would plan other changes on cluster ${s.name} than its comments list`);
  });
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
