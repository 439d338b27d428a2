// Pure: the validated file → the exact objects wanted on each cluster. Also the cross-checks the
// schema cannot express (the router rule with the file's prefix, unknown clusters, duplicates,
// settings that contradict each other). No IO here: a unit test runs it on plain objects.

import type {
  Args,
  Binding,
  ClusterTarget,
  DesiredCluster,
  DesiredState,
  Endpoint,
  Exchange,
  Traffic,
  ManagementEndpoint,
  Policy,
  Queue,
  QueueSpec,
  QueueType,
  Resource,
  TlsOptions,
} from "../model.js";
import { TRAFFIC } from "../model.js";
import { CELERY_EXCHANGES, coveringHolds, DEFAULT_PREFIX, escapeRegex, isTopoName, kindQueuesPattern, mirrorPolicyName, prefixProblem, serviceNamePattern, userMarkerTag } from "../core/naming.js";
import { rightsFor, type Grant } from "../core/permissions.js";
import { credentials, isSha256Hash, type PasswordSource } from "./credentials.js";
import { sortArgs, sortResources } from "../core/keys.js";
import { checkArguments } from "./arguments.js";
import { closest } from "../core/spelling.js";
import { badEscapeIn, controlCharacterIn, hasSchemeSlashes, hostPort, NOT_UTF8, shownQuery, userinfoAfterHost, whyNotAUrl } from "./url.js";

/** The shape the schema guarantees (after ${VAR} interpolation). */
export interface RawQueueSettings {
  cluster?: string;
  durable?: boolean;
  mirrored?: boolean;
  type?: QueueType;
  arguments?: Args;
}
export interface RawService {
  name: string;
  sync?: boolean | RawQueueSettings;
  async?: boolean | RawQueueSettings;
}
export interface RawCluster {
  url: string;
  management?: string;
  tls?: TlsOptions;
}
export interface RawUser {
  password?: string;
  password_hash?: string;
  consumes?: string[];
  publishes?: string[] | "all";
  tags?: string[];
  adopt?: boolean;
}
export interface RawConfig {
  version: 1;
  prefix?: string;
  clusters: Record<string, RawCluster>;
  defaults?: Partial<Record<Traffic, RawQueueSettings>>;
  services: (string | RawService)[];
  users?: Record<string, RawUser>;
}

/** A problem found by normalize, placed by its path in the file. */
export interface PathProblem {
  path: (string | number)[];
  message: string;
  /** Point at the key of the last path element rather than its value. */
  atKey?: boolean;
  /** Point at this character of the value, when the file writes the value as it reads. */
  index?: number;
}

export const BUILT_IN: Record<Traffic, Required<RawQueueSettings>> = {
  sync: { cluster: "sync", durable: false, mirrored: true, type: "classic", arguments: {} },
  async: { cluster: "async", durable: true, mirrored: false, type: "classic", arguments: {} },
};

/** What topo's mirror policies (topo.<prefix>.mirror.<kind>) set. */
export const MIRROR_DEFINITION = { "ha-mode": "all", "ha-sync-mode": "automatic" } as const;


// ---------------------------------------------------------------------------------------------
// Endpoints

const DEFAULT_PORT = { amqp: 5672, amqps: 5671 } as const;
/**
 * A URL of the file, parsed, or a problem that says what is wrong with it (never echoing it): a
 * control character, a URL that does not parse, or one without its "//" ("amqp:/u:p@host" and
 * "u:p@host" parse, as URLs with no host: the user-info becomes a path, the user name a scheme).
 */
function readUrl(raw: string, path: (string | number)[], problems: PathProblem[], example: string): URL | undefined {
  const control = controlCharacterIn(raw);
  if (control) {
    problems.push({ path, message: control.message, index: control.index });
    return undefined;
  }
  let u: URL | undefined;
  try {
    u = new URL(raw);
  } catch {
    u = undefined;
  }
  if (!u || !hasSchemeSlashes(raw)) {
    // Never echoed, not even masked: see url.ts.
    problems.push({ path, message: `not a valid URL: ${whyNotAUrl(raw)}; write ${example}` });
    return undefined;
  }
  return u;
}

function parseEndpoint(url: string, path: (string | number)[], problems: PathProblem[]): Endpoint | undefined {
  const u = readUrl(url, path, problems, "amqp://<user>:<password>@<host>:5672/<vhost>");
  if (!u) return undefined;
  const protocol = u.protocol.replace(/:$/, "");
  if (protocol !== "amqp" && protocol !== "amqps") {
    problems.push({ path, message: `unsupported scheme "${protocol}://"; use amqp:// or amqps:// (TLS)` });
    return undefined;
  }
  // First: past an "@" after the host, the host and all that follows are read from inside a password.
  const misplaced = userinfoAfterHost(u);
  if (misplaced) {
    problems.push({ path, message: misplaced });
    return undefined;
  }
  if (!u.hostname) {
    problems.push({ path, message: `URL has no host; write ${protocol}://<user>:<password>@<host>:<port>/<vhost>` });
    return undefined;
  }
  if (u.port !== "" && Number(u.port) === 0) {
    problems.push({ path, message: `the port is 0, which no broker listens on; write the broker's port (amqp 5672, amqps 5671), or leave it out for the default` });
    return undefined;
  }
  // An amqp:// URL's host is not checked by the URL parser (amqp is no scheme it knows), but
  // topo connects to it, and its management URL is made from it: read as an http:// URL's host
  // is, 1.2.3.999 or ex%2Fample passed validate and every broker command failed as topo's bug.
  // That reading also gives the name to look up: exämple's is xn--exmple-cua, ex%41mple's example.
  let hostname: string;
  try {
    hostname = stripBrackets(new URL(`http://${u.hostname}/`).hostname);
  } catch {
    problems.push({ path, message: `the host ${JSON.stringify(u.hostname)} is no host name or IP address (an IPv4 address is four numbers of 0 to 255; a name holds no %-escaped "/", "?", "#", space or control character); write the broker's host` });
    return undefined;
  }
  if (u.username === "" && u.password !== "") {
    problems.push({ path, message: `the URL gives a password but no user name (${protocol}://:<password>@...), which would log in as guest; write the user name before the ":"` });
    return undefined;
  }
  if (u.search || u.hash) {
    problems.push({ path, message: `URL query and fragment are not supported${shownQuery(u)}; put TLS settings under tls:` });
    return undefined;
  }
  // URLs drop a path segment of "." or ".." (also %2E): "amqp://h/." is vhost "/" for the URL
  // parser, and the management API's /api/queues/. lists every vhost's queues. Neither can name
  // such a vhost, so topo would manage another one than the file says.
  const dots = /^(?:\.|%2e){1,2}$/i.exec(url.slice(url.lastIndexOf("/") + 1))?.[0];
  if (dots !== undefined && u.pathname.replace(/^\//, "") === "") {
    const vhost = dots.replace(/%2e/gi, ".");
    problems.push({ path, message: `the vhost "${vhost}" cannot be managed: URLs drop a path of "." or "..", so this URL names vhost "/", and the management API cannot name a vhost "${vhost}" either; rename the vhost (write %2F for vhost "/")` });
    return undefined;
  }
  const rawPath = u.pathname.replace(/^\//, "");
  if (rawPath.includes("/")) {
    problems.push({ path, message: `the URL path is the vhost and may not contain "/"; write %2F for a slash (vhost "/" is %2F or no path)` });
    return undefined;
  }
  const badEscape = badEscapeIn({ vhost: rawPath, username: u.username, password: u.password });
  if (badEscape) {
    problems.push({ path, message: `URL has a malformed %-escape: ${badEscape}` });
    return undefined;
  }
  let vhost: string;
  let username: string;
  let password: string;
  try {
    vhost = rawPath === "" ? "/" : decodeURIComponent(rawPath);
    username = decodeURIComponent(u.username) || "guest";
    password = decodeURIComponent(u.password) || (u.username ? "" : "guest");
  } catch {
    problems.push({ path, message: `URL has a malformed %-escape: ${NOT_UTF8}` });
    return undefined;
  }
  // connection.open carries the vhost as a short string: a longer name reaches no broker.
  const vhostBytes = Buffer.byteLength(vhost, "utf8");
  if (vhostBytes > 255) {
    problems.push({ path, message: `the vhost name is ${vhostBytes} bytes long, and AMQP carries at most 255 (connection.open): no client could connect to it; use a shorter vhost name` });
    return undefined;
  }
  const port = u.port ? Number(u.port) : DEFAULT_PORT[protocol];
  // The vhost holds no raw "@" (userinfoAfterHost): the redactor masks a URL's user-info up to its last "@".
  const display = `${protocol}://${u.username || "guest"}:***@${u.host || u.hostname}/${rawPath}`.replace(/\/$/, "");
  return { protocol, hostname, port, username, password, vhost, display };
}

function stripBrackets(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

/**
 * The management endpoint, unless its user name holds a ":", which its login cannot carry: HTTP
 * Basic authentication sends "user:password" and the broker reads the name up to the first ":"
 * (RFC 7617). Measured on 3.10.8: user "a:b" logged in over AMQP, and the management API answered
 * 401 "Login failed", which topo said as wrong credentials.
 */
function basicAuthUser(m: ManagementEndpoint | undefined, raw: string | undefined, cluster: string, problems: PathProblem[]): ManagementEndpoint | undefined {
  if (!m?.username.includes(":")) return m;
  const from = raw === undefined ? "url" : "management";
  problems.push({
    path: ["clusters", cluster, from],
    message: `the management API's user name holds a ":" (%3A), which its login (HTTP Basic authentication) cannot carry: the broker reads the name up to the ":" and refuses it; give the cluster a management URL with a user whose name has no ":" (management: http://USER:<password>@HOST:15672, its password from a variable)${from === "url" ? ", since without one the management API is logged in to as the url's user" : ""}`,
  });
  return undefined;
}

function parseManagement(
  raw: string | undefined,
  amqp: Endpoint,
  path: (string | number)[],
  problems: PathProblem[],
): ManagementEndpoint | undefined {
  if (raw === undefined) {
    const scheme = amqp.protocol === "amqps" ? "https" : "http";
    const port = amqp.protocol === "amqps" ? 15671 : 15672;
    const baseUrl = `${scheme}://${hostPort(amqp.hostname, port)}`;
    return { baseUrl, username: amqp.username, password: amqp.password, display: baseUrl };
  }
  const u = readUrl(raw, path, problems, "http://host:15672");
  if (!u) return undefined;
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    problems.push({ path, message: `unsupported scheme "${u.protocol}//"; the management API is http:// or https://` });
    return undefined;
  }
  const misplaced = userinfoAfterHost(u);
  if (misplaced) {
    problems.push({ path, message: misplaced });
    return undefined;
  }
  if (u.port !== "" && Number(u.port) === 0) {
    problems.push({ path, message: `the port is 0, which no broker listens on; write the management API's port (http 15672, https 15671), or leave it out for the default` });
    return undefined;
  }
  if (u.search || u.hash) {
    // The web UI's address as a browser shows it (http://host:15672/#/queues) is the likely paste.
    const base = `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, "")}`;
    problems.push({ path, message: `management URL may not have a query or fragment: give the management plugin's base URL, e.g. ${base} (the web UI's address without its #/...)` });
    return undefined;
  }
  // topo adds /api/... itself: a URL ending in /api would ask for /api/api/overview, which the
  // management plugin answers with its web UI's 406. A path before it (a proxy's prefix) is fine.
  const api = /\/api\/?$/.exec(u.pathname);
  if (api) {
    problems.push({ path, message: `management URL ends in ${api[0]}: give the management plugin's base URL (topo adds /api/... itself), e.g. ${u.protocol}//${u.host}${u.pathname.slice(0, api.index)}` });
    return undefined;
  }
  const badEscape = badEscapeIn({ username: u.username, password: u.password });
  if (badEscape) {
    problems.push({ path, message: `URL has a malformed %-escape: ${badEscape}` });
    return undefined;
  }
  if (u.username === "" && u.password !== "") {
    problems.push({ path, message: `the management URL gives a password but no user name (${u.protocol}//:<password>@...), which would be ignored for the url's credentials; write the user name before the ":", or leave both out` });
    return undefined;
  }
  let username: string;
  let password: string;
  try {
    username = u.username ? decodeURIComponent(u.username) : amqp.username;
    password = u.username ? decodeURIComponent(u.password) : amqp.password;
  } catch {
    problems.push({ path, message: `URL has a malformed %-escape: ${NOT_UTF8}` });
    return undefined;
  }
  const baseUrl = `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, "")}`;
  return { baseUrl, username, password, display: baseUrl };
}

// ---------------------------------------------------------------------------------------------
// Queue settings: built-in < defaults.<kind> < services[i].<kind>

interface Resolved {
  cluster: string;
  clusterPath: (string | number)[];
  durable: boolean;
  mirrored: boolean;
  type: QueueType;
  arguments: Args;
  /** The key that set each of type, durable, mirrored and arguments.NAME (absent: built in). */
  settingPaths: Record<string, (string | number)[]>;
}

function resolveSettings(
  kind: Traffic,
  layers: { settings: RawQueueSettings; path: (string | number)[] }[],
  problems: PathProblem[],
): Resolved {
  // Remember which layer (0 = built-in) set each field: a later layer that sets `type: quorum`
  // overrides a durable:false or mirrored:true it inherited, but not one written beside it.
  const builtIn = BUILT_IN[kind];
  let cluster = builtIn.cluster;
  let clusterPath: (string | number)[] = ["clusters"];
  let type: QueueType = builtIn.type;
  let typeLevel = 0;
  let durable = builtIn.durable;
  let durableLevel = 0;
  let mirrored = builtIn.mirrored;
  let mirroredLevel = 0;
  let args: Args = {};
  let durablePath: (string | number)[] = [];
  let mirroredPath: (string | number)[] = [];
  const settingPaths: Record<string, (string | number)[]> = {};
  layers.forEach(({ settings, path }, i) => {
    const level = i + 1;
    if (settings.cluster !== undefined) {
      cluster = settings.cluster;
      clusterPath = [...path, "cluster"];
    }
    if (settings.type !== undefined) {
      type = settings.type;
      typeLevel = level;
      settingPaths.type = [...path, "type"];
    }
    if (settings.durable !== undefined) {
      durable = settings.durable;
      durableLevel = level;
      durablePath = [...path, "durable"];
      settingPaths.durable = durablePath;
    }
    if (settings.mirrored !== undefined) {
      mirrored = settings.mirrored;
      mirroredLevel = level;
      mirroredPath = [...path, "mirrored"];
      settingPaths.mirrored = mirroredPath;
    }
    if (settings.arguments) {
      args = { ...args, ...settings.arguments };
      for (const name of Object.keys(settings.arguments)) settingPaths[`arguments.${name}`] = [...path, "arguments", name];
    }
  });
  if (type !== "classic") {
    if (!durable) {
      if (durableLevel > typeLevel || (durableLevel === typeLevel && durableLevel > 0)) {
        problems.push({ path: durablePath, message: `durable: false contradicts type: ${type}; ${type} queues are always durable` });
      }
      durable = true;
    }
    if (mirrored) {
      if (mirroredLevel > typeLevel || (mirroredLevel === typeLevel && mirroredLevel > 0)) {
        problems.push({
          path: mirroredPath,
          message: `mirrored: true needs a classic queue; ${type} queues replicate themselves (drop mirrored, or use type: classic)`,
        });
      }
      mirrored = false;
    }
  }
  return { cluster, clusterPath, durable, mirrored, type, arguments: args, settingPaths };
}

// ---------------------------------------------------------------------------------------------

/**
 * Parts of the file the schema (or ${VAR} interpolation) refused, so that the cross-checks run on
 * the rest and report nothing that only follows from a refused value (refused.ts).
 */
export interface Refused {
  /** Names that count as clusters though their settings were refused; "any" when clusters itself was. */
  clusters?: string[] | "any";
  /** The prefix was refused: service names are not checked against it. */
  prefix?: boolean;
  /** Kinds whose defaults were refused: their queues are not resolved. */
  defaults?: Traffic[];
  /** Service entries refused as a whole (or by name): their names are checked, nothing more. */
  services?: number[];
  /** Queues (`<service index>.<kind>`) with a refused setting: not resolved, the rest of the entry is. */
  queues?: string[];
  /**
   * Argument values refused (`<service index>.<kind>` or `defaults.<kind>` → names): taken out,
   * and no other argument is faulted for lacking them.
   */
  arguments?: Record<string, string[]>;
  /** Users whose entry was refused ("*": the whole users section). */
  users?: string[];
  /** Users whose password or password_hash alone was refused: their rights and tags are still checked. */
  passwords?: string[];
}

export interface NormalizeResult {
  desired: DesiredState;
  problems: PathProblem[];
}

export function normalize(raw: RawConfig, refused: Refused = {}): NormalizeResult {
  const problems: PathProblem[] = [];
  const knownClusters = refused.clusters === "any" ? undefined : [...new Set([...(refused.clusters ?? []), ...Object.keys(raw.clusters)])];
  const prefix = raw.prefix ?? DEFAULT_PREFIX;
  const badPrefix = prefixProblem(prefix);
  if (badPrefix) problems.push({ path: ["prefix"], message: badPrefix });
  const namePattern = serviceNamePattern(prefix);
  // Asked of each queue: nearly always none, and then not looked up 50,000 times by a name built for it.
  const argumentsRefused = refused.arguments && Object.keys(refused.arguments).length ? refused.arguments : undefined;

  // Clusters
  const targets = new Map<string, ClusterTarget>();
  const seenVhost = new Map<string, string>();
  for (const [name, c] of Object.entries(raw.clusters)) {
    const amqp = parseEndpoint(c.url, ["clusters", name, "url"], problems);
    if (!amqp) continue;
    const management = basicAuthUser(parseManagement(c.management, amqp, ["clusters", name, "management"], problems), c.management, name, problems);
    if (!management) continue;
    const where = `${amqp.hostname.toLowerCase()}:${amqp.port}/${amqp.vhost}`;
    const other = seenVhost.get(where);
    if (other !== undefined) {
      problems.push({
        path: ["clusters", name, "url"],
        message: `cluster ${name} names the same vhost as cluster ${other} (${where}); each cluster needs its own vhost, or topo would delete one cluster's queues as the other's drift`,
      });
      continue;
    }
    seenVhost.set(where, name);
    targets.set(name, { name, amqp, management, tls: c.tls ?? {} });
  }

  // Services
  const specs: QueueSpec[] = [];
  const firstSeen = new Map<string, number>();
  const missingClusters = new Set<string>();
  // Services with a queue left out for a problem reported at its own place (a refused name,
  // setting or entry, an unknown cluster): what follows from the missing queue is not reported again.
  const leftOut = new Set<string>();
  const refusedServices = new Set(refused.services);
  const refusedQueues = new Set(refused.queues);
  const knownCluster = knownClusters && new Set(knownClusters);
  raw.services.forEach((entry, i) => {
    const svc: RawService = typeof entry === "string" ? { name: entry } : entry;
    const namePath: (string | number)[] = typeof entry === "string" ? ["services", i] : ["services", i, "name"];
    if (!refused.prefix && !namePattern.test(svc.name)) {
      problems.push({
        path: namePath,
        message: `service name "${svc.name}" must match ${namePattern.source} (the prefix "${prefix}" then lowercase letters and underscores)`,
      });
      leftOut.add(svc.name);
      return;
    }
    const celery = CELERY_EXCHANGES.get(svc.name);
    if (celery !== undefined) {
      problems.push({ path: namePath, message: `service name "${svc.name}" is ${celery}, which Celery declares itself, and not as topo would: choose another name` });
      leftOut.add(svc.name);
      return;
    }
    const first = firstSeen.get(svc.name);
    if (first !== undefined) {
      problems.push({ path: namePath, message: `duplicate service "${svc.name}" (also services[${first}])` });
      return;
    }
    firstSeen.set(svc.name, i);
    if (refusedServices.has(i)) {
      leftOut.add(svc.name);
      return;
    }
    for (const kind of TRAFFIC) {
      const own = svc[kind];
      if (own === false) continue;
      if (refused.defaults?.includes(kind) || refusedQueues.has(`${i}.${kind}`)) {
        leftOut.add(svc.name);
        continue;
      }
      const layers: { settings: RawQueueSettings; path: (string | number)[] }[] = [];
      const d = raw.defaults?.[kind];
      if (d) layers.push({ settings: d, path: ["defaults", kind] });
      if (own && typeof own === "object") layers.push({ settings: own, path: ["services", i, kind] });
      const r = resolveSettings(kind, layers, problems);
      const missing = argumentsRefused ? [...(argumentsRefused[`defaults.${kind}`] ?? []), ...(argumentsRefused[`${i}.${kind}`] ?? [])] : [];
      const argumentLayers = layers.map((l) => ({ arguments: l.settings.arguments, path: l.path }));
      // One written in defaults is faulted there, but it is this service's queue that refuses it:
      // said by name, with the way out (a service cannot take a default argument away).
      // (A problem is placed at the most specific layer that sets the argument: defaults, only
      // when the service does not set it itself.)
      // Only where the service's own type is the cause: a type from defaults too is the defaults' own contradiction.
      const ownType = typeof own === "object" && own.type !== undefined;
      const fromDefaults = (p: { path: (string | number)[]; message: string }) => ownType && p.path[0] === "defaults" && p.message.includes(" does not apply to ");
      problems.push(
        ...checkArguments(r.type, r.arguments, argumentLayers, missing).map((p) =>
          fromDefaults(p) ? { ...p, message: `${p.message}, and the ${kind} queue of services[${i}] (${svc.name}) is a ${r.type} queue: a service cannot take a default argument away, so set ${String(p.path[3])} on the services that take it instead of in defaults.${kind}` } : p,
        ),
      );
      if (knownCluster && !knownCluster.has(r.cluster)) {
        // One problem per place that names the cluster (or per kind, for the built-in default,
        // at the first service that needs it), not one per service.
        const builtIn = r.clusterPath[0] === "clusters";
        const place = builtIn ? `built-in|${kind}` : r.clusterPath.join(".");
        if (!missingClusters.has(place)) {
          missingClusters.add(place);
          const known = knownClusters.join(", ");
          problems.push(
            builtIn
              ? { path: namePath, message: `no cluster named "${r.cluster}" for ${svc.name}.${kind} and the other ${kind} queues; add clusters.${r.cluster}, set defaults.${kind}.cluster, or write ${kind}: false on each service that has no ${kind} queue (clusters: ${known})` }
              : { path: r.clusterPath, message: `unknown cluster "${r.cluster}" (clusters: ${known})` },
          );
        }
        leftOut.add(svc.name);
        continue;
      }
      const queue: Queue = {
        kind: "queue",
        name: `${svc.name}.${kind}`,
        type: r.type,
        durable: r.durable,
        autoDelete: false,
        exclusive: false,
        arguments: sortArgs(r.arguments),
      };
      specs.push({ service: svc.name, traffic: kind, cluster: r.cluster, queue, mirrored: r.mirrored, origin: { service: ["services", i], settings: r.settingPaths } });
    }
  });

  const clusters: DesiredCluster[] = [];
  for (const target of targets.values()) {
    const mine = specs.filter((s) => s.cluster === target.name);
    clusters.push({ target, queues: mine, resources: desiredResources(target, mine, prefix) });
  }
  // Only a file with a users section manages users (`users: {}` deletes every user it marked).
  // Users' rights follow from the service names, which a refused prefix leaves unchecked: a file
  // with prefix h3 (refused: the schema wants letters) and users crashed here ("service h3login
  // is not a service name of prefix mp", an internal error) instead of naming the prefix.
  if (raw.users !== undefined && !refused.users?.includes("*") && !refused.prefix) addUsers(raw.users, clusters, [...firstSeen.keys()], prefix, refused.users ?? [], refused.passwords ?? [], problems, { clusters: !knownClusters || targets.size < knownClusters.length, services: leftOut });
  return { desired: { prefix, clusters }, problems };
}

/**
 * Users live on a broker: clusters that share one (the same management API) share its users.
 * Clusters on one broker under two management URLs would not: plan and apply refuse them
 * (commands/clusters.ts, checkDistinctVhosts).
 */
export function usersBrokerOf(target: ClusterTarget): string {
  return target.management.baseUrl.toLowerCase();
}

/** What the file holds beyond what normalize could resolve: a cluster refused, services whose queues were left out. */
interface Unresolved {
  clusters: boolean;
  services: ReadonlySet<string>;
}

/**
 * The users section: each user's rights on each cluster (core/permissions.ts), as resources of
 * that cluster, and what every cluster needs to know about the users of its broker.
 */
function addUsers(
  users: Record<string, RawUser>,
  clusters: DesiredCluster[],
  services: string[],
  prefix: string,
  refused: string[],
  refusedSecrets: string[],
  problems: PathProblem[],
  unresolved: Unresolved,
): void {
  const marker = userMarkerTag(prefix);
  const sources = new Map<string, PasswordSource>();
  const grants: Grant[] = [];
  const adopt: string[] = [];
  const own = new Set(clusters.flatMap((c) => [c.target.amqp.username, c.target.management.username]));
  const fileServices = new Set(services);
  const refusedUsers = new Set(refused);
  const refusedSecretUsers = new Set(refusedSecrets);
  /**
   * The tags and services an entry names: false where one is refused. Checked for an entry the
   * schema refused too (a service listed twice), whose other problems were otherwise said only
   * once that one was fixed.
   */
  const namesOk = (path: (string | number)[], u: RawUser): boolean => {
    let ok = true;
    // A topo.<prefix> tag is what makes a user that prefix's topology's: one the file sets would
    // let another topology take the user over (or delete it).
    if (Array.isArray(u.tags)) {
      u.tags.forEach((tag, i) => {
        if (typeof tag !== "string" || !isTopoName(tag) || tag === marker) return;
        ok = false;
        problems.push({ path: [...path, "tags", i], message: `${JSON.stringify(tag)} is in topo's namespace (topo.<prefix> marks a user as that prefix's topology's); topo adds this file's marker ${marker} itself: remove it` });
      });
    }
    for (const field of ["consumes", "publishes"] as const) {
      const list = u[field];
      if (!Array.isArray(list)) continue;
      list.forEach((svc, i) => {
        if (typeof svc !== "string" || fileServices.has(svc) || unresolved.services.has(svc)) return;
        ok = false;
        // Past eight services the list is cut: the one meant may not be in it.
        const meant = closest(svc, services);
        problems.push({ path: [...path, field, i], message: `no service named "${svc}" in the file${meant ? `; did you mean "${meant}"?` : ""} (services: ${services.slice(0, 8).join(", ")}${services.length > 8 ? ", ..." : ""})` });
      });
    }
    return ok;
  };
  for (const [name, u] of Object.entries(users)) {
    if (refusedUsers.has(name)) {
      if (u !== null && typeof u === "object") namesOk(["users", name], u);
      continue;
    }
    const path = ["users", name];
    if (own.has(name)) {
      problems.push({ path, atKey: true, message: `user ${name} is the user topo itself connects as (a cluster's url or management); managing it would take topo's own rights away: give the services users of their own` });
      continue;
    }
    // A secret refused at its own place: the rest of the entry is checked, and the user (whose
    // password is not known) is left out of the result, which that problem makes no plan of.
    const secretRefused = refusedSecretUsers.has(name);
    const given = [(u.password !== undefined || secretRefused) && "password", u.password_hash !== undefined && "password_hash"].filter(Boolean);
    if (given.length !== 1) {
      problems.push({ path, atKey: true, message: given.length ? `user ${name} has both password and password_hash; give one` : `user ${name} needs a password (password: \${VAR}) or a password_hash (RabbitMQ's rabbit_password_hashing_sha256 form)` });
      continue;
    }
    if (!secretRefused && u.password_hash !== undefined && !isSha256Hash(u.password_hash)) {
      problems.push({ path: [...path, "password_hash"], message: `not a RabbitMQ sha256 password hash (base64 of a 4-byte salt and a 32-byte SHA-256 digest, as rabbitmqctl hash_password prints it on RabbitMQ 3.10.16 and later; docs/users.md shows how to make one on an older broker)` });
      continue;
    }
    if (!namesOk(path, u)) continue;
    const grant: Grant = { user: name, consumes: u.consumes ?? [], publishes: u.publishes ?? [] };
    if (grant.consumes.length === 0 && grant.publishes.length === 0) {
      problems.push({ path, atKey: true, message: `user ${name} neither consumes nor publishes anything: give it consumes: [<service>] or publishes: [<service>] (or all)` });
      continue;
    }
    if (secretRefused) continue;
    sources.set(name, u.password !== undefined ? { password: u.password } : { hash: u.password_hash as string });
    grants.push(grant);
    if (u.adopt) adopt.push(name);
  }
  const creds = credentials(sources);
  const brokerOf = (c: DesiredCluster) => usersBrokerOf(c.target);
  const wanted = new Map<DesiredCluster, Set<string>>();
  for (const c of clusters) {
    const names: string[] = [];
    const rs: Resource[] = [];
    let rightsOf: ReturnType<typeof rightsFor> | undefined;
    for (const g of grants) {
      const r = (rightsOf ??= rightsFor(c, prefix))(g);
      if (!r) continue;
      names.push(g.user);
      const tags = [...new Set([marker, ...(users[g.user]?.tags ?? [])])].sort();
      rs.push({ kind: "user", name: g.user, tags });
      rs.push({ kind: "permission", user: g.user, configure: r.configure, write: r.write, read: r.read });
      for (const t of r.topics) rs.push({ kind: "topic-permission", user: g.user, exchange: t.exchange, write: t.write, read: t.read });
    }
    wanted.set(c, new Set(names));
    c.resources = sortResources([...c.resources, ...rs]);
  }
  for (const g of grants) {
    // A cluster whose url or management was refused (reported at its place) may be the one that
    // holds the user's services, and a queue left out for a problem of its own may be the one
    // the user needs: saying it gets rights on no cluster would be untrue.
    if (unresolved.clusters) break;
    const named = g.publishes === "all" ? [...unresolved.services] : [...g.consumes, ...g.publishes];
    if (named.some((svc) => unresolved.services.has(svc))) continue;
    if (!clusters.some((c) => wanted.get(c)?.has(g.user))) {
      problems.push({ path: ["users", g.user], atKey: true, message: `user ${g.user} gets rights on no cluster: none of the services it consumes or publishes to has a queue` });
    }
  }
  clusters.forEach((c) => {
    const group = clusters.filter((o) => brokerOf(o) === brokerOf(c));
    c.users = {
      onBroker: [...new Set(group.flatMap((o) => [...(wanted.get(o) ?? [])]))].sort(),
      vhosts: group.map((o) => o.target.amqp.vhost),
      deletes: group[0] === c,
      adopt,
      connectsAs: [...own].sort(),
      credentials: creds,
    };
  });
}

/** Exchanges, queues, bindings and mirror policies one cluster must hold. */
function desiredResources(target: ClusterTarget, mine: QueueSpec[], prefix: string): Resource[] {
  const rs: Resource[] = [{ kind: "vhost", name: target.amqp.vhost }];
  for (const s of mine) {
    const exchange: Exchange = {
      kind: "exchange",
      name: s.service,
      type: "topic",
      durable: true,
      autoDelete: false,
      internal: false,
      arguments: {},
    };
    const binding: Binding = {
      kind: "binding",
      source: s.service,
      destination: s.queue.name,
      destinationType: "queue",
      routingKey: `${s.queue.name}.#`,
      arguments: {},
    };
    rs.push(exchange, s.queue, binding);
  }
  for (const kind of TRAFFIC) {
    const ofKind = mine.filter((s) => s.traffic === kind);
    const mirrored = ofKind.filter((s) => s.mirrored);
    if (mirrored.length === 0) continue;
    // When every queue of this kind on the cluster is mirrored, one short pattern covers them all
    // (and any queue a worker adds later); otherwise list the names exactly.
    // Their holding queues too (a replace parks their messages there): coveringHolds.
    const pattern = coveringHolds(
      mirrored.length === ofKind.length ? kindQueuesPattern(prefix, kind) : `^(?:${mirrored.map((s) => escapeRegex(s.queue.name)).sort().join("|")})$`,
    );
    const policy: Policy = {
      kind: "policy",
      name: mirrorPolicyName(prefix, kind),
      pattern,
      applyTo: "queues",
      priority: 0,
      definition: sortArgs({ ...MIRROR_DEFINITION }),
    };
    rs.push(policy);
  }
  return sortResources(rs);
}
