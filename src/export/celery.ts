// Pure: the desired state of one cluster → a Python module that a Celery 5 app loads with
// app.config_from_object(...). The queues in it carry exactly the flags and arguments topo
// provisions (and say which exchange and binding they have), but are marked no_declare: workers and
// clients never declare the service queues and exchanges, topo does (`topo apply` before any worker
// starts). So a service's user needs no configure permission on them, which would also let it
// delete them (docs/celery.md, "Least privilege"). No IO here: a unit test runs it on plain objects.
//
// The module never holds a password: the broker URL is read from an environment variable, and
// nothing below reads Endpoint.password.

import { TopoError } from "../errors.js";
import type { ArgValue, Binding, DesiredCluster, DesiredState, Exchange, Traffic, QueueSpec } from "../model.js";
import { queueDeclareArgs } from "../model.js";
import { ENV_NAME, MAX_ROUTING_KEY_BYTES, SERVICE_NAME_BODY, TASK_NAME_BODY } from "../core/naming.js";
import { pickExportCluster } from "./cluster.js";
import { shellPath } from "../core/words.js";
import { variableNameProblem, type Env } from "../config/interpolate.js";

export interface CeleryExportOptions {
  /** The topology file as the user named it; written into the header. */
  source: string;
  /** The cluster to export; may be omitted when only one cluster holds queues. */
  cluster?: string;
  /** Environment variable that holds the broker URL; default TOPO_BROKER_URL_<CLUSTER>. */
  brokerEnv?: string;
  /** Queue for task names that are not topology names; default the cluster's first queue. */
  defaultQueue?: string;
  /** The environment, to tell a value given for brokerEnv (the password, say) from a name; none read. */
  env?: Env;
}

export interface CeleryModule {
  text: string;
  cluster: string;
  brokerEnv: string;
  defaultQueue: string;
  queues: string[];
}

/**
 * The options a worker must be started with under topo's users: mingle asks the other workers over
 * remote control (pidbox), gossip and heartbeats publish to the celeryev exchange. Celery 5.2 has
 * no setting for them, only these command-line options.
 */
export const WORKER_OPTIONS: readonly string[] = ["--without-mingle", "--without-gossip", "--without-heartbeat"];

/** Celery's delivery modes: sync requests are worthless after a broker restart, async ones are not. */
const DELIVERY_MODE: Record<Traffic, 1 | 2> = { sync: 1, async: 2 };

export function brokerEnvName(cluster: string): string {
  // Cluster names are [a-z][a-z0-9_-]*, so this is always a valid variable name.
  return `TOPO_BROKER_URL_${cluster.toUpperCase().replace(/[^A-Z0-9_]/g, "_")}`;
}

/** Pick the one cluster to export: a Celery app connects to one broker. */
export function celeryCluster(desired: DesiredState, name: string | undefined, source: string): DesiredCluster {
  return pickExportCluster(desired, name, source, {
    why: "a Celery app connects to one broker",
    emptyWhy: "a Celery app on it would have nothing to consume or route to",
    command: (c) => `topo export celery -f ${shellPath(source)} --cluster ${c} -o celeryconfig_${c.replace(/-/g, "_")}.py`,
    hints: ["an edge that sends both kinds of task loads each module into a Celery app of its own"],
  });
}

export function celeryModule(desired: DesiredState, opts: CeleryExportOptions): CeleryModule {
  const c = celeryCluster(desired, opts.cluster, opts.source);
  const cluster = c.target.name;
  const brokerEnv = opts.brokerEnv ?? brokerEnvName(cluster);
  // Not shown: where the name belongs, the value is an easy slip (--broker-env "$BROKER_URL"), and
  // a URL without its scheme, or a password, is nothing output can mask. A password shaped like a
  // name (--broker-env "$RABBITMQ_PASSWORD") was written into the module as the variable to read;
  // the variable whose value it is tells it from a name.
  // A name written as names of variables are (capitals, digits and _) is taken for one even where a
  // variable holds it: a pipeline that passes the name on (BROKER_VAR=CELERY_BROKER_URL, then
  // --broker-env "$BROKER_VAR") exports where that variable is not set, since the module runs
  // elsewhere, and was refused. A password of that shape is still written as a name.
  const conventional = /^[A-Z_][A-Z0-9_]*$/.test(brokerEnv);
  const found = opts.brokerEnv === undefined ? undefined : variableNameProblem("--broker-env", brokerEnv, opts.env ?? {}, brokerEnvName(cluster), "the broker URL");
  const bad = found?.holder !== undefined && conventional ? undefined : found;
  if (bad) {
    // A value shaped like a name has no "://": $holder holds no URL, the password more likely.
    const hints = bad.holder !== undefined && ENV_NAME.test(brokerEnv)
      ? [`--broker-env takes the name of the variable that holds the whole broker URL, and $${bad.holder} holds no URL (no "://"): put the URL (${exampleUrl(c)}) in a variable and name that: --broker-env ${brokerEnvName(cluster)}`]
      : bad.hints;
    throw new TopoError(bad.message, hints);
  }
  // A Celery 5.2 worker consumes a stream from "next" (it sets no x-stream-offset) and its acks
  // remove nothing: a task sent while no worker runs is never run (measured on 4.0.5). No setting
  // of the module fixes that ("first" would run every task ever sent again at each start), so refuse.
  const stream = c.queues.find((s) => s.queue.type === "stream");
  if (stream) {
    const q = stream.queue.name;
    throw new TopoError(
      `cluster ${cluster}: queue ${q} is a stream, and a Celery worker reads a stream from its end: a task sent while no worker of it runs is never run, and a worker that restarts does not see the tasks it missed`,
      [`give ${q} type quorum or classic (services[].${stream.traffic}.type or defaults.${stream.traffic}.type), or export only clusters without streams`],
    );
  }
  const queueNames = c.queues.map((s) => s.queue.name);
  const defaultSpec = opts.defaultQueue === undefined ? c.queues[0]! : c.queues.find((s) => s.queue.name === opts.defaultQueue);
  if (!defaultSpec) {
    throw new TopoError(`--default-queue ${opts.defaultQueue}: cluster ${cluster} has no such queue`, [`queues on cluster ${cluster}: ${queueNames.join(", ")}`]);
  }
  const kinds = new Set(c.queues.map((s) => s.traffic));
  const others = desired.clusters.filter((o) => o !== c).flatMap((o) => o.queues.map((s) => [s.queue.name, o.target.name] as const));

  const L: string[] = [];
  // Lines, or lists of lines, one line at a time: spread into a call, the lines of 40,000 services'
  // routes overflowed the call stack ("Maximum call stack size exceeded", from a file validate
  // accepts). A list as long as the services is passed as it is, never spread.
  const push = (...lines: (string | readonly string[])[]) => {
    for (const l of lines) {
      if (typeof l === "string") L.push(l);
      else for (const x of l) L.push(x);
    }
  };

  // --- header
  // A shell command, in a Python comment: a shell word (shellWord writes a line break as an escape).
  const regen = [`topo export celery -f ${shellPath(opts.source)} --cluster ${cluster}`];
  if (opts.brokerEnv !== undefined) regen.push(`--broker-env ${brokerEnv}`);
  if (opts.defaultQueue !== undefined) regen.push(`--default-queue ${defaultSpec.queue.name}`);
  push(
    `# Celery configuration for cluster ${py(cluster)} of ${py(opts.source)}.`,
    `# Generated by topo. Do not edit: change the topology file, then run again:`,
    `#   ${regen.join(" ")} -o <this file>`,
    `#`,
    `# Worker and edge client alike: app = Celery(...); app.config_from_object("<this module>").`,
    `# A worker consumes its own service's queue, started with these options (see "Least privilege"):`,
    `#   celery -A <app> worker -Q <service>.<kind> ${WORKER_OPTIONS.join(" ")}`,
    `# The broker URL comes from the environment variable ${brokerEnv}; no password is ever written here.`,
    `# Nothing here declares the service queues and exchanges: run topo apply before starting workers.`,
    ``,
    `import os`,
    `import re`,
  );
  // Quorum only: a cluster with a stream was refused above.
  const nonClassic = c.queues.some((s) => s.queue.type !== "classic");
  if (c.target.amqp.protocol === "amqps") push(`import ssl`);
  push(``, `from kombu import Exchange, Queue`);
  push(`from kombu.transport import pyamqp as _pyamqp`);
  push(``);

  // --- broker
  push(
    `broker_url = os.environ.get(${py(brokerEnv)})`,
    `if not broker_url:`,
    `    raise RuntimeError(`,
    `        ${py(`${brokerEnv} is not set: export it as the AMQP URL of cluster ${cluster}, ${exampleUrl(c)}`)}`,
    `    )`,
  );
  push(
    ``,
    `# A task the broker did not take must not look sent. Publisher confirms: send_task returns once the`,
    `# broker has the message, and raises MessageNacked when a queue refuses it (x-overflow:`,
    `# reject-publish on a full queue); the routes below also set mandatory, so a task whose queue is`,
    `# gone (x-expires, or deleted) raises NO_ROUTE instead of being dropped.`,
    `broker_transport_options = {"confirm_publish": True}`,
  );
  if (c.target.amqp.protocol === "amqps") push(...tlsLines(c));
  push(...transportLines(c.target.amqp.protocol === "amqps" ? "SSLTransport" : "Transport", nonClassic));

  // --- queues
  push(
    ``,
    `# The queues exactly as topo provisions them. no_declare: workers and clients never declare them`,
    `# (topo apply does), so their broker users need no configure permission, which would also let`,
    `# them delete the queues. Change them in the topology file.`,
    `task_queues = (`,
  );
  for (const s of c.queues) push(...queueLines(c, s));
  push(
    `)`,
    `task_create_missing_queues = False`,
    `# x-max-priority would change every queue's arguments; set it per queue in the topology file.`,
    `task_queue_max_priority = None`,
  );

  // --- least privilege
  push(
    ``,
    `# Least privilege: a service's broker user may read its own queues and send the tasks it calls,`,
    `# nothing more (topo's users:, docs/celery.md). Remote control (the pidbox exchanges every worker`,
    `# shares) would let one service's worker shut down another's, and events need write on celeryev,`,
    `# an exchange every worker shares: both off. Mingle (which asks the other workers over remote control), gossip and`,
    `# heartbeats can only be turned off on the worker's command line: ${WORKER_OPTIONS.join(" ")}.`,
    `worker_enable_remote_control = False`,
    `worker_send_task_events = False`,
    `task_send_sent_event = False`,
  );

  // --- routes
  push(
    ``,
    `# A task named <service>.<kind>.<task> goes to the queue <service>.<kind> through the exchange`,
    `# <service>, with the task name as routing key. Sync messages are transient (the caller waits; a`,
    `# request is worth nothing after a broker restart), async ones persistent.`,
    `_ROUTES = {`,
    c.queues.map((s) => `    ${py(s.queue.name)}: (${py(s.service)}, ${DELIVERY_MODE[s.traffic]}),`),
    `}`,
    `# Queues of the topology on other clusters: their tasks are sent with that cluster's module.`,
    `_OTHER_CLUSTERS = {`,
    others.map(([q, on]) => `    ${py(q)}: ${py(on)},`),
    `}`,
    // The router rule of core/naming.ts, in Python: the same character class, anchored the same way.
    `_SERVICE = re.compile(r"\\A" + re.escape(${py(desired.prefix)}) + r"${SERVICE_NAME_BODY}\\Z")`,
    // The task part's rule of core/naming.ts: topo's users may publish no other routing key.
    `_TASK = re.compile(r"\\A${TASK_NAME_BODY}\\Z")`,
    ``,
    ``,
    `class TopoRouteError(LookupError):`,
    `    """A task named like a task of the topology that no queue of this cluster takes."""`,
    ``,
    ``,
    `def _split(name):`,
    `    service, _, rest = name.partition(".")`,
    `    kind, _, task = rest.partition(".")`,
    `    if kind in ("sync", "async") and _SERVICE.match(service):`,
    `        return service, kind, task`,
    `    return None`,
    ``,
    ``,
    `def route_task(name, args=None, kwargs=None, options=None, task=None, **kw):`,
    `    """The router (task_routes). A name that is not <service>.<kind>.<task> gets None, so`,
    `    Celery's default applies (task_default_queue); a topology name this cluster does not take`,
    `    raises TopoRouteError rather than land in a queue whose workers do not know it."""`,
    `    parts = _split(name)`,
    `    if parts is None:`,
    `        return None`,
    `    service, kind, task_name = parts`,
    `    queue = service + "." + kind`,
    `    if queue not in _ROUTES:`,
    `        other = _OTHER_CLUSTERS.get(queue)`,
    `        if other is not None:`,
    `            raise TopoRouteError(`,
    `                "task %r goes to queue %r on cluster %r, not on cluster %r: send it with a Celery app"`,
    `                " configured from the module of cluster %r" % (name, queue, other, ${py(cluster)}, other)`,
    `            )`,
    `        raise TopoRouteError("task %r: the topology %r has no queue %r" % (name, ${py(opts.source)}, queue))`,
    `    if not _TASK.match(task_name):`,
    `        raise TopoRouteError(`,
    `            "task %r: the part after %r must be letters, digits and _ (name tasks <service>.<kind>.<task>);"`,
    `            " the broker users topo makes may publish no other name" % (name, queue + ".")`,
    `        )`,
    `    if len(name.encode("utf-8")) > ${MAX_ROUTING_KEY_BYTES}:`,
    `        raise TopoRouteError(`,
    `            "task %r: a routing key is at most ${MAX_ROUTING_KEY_BYTES} bytes, and the task name is the routing key" % (name,)`,
    `        )`,
    `    exchange, delivery_mode = _ROUTES[queue]`,
    `    # A new dict each time: Celery pops "queue" out of the route it is given.`,
    `    return {"queue": queue, "exchange": exchange, "routing_key": name, "delivery_mode": delivery_mode, "mandatory": True}`,
    ``,
    ``,
    `task_routes = (route_task,)`,
  );

  // --- default queue
  const d = defaultSpec;
  push(
    ``,
    `# Names that are not topology names (Celery's own tasks, such as celery.chord_unlock) go to one`,
    `# queue of this cluster: ${d.queue.name}${opts.defaultQueue === undefined ? " (the first in the file; --default-queue chooses another)" : " (--default-queue)"}.`,
    `# Celery sends them with that queue's own routing key, ${bindingOf(c, d).routingKey} (task_default_routing_key`,
    `# applies only to queues Celery makes), and without mandatory. Only a user allowed every routing`,
    `# key on that exchange may send them: the broker refuses ${bindingOf(c, d).routingKey} to the users topo makes.`,
    `task_default_queue = ${py(d.queue.name)}`,
    `task_default_exchange = ${py(d.service)}`,
    `task_default_exchange_type = ${py(exchangeOf(c, d).type)}`,
    `task_default_routing_key = ${py(d.queue.name)}`,
    `task_default_delivery_mode = ${py(DELIVERY_MODE[d.traffic] === 1 ? "transient" : "persistent")}`,
  );

  // --- results
  push(``);
  if (kinds.has("sync")) {
    push(
      `# Sync tasks are request/reply: the answer goes back over RabbitMQ itself (rpc://: a reply queue`,
      `# per client, transient messages), never stored. Async tasks are fire and forget.`,
      `result_backend = "rpc://"`,
      `result_persistent = False`,
      `task_ignore_result = False`,
    );
  } else {
    push(`# Async tasks are fire and forget: no result backend, no result sent.`, `result_backend = None`, `task_ignore_result = True`);
  }
  push(
    ``,
    ``,
    `class _ResultsByKind:`,
    `    """Sets ignore_result from the task name, whatever the task's decorator says: the caller of a`,
    `    sync task waits for its answer, nobody waits for an async one."""`,
    ``,
    `    def annotate(self, task):`,
    `        parts = _split(task.name or "")`,
    `        if parts is None:`,
    `            return None`,
    `        return {"ignore_result": parts[1] == "async"}`,
    ``,
    ``,
    `task_annotations = (_ResultsByKind(),)`,
  );

  return { text: `${L.join("\n")}\n`, cluster, brokerEnv, defaultQueue: d.queue.name, queues: queueNames };
}

// ---------------------------------------------------------------------------------------------

/** A cluster's exchanges by name and queue bindings by queue, built once: a lookup per queue would be quadratic. */
const indexes = new WeakMap<DesiredCluster, { exchanges: Map<string, Exchange>; bindings: Map<string, Binding> }>();

function indexOf(c: DesiredCluster): { exchanges: Map<string, Exchange>; bindings: Map<string, Binding> } {
  let ix = indexes.get(c);
  if (!ix) {
    ix = { exchanges: new Map(), bindings: new Map() };
    for (const r of c.resources) {
      if (r.kind === "exchange") ix.exchanges.set(r.name, r);
      else if (r.kind === "binding" && r.destinationType === "queue") ix.bindings.set(`${r.source}\0${r.destination}`, r);
    }
    indexes.set(c, ix);
  }
  return ix;
}

function exchangeOf(c: DesiredCluster, s: QueueSpec): Exchange {
  const e = indexOf(c).exchanges.get(s.service);
  // normalize makes one for every queue; its absence is a bug, not a user error.
  if (!e) throw new Error(`no exchange ${s.service} in the desired state of cluster ${c.target.name}`);
  return e;
}

function bindingOf(c: DesiredCluster, s: QueueSpec): Binding {
  const b = indexOf(c).bindings.get(`${s.service}\0${s.queue.name}`);
  if (!b) throw new Error(`no binding ${s.service} -> ${s.queue.name} in the desired state of cluster ${c.target.name}`);
  return b;
}

function queueLines(c: DesiredCluster, s: QueueSpec): string[] {
  const e = exchangeOf(c, s);
  const b = bindingOf(c, s);
  const q = s.queue;
  // kombu declares exchanges without `internal`; topo's are never internal, and a unit test says so.
  const exArgs = Object.keys(e.arguments).length ? `, arguments=${py(e.arguments)}` : "";
  const lines = [
    `    Queue(`,
    `        ${py(q.name)},`,
    `        Exchange(${py(e.name)}, type=${py(e.type)}, durable=${py(e.durable)}, auto_delete=${py(e.autoDelete)}${exArgs}, delivery_mode=${DELIVERY_MODE[s.traffic]}, no_declare=True),`,
    `        routing_key=${py(b.routingKey)},`,
    `        durable=${py(q.durable)},`,
    `        auto_delete=${py(q.autoDelete)},`,
    `        exclusive=${py(q.exclusive)},`,
    `        queue_arguments=${py(queueDeclareArgs(q))},`,
  ];
  if (Object.keys(b.arguments).length) lines.push(`        binding_arguments=${py(b.arguments)},`);
  lines.push(`        no_declare=True,`, `    ),`);
  return lines;
}

/** Where to point the environment variable, without credentials. */
function exampleUrl(c: DesiredCluster): string {
  const a = c.target.amqp;
  const host = a.hostname.includes(":") ? `[${a.hostname}]` : a.hostname;
  const vhost = a.vhost === "/" ? "%2F" : encodeURIComponent(a.vhost);
  return `${a.protocol}://<user>:<password>@${host}:${a.port}/${vhost}`;
}

function tlsLines(c: DesiredCluster): string[] {
  const t = c.target.tls;
  const opts: string[] = [];
  if (t.insecure) {
    opts.push(`"cert_reqs": ssl.CERT_NONE`);
  } else {
    // server_hostname None: kombu checks the certificate against the URL's host name.
    opts.push(`"cert_reqs": ssl.CERT_REQUIRED`, `"server_hostname": None`);
  }
  if (t.ca !== undefined) opts.push(`"ca_certs": ${py(t.ca)}`);
  if (t.cert !== undefined) opts.push(`"certfile": ${py(t.cert)}`);
  if (t.key !== undefined) opts.push(`"keyfile": ${py(t.key)}`);
  return [
    ``,
    `# TLS as the topology file sets it. The paths are those topo resolved where it ran; set`,
    `# broker_use_ssl in the app instead when the worker sees the files elsewhere.`,
    `broker_use_ssl = {`,
    ...opts.map((o) => `    ${o},`),
    `}`,
  ];
}

/**
 * kombu's AMQP transport, with what Celery 5.2's lacks. py-amqp reopens a channel the broker closed
 * (a publish to an exchange that is gone, 404, or one the user may not make, 403) without
 * selecting publisher confirms on it again, and then waits for ever for the confirm of every later
 * publish (celery/py-amqp#445): measured with 5.1.1, after one send_task to a deleted exchange
 * raised NotFound, the next one, to a service that exists, never returned, and an edge sending for
 * every service stopped. And with a quorum queue, the prefetch limit per consumer.
 */
function transportLines(base: "Transport" | "SSLTransport", perConsumerQos: boolean): string[] {
  return [
    ``,
    ``,
    `# py-amqp reopens a channel the broker closed (a task sent to an exchange that is gone, or that the`,
    `# user may not publish to) without turning publisher confirms on again, and every later send_task`,
    `# then waits for ever for its confirm (celery/py-amqp#445). This channel turns them on again.`,
    `class _ConfirmingChannel(_pyamqp.Channel):`,
    `    def _do_revive(self):`,
    `        self._confirm_selected = False`,
    `        super()._do_revive()`,
    ``,
    ``,
    `class _Connection(_pyamqp.Connection):`,
    `    Channel = _ConfirmingChannel`,
    ``,
    ``,
    `class _TopoTransport(_pyamqp.${base}):`,
    `    Connection = _Connection`,
    ...(perConsumerQos
      ? [
          ``,
          `    # Celery before 5.5 sets its prefetch limit with global QoS on RabbitMQ, and a consumer of a`,
          `    # quorum queue is then refused ("NOT_IMPLEMENTED - ... does not support global qos"): the`,
          `    # limit per consumer, as Celery 5.5 does for quorum queues.`,
          `    def qos_semantics_matches_spec(self, connection):`,
          `        return True`,
        ]
      : []),
    ``,
    ``,
    `broker_transport = _TopoTransport`,
  ];
}

// ---------------------------------------------------------------------------------------------
// Python literals

/**
 * A Python literal for a value, keeping its AMQP type: amqplib sends a number as an integer unless
 * it has a fraction (below 2^50) or is at least 2^63 (isFloatingPoint in amqplib's codec), and
 * py-amqp sends a Python int as an integer and a float as a double, so the two declares agree.
 * Output is ASCII only, so no byte of a value can end a string or a comment early.
 */
export function py(v: ArgValue | undefined): string {
  if (v === null || v === undefined) return "None";
  if (typeof v === "boolean") return v ? "True" : "False";
  if (typeof v === "number") return pyNumber(v);
  if (typeof v === "string") return pyString(v);
  if (Array.isArray(v)) return `[${v.map(py).join(", ")}]`;
  return `{${Object.entries(v).map(([k, x]) => `${pyString(k)}: ${py(x)}`).join(", ")}}`;
}

function sentAsDouble(n: number): boolean {
  return n >= 2 ** 63 || (Math.abs(n) < 2 ** 50 && Math.floor(n) !== n);
}

function pyNumber(n: number): string {
  if (Number.isNaN(n)) return `float("nan")`;
  if (n === Infinity) return `float("inf")`;
  if (n === -Infinity) return `-float("inf")`;
  if (!sentAsDouble(n)) return BigInt(Math.trunc(n)).toString();
  const s = String(n);
  // "1e+21" and "0.5" are floats in Python; "10000000000000000000" would be an int.
  return /[.e]/.test(s) ? s : `${s}.0`;
}

function pyString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (ch === "\\") out += "\\\\";
    else if (ch === '"') out += '\\"';
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (cp >= 0x20 && cp < 0x7f) out += ch;
    else if (cp <= 0xff) out += `\\x${cp.toString(16).padStart(2, "0")}`;
    else if (cp <= 0xffff) out += `\\u${cp.toString(16).padStart(4, "0")}`;
    else out += `\\U${cp.toString(16).padStart(8, "0")}`;
  }
  return `${out}"`;
}
