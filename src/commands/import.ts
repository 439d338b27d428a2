// topo import: read brokers and write the topology file that describes them. The connection comes
// from a file's clusters (-f, --cluster) or straight from --url; the file written keeps each
// cluster's section as the user wrote it, and never holds a password.

import { existsSync, readFileSync } from "node:fs";
import { dirname, isAbsolute, relative, resolve } from "node:path";
import { parseDocument } from "yaml";
import { envVar, interpolate, variableNameProblem, whiteSpaceAtEnd, whiteSpaceMessage } from "../config/interpolate.js";
import { loadConfig, parseConfig, refuseUnsetUrls, type Env } from "../config/load.js";
import { normalize, type RawCluster } from "../config/normalize.js";
import { BrokerError, ConfigError, TopoError } from "../errors.js";
import { unknownClusterHints } from "../core/words.js";
import type { Action, ActualCluster, ClusterTarget, DesiredCluster, DesiredState, SettingPlaces } from "../model.js";
import { readCluster, readVhostLimits } from "../broker/read.js";
import { limitsJson } from "../plan/limits.js";
import { DEFAULT_PASSWORD_ENV, DEFAULT_PREFIX, prefixProblem } from "../core/naming.js";
import { planCluster } from "../plan/diff.js";
import { Redactor } from "../redact.js";
import { hasSchemeSlashes, learnTypedPassword, shownUrl, userinfoSpan, whyNotAUrl } from "../config/url.js";
import { degradedAsPlanned, inferTopology, kindsHeld, type ArgumentSchema, type Inference } from "../import/infer.js";
import { importUsers, isUserAction, passwordlessUsers, userChanges } from "../import/users.js";
import { DEFAULT_SCHEMA_LINE, emitTopology } from "../import/emit.js";
import { quoted, shellWord, shown } from "../core/words.js";
import { PasswordVariables, rewriteSection, schemaReference, sectionVariables, urlSection, urlSections, writtenPasswords } from "../import/sections.js";
import { forEachCluster, identifyBeside } from "./clusters.js";
import { managementClient, type ConnectionOptions } from "./source.js";
import { writeWhole } from "../files/write-file.js";
import { packageFile } from "../config/package-files.js";

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
  /** Degraded lines topo plan on the file will report (no change fixes them). */
  degraded: number;
  /** Objects the file leaves out that topo never changes. */
  kept: number;
  /** Things the user must know (a password the file now reads from a variable). */
  notices: string[];
  /** Clusters whose vhost accepts no connections: topo plan on the file fails at its login there. */
  closed: string[];
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
  /** Writes what waits for the clusters' final names (the --url sections, their variables). */
  finish?: () => void;
}

export async function importTopology(opts: ImportOptions): Promise<ImportResult> {
  const redactor = opts.redactor ?? new Redactor();
  const env = opts.env ?? process.env;
  const passwordEnv = opts.passwordEnv ?? DEFAULT_PASSWORD_ENV;
  const badName = variableNameProblem("--password-env", passwordEnv, env, DEFAULT_PASSWORD_ENV, "the password");
  if (badName) throw new TopoError(badName.message, badName.hints);
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
  /** Clusters whose vhost takes no connection (max-connections 0): what to say of each. */
  const closed: { cluster: string; note: string }[] = [];
  const actuals = await forEachCluster(desired, async (c): Promise<ActualCluster> => {
    const client = managementClient(c, { ...opts, redactor });
    try {
      // A file describing another broker than the one named would be adopted as the truth.
      const [, actual] = await identifyBeside(c, client, opts, readCluster(client, c.target, true));
      if (!actual.vhostExists) {
        throw new BrokerError(c.target.name, `vhost ${JSON.stringify(c.target.amqp.vhost)} does not exist at ${c.target.management.display}; there is nothing to import`, {
          hints: ["check the vhost, the path of the url (%2F or no path for /); GET /api/vhosts or rabbitmqctl list_vhosts lists them"],
        });
      }
      // Plan logs in over AMQP, which import never does: a vhost closed to every connection made
      // import say "topo plan on it shows no changes" of a file whose plan failed at its login.
      const limits = await readVhostLimits(client, c.target);
      if (limits?.["max-connections"] === 0) closed.push({ cluster: c.target.name, note: closedNote(c.target.name, c.target.amqp.vhost, limits) });
      return actual;
    } finally {
      client.close();
    }
  });
  nameUnnamed(p.sources, actuals, p.prefix);
  p.finish?.();

  const { definitions } = packageFile<{
    definitions: { arguments: { properties: Record<string, ArgumentSchema> }; serviceName: { maxLength: number } };
  }>("schemas/topology.schema.json");
  const own = p.sources.flatMap((s) => [s.target.amqp.username, s.target.management.username]);
  const inference = inferTopology(
    p.sources.map((s, i) => ({ name: s.name, vhost: s.target.amqp.vhost, actual: actuals[i] as ActualCluster })),
    { prefix: p.prefix, argumentSchemas: definitions.arguments.properties, serviceNameMaxLength: definitions.serviceName.maxLength, ownUsers: own },
  );
  const sources = p.sources.map((s, i) => ({ name: s.name, vhost: s.target.amqp.vhost, actual: actuals[i] as ActualCluster }));
  const serviceNames = inference.body.services.map((s) => (typeof s === "string" ? s : s.name));
  const imported = importUsers(sources, serviceNames, p.prefix, sectionVariables(p.sources.map((s) => s.section)), own);
  const unreadable = actuals.find((a) => a.usersUnreadable !== undefined)?.usersUnreadable;
  // A user the broker holds no password for has none to export: the file gives it one all the same.
  const passwordless = passwordlessUsers(imported.users, sources);
  const withPassword = imported.users.filter((u) => !passwordless.has(u.name));
  const notices = [
    ...(p.notices ?? []),
    ...(withPassword.length
      ? [
          `users: each user's password is read from a variable (${withPassword.map((u) => `\${${u.passwordEnv}}`).join(", ")}); the broker keeps only a hash, so export each with the user's current password before running topo, or plan shows (password) and apply sets the variable's value.`,
        ]
      : []),
    ...[...passwordless].map(
      ([name, variable]) =>
        `user ${shown(name)} has no password on the broker (it logs in with a client certificate, or not at all), which a file cannot say: the file reads one from \${${variable}}, and apply sets it, a password login the user did not have (listed at the top).`,
    ),
    ...imported.skipped,
    ...(unreadable ? [`users were not imported: ${unreadable}.`] : []),
    ...closed.map((c) => c.note),
  ];
  const emit = () =>
    emitTopology({
      users: imported.users,
      inference,
      clusters: p.sources.map((s) => ({ name: s.name, section: s.section })),
      schemaLine: p.schemaLine,
      schemaKey: p.schemaKey,
      notices,
      redact: (t) => redactor.text(t),
    });
  const backEnv = { ...env, ...Object.fromEntries(imported.users.map((u) => [u.passwordEnv, "import-read-back"])) };
  let text = emit();
  let planned = plannedOn(text, p, actuals, backEnv);
  // The users' rights the file gives follow from consumes and publishes; what plan changes in
  // them is known only once the users section is read back as plan reads it. Listed, they change
  // only the file's comments, which plan reads again.
  const forUsers = planned.map((x) => userChanges(x.actions, passwordless));
  // So is what plan reports degraded of the users (a user's max-connections 0): the file said
  // "topo plan on this file plans no changes" over a plan that exited 2 for it.
  const degradedMore = planned.some((x, i) => x.degraded.join("\n") !== (inference.clusters[i]?.degraded ?? []).join("\n"));
  if (forUsers.some((c) => c.length) || degradedMore) {
    forUsers.forEach((c, i) => {
      for (const change of c) inference.clusters[i]?.changes.push(change);
    });
    planned.forEach((x, i) => {
      const c = inference.clusters[i];
      if (c) c.degraded = x.degraded;
    });
    text = emit();
    planned = plannedOn(text, p, actuals, backEnv);
  }
  checkListed(planned.map((x) => x.actions), p, inference, passwordless);

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
    degraded: inference.clusters.reduce((n, c) => n + c.degraded.length, 0),
    kept: inference.clusters.reduce((n, c) => n + c.kept.length, 0),
    notices,
    closed: closed.map((c) => c.cluster),
  };
}

/** What a vhost that takes no connection means for the file import writes, and what to do. */
function closedNote(cluster: string, vhost: string, limits: Readonly<Record<string, number>>): string {
  return `cluster ${cluster}: vhost ${quoted(vhost)} accepts no connections (max-connections 0), so topo plan and apply on this file fail at their login to it (530 NOT_ALLOWED), and so does every worker and publisher; once it takes connections (rabbitmqctl set_vhost_limits -p ${shellWord(vhost)} '${limitsJson({ ...limits, "max-connections": -1 })}', where -1 is no limit), topo plan on it plans as said here.`;
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
  // Only the clusters are read: the users' passwords are not needed (the file written reads each
  // from a variable of its own), as for validate.
  const { desired, unsetUrls } = loadConfig(file, env, redactor, { passwordsOptional: true });
  // A cluster's URL may leave its password unset for the commands that never connect; import does.
  refuseUnsetUrls(unsetUrls, file, "topo import", opts.clusters?.length ? opts.clusters : undefined);
  // The sections are copied as written: ${VAR} references, not the values they had here.
  const text = readFileSync(file, "utf8");
  // merge: as the loader reads it, so a section that merges another (`<<: *broker`) is the
  // mapping it means, and the password it takes from there is rewritten like its own.
  const src = parseDocument(text, { merge: true });
  const known = desired.clusters.map((c) => c.target.name);
  const wanted = opts.clusters?.length ? [...new Set(opts.clusters)] : known;
  const unknown = wanted.filter((n) => !known.includes(n));
  if (unknown.length) {
    throw new TopoError(`no cluster named ${unknown.map((n) => `"${n}"`).join(", ")} in ${file}`, unknownClusterHints(unknown, known, true));
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
  // The redactor knows the file's passwords decoded (and the forms derived from that); a comment
  // may quote one as the URL writes it.
  for (const pw of writtenPasswords(src)) redactor.add(pw);
  const masked: string[] = [];
  const sources: Source[] = wanted.map((name) => {
    const target = (desired.clusters.find((c) => c.target.name === name) as DesiredCluster).target;
    let hit = false;
    const mask = (comment: string) => {
      const safe = redactor.strictText(comment);
      if (safe !== comment) hit = true;
      return safe;
    };
    const section = rewriteSection(src, name, vars, rebase, mask);
    if (hit) masked.push(`clusters.${name}`);
    return { name, target, section };
  });
  return {
    sources,
    prefix: opts.prefix ?? desired.prefix,
    ...schemaReference(text, src, rebase),
    notices: [
      ...vars.notices(file),
      ...(masked.length
        ? [
            `Comments in ${masked.join(" and ")} of ${file} hold a password or a URL's user-info, which import does not copy: this file has *** in their place (the other comments are copied as written).`,
          ]
        : []),
    ],
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
  // Learned before anything can fail: a URL that does not parse still carries its password.
  for (const s of [...specs, ...mgmt]) learnTypedPassword(s.value, redactor);
  const named = specs.filter((s) => s.name).map((s) => s.name as string);
  const dup = named.find((n, i) => named.indexOf(n) !== i);
  if (dup) throw new TopoError(`two --url options name cluster "${dup}"`, ["give each cluster its own name"]);
  const unnamedMgmt = mgmt.filter((m) => !m.name);
  if (unnamedMgmt.length > 1) throw new TopoError("more than one --management without a cluster name", ["with several clusters, say which is whose: --management sync=http://HOST:15672"]);
  for (const m of mgmt) {
    if (m.name && !named.includes(m.name)) throw new TopoError(`--management names cluster "${m.name}", which no --url names`, [`--url names: ${named.join(", ") || "(none)"}`]);
  }
  const unnamedUrls = specs.filter((s) => !s.name).length;
  const URL_HINT = `write amqp://USER@HOST:5672/VHOST (amqps:// for TLS; %2F or no path for vhost /), with the password in $${passwordEnv}`;
  const MGMT_HINT = "write http://HOST:15672 (https:// for TLS)";

  const raw: Record<string, RawCluster> = {};
  const byKey = new Map<string, { spec: UrlSpec; management?: UrlSpec; shown: string; places: SettingPlaces; fromEnv?: boolean }>();
  specs.forEach((spec, i) => {
    const shown = shownSpec("--url", spec);
    const parsed = urlSection(spec.value, passwordEnv);
    if (!parsed) throw new TopoError(`${shown}: not a URL: ${whyNotAUrl(spec.value)}`, [URL_HINT]);
    // Read with the password given on the command line, if any; the file gets a reference.
    const inline = parsed.password;
    const connectEnv: Env = inline ? { ...env, [passwordEnv]: inline } : env;
    const url = interpolate(parsed.written, connectEnv);
    const fromVariable = envVar(connectEnv, passwordEnv);
    const edge = fromVariable === undefined ? undefined : whiteSpaceAtEnd(fromVariable);
    if (!inline && edge !== undefined && parsed.written.includes(`\${${passwordEnv}}`)) {
      throw new TopoError(`${shown}: the password of user "${safeDecode(parsed.user)}" is read from $${passwordEnv}, and $${passwordEnv} ${whiteSpaceMessage(passwordEnv, edge, "--url")}`);
    }
    if ("error" in url) {
      // A name --password-env was given that no variable has may be the password itself, typed
      // where its variable's name belongs: it is not shown (the default's name is topo's own).
      const named = passwordEnv === DEFAULT_PASSWORD_ENV;
      throw new TopoError(`${shown}: the password of user "${safeDecode(parsed.user)}" is read from ${named ? `$${passwordEnv}` : "the variable --password-env names (not shown: what --password-env was given may be the password itself)"}, which is not set`, [
        named
          ? `export ${passwordEnv}=<password> (percent-encoded where a URL needs it) and run import again; the file written reads it from \${${passwordEnv}} too`
          : "export that variable with the password (percent-encoded where a URL needs it) and run import again; the file written reads it from there too",
        "or name another variable with --password-env NAME",
      ]);
    }
    // A --management named for this cluster, else the one without a name, which serves them all.
    const m = (spec.name ? mgmt.find((x) => x.name === spec.name) : undefined) ?? unnamedMgmt[0];
    const connect: RawCluster = { url: url.value };
    if (m) {
      let mu: URL;
      try {
        mu = new URL(m.value);
        if (!hasSchemeSlashes(m.value)) throw new Error("no //");
      } catch {
        throw new TopoError(`${shownSpec("--management", m)}: not a URL: ${whyNotAUrl(m.value)}`, [MGMT_HINT]);
      }
      if (mu.username || mu.password || userinfoSpan(m.value)) {
        throw new TopoError(`${shownSpec("--management", m)} holds credentials`, [
          "give the management API without them (http://HOST:15672): import uses the --url user; to use another management user, write the cluster in a file and use -f",
        ]);
      }
      connect.management = m.value;
    }
    // Hints name the options the cluster came from: it has no key in any file yet.
    const urlPlace = spec.name ? `--url ${spec.name}=…` : "--url";
    const mgmtPlace = m ? `--management${m.name ? ` ${m.name}=…` : ""}` : spec.name ? `--management ${spec.name}=…` : "--management";
    const places: SettingPlaces = { url: urlPlace, management: mgmtPlace, managementHost: m ? mgmtPlace : urlPlace, credentials: urlPlace };
    let key = spec.name ?? `url-${i + 1}`;
    while (named.includes(key) && !spec.name) key += "-";
    raw[key] = connect;
    // The URL reads its password from $passwordEnv, put into it as it is: what is wrong with the
    // URL shown may be in that value, which the message cannot show.
    byKey.set(key, { spec, management: m, shown, places, ...(!inline && parsed.written.includes(`\${${passwordEnv}}`) ? { fromEnv: true } : {}) });
  });

  const prefix = opts.prefix ?? DEFAULT_PREFIX;
  const { desired, problems } = normalize({ version: 1, prefix, clusters: raw, services: [] });
  if (problems.length) {
    const hints = new Set<string>();
    const lines = problems.map((p) => {
      const c = byKey.get(String(p.path[1]));
      // A problem of the management URL is the --management option's, not the --url's.
      const ofManagement = p.path[2] === "management" && c?.management !== undefined;
      hints.add(ofManagement ? MGMT_HINT : URL_HINT);
      if (!ofManagement && c?.fromEnv && /password/.test(p.message)) hints.add(`the password in $${passwordEnv} goes into the URL as it is: percent-encode it there ("#" as %23, "?" as %3F, "%" as %25, "/" as %2F, "@" as %40)`);
      const where = ofManagement ? shownSpec("--management", c.management as UrlSpec) : (c?.shown ?? "--url");
      return `${where}: ${redactor.text(p.message)}`;
    });
    throw new TopoError(lines.join("\n"), [...hints]);
  }
  const sources = desired.clusters.map((c): Source => {
    redactor.add(c.target.amqp.password);
    redactor.add(c.target.management.password);
    const s = byKey.get(c.target.name) as { spec: UrlSpec; management?: UrlSpec; shown: string; places: SettingPlaces };
    // Until a bare --url is named after what it holds, messages call it by its option.
    const name = s.spec.name ?? (unnamedUrls === 1 ? "--url" : `--url ${shownUrl(s.spec.value)}`);
    return { name, target: { ...c.target, name, places: s.places }, section: undefined, unnamed: !s.spec.name };
  });
  const prepared: Prepared = {
    sources,
    prefix,
    schemaLine: DEFAULT_SCHEMA_LINE,
    notices: [],
    introduced: {},
    checkPath: resolve("topology.yaml"),
    // The variables are named after the clusters, which a bare --url has only once read.
    finish: () => {
      const written = urlSections(
        sources.map((src, i) => {
          const s = byKey.get(desired.clusters[i]?.target.name as string) as { spec: UrlSpec; management?: UrlSpec };
          return { name: src.name, url: s.spec.value, management: s.management?.value };
        }),
        passwordEnv,
        envVar(env, passwordEnv) || undefined,
      );
      sources.forEach((src, i) => (src.section = written.sections[i]));
      prepared.notices.push(...written.notices);
      Object.assign(prepared.introduced, written.introduced);
    },
  };
  return prepared;
}

/** `--url sync=amqp://u:***@host/vhost`: the option as typed, its password and query masked. */
function shownSpec(option: string, spec: UrlSpec): string {
  return `${option} ${spec.name ? `${spec.name}=` : ""}${shownUrl(spec.value)}`;
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

/** A file import made that topo itself would refuse or plan otherwise than it says. */
function importBug(what: string, details?: string): TopoError {
  return new TopoError(`the file import made ${what}; this is a bug in topo, and nothing was written${details ? `\n${details}` : ""}`, ["please report it with the command you ran; topo plan on the brokers still works"]);
}

/**
 * Read the text back as topo validate and plan will, and diff it against what was read: plan's
 * actions on each source. A text that does not validate is a bug in import.
 */
function plannedOn(text: string, p: Prepared, actuals: ActualCluster[], env: Env): { actions: Action[]; degraded: string[] }[] {
  const back = readBackGenerated(text, p.checkPath, { ...env, ...p.introduced });
  return p.sources.map((s, i) => {
    const dc = back.clusters.find((c) => c.target.name === s.name);
    if (!dc) throw importBug(`has no cluster ${s.name}`);
    const actual = actuals[i] as ActualCluster;
    const plan = planCluster(dc, actual, back.prefix);
    // Its users included, which the inference's plan had not.
    return { actions: plan.actions, degraded: degradedAsPlanned(plan, dc, actual, back.prefix) };
  });
}

/**
 * The text import generated, read back as topo validate reads a file (`checkPath`: where it would
 * be written, which relative TLS paths are read from). One that does not validate is a bug in
 * import, and its problems are places in that text, not in a file: the old message cited
 * `checkPath`, the user's own file (-f) or one not yet written (-o), at lines that hold something
 * else or nothing. Each problem is given at its line and column of the generated text, with that
 * line.
 */
export function readBackGenerated(text: string, checkPath: string, env: Env): DesiredState {
  try {
    return parseConfig(text, checkPath, env);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    const lines = text.split("\n");
    const where = e.problems.map((p) => `  line ${p.line}, column ${p.col} of the generated text: ${p.message}\n    ${p.line} | ${lines[p.line - 1] ?? ""}`);
    throw importBug(`does not validate`, `the places are lines of the text import generated, which was not written (to ${checkPath} or anywhere else):\n${where.join("\n")}`);
  }
}

/** Plan must show exactly the changes the file's comments list; anything else is a bug in import, and no file is written. */
function checkListed(planned: Action[][], p: Prepared, inference: Inference, passwordless: ReadonlyMap<string, string>): void {
  p.sources.forEach((s, i) => {
    // Users' passwords are variables here, which userChanges leaves out, as the comments do.
    const keys = (as: Action[]) =>
      [...as.filter((a) => !isUserAction(a)), ...userChanges(as, passwordless).map((c) => c.action)]
        .map((a) => `${a.op} ${a.key}`)
        .sort()
        .join("\n");
    const listed = inference.clusters[i]?.changes.map((c) => c.action) ?? [];
    if (keys(planned[i] ?? []) !== keys(listed)) throw importBug(`would plan other changes on cluster ${s.name} than its comments list`);
  });
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
